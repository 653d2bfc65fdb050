//! The plan's fs step: the task's cwd and root (directory paths in the
//! files images), its umask, and its executable.

use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::OFlags;

use super::open_reg;
use crate::files::reg::RegFiles;
use crate::restore::RestoreError;
use crate::restore::images::TaskImages;

/// The fs struct's parts, as the restorer takes them (-1: keep ours;
/// `u32::MAX`: no umask).
pub(super) struct FsArgs {
    pub cwd_fd: i32,
    pub root_fd: i32,
    pub umask: u32,
}

/// fs: cwd and root are directory paths in the files images (`fds` takes
/// the descriptors).
pub(super) fn open_fs(
    t: &TaskImages,
    regs: RegFiles<'_>,
    min_fd: i32,
    fds: &mut Vec<OwnedFd>,
) -> Result<FsArgs, RestoreError> {
    let mut cwd_fd = -1;
    let mut root_fd = -1;
    let mut umask = u32::MAX;
    if let Some(fs) = &t.fs {
        for (id, slot) in [(fs.cwd_id, &mut cwd_fd), (fs.root_id, &mut root_fd)] {
            if let Some(reg) = regs.get(id) {
                let d = open_reg(&reg, OFlags::RDONLY | OFlags::DIRECTORY, min_fd)?;
                // The task's root is ours already in the common case: no
                // chroot then (it needs CAP_SYS_CHROOT, which
                // --unprivileged does without).
                if id == fs.root_id && same_dir_as_our_root(&d) {
                    continue;
                }
                *slot = d.as_raw_fd();
                fds.push(d);
            }
        }
        umask = fs.umask.unwrap_or(u32::MAX);
    }
    Ok(FsArgs {
        cwd_fd,
        root_fd,
        umask,
    })
}

/// mm boundaries and the executable: its file, if the images name one.
pub(super) fn open_exe(
    t: &TaskImages,
    regs: RegFiles<'_>,
    min_fd: i32,
) -> Result<Option<OwnedFd>, RestoreError> {
    regs.get(t.mm.exe_file_id)
        .map(|reg| open_reg(&reg, OFlags::RDONLY, min_fd))
        .transpose()
}

/// Whether directory `d` is this process's root directory.
fn same_dir_as_our_root(d: &OwnedFd) -> bool {
    match (rustix::fs::fstat(d), rustix::fs::stat("/")) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}
