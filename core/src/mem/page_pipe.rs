//! Page pipes: the parasite `vmsplice`s the chosen pages into a pipe (no
//! copy: the pipe holds references to the task's pages), and we `splice`
//! the pipe into `pages-<id>.img`, writing one `pagemap_entry` per run.
//!
//! Both ends stream at once: a batch is as many runs as one command's
//! argument block describes (thousands of iovecs, any number of bytes); the
//! parasite blocks whenever the pipe is full, and a thread of ours drains it
//! into the image meanwhile. One round trip per batch instead of one per
//! pipeful, and the two copies' halves (the parasite pinning pages, our
//! write into the image) overlap. The pipe never holds more than its
//! capacity, so the tool's memory stays bounded whatever the task's size.
//!
//! Where the pages go is a [`PageDest`]: the pages image, or a page server
//! connection (each run then goes out as a `PS_IOV_ADD_F` header followed
//! by its pages, spliced from the pipe into the socket).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rustix::pipe::{PipeFlags, SpliceFlags};

use super::pages::PageRange;
use crate::blob::parasite_abi::{CMD_DUMPPAGES, DumpPagesArgs, IoVec};
use crate::images::pb;
use crate::infect::{Daemon, InfectError};
use crate::page_server::wire::Iov;
use crate::page_server::{ClientError, Connection, Target};

/// Pipe size we ask for (the kernel caps it at `pipe-max-size` without
/// `CAP_SYS_RESOURCE`).
const PIPE_WANT: usize = 4 << 20;
/// Longest single iovec: `vmsplice` moves at most `MAX_RW_COUNT` (just under
/// 2 GiB) per call; longer runs are split.
const MAX_IOV_LEN: u64 = 1 << 30;
/// Images smaller than this are written without a second thread
/// allocating their pages ahead (see `sys::prefault`).
const PREFAULT_MIN: u64 = 8 << 20;
/// Bytes of the image mapped and faulted in at a time.
const PREFAULT_WINDOW: u64 = 256 << 10;

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
    #[error(
        "splicing pages into {file}: stopped after {done} of {want} bytes (the parasite failed)"
    )]
    Cancelled { file: String, done: u64, want: u64 },
    #[error("the thread writing {file} panicked")]
    Writer { file: String },
    #[error(transparent)]
    PageServer(#[from] ClientError),
}

/// Where dumped pages go.
#[derive(Clone, Copy, Debug)]
pub enum PageDest<'a> {
    /// `pages-<id>.img`, named `name` in errors.
    Image { file: &'a File, name: &'a str },
    /// A page server, into the pagemap `target`.
    Server {
        conn: &'a Connection,
        target: Target,
    },
}

impl PageDest<'_> {
    fn name(&self) -> &str {
        match self {
            PageDest::Image { name, .. } => name,
            PageDest::Server { .. } => "the page server",
        }
    }
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
    /// CPU time spent splicing pipes into the pages image (the writer
    /// thread's, so waiting for the parasite is not counted).
    pub write_time: Duration,
}

/// Move the pages of `ranges` to `dest` through the parasite, and return
/// their pagemap entries.
pub fn dump_pages(
    daemon: &mut Daemon<'_, '_>,
    ranges: &[PageRange],
    dest: PageDest<'_>,
    page_size: u64,
) -> Result<DumpedPages, PageXferError> {
    let hdr = size_of::<DumpPagesArgs>();
    let max_iovs = (daemon.args().len() - hdr) / size_of::<IoVec>();
    let pipe_size = pipe_size()?;
    let mut out = DumpedPages::default();
    let total: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
    let ahead = match dest {
        PageDest::Image { file, .. } => prefault_file(file, total),
        PageDest::Server { conn, target } => {
            conn.open(target)?;
            None
        }
    };
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    std::thread::scope(|s| {
        if let Some(f) = &ahead {
            s.spawn(|| prefault(f, total, &written, &stop));
        }
        let mut send_all = || -> Result<(), PageXferError> {
            let mut batch: Vec<PageRange> = Vec::new();
            for r in ranges {
                let mut start = r.start;
                while start < r.end {
                    if batch.len() == max_iovs {
                        send_batch(daemon, &batch, dest, pipe_size, &written, &mut out)?;
                        batch.clear();
                    }
                    let end = r.end.min(start + MAX_IOV_LEN);
                    batch.push(PageRange {
                        start,
                        end,
                        flags: r.flags,
                        dirty: r.dirty,
                    });
                    start = end;
                }
            }
            if !batch.is_empty() {
                send_batch(daemon, &batch, dest, pipe_size, &written, &mut out)?;
            }
            Ok(())
        };
        let res = send_all();
        stop.store(true, Ordering::Relaxed);
        res
    })?;
    let mut runs = Vec::new();
    for r in ranges.iter().filter(|r| r.end > r.start) {
        let nr = (r.end - r.start) / page_size;
        out.pages += nr;
        if r.flags & super::pe::LAZY != 0 {
            out.lazy_pages += nr;
        }
        runs.push((r.start, nr, r.flags));
    }
    // Touching runs with equal flags as one entry, whatever split them.
    out.entries = crate::images::pagemap::merged(runs, page_size);
    Ok(out)
}

