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
    /// ([`crate::files::eventpoll::owners`]).
    pub epoll_owners: &'a std::collections::HashMap<u32, u32>,
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
    ttys: Vec<crate::files::tty::ctty::TtyCall>,
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
    /// RPC `orphan_pts_master`: a slave whose master was not dumped is a
    /// new pty, which its session's leader takes as its terminal.
    pub orphan_pts_master: bool,
    /// A controlling terminal no fd of the leader holds: the fd it gets a
    /// slave of it at for the restore, and the foreground group.
    pub ctty: Option<(u32, u32)>,
}

impl FdState {
    pub fn new(t: &TaskImages, opts: FileOpts<'_>, tty: TtyCtx) -> Result<FdState, RestoreError> {
        use crate::files::tty::ctty::{pgrp_words, task_calls, unheld_ctty_calls};
        let mut ttys = task_calls(
            &t.other_files,
            &t.fdinfo,
            t.pstree.pid,
            tty.leader,
            tty.shell_job,
            tty.orphan_pts_master,
        );
        if let Some((fd, pgrp)) = tty.ctty {
            unheld_ctty_calls(&mut ttys, fd, pgrp, t.pstree.pid);
        }
        let words = pgrp_words(&ttys);
        let late = late_fds(t)?;
        let (events, epoll) = crate::files::eventpoll::registrations(t, opts.epoll_owners);
        let locks = lock_calls(t, opts.file_locks)?;
        let mut st = FdState {
            events,
            epoll,
            flocks: locks.iter().filter_map(|c| c.flock()).collect(),
            locks,
            ttys,
            owners: Vec::new(),
            words,
            late,
        };
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
        Ok(st)
    }

    /// How many calls [`FdState::calls`] makes (whatever the addresses).
    pub fn count(&self) -> usize {
        self.calls(0, 0, 0).len()
    }

    /// The calls, with `events`/`flocks`/`words` at the addresses given:
    /// the fds the task makes itself first (an epoll may watch them), the
    /// epoll registrations, the locks, the owners of files, and the
    /// terminal last (a foreground group is set once the rest of the
    /// task's files are in place).
    pub fn calls(&self, events: u64, flocks: u64, words: u64) -> Vec<RawSyscall> {
        use crate::files::kind::late_dup;
        let mut out = Vec::new();
        for &(fd, cloexec, l) in &self.late {
            match l {
                Ok(l) => out.extend(l.calls(fd, cloexec)),
                // Another fd of the same open file, made just before.
                Err(first) => out.push(late_dup(first, fd, cloexec)),
            }
        }
        out.extend(crate::files::eventpoll::ctl_add_calls(&self.epoll, events));
        out.extend(crate::files::locks::syscalls(&self.locks, flocks));
        // The owners' `f_owner_ex` follow the terminals' groups in `words`.
        let mut w = crate::files::tty::ctty::pgrp_words(&self.ttys).len();
        for (fd, fown, flags) in &self.owners {
            let at = words + (w * size_of::<i32>()) as u64;
            if fown.pid != 0 {
                w += 2;
            }
            out.extend(crate::files::fown::restore_calls(*fd, fown, *flags, at));
        }
        out.extend(crate::files::tty::ctty::syscalls(&self.ttys, words));
        out
    }
}

/// The fds task `t` makes itself (see [`crate::files::kind::LateFd`]):
/// (fd, close-on-exec, the call that makes it, or the fd made before for
/// the same file, which this one is a dup of).
#[allow(clippy::type_complexity)]
fn late_fds(
    t: &TaskImages,
) -> Result<Vec<(u32, bool, Result<crate::files::kind::LateFd, u32>)>, RestoreError> {
    let mut out = Vec::new();
    let mut made = std::collections::HashMap::new();
    for fi in &t.fdinfo {
        let Some(e) = t.other_files.entries.get(&fi.id) else {
            continue;
        };
        let cloexec = fi.flags & linux_raw_sys::general::FD_CLOEXEC != 0;
        if let Some(&first) = made.get(&fi.id) {
            out.push((fi.fd, cloexec, Err(first)));
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
            out.push((fi.fd, cloexec, Ok(l)));
        }
    }
    Ok(out)
}

/// The file locks task `t` takes again (with `--file-locks`; without, a
/// warning if it held any).
fn lock_calls(
    t: &TaskImages,
    file_locks: bool,
) -> Result<Vec<crate::files::locks::LockCall>, RestoreError> {
    if !t.file_locks.is_empty() && !file_locks {
        crate::pr_warn!(
            "filelocks.img holds {} locks; without --file-locks they are not taken again",
            t.file_locks.len()
        );
    }
    t.file_locks
        .iter()
        .filter(|_| file_locks)
        .map(|l| {
            crate::files::locks::restore_call(l).map_err(|e| RestoreError::Invalid {
                file: "filelocks.img".into(),
                what: e.to_string(),
            })
        })
        .collect()
}
