//! A session leader's controlling terminal that no fd of the leader
//! holds, and the owner of a pty's slave:
//!
//! - `master` (default): the leader opens a pty, takes the slave as its
//!   controlling terminal (`TIOCSCTTY` on a slave opened `O_NOCTTY`),
//!   changes the slave's owner to 1234:5 (`fchown`, as `grantpt` would for
//!   a user), then closes the slave: only the master stays open;
//! - `child`: the same, but a child (in the session) keeps the slave open
//!   and the leader keeps only the master.
//!
//! After restore the leader's controlling terminal must be that pty's
//! slave again (`/proc/self/stat` tty_nr, `TIOCGSID` on the master, and
//! `/dev/tty` opens to it), and the slave must still be owned by 1234:5.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use linux_raw_sys::ioctl as io;
use rustix::fs::{Mode, OFlags};

const OWNER: (u32, u32) = (1234, 5);

fn ioctl(fd: &OwnedFd, req: u32, arg: usize, what: &str) -> Result<usize, String> {
    // SAFETY: `arg` is an integer or points to a live int (see callers).
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_raw_fd() as usize,
            req as usize,
            arg,
        )
    };
    zdtm::errno(r, what)
}

fn get_int(fd: &OwnedFd, req: u32, what: &str) -> Result<i32, String> {
    let mut v: i32 = 0;
    ioctl(fd, req, &mut v as *mut i32 as usize, what)?;
    Ok(v)
}

fn open(path: &str, flags: OFlags) -> Result<OwnedFd, String> {
    rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("open {path}: {e}"))
}

/// `tty_nr` of `/proc/self/stat`.
fn tty_nr() -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    let after = text.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    // state ppid pgrp session tty_nr
    after
        .split_whitespace()
        .nth(4)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("bad stat {text:?}"))
}

struct State {
    master: OwnedFd,
    path: String,
    rdev: u64,
    child: Option<i32>,
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let in_child = args.rest.iter().any(|a| a == "child");
    let master = open("/dev/ptmx", OFlags::RDWR | OFlags::NOCTTY)?;
    ioctl(
        &master,
        io::TIOCSPTLCK,
        &0i32 as *const i32 as usize,
        "unlock",
    )?;
    let index = get_int(&master, io::TIOCGPTN, "TIOCGPTN")?;
    let path = format!("/dev/pts/{index}");
    let slave = open(&path, OFlags::RDWR | OFlags::NOCTTY)?;
    ioctl(&slave, io::TIOCSCTTY, 0, "TIOCSCTTY")?;
    rustix::fs::fchown(
        &slave,
        Some(rustix::fs::Uid::from_raw(OWNER.0)),
        Some(rustix::fs::Gid::from_raw(OWNER.1)),
    )
    .map_err(|e| format!("fchown {path}: {e}"))?;
    let rdev = std::fs::metadata(&path).map_err(|e| e.to_string())?.rdev();
    let child = if in_child {
        // SAFETY: the child only sleeps with the slave open.
        match unsafe { zdtm::raw_fork(0) } {
            0 => loop {
                let _keep = &slave;
                std::thread::sleep(Duration::from_secs(1));
            },
            pid if pid > 0 => Some(pid as i32),
            e => return Err(format!("fork: errno {}", -e)),
        }
    } else {
        None
    };
    drop(slave);
    let s = State {
        master,
        path,
        rdev,
        child,
    };
    verify(&s, "setup")?;
    Ok(s)
}

fn verify(s: &State, when: &str) -> Result<(), String> {
    let nr = tty_nr()?;
    zdtm::ensure(nr == s.rdev, || {
        format!("{when}: tty_nr {nr:#x}, want {:#x} ({})", s.rdev, s.path)
    })?;
    let sid = get_int(&s.master, io::TIOCGSID, "TIOCGSID")?;
    let me = std::process::id() as i32;
    zdtm::ensure(sid == me, || {
        format!("{when}: {} belongs to session {sid}, want {me}", s.path)
    })?;
    // /dev/tty opens only for a task with a controlling terminal;
    // TIOCGDEV names the terminal behind it (encoded as st_rdev is).
    let tty = open("/dev/tty", OFlags::RDWR | OFlags::NOCTTY)?;
    let got = u64::from(get_int(&tty, io::TIOCGDEV, "TIOCGDEV")? as u32);
    zdtm::ensure(got == s.rdev, || {
        format!("{when}: /dev/tty is {got:#x}, want {:#x}", s.rdev)
    })?;
    let meta = std::fs::metadata(&s.path).map_err(|e| format!("{}: {e}", s.path))?;
    zdtm::ensure((meta.uid(), meta.gid()) == OWNER, || {
        format!(
            "{when}: {} owned by {}:{}, want {}:{}",
            s.path,
            meta.uid(),
            meta.gid(),
            OWNER.0,
            OWNER.1
        )
    })
}

fn check(s: State) -> Result<(), String> {
    let r = verify(&s, "after restore");
    if let Some(pid) = s.child {
        // SAFETY: integer arguments only.
        unsafe { criu_arch::syscall2(criu_arch::nr::KILL, pid as usize, 9) };
    }
    // Closing the master hangs the terminal up, and SIGHUP would end us
    // (the session's controlling process) before the verdict is written.
    std::mem::forget(s.master);
    r
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
