//! Sockets made in another network namespace than the tool's: a socket
//! belongs to the namespace of the thread that creates it, for life. The
//! parasite's control socket must be reachable from the victim's
//! namespace (its abstract name lives in one namespace only), and
//! `sock_diag` lists the sockets of its own socket's namespace only.
//!
//! A short-lived thread of the tool enters the namespace (`setns`
//! changes the calling thread only), makes the socket and ends; the
//! socket stays in that namespace.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::thread::LinkNameSpaceType;

/// `/proc/PID/ns/net` of task `pid`, if it is not the calling thread's
/// (`None` when they are the same namespace, or the task is gone).
pub fn of_task(pid: i32) -> Result<Option<OwnedFd>, Errno> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let theirs = match rustix::fs::open(format!("/proc/{pid}/ns/net"), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::SRCH) => return Ok(None),
        Err(e) => return Err(e),
    };
    let ours = rustix::fs::stat("/proc/thread-self/ns/net")?;
    let st = rustix::fs::fstat(&theirs)?;
    Ok((st.st_ino != ours.st_ino || st.st_dev != ours.st_dev).then_some(theirs))
}

/// Run `f` on a thread of the tool that is in net namespace `ns` (an
/// `ns/net` fd); its result.
pub fn run_in<T: Send>(
    ns: BorrowedFd<'_>,
    f: impl FnOnce() -> Result<T, Errno> + Send,
) -> Result<T, Errno> {
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(ns, Some(LinkNameSpaceType::Network))?;
            f()
        })
        .join()
        .unwrap_or(Err(Errno::IO))
    })
}

/// The net namespace `sock_diag` queries run in, if not the tool's.
static DIAG_NS: Mutex<Option<Arc<OwnedFd>>> = Mutex::new(None);

/// While this lives, every `sock_diag` query of the process lists the
/// sockets of the namespace it was made with (a dumped tree's own).
pub struct DiagIn(());

impl DiagIn {
    pub fn new(ns: OwnedFd) -> DiagIn {
        if let Ok(mut g) = DIAG_NS.lock() {
            *g = Some(Arc::new(ns));
        }
        DiagIn(())
    }
}

impl Drop for DiagIn {
    fn drop(&mut self) {
        if let Ok(mut g) = DIAG_NS.lock() {
            *g = None;
        }
    }
}

/// A socket made by `make` in the namespace `sock_diag` queries run in.
pub fn diag_socket(make: impl FnOnce() -> Result<OwnedFd, Errno> + Send) -> Result<OwnedFd, Errno> {
    let ns = DIAG_NS.lock().ok().and_then(|g| g.clone());
    match ns {
        None => make(),
        Some(ns) => run_in(ns.as_fd(), make),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_own_namespace_is_none() {
        let me = rustix::process::getpid().as_raw_nonzero().get();
        // A thread of the tool shares its namespace.
        assert!(of_task(me).unwrap().is_none());
        // A task that does not exist has no namespace to go to.
        assert!(of_task(i32::MAX).unwrap().is_none());
    }
}
