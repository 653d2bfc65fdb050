//! pidfds (`anon_inode:[pidfd]`, CRIU's `PIDFD` kind, `criu/pidfd.c`): a
//! descriptor of a process of the dumped tree. Dump records the process
//! by its PID (`pidfd_entry.nspid`) and the fd's flags. Restore cannot
//! make it in the tool, before the tree exists: the tool hands the task
//! a placeholder (`/dev/null`), and the task itself makes the pidfd at
//! `STAGE_FD_STATE`, when every task of the tree exists, and puts it in
//! the placeholder's place ([`FileKind::late_fd`]).
//!
//! Refused, by name: a pidfd of a process outside the tree (nothing
//! would bring it back), of a process already reaped (CRIU restores
//! those with a stand-in process that dies: not done here), and of a
//! thread (`PIDFD_THREAD`, which CRIU refuses too).

use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};

use super::kind::{FileKind, LateFd};
use super::table::{FdView, FileTable, FilesError};
use super::{FileError, FileImages, Opener};
use crate::images::pb;

/// `PIDFD_THREAD` (Linux 6.9+): the pidfd names one thread. It is the
/// `O_EXCL` bit of the file's flags.
const PIDFD_THREAD: u32 = linux_raw_sys::general::O_EXCL;
/// The only status flag a pidfd takes at `pidfd_open`.
const PIDFD_NONBLOCK: u32 = linux_raw_sys::general::O_NONBLOCK;
const O_ACCMODE: u32 = linux_raw_sys::general::O_ACCMODE;

/// The `PIDFD` kind.
pub struct Pidfd;

impl FileKind for Pidfd {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Pidfd
    }

    fn claims(&self, fd: &FdView<'_>) -> bool {
        fd.anon_name() == Some("[pidfd]")
    }

    fn dump(&self, files: &mut FileTable, v: &FdView<'_>) -> Result<u32, FilesError> {
        const WHAT: &str = "a pidfd";
        let info = v.info.pidfd.ok_or_else(|| v.fdinfo_lacks(WHAT))?;
        if v.ctx.flags & PIDFD_THREAD != 0 {
            return Err(v.refused(
                WHAT,
                "it names a thread (PIDFD_THREAD), which cannot be dumped yet",
            ));
        }
        match info.pid {
            -1 => {
                return Err(v.refused(
                    WHAT,
                    "its process has ended and been reaped; a pidfd of a dead process \
                     cannot be dumped yet",
                ));
            }
            0 => {
                return Err(v.refused(WHAT, "its process is outside the tool's PID namespace"));
            }
            pid if files.tree_pids.binary_search(&pid).is_err() => {
                return Err(v.refused(
                    WHAT,
                    format!(
                        "its process {pid} is not in the dumped tree (a restore could not \
                         bring it back)"
                    ),
                ));
            }
            _ => {}
        }
        let id = files.next_id();
        files.entries.push(pb::FileEntry {
            r#type: pb::FdTypes::Pidfd as i32,
            id,
            pidfd: Some(pb::PidfdEntry {
                id,
                // The pidfs inode, as CRIU records it (informative: a
                // restore makes a new one). Its field is 32 bits wide.
                ino: v.info.ino.unwrap_or(0) as u32,
                // CRIU leaves out the access mode (always O_RDWR).
                flags: v.ctx.flags & !O_ACCMODE,
                nspid: info.nspid.unwrap_or(info.pid),
                fown: pb::FownEntry::default(),
            }),
            ..Default::default()
        });
        Ok(id)
    }

    fn owner(&self, _: &pb::FileEntry, _: &FileImages) -> Option<(pb::FownEntry, u32)> {
        // No owner or O_ASYNC: pidfds have neither to set.
        None
    }

    fn open(&self, _: &mut Opener<'_>, e: &pb::FileEntry) -> Result<OwnedFd, FileError> {
        self.late_fd(e)?;
        // The placeholder: any fd the task can hold until STAGE_FD_STATE.
        rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(
            |errno| FileError::Open {
                path: "/dev/null (a pidfd's placeholder)".into(),
                errno,
            },
        )
    }

    fn late_fd(&self, e: &pb::FileEntry) -> Result<Option<LateFd>, FileError> {
        let x = e
            .pidfd
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, "a pidfd"))?;
        if x.nspid <= 0 || x.flags & PIDFD_THREAD != 0 {
            return Err(super::restore_err(
                e.id,
                "a pidfd",
                format!(
                    "process {} with flags {:#o} cannot be opened again",
                    x.nspid, x.flags
                ),
            ));
        }
        Ok(Some(LateFd {
            nr: criu_arch::nr::PIDFD_OPEN as u64,
            args: [
                x.nspid as u64,
                u64::from(x.flags & PIDFD_NONBLOCK),
                0,
                0,
                0,
                0,
            ],
        }))
    }
}
