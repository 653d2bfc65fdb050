//! Terminal ioctls rustix has no call for (or none that gives the raw
//! kernel structure back): the kernel's `struct termios` (`TCGETS`, the
//! locked termios), the window size, and the pty and session ioctls
//! (`TIOCGPTN`, `TIOCSPTLCK`, `TIOCGPKT`, `TIOCSCTTY`, ...). Numbers and
//! layouts come from linux-raw-sys for the arch we are built for.

use std::os::fd::{AsFd, AsRawFd};

use linux_raw_sys::general::{termios as KTermios, winsize as KWinsize};
use linux_raw_sys::ioctl as io;
use rustix::io::Errno;

pub use linux_raw_sys::general::{termios as Termios, winsize as Winsize};

// The kernel copies these exact sizes; pin them (x86_64 and the rest
// share the 4-byte flags and the 19 control characters).
const _: () = assert!(size_of::<KWinsize>() == 8);
const _: () = assert!(size_of::<KTermios>() >= 36);

pub const TCGETS: u32 = io::TCGETS;
pub const TCSETS: u32 = io::TCSETS;
pub const TIOCGLCKTRMIOS: u32 = io::TIOCGLCKTRMIOS;
pub const TIOCSLCKTRMIOS: u32 = io::TIOCSLCKTRMIOS;
pub const TIOCGWINSZ: u32 = io::TIOCGWINSZ;
pub const TIOCSWINSZ: u32 = io::TIOCSWINSZ;
pub const TIOCGPTN: u32 = io::TIOCGPTN;
pub const TIOCSPTLCK: u32 = io::TIOCSPTLCK;
pub const TIOCGPTLCK: u32 = io::TIOCGPTLCK;
pub const TIOCPKT: u32 = io::TIOCPKT;
pub const TIOCGPKT: u32 = io::TIOCGPKT;
pub const TIOCGEXCL: u32 = io::TIOCGEXCL;
pub const TIOCEXCL: u32 = io::TIOCEXCL;
pub const TIOCSCTTY: u32 = io::TIOCSCTTY;
pub const TIOCSPGRP: u32 = io::TIOCSPGRP;
pub const TIOCGPGRP: u32 = io::TIOCGPGRP;
pub const TIOCGSID: u32 = io::TIOCGSID;
pub const FIONREAD: u32 = io::FIONREAD;

fn ret(r: isize) -> Result<isize, Errno> {
    if r < 0 {
        Err(Errno::from_raw_os_error(-r as i32))
    } else {
        Ok(r)
    }
}

/// `ioctl(fd, req, ptr)` where the kernel writes one `T` to `ptr`.
/// Only for the requests of this module whose argument is a `T` out
/// (callers pass the matching type: `int` or the structs above).
fn get<T: Copy>(fd: impl AsFd, req: u32, mut val: T) -> Result<T, Errno> {
    // SAFETY: for the requests used here the kernel writes at most
    // size_of::<T>() bytes to `val`, which lives across the call.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_fd().as_raw_fd() as usize,
            req as usize,
            &mut val as *mut T as usize,
        )
    };
    ret(r).map(|_| val)
}

/// `ioctl(fd, req, ptr)` where the kernel reads one `T` from `ptr`.
fn set<T: Copy>(fd: impl AsFd, req: u32, val: &T) -> Result<(), Errno> {
    // SAFETY: the kernel only reads size_of::<T>() bytes from `val`.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_fd().as_raw_fd() as usize,
            req as usize,
            val as *const T as usize,
        )
    };
    ret(r).map(drop)
}

/// `ioctl(fd, req, arg)` with an integer argument (no memory).
fn call(fd: impl AsFd, req: u32, arg: usize) -> Result<(), Errno> {
    // SAFETY: `arg` is passed by value; these requests take no pointer.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_fd().as_raw_fd() as usize,
            req as usize,
            arg,
        )
    };
    ret(r).map(drop)
}

