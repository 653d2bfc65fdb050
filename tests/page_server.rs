//! `criu page-server` and `criu dump --page-server`: the pages of a dump
//! sent over TCP to a page server that writes them as images, with CRIU's
//! wire protocol, so that either side can be CRIU 4.1.1 (the peer). Each
//! way ends with a restore from those images and the program checking its
//! own memory. Then what a page server does with a sender that misbehaves
//! (malformed or oversized messages, a disconnect in the middle), and what
//! a dump does when its page server goes away (it fails; the tree runs on
//! with its memory as it was).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::peer::Peer;
use common::skip;
use common::zdtm::{TIMEOUT, Zdtm};

/// Which tool runs the page server, which dumps, which restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Ours,
    Criu,
}

/// A page server running in the background.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: &'static str,
}

impl Server {
    /// Our `criu page-server` on 127.0.0.1, a port of the kernel's choice
    /// (no `--port`), ready once `--status-fd` says so; the port read
    /// from its log ("Using N port", as CRIU logs it).
    fn ours(dir: &Path, extra: &[&str]) -> Server {
        let (rd, wr) = rustix::pipe::pipe().unwrap();
        let fd = wr.as_raw_fd().to_string();
        let listen: &[&str] = if extra.contains(&"--ps-socket") {
            &[]
        } else {
            &["--address", "127.0.0.1"]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_criu"))
            .args(["page-server", "-D"])
            .arg(dir)
            .args(listen)
            .args(["--status-fd", &fd])
            .args(["-v4", "-o", "ps.log"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(wr);
        let mut b = [9u8; 1];
        let n = rustix::io::read(&rd, &mut b).unwrap();
        assert_eq!((n, b[0]), (1, 0), "status fd");
        let log = std::fs::read_to_string(dir.join("ps.log")).unwrap();
        let port = if listen.is_empty() {
            0
        } else {
            log.lines()
                .find_map(|l| {
                    l.split("Using ")
                        .nth(1)?
                        .strip_suffix(" port")?
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no chosen port in the log: {log}"))
        };
        Server {
            child,
            port,
            dir: dir.to_owned(),
            log: "ps.log",
        }
    }

    /// CRIU 4.1.1's page server on a free port of 127.0.0.1.
    fn criu(peer: &Peer, dir: &Path) -> Server {
        let port = free_port();
        let child = Command::new(peer.dir.join("criu"))
            .args(["page-server", "-D"])
            .arg(dir)
            .args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .args(["-v4", "-o", "peer-ps.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Ready once it accepts (the connection it accepts is the only
        // one it serves, so probe by the log instead).
        let ready = common::wait_until(TIMEOUT, || {
            std::fs::read_to_string(dir.join("peer-ps.log"))
                .is_ok_and(|l| l.contains("Starting page server"))
        });
        assert!(ready, "CRIU's page server did not start");
        std::thread::sleep(Duration::from_millis(200));
        Server {
            child,
            port,
            dir: dir.to_owned(),
            log: "peer-ps.log",
        }
    }

    /// Its exit status (it serves one sender) and log.
    fn wait(mut self) -> (bool, String) {
        let mut status = None;
        common::wait_until(TIMEOUT, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(!err.contains("panicked"), "page server panicked: {err}");
        let log = std::fs::read_to_string(self.dir.join(self.log)).unwrap_or_default();
        (status.is_some_and(|s| s.success()), log)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn peer_or_skip(test: &str) -> Option<Peer> {
    match Peer::find() {
        Ok(p) => Some(p),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// Start `program`, run a page server (`server`) on the images dir, dump
/// there with `dumper` and `--page-server`, restore with `restorer`; the
/// program's verdict.
fn migrate(
    test: &str,
    program: &str,
    server: Tool,
    dumper: Tool,
    restorer: Tool,
) -> Option<String> {
    let peer = if [server, dumper, restorer].contains(&Tool::Criu) {
        Some(peer_or_skip(test)?)
    } else {
        None
    };
    let mut z = Zdtm::start(test, program, &[])?;
    let images = z.images().to_owned();
    let ps = match server {
        Tool::Ours => Server::ours(&images, &[]),
        Tool::Criu => Server::criu(peer.as_ref().unwrap(), &images),
    };
    let port = ps.port.to_string();
    let pid = z.pid().to_string();
    let args = [
        "dump",
        "-t",
        &pid,
        "--page-server",
        "--address",
        "127.0.0.1",
        "--port",
        &port,
    ];
    let (ok, log) = match dumper {
        Tool::Ours => z.criu_in(&images, &args),
        Tool::Criu => peer.as_ref().unwrap().criu(&images, &args),
    };
    let (served, ps_log) = ps.wait();
    assert!(
        ok,
        "{dumper:?} dump into {server:?}'s page server failed: {log}\n{ps_log}"
    );
    assert!(served, "{server:?}'s page server failed: {ps_log}");
    z.wait_gone();
    // The pages are the page server's: none written by the dump itself.
    let names: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let pid_pages = format!("pagemap-{pid}.img");
    assert!(names.contains(&pid_pages), "{names:?}");
    assert!(
        names.iter().filter(|n| n.starts_with("pages-")).all(|n| n
            .trim_start_matches("pages-")
            .trim_end_matches(".img")
            .parse::<u32>()
            .unwrap()
            >= 0x10001),
        "pages images not from the page server: {names:?}"
    );
    match restorer {
        Tool::Ours => z.restore(&[]),
        Tool::Criu => {
            let (ok, log) = peer
                .as_ref()
                .unwrap()
                .criu(&images, &["restore", "-d", "--pidfile", "restored.pid"]);
            assert!(ok, "CRIU's restore failed: {log}");
            z.restored_elsewhere();
        }
    }
    Some(z.go())
}

#[test]
fn ours_to_ours_private_memory() {
    let t = "ours_to_ours_private_memory";
    if let Some(v) = migrate(t, "zdtm_anon_dense", Tool::Ours, Tool::Ours, Tool::Ours) {
        assert_eq!(v, "PASS");
    }
}

#[test]
fn ours_to_ours_shared_memory() {
    let t = "ours_to_ours_shared_memory";
    if let Some(v) = migrate(t, "zdtm_shared_anon", Tool::Ours, Tool::Ours, Tool::Ours) {
        assert_eq!(v, "PASS");
    }
}

#[test]
fn criu_dumps_into_our_page_server_and_we_restore() {
    let t = "criu_dumps_into_our_page_server_and_we_restore";
    if let Some(v) = migrate(t, "zdtm_anon_dense", Tool::Ours, Tool::Criu, Tool::Ours) {
        assert_eq!(v, "PASS");
    }
}

#[test]
fn criu_restores_what_our_page_server_received() {
    let t = "criu_restores_what_our_page_server_received";
    if let Some(v) = migrate(t, "zdtm_anon_dense", Tool::Ours, Tool::Criu, Tool::Criu) {
        assert_eq!(v, "PASS");
    }
}

#[test]
fn we_dump_into_criu_page_server() {
    let t = "we_dump_into_criu_page_server";
    if let Some(v) = migrate(t, "zdtm_anon_dense", Tool::Criu, Tool::Ours, Tool::Ours) {
        assert_eq!(v, "PASS");
    }
    let t = "we_dump_into_criu_page_server_and_criu_restores";
    if let Some(v) = migrate(t, "zdtm_anon_dense", Tool::Criu, Tool::Ours, Tool::Criu) {
        assert_eq!(v, "PASS");
    }
    // Shared memory's pagemap goes through the page server too. (Restored
    // by us: CRIU 4.1.1 restores shared anonymous memory as a memfd, a
    // loss of its own that tests/crossover.rs pins down.)
    let t = "we_dump_shared_memory_into_criu_page_server";
    if let Some(v) = migrate(t, "zdtm_shared_anon", Tool::Criu, Tool::Ours, Tool::Ours) {
        assert_eq!(v, "PASS");
    }
}

/// Both sides on sockets they inherit (`--ps-socket`): the dump ends
/// with `PS_IOV_FLUSH_N_CLOSE`, so the server stops without waiting for
/// the socket to close (someone else holds it).
#[test]
fn dump_and_page_server_over_inherited_sockets() {
    let t = "dump_and_page_server_over_inherited_sockets";
    let Some(mut z) = Zdtm::start(t, "zdtm_anon_dense", &[]) else {
        return;
    };
    let images = z.images().to_owned();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    let inheritable = |s: &TcpStream| {
        rustix::io::fcntl_setfd(s, rustix::io::FdFlags::empty()).unwrap();
        s.as_raw_fd().to_string()
    };
    let ps = Server::ours(&images, &["--ps-socket", &inheritable(&b)]);
    rustix::io::fcntl_setfd(&b, rustix::io::FdFlags::CLOEXEC).unwrap();
    let pid = z.pid().to_string();
    let afd = inheritable(&a);
    let (ok, log) = z.criu_in(
        &images,
        &["dump", "-t", &pid, "--page-server", "--ps-socket", &afd],
    );
    let (served, ps_log) = ps.wait();
    assert!(ok, "dump failed: {log}");
    assert!(served, "page server failed: {ps_log}");
    assert!(log.contains("Re-using ps socket"), "{log}");
    drop((a, b));
    z.wait_gone();
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

/// `-d`: the command returns once the detached server listens, its pid
/// in `--pidfile`; that server takes the dump and exits.
#[test]
fn detached_page_server_writes_its_pidfile() {
    let t = "detached_page_server_writes_its_pidfile";
    let Some(mut z) = Zdtm::start(t, "zdtm_anon_dense", &[]) else {
        return;
    };
    let images = z.images().to_owned();
    let port = free_port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(["page-server", "-d", "--pidfile", "ps.pid", "-D"])
        .arg(&images)
        .args([
            "--address",
            "127.0.0.1",
            "--port",
            &port,
            "-v4",
            "-o",
            "ps.log",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ps_pid: i32 = std::fs::read_to_string(images.join("ps.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        common::proc_state(ps_pid).is_some(),
        "detached server not running"
    );
    let pid = z.pid().to_string();
    let args = [
        "dump",
        "-t",
        &pid,
        "--page-server",
        "--address",
        "127.0.0.1",
        "--port",
        &port,
    ];
    let (ok, log) = z.criu_in(&images, &args);
    assert!(ok, "dump failed: {log}");
    let gone = common::wait_until(TIMEOUT, || {
        common::proc_state(ps_pid).is_none_or(|s| s == 'Z')
    });
    common::reap(&[ps_pid]);
    assert!(gone, "the detached page server did not exit");
    z.wait_gone();
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

/// Send `bytes` to a fresh page server of ours, close; its log, after
/// checking that it failed without panicking.
fn serve_bad(test: &str, bytes: &[u8]) -> String {
    let dir = common::TempDir::new(test);
    let ps = Server::ours(dir.path(), &[]);
    let mut sk = TcpStream::connect(("127.0.0.1", ps.port)).unwrap();
    let _ = sk.write_all(bytes);
    let _ = sk.shutdown(std::net::Shutdown::Write);
    // Whatever it answers, read until it closes.
    let mut sink = Vec::new();
    let _ = sk.read_to_end(&mut sink);
    let (ok, log) = ps.wait();
    assert!(!ok, "the page server accepted {bytes:02x?}: {log}");
    log
}

fn iov(cmd: u32, nr: u32, vaddr: u64, dst: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&cmd.to_ne_bytes());
    b.extend_from_slice(&nr.to_ne_bytes());
    b.extend_from_slice(&vaddr.to_ne_bytes());
    b.extend_from_slice(&dst.to_ne_bytes());
    b
}

const OPEN2: u32 = 4;
const TASK_1: u64 = (1 << 8) | 1;
/// `PS_IOV_ADD_F` with `PE_PRESENT`.
const ADD_PRESENT: u32 = (4 << 16) | 6;

#[test]
fn page_server_refuses_unknown_commands_and_targets() {
    let log = serve_bad("ps_unknown_command", &iov(0x77, 0, 0, TASK_1));
    assert!(log.contains("unknown page server command 0x77"), "{log}");
    let log = serve_bad("ps_unknown_target", &iov(OPEN2, 0, 0, (1 << 8) | 9));
    assert!(log.contains("unknown pagemap type"), "{log}");
    let log = serve_bad(
        "ps_get",
        &[iov(OPEN2, 0, 0, TASK_1), iov(7, 1, 0x10000, TASK_1)].concat(),
    );
    assert!(log.contains("serves no lazy pages"), "{log}");
}

#[test]
fn page_server_refuses_bad_runs_and_flags() {
    let page = rustix::param::page_size() as u64;
    // A run wrapping past the end of the address space.
    let open = iov(OPEN2, 0, 0, TASK_1);
    let wrap = iov(ADD_PRESENT, u32::MAX, u64::MAX - page + 1, TASK_1);
    let log = serve_bad("ps_wrapping_run", &[open.clone(), wrap].concat());
    assert!(log.contains("bad run"), "{log}");
    let odd = iov(ADD_PRESENT, 1, 0x10001, TASK_1);
    let log = serve_bad("ps_unaligned_run", &[open.clone(), odd].concat());
    assert!(log.contains("bad run"), "{log}");
    let both = iov((5 << 16) | 6, 1, 0x10000, TASK_1);
    let log = serve_bad("ps_bad_flags", &[open, both].concat());
    assert!(log.contains("bad pagemap flags 0x5"), "{log}");
}

/// A sender that claims 16 TiB of pages and then goes away: the server
/// streams what comes (it allocates nothing for the claim) and fails
/// when the stream ends; likewise for a message cut short and a stream
/// that ends without `PS_IOV_FLUSH`.
#[test]
fn page_server_fails_cleanly_when_the_sender_goes_away() {
    let open = iov(OPEN2, 0, 0, TASK_1);
    let huge = iov(ADD_PRESENT, u32::MAX, 0x10000, TASK_1);
    let data = vec![0x5au8; 1 << 20];
    let dir = common::TempDir::new("ps_oversized_then_gone");
    let ps = Server::ours(dir.path(), &[]);
    let mut sk = TcpStream::connect(("127.0.0.1", ps.port)).unwrap();
    sk.write_all(&[open.clone(), huge, data].concat()).unwrap();
    // Everything sent has been written out before the peak is read.
    let pages = dir.join("pages-65537.img");
    let written = common::wait_until(TIMEOUT, || {
        std::fs::metadata(&pages).is_ok_and(|m| m.len() == 1 << 20)
    });
    assert!(written, "the pages that came were not written");
    let status = std::fs::read_to_string(format!("/proc/{}/status", ps.child.id())).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(hwm_kib < 64 << 10, "the page server grew to {hwm_kib} KiB");
    // Take OPEN2's answer, so that closing is an orderly end (not a reset).
    let mut has_parent = [9u8; 1];
    sk.read_exact(&mut has_parent).unwrap();
    assert_eq!(has_parent, [0]);
    drop(sk);
    let (ok, log) = ps.wait();
    assert!(!ok, "{log}");
    assert!(
        log.contains("went away in the middle of the pages of 0x10000"),
        "{log}"
    );
    let log = serve_bad("ps_cut_message", &iov(OPEN2, 0, 0, TASK_1)[..10]);
    assert!(
        log.contains("in the middle of a message (10 of 24 bytes)"),
        "{log}"
    );
    let page = rustix::param::page_size();
    let one = [open, iov(ADD_PRESENT, 1, 0x10000, TASK_1), vec![1u8; page]].concat();
    let log = serve_bad("ps_no_flush", &one);
    assert!(log.contains("before flushing"), "{log}");
}

/// A page server that answers the first pagemap, takes some pages, then
/// disconnects: the dump fails saying so, and the program runs on, not
/// traced, its memory as it was (it checks it).
#[test]
fn dump_fails_and_the_tree_runs_on_when_the_page_server_goes_away() {
    let t = "dump_fails_when_the_page_server_goes_away";
    let Some(z) = Zdtm::start(t, "zdtm_anon_dense", &[]) else {
        return;
    };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut hdr = [0u8; 24];
        c.read_exact(&mut hdr).unwrap();
        c.write_all(&[0]).unwrap();
        let mut buf = vec![0u8; 64 << 10];
        let _ = c.read_exact(&mut buf);
        // Dropping the connection unread makes the sender's next writes fail.
    });
    let images = z.images().to_owned();
    let pid = z.pid().to_string();
    let args = [
        "dump",
        "-t",
        &pid,
        "--page-server",
        "--address",
        "127.0.0.1",
        "--port",
        &port,
    ];
    let (ok, log) = z.criu_in(&images, &args);
    server.join().unwrap();
    assert!(!ok, "the dump did not fail: {log}");
    assert!(log.contains("page server"), "{log}");
    assert_eq!(common::tracer_pid(z.pid()), Some(0), "left traced: {log}");
    assert_eq!(z.go(), "PASS");
}

/// A dump whose page server cannot be reached fails before it touches
/// the tree.
#[test]
fn dump_refused_when_no_page_server_listens() {
    let t = "dump_refused_when_no_page_server_listens";
    let Some(z) = Zdtm::start(t, "zdtm_anon_dense", &[]) else {
        return;
    };
    let port = free_port().to_string();
    let args = ["--page-server", "--address", "127.0.0.1", "--port", &port];
    z.dump_refused(&args, "can't connect to the page server at 127.0.0.1");
    assert_eq!(z.go(), "PASS");
}

/// `-d` with a pidfile that cannot be written fails, and leaves no server
/// behind (as CRIU, which kills the one it started).
#[test]
fn detached_page_server_with_an_unwritable_pidfile_fails_and_leaves_none() {
    let dir = common::TempDir::new("ps_unwritable_pidfile");
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(["page-server", "-d", "--pidfile", "no/such/dir/ps.pid", "-D"])
        .arg(dir.path())
        .args(["--address", "127.0.0.1", "--port", &port.to_string()])
        .args(["-v4", "-o", "ps.log"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let log = std::fs::read_to_string(dir.join("ps.log")).unwrap();
    assert!(log.contains("Can't write pidfile"), "{log}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a page server still listens: {log}"
    );
}
