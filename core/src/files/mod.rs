//! Kernel file objects other than regular files, one module per kind:
//! each knows how to turn what /proc says about an fd into its image
//! entry (dump) and how to create the object again in the tool from that
//! entry (restore), independently of which task holds it.

pub mod eventfd;
pub mod eventpoll;
pub mod ghost;
pub mod inotify;
pub mod locks;
pub mod signalfd;
pub mod timerfd;

/// A system call that failed while re-creating a file object.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {errno}")]
pub struct SysFail {
    pub call: &'static str,
    pub errno: rustix::io::Errno,
}

/// Wraps an errno with the name of the call that returned it.
pub fn fail(call: &'static str) -> impl FnOnce(rustix::io::Errno) -> SysFail {
    move |errno| SysFail { call, errno }
}

/// The status flags of a new object that `F_SETFL` sets again:
/// `O_APPEND` and `O_NONBLOCK` (the same bits on every arch we build for).
pub fn set_status_flags(fd: &std::os::fd::OwnedFd, flags: u32) -> Result<(), SysFail> {
    const SETFL_MASK: u32 = 0o2000 | 0o4000;
    let f = rustix::fs::OFlags::from_bits_retain(flags & SETFL_MASK);
    if f.is_empty() {
        return Ok(());
    }
    rustix::fs::fcntl_setfl(fd, f).map_err(fail("fcntl(F_SETFL)"))
}