/// An all-zero termios (every field is a plain integer).
pub fn zero_termios() -> Termios {
    // SAFETY: a struct of integers and integer arrays; zero is valid.
    unsafe { std::mem::zeroed() }
}

pub fn tcgets(fd: impl AsFd) -> Result<Termios, Errno> {
    get(fd, TCGETS, zero_termios())
}

pub fn tcsets(fd: impl AsFd, t: &Termios) -> Result<(), Errno> {
    set(fd, TCSETS, t)
}

/// Runs `f` with SIGTTOU blocked in this thread (the mask as before
/// afterwards). A terminal that is the tool's controlling terminal (the
/// inherited one of a `--shell-job` restore, reopened as `/dev/tty`)
/// takes termios changes from a background process group only then:
/// otherwise the kernel stops the tool with SIGTTOU (CRIU sets them with
/// every signal blocked, in the restored task).
pub fn with_sigttou_blocked<R>(f: impl FnOnce() -> R) -> R {
    use linux_raw_sys::general::{SIG_BLOCK, SIG_SETMASK, SIGTTOU};
    let bit = 1u64 << (SIGTTOU - 1);
    let mut old = 0u64;
    // SAFETY: rt_sigprocmask reads 8 bytes from `bit` and writes 8 to `old`.
    let blocked = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::RT_SIGPROCMASK,
            SIG_BLOCK as usize,
            &bit as *const u64 as usize,
            &mut old as *mut u64 as usize,
            8,
        )
    } == 0;
    let r = f();
    if blocked {
        // SAFETY: rt_sigprocmask reads 8 bytes from `old`, writes nothing.
        unsafe {
            criu_arch::syscall4(
                criu_arch::nr::RT_SIGPROCMASK,
                SIG_SETMASK as usize,
                &old as *const u64 as usize,
                0,
                8,
            )
        };
    }
    r
}

pub fn get_locked(fd: impl AsFd) -> Result<Termios, Errno> {
    get(fd, TIOCGLCKTRMIOS, zero_termios())
}

/// Needs CAP_SYS_ADMIN.
pub fn set_locked(fd: impl AsFd, t: &Termios) -> Result<(), Errno> {
    set(fd, TIOCSLCKTRMIOS, t)
}

pub fn get_winsize(fd: impl AsFd) -> Result<Winsize, Errno> {
    get(
        fd,
        TIOCGWINSZ,
        Winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
}

pub fn set_winsize(fd: impl AsFd, w: &Winsize) -> Result<(), Errno> {
    set(fd, TIOCSWINSZ, w)
}

/// An `int`-valued query (`TIOCGPTN`, `TIOCGPTLCK`, `TIOCGPKT`,
/// `TIOCGEXCL`, `TIOCGSID`, `TIOCGPGRP`, `FIONREAD`).
pub fn get_int(fd: impl AsFd, req: u32) -> Result<i32, Errno> {
    debug_assert!(matches!(
        req,
        TIOCGPTN | TIOCGPTLCK | TIOCGPKT | TIOCGEXCL | TIOCGSID | TIOCGPGRP | FIONREAD
    ));
    get(fd, req, 0i32)
}

/// An `int`-by-pointer setting (`TIOCSPTLCK`, `TIOCPKT`, `TIOCSPGRP`).
pub fn set_int(fd: impl AsFd, req: u32, val: i32) -> Result<(), Errno> {
    debug_assert!(matches!(req, TIOCSPTLCK | TIOCPKT | TIOCSPGRP));
    set(fd, req, &val)
}

/// `TIOCEXCL`: exclusive mode on (no argument).
pub fn set_exclusive(fd: impl AsFd) -> Result<(), Errno> {
    call(fd, TIOCEXCL, 0)
}

/// `TIOCSCTTY`: make the tty the caller's controlling terminal (`steal`:
/// take it from another session, CAP_SYS_ADMIN).
pub fn set_ctty(fd: impl AsFd, steal: bool) -> Result<(), Errno> {
    call(fd, TIOCSCTTY, usize::from(steal))
}
