//! Choosing the pages to dump: with the `PAGEMAP_SCAN` ioctl (Linux 6.7+),
//! or by reading `/proc/PID/pagemap` entries where the ioctl is missing
//! (or `CRIU_NO_PAGEMAP_SCAN=1` is set, CRIU's `FI_DONT_USE_PAGEMAP_SCAN`).

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::{PagePolicy, page_policy, pagemap_flags};
use crate::proc::vmas::CollectedVma;
use crate::sys::pagemap_scan::{self, PageRegion, ScanArgs, category};

/// A run of pages to dump: `[start, end)`, with the pagemap flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRange {
    pub start: u64,
    pub end: u64,
    pub flags: u32,
    /// Written since the task's memory was last write-protected for dirty
    /// tracking (see [`super::dirty`]); always so where nothing tracks it.
    pub dirty: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("opening /proc/{pid}/pagemap: {source}")]
    Open { pid: i32, source: std::io::Error },
    #[error("PAGEMAP_SCAN of {start:#x}-{end:#x} in task {pid}: {source}")]
    Scan {
        pid: i32,
        start: u64,
        end: u64,
        source: rustix::io::Errno,
    },
    #[error("reading /proc/{pid}/pagemap at {addr:#x}: {source}")]
    Read {
        pid: i32,
        addr: u64,
        source: std::io::Error,
    },
}

/// Regions returned per ioctl.
const REGIONS: usize = 512;
/// Raw pagemap entries read at once.
const PME_BATCH: usize = 4096;
/// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAP: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;
/// A `MADV_GUARD_INSTALL` guard page (Linux 6.14+).
const PM_GUARD: u64 = 1 << 58;
/// The page is write-protected by a userfaultfd (not written since).
const PM_UFFD_WP: u64 = 1 << 57;
const PM_PFN_MASK: u64 = (1 << 55) - 1;
/// The swap type of a non-present entry's frame bits (shown to
/// CAP_SYS_ADMIN only, zero otherwise): its low `MAX_SWAPFILES_SHIFT` bits.
const SWP_TYPE_MASK: u64 = (1 << 5) - 1;
/// `SWP_PTE_MARKER`, the last swap type: a PTE marker, which holds no
/// page. The dirty tracker's `UFFD_FEATURE_WP_UNPOPULATED` leaves one on
/// every never-populated page it write-protects (PAGEMAP_SCAN then says
/// "swapped, not written" of it), and a zap of a protected page of a file
/// mapping leaves one where the file's page shows again.
const SWP_PTE_MARKER: u64 = SWP_TYPE_MASK;

/// Whether raw pagemap entry `pme` is a PTE marker: no contents to dump
/// (the page reads as never populated). Without CAP_SYS_ADMIN the frame
/// bits are hidden and no entry is taken for one: it is dumped (zeros,
/// or the file's page), as before.
fn is_pte_marker(pme: u64) -> bool {
    pme & (PM_PRESENT | PM_SWAP) == PM_SWAP && pme & PM_PFN_MASK & SWP_TYPE_MASK == SWP_PTE_MARKER
}

/// The pages of `vmas` to dump, in address order, adjacent runs with equal
/// flags merged.
pub fn pages_to_dump(
    pid: i32,
    vmas: &[CollectedVma],
    task_size: u64,
) -> Result<Vec<PageRange>, ScanError> {
    let pagemap = File::open(format!("/proc/{pid}/pagemap"))
        .map_err(|source| ScanError::Open { pid, source })?;
    let page = crate::proc::page_size() as u64;
    let mut scanner = Scanner {
        pid,
        pagemap,
        page,
        use_ioctl: std::env::var_os("CRIU_NO_PAGEMAP_SCAN").is_none(),
        zero_pfn: None,
        guard_category: crate::sys::pagemap_scan::guard_category_supported(),
        regions: vec![PageRegion::default(); REGIONS],
    };
    let mut out: Vec<PageRange> = Vec::new();
    for c in vmas {
        let flags = pagemap_flags(c);
        let (start, end) = (c.vma.start, c.vma.end);
        let mut push = |s: u64, e: u64, dirty: bool| match out.last_mut() {
            Some(last) if last.end == s && last.flags == flags && last.dirty == dirty => {
                last.end = e
            }
            _ => out.push(PageRange {
                start: s,
                end: e,
                flags,
                dirty,
            }),
        };
        match page_policy(c, task_size) {
            PagePolicy::Skip => {}
            PagePolicy::Whole => push(start, end, true),
            PagePolicy::Scan => scanner.scan(start, end, &mut push)?,
        }
    }
    Ok(out)
}

