//! The VMAs of `mm-PID.img` and the page runs of `pagemap-PID.img`, as
//! the format defines them: the `vma_entry.status` bits, which VMAs a
//! restore maps and which may hold pages, guard regions (CRIU 4.2 writes
//! them after the VMAs), and the checks that VMAs and page runs are sane
//! before anything is created.

use std::path::Path;

use super::check::{CheckError, GuardError};
pub use super::pagemap::PagesRun;
use super::pb;

/// `vma_entry.status` bits (criu/include/image.h); part of the image ABI.
pub mod status {
    pub const VMA_AREA_NONE: u32 = 0;
    pub const VMA_AREA_REGULAR: u32 = 1 << 0;
    pub const VMA_AREA_STACK: u32 = 1 << 1;
    pub const VMA_AREA_VSYSCALL: u32 = 1 << 2;
    pub const VMA_AREA_VDSO: u32 = 1 << 3;
    pub const VMA_AREA_HEAP: u32 = 1 << 5;
    pub const VMA_FILE_PRIVATE: u32 = 1 << 6;
    pub const VMA_FILE_SHARED: u32 = 1 << 7;
    pub const VMA_ANON_SHARED: u32 = 1 << 8;
    pub const VMA_ANON_PRIVATE: u32 = 1 << 9;
    pub const VMA_AREA_SYSVIPC: u32 = 1 << 10;
    pub const VMA_AREA_SOCKET: u32 = 1 << 11;
    pub const VMA_AREA_VVAR: u32 = 1 << 12;
    pub const VMA_AREA_AIORING: u32 = 1 << 13;
    pub const VMA_AREA_MEMFD: u32 = 1 << 14;
    pub const VMA_AREA_SHSTK: u32 = 1 << 15;
    pub const VMA_AREA_GUARD: u32 = 1 << 16;
    pub const VMA_AREA_UPROBES: u32 = 1 << 17;
    pub const VMA_AREA_NOT_ACCOUNTABLE: u32 = 1 << 18;
    pub const VMA_EXT_PLUGIN: u32 = 1 << 27;
    pub const VMA_CLOSE: u32 = 1 << 28;
    pub const VMA_NO_PROT_WRITE: u32 = 1 << 29;
    pub const VMA_PREMMAPED: u32 = 1 << 30;
    /// Never written to an image: marks a VMA dump cannot handle.
    pub const VMA_UNSUPP: u32 = 1 << 31;
}
use status::*;

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
) -> Result<(), GuardError> {
    let under: Vec<&pb::VmaEntry> = vmas.iter().filter(|v| !is_guard(v) && mapped(v)).collect();
    for g in vmas.iter().filter(|v| is_guard(v)) {
        let (start, end) = (g.start, g.end);
        if g.status != VMA_AREA_GUARD {
            return Err(GuardError::OtherBits {
                start,
                end,
                status: g.status,
            });
        }
        if start % page_size != 0 || end % page_size != 0 || start >= end {
            return Err(GuardError::NotWholePages { start, end });
        }
        let mut cur = start;
        while cur < end {
            match under.get(under.partition_point(|v| v.end <= cur)) {
                Some(v) if v.start <= cur => cur = v.end,
                _ => {
                    return Err(GuardError::NotMapped {
                        start,
                        end,
                        at: cur,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Is the VMA one the restorer maps itself (not vDSO/vvar/vsyscall)?
pub fn is_mapped_vma(v: &pb::VmaEntry) -> bool {
    v.status & VMA_AREA_REGULAR != 0
        && v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL) == 0
}

/// May the pagemap list pages of this VMA? Restorable ones, and the vDSO,
/// whose pages CRIU dumps (for proxying) but a restore with the runtime
/// vDSO skips.
pub fn holds_pages(v: &pb::VmaEntry) -> bool {
    is_mapped_vma(v) || (v.status & VMA_AREA_VDSO != 0 && v.status & VMA_AREA_VVAR == 0)
}

/// Is the VMA a mapping of a regular file (private or shared)? memfd
/// mappings are shmem objects instead.
pub fn is_file_vma(v: &pb::VmaEntry) -> bool {
    v.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED) != 0 && v.status & VMA_AREA_MEMFD == 0
}

/// Reads a pagemap image (a task's or a shared memory object's): the pages
/// image's id and the runs. Pages kept in a parent image (pre-dump) are
/// refused: they are not restored yet.
pub fn read_pagemap(path: &Path, page_size: u64) -> Result<(u32, Vec<PagesRun>), CheckError> {
    let pm = super::pagemap::read(path, page_size)?;
    if pm.in_parent {
        return Err(CheckError::Unsupported(format!(
            "{}: pages in a parent image (pre-dump) are not restored yet",
            path.display()
        )));
    }
    Ok((pm.pages_id, pm.runs))
}

/// Memory whose contents live outside the task's pages and is not restored
/// yet (AIO rings): refuse it rather than bring it back empty. (Shared
/// anonymous memory and memfd mappings are restored, see
/// [`super::set::shmem`]; SysV segments come from the root's IPC
/// namespace, checked with it.)
pub fn refuse_unsupported(vmas: &[pb::VmaEntry], file: &str) -> Result<(), CheckError> {
    for v in vmas {
        let what = if v.status & VMA_AREA_AIORING != 0 {
            "an AIO ring"
        } else {
            continue;
        };
        return Err(CheckError::Unsupported(format!(
            "{file}: {what} at {:#x}-{:#x} cannot be restored yet",
            v.start, v.end
        )));
    }
    // Guard regions need MADV_GUARD_INSTALL here: said before anything is
    // created, not as a failed madvise in the restorer.
    if let Some(g) = vmas.iter().find(|v| is_guard(v))
        && !matches!(crate::sys::pagemap_scan::madv_guard_supported(), Ok(true))
    {
        return Err(CheckError::Unsupported(format!(
            "{file}: guard region at {:#x}-{:#x} needs madvise(MADV_GUARD_INSTALL), \
             which this kernel lacks (Linux 6.13+)",
            g.start, g.end
        )));
    }
    Ok(())
}

/// VMAs must be page-aligned, non-empty, sorted, non-overlapping and inside
/// the task size; guard regions (CRIU writes them after the VMAs, see
/// [`guard_entry`]) must be whole pages of mapped VMAs.
pub fn validate_vmas(
    vmas: &[pb::VmaEntry],
    file: &str,
    page_size: u64,
    task_size: u64,
) -> Result<(), CheckError> {
    let mut prev_end = 0u64;
    for v in vmas.iter().filter(|v| !is_guard(v)) {
        let range = format!("VMA {:#x}-{:#x}", v.start, v.end);
        if v.start % page_size != 0 || v.end % page_size != 0 {
            return Err(invalid(file, format!("{range} is not page-aligned")));
        }
        if v.start >= v.end {
            return Err(invalid(file, format!("{range} is empty or inverted")));
        }
        // mmap takes the file offset in pages.
        if v.pgoff % page_size != 0 {
            return Err(invalid(
                file,
                format!("{range}: file offset {:#x} is not page-aligned", v.pgoff),
            ));
        }
        if v.start < prev_end {
            return Err(invalid(
                file,
                format!("{range} overlaps or precedes the VMA before it"),
            ));
        }
        if v.end > task_size && v.status & VMA_AREA_VSYSCALL == 0 {
            return Err(invalid(
                file,
                format!("{range} ends above the task size {task_size:#x}"),
            ));
        }
        prev_end = v.end;
    }
    validate_guards(vmas, file, page_size)
}

/// Guard regions lie on whole pages of mapped VMAs (see
/// [`check_guards`]).
fn validate_guards(vmas: &[pb::VmaEntry], file: &str, page_size: u64) -> Result<(), CheckError> {
    check_guards(vmas, page_size, is_mapped_vma).map_err(|source| CheckError::Guards {
        file: file.into(),
        source,
    })
}

/// Page runs must lie inside restorable VMAs, and the pages image must hold
/// exactly the pages the pagemap lists. Fixes up run offsets for `page_size`.
pub fn validate_pages(
    runs: &[PagesRun],
    vmas: &[pb::VmaEntry],
    file: &str,
    pages_file: &str,
    page_size: u64,
    pages_len: u64,
) -> Result<(), CheckError> {
    let mut total = 0u64;
    let mut prev_end = 0u64;
    for r in runs {
        // Runs are sorted and disjoint (as dump writes them): pages read
        // twice into one address would mean a broken pagemap.
        if r.vaddr < prev_end {
            return Err(invalid(
                file,
                format!(
                    "run at {:#x} overlaps or precedes the run before it",
                    r.vaddr
                ),
            ));
        }
        let len = r.nr_pages.checked_mul(page_size);
        let end = len.and_then(|l| r.vaddr.checked_add(l));
        let Some(end) = end else {
            return Err(invalid(
                file,
                format!("run at {:#x} of {} pages overflows", r.vaddr, r.nr_pages),
            ));
        };
        if r.vaddr % page_size != 0 {
            return Err(invalid(
                file,
                format!("run at {:#x} is not page-aligned", r.vaddr),
            ));
        }
        // A run may span adjacent VMAs (CRIU merges contiguous pages), but
        // every page must lie in a restorable one.
        let mut cur = r.vaddr;
        while cur < end {
            // VMAs are sorted and disjoint (validate_vmas): the one that
            // may hold `cur` is the first ending above it.
            let at = vmas.partition_point(|v| v.end <= cur);
            let Some(v) = vmas
                .get(at)
                .filter(|v| holds_pages(v) && v.start <= cur && cur < v.end)
            else {
                return Err(invalid(
                    file,
                    format!(
                        "pages {:#x}-{end:#x}: {cur:#x} is not inside a restorable VMA",
                        r.vaddr
                    ),
                ));
            };
            cur = v.end.min(end);
        }
        total = total.saturating_add(end - r.vaddr);
        prev_end = end;
    }
    if total != pages_len {
        return Err(invalid(
            file,
            format!("lists {total} bytes of pages but {pages_file} holds {pages_len}"),
        ));
    }
    Ok(())
}

fn invalid(file: impl Into<String>, what: String) -> CheckError {
    CheckError::Invalid {
        file: file.into(),
        what,
    }
}

#[cfg(test)]
mod tests {
    use super::status::VMA_ANON_SHARED;
    use super::*;

    const PAGE: u64 = 4096;
    const TOP: u64 = 1 << 47;

    fn vma(start: u64, end: u64) -> pb::VmaEntry {
        pb::VmaEntry {
            start,
            end,
            status: VMA_AREA_REGULAR,
            ..Default::default()
        }
    }

    fn run(vaddr: u64, nr_pages: u64) -> PagesRun {
        PagesRun {
            vaddr,
            nr_pages,
            offset: 0,
        }
    }

    fn what(r: Result<(), CheckError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn vmas_must_be_aligned_sorted_disjoint_and_below_task_size() {
        assert!(
            validate_vmas(&[vma(0x1000, 0x3000), vma(0x3000, 0x4000)], "mm", PAGE, TOP).is_ok()
        );
        assert!(
            what(validate_vmas(&[vma(0x1001, 0x3000)], "mm-1.img", PAGE, TOP))
                .contains("mm-1.img: VMA 0x1001-0x3000 is not page-aligned")
        );
        assert!(what(validate_vmas(&[vma(0x3000, 0x3000)], "mm", PAGE, TOP)).contains("empty"));
        assert!(
            what(validate_vmas(
                &[vma(0x1000, 0x3000), vma(0x2000, 0x4000)],
                "mm",
                PAGE,
                TOP
            ))
            .contains("overlaps")
        );
        assert!(
            what(validate_vmas(&[vma(TOP, TOP + PAGE)], "mm", PAGE, TOP)).contains("task size")
        );
    }

    /// A guard region not on mapped VMAs is a damaged image, named.
    #[test]
    fn guard_regions_off_the_vmas_are_refused() {
        let mut v = vec![vma(0x1000, 0x3000)];
        v.push(guard_entry(0x2000, 0x4000));
        assert!(
            what(validate_vmas(&v, "mm-7.img", PAGE, TOP))
                .contains("mm-7.img: guard region 0x2000-0x4000 is not mapped at 0x3000")
        );
    }

    #[test]
    fn memory_kept_outside_the_task_is_refused() {
        let mut shared = vma(0x1000, 0x2000);
        shared.status |= VMA_ANON_SHARED;
        // Shared anonymous memory is restored (from its shmem images).
        refuse_unsupported(&[vma(0, 0x1000), shared], "mm-7.img").unwrap();
        // So is a SysV segment (checked with the root's IPC namespace).
        shared.status |= VMA_AREA_SYSVIPC;
        refuse_unsupported(&[vma(0, 0x1000), shared], "mm-7.img").unwrap();
        shared.status |= VMA_AREA_AIORING;
        let e = refuse_unsupported(&[vma(0, 0x1000), shared], "mm-7.img").unwrap_err();
        assert!(
            e.to_string()
                .contains("mm-7.img: an AIO ring at 0x1000-0x2000")
        );
    }

    #[test]
    fn page_runs_must_be_inside_vmas_and_match_the_pages_image() {
        let vmas = [
            vma(0x1000, 0x3000),
            vma(0x3000, 0x5000),
            vma(0x8000, 0x9000),
        ];
        // Spanning two adjacent VMAs is fine.
        assert!(validate_pages(&[run(0x2000, 2)], &vmas, "pm", "pages", PAGE, 2 * PAGE).is_ok());
        assert!(
            what(validate_pages(
                &[run(0x4000, 2)],
                &vmas,
                "pagemap-1.img",
                "pages-1.img",
                PAGE,
                2 * PAGE
            ))
            .contains("pagemap-1.img: pages 0x4000-0x6000: 0x5000 is not inside")
        );
        assert!(
            what(validate_pages(
                &[run(0x1000, 1)],
                &vmas,
                "pm",
                "pages",
                PAGE,
                2 * PAGE
            ))
            .contains("lists 4096 bytes of pages but pages holds 8192")
        );
        assert!(
            what(validate_pages(
                &[run(0x1000, u64::MAX)],
                &vmas,
                "pm",
                "pages",
                PAGE,
                0
            ))
            .contains("overflows")
        );
        // Runs out of order or overlapping are refused.
        assert!(
            what(validate_pages(
                &[run(0x2000, 2), run(0x1000, 1)],
                &vmas,
                "pm",
                "pages",
                PAGE,
                3 * PAGE
            ))
            .contains("overlaps or precedes")
        );
        // vDSO pages may be listed (CRIU dumps them), vvar ones not.
        let mut vdso = vma(0x8000, 0x9000);
        vdso.status |= VMA_AREA_VDSO;
        assert!(validate_pages(&[run(0x8000, 1)], &[vdso], "pm", "pages", PAGE, PAGE).is_ok());
        vdso.status = VMA_AREA_REGULAR | VMA_AREA_VVAR;
        assert!(validate_pages(&[run(0x8000, 1)], &[vdso], "pm", "pages", PAGE, PAGE).is_err());
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
        let what = |r: Result<(), GuardError>| r.unwrap_err().to_string();
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
