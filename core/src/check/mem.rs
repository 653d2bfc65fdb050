//! Memory probes: pagemap and `PAGEMAP_SCAN`, soft-dirty tracking, memfd,
//! userfaultfd, guard pages.

use std::fs::File;
use std::os::unix::fs::FileExt;

use rustix::fs::MemfdFlags;
use rustix::io::Errno;

use super::{CheckResult, KernelFeatures, PagemapMode, problem};
use crate::sys::pagemap_scan::{self, PageRegion, ScanArgs, category};
use crate::sys::uffd;

/// Pagemap entry bits (`Documentation/admin-guide/mm/pagemap.rst`).
const PME_PRESENT: u64 = 1 << 63;
const PME_SOFT_DIRTY: u64 = 1 << 55;
const PME_PFRAME_MASK: u64 = (1 << 55) - 1;

pub(super) struct PagemapProbe {
    pub mode: PagemapMode,
    pub scan: bool,
    pub scan_guard: bool,
}

/// The scan CRIU uses for dumping: present or swapped anonymous pages,
/// reporting soft-dirty. Over an empty range it only tests the ioctl.
fn dump_scan_args() -> ScanArgs {
    ScanArgs {
        category_inverted: category::PFNZERO | category::FILE,
        category_mask: category::PFNZERO | category::FILE,
        category_anyof_mask: category::PRESENT | category::SWAPPED,
        return_mask: category::PRESENT | category::SWAPPED | category::SOFT_DIRTY,
        ..ScanArgs::default()
    }
}

/// The pagemap entry of the page holding `addr` in our own address space.
fn own_pagemap_entry(pagemap: &File, addr: usize) -> std::io::Result<u64> {
    let page = rustix::param::page_size();
    let mut word = [0u8; 8];
    pagemap.read_exact_at(&mut word, (addr / page * 8) as u64)?;
    Ok(u64::from_ne_bytes(word))
}

pub(super) fn probe_pagemap() -> PagemapProbe {
    let mut probe = PagemapProbe {
        mode: PagemapMode::Disabled,
        scan: false,
        scan_guard: false,
    };
    let pagemap = match File::open("/proc/self/pagemap") {
        Ok(f) => f,
        Err(e) => {
            crate::pr_info!("Pagemap disabled: {e}");
            return probe;
        }
    };
    let mut out = [PageRegion::default(); 1];
    let mut args = dump_scan_args();
    match pagemap_scan::scan(&pagemap, &args, &mut out) {
        Ok(_) => {
            crate::pr_debug!("PAGEMAP_SCAN is supported");
            probe.scan = true;
            args.return_mask |= category::GUARD;
            probe.scan_guard = pagemap_scan::scan(&pagemap, &args, &mut out).is_ok();
        }
        Err(e) => crate::pr_debug!("PAGEMAP_SCAN isn't supported: {e}"),
    }
    // A page surely present: one we just wrote.
    let value = std::hint::black_box(Box::new(0x5a5a_u64));
    let addr = &*value as *const u64 as usize;
    probe.mode = match own_pagemap_entry(&pagemap, addr) {
        Ok(pme) if pme & PME_PRESENT != 0 && pme & PME_PFRAME_MASK != 0 => {
            crate::pr_info!("Pagemap is fully functional");
            PagemapMode::Full
        }
        Ok(_) => {
            crate::pr_info!("Pagemap provides flags only");
            PagemapMode::FlagsOnly
        }
        Err(e) => {
            crate::pr_info!("Can't read pagemap: {e}");
            PagemapMode::Disabled
        }
    };
    probe
}

/// Soft-dirty: clear the bits of our whole address space, dirty one page and
/// see whether pagemap reports it. Without `CONFIG_MEM_SOFT_DIRTY` the bit
/// never appears.
pub(super) fn probe_dirty_track() -> bool {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "4") {
        crate::pr_info!("Dirty tracking support is OFF ({e})");
        return false;
    }
    let page = rustix::param::page_size();
    let mut buf = vec![0u8; 2 * page];
    let off = buf.as_ptr().align_offset(page);
    buf[off] = 1;
    let addr = std::hint::black_box(&buf).as_ptr() as usize + off;
    let on = File::open("/proc/self/pagemap")
        .and_then(|pm| own_pagemap_entry(&pm, addr))
        .map(|pme| pme & PME_SOFT_DIRTY != 0)
        .unwrap_or(false);
    if on {
        crate::pr_info!("Dirty track supported on kernel");
    } else {
        crate::pr_info!("Dirty tracking support is OFF");
    }
    on
}