struct Scanner {
    pid: i32,
    pagemap: File,
    page: u64,
    use_ioctl: bool,
    /// PFN of the shared zero page, learnt on first raw use.
    zero_pfn: Option<u64>,
    /// The ioctl knows `PAGE_IS_GUARD` (Linux 6.14+).
    guard_category: bool,
    regions: Vec<PageRegion>,
}

impl Scanner {
    /// Report the runs of `[start, end)` worth dumping: present or swapped,
    /// and neither the zero page nor a page-cache page of the file (never
    /// written: the file has it); each says whether it was written since
    /// its last write-protection (`PAGE_IS_WRITTEN`: with no tracker, every
    /// page is).
    fn scan(
        &mut self,
        start: u64,
        end: u64,
        push: &mut impl FnMut(u64, u64, bool),
    ) -> Result<(), ScanError> {
        if self.use_ioctl {
            match self.scan_ioctl(start, end, push) {
                Ok(()) => return Ok(()),
                // No such ioctl on this kernel: read the entries instead.
                Err(ScanError::Scan { source, .. })
                    if source == rustix::io::Errno::NOTTY || source == rustix::io::Errno::INVAL =>
                {
                    self.use_ioctl = false;
                }
                Err(e) => return Err(e),
            }
        }
        self.scan_raw(start, end, push)
    }

    fn scan_ioctl(
        &mut self,
        start: u64,
        end: u64,
        push: &mut impl FnMut(u64, u64, bool),
    ) -> Result<(), ScanError> {
        // Guard pages (MADV_GUARD_INSTALL) have no contents: they are
        // restored as guards (see super::guards), never read.
        let guard = if self.guard_category {
            category::GUARD
        } else {
            0
        };
        let mut at = start;
        while at < end {
            let args = ScanArgs {
                start: at,
                end,
                category_inverted: category::PFNZERO | category::FILE | guard,
                category_mask: category::PFNZERO | category::FILE | guard,
                category_anyof_mask: category::PRESENT | category::SWAPPED,
                return_mask: category::PRESENT | category::SWAPPED | category::WRITTEN,
                ..ScanArgs::default()
            };
            let res =
                pagemap_scan::scan(&self.pagemap, &args, &mut self.regions).map_err(|source| {
                    ScanError::Scan {
                        pid: self.pid,
                        start: at,
                        end,
                        source,
                    }
                })?;
            for r in &self.regions[..res.regions] {
                let written = r.categories & category::WRITTEN != 0;
                if r.categories & (category::PRESENT | category::SWAPPED) == category::SWAPPED
                    && !written
                {
                    // Swap entries the tracker protected: PTE markers of
                    // never-populated pages among them hold nothing.
                    self.push_unmarked(r.start, r.end, push)?;
                } else {
                    push(r.start, r.end, written);
                }
            }
            if res.walk_end <= at {
                break;
            }
            at = res.walk_end;
        }
        Ok(())
    }

    /// Push the pages of `[start, end)`, swapped and not written since
    /// their protection, that are not PTE markers (read from the raw
    /// pagemap entries).
    fn push_unmarked(
        &self,
        start: u64,
        end: u64,
        push: &mut impl FnMut(u64, u64, bool),
    ) -> Result<(), ScanError> {
        let page = self.page;
        self.each_pme(start, end, |a, pme| {
            if !is_pte_marker(pme) {
                push(a, a + page, false);
            }
        })
    }

