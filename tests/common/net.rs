//! What the tests of TCP connections look at from outside: loopback
//! ports, `/proc/net/tcp{,6}`, the network lock a dump left (its nftables
//! table) and iptables rules.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// The loopback address of the family.
pub fn lo(v6: bool) -> &'static str {
    if v6 { "::1" } else { "127.0.0.1" }
}

/// A port of `lo` nothing listens on now.
pub fn free_port(lo: &str) -> u16 {
    let l = TcpListener::bind((lo, 0)).expect("bind a loopback port");
    l.local_addr().unwrap().port()
}

/// The dump's run id in `images` (the lock's table is named after it).
pub fn run_id(images: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_crit"))
        .arg("show")
        .arg(images.join("inventory.img"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["entries"][0]["dump_criu_run_id"]
        .as_str()
        .expect("a run id in inventory.img")
        .to_string()
}

/// Whether the nftables table of the lock the dump into `images` took
/// exists (panics where nf_tables cannot be listed).
pub fn lock_table_exists(images: &Path) -> bool {
    let name = criu_core::netlock::table_name(run_id(images));
    criu_core::netlock::tables()
        .expect("list the nf_tables tables")
        .iter()
        .any(|(_, t)| *t == name)
}

/// The lines of `iptables -S` and `ip6tables -S` naming `port` (none
/// where the commands are missing: no rule can exist then).
pub fn iptables_rules(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for cmd in ["iptables", "ip6tables"] {
        let Ok(o) = Command::new(cmd).args(["-w", "-S"]).output() else {
            continue;
        };
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| {
                    l.contains(&format!("port {port} ")) || l.ends_with(&format!("port {port}"))
                })
                .map(str::to_string),
        );
    }
    out
}

/// One row of `/proc/net/tcp{,6}`: local and remote port, state, bytes
/// in the receive queue.
struct Row {
    local: u16,
    remote: u16,
    state: u8,
    rx: u32,
}

fn rows(v6: bool) -> Vec<Row> {
    let file = if v6 {
        "/proc/net/tcp6"
    } else {
        "/proc/net/tcp"
    };
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let port = |f: &str| u16::from_str_radix(f.rsplit(':').next()?, 16).ok();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(Row {
                local: port(f.get(1)?)?,
                remote: port(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                rx: u32::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?,
            })
        })
        .collect()
}

/// Bytes in the receive queue of the socket from port `local` to port
/// `remote`, if there is one.
pub fn tcp_rx_queue(v6: bool, local: u16, remote: u16) -> Option<u32> {
    rows(v6)
        .into_iter()
        .find(|r| r.local == local && r.remote == remote)
        .map(|r| r.rx)
}

/// Whether a socket listens on `port`.
pub fn tcp_listening(v6: bool, port: u16) -> bool {
    const TCP_LISTEN: u8 = 10;
    rows(v6)
        .iter()
        .any(|r| r.local == port && r.state == TCP_LISTEN)
}

/// A named net namespace (`ip netns add`) joined to the host by a veth
/// pair with an address at each end, for a container whose network the
/// test makes (its spec names the namespace's path): the namespace lives
/// on across the container's checkpoint and restore. Deleted (with the
/// pair) when dropped.
pub struct VethNs {
    pub name: String,
    host_if: String,
    /// The host's end's address and the namespace's.
    pub host: std::net::Ipv4Addr,
    pub inside: std::net::Ipv4Addr,
}

