//! Memory of a task for dump: its VMAs as `vma_entry` values, the pages
//! worth saving (found with `PAGEMAP_SCAN`, so holes stay holes), and the
//! page pipes through which the parasite hands them over (`vmsplice`) to be
//! `splice`d into `pages-<id>.img` with their `pagemap` entries.
//!
//! Which pages are saved (CRIU's `should_dump_page`): present or swapped
//! pages of private VMAs, except the shared zero page and file pages never
//! written (not yet copied-on-write, so the file still has them). The vDSO
//! is saved whole; `[vvar]`/`[vvar_vclock]` never, nor `MAP_DROPPABLE`
//! memory (as in CRIU 4.2: the kernel may drop its pages at any time, so
//! its owner must cope with finding them zeroed, and it comes back empty).

pub mod deferred;
pub mod dirty;
pub mod guards;
pub mod page_pipe;
pub mod pages;
pub mod parent;

use crate::images::pb;
use crate::proc::vma_kind::status::{
    VMA_ANON_PRIVATE, VMA_AREA_AIORING, VMA_AREA_VDSO, VMA_AREA_VVAR,
};
use crate::proc::vma_kind::{MAP_TYPE, VmaEntryBits};
use crate::proc::vmas::CollectedVma;

pub use page_pipe::{DumpedPages, PageDest, PageXferError, dump_pages};
pub use pages::{PageRange, ScanError, pages_to_dump};

/// `pagemap_entry.flags`: `PE_PARENT`, `PE_LAZY`, `PE_PRESENT`.
pub mod pe {
    pub const PARENT: u32 = 1 << 0;
    pub const LAZY: u32 = 1 << 1;
    pub const PRESENT: u32 = 1 << 2;
}

/// The `vma_entry` of a collected VMA. `shmid` of a file mapping is the
/// file id the files layer assigned (`file_id`).
pub fn vma_entry(c: &CollectedVma, file_id: Option<u32>) -> pb::VmaEntry {
    let e = &c.entry;
    pb::VmaEntry {
        start: e.start,
        end: e.end,
        pgoff: e.pgoff,
        shmid: file_id.map_or(e.shmid, u64::from),
        prot: e.prot,
        flags: e.flags,
        status: e.status,
        fd: -1,
        madv: (e.madv != 0).then_some(e.madv),
        fdflags: e.fdflags,
    }
}

/// How a VMA's pages are dumped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagePolicy {
    /// Not at all (shared memory, vvar, ...).
    Skip,
    /// Every page, present or not (vDSO, AIO rings).
    Whole,
    /// The pages `PAGEMAP_SCAN` reports as worth saving.
    Scan,
}

/// How the pages of `c` are dumped, for a task whose user space ends at
/// `task_size`.
pub fn page_policy(c: &CollectedVma, task_size: u64) -> PagePolicy {
    let e = &c.entry;
    if e.is(VMA_AREA_VVAR) || is_droppable(e) {
        PagePolicy::Skip
    } else if e.is(VMA_AREA_VDSO) || e.is(VMA_AREA_AIORING) {
        PagePolicy::Whole
    } else if e.is_private(task_size) {
        PagePolicy::Scan
    } else {
        PagePolicy::Skip
    }
}

/// A `MAP_DROPPABLE` mapping (its own mapping type, `dp` in smaps).
pub fn is_droppable(e: &VmaEntryBits) -> bool {
    e.flags & MAP_TYPE == linux_raw_sys::general::MAP_DROPPABLE
}

/// The `pagemap_entry.flags` for pages of `c`: anonymous private memory may
/// be restored lazily (CRIU marks it `PE_LAZY`), the vDSO never.
pub fn pagemap_flags(c: &CollectedVma) -> u32 {
    let e = &c.entry;
    if e.is(VMA_ANON_PRIVATE) && !e.is(VMA_AREA_VDSO) && !e.is(VMA_AREA_AIORING) {
        pe::PRESENT | pe::LAZY
    } else {
        pe::PRESENT
    }
}
