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
