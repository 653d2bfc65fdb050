//! Established TCP connections of programs we did not write, with their
//! peers outside the dumped tree (`--tcp-established`):
//!
//! - `python3 -m http.server` with a client connected mid-request: half
//!   of the request before the dump, a header while the server is gone,
//!   the end after the restore; the answer must be the file, byte for
//!   byte, and a new connection afterwards must be served too;
//! - `nc -l` (netcat-openbsd) fed by `seq`, with a peer that keeps
//!   sending numbered lines and reading `seq`'s before, during and after
//!   the checkpoint: every number arrives exactly once, in order, both
//!   ways;
//! - an ssh-like pair: `socat` between a pty (with an interactive `bash`
//!   on it) and a TCP listener in the tree, and a `socat` from a pty of
//!   ours to it outside: typing goes on after restore, and what was typed
//!   while the tree was gone arrives too.
//!
//! Each runs over IPv4 and IPv6 (`::1`). Between dump and restore the
//! network lock (nftables, the default) must be in place; after the
//! restore no lock table and no iptables rule of the connections may be
//! left. criu runs here with a `PATH` holding no command at all: no
//! `iptables`, no `nft` is needed to lock the network.
#![cfg(target_arch = "x86_64")]

mod common;

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::net::{free_port, iptables_rules, lo, lock_table_exists, tcp_listening, tcp_rx_queue};
use common::{TempDir, become_subreaper, skip, wait_until};
use rustix::process::{Pid, WaitOptions};

const TIMEOUT: Duration = Duration::from_secs(30);

/// criu's `PATH`: a directory that does not exist, so no `iptables`,
/// `ip6tables` or `nft` can be found.
const NO_PATH: &str = "/nonexistent-foreign-tcp-path";

/// Why this test cannot run here, if it cannot (after saying so).
fn cannot_run(test: &str, programs: &[(&str, &[&str], &str)]) -> bool {
    if let Some(why) = common::cannot_checkpoint() {
        skip(test, why);
        return true;
    }
    for (cmd, args, package) in programs {
        let works = Command::new(cmd)
            .args(*args)
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if !works {
            skip(
                test,
                &format!("no working {cmd} here (Debian's {package} package)"),
            );
            return true;
        }
    }
    false
}

/// The root of the tree and every descendant, sorted.
fn tree_pids(pid: i32) -> Vec<i32> {
    let mut out = common::descendants(pid);
    out.push(pid);
    out.sort_unstable();
    out
}

/// Kills (by PID) and reaps what it holds when the test ends, even by a
/// panic.
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        common::kill_all(&self.0);
    }
}

/// An outside program of the test (a peer), killed by PID on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// criu ARGS with `NO_PATH` as its `PATH`.
fn criu(images: &Path, args: &[&str]) -> (bool, String) {
    common::run_criu(images, args, &[("PATH", OsStr::new(NO_PATH))])
}

/// Waits until none of `pids` exists, reaping them (the root is our
/// child, the rest come to us, the subreaper).
fn reap_gone(pids: &[i32]) {
    for &p in pids {
        let gone = wait_until(TIMEOUT, || {
            let _ = rustix::process::waitpid(Pid::from_raw(p), WaitOptions::NOHANG);
            !Path::new(&format!("/proc/{p}")).exists()
        });
        assert!(gone, "task {p} of the dumped tree is still there");
    }
}

/// Dumps the tree of `child` (our child, the root) with
/// `--tcp-established`, which kills it; checks the network lock is in place, runs `gap` (the peers
/// acting while the tree is gone), restores the tree and checks that it
/// is back with the same PIDs and that no lock is left for the connections
/// (`ports`: the tree's ports).
fn checkpoint(child: &mut Child, dir: &Path, ports: &[u16], gap: impl FnOnce()) {
    let root = child.id() as i32;
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let before = tree_pids(root);
    let pid = root.to_string();
    let (ok, log) = criu(&images, &["dump", "-t", &pid, "--tcp-established"]);
    assert!(ok, "dump: {log}");
    assert!(
        log.contains("Dumped the TCP connection"),
        "no connection dumped: {log}"
    );
    child.wait().expect("reap the dumped root");
    reap_gone(&before);
    assert!(
        lock_table_exists(&images),
        "no network lock after the dump: {log}"
    );
    gap();
    let args = ["restore", "-d", "--tcp-established", "--pidfile", "pid"];
    let (ok, log) = criu(&images, &args);
    assert!(ok, "restore: {log}");
    let restored = std::fs::read_to_string(images.join("pid")).unwrap();
    assert_eq!(restored.trim(), pid, "{log}");
    assert_eq!(tree_pids(root), before, "the restored tree");
    assert!(
        !lock_table_exists(&images),
        "the restore left the network lock: {log}"
    );
    for &port in ports {
        let left = iptables_rules(port);
        assert!(left.is_empty(), "iptables rules left: {left:?}");
    }
}

