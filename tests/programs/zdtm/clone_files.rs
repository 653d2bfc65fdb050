//! Processes that share an fd table or cwd/root/umask without being
//! threads of one process (`PROGRAM DIR MODE`).
//!
//! Mode `share`: the root (cwd `DIR`, holding fd X on `DIR/inherited`)
//! makes child C1 with `clone(CLONE_FILES | CLONE_FS)`; C1 makes G with
//! `clone(CLONE_FILES)` (one fd table for three processes, one fs struct
//! for two); the root then forks C2, which shares nothing. After restore:
//! - the root opens fd N and moves to `DIR/sub`;
//! - C1 sees fd N and the new cwd, opens fd M and, once G is done,
//!   closes X;
//! - G sees fd N but keeps cwd `DIR` (its fs struct is its own);
//! - C2 sees neither N nor the new cwd, and still has X once C1 closed it;
//! - the root, last, finds X closed and M open on `DIR/from-c1`.
//!
//! Mode `sibling`: the root forks C2, which makes C4 with
//! `clone(CLONE_FILES | CLONE_PARENT)`: C4 is the root's child sharing the
//! table of its sibling C2, which no fork can make again: a dump must
//! refuse the tree, naming both, and leave it running (C2 writes C4's
//! PID to `DIR/c4`).
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criu_arch::nr;
use zdtm::ensure;

const CLONE_FS: usize = 0x200;
const CLONE_FILES: usize = 0x400;
const CLONE_PARENT: usize = 0x8000;
const F_GETFD: usize = 1;
const EBADF: isize = 9;
const WAIT: Duration = Duration::from_secs(60);

/// clone without CLONE_VM (the child runs on a copy) with `flags` added.
fn clone(flags: usize) -> Result<i32, String> {
    // SAFETY: this program is single-threaded: the child may do anything.
    unsafe { zdtm::fork(flags) }
}

/// `fcntl(fd, F_GETFD)`: whether `fd` is open in this process's table.
fn is_open(fd: i32) -> Result<bool, String> {
    // SAFETY: F_GETFD reads a flag of an fd number; nothing is changed.
    let ret = unsafe { criu_arch::syscall2(nr::FCNTL, fd as usize, F_GETFD) };
    match ret {
        r if r >= 0 => Ok(true),
        r if r == -EBADF => Ok(false),
        r => Err(format!("fcntl({fd}, F_GETFD): errno {}", -r)),
    }
}

fn close(fd: i32) -> Result<(), String> {
    // SAFETY: closes an fd this program opened and owns by number only.
    let ret = unsafe { criu_arch::syscall1(nr::CLOSE, fd as usize) };
    zdtm::errno(ret, &format!("close({fd})")).map(drop)
}

/// Open `path` and keep the fd (by number: tasks sharing the table close
/// it for one another, so no Rust object may own it).
fn open_raw(path: &Path) -> Result<i32, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(|f| f.into_raw_fd())
        .map_err(|e| format!("open {}: {e}", path.display()))
}

fn cwd() -> Result<PathBuf, String> {
    std::env::current_dir().map_err(|e| format!("getcwd: {e}"))
}