impl VethNs {
    /// A namespace for test number `n` of this process (names and a /30
    /// of 10.234.0.0/16 no other interface here uses).
    pub fn new(n: u32) -> VethNs {
        let pid = std::process::id();
        let name = format!("criu-rs-{pid}-{n}");
        // Interface names: at most 15 bytes.
        let host_if = format!("crv{}h{n}", pid % 1_000_000);
        let ns_if = format!("crv{}c{n}", pid % 1_000_000);
        let used = ip(&["-o", "-4", "addr", "show"]);
        let (host, inside) = (0..16384u32)
            .map(|i| (pid.wrapping_mul(64).wrapping_add(n * 4).wrapping_add(i * 4)) % 65536)
            .map(|k| {
                let net = u32::from(std::net::Ipv4Addr::new(10, 234, 0, 0)) | (k & !3);
                (
                    std::net::Ipv4Addr::from(net + 1),
                    std::net::Ipv4Addr::from(net + 2),
                )
            })
            .find(|(h, i)| !used.contains(&format!("{h}/")) && !used.contains(&format!("{i}/")))
            .expect("a free /30 in 10.234.0.0/16");
        let v = VethNs {
            name,
            host_if,
            host,
            inside,
        };
        ip(&["netns", "add", &v.name]);
        ip(&[
            "link", "add", &v.host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &v.name]);
        ip(&["addr", "add", &format!("{host}/30"), "dev", &v.host_if]);
        ip(&["link", "set", &v.host_if, "up"]);
        let n = ["-n", v.name.as_str()];
        ip(&[
            &n[..],
            &["addr", "add", &format!("{inside}/30"), "dev", &ns_if],
        ]
        .concat());
        ip(&[&n[..], &["link", "set", &ns_if, "up"]].concat());
        ip(&[&n[..], &["link", "set", "lo", "up"]].concat());
        v
    }

    /// The namespace's path, for a container spec.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// The nf_tables tables in the namespace (family, name).
    pub fn nft_tables(&self) -> Vec<(u8, String)> {
        let ns = std::fs::File::open(self.path()).expect("open the namespace");
        std::thread::scope(|s| {
            s.spawn(|| {
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&ns),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .expect("enter the namespace");
                criu_core::netlock::tables().expect("list the nf_tables tables")
            })
            .join()
            .unwrap()
        })
    }

    /// `iptables -S` (or `ip6tables -S`) in the namespace.
    pub fn iptables(&self, binary: &str) -> String {
        ip(&["netns", "exec", &self.name, binary, "-w", "-S"])
    }
}

impl Drop for VethNs {
    fn drop(&mut self) {
        // Deleting one end deletes the pair.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs `ip` with `args`; its output (panics if it fails).
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server of [`LineClient`]'s protocol, a busybox shell loop on its
/// stdio (`nc -l -p PORT -e sh -c LINE_SERVER`): the count is in its
/// memory, so a restore that lost it starts again from 1.
pub const LINE_SERVER: &str = "i=0; while read l; do i=$((i+1)); echo \"$i $l\"; done";

/// The client's end of a line protocol: one TCP connection, lines out and
/// answers in (a server that answers each line with its count of lines
/// and the line: `N LINE`).
pub struct LineClient {
    out: std::net::TcpStream,
    answers: std::io::BufReader<std::net::TcpStream>,
}

impl LineClient {
    /// Connects to `addr` (a server that may still be starting).
    pub fn connect(addr: std::net::SocketAddr) -> LineClient {
        use std::time::Duration;
        let mut sk = None;
        let ok = super::wait_until(Duration::from_secs(10), || {
            sk = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok();
            sk.is_some()
        });
        assert!(ok, "nothing listens on {addr}");
        let out = sk.unwrap();
        // Long enough for a restore under CI load and TCP's retransmission
        // of what was dropped while the connection was locked.
        out.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let answers = std::io::BufReader::new(out.try_clone().unwrap());
        LineClient { out, answers }
    }

    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        writeln!(self.out, "{line}").expect("send on the connection");
    }

    pub fn answer(&mut self) -> String {
        self.try_answer().expect("an answer on the connection")
    }

    /// The next answer, or why there is none.
    pub fn try_answer(&mut self) -> std::io::Result<String> {
        use std::io::BufRead;
        let mut s = String::new();
        self.answers.read_line(&mut s)?;
        Ok(s.trim_end().to_owned())
    }

    /// Sends `line`, which must come back as the server's `n`th.
    pub fn ask(&mut self, line: &str, n: u32) {
        self.send(line);
        assert_eq!(self.answer(), format!("{n} {line}"));
    }
}
