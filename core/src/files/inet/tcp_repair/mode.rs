//! Repair mode on and off, and the lists of sockets held in it: those a
//! dump paused ([`Paused`]) and those a restore made ([`Repaired`]).

use std::os::fd::OwnedFd;

use rustix::io::Errno;

use super::{Connection, set};
use crate::files::sockets::SockError;
use crate::sys::sockopt::{self as so, SOL_SOCKET, SOL_TCP};

use linux_raw_sys::net as raw;

pub fn repair_on(fd: &OwnedFd) -> Result<(), SockError> {
    so::set_int(fd, SOL_TCP, raw::TCP_REPAIR, raw::TCP_REPAIR_ON as i32).map_err(|e| match e {
        Errno::PERM => SockError::RepairNotPermitted(e),
        e => SockError::sys("turning TCP_REPAIR on", e),
    })
}

pub fn repair_off(fd: &OwnedFd) -> Result<(), SockError> {
    set(
        fd,
        raw::TCP_REPAIR,
        "TCP_REPAIR",
        raw::TCP_REPAIR_OFF as i32,
    )
}

/// Leaving repair mode resets `SO_REUSEADDR` (the kernel's repair mode
/// forces reuse and turns it off after): it goes back to `reuseaddr`.
fn leave_repair(fd: &OwnedFd, reuseaddr: bool) -> Result<(), SockError> {
    repair_off(fd)?;
    so::set_int(fd, SOL_SOCKET, raw::SO_REUSEADDR, i32::from(reuseaddr))
        .map_err(SockError::call("setting SO_REUSEADDR back"))
}

/// Sockets a dump put in repair mode. Dropped, it takes each out of it
/// again (a failed dump, `--leave-running`): the tasks go on with their
/// connections as they were.
#[derive(Debug, Default)]
pub struct Paused {
    socks: Vec<(OwnedFd, bool, Connection)>,
}

impl Paused {
    /// The connections paused so far (for the network lock).
    pub fn connections(&self) -> Vec<Connection> {
        self.socks.iter().map(|s| s.2).collect()
    }

    /// The dump kills the tree: the sockets stay in repair mode, so that
    /// closing them sends nothing (the peer sees a pause, then the
    /// restored connection).
    pub fn dismiss(&mut self) {
        self.socks.clear();
    }

    /// Every socket out of repair mode (each tried; failures logged).
    pub fn resume_all(&mut self) {
        for (fd, reuse, c) in self.socks.drain(..) {
            if let Err(e) = leave_repair(&fd, reuse) {
                crate::pr_err!("The TCP connection {c} could not leave repair mode: {e}");
            }
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.resume_all();
    }
}

/// Our own copy of a socket, kept to take it out of repair mode later.
fn dup(fd: &OwnedFd) -> Result<OwnedFd, SockError> {
    fd.try_clone().map_err(|source| SockError::Io {
        what: "dup".into(),
        source,
    })
}

/// Puts `fd` (a copy of a task's socket, `reuseaddr` its `SO_REUSEADDR`)
/// in repair mode and adds it to `paused`; if anything after this fails,
/// `paused` takes it out again.
pub fn pause(
    paused: &mut Paused,
    fd: &OwnedFd,
    reuseaddr: bool,
    conn: Connection,
) -> Result<(), SockError> {
    let copy = dup(fd)?;
    repair_on(&copy)?;
    paused.socks.push((copy, reuseaddr, conn));
    Ok(())
}

/// Restored connections still in repair mode, taken out of it by
/// [`Repaired::release`] once the restored tree is complete. Dropped
/// before that (a failed restore), they stay in repair mode: the tasks
/// are killed and the sockets close without a packet.
#[derive(Debug, Default)]
pub struct Repaired {
    socks: Vec<(OwnedFd, bool, Connection)>,
}

impl Repaired {
    pub fn add(
        &mut self,
        fd: &OwnedFd,
        reuseaddr: bool,
        conn: Connection,
    ) -> Result<(), SockError> {
        self.socks.push((dup(fd)?, reuseaddr, conn));
        Ok(())
    }

    /// The connections restored (for the network lock).
    pub fn connections(&self) -> Vec<Connection> {
        self.socks.iter().map(|s| s.2).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }

    /// Every connection out of repair mode, `SO_REUSEADDR` back to the
    /// image's: the first failure is the error.
    pub fn release(&mut self) -> Result<(), SockError> {
        let mut first = Ok(());
        for (fd, reuse, c) in self.socks.drain(..) {
            if let Err(e) = leave_repair(&fd, reuse)
                && first.is_ok()
            {
                first = Err(e.within(format!("the TCP connection {c}")));
            }
        }
        first
    }
}
