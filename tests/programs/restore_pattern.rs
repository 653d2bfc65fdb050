//! A task for the restore tests: holds memory patterns (dense heap, sparse
//! anonymous mapping with holes, a counter in a static), reports ready, then
//! polls for `DIR/go` while counting. On `go` it checks that the patterns
//! survived, that its PID is the one it started with and that its sparse
//! mapping's holes are still holes, that `DIR/data` is still open at the
//! same fd with its offset and close-on-exec flag, and that its cwd (DIR)
//! and umask (027) are back, then writes `PASS` or `FAIL: reason` to
//! `DIR/result`.
//!
//! With a second argument `nobody`, it drops to uid/gid 65534 with no
//! supplementary groups before reporting ready, and checks them at the end.
//!
//! Usage: `restore_pattern DIR [nobody]` (DIR absolute, writable by 65534
//! with `nobody`).

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const DENSE_LEN: usize = 4 << 20;
const SPARSE_PAGES: usize = 256;
const SPARSE_STRIDE: usize = 16;
const DATA_POS: u64 = 1234;
const NOBODY: u32 = 65534;
const COUNTER_START: u64 = 0x5eed_0000_0000;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn byte_at(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: restore_pattern DIR"));
    let _ = rustix::process::setsid();
    // SAFETY: close_range(3, ~0, 0) closes only fds inherited from the test
    // runner (this program has opened none yet), so a dump sees ours only.
    unsafe { criu_arch::syscall3(criu_arch::nr::CLOSE_RANGE, 3, u32::MAX as usize, 0) };
    let pid = std::process::id();
    let dense: Vec<u8> = (0..DENSE_LEN).map(byte_at).collect();
    let page = rustix::param::page_size();
    // A sparse anonymous mapping: a Vec of zeroed pages the allocator gets
    // with mmap (large), touched on every SPARSE_STRIDE-th page only.
    let mut sparse = vec![0u8; SPARSE_PAGES * page];
    for p in (0..SPARSE_PAGES).step_by(SPARSE_STRIDE) {
        sparse[p * page] = (p as u8) | 1;
    }
    std::fs::write(dir.join("data"), vec![7u8; 8192]).expect("data");
    let mut data = File::options()
        .read(true)
        .write(true)
        .open(dir.join("data"))
        .expect("open data");
    data.seek(SeekFrom::Start(DATA_POS)).expect("seek");
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
    std::env::set_current_dir(&dir).expect("chdir");
    let nobody = std::env::args().nth(2).as_deref() == Some("nobody");
    if nobody {
        use rustix::process::{Gid, Uid};
        use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
        let (g, u) = (Gid::from_raw(NOBODY), Uid::from_raw(NOBODY));
        set_thread_groups(&[]).expect("setgroups");
        set_thread_res_gid(g, g, g).expect("setresgid");
        set_thread_res_uid(u, u, u).expect("setresuid");
    }
    // The counter holds a known value before `ready`: a test may stop this
    // task the moment it sees `ready`, before the loop counts once, and
    // write `go` as soon as it resumes, so the loop need not run at all.
    COUNTER.store(COUNTER_START, Ordering::Relaxed);
    std::fs::write(dir.join("ready"), pid.to_string()).expect("ready");
    while !dir.join("go").exists() {
        COUNTER.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut verdict = check(&dense, &sparse, page, pid);
    if verdict == "PASS" {
        verdict = check_files(&dir, &mut data);
    }
    if verdict == "PASS" && nobody {
        verdict = check_nobody();
    }
    std::fs::write(dir.join("result"), verdict).expect("result");
}

fn check(dense: &[u8], sparse: &[u8], page: usize, pid: u32) -> String {
    if std::process::id() != pid {
        return format!("FAIL: pid {} != {pid}", std::process::id());
    }
    if let Some(i) = (0..DENSE_LEN).find(|&i| dense[i] != byte_at(i)) {
        return format!("FAIL: dense byte {i}");
    }
    for p in 0..SPARSE_PAGES {
        let want = if p % SPARSE_STRIDE == 0 {
            (p as u8) | 1
        } else {
            0
        };
        if sparse[p * page] != want {
            return format!("FAIL: sparse page {p}");
        }
    }
    if COUNTER.load(Ordering::Relaxed) < COUNTER_START {
        return "FAIL: counter lost".into();
    }
    "PASS".into()
}

fn check_files(dir: &Path, data: &mut File) -> String {
    let fd = data.as_raw_fd();
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
    if target != dir.join("data") {
        return format!("FAIL: fd {fd} is {}", target.display());
    }
    match data.stream_position() {
        Ok(DATA_POS) => {}
        other => return format!("FAIL: data offset {other:?}"),
    }
    // std opens files close-on-exec.
    match rustix::io::fcntl_getfd(&*data) {
        Ok(f) if f.contains(rustix::io::FdFlags::CLOEXEC) => {}
        other => return format!("FAIL: data fd flags {other:?}"),
    }
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
    if old.as_raw_mode() != 0o027 {
        return format!("FAIL: umask {:o}", old.as_raw_mode());
    }
    match std::env::current_dir() {
        Ok(cwd) if cwd == dir => {}
        other => return format!("FAIL: cwd {other:?}"),
    }
    "PASS".into()
}

fn check_nobody() -> String {
    let ids = (
        rustix::process::getuid().as_raw(),
        rustix::process::geteuid().as_raw(),
        rustix::process::getgid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    if ids != (NOBODY, NOBODY, NOBODY, NOBODY) {
        return format!("FAIL: ids {ids:?}");
    }
    // Root's capabilities went with the uid change; none may come back.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match status.lines().find(|l| l.starts_with("CapEff:")) {
        Some(l) if l.ends_with("0000000000000000") => {}
        other => return format!("FAIL: {other:?}"),
    }
    match rustix::process::getgroups() {
        Ok(g) if g.is_empty() => "PASS".into(),
        other => format!("FAIL: groups {other:?}"),
    }
}