/// The pages image opened again for reading and writing, sized to `total`,
/// when allocating its pages from a second thread pays: a large image and
/// a second CPU to run on. `None` otherwise, or if anything fails (the
/// writer then allocates the pages itself, as it always can).
fn prefault_file(pages_file: &File, total: u64) -> Option<File> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if total < PREFAULT_MIN || cpus < 2 {
        return None;
    }
    // The image is opened write-only; a shared writable mapping needs
    // read access too.
    let fd = std::os::fd::AsRawFd::as_raw_fd(pages_file);
    let f = File::options()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{fd}"))
        .ok()?;
    f.set_len(total).ok()?;
    Some(f)
}

/// Fault in the pages of `f` (sized `total`) window by window, from the end
/// backwards, until meeting the writer (`written` bytes from the start) or
/// told to `stop`: the two never fight over the same pages, and whatever
/// is left between them the writer allocates itself. On any failure just
/// stop.
fn prefault(f: &File, total: u64, written: &AtomicU64, stop: &AtomicBool) {
    let mut at = total;
    while !stop.load(Ordering::Relaxed) {
        let start = at.saturating_sub(PREFAULT_WINDOW);
        if start <= written.load(Ordering::Relaxed) + PREFAULT_WINDOW {
            return;
        }
        if crate::sys::prefault::populate_file_range(f, start, (at - start) as usize).is_err() {
            return;
        }
        at = start;
    }
}

/// The pipe size to ask for: our wish if allowed, else `pipe-max-size`.
pub(super) fn pipe_size() -> Result<usize, PageXferError> {
    let (_rd, wr) = new_pipe()?;
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(0);
    rustix::pipe::fcntl_setpipe_size(&wr, PIPE_WANT)
        .or_else(|_| rustix::pipe::fcntl_setpipe_size(&wr, max.min(PIPE_WANT)))
        .or_else(|_| rustix::pipe::fcntl_getpipe_size(&wr))
        .map_err(PageXferError::Pipe)
}

/// One command's worth: the parasite fills a fresh pipe with `batch` while
/// a writer thread splices it into the image.
fn send_batch(
    daemon: &mut Daemon<'_, '_>,
    batch: &[PageRange],
    dest: PageDest<'_>,
    pipe_size: usize,
    written: &AtomicU64,
    out: &mut DumpedPages,
) -> Result<(), PageXferError> {
    let total = put_batch_args(daemon, batch.iter().map(|r| (r.start, r.end - r.start)));
    let (rd, wr) = new_pipe()?;
    // Best effort: a smaller pipe only means more wake-ups.
    let _ = rustix::pipe::fcntl_setpipe_size(&wr, pipe_size);
    let (cancel_rd, cancel_wr) = new_pipe()?;
    let (called, written) = std::thread::scope(|s| {
        let writer = s.spawn(|| match dest {
            PageDest::Image { file, name } => drain(rd, &cancel_rd, file, total, name, written),
            PageDest::Server { conn, target } => {
                drain_to_server(rd, &cancel_rd, conn, target, batch, written)
            }
        });
        // Our copy of the write end goes as soon as the parasite has its
        // own: when the parasite closes it (done or failed), the writer
        // sees the end of the pipe.
        let called = daemon.call_with_fd(CMD_DUMPPAGES, wr.as_fd());
        drop(wr);
        if called.is_err() {
            // The parasite may be gone without closing its end (a task
            // stopped by a fault keeps its fds): tell the writer to stop
            // waiting for pages that will never come.
            let _ = rustix::io::write(&cancel_wr, &[1]);
        }
        let written = writer.join().unwrap_or_else(|_| {
            Err(PageXferError::Writer {
                file: dest.name().to_string(),
            })
        });
        (called, written)
    });
    // The parasite's error says more than the short pipe it leaves behind.
    called?;
    out.write_time += written?;
    out.pipes += 1;
    out.iovs += batch.len() as u64;
    Ok(())
}

