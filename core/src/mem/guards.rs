//! Guard regions (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13+): pages of a
//! VMA that fault with SIGSEGV on any access without being a VMA of their
//! own, so `/proc/PID/maps` does not show them. `PAGEMAP_SCAN` reports
//! them as `PAGE_IS_GUARD` (6.14+). Each run is dumped as CRIU 4.2 does
//! (`collect_madv_guards`): a `vma_entry` with only `start`, `end` and
//! `status = VMA_AREA_GUARD`, after the task's VMAs; a run may cross
//! from one VMA into the next (the kernel merges adjacent runs). The
//! restorer installs them again over the restored VMAs (CRIU's
//! `restore_madv_guard_regions`). Their pages are never dumped (see
//! [`super::pages`]): reading one would fault.
//!
//! Shared mappings (file, shmem) may hold guards too from Linux 6.15; the
//! guard lives in the task's page tables only, the object's contents are
//! dumped and restored through the object as usual.

use std::fs::File;

use super::pages::ScanError;
use crate::images::pb;
use crate::proc::vma_kind::status::{VMA_AREA_GUARD, VMA_AREA_REGULAR, VMA_AREA_VSYSCALL};
use crate::proc::vmas::CollectedVma;
use crate::sys::pagemap_scan::{self, PageRegion, ScanArgs, category};

/// Regions returned per ioctl.
const REGIONS: usize = 256;

/// The guard regions of task `pid`, in address order, scanned over its
/// mapped VMAs. A kernel whose `PAGEMAP_SCAN` does not know `PAGE_IS_GUARD`
/// (or has no `PAGEMAP_SCAN`) reports none; one whose `madvise` knows
/// guards but whose `PAGEMAP_SCAN` does not (6.13) shows them as swapped
/// pages, whose reading then fails the dump by name.
pub fn guard_regions(pid: i32, vmas: &[CollectedVma]) -> Result<Vec<(u64, u64)>, ScanError> {
    if !pagemap_scan::guard_category_supported() {
        return Ok(Vec::new());
    }
    let pagemap = File::open(format!("/proc/{pid}/pagemap"))
        .map_err(|source| ScanError::Open { pid, source })?;
    let mut regions = vec![PageRegion::default(); REGIONS];
    let mut out: Vec<(u64, u64)> = Vec::new();
    let scanned = vmas
        .iter()
        .filter(|v| v.entry.is(VMA_AREA_REGULAR) && !v.entry.is(VMA_AREA_VSYSCALL));
    for v in scanned {
        let (start, end) = (v.vma.start, v.vma.end);
        let mut at = start;
        while at < end {
            let args = ScanArgs {
                start: at,
                end,
                category_mask: category::GUARD,
                return_mask: category::GUARD,
                ..ScanArgs::default()
            };
            let res = pagemap_scan::scan(&pagemap, &args, &mut regions).map_err(|source| {
                ScanError::Scan {
                    pid,
                    start: at,
                    end,
                    source,
                }
            })?;
            for r in &regions[..res.regions] {
                match out.last_mut() {
                    Some(last) if last.1 == r.start => last.1 = r.end,
                    _ => out.push((r.start, r.end)),
                }
            }
            // The kernel always advances; a walk that did not would loop.
            if res.walk_end <= at {
                break;
            }
            at = res.walk_end;
        }
    }
    Ok(out)
}

/// The `vma_entry` of a guard region, as CRIU writes it.
pub fn guard_entry(start: u64, end: u64) -> pb::VmaEntry {
    pb::VmaEntry {
        start,
        end,
        status: VMA_AREA_GUARD,
        fd: -1,
        ..Default::default()
    }
}

/// Whether a `vma_entry` is a guard region.
pub fn is_guard(v: &pb::VmaEntry) -> bool {
    v.status & VMA_AREA_GUARD != 0
}

/// Each guard region of `vmas` (the sorted VMAs, then the guards) is whole
/// pages covered without a gap by VMAs that are `mapped` (one run may cross
/// from a VMA into the next): `madvise` over it must reach nothing else.
pub fn check_guards(
    vmas: &[pb::VmaEntry],
    page_size: u64,
    mapped: impl Fn(&pb::VmaEntry) -> bool,
) -> Result<(), String> {
    let under: Vec<&pb::VmaEntry> = vmas.iter().filter(|v| !is_guard(v) && mapped(v)).collect();
    for g in vmas.iter().filter(|v| is_guard(v)) {
        let bad = |why: &str| format!("guard region {:#x}-{:#x} {why}", g.start, g.end);
        if g.status != VMA_AREA_GUARD {
            return Err(bad(&format!("has other status bits too ({:#x})", g.status)));
        }
        if g.start % page_size != 0 || g.end % page_size != 0 || g.start >= g.end {
            return Err(bad("is not whole pages"));
        }
        let mut cur = g.start;
        while cur < g.end {
            match under.get(under.partition_point(|v| v.end <= cur)) {
                Some(v) if v.start <= cur => cur = v.end,
                _ => return Err(bad(&format!("is not mapped at {cur:#x}"))),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::vma_kind::status::VMA_AREA_REGULAR;

    const PAGE: u64 = 0x1000;

    fn vma(start: u64, end: u64) -> pb::VmaEntry {
        pb::VmaEntry {
            start,
            end,
            status: VMA_AREA_REGULAR,
            ..Default::default()
        }
    }

    /// Guard regions, listed after the VMAs as CRIU writes them, are whole
    /// pages of mapped VMAs, possibly crossing from one into the next.
    #[test]
    fn guard_regions_must_be_whole_pages_of_mapped_vmas() {
        let vmas = [
            vma(0x1000, 0x3000),
            vma(0x3000, 0x5000),
            vma(0x8000, 0x9000),
        ];
        let with = |g: pb::VmaEntry| {
            let mut v = vmas.to_vec();
            v.push(g);
            check_guards(&v, PAGE, |v| v.status & VMA_AREA_REGULAR != 0)
        };
        let what = |r: Result<(), String>| r.unwrap_err();
        assert!(with(guard_entry(0x2000, 0x3000)).is_ok());
        assert!(with(guard_entry(0x2000, 0x4000)).is_ok());
        assert_eq!(
            what(with(guard_entry(0x4000, 0x9000))),
            "guard region 0x4000-0x9000 is not mapped at 0x5000"
        );
        assert!(what(with(guard_entry(0x9000, 0xa000))).contains("not mapped at 0x9000"));
        assert!(what(with(guard_entry(0x2000, 0x2800))).contains("is not whole pages"));
        assert!(what(with(guard_entry(0x2000, 0x2000))).contains("is not whole pages"));
        let mut mapped_guard = guard_entry(0x1000, 0x2000);
        mapped_guard.status |= VMA_AREA_REGULAR;
        assert!(what(with(mapped_guard)).contains("other status bits too"));
    }

    #[test]
    fn entry_is_a_guard_and_nothing_else() {
        let e = guard_entry(0x1000, 0x3000);
        assert!(is_guard(&e));
        assert_eq!(e.status, VMA_AREA_GUARD);
        assert_eq!(
            (e.start, e.end, e.prot, e.flags, e.shmid),
            (0x1000, 0x3000, 0, 0, 0)
        );
    }
}
