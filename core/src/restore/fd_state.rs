//! The task's anon-inode files and what it does on its fds once they
//! are in place: the objects of [`crate::files`] created in the tool, and
//! the restorer's `STAGE_FD_STATE` calls (epoll registrations under the
//! final fd numbers, file locks taken by the task itself, the controlling
//! terminal and its foreground group).

use crate::blob::restorer_abi::RawSyscall;
use crate::images::pb;

use super::RestoreError;
use super::images::TaskImages;

/// What a restore needs beyond the images to open the task's files.
#[derive(Clone, Copy)]
pub struct FileOpts<'a> {
    /// Ghost files, created before the plan (and unlinked after it).
    pub ghosts: &'a crate::files::ghost::Ghosts,
    /// `--file-locks`: take the dumped locks again.
    pub file_locks: bool,
    /// Epoll file id -> the task that registers its targets
    /// ([`epoll_owners`]).
    pub epoll_owners: &'a std::collections::HashMap<u32, u32>,
}

/// An epoll instance shared by several tasks (inherited across fork) is
/// one file: its targets are registered once, by the first task (in
/// pstree order) that holds it and an fd under every target number, like
/// CRIU, whose dump reads the targets in one task holding it. A shared
/// instance no such task holds cannot be restored.
pub fn epoll_owners<'t>(
    tasks: impl IntoIterator<Item = &'t TaskImages>,
) -> Result<std::collections::HashMap<u32, u32>, RestoreError> {
    let mut owners = std::collections::HashMap::new();
    let mut missing = std::collections::BTreeMap::new();
    for t in tasks {
        let has_fd = |fd: u32| t.fdinfo.iter().any(|f| f.fd == fd);
        for fi in &t.fdinfo {
            let Some(ep) = t
                .other_files
                .entries
                .get(&fi.id)
                .and_then(|f| f.epfd.as_ref())
            else {
                continue;
            };
            if owners.contains_key(&fi.id) {
                continue;
            }
            match ep.tfd.iter().find(|x| !has_fd(x.tfd)) {
                None => {
                    owners.insert(fi.id, t.pstree.pid);
                    missing.remove(&fi.id);
                }
                Some(x) => {
                    missing.entry(fi.id).or_insert((t.pstree.pid, x.tfd));
                }
            }
        }
    }
    if let Some((id, (pid, tfd))) = missing.into_iter().next() {
        return Err(RestoreError::Unsupported(format!(
            "files.img: epoll instance {id} watches fd {tfd}, which task {pid} holding it \
             does not hold, nor does any other task holding it (a closed target still \
             registered)"
        )));
    }
    Ok(owners)
}

/// Timerfd clocks, in the tree's files image (every task shares it):
/// checked once, before anything exists.
pub fn check_tree(t: &TaskImages) -> Result<(), RestoreError> {
    // Epoll targets are checked for the whole tree (`epoll_owners`): a
    // task sharing an instance need not hold them.
    for (id, f) in t.other_files.entries.iter() {
        if let Some(tf) = &f.tfd
            && crate::files::timerfd::clock(tf.clockid).is_none()
        {
            return Err(RestoreError::Invalid {
                file: "files.img".into(),
                what: format!("timerfd {id} has clock {}", tf.clockid),
            });
        }
    }
    Ok(())
}

/// File locks (which must name fds of the task): checked before anything
/// exists.
pub fn check(t: &TaskImages) -> Result<(), RestoreError> {
    let fds: std::collections::HashSet<u32> = t.fdinfo.iter().map(|f| f.fd).collect();
    let has_fd = |fd: u32| fds.contains(&fd);
    for l in &t.file_locks {
        if l.fd < 0 || !has_fd(l.fd as u32) {
            return Err(RestoreError::Invalid {
                file: "filelocks.img".into(),
                what: format!("a lock on fd {}, which the task does not hold", l.fd),
            });
        }
        crate::files::locks::restore_call(l).map_err(|e| RestoreError::Invalid {
            file: "filelocks.img".into(),
            what: e.to_string(),
        })?;
    }
    Ok(())
}

/// The structs the fd-state calls point to, and the calls once their
/// address (`base`) is known: epoll registrations under the final fd
/// numbers, then the locks (with `--file-locks`).
pub struct FdState {
    pub events: Vec<crate::files::eventpoll::EpollEvent>,
    /// (epoll fd, target fd) of each event, in order.
    epoll: Vec<(u32, u32)>,
    pub flocks: Vec<crate::files::locks::KernelFlock>,
    locks: Vec<crate::files::locks::LockCall>,
    /// Terminal calls, and the process groups `TIOCSPGRP` points to.
    ttys: Vec<crate::files::tty::restore::TtyCall>,
    /// Owners of files: (fd, owner, file status flags); the owners'
    /// `f_owner_ex` go into `words` after the terminals' groups.
    owners: Vec<(u32, pb::FownEntry, u32)>,
    pub words: Vec<i32>,
    /// Fds the task makes itself, first (an epoll may watch them): (fd,
    /// close-on-exec, the call that makes it, or the fd made before for
    /// the same file, which this one is a dup of).
    late: Vec<(u32, bool, Result<crate::files::kind::LateFd, u32>)>,
}