/// The port `python3 -m http.server 0` printed it serves on.
fn served_port(out: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(out).ok()?;
    let rest = text.split_once(" port ")?.1;
    rest.split_whitespace().next()?.parse().ok()
}

/// An HTTP/1.0 answer read to its end: status line, headers, body.
fn read_answer(s: &mut TcpStream) -> (String, Vec<u8>) {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read the answer");
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(&all)));
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    (head, all[split + 4..].to_vec())
}

fn check_answer(head: &str, body: &[u8], want: &[u8]) {
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}", want.len())),
        "{head}"
    );
    assert_eq!(body.len(), want.len(), "body length");
    assert!(body == want, "the body differs from the file served");
}

fn http_server(test: &str, v6: bool) {
    if cannot_run(test, &[("python3", &["-V"], "python3")]) {
        return;
    }
    become_subreaper();
    let dir = TempDir::new(test);
    let want: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("served.bin"), &want).unwrap();
    let argv = ["python3", "-u", "-m", "http.server", "0", "--bind", lo(v6)];
    let mut child = common::spawn_in(dir.path(), &argv, false);
    let pid = child.id() as i32;
    let _kill = KillOnDrop(vec![pid]);
    let out = dir.join("out");
    assert!(
        wait_until(TIMEOUT, || served_port(&out).is_some()),
        "http.server did not say its port: {}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let port = served_port(&out).unwrap();
    // Half of a request: the server's thread for it reads it and waits
    // for the rest (its handler thread, in recv).
    let mut client = TcpStream::connect((lo(v6), port)).unwrap();
    client.set_nodelay(true).unwrap();
    client
        .write_all(b"GET /served.bin HTTP/1.1\r\nHost: criu-rs\r\n")
        .unwrap();
    let me = client.local_addr().unwrap().port();
    let threads = || std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    assert!(
        wait_until(TIMEOUT, || tcp_rx_queue(v6, port, me) == Some(0)
            && threads() == 2),
        "the server did not read the request's start"
    );
    std::thread::sleep(Duration::from_millis(100));
    checkpoint(&mut child, dir.path(), &[port, me], || {
        // A header while the server is gone: the lock holds it back (no
        // reset), TCP sends it again after the restore.
        client.write_all(b"User-Agent: foreign_tcp\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
    client.write_all(b"\r\n").unwrap();
    let (head, body) = read_answer(&mut client);
    check_answer(&head, &body, &want);
    // The listening socket is back: a new connection is served.
    let mut second = TcpStream::connect((lo(v6), port)).unwrap();
    second
        .write_all(b"GET /served.bin HTTP/1.0\r\n\r\n")
        .unwrap();
    let (head, body) = read_answer(&mut second);
    check_answer(&head, &body, &want);
    let log = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        log.matches("\"GET /served.bin HTTP/1.").count(),
        2,
        "the server's log: {log}"
    );
}

#[test]
fn python_http_server_answers_a_request_split_by_the_checkpoint() {
    http_server("foreign-tcp-http4", false);
}

#[test]
fn python_http_server_over_ipv6_answers_a_request_split_by_the_checkpoint() {
    http_server("foreign-tcp-http6", true);
}

/// Numbered lines `1\n2\n...` read from `s` until `stop`, each checked to
/// follow the one before; `seen` counts them. Paced, so that `seq` does
/// not run flat out. The error says what broke the sequence.
fn read_numbers(
    mut s: TcpStream,
    seen: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = vec![0u8; 4 << 10];
    let mut partial = Vec::new();
    let mut next = 1u64;
    while !stop.load(Ordering::Acquire) {
        let n = match s.read(&mut buf) {
            Ok(0) => return Err(format!("end of stream after {}", next - 1)),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(format!("read after {}: {e}", next - 1)),
        };
        partial.extend_from_slice(&buf[..n]);
        let end = partial
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        for line in partial[..end]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let got = std::str::from_utf8(line)
                .ok()
                .and_then(|t| t.parse::<u64>().ok());
            if got != Some(next) {
                return Err(format!(
                    "got {:?} where {next} was due",
                    String::from_utf8_lossy(line)
                ));
            }
            next += 1;
        }
        partial.drain(..end);
        seen.store(next - 1, Ordering::Release);
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Writes numbered lines to `s` until `stop`, 20 every 2 ms; `sent` is
/// the last number written.
fn write_numbers(
    mut s: TcpStream,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    // A bounded wait per write, so that a stop is seen even while nc does
    // not read (a full socket buffer would block a plain write for ever).
    s.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut i = 0u64;
    while !stop.load(Ordering::Acquire) {
        let mut text = String::new();
        for _ in 0..20 {
            i += 1;
            text.push_str(&format!("{i}\n"));
        }
        let mut left = text.as_bytes();
        while !left.is_empty() {
            match s.write(left) {
                Ok(n) => left = &left[n..],
                // Stopping between batches only: `sent` counts whole ones.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if stop.load(Ordering::Acquire) && left.len() == text.len() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(format!("write after {}: {e}", i - 20)),
            }
        }
        sent.store(i, Ordering::Release);
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// How many lines `1\n..N\n` `path` holds, checked to be exactly those.
fn numbered_lines(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut n = 0u64;
    for line in text.split_terminator('\n') {
        if line.parse::<u64>().ok() != Some(n + 1) {
            return Err(format!("line {}: {line:?}", n + 1));
        }
        n += 1;
    }
    Ok(n)
}

fn netcat(test: &str, v6: bool) {
    if cannot_run(
        test,
        &[
            ("nc", &["-h"], "netcat-openbsd"),
            ("seq", &["1"], "coreutils"),
        ],
    ) {
        return;
    }
    let help = Command::new("nc").arg("-h").output().unwrap();
    if !String::from_utf8_lossy(&help.stderr).contains("OpenBSD netcat") {
        return skip(
            test,
            "this nc is not OpenBSD's (Debian's netcat-openbsd package)",
        );
    }
    become_subreaper();
    let dir = TempDir::new(test);
    let port = free_port(lo(v6));
    let family = if v6 { "-6" } else { "-4" };
    let script = format!("seq 1 1000000000 | nc {family} -l {} {port} > got", lo(v6));
    let mut child = common::spawn_in(dir.path(), &["bash", "-c", &script], false);
    let root = child.id() as i32;
    let mut kill = KillOnDrop(vec![root]);
    let mut peer = None;
    assert!(
        wait_until(TIMEOUT, || {
            peer = TcpStream::connect((lo(v6), port)).ok();
            peer.is_some()
        }),
        "nc does not listen on {port}: {}",
        std::fs::read_to_string(dir.join("out")).unwrap_or_default()
    );
    let peer = peer.unwrap();
    kill.0 = tree_pids(root);
    assert_eq!(kill.0.len(), 3, "bash, seq and nc: {:?}", kill.0);
    let (seen, sent) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop_reading = Arc::new(AtomicBool::new(false));
    let stop_writing = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s, seen, stop) = (
            peer.try_clone().unwrap(),
            seen.clone(),
            stop_reading.clone(),
        );
        std::thread::spawn(move || read_numbers(s, seen, stop))
    };
    let writer = {
        let (s, sent, stop) = (
            peer.try_clone().unwrap(),
            sent.clone(),
            stop_writing.clone(),
        );
        std::thread::spawn(move || write_numbers(s, sent, stop))
    };
    let got = dir.join("got");
    let lines = || numbered_lines(&got).unwrap_or(0);
    assert!(
        wait_until(TIMEOUT, || seen.load(Ordering::Acquire) > 20_000
            && lines() > 2_000),
        "the stream did not start: {} read, {} written by nc",
        seen.load(Ordering::Acquire),
        lines()
    );
    checkpoint(&mut child, dir.path(), &[port], || {
        std::thread::sleep(Duration::from_millis(300));
    });
    let (read_at, sent_at) = (seen.load(Ordering::Acquire), sent.load(Ordering::Acquire));
    let went_on = wait_until(TIMEOUT, || {
        reader.is_finished()
            || writer.is_finished()
            || seen.load(Ordering::Acquire) > read_at + 20_000 && lines() > sent_at + 2_000
    });
    // A peer thread that stopped says why (a number out of order, a reset).
    if reader.is_finished() || writer.is_finished() {
        // The other one may still be running: stop it, or the join waits
        // for ever and the failure is never reported.
        stop_reading.store(true, Ordering::Release);
        stop_writing.store(true, Ordering::Release);
        let (r, w) = (reader.join().unwrap(), writer.join().unwrap());
        panic!("the peer stopped after the restore: reading {r:?}, writing {w:?}");
    }
    assert!(
        went_on,
        "the stream did not go on: {} read ({read_at} at the restore), nc wrote {} \
         ({sent_at} sent at the restore)",
        seen.load(Ordering::Acquire),
        lines()
    );
    stop_writing.store(true, Ordering::Release);
    writer.join().unwrap().expect("the writer");
    let last = sent.load(Ordering::Acquire);
    assert!(
        wait_until(TIMEOUT, || lines() == last),
        "nc wrote {:?} of the {last} lines sent",
        numbered_lines(&got)
    );
    stop_reading.store(true, Ordering::Release);
    reader.join().unwrap().expect("the reader");
}

#[test]
fn netcat_streams_both_ways_through_the_checkpoint() {
    netcat("foreign-tcp-nc4", false);
}

#[test]
fn netcat_over_ipv6_streams_both_ways_through_the_checkpoint() {
    netcat("foreign-tcp-nc6", true);
}

/// A terminal end of ours: reads what arrives until `want` is in it.
struct Term {
    fd: std::os::fd::OwnedFd,
    seen: String,
}

impl Term {
    fn open(path: &Path) -> Term {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Term {
            fd,
            seen: String::new(),
        }
    }

    fn type_line(&self, line: &str) {
        let text = format!("{line}\r");
        let mut left = text.as_bytes();
        while !left.is_empty() {
            match rustix::io::write(&self.fd, left) {
                Ok(n) => left = &left[n..],
                Err(rustix::io::Errno::AGAIN) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("typing {line:?}: {e}"),
            }
        }
    }

    /// Waits for `want` in what arrived after the last call's match.
    fn expect(&mut self, want: &str) {
        let end = Instant::now() + TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = self.seen.find(want) {
                self.seen.drain(..at + want.len());
                return;
            }
            assert!(
                Instant::now() < end,
                "{want:?} did not arrive; the terminal shows {:?}",
                self.seen
            );
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(rustix::io::Errno::AGAIN) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("reading the terminal: {e}"),
            }
        }
    }
}

/// Pty indices are global and a restored pty needs its own index back:
/// the two socat tests (each makes ptys) run one at a time, or one's new
/// pty may take the index the other's restore needs ("index 3 is in use").
static PTYS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn socat_pair(test: &str, v6: bool) {
    let _ptys = PTYS.lock().unwrap_or_else(|e| e.into_inner());
    if cannot_run(
        test,
        &[
            ("socat", &["-V"], "socat"),
            ("bash", &["-c", "true"], "bash"),
        ],
    ) {
        return;
    }
    become_subreaper();
    let dir = TempDir::new(test);
    let port = free_port(lo(v6));
    // The remote side (dumped): a listener that runs an interactive bash
    // on a pty of its own (new session, the pty its terminal), as sshd.
    let listen = if v6 {
        format!("TCP6-LISTEN:{port},bind=[::1],reuseaddr")
    } else {
        format!("TCP4-LISTEN:{port},bind=127.0.0.1,reuseaddr")
    };
    let shell = "EXEC:bash --norc --noprofile -i,pty,setsid,ctty,stderr,sane";
    let mut child = common::spawn_in(dir.path(), &["socat", &listen, shell], false);
    let root = child.id() as i32;
    let mut kill = KillOnDrop(vec![root]);
    assert!(
        wait_until(TIMEOUT, || tcp_listening(v6, port)),
        "socat does not listen on {port}"
    );
    // The local side (outside the tree): a pty of ours whose other end
    // socat connects to the listener.
    let term = dir.join("term");
    let connect = if v6 {
        format!("TCP6:[::1]:{port}")
    } else {
        format!("TCP4:127.0.0.1:{port}")
    };
    let link = format!("PTY,link={},raw,echo=0", term.display());
    let _local = Peer(
        Command::new("socat")
            .args([link.as_str(), connect.as_str()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the local socat"),
    );
    assert!(wait_until(TIMEOUT, || term.exists()), "no local pty");
    let mut t = Term::open(&term);
    t.type_line("x=typed-before; echo one $((20+22))");
    t.expect("one 42");
    assert!(
        wait_until(TIMEOUT, || tree_pids(root).len() == 2),
        "socat and bash: {:?}",
        tree_pids(root)
    );
    kill.0 = tree_pids(root);
    // bash back at its prompt, waiting for a line.
    std::thread::sleep(Duration::from_millis(300));
    checkpoint(&mut child, dir.path(), &[port], || {
        t.type_line("echo gap $((1+1))");
        std::thread::sleep(Duration::from_millis(300));
    });
    t.expect("gap 2");
    t.type_line("echo after $x $((40+2))");
    t.expect("after typed-before 42");
}

#[test]
fn socat_terminal_pair_types_on_after_restore() {
    socat_pair("foreign-tcp-socat4", false);
}

#[test]
fn socat_terminal_pair_over_ipv6_types_on_after_restore() {
    socat_pair("foreign-tcp-socat6", true);
}
