//! The controlling terminal on restore: what a task does on its terminals
//! once its fds are in place (the session leader takes its terminal back
//! with `TIOCSCTTY`, the foreground group is set), including a terminal the
//! leader had as its controlling one without holding an fd of it. These
//! run as syscalls of the task's own `STAGE_FD_STATE`.

use std::os::fd::{AsFd, OwnedFd};

use super::info_id;
use super::restore::{KIND, TtyRole, make_pty};
use crate::files::{FileError, FileImages, Opener, restore_err};
use crate::images::pb;
use crate::sys::tty as sys;

/// What a task does on its terminals once its fds are in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtyCall {
    /// `TIOCSCTTY` on `fd`: the session leader takes its terminal back.
    SetCtty { fd: u32 },
    /// `TIOCSPGRP` on `fd`: the terminal's foreground group.
    SetPgrp { fd: u32, pgrp: i32 },
    /// `close(fd)`: a slave opened only to take the terminal back.
    Close { fd: u32 },
}

/// A session's controlling terminal that none of its leader's fds holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnheldCtty {
    /// The pty's index.
    pub index: u32,
    /// Its foreground process group.
    pub pgrp: u32,
}

/// The controlling terminal of session `pid` (its leader holding
/// `fdinfo`) if it is a pty of the images none of those fds is a slave
/// of: the leader held only the master, or a child of its session holds
/// the slave (CRIU opens it for the leader the same way).
pub fn unheld_ctty(img: &FileImages, fdinfo: &[pb::FdinfoEntry], pid: u32) -> Option<UnheldCtty> {
    let holds_slave = fdinfo.iter().any(|fi| {
        img.ttys.get(&fi.id).is_some_and(|f| {
            matches!(img.tty_role(f), Some(TtyRole::Slave(_)))
                && img.tty_info(f).is_some_and(|i| i.sid == pid)
        })
    });
    if holds_slave {
        return None;
    }
    let info = img
        .tty_infos
        .values()
        .filter(|i| i.r#type == pb::TtyType::Pty as i32 && i.sid == pid)
        .min_by_key(|i| i.id)?;
    let index = info.pty.as_ref()?.index;
    // Only a pty this restore makes (its master is in the images).
    let master = info_id(index, true);
    img.ttys
        .values()
        .any(|f| f.tty_info_id == master)
        .then_some(UnheldCtty {
            index,
            pgrp: info.pgrp,
        })
}

impl Opener<'_> {
    /// A slave of pty `index` (made now if it is not yet) for its
    /// session leader to take as its controlling terminal.
    pub fn ctty_slave(&mut self, index: u32) -> Result<OwnedFd, FileError> {
        let master = info_id(index, true);
        let id = self
            .img
            .ttys
            .iter()
            .find(|(_, f)| f.tty_info_id == master)
            .map(|(id, _)| *id)
            .ok_or_else(|| restore_err(0, KIND, format!("pts {index}: no master in the images")))?;
        make_pty(self, id, index)?;
        self.ptys
            .ctty
            .remove(&index)
            .ok_or_else(|| restore_err(id, KIND, format!("pts {index}: its slave was not opened")))
    }
}