    /// Every page of `[start, end)` with its raw pagemap entry, read in
    /// batches.
    fn each_pme(&self, start: u64, end: u64, mut f: impl FnMut(u64, u64)) -> Result<(), ScanError> {
        let mut buf = vec![0u8; PME_BATCH * 8];
        let mut at = start;
        while at < end {
            let n = (((end - at) / self.page) as usize).min(PME_BATCH);
            let bytes = &mut buf[..n * 8];
            self.pagemap
                .read_exact_at(bytes, at / self.page * 8)
                .map_err(|source| ScanError::Read {
                    pid: self.pid,
                    addr: at,
                    source,
                })?;
            for (i, e) in bytes.chunks_exact(8).enumerate() {
                let pme = u64::from_ne_bytes(e.try_into().unwrap_or([0; 8]));
                f(at + i as u64 * self.page, pme);
            }
            at += n as u64 * self.page;
        }
        Ok(())
    }

    fn scan_raw(
        &mut self,
        start: u64,
        end: u64,
        push: &mut impl FnMut(u64, u64, bool),
    ) -> Result<(), ScanError> {
        let zero = self.zero_pfn()?;
        let page = self.page;
        self.each_pme(start, end, |a, pme| {
            let present = pme & PM_PRESENT != 0;
            let wanted = (present || pme & PM_SWAP != 0)
                && pme & (PM_FILE | PM_GUARD) == 0
                && !is_pte_marker(pme)
                && !(present && Some(pme & PM_PFN_MASK) == zero);
            if wanted {
                push(a, a + page, pme & PM_UFFD_WP == 0);
            }
        })
    }

    /// The zero page's PFN: read a never-written page of our own (a fresh
    /// calloc'd allocation maps it on read) and look it up. `None` when
    /// PFNs are hidden (no CAP_SYS_ADMIN); zero pages are then dumped.
    fn zero_pfn(&mut self) -> Result<Option<u64>, ScanError> {
        if let Some(pfn) = self.zero_pfn {
            return Ok(Some(pfn));
        }
        let page = self.page as usize;
        // Big enough for the allocator to mmap it fresh.
        let buf = vec![0u8; 64 * page];
        let addr = (buf.as_ptr() as u64).next_multiple_of(self.page) + self.page;
        let idx = (addr - buf.as_ptr() as u64) as usize;
        // Reading faults in the zero page; black_box keeps the read.
        std::hint::black_box(buf[idx]);
        let me = File::open("/proc/self/pagemap").map_err(|source| ScanError::Open {
            pid: std::process::id() as i32,
            source,
        })?;
        let mut e = [0u8; 8];
        me.read_exact_at(&mut e, addr / self.page * 8)
            .map_err(|source| ScanError::Read {
                pid: std::process::id() as i32,
                addr,
                source,
            })?;
        let pme = u64::from_ne_bytes(e);
        let pfn = pme & PM_PFN_MASK;
        self.zero_pfn = (pme & PM_PRESENT != 0 && pfn != 0).then_some(pfn);
        Ok(self.zero_pfn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries as Linux 6.18 shows them to root: a tracker's marker on a
    /// never-populated page (swap, uffd-wp, type 31 offset 1), a present
    /// page, a page in swap file 0, and a marker with the frame hidden
    /// (not root: taken for a page, dumped as before).
    #[test]
    fn pte_markers_are_told_from_pages() {
        assert!(is_pte_marker(0x4200_0000_0000_003f));
        assert!(!is_pte_marker(0x8300_0000_0059_9ddc));
        assert!(!is_pte_marker(PM_SWAP | (1234 << 5)));
        assert!(!is_pte_marker(PM_SWAP | PM_UFFD_WP));
    }
}
