//! A task's fds for `fdinfo-<id>.img`, their file objects added to the
//! dump's [`FileTable`] by the kind of [`crate::files::KINDS`] that
//! claims each; fds sharing one open file description (dup, inherited
//! across fork) share one object, found with kcmp. An fd no kind claims
//! is refused, naming it.

use crate::files::file_ids::{FdKey, Lookup};
pub use crate::files::table::FdOpts;
use crate::files::table::{FdView, FileTable, FilesError};
use crate::images::pb;
use crate::proc::ProcDir;
use crate::proc::task::FdTarget;

/// `O_CLOEXEC`: per-fd, stored in `fdinfo_entry.flags` as `FD_CLOEXEC`.
const O_CLOEXEC: u32 = linux_raw_sys::general::O_CLOEXEC;
const O_PATH: u32 = linux_raw_sys::general::O_PATH;
const FD_CLOEXEC: u32 = linux_raw_sys::general::FD_CLOEXEC;

/// The task's fds as `fdinfo` entries, their file objects added to `files`.
/// Fds sharing one open file description (dup, inherited) share its id.
pub fn collect_fds(
    proc: &ProcDir,
    files: &mut FileTable,
    opts: FdOpts,
) -> Result<Vec<pb::FdinfoEntry>, FilesError> {
    let pid = proc.pid();
    let mut out: Vec<pb::FdinfoEntry> = Vec::new();
    let fds = proc.fds()?;
    for r in read_fds(proc, &fds)? {
        let FdRead {
            fd,
            target,
            info,
            meta,
            family,
            fown,
        } = r;
        // What a description shows alike in all its fds groups candidates;
        // kcmp tells the open files apart.
        let key = FdKey {
            ino: info.ino.unwrap_or(0),
            pos: info.pos,
            flags: info.flags & !O_CLOEXEC,
        };
        let (shared, slot) = match files.seen_fds.find(pid, fd, key) {
            Lookup::Shared(id) => (Some(id), None),
            Lookup::New(slot) => (None, Some(slot)),
        };
        let fd_flags = if info.flags & O_CLOEXEC != 0 {
            FD_CLOEXEC
        } else {
            0
        };
        let (id, kind) = match shared {
            Some(id) => (id, files.file_kind(id)),
            None => {
                let view = FdView {
                    ctx: crate::files::FdCtx {
                        pid,
                        fd,
                        flags: info.flags & !O_CLOEXEC,
                    },
                    target: &target,
                    info: &info,
                    meta: meta.as_ref(),
                    family,
                    task_fds: &fds,
                    opts,
                };
                let Some(kind) = crate::files::claiming(&view) else {
                    // A copy of the fd that could not be taken says more
                    // than "unknown".
                    fown?;
                    return Err(view.unsupported());
                };
                let id = kind.dump(files, &view)?;
                if let Some(fown) = fown? {
                    files.fowns.push((id, fown));
                }
                (id, kind.fd_type() as i32)
            }
        };
        files.locks.note(
            pid,
            fd,
            id,
            info.ino.unwrap_or(0),
            &info.locks,
            opts.file_locks,
        )?;
        files.seen_fds.insert(pid, fd, key, id, slot);
        out.push(pb::FdinfoEntry {
            id,
            flags: fd_flags,
            r#type: kind,
            fd: fd as u32,
            ..Default::default()
        });
    }
    Ok(out)
}

/// What is read about one fd before it goes into the file table.
struct FdRead {
    fd: i32,
    target: FdTarget,
    info: crate::proc::fdinfo::FdInfo,
    /// Its file's metadata (through `/proc/PID/fd/N`), for one opened by
    /// path.
    meta: Option<std::fs::Metadata>,
    /// A socket's address family.
    family: Option<u16>,
    /// Its owner (`F_SETOWN`/`F_SETSIG`), if any: used when it is a new
    /// open file (its error too, only then).
    fown: Result<Option<pb::FownEntry>, FilesError>,
}

fn read_fd(proc: &ProcDir, fd: i32) -> Result<FdRead, FilesError> {
    let pid = proc.pid();
    let target = proc.fd_target(fd)?;
    let info = proc.fdinfo(fd)?;
    let ctx = crate::files::FdCtx {
        pid,
        fd,
        flags: info.flags & !O_CLOEXEC,
    };
    // One copy of the file serves its owner and its metadata (an fstat of
    // it costs less than a stat through /proc/PID/fd/N).
    let (meta, family, fown) = match ctx.steal("file") {
        Ok(copy) => {
            // An O_PATH file has no owner: fcntl(F_GETOWN_EX) on it fails
            // with EBADF.
            let fown = if ctx.flags & O_PATH != 0 {
                Ok(None)
            } else {
                crate::files::fown::dump_from(&ctx, &copy).map_err(FilesError::from)
            };
            let family = match &target {
                FdTarget::Socket(_) => rustix::net::sockopt::socket_domain(&copy)
                    .ok()
                    .map(|f| f.as_raw()),
                _ => None,
            };
            let meta = match &target {
                FdTarget::Path(_) => std::fs::File::from(copy).metadata().ok(),
                _ => None,
            };
            (meta, family, fown)
        }
        Err(e) => (None, None, Err(e.into())),
    };
    Ok(FdRead {
        fd,
        target,
        info,
        meta,
        family,
        fown,
    })
}

/// Fds per thread below which one thread reads them all.
const FDS_PER_THREAD: usize = 256;

/// [`read_fd`] of every fd of `fds`, in order: a task with many fds is
/// read by several threads at once (the reads only look at /proc and at
/// copies of the fds; the file table is filled in order afterwards).
fn read_fds(proc: &ProcDir, fds: &[i32]) -> Result<Vec<FdRead>, FilesError> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Two per CPU: each waits for the kernel as much as it computes.
    let threads = fds.len().div_ceil(FDS_PER_THREAD).min(2 * cpus).max(1);
    if threads == 1 {
        return fds.iter().map(|&fd| read_fd(proc, fd)).collect();
    }
    let chunk = fds.len().div_ceil(threads);
    let parts: Vec<Result<Vec<FdRead>, FilesError>> = std::thread::scope(|s| {
        let handles: Vec<_> = fds
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|&fd| read_fd(proc, fd)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::with_capacity(fds.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}