pub(super) fn probe_memfd() -> (bool, bool) {
    let memfd = match rustix::fs::memfd_create("criu-check", MemfdFlags::CLOEXEC) {
        Ok(_) => true,
        Err(e) => {
            crate::pr_info!("memfd_create isn't supported: {e}");
            false
        }
    };
    let hugetlb = memfd
        && match rustix::fs::memfd_create("criu-check", MemfdFlags::CLOEXEC | MemfdFlags::HUGETLB) {
            Ok(_) => true,
            Err(e) => {
                crate::pr_info!("memfd_create(MFD_HUGETLB) isn't supported: {e}");
                false
            }
        };
    (memfd, hugetlb)
}

/// The userfaultfd features, through the syscall or else the device node;
/// `None` when neither works.
pub(super) fn probe_uffd_features() -> Option<u64> {
    match uffd::supported_features(uffd::userfaultfd) {
        Ok(f) => return Some(f),
        Err(Errno::PERM) | Err(Errno::NOSYS) => {}
        Err(e) => crate::pr_info!("userfaultfd failed: {e}"),
    }
    match uffd::supported_features(uffd::userfaultfd_dev) {
        Ok(f) => Some(f),
        Err(e) => {
            crate::pr_info!("Lazy pages are not available: {e}");
            None
        }
    }
}

pub(super) fn probe_madv_guard() -> bool {
    pagemap_scan::madv_guard_supported().unwrap_or_else(|e| {
        crate::pr_info!("madvise failed (has_madv_guard check): {e}");
        false
    })
}

pub(super) fn check_mem_dirty_track(k: &KernelFeatures) -> CheckResult {
    if k.mem_track() {
        crate::pr_info!(
            "Dirty tracking: userfaultfd async write-protect + PAGEMAP_SCAN{}",
            if k.dirty_track {
                " (soft-dirty is there too, unused)"
            } else {
                " (no soft-dirty needed)"
            }
        );
        return Ok(());
    }
    Err(problem!(
        Warn,
        "Dirty tracking is OFF. Memory snapshot will not work."
    ))
}

pub(super) fn check_uffd(k: &KernelFeatures) -> CheckResult {
    if !k.uffd {
        return Err(problem!(Error, "UFFD is not supported"));
    }
    Ok(())
}

pub(super) fn check_uffd_noncoop(k: &KernelFeatures) -> CheckResult {
    check_uffd(k)?;
    if !k.uffd_noncooperative() {
        return Err(problem!(Error, "Non-cooperative UFFD is not supported"));
    }
    Ok(())
}

pub(super) fn check_memfd_hugetlb(k: &KernelFeatures) -> CheckResult {
    if !k.memfd_hugetlb {
        return Err(problem!(Info, "memfd_create(MFD_HUGETLB) isn't supported"));
    }
    Ok(())
}

pub(super) fn check_pagemap_scan(k: &KernelFeatures) -> CheckResult {
    if !k.pagemap_scan {
        return Err(problem!(Warn, "PAGEMAP_SCAN isn't supported"));
    }
    Ok(())
}

/// As CRIU: the warning only where guard pages exist but the scan cannot
/// see them; a kernel without either just lacks the feature.
pub(super) fn check_pagemap_scan_guard_pages(k: &KernelFeatures) -> CheckResult {
    if !k.pagemap_scan_guard_pages {
        if !k.madv_guard {
            return Err(problem!(Info, "PAGEMAP_SCAN doesn't report guard pages"));
        }
        return Err(problem!(
            Warn,
            "ioctl(PAGEMAP_SCAN) doesn't support PAGE_IS_GUARD flag. CRIU dump will fail if \
             dumped processes use madvise(MADV_GUARD_INSTALL). Please, consider updating your \
             kernel."
        ));
    }
    Ok(())
}
