//! Page pipes: the parasite `vmsplice`s the chosen pages into a pipe (no
//! copy: the pipe holds references to the task's pages), and we `splice`
//! the pipe into `pages-<id>.img`, writing one `pagemap_entry` per run.
//! A batch never holds more than the pipe's capacity, so the tool's memory
//! stays bounded whatever the task's size.

use std::fs::File;
use std::os::fd::AsFd;

use rustix::pipe::{PipeFlags, SpliceFlags};

use super::pages::PageRange;
use crate::blob::parasite_abi::{CMD_DUMPPAGES, DumpPagesArgs, IoVec};
use crate::images::pb;
use crate::infect::{Daemon, InfectError};

/// Pipe size we ask for (the kernel caps it at `pipe-max-size`).
const PIPE_WANT: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PageXferError {
    #[error("creating a page pipe: {0}")]
    Pipe(rustix::io::Errno),
    #[error("moving pages through the parasite: {0}")]
    Parasite(#[from] InfectError),
    #[error("splicing pages into {file}: {source}")]
    Splice {
        file: String,
        source: rustix::io::Errno,
    },
    #[error("splicing pages into {file}: the pipe ran dry after {done} of {want} bytes")]
    Short { file: String, done: u64, want: u64 },
}

/// What was dumped: the pagemap entries (without the head) and the count.
#[derive(Debug, Default)]
pub struct DumpedPages {
    pub entries: Vec<pb::PagemapEntry>,
    pub pages: u64,
    /// Pages marked `PE_LAZY`.
    pub lazy_pages: u64,
    /// Batches (a pipe each) and iovecs handed to the parasite.
    pub pipes: u64,
    pub iovs: u64,
    /// Time spent splicing pipes into the pages image.
    pub write_time: std::time::Duration,
}

/// Move the pages of `ranges` into `pages_file` (named `file` in errors)
/// through the parasite, and return their pagemap entries.
pub fn dump_pages(
    daemon: &mut Daemon<'_, '_>,
    ranges: &[PageRange],
    pages_file: &File,
    file: &str,
    page_size: u64,
) -> Result<DumpedPages, PageXferError> {
    let hdr = size_of::<DumpPagesArgs>();
    let iov_size = size_of::<IoVec>();
    let max_iovs = (daemon.args().len() - hdr) / iov_size;
    let mut out = DumpedPages::default();
    let mut pending: Vec<PageRange> = Vec::new();
    let mut pending_bytes = 0u64;
    let (mut rd, mut wr) = new_pipe()?;
    // As big as allowed: our wish, else the unprivileged maximum, else
    // whatever the pipe has.
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let cap = rustix::pipe::fcntl_setpipe_size(&wr, PIPE_WANT)
        .or_else(|_| rustix::pipe::fcntl_setpipe_size(&wr, max.min(PIPE_WANT)))
        .or_else(|_| rustix::pipe::fcntl_getpipe_size(&wr))
        .map_err(PageXferError::Pipe)? as u64;
    let cap = cap / page_size * page_size;

    let mut flush = |pending: &mut Vec<PageRange>,
                     pending_bytes: &mut u64,
                     rd: &mut rustix::fd::OwnedFd,
                     wr: &mut rustix::fd::OwnedFd,
                     daemon: &mut Daemon<'_, '_>|
     -> Result<(), PageXferError> {
        if pending.is_empty() {
            return Ok(());
        }
        let args = daemon.args_mut();
        let mut off = 0;
        let mut put = |v: u64| {
            args[off..off + 8].copy_from_slice(&v.to_ne_bytes());
            off += 8;
        };
        put(pending.len() as u64);
        put(*pending_bytes);
        for r in pending.iter() {
            put(r.start);
            put(r.end - r.start);
        }
        daemon.call_with_fd(CMD_DUMPPAGES, wr.as_fd())?;
        let t = std::time::Instant::now();
        splice_all(rd, pages_file, *pending_bytes, file)?;
        out.write_time += t.elapsed();
        out.pipes += 1;
        out.iovs += pending.len() as u64;
        for r in pending.iter() {
            let nr = (r.end - r.start) / page_size;
            out.pages += nr;
            if r.flags & super::pe::LAZY != 0 {
                out.lazy_pages += nr;
            }
            out.entries.push(pb::PagemapEntry {
                vaddr: r.start,
                compat_nr_pages: 0,
                in_parent: None,
                flags: Some(r.flags),
                nr_pages: Some(nr),
            });
        }
        pending.clear();
        *pending_bytes = 0;
        // A fresh pipe per batch: the parasite's end was gifted pages.
        let (r2, w2) = new_pipe()?;
        let _ = rustix::pipe::fcntl_setpipe_size(&w2, cap as usize);
        *rd = r2;
        *wr = w2;
        Ok(())
    };

    for r in ranges {
        let mut start = r.start;
        while start < r.end {
            let room = cap - pending_bytes;
            if room == 0 || pending.len() == max_iovs {
                flush(&mut pending, &mut pending_bytes, &mut rd, &mut wr, daemon)?;
                continue;
            }
            let end = r.end.min(start + room);
            pending.push(PageRange {
                start,
                end,
                flags: r.flags,
            });
            pending_bytes += end - start;
            start = end;
        }
    }
    flush(&mut pending, &mut pending_bytes, &mut rd, &mut wr, daemon)?;
    // Merge entries split only by batch boundaries, as one run.
    out.entries = merge(out.entries, page_size);
    Ok(out)
}

fn new_pipe() -> Result<(rustix::fd::OwnedFd, rustix::fd::OwnedFd), PageXferError> {
    rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(PageXferError::Pipe)
}

fn splice_all(
    rd: &rustix::fd::OwnedFd,
    out: &File,
    want: u64,
    file: &str,
) -> Result<(), PageXferError> {
    let mut done = 0u64;
    while done < want {
        let n = rustix::pipe::splice(
            rd,
            None,
            out,
            None,
            (want - done) as usize,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        )
        .map_err(|source| PageXferError::Splice {
            file: file.to_string(),
            source,
        })?;
        if n == 0 {
            return Err(PageXferError::Short {
                file: file.to_string(),
                done,
                want,
            });
        }
        done += n as u64;
    }
    Ok(())
}

fn merge(entries: Vec<pb::PagemapEntry>, page_size: u64) -> Vec<pb::PagemapEntry> {
    let mut out: Vec<pb::PagemapEntry> = Vec::with_capacity(entries.len());
    for e in entries {
        if let Some(last) = out.last_mut() {
            let last_nr = last.nr_pages.unwrap_or(0);
            if last.flags == e.flags && last.vaddr + last_nr * page_size == e.vaddr {
                last.nr_pages = Some(last_nr + e.nr_pages.unwrap_or(0));
                continue;
            }
        }
        out.push(e);
    }
    out
}
