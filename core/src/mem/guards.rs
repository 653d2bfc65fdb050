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
use crate::proc::vma_kind::status::{VMA_AREA_REGULAR, VMA_AREA_VSYSCALL};
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

pub use crate::images::vma::{check_guards, guard_entry, is_guard};
