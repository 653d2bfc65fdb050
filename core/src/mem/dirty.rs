//! Memory dirty tracking for iterative dumps (`pre-dump`, `dump
//! --track-mem`): which pages a task wrote since the previous round.
//!
//! Mechanism: a userfaultfd in asynchronous write-protect mode
//! (`UFFD_FEATURE_WP_ASYNC` + `UFFD_FEATURE_WP_UNPOPULATED`, Linux 6.7+),
//! the *tracker*. Soft-dirty bits (what CRIU uses) are missing from many
//! kernels, this one included; the tracker needs no soft-dirty at all.
//!
//! - A userfaultfd belongs to the mm of the task that made it, so the
//!   parasite makes it, inside the task: it registers the task's writable
//!   private VMAs for write-protection and write-protects them
//!   (`CMD_UFFD_WP`). Writes then fault once per page and the kernel
//!   resolves them at once by itself (async mode: nothing ever waits for
//!   a reader), clearing the page's protection.
//! - The next round reads, with `PAGEMAP_SCAN` from outside, the
//!   `PAGE_IS_WRITTEN` category of each page it would dump (see
//!   [`super::pages`]): a page not written since the last protection has
//!   the contents the previous round saved, and goes into the pagemap as
//!   an `in_parent` entry (see [`super::parent`]). Memory of a VMA the
//!   tracker never registered (mapped since, moved with `mremap`, or a
//!   task whose tracker is gone) has no protection bits, so every page of
//!   it reads as written and is dumped whole.
//! - Then the parasite makes a *new* tracker over the VMAs as they are now
//!   (closing the old one, which drops every old registration and
//!   protection): each round starts from a clean state, whatever the task
//!   did to its mappings in between.
//!
//! Where the tracker lives between rounds: only in the task (the tool
//! exits between `criu` runs, and closing the last reference to a
//! userfaultfd ends the tracking), at a high fd ([`slot`]: the highest
//! free one below `min(RLIMIT_NOFILE, 1024)`), close-on-exec. What the
//! task may notice meanwhile: that fd in `/proc/self/fd`, and one minor
//! fault on the first write to each page after a round. The dump never
//! saves the tracker (see [`is_tracker`]), so a restored task has none; a
//! final `dump --leave-running` without `--track-mem` closes it, and a
//! dump that kills the tree takes it away with the task.

use std::path::Path;

use crate::blob::parasite_abi as abi;
use crate::infect::{Daemon, InfectError};
use crate::proc::vmas::CollectedVma;
use crate::sys::uffd::feature::{WP_ASYNC, WP_UNPOPULATED};

use super::{PagePolicy, page_policy};

/// The tracker's features.
pub const FEATURES: u64 = WP_ASYNC | WP_UNPOPULATED;
/// The tracker is put below this fd (or below the task's `RLIMIT_NOFILE`
/// if lower): a higher one would make the kernel grow the task's fd
/// table for it.
const SLOT_CEILING: i32 = 1024;

/// Whether this kernel can track memory this way: userfaultfd with both
/// features, and `PAGEMAP_SCAN`. `Err` says what is missing.
pub fn available() -> Result<(), String> {
    use crate::sys::pagemap_scan::{self, PageRegion, ScanArgs, category};
    use crate::sys::uffd;
    let features = uffd::supported_features(uffd::userfaultfd)
        .or_else(|_| uffd::supported_features(uffd::userfaultfd_dev))
        .map_err(|e| format!("no userfaultfd: {e}"))?;
    if features & FEATURES != FEATURES {
        return Err(format!(
            "userfaultfd lacks UFFD_FEATURE_WP_ASYNC and WP_UNPOPULATED (features {features:#x})"
        ));
    }
    let page = crate::proc::page_size() as u64;
    let buf = vec![1u8; 2 * page as usize];
    let start = (buf.as_ptr() as u64).next_multiple_of(page);
    let pagemap = std::fs::File::open("/proc/self/pagemap")
        .map_err(|e| format!("opening /proc/self/pagemap: {e}"))?;
    let args = ScanArgs {
        start,
        end: start + page,
        category_anyof_mask: category::PRESENT,
        return_mask: category::PRESENT | category::WRITTEN,
        ..ScanArgs::default()
    };
    pagemap_scan::scan(&pagemap, &args, &mut [PageRegion::default(); 1])
        .map_err(|e| format!("no PAGEMAP_SCAN: {e}"))?;
    Ok(())
}

