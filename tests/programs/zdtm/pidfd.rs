//! pidfds (`PROGRAM DIR [MODE]`). By default: a pidfd of this process,
//! a non-blocking pidfd of a child (kept open across exec: no
//! close-on-exec), a dup of it, and an epoll watching it. After restore
//! each names the same process again (fdinfo `Pid:`), keeps its flags,
//! the dup is the same open file, and when the child exits the epoll
//! reports it and `waitid(P_PIDFD)` reaps it with its status.
//!
//! Modes that the dump must refuse (the program then checks that it runs
//! on): `outside` (a pidfd of the parent, outside the dumped tree),
//! `dead` (of a child already reaped), `thread` (`PIDFD_THREAD`).
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use criu_arch::nr;
use zdtm::{ensure, errno};

const PIDFD_NONBLOCK: usize = linux_raw_sys::general::O_NONBLOCK as usize;
const PIDFD_THREAD: usize = linux_raw_sys::general::O_EXCL as usize;
const P_PIDFD: usize = 3;
const WEXITED: usize = 4;

fn pidfd_open(pid: i32, flags: usize) -> Result<OwnedFd, String> {
    // SAFETY: integer arguments; the result is a new fd.
    let ret = unsafe { criu_arch::syscall2(nr::PIDFD_OPEN, pid as usize, flags) };
    let fd = errno(ret, &format!("pidfd_open({pid})"))?;
    // SAFETY: a new fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `Pid:` and `flags:` of fd `fd` from fdinfo.
fn fdinfo(fd: &OwnedFd) -> Result<(i32, u32), String> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .map_err(|e| e.to_string())?;
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .ok_or(format!("no {k} in fdinfo: {text}"))
    };
    let pid = field("Pid:")?.parse().map_err(|e| format!("Pid: {e}"))?;
    let flags = u32::from_str_radix(field("flags:")?, 8).map_err(|e| e.to_string())?;
    Ok((pid, flags))
}

fn cloexec(fd: &OwnedFd) -> Result<bool, String> {
    rustix::io::fcntl_getfd(fd)
        .map(|f| f.contains(rustix::io::FdFlags::CLOEXEC))
        .map_err(|e| e.to_string())
}

enum Held {
    Restore {
        me: OwnedFd,
        child: i32,
        child_fd: OwnedFd,
        dup: OwnedFd,
        epoll: OwnedFd,
    },
    /// Refused modes: the fd, kept until the end.
    Refused(#[allow(dead_code)] OwnedFd),
}

fn setup(args: &zdtm::Args) -> Result<Held, String> {
    let dir: PathBuf = args.dir.clone();
    match args.rest.first().map(String::as_str).unwrap_or("") {
        "" => {
            let me = pidfd_open(std::process::id() as i32, 0)?;
            // It ends (exit 0) once the harness says go.
            let child = zdtm::child(&dir, || zdtm::wait_go(&dir))?;
            let child_fd = pidfd_open(child, PIDFD_NONBLOCK)?;
            rustix::io::fcntl_setfd(&child_fd, rustix::io::FdFlags::empty())
                .map_err(|e| e.to_string())?;
            let dup = rustix::io::fcntl_dupfd_cloexec(&child_fd, 0).map_err(|e| e.to_string())?;
            let epoll = rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC)
                .map_err(|e| format!("epoll_create: {e}"))?;
            rustix::event::epoll::add(
                &epoll,
                &child_fd,
                rustix::event::epoll::EventData::new_u64(77),
                rustix::event::epoll::EventFlags::IN,
            )
            .map_err(|e| format!("epoll_ctl: {e}"))?;
            Ok(Held::Restore {
                me,
                child,
                child_fd,
                dup,
                epoll,
            })
        }
        "outside" => Ok(Held::Refused(pidfd_open(
            rustix::process::getppid().map_or(1, |p| p.as_raw_nonzero().get()),
            0,
        )?)),
        "dead" => {
            let child = zdtm::child(&dir, || Ok(()))?;
            let fd = pidfd_open(child, 0)?;
            zdtm::reap_ok(&dir, child, "the short-lived child")?;
            Ok(Held::Refused(fd))
        }
        "thread" => {
            let fd = pidfd_open(zdtm::gettid(), PIDFD_THREAD)?;
            Ok(Held::Refused(fd))
        }
        other => Err(format!("unknown mode {other}")),
    }
}

fn check(h: Held) -> Result<(), String> {
    let Held::Restore {
        me,
        child,
        child_fd,
        dup,
        epoll,
    } = h
    else {
        return Ok(());
    };
    let pid = std::process::id() as i32;
    let (p, _) = fdinfo(&me)?;
    ensure(p == pid, || format!("the self pidfd names {p}, not {pid}"))?;
    ensure(cloexec(&me)?, || "the self pidfd lost FD_CLOEXEC".into())?;
    for (what, fd, want_cloexec) in [("child pidfd", &child_fd, false), ("its dup", &dup, true)] {
        let (p, flags) = fdinfo(fd)?;
        ensure(p == child, || format!("the {what} names {p}, not {child}"))?;
        ensure(flags & PIDFD_NONBLOCK as u32 != 0, || {
            format!("the {what} lost O_NONBLOCK: {flags:#o}")
        })?;
        ensure(cloexec(fd)? == want_cloexec, || {
            format!("the {what}'s FD_CLOEXEC is not {want_cloexec}")
        })?;
    }
    // One open file: both fds have the same inode (pidfs: one per process
    // anyway) and share status flags set through either.
    rustix::fs::fcntl_setfl(&dup, rustix::fs::OFlags::empty()).map_err(|e| e.to_string())?;
    let (_, flags) = fdinfo(&child_fd)?;
    ensure(flags & PIDFD_NONBLOCK as u32 == 0, || {
        "the dup is not the same open file as the child pidfd".into()
    })?;
    // Signal 0 through the pidfd of this process works.
    // SAFETY: integer arguments; no siginfo.
    let ret =
        unsafe { criu_arch::syscall4(nr::PIDFD_SEND_SIGNAL, me.as_raw_fd() as usize, 0, 0, 0) };
    errno(ret, "pidfd_send_signal(self, 0)")?;
    // The child got go with the verdict: it exits; the epoll sees it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let tick = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    loop {
        let mut events: Vec<rustix::event::epoll::Event> = Vec::with_capacity(4);
        rustix::event::epoll::wait(
            &epoll,
            rustix::buffer::spare_capacity(&mut events),
            Some(&tick),
        )
        .map_err(|e| format!("epoll_wait: {e}"))?;
        if events.iter().any(|e| e.data.u64() == 77) {
            break;
        }
        ensure(std::time::Instant::now() < deadline, || {
            "the epoll never saw the child end".into()
        })?;
    }
    let mut info = [0u8; 128];
    // SAFETY: waitid writes one siginfo into `info`, live for the call.
    let ret = unsafe {
        criu_arch::syscall5(
            nr::WAITID,
            P_PIDFD,
            child_fd.as_raw_fd() as usize,
            info.as_mut_ptr() as usize,
            WEXITED,
            0,
        )
    };
    errno(ret, "waitid(P_PIDFD)")?;
    // si_pid at offset 16, si_status at 24 (the same on every arch here).
    let si_pid = i32::from_ne_bytes(info[16..20].try_into().unwrap());
    let si_status = i32::from_ne_bytes(info[24..28].try_into().unwrap());
    ensure(si_pid == child && si_status == 0, || {
        format!("waitid(P_PIDFD) reaped {si_pid} with status {si_status}, want {child} and 0")
    })?;
    Ok(())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
