//! The plan's copy step: which page runs the tool copies into the task
//! with `UFFDIO_COPY` (see `RestoreArgs::copy_runs`) instead of the
//! restorer reading them. A page faulted in for a read is zeroed before the
//! read fills it; `UFFDIO_COPY` allocates it and copies into it at once,
//! and the tool does it from two threads while the task reads the rest.
//! That pays only where there is a lot of memory: in VMAs with at least
//! [`VMA_MIN`] of runs, in tasks with at least [`TASK_MIN`] of them (the
//! hand-over costs a userfaultfd, its registrations and a round trip).

use crate::blob::restorer_abi::{PageRun, Region};
use crate::images::pb;
use crate::images::vma::status::*;
use crate::restore::images::TaskImages;

/// Fewest bytes of runs a VMA needs to be copied by the tool.
pub(super) const VMA_MIN: u64 = 1 << 20;
/// Fewest bytes of runs (in such VMAs) a task needs.
pub(super) const TASK_MIN: u64 = 8 << 20;

/// `MADV_HUGEPAGE` (bit 14 of `VmaEntry.madv`): such a VMA is read by the
/// restorer, whose faults may get huge pages (`UFFDIO_COPY` makes small
/// ones).
const MADV_HUGEPAGE: u64 = linux_raw_sys::general::MADV_HUGEPAGE as u64;
/// mmap flags whose VMA is populated when mapped (its pages would exist
/// before the copy: `EEXIST`), or that userfaultfd does not take.
const NOT_COPIED: u32 = linux_raw_sys::general::MAP_LOCKED
    | linux_raw_sys::general::MAP_POPULATE
    | linux_raw_sys::general::MAP_HUGETLB
    | linux_raw_sys::general::MAP_SHARED
    | linux_raw_sys::general::MAP_DROPPABLE;

/// Kinds of VMA the restorer maps otherwise, or that userfaultfd does not
/// take (a private anonymous VMA with one of these is not copied into).
const OTHER_KINDS: u32 = VMA_AREA_VSYSCALL
    | VMA_AREA_VDSO
    | VMA_AREA_VVAR
    | VMA_FILE_PRIVATE
    | VMA_FILE_SHARED
    | VMA_ANON_SHARED
    | VMA_AREA_SYSVIPC
    | VMA_AREA_SOCKET
    | VMA_AREA_AIORING
    | VMA_AREA_MEMFD
    | VMA_AREA_SHSTK
    | VMA_AREA_GUARD
    | VMA_AREA_UPROBES;

/// May the tool copy pages into `v`? A private anonymous VMA (not shared
/// memory, not a file, not the vDSO), mapped empty by the restorer.
fn copyable(v: &pb::VmaEntry) -> bool {
    v.status & (VMA_AREA_REGULAR | VMA_ANON_PRIVATE) == VMA_AREA_REGULAR | VMA_ANON_PRIVATE
        && v.status & OTHER_KINDS == 0
        && v.flags & NOT_COPIED == 0
        && v.madv.unwrap_or(0) & (1 << MADV_HUGEPAGE) == 0
}

/// A piece of a run inside one VMA, with that VMA's index if the tool may
/// copy into it.
struct Piece {
    run: PageRun,
    vma: Option<usize>,
}

/// `runs` cut at VMA boundaries (a run may span adjacent VMAs).
fn pieces(vmas: &[&pb::VmaEntry], runs: &[PageRun], guards: &[&pb::VmaEntry]) -> Vec<Piece> {
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        let (mut s, end) = (r.addr, r.addr + r.len);
        let mut k = vmas.partition_point(|v| v.end <= s);
        while s < end {
            let (e, vma) = match vmas.get(k) {
                Some(v) if v.start <= s => {
                    let guarded = guards.iter().any(|g| g.start < v.end && v.start < g.end);
                    (end.min(v.end), (copyable(v) && !guarded).then_some(k))
                }
                _ => (end, None),
            };
            out.push(Piece {
                run: PageRun {
                    addr: s,
                    len: e - s,
                    offset: r.offset + (s - r.addr),
                },
                vma,
            });
            s = e;
            k += 1;
        }
    }
    out
}

/// Appends `r` to `list`, merged with the last run where they continue
/// each other in memory and in the image.
fn push_merged(list: &mut Vec<PageRun>, r: PageRun) {
    match list.last_mut() {
        Some(p) if p.addr + p.len == r.addr && p.offset + p.len == r.offset => p.len += r.len,
        _ => list.push(r),
    }
}

/// Takes out of `runs` (sorted, without the premapped VMAs' runs) those
/// the tool copies; returns them and the VMAs to register. Both empty when
/// the task has too little to copy.
pub(super) fn split(t: &TaskImages, runs: &mut Vec<PageRun>) -> (Vec<PageRun>, Vec<Region>) {
    // Guard regions come after the VMAs in the list; a VMA holding one is
    // left to the restorer.
    let (guards, vmas): (Vec<&pb::VmaEntry>, Vec<&pb::VmaEntry>) =
        t.mm.vmas
            .iter()
            .partition(|v| crate::mem::guards::is_guard(v));
    let pieces = pieces(&vmas, runs, &guards);
    let mut bytes = vec![0u64; vmas.len()];
    for p in &pieces {
        if let Some(k) = p.vma {
            bytes[k] += p.run.len;
        }
    }
    let chosen = |p: &Piece| p.vma.is_some_and(|k| bytes[k] >= VMA_MIN);
    let total: u64 = pieces.iter().filter(|p| chosen(p)).map(|p| p.run.len).sum();
    if total < TASK_MIN {
        return (Vec::new(), Vec::new());
    }
    let (mut copy, mut keep, mut regions) = (Vec::new(), Vec::new(), Vec::new());
    for p in &pieces {
        if !chosen(p) {
            push_merged(&mut keep, p.run);
            continue;
        }
        push_merged(&mut copy, p.run);
        let v = vmas[p.vma.unwrap_or_default()];
        if regions.last().is_none_or(|r: &Region| r.start != v.start) {
            regions.push(Region {
                start: v.start,
                end: v.end,
            });
        }
    }
    *runs = keep;
    (copy, regions)
}
