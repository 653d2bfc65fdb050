//! Files with an owner for SIGIO (`PROGRAM DIR`): the read end of a pipe
//! is owned by this process (`F_SETOWN_EX`, `F_OWNER_PID`), signals with
//! SIGRTMIN+2 (`F_SETSIG`) and has `O_ASYNC`; one end of a socket pair is
//! owned by the process group (`F_OWNER_PGRP`) with no signal set. After
//! restore each keeps its owner, signal and flags, and a byte written
//! into the pipe raises the signal here.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criu_arch::nr;
use linux_raw_sys::general::{
    F_GETFL, F_GETOWN_EX, F_GETSIG, F_OWNER_PGRP, F_OWNER_PID, F_SETFL, F_SETOWN_EX, F_SETSIG,
    FASYNC, O_NONBLOCK,
};
use zdtm::ensure;

/// SIGRTMIN + 2 (glibc keeps the first two real-time signals).
const SIG: usize = 36;
const SA_SIGINFO: u64 = 4;

static RAISED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_sig: i32, _info: usize, _uc: usize) {
    RAISED.fetch_add(1, Ordering::SeqCst);
}

fn fcntl(fd: &OwnedFd, cmd: u32, arg: usize) -> Result<usize, String> {
    // SAFETY: fcntl on our own fd; `arg` is an integer or points to a
    // live `[i32; 2]` (`struct f_owner_ex`) for the OWN_EX commands.
    let ret = unsafe { criu_arch::syscall3(nr::FCNTL, fd.as_raw_fd() as usize, cmd as usize, arg) };
    zdtm::errno(ret, &format!("fcntl({}, {cmd})", fd.as_raw_fd()))
}

fn set_owner(fd: &OwnedFd, kind: u32, pid: i32) -> Result<(), String> {
    let owner = [kind as i32, pid];
    fcntl(fd, F_SETOWN_EX, owner.as_ptr() as usize).map(drop)
}

fn owner(fd: &OwnedFd) -> Result<[i32; 2], String> {
    let mut owner = [0i32; 2];
    fcntl(fd, F_GETOWN_EX, owner.as_mut_ptr() as usize)?;
    Ok(owner)
}

struct Files {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    sk_a: OwnedFd,
    _sk_b: OwnedFd,
    pid: i32,
}

fn setup(_args: &zdtm::Args) -> Result<Files, String> {
    let act = zdtm::action(on_signal as *const () as usize, SA_SIGINFO, 0);
    zdtm::set_sigaction(SIG, &act)?;
    let (pipe_r, pipe_w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    let pid = std::process::id() as i32;
    set_owner(&pipe_r, F_OWNER_PID, pid)?;
    fcntl(&pipe_r, F_SETSIG, SIG)?;
    fcntl(&pipe_r, F_SETFL, (FASYNC | O_NONBLOCK) as usize)?;
    let (sk_a, sk_b) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::empty(),
        None,
    )
    .map_err(|e| format!("socketpair: {e}"))?;
    // This program leads its own group (it is a session leader).
    set_owner(&sk_a, F_OWNER_PGRP, pid)?;
    // Nothing raised before the dump.
    ensure(RAISED.load(Ordering::SeqCst) == 0, || {
        "a signal came early".into()
    })?;
    Ok(Files {
        pipe_r,
        pipe_w,
        sk_a,
        _sk_b: sk_b,
        pid,
    })
}

fn check(f: Files) -> Result<(), String> {
    let o = owner(&f.pipe_r)?;
    ensure(o == [F_OWNER_PID as i32, f.pid], || {
        format!("pipe owner {o:?}, want [F_OWNER_PID, {}]", f.pid)
    })?;
    let sig = fcntl(&f.pipe_r, F_GETSIG, 0)?;
    ensure(sig == SIG, || format!("pipe F_GETSIG {sig}, want {SIG}"))?;
    let fl = fcntl(&f.pipe_r, F_GETFL, 0)? as u32;
    ensure(fl & (FASYNC | O_NONBLOCK) == FASYNC | O_NONBLOCK, || {
        format!("pipe flags {fl:#o} lack O_ASYNC|O_NONBLOCK")
    })?;
    let o = owner(&f.sk_a)?;
    ensure(o == [F_OWNER_PGRP as i32, f.pid], || {
        format!("socket owner {o:?}, want [F_OWNER_PGRP, {}]", f.pid)
    })?;
    let sig = fcntl(&f.sk_a, F_GETSIG, 0)?;
    ensure(sig == 0, || format!("socket F_GETSIG {sig}, want 0"))?;
    // O_ASYNC is live, not just a flag: data in the pipe raises SIG here.
    rustix::io::write(&f.pipe_w, b"x").map_err(|e| format!("write: {e}"))?;
    let start = Instant::now();
    while RAISED.load(Ordering::SeqCst) == 0 {
        ensure(start.elapsed() < Duration::from_secs(10), || {
            "no signal from the pipe after a write (O_ASYNC or owner lost)".into()
        })?;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