/// Wait for `DIR/name` and return its contents.
fn wait_file(dir: &Path, name: &str) -> Result<String, String> {
    let path = dir.join(name);
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(&path) {
            return Ok(s);
        }
        ensure(start.elapsed() < WAIT, || format!("no {name}"))?;
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn fd_in(dir: &Path, name: &str) -> Result<i32, String> {
    let s = wait_file(dir, name)?;
    s.trim().parse().map_err(|e| format!("{name}: {s:?}: {e}"))
}

fn exit(code: usize) -> ! {
    // SAFETY: ends this (forked) process only.
    unsafe { criu_arch::syscall1(nr::EXIT_GROUP, code) };
    unreachable!("exit_group returned")
}

/// Run `body` in a child just made: exit 0, or 1 with the reason in
/// `DIR/fail-WHO`.
fn child_body(dir: &Path, who: &str, body: impl FnOnce() -> Result<(), String>) -> ! {
    let code = match body() {
        Ok(()) => 0,
        Err(e) => {
            let _ = zdtm::write_atomic(&dir.join(format!("fail-{who}")), &e);
            1
        }
    };
    exit(code)
}

/// Reap child `pid` named `who`, turning its failure into its reason.
fn reap_ok(dir: &Path, pid: i32, who: &str) -> Result<(), String> {
    let st = zdtm::wait_status(pid, 0)?;
    if st == 0 {
        return Ok(());
    }
    let why = std::fs::read_to_string(dir.join(format!("fail-{who}")))
        .unwrap_or_else(|_| format!("wait status {st:#x}"));
    Err(format!("{who} ({pid}): {why}"))
}

fn c1(dir: &Path, x: i32) -> Result<(), String> {
    let d = dir.to_path_buf();
    let g = clone(CLONE_FILES)?;
    if g == 0 {
        child_body(dir, "G", || {
            zdtm::write_atomic(&d.join("g-ready"), "1")?;
            let n = fd_in(&d, "opened")?;
            wait_file(&d, "moved")?;
            ensure(is_open(n)?, || {
                format!("G does not see fd {n} the root opened (no shared table)")
            })?;
            let now = cwd()?;
            ensure(now == d, || {
                format!(
                    "G's cwd is {}, want {} (its own fs)",
                    now.display(),
                    d.display()
                )
            })
        });
    }
    wait_file(dir, "g-ready")?;
    zdtm::write_atomic(&dir.join("c1-ready"), "1")?;
    let n = fd_in(dir, "opened")?;
    wait_file(dir, "moved")?;
    ensure(is_open(n)?, || {
        format!("C1 does not see fd {n} the root opened (no shared table)")
    })?;
    let now = cwd()?;
    let want = dir.join("sub");
    ensure(now == want, || {
        format!(
            "C1's cwd is {}, want {} (shared with the root)",
            now.display(),
            want.display()
        )
    })?;
    let m = open_raw(&dir.join("from-c1"))?;
    zdtm::write_atomic(&dir.join("c1-opened"), &m.to_string())?;
    reap_ok(dir, g, "G")?;
    close(x)?;
    zdtm::write_atomic(&dir.join("c1-closed"), "1")
}

fn c2(dir: &Path, x: i32) -> Result<(), String> {
    zdtm::write_atomic(&dir.join("c2-ready"), "1")?;
    let n = fd_in(dir, "opened")?;
    wait_file(dir, "c1-closed")?;
    ensure(!is_open(n)?, || {
        format!("C2 sees fd {n} the root opened after restore (its table is its own)")
    })?;
    ensure(is_open(x)?, || {
        format!("C2 lost fd {x} when C1 closed it (its table is its own)")
    })?;
    let now = cwd()?;
    ensure(now == dir, || {
        format!("C2's cwd is {}, want {}", now.display(), dir.display())
    })
}

enum State {
    Share {
        dir: PathBuf,
        x: i32,
        c1: i32,
        c2: i32,
    },
    Sibling {
        dir: PathBuf,
        c2: i32,
        c4: i32,
    },
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    // Canonical: it is compared with getcwd.
    let dir = args
        .dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", args.dir.display()))?;
    std::env::set_current_dir(&dir).map_err(|e| format!("chdir: {e}"))?;
    match args.rest.first().map(String::as_str) {
        Some("share") => {
            let x = open_raw(&dir.join("inherited"))?;
            let c1_pid = clone(CLONE_FILES | CLONE_FS)?;
            if c1_pid == 0 {
                child_body(&dir, "C1", || c1(&dir, x));
            }
            wait_file(&dir, "c1-ready")?;
            let c2_pid = clone(0)?;
            if c2_pid == 0 {
                child_body(&dir, "C2", || c2(&dir, x));
            }
            wait_file(&dir, "c2-ready")?;
            Ok(State::Share {
                dir,
                x,
                c1: c1_pid,
                c2: c2_pid,
            })
        }
        Some("sibling") => {
            let c2_pid = clone(0)?;
            if c2_pid == 0 {
                let d = dir.clone();
                child_body(&dir, "C2", || {
                    let c4 = clone(CLONE_FILES | CLONE_PARENT)?;
                    if c4 == 0 {
                        child_body(&d, "C4", || wait_file(&d, "go").map(drop));
                    }
                    zdtm::write_atomic(&d.join("c4"), &c4.to_string())?;
                    wait_file(&d, "go").map(drop)
                });
            }
            let c4 = fd_in(&dir, "c4")?;
            Ok(State::Sibling {
                dir,
                c2: c2_pid,
                c4,
            })
        }
        other => Err(format!("unknown mode {other:?}")),
    }
}

fn check(s: State) -> Result<(), String> {
    match s {
        State::Share { dir, x, c1, c2 } => {
            let n = open_raw(&dir.join("after"))?;
            zdtm::write_atomic(&dir.join("opened"), &n.to_string())?;
            std::fs::create_dir(dir.join("sub")).map_err(|e| format!("mkdir: {e}"))?;
            std::env::set_current_dir(dir.join("sub")).map_err(|e| format!("chdir: {e}"))?;
            zdtm::write_atomic(&dir.join("moved"), "1")?;
            reap_ok(&dir, c1, "C1")?;
            reap_ok(&dir, c2, "C2")?;
            ensure(!is_open(x)?, || {
                format!("fd {x}, closed by C1, is still open in the root (no shared table)")
            })?;
            let m = fd_in(&dir, "c1-opened")?;
            let target = std::fs::read_link(format!("/proc/self/fd/{m}"))
                .map_err(|e| format!("fd {m} C1 opened is not open in the root: {e}"))?;
            ensure(target == dir.join("from-c1"), || {
                format!("fd {m} is {}, want C1's from-c1", target.display())
            })
        }
        State::Sibling { dir, c2, c4 } => {
            reap_ok(&dir, c2, "C2")?;
            reap_ok(&dir, c4, "C4")
        }
    }
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
