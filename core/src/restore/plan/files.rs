//! The plan's file steps: shared memory objects and the task's fds, each
//! kernel object opened once for the tree through its [`SharedFiles`].

use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::OFlags;

use super::{SharedFiles, high_fd};
use crate::blob::restorer_abi::FdMove;
use crate::files::tty::ctty::UnheldCtty;
use crate::restore::RestoreError;
use crate::restore::images::TaskImages;

/// Shared memory objects, created and filled here (once per tree); the
/// restorer maps their descriptors. The tool's fd of each of `t.shmem`.
pub(super) fn open_shmem(
    t: &TaskImages,
    shared: &mut SharedFiles<'_>,
) -> Result<Vec<i32>, RestoreError> {
    let mut shm_fds = Vec::with_capacity(t.shmem.len());
    for o in &t.shmem {
        if let Some(&fd) = shared.shm.get(&o.shmid) {
            shm_fds.push(fd);
            continue;
        }
        let fd = high_fd(crate::files::shmem::create(o)?, shared.min_fd)?;
        crate::pr_debug!(
            "shmem object {} ({} bytes, {} runs) is fd {}",
            o.shmid,
            o.size,
            o.runs.len(),
            fd.as_raw_fd()
        );
        // A memfd's fds are opened from the object made here.
        if let (Some(m), Some(op)) = (&o.memfd, shared.opener.as_mut()) {
            op.note_memfd(m.inode_id, o.shmid, &fd)?;
        }
        shared.shm.insert(o.shmid, fd.as_raw_fd());
        shm_fds.push(fd.as_raw_fd());
        shared.fds.push(fd);
    }
    Ok(shm_fds)
}

/// The task's fds: where each comes from, and the fds it keeps.
pub(super) struct TaskFds {
    pub moves: Vec<FdMove>,
    pub keep: Vec<i32>,
}

/// Task fds: every file id opened once by the kind its entry names
/// (each kernel object made once for the tree: files.img is the
/// tree's) and dup'ed to each fd holding it; std fds the images do not
/// know, and a shell job's stdio pipe to the outside (a new pipe would
/// lead nowhere), are inherited from the tool, like CRIU's --shell-job.
/// A file `--inherit-fd` names is the tool's fd it gives instead.
/// `ctty`: a controlling terminal none of its fds holds, and the fd its
/// slave goes to.
pub(super) fn open_fds(
    t: &TaskImages,
    shared: &mut SharedFiles<'_>,
    ctty: Option<(UnheldCtty, u32)>,
) -> Result<TaskFds, RestoreError> {
    let mut moves = Vec::new();
    let mut keep: Vec<i32> = Vec::new();
    let shell_job = shared.shell_job;
    let min_fd = shared.min_fd;
    let opener = shared.opener.as_mut().ok_or(RestoreError::Unsupported(
        "internal: the tree's file opener was not made before planning".into(),
    ))?;
    let opened = &mut shared.files;
    for fi in &t.fdinfo {
        let target = fi.fd as i32;
        let cloexec = if fi.flags & 1 != 0 {
            OFlags::CLOEXEC.bits()
        } else {
            0
        };
        keep.push(target);
        let from = match opened.get(&fi.id) {
            Some(&from) => from,
            None if let Some(i) = inherited(&shared.inherit, opener, fi.id) => {
                shared.inherit_used.insert(i.fd);
                let fd = inherit_fd(i, min_fd)?;
                crate::pr_info!(
                    "fd {target} (file id {}, {}): the tool's fd {} (--inherit-fd)",
                    fi.id,
                    i.key,
                    i.fd
                );
                let raw = fd.as_raw_fd();
                opened.insert(fi.id, raw);
                shared.fds.push(fd);
                raw
            }
            None if !opener.restorable(fi.id)
                || (shell_job && target <= 2 && opener.outside_pipe(fi.id)) =>
            {
                if target > 2 {
                    return Err(RestoreError::Unsupported(format!(
                        "{}: fd {target} (file id {}): a kind of file that is not restored yet",
                        t.fdinfo_file, fi.id
                    )));
                }
                crate::pr_warn!("fd {target}: inheriting the tool's fd {target}");
                continue;
            }
            None => {
                let fd = opener.open(fi.id)?;
                let raw = fd.as_raw_fd();
                opened.insert(fi.id, raw);
                shared.fds.push(fd);
                raw
            }
        };
        // FD_CLOEXEC is per descriptor: it comes from the fdinfo.
        moves.push(FdMove {
            from,
            to: target,
            flags: cloexec,
        });
    }
    if let Some((c, target)) = ctty {
        let fd: OwnedFd = high_fd(opener.ctty_slave(c.index)?, min_fd)?;
        moves.push(FdMove {
            from: fd.as_raw_fd(),
            to: target as i32,
            flags: OFlags::CLOEXEC.bits(),
        });
        keep.push(target as i32);
        shared.fds.push(fd);
    }
    if t.no_fdinfo_image {
        keep.extend([0, 1, 2]);
    }
    keep.sort_unstable();
    keep.dedup();
    Ok(TaskFds { moves, keep })
}

/// The `--inherit-fd` naming file id `id`, if any (a regular file's path
/// may be given with or without its leading `/`, as CRIU's are relative).
fn inherited<'i>(
    inherit: &'i [crate::opts::InheritFd],
    opener: &crate::files::Opener<'_>,
    id: u32,
) -> Option<&'i crate::opts::InheritFd> {
    if inherit.is_empty() {
        return None;
    }
    let key = opener.inherit_key(id)?;
    let bare = key.strip_prefix('/').unwrap_or(&key);
    inherit
        .iter()
        .find(|i| i.key == key || i.key.strip_prefix('/').unwrap_or(&i.key) == bare)
}

/// A copy of the tool's fd `i.fd`, at or above `min_fd`.
fn inherit_fd(i: &crate::opts::InheritFd, min_fd: i32) -> Result<OwnedFd, RestoreError> {
    crate::sys::fds::dup_given(i.fd, min_fd).map_err(|errno| {
        RestoreError::Unsupported(format!(
            "--inherit-fd fd[{}]:{}: fd {} of criu: {errno}",
            i.fd, i.key, i.fd
        ))
    })
}