/// The owner and status flags of file object `id` of task `t`, if it has
/// an owner, a signal or `O_ASYNC` to set.
fn fown_of(t: &TaskImages, id: u32) -> Option<(pb::FownEntry, u32)> {
    t.other_files.owner(id)
}

/// What the terminal calls depend on beyond the images.
#[derive(Clone, Copy, Debug)]
pub struct TtyCtx {
    /// The task makes its own session (`setsid`).
    pub leader: bool,
    /// `--shell-job`.
    pub shell_job: bool,
    /// A controlling terminal no fd of the leader holds: the fd it gets a
    /// slave of it at for the restore, and the foreground group.
    pub ctty: Option<(u32, u32)>,
}

impl FdState {
    pub fn new(t: &TaskImages, opts: FileOpts<'_>, tty: TtyCtx) -> Result<FdState, RestoreError> {
        use crate::files::tty::restore::{TtyCall, task_calls};
        let file_locks = opts.file_locks;
        let mut ttys = task_calls(
            &t.other_files,
            &t.fdinfo,
            t.pstree.pid,
            tty.leader,
            tty.shell_job,
        );
        if let Some((fd, pgrp)) = tty.ctty {
            ttys.push(TtyCall::SetCtty { fd });
            if pgrp != 0 && pgrp != t.pstree.pid {
                ttys.push(TtyCall::SetPgrp {
                    fd,
                    pgrp: pgrp as i32,
                });
            }
            ttys.push(TtyCall::Close { fd });
        }
        let words = ttys
            .iter()
            .filter_map(|c| match c {
                TtyCall::SetPgrp { pgrp, .. } => Some(*pgrp),
                TtyCall::SetCtty { .. } | TtyCall::Close { .. } => None,
            })
            .collect();
        let mut st = FdState {
            events: Vec::new(),
            epoll: Vec::new(),
            flocks: Vec::new(),
            locks: Vec::new(),
            ttys,
            owners: Vec::new(),
            words,
            late: Vec::new(),
        };
        let mut made = std::collections::HashMap::new();
        for fi in &t.fdinfo {
            let Some(e) = t.other_files.entries.get(&fi.id) else {
                continue;
            };
            let cloexec = fi.flags & linux_raw_sys::general::FD_CLOEXEC != 0;
            if let Some(&first) = made.get(&fi.id) {
                st.late.push((fi.fd, cloexec, Err(first)));
                continue;
            }
            let late = crate::files::of_type(e.r#type)
                .map(|k| k.late_fd(e))
                .transpose()
                .map_err(|e| RestoreError::Invalid {
                    file: "files.img".into(),
                    what: e.to_string(),
                })?
                .flatten();
            if let Some(l) = late {
                made.insert(fi.id, fi.fd);
                st.late.push((fi.fd, cloexec, Ok(l)));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for fi in &t.fdinfo {
            if let Some((fown, flags)) = fown_of(t, fi.id)
                && seen.insert(fi.id)
            {
                if fown.pid != 0 {
                    st.words.extend([fown.pid_type as i32, fown.pid as i32]);
                }
                st.owners.push((fi.fd, fown, flags));
            }
        }
        let mut done = std::collections::HashSet::new();
        for fi in &t.fdinfo {
            let Some(ep) = t
                .other_files
                .entries
                .get(&fi.id)
                .and_then(|f| f.epfd.as_ref())
            else {
                continue;
            };
            // One file, one set of registrations (under its first fd), in
            // one task of the tree.
            if opts.epoll_owners.get(&fi.id) != Some(&t.pstree.pid) || !done.insert(fi.id) {
                continue;
            }
            for (tfd, ev) in crate::files::eventpoll::ctl_add_args(ep) {
                st.epoll.push((fi.fd, tfd));
                st.events.push(ev);
            }
        }
        if !t.file_locks.is_empty() && !file_locks {
            crate::pr_warn!(
                "filelocks.img holds {} locks; without --file-locks they are not taken again",
                t.file_locks.len()
            );
        }
        for l in t.file_locks.iter().filter(|_| file_locks) {
            let call = crate::files::locks::restore_call(l).map_err(|e| RestoreError::Invalid {
                file: "filelocks.img".into(),
                what: e.to_string(),
            })?;
            if let crate::files::locks::LockCall::Fcntl { flock, .. } = call {
                st.flocks.push(flock);
            }
            st.locks.push(call);
        }
        Ok(st)
    }

    /// How many calls [`FdState::calls`] makes (whatever the addresses).
    pub fn count(&self) -> usize {
        self.calls(0, 0, 0).len()
    }

    /// The calls, with `events`/`flocks`/`words` at the addresses given.
    pub fn calls(&self, events: u64, flocks: u64, words: u64) -> Vec<RawSyscall> {
        use crate::files::eventpoll::{EPOLL_CTL_ADD, EpollEvent};
        use crate::files::locks::{KernelFlock, LockCall};
        let mut out = Vec::new();
        // A fd made by the task: saved, put in its placeholder's place
        // (dup3 replaces it), and closed where it was made.
        for &(fd, cloexec, l) in &self.late {
            use crate::blob::restorer_abi::{RAW_ARG0_SAVED, RAW_SAVE};
            let flags = if cloexec {
                u64::from(linux_raw_sys::general::O_CLOEXEC)
            } else {
                0
            };
            let dup3 = criu_arch::nr::DUP3 as u64;
            let l = match l {
                Ok(l) => l,
                // Another fd of the same open file, made just before.
                Err(first) => {
                    out.push(RawSyscall {
                        nr: dup3,
                        args: [u64::from(first), u64::from(fd), flags, 0, 0, 0],
                    });
                    continue;
                }
            };
            out.push(RawSyscall {
                nr: l.nr | RAW_SAVE,
                args: l.args,
            });
            out.push(RawSyscall {
                nr: dup3 | RAW_ARG0_SAVED,
                args: [0, u64::from(fd), flags, 0, 0, 0],
            });
            out.push(RawSyscall {
                nr: criu_arch::nr::CLOSE as u64 | RAW_ARG0_SAVED,
                args: [0; 6],
            });
        }
        for (i, &(epfd, tfd)) in self.epoll.iter().enumerate() {
            let ev = events + (i * size_of::<EpollEvent>()) as u64;
            out.push(RawSyscall {
                nr: criu_arch::nr::EPOLL_CTL as u64,
                args: [u64::from(epfd), EPOLL_CTL_ADD, u64::from(tfd), ev, 0, 0],
            });
        }
        let mut k = 0;
        for call in &self.locks {
            out.push(match *call {
                LockCall::Flock { fd, op } => RawSyscall {
                    nr: criu_arch::nr::FLOCK as u64,
                    args: [fd, op, 0, 0, 0, 0],
                },
                LockCall::Fcntl { fd, cmd, .. } => {
                    let at = flocks + (k * size_of::<KernelFlock>()) as u64;
                    k += 1;
                    RawSyscall {
                        nr: criu_arch::nr::FCNTL as u64,
                        args: [fd, cmd, at, 0, 0, 0],
                    }
                }
            });
        }
        // Owners: the signal, the owner (F_SETOWN_EX checks that the PID
        // exists: every task of the tree does by now), and O_ASYNC, which
        // F_SETFL only turns on when it was off.
        use linux_raw_sys::general::{F_SETFL, F_SETOWN_EX, F_SETSIG};
        let fcntl = criu_arch::nr::FCNTL as u64;
        let mut w = self
            .ttys
            .iter()
            .filter(|c| matches!(c, crate::files::tty::restore::TtyCall::SetPgrp { .. }))
            .count();
        for &(fd, fown, flags) in &self.owners {
            let fd = u64::from(fd);
            if fown.signum != 0 {
                out.push(RawSyscall {
                    nr: fcntl,
                    args: [fd, u64::from(F_SETSIG), u64::from(fown.signum), 0, 0, 0],
                });
            }
            if fown.pid != 0 {
                let at = words + (w * size_of::<i32>()) as u64;
                w += 2;
                out.push(RawSyscall {
                    nr: fcntl,
                    args: [fd, u64::from(F_SETOWN_EX), at, 0, 0, 0],
                });
            }
            let async_flag = crate::files::fown::O_ASYNC;
            if flags & async_flag != 0 {
                for f in [flags & !async_flag, flags] {
                    out.push(RawSyscall {
                        nr: fcntl,
                        args: [fd, u64::from(F_SETFL), u64::from(f), 0, 0, 0],
                    });
                }
            }
        }
        // The terminal last: a foreground group is set once the rest of
        // the task's files are in place.
        let mut w = 0;
        for call in &self.ttys {
            use crate::files::tty::restore::TtyCall;
            use crate::sys::tty::{TIOCSCTTY, TIOCSPGRP};
            let ioctl = criu_arch::nr::IOCTL as u64;
            out.push(match *call {
                TtyCall::SetCtty { fd } => RawSyscall {
                    nr: ioctl,
                    args: [u64::from(fd), u64::from(TIOCSCTTY), 0, 0, 0, 0],
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
                        args: [u64::from(fd), u64::from(TIOCSPGRP), at, 0, 0, 0],
                    }
                }
            });
        }
        out
    }
}
