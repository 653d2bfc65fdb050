//! What is read about a task's fds before they go into the dump's file
//! table (see [`super::table::FileTable`]): each fd's `/proc` link and
//! fdinfo, and from a copy of it its owner, its socket family or its
//! file's metadata; many fds are read by several threads at once.

use super::table::FilesError;
use crate::images::pb;
use crate::proc::ProcDir;
use crate::proc::task::FdTarget;

const O_CLOEXEC: u32 = linux_raw_sys::general::O_CLOEXEC;
const O_PATH: u32 = linux_raw_sys::general::O_PATH;

/// What is read about one fd before it goes into the file table.
pub struct FdRead {
    pub fd: i32,
    pub target: FdTarget,
    pub info: crate::proc::fdinfo::FdInfo,
    /// Its file's metadata (through `/proc/PID/fd/N`), for one opened by
    /// path.
    pub meta: Option<std::fs::Metadata>,
    /// A socket's address family.
    pub family: Option<u16>,
    /// Its owner (`F_SETOWN`/`F_SETSIG`), if any: used when it is a new
    /// open file (its error too, only then).
    pub fown: Result<Option<pb::FownEntry>, FilesError>,
}

fn read_fd(proc: &ProcDir, fd: i32) -> Result<FdRead, FilesError> {
    let pid = proc.pid();
    let target = proc.fd_target(fd)?;
    let info = proc.fdinfo(fd)?;
    let ctx = super::FdCtx {
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
                super::fown::dump_from(&ctx, &copy).map_err(FilesError::from)
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
pub fn read_fds(proc: &ProcDir, fds: &[i32]) -> Result<Vec<FdRead>, FilesError> {
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