/// Writes `CMD_DUMPPAGES`' arguments for `runs` (`(addr, len)`) into the
/// daemon's argument area: their count, their total length, then each
/// run. Returns the total.
pub(super) fn put_batch_args(
    daemon: &mut Daemon<'_, '_>,
    runs: impl ExactSizeIterator<Item = (u64, u64)> + Clone,
) -> u64 {
    let total: u64 = runs.clone().map(|(_, n)| n).sum();
    let args = daemon.args_mut();
    let mut off = 0;
    let mut put = |v: u64| {
        args[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        off += 8;
    };
    put(runs.len() as u64);
    put(total);
    for (a, n) in runs {
        put(a);
        put(n);
    }
    total
}

/// Runs `f`, reading the pipe to its end should it fail (see [`drain`]);
/// returns the CPU time it took.
fn timed_drain(
    rd: &OwnedFd,
    cancel: &OwnedFd,
    f: impl FnOnce() -> Result<(), PageXferError>,
) -> Result<Duration, PageXferError> {
    let cpu = || rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let t0 = cpu();
    let res = f();
    let t1 = cpu();
    if res.is_err() {
        discard(rd, cancel);
    }
    res.map(|()| {
        let ns = |t: rustix::time::Timespec| t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128;
        Duration::from_nanos(u64::try_from(ns(t1) - ns(t0)).unwrap_or(0))
    })
}

/// Splice `want` bytes from `rd` into `out`; returns the CPU time it took.
/// On a failure the pipe is still read to its end (and the pages dropped),
/// so the parasite never writes into a pipe without a reader, which would
/// raise `SIGPIPE` in the dumped task. Either stops early once `cancel`
/// becomes readable.
fn drain(
    rd: OwnedFd,
    cancel: &OwnedFd,
    out: &File,
    want: u64,
    file: &str,
    written: &AtomicU64,
) -> Result<Duration, PageXferError> {
    timed_drain(&rd, cancel, || {
        splice_all(&rd, cancel, out, want, file, written)
    })
}

/// Send the runs of `batch` to a page server as they come out of `rd`: a
/// `PS_IOV_ADD_F` header each, then its pages spliced into the socket.
/// Fails as [`drain`] does, reading the pipe to its end.
fn drain_to_server(
    rd: OwnedFd,
    cancel: &OwnedFd,
    conn: &Connection,
    target: Target,
    batch: &[PageRange],
    written: &AtomicU64,
) -> Result<Duration, PageXferError> {
    let page_size = crate::proc::page_size() as u64;
    let send = || -> Result<(), PageXferError> {
        for r in batch {
            let len = r.end - r.start;
            // Runs are at most MAX_IOV_LEN long: their page count fits.
            let nr = u32::try_from(len / page_size).unwrap_or(u32::MAX);
            conn.send(Iov::add(r.flags, nr, r.start, target.dst_id()), "pages")?;
            splice_all(&rd, cancel, conn.socket(), len, "the page server", written)?;
        }
        Ok(())
    };
    timed_drain(&rd, cancel, send)
}

/// Read `rd` to its end (or until `cancel`) into `/dev/null`.
fn discard(rd: &OwnedFd, cancel: &OwnedFd) {
    let Ok(null) = File::options().write(true).open("/dev/null") else {
        return;
    };
    loop {
        match rustix::pipe::splice(
            rd,
            None,
            &null,
            None,
            1 << 30,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        ) {
            Ok(0) => return,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                if !wait_readable(rd, cancel) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Block until `rd` has data or its end (true) or `cancel` is readable or
/// polling fails (false).
fn wait_readable(rd: &OwnedFd, cancel: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags};
    loop {
        let mut fds = [
            PollFd::new(rd, PollFlags::IN),
            PollFd::new(cancel, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => return fds[1].revents().is_empty(),
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

pub(super) fn new_pipe() -> Result<(OwnedFd, OwnedFd), PageXferError> {
    rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(PageXferError::Pipe)
}

/// Splice exactly `want` bytes from `rd` into `out`, waiting while the pipe
/// is empty, adding each step to `written`; the end of the pipe before that
/// is [`PageXferError::Short`], `cancel` becoming readable
/// [`PageXferError::Cancelled`].
pub(super) fn splice_all(
    rd: &OwnedFd,
    cancel: &OwnedFd,
    out: impl AsFd,
    want: u64,
    file: &str,
    written: &AtomicU64,
) -> Result<(), PageXferError> {
    let mut done = 0u64;
    while done < want {
        crate::fault::call(
            &format_args!("writing pages to {file}"),
            rustix::io::Errno::NOSPC,
        )
        .map_err(|source| PageXferError::Splice {
            file: file.to_string(),
            source,
        })?;
        let n = match rustix::pipe::splice(
            rd,
            None,
            &out,
            None,
            (want - done).min(MAX_IOV_LEN) as usize,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        ) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => {
                if !wait_readable(rd, cancel) {
                    return Err(PageXferError::Cancelled {
                        file: file.to_string(),
                        done,
                        want,
                    });
                }
                continue;
            }
            Err(source) => {
                return Err(PageXferError::Splice {
                    file: file.to_string(),
                    source,
                });
            }
        };
        if n == 0 {
            return Err(PageXferError::Short {
                file: file.to_string(),
                done,
                want,
            });
        }
        done += n as u64;
        written.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(())
}