/// Is fd `fd` of task `pid` a tracker of ours: a userfaultfd with the
/// async write-protect feature (`/proc/PID/fdinfo/FD` says
/// `API:\t<api>:<features>:<ioctls>`)?
pub fn is_tracker(pid: i32, fd: i32) -> bool {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"));
    if !link.is_ok_and(|l| l == Path::new("anon_inode:[userfaultfd]")) {
        return false;
    }
    let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("API:"))
        .and_then(|v| v.trim().split(':').nth(1))
        .and_then(|f| u64::from_str_radix(f, 16).ok())
        .is_some_and(|f| f & WP_ASYNC != 0)
}

/// The task's tracker, if it has one.
pub fn find_tracker(pid: i32) -> Option<i32> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds.into_iter().rev().find(|&fd| is_tracker(pid, fd))
}

/// Where the tracker goes: where it already is, else the highest free fd
/// below `min(RLIMIT_NOFILE, 1024)`. `None` if every one is taken.
pub fn slot(pid: i32) -> Option<i32> {
    if let Some(fd) = find_tracker(pid) {
        return Some(fd);
    }
    let limit = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse::<i64>().ok())
        })
        .unwrap_or(i64::from(SLOT_CEILING));
    let top = limit.min(i64::from(SLOT_CEILING)) as i32;
    (3..top)
        .rev()
        .find(|fd| std::fs::symlink_metadata(format!("/proc/{pid}/fd/{fd}")).is_err())
}

/// The VMAs the tracker registers: writable private memory whose pages
/// are scanned (the vDSO is dumped whole every time; a read-only VMA made
/// writable later has no protection, so all of its pages count as
/// written).
pub fn tracked_ranges(vmas: &[CollectedVma], task_size: u64) -> Vec<(u64, u64)> {
    const PROT_WRITE: u32 = linux_raw_sys::general::PROT_WRITE;
    let mut out: Vec<(u64, u64)> = Vec::new();
    for v in vmas
        .iter()
        .filter(|v| page_policy(v, task_size) == PagePolicy::Scan)
        .filter(|v| v.entry.prot & PROT_WRITE != 0)
    {
        match out.last_mut() {
            Some(last) if last.1 == v.vma.start => last.1 = v.vma.end,
            _ => out.push((v.vma.start, v.vma.end)),
        }
    }
    out
}

/// A new tracker at fd `fd` of the task, over `ranges` (replacing the one
/// there).
pub fn track(d: &mut Daemon<'_, '_>, fd: i32, ranges: &[(u64, u64)]) -> Result<(), InfectError> {
    let hdr = size_of::<abi::UffdWpArgs>();
    let per_call = (d.args().len() - hdr) / size_of::<abi::IoVec>();
    let mut op = abi::UFFD_WP_TRACK;
    let mut chunks: Vec<&[(u64, u64)]> = ranges.chunks(per_call.max(1)).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let args = d.args_mut();
        put_header(args, fd, op, chunk.len() as u64);
        for (i, (s, e)) in chunk.iter().enumerate() {
            let at = hdr + 16 * i;
            args[at..at + 8].copy_from_slice(&s.to_ne_bytes());
            args[at + 8..at + 16].copy_from_slice(&(e - s).to_ne_bytes());
        }
        d.call(abi::CMD_UFFD_WP)?;
        op = abi::UFFD_WP_ADD;
    }
    Ok(())
}

/// Close the task's tracker at fd `fd`: its registrations end with it.
pub fn stop(d: &mut Daemon<'_, '_>, fd: i32) -> Result<(), InfectError> {
    put_header(d.args_mut(), fd, abi::UFFD_WP_CLOSE, 0);
    d.call(abi::CMD_UFFD_WP)
}

fn put_header(args: &mut [u8], fd: i32, op: u32, nr: u64) {
    args[0..4].copy_from_slice(&fd.to_ne_bytes());
    args[4..8].copy_from_slice(&op.to_ne_bytes());
    args[8..16].copy_from_slice(&FEATURES.to_ne_bytes());
    args[16..24].copy_from_slice(&nr.to_ne_bytes());
    args[24..32].copy_from_slice(&0u64.to_ne_bytes());
}
