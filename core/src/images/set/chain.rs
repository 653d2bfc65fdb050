//! A task's pages across the parent chain of an iterative dump: entries
//! flagged `PE_PARENT` (or, in old images, `in_parent`) have their pages
//! in the `parent` link's images, found there by address, recursively
//! (the parent's entry may itself point to its own parent), as CRIU's
//! restore reads them.
//!
//! The whole chain is read and checked before any task exists: a missing
//! `parent` link, a parent without the task's pagemap or pages, or a
//! parent that lacks a page its child says it has is refused by name.
//! The pages are then gathered, in address order, into one sealed-off
//! memfd which the restore reads like a pages image (so the restorer
//! reads one file whatever the chain's length; the cost is a copy of the
//! task's dumped pages in memory while it is restored).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::images::check::{CheckError, invalid};
use crate::images::kinds::Kind;
use crate::images::pagemap::{self, PagesRun};

/// The link to the parent images in an images directory (CRIU's
/// `CR_PARENT_LINK`).
pub const PARENT_LINK: &str = "parent";
/// Longest chain followed (a link loop ends here).
const MAX_DEPTH: usize = 64;

/// A task's pages once the chain is resolved.
#[derive(Debug)]
pub struct TaskPages {
    pub runs: Vec<PagesRun>,
    /// The file the runs' offsets point into.
    pub path: PathBuf,
    /// Keeps a gathered memfd (`path` is its `/proc/self/fd` name) open.
    pub keep: Option<Arc<OwnedFd>>,
}

/// Where a piece of the task's memory is stored.
#[derive(Clone, Copy, Debug)]
struct Piece {
    vaddr: u64,
    len: u64,
    /// Index into the layers' pages files.
    src: usize,
    offset: u64,
}

/// The pages of task `pid` whose pagemap is in `dir`.
pub fn task_pages(dir: &Path, pid: u64, page_size: u64) -> Result<TaskPages, CheckError> {
    let pm_path = dir.join(Kind::Pagemap.file_name(pid));
    let pm = pagemap::read(&pm_path, page_size)?;
    let pages_path = dir.join(Kind::Pages.file_name(u64::from(pm.pages_id)));
    if !pm.in_parent {
        return Ok(TaskPages {
            runs: pm.runs,
            path: pages_path,
            keep: None,
        });
    }
    let mut files = Vec::new();
    let pieces = layer(dir, pid, page_size, 0, &mut files)?;
    gather(&pieces, &files, page_size)
}

/// The pieces of one layer (`dir`) of the chain, in address order, its
/// pages files added to `files`.
fn layer(
    dir: &Path,
    pid: u64,
    page_size: u64,
    depth: usize,
    files: &mut Vec<(PathBuf, File)>,
) -> Result<Vec<Piece>, CheckError> {
    let pm_path = dir.join(Kind::Pagemap.file_name(pid));
    let pm_name = pm_path.display().to_string();
    if !pm_path.exists() {
        return Err(invalid(
            pm_name,
            "missing: a later dump says the task's pages are here".into(),
        ));
    }
    let pm = pagemap::read(&pm_path, page_size)?;
    let pages_path = dir.join(Kind::Pages.file_name(u64::from(pm.pages_id)));
    let file = File::open(&pages_path)
        .map_err(|e| invalid(pages_path.display().to_string(), e.to_string()))?;
    let len = file
        .metadata()
        .map_err(|e| invalid(pages_path.display().to_string(), e.to_string()))?
        .len();
    let src = files.len();
    let mut pieces: Vec<Piece> = Vec::new();
    for r in &pm.runs {
        let bytes = r.nr_pages.saturating_mul(page_size);
        if r.offset.saturating_add(bytes) > len {
            return Err(invalid(
                pages_path.display().to_string(),
                format!(
                    "{len} bytes, but {pm_name} has pages up to byte {}",
                    r.offset.saturating_add(bytes)
                ),
            ));
        }
        pieces.push(Piece {
            vaddr: r.vaddr,
            len: bytes,
            src,
            offset: r.offset,
        });
    }
    files.push((pages_path, file));
    if pm.in_parent {
        let parent_dir = dir.join(PARENT_LINK);
        if depth + 1 >= MAX_DEPTH {
            return Err(invalid(
                pm_name,
                format!("the parent chain is longer than {MAX_DEPTH} (a loop?)"),
            ));
        }
        if !parent_dir.is_dir() {
            return Err(invalid(
                pm_name,
                format!(
                    "has pages in the parent images, but {} is no directory",
                    parent_dir.display()
                ),
            ));
        }
        let parent = layer(&parent_dir, pid, page_size, depth + 1, files)?;
        for r in &pm.parent_runs {
            let (start, end) = (r.vaddr, r.vaddr + r.nr_pages * page_size);
            let mut at = start;
            let first = parent.partition_point(|p| p.vaddr + p.len <= start);
            for p in parent[first..].iter().take_while(|p| p.vaddr < end) {
                if p.vaddr > at {
                    break;
                }
                let s = at;
                let e = (p.vaddr + p.len).min(end);
                pieces.push(Piece {
                    vaddr: s,
                    len: e - s,
                    src: p.src,
                    offset: p.offset + (s - p.vaddr),
                });
                at = e;
            }
            if at < end {
                return Err(invalid(
                    pm_name,
                    format!(
                        "page {at:#x} is in the parent images, but {} lacks it",
                        parent_dir.join(Kind::Pagemap.file_name(pid)).display()
                    ),
                ));
            }
        }
    }
    pieces.sort_by_key(|p| p.vaddr);
    if let Some(w) = pieces
        .windows(2)
        .find(|w| w[0].vaddr + w[0].len > w[1].vaddr)
    {
        return Err(invalid(
            pm_name,
            format!("page {:#x} is listed twice", w[1].vaddr),
        ));
    }
    Ok(pieces)
}

/// Copy the pieces into one memfd, in address order, and describe it.
fn gather(pieces: &[Piece], files: &[(PathBuf, File)], page: u64) -> Result<TaskPages, CheckError> {
    let memfd = rustix::fs::memfd_create("criu-pages-chain", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| invalid("memfd for the parent chain's pages", e.to_string()))?;
    let out = File::from(memfd);
    let total: u64 = pieces.iter().map(|p| p.len).sum();
    let fail = |what: String| invalid("the parent chain's pages", what);
    out.set_len(total).map_err(|e| fail(e.to_string()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut runs: Vec<PagesRun> = Vec::new();
    let mut dst = 0u64;
    for p in pieces {
        let (path, src) = &files[p.src];
        let mut done = 0u64;
        while done < p.len {
            let n = (p.len - done).min(buf.len() as u64) as usize;
            src.read_exact_at(&mut buf[..n], p.offset + done)
                .map_err(|e| invalid(path.display().to_string(), e.to_string()))?;
            out.write_all_at(&buf[..n], dst + done)
                .map_err(|e| fail(e.to_string()))?;
            done += n as u64;
        }
        match runs.last_mut() {
            Some(r) if r.vaddr + r.nr_pages * page == p.vaddr => r.nr_pages += p.len / page,
            _ => runs.push(PagesRun {
                vaddr: p.vaddr,
                nr_pages: p.len / page,
                offset: dst,
            }),
        }
        dst += p.len;
    }
    let fd: OwnedFd = out.into();
    Ok(TaskPages {
        runs,
        path: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        keep: Some(Arc::new(fd)),
    })
}