/// The terminal calls of task `pid` (session `sid`) holding `fdinfo`;
/// `leader`: it makes its own session on restore; `orphan_pts_master`: a
/// slave whose master was not dumped is a new pty (runc's console), its
/// session's controlling terminal as it was (CRIU's restore sets it too:
/// a later dump would find no session on it, which CRIU refuses).
pub fn task_calls(
    img: &FileImages,
    fdinfo: &[pb::FdinfoEntry],
    pid: u32,
    leader: bool,
    shell_job: bool,
    orphan_pts_master: bool,
) -> Vec<TtyCall> {
    let mut out = Vec::new();
    let ttys = fdinfo
        .iter()
        .filter_map(|fi| img.ttys.get(&fi.id).map(|f| (fi.fd, f)));
    if leader {
        // The first slave whose session this task leads: its controlling
        // terminal.
        let ctty = ttys.clone().find_map(|(fd, f)| {
            let info = img.tty_info(f)?;
            let is_slave = match img.tty_role(f) {
                Some(TtyRole::Slave(_) | TtyRole::Other(_)) => true,
                // (Not a hung-up one: it comes back hung up.)
                Some(TtyRole::External(_)) => orphan_pts_master && info.termios.is_some(),
                _ => false,
            };
            (is_slave && info.sid == pid).then_some((fd, info.pgrp))
        });
        if let Some((fd, pgrp)) = ctty {
            out.push(TtyCall::SetCtty { fd });
            // Taking the terminal made our group the foreground one.
            if pgrp != 0 && pgrp != pid {
                out.push(TtyCall::SetPgrp {
                    fd,
                    pgrp: pgrp as i32,
                });
            }
        }
        return out;
    }
    // A shell job on criu's terminal: criu's group stays in the
    // foreground (the job runs in the background of the shell), if the
    // terminal is criu's controlling one.
    if !shell_job {
        return out;
    }
    let inherited = ttys
        .clone()
        .find(|(_, f)| matches!(img.tty_role(f), Some(TtyRole::External(_))));
    if let Some((fd, _)) = inherited
        && let Some(pgrp) = our_foreground_group()
    {
        out.push(TtyCall::SetPgrp { fd, pgrp });
    }
    out
}

/// Our process group, if our stdin is our controlling terminal.
fn our_foreground_group() -> Option<i32> {
    let stdin = std::io::stdin();
    let sid = sys::get_int(stdin.as_fd(), sys::TIOCGSID).ok()?;
    let ours = rustix::process::getsid(None).ok()?;
    (sid == ours.as_raw_nonzero().get()).then(|| rustix::process::getpgrp().as_raw_nonzero().get())
}

/// `calls` for a controlling terminal no fd of the session leader holds:
/// a slave of it opened at `fd` is taken as the controlling terminal, its
/// foreground group set to `pgrp` (unless that is the leader's own,
/// `pid`), and closed.
pub fn unheld_ctty_calls(calls: &mut Vec<TtyCall>, fd: u32, pgrp: u32, pid: u32) {
    calls.push(TtyCall::SetCtty { fd });
    if pgrp != 0 && pgrp != pid {
        calls.push(TtyCall::SetPgrp {
            fd,
            pgrp: pgrp as i32,
        });
    }
    calls.push(TtyCall::Close { fd });
}

/// The process groups `calls` set, in order: the words their `TIOCSPGRP`
/// point to.
pub fn pgrp_words(calls: &[TtyCall]) -> Vec<i32> {
    calls
        .iter()
        .filter_map(|c| match c {
            TtyCall::SetPgrp { pgrp, .. } => Some(*pgrp),
            TtyCall::SetCtty { .. } | TtyCall::Close { .. } => None,
        })
        .collect()
}

/// The restorer's calls of `calls`, the words of [`pgrp_words`] laid out
/// one after the other from `words` (an address in the task).
pub fn syscalls(calls: &[TtyCall], words: u64) -> Vec<crate::blob::restorer_abi::RawSyscall> {
    use crate::blob::restorer_abi::RawSyscall;
    let ioctl = criu_arch::nr::IOCTL as u64;
    let mut w = 0;
    calls
        .iter()
        .map(|call| match *call {
            TtyCall::SetCtty { fd } => RawSyscall {
                nr: ioctl,
                args: [u64::from(fd), u64::from(sys::TIOCSCTTY), 0, 0, 0, 0],
            },
            TtyCall::Close { fd } => RawSyscall {
                nr: criu_arch::nr::CLOSE as u64,
                args: [u64::from(fd), 0, 0, 0, 0, 0],
            },
            TtyCall::SetPgrp { fd, .. } => {
                let at = words + (w * size_of::<i32>()) as u64;
                w += 1;
                RawSyscall {
                    nr: ioctl,
                    args: [u64::from(fd), u64::from(sys::TIOCSPGRP), at, 0, 0, 0],
                }
            }
        })
        .collect()
}
