//! A pre-dump's pages, written once the tree runs again, so that the tree
//! is frozen only while its pages are collected (CRIU's two
//! `--pre-dump-mode`s):
//!
//! - `splice` (the default): while the task is frozen the parasite
//!   `vmsplice`s its pages into pipes that each hold their whole batch
//!   (references to the pages, no copy); after the tree is let go the
//!   pipes are spliced into `pages-N.img`. A page the task writes in
//!   between may reach the image with its newer contents: it is written
//!   since the protection, so the next round saves it again anyway.
//! - `read`: nothing is moved while frozen; after the tree is let go the
//!   pages are read with `process_vm_readv`. Pages that cannot be read by
//!   then (unmapped meanwhile, or not readable: CRIU leaves non-readable
//!   VMAs to the final dump too) are left out of the pagemap, so the next
//!   round finds them missing from its parent and saves them.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicU64;

use super::PageRange;
use super::page_pipe::{PageXferError, new_pipe, pipe_size, put_batch_args, splice_all};
use crate::blob::parasite_abi::{CMD_DUMPPAGES, DumpPagesArgs, IoVec};
use crate::images::pb::PagemapEntry;
use crate::infect::Daemon;

/// How the pages get to the image.
#[derive(Debug)]
pub enum How {
    /// Pipes the parasite filled, in address order, with their bytes.
    Pipes(Vec<(OwnedFd, u64)>),
    /// To be read from the running task.
    Read,
}

/// A task's pre-dump pages still to be written.
#[derive(Debug)]
pub struct DeferredPages {
    pub pid: i32,
    pub how: How,
    /// The pages (in address order, as their pagemap entries).
    pub ranges: Vec<PageRange>,
    pub file: File,
    pub name: String,
}

/// What was written: the pagemap entries of the pages that are in the
/// image, and their count.
#[derive(Debug, Default)]
pub struct Written {
    pub entries: Vec<PagemapEntry>,
    pub pages: u64,
}

/// Have the parasite put `ranges` into pipes big enough for each batch
/// (so that it never waits for a reader). `None` if the pipes cannot hold
/// even one page each (then write while frozen instead).
pub fn hold_in_pipes(
    daemon: &mut Daemon<'_, '_>,
    ranges: &[PageRange],
    page_size: u64,
) -> Result<Option<Vec<(OwnedFd, u64)>>, PageXferError> {
    raise_nofile();
    let capacity = pipe_size()? as u64 / page_size * page_size;
    if capacity == 0 {
        return Ok(None);
    }
    let hdr = size_of::<DumpPagesArgs>();
    let max_iovs = (daemon.args().len() - hdr) / size_of::<IoVec>();
    let mut pipes = Vec::new();
    let mut batch: Vec<(u64, u64)> = Vec::new();
    let mut room = capacity;
    for r in ranges {
        let mut at = r.start;
        while at < r.end {
            if room == 0 || batch.len() == max_iovs {
                pipes.push(fill_pipe(daemon, &batch, capacity)?);
                batch.clear();
                room = capacity;
            }
            let n = (r.end - at).min(room);
            batch.push((at, n));
            room -= n;
            at += n;
        }
    }
    if !batch.is_empty() {
        pipes.push(fill_pipe(daemon, &batch, capacity)?);
    }
    Ok(Some(pipes))
}

/// One pipe of `capacity` bytes filled with `batch` (`(addr, len)`, which
/// fits).
fn fill_pipe(
    daemon: &mut Daemon<'_, '_>,
    batch: &[(u64, u64)],
    capacity: u64,
) -> Result<(OwnedFd, u64), PageXferError> {
    let total: u64 = batch.iter().map(|b| b.1).sum();
    let (rd, wr) = new_pipe()?;
    let got =
        rustix::pipe::fcntl_setpipe_size(&wr, capacity as usize).map_err(PageXferError::Pipe)?;
    if (got as u64) < total {
        return Err(PageXferError::Pipe(rustix::io::Errno::NOMEM));
    }
    put_batch_args(daemon, batch.iter().copied());
    daemon.call_with_fd(CMD_DUMPPAGES, wr.as_fd())?;
    drop(wr);
    Ok((rd, total))
}

/// Many pipes may be held at once: allow as many fds as the hard limit.
fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
}

impl DeferredPages {
    /// Write the pages into the image (the tree runs again).
    pub fn write(self, page_size: u64) -> Result<Written, PageXferError> {
        let runs = match self.how {
            How::Pipes(pipes) => {
                let (cancel, _keep) = new_pipe()?;
                let written = AtomicU64::new(0);
                for (rd, n) in pipes {
                    splice_all(&rd, &cancel, &self.file, n, &self.name, &written)?;
                }
                self.ranges
                    .iter()
                    .map(|r| (r.start, (r.end - r.start) / page_size, r.flags))
                    .collect()
            }
            How::Read => read_all(self.pid, &self.ranges, &self.file, &self.name, page_size)?,
        };
        let pages = runs.iter().map(|r: &(u64, u64, u32)| r.1).sum();
        Ok(Written {
            entries: crate::images::pagemap::merged(runs, page_size),
            pages,
        })
    }
}

/// Bytes read from the task at a time.
const READ_CHUNK: u64 = 1 << 20;

/// Read `ranges` of the running task `pid` into `out`: the runs read
/// (`(vaddr, pages, flags)`), pages that could not be read left out.
fn read_all(
    pid: i32,
    ranges: &[PageRange],
    out: &File,
    name: &str,
    page: u64,
) -> Result<Vec<(u64, u64, u32)>, PageXferError> {
    let mut buf = vec![0u8; READ_CHUNK as usize];
    let mut runs: Vec<(u64, u64, u32)> = Vec::new();
    let mut off = 0u64;
    let mut skipped = 0u64;
    for r in ranges {
        let mut at = r.start;
        while at < r.end {
            let want = (r.end - at).min(READ_CHUNK) as usize;
            let got = crate::sys::vm_rw::read_at(pid, at, &mut buf[..want]).unwrap_or(0);
            let whole = got as u64 / page * page;
            if whole > 0 {
                out.write_all_at(&buf[..whole as usize], off).map_err(|e| {
                    PageXferError::Splice {
                        file: name.to_string(),
                        source: rustix::io::Errno::from_io_error(&e)
                            .unwrap_or(rustix::io::Errno::IO),
                    }
                })?;
                off += whole;
                match runs.last_mut() {
                    Some(l) if l.0 + l.1 * page == at && l.2 == r.flags => l.1 += whole / page,
                    _ => runs.push((at, whole / page, r.flags)),
                }
                at += whole;
            }
            if (whole as usize) < want {
                // The page at `at` cannot be read: left to the next round.
                at += page;
                skipped += 1;
            }
        }
    }
    if skipped > 0 {
        crate::pr_info!("Task {pid}: {skipped} pages could not be read, left to the next dump");
    }
    Ok(runs)
}
