//! The `PAGEMAP_SCAN` ioctl on `/proc/PID/pagemap` (kernel 6.7+), and
//! `MADV_GUARD_INSTALL` guard pages (6.13+) whose reporting
//! (`PAGE_IS_GUARD`) it may support.
//!
//! `PAGEMAP_SCAN` walks a range of a process's address space and returns
//! runs of pages that match category masks (present, swapped, file-backed,
//! zero-page, soft-dirty, guard, ...) instead of one 64-bit word per page.
//! Dump uses it to find the pages worth saving without reading a pagemap
//! word for every hole.

use std::fs::File;
use std::os::fd::AsRawFd;

use linux_raw_sys::general as raw;
use rustix::io::Errno;

/// Page categories (`PAGE_IS_*`), for the masks of [`ScanArgs`] and the
/// `categories` of each returned [`PageRegion`].
pub mod category {
    use linux_raw_sys::general as raw;
    pub const WPALLOWED: u64 = raw::PAGE_IS_WPALLOWED as u64;
    pub const WRITTEN: u64 = raw::PAGE_IS_WRITTEN as u64;
    pub const FILE: u64 = raw::PAGE_IS_FILE as u64;
    pub const PRESENT: u64 = raw::PAGE_IS_PRESENT as u64;
    pub const SWAPPED: u64 = raw::PAGE_IS_SWAPPED as u64;
    pub const PFNZERO: u64 = raw::PAGE_IS_PFNZERO as u64;
    pub const HUGE: u64 = raw::PAGE_IS_HUGE as u64;
    pub const SOFT_DIRTY: u64 = raw::PAGE_IS_SOFT_DIRTY as u64;
    pub const GUARD: u64 = raw::PAGE_IS_GUARD as u64;
}

/// `PAGEMAP_SCAN`: `_IOWR('f', 16, struct pm_scan_arg)`.
const PAGEMAP_SCAN: u32 = criu_arch::ioc(
    criu_arch::IOC_READ | criu_arch::IOC_WRITE,
    b'f' as u32,
    16,
    size_of::<raw::pm_scan_arg>(),
);

const _: () = assert!(size_of::<raw::pm_scan_arg>() == 96);
const _: () = assert!(size_of::<raw::page_region>() == 24);
const _: () = assert!(size_of::<PageRegion>() == size_of::<raw::page_region>());
// Read-write requests come out the same with powerpc's bits too.
const _: () = assert!(PAGEMAP_SCAN == 0xc060_6610);

/// One run of pages with the same categories: `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PageRegion {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}

/// What to scan and which pages to report (the kernel's `pm_scan_arg`
/// without the output vector, which [`scan`] supplies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanArgs {
    /// `PM_SCAN_WP_MATCHING`, `PM_SCAN_CHECK_WPASYNC`.
    pub flags: u64,
    pub start: u64,
    pub end: u64,
    /// Stop after this many pages (0: no limit).
    pub max_pages: u64,
    /// Categories whose meaning is inverted before matching.
    pub category_inverted: u64,
    /// All of these must be set (after inversion).
    pub category_mask: u64,
    /// At least one of these must be set (0: no condition).
    pub category_anyof_mask: u64,
    /// Categories reported in each region.
    pub return_mask: u64,
}

/// What one [`scan`] call found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanResult {
    /// How many entries of the output slice were filled.
    pub regions: usize,
    /// Where the walk stopped: `end` when the whole range was scanned, less
    /// when the output slice or `max_pages` ran out.
    pub walk_end: u64,
}

/// `ioctl(pagemap, PAGEMAP_SCAN)`: scans `args.start..args.end` of the
/// process whose `/proc/PID/pagemap` is `pagemap`, filling `out`.
pub fn scan(pagemap: &File, args: &ScanArgs, out: &mut [PageRegion]) -> Result<ScanResult, Errno> {
    let mut arg = raw::pm_scan_arg {
        size: size_of::<raw::pm_scan_arg>() as u64,
        flags: args.flags,
        start: args.start,
        end: args.end,
        walk_end: 0,
        vec: out.as_mut_ptr() as u64,
        vec_len: out.len() as u64,
        max_pages: args.max_pages,
        category_inverted: args.category_inverted,
        category_mask: args.category_mask,
        category_anyof_mask: args.category_anyof_mask,
        return_mask: args.return_mask,
    };
    // SAFETY: the kernel reads `arg` and writes back its `walk_end`, and
    // writes at most `vec_len` page_region entries (same layout as
    // `PageRegion`, asserted above) into `out`, which holds that many.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            pagemap.as_raw_fd() as usize,
            PAGEMAP_SCAN as usize,
            &mut arg as *mut raw::pm_scan_arg as usize,
        )
    };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(-ret as i32));
    }
    Ok(ScanResult {
        regions: ret as usize,
        walk_end: arg.walk_end,
    })
}

/// Whether `madvise(MADV_GUARD_INSTALL)` works: tried on a page mapped
/// only for this and unmapped again. `EINVAL` means the kernel lacks it.
pub fn madv_guard_supported() -> Result<bool, Errno> {
    let page = rustix::param::page_size();
    let prot = (raw::PROT_READ | raw::PROT_WRITE) as usize;
    let flags = (raw::MAP_PRIVATE | raw::MAP_ANONYMOUS) as usize;
    // SAFETY: a fresh private anonymous mapping at an address the kernel
    // picks: it cannot overlap anything we use.
    let addr = unsafe { criu_arch::sys_mmap(0, page, prot, flags, usize::MAX, 0) };
    if addr < 0 {
        return Err(Errno::from_raw_os_error(-addr as i32));
    }
    let addr = addr as usize;
    // SAFETY: the range is the page mapped above, which nothing references.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::MADVISE,
            addr,
            page,
            raw::MADV_GUARD_INSTALL as usize,
        )
    };
    // SAFETY: unmaps the page mapped above; nothing points into it.
    unsafe { criu_arch::syscall2(criu_arch::nr::MUNMAP, addr, page) };
    if ret == 0 {
        return Ok(true);
    }
    match Errno::from_raw_os_error(-ret as i32) {
        Errno::INVAL => Ok(false),
        e => Err(e),
    }
}

/// Whether this kernel's `PAGEMAP_SCAN` knows `PAGE_IS_GUARD` (6.14+):
/// asked once, of a page of our own mapped for it (`EINVAL` for an unknown
/// category, `ENOTTY` without the ioctl, as under qemu-user). Any other
/// failure counts as yes, so that the scan itself fails by name.
pub fn guard_category_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let page = rustix::param::page_size();
        let prot = (raw::PROT_READ | raw::PROT_WRITE) as usize;
        let flags = (raw::MAP_PRIVATE | raw::MAP_ANONYMOUS) as usize;
        // SAFETY: a fresh private anonymous mapping at an address the
        // kernel picks: it cannot overlap anything we use.
        let addr = unsafe { criu_arch::sys_mmap(0, page, prot, flags, usize::MAX, 0) };
        if addr < 0 {
            return true;
        }
        let scanned = File::open("/proc/self/pagemap").map(|pagemap| {
            let args = ScanArgs {
                start: addr as u64,
                end: addr as u64 + page as u64,
                category_mask: category::GUARD,
                return_mask: category::GUARD,
                ..ScanArgs::default()
            };
            scan(&pagemap, &args, &mut [PageRegion::default(); 1])
        });
        // SAFETY: unmaps the page mapped above; nothing points into it.
        unsafe { criu_arch::syscall2(criu_arch::nr::MUNMAP, addr as usize, page) };
        // Any other failure: say yes, and let the real scan report it.
        !matches!(scanned, Ok(Err(Errno::INVAL | Errno::NOTTY)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_number() {
        assert_eq!(PAGEMAP_SCAN & 0xffff, 0x6610);
    }

    /// Touch two of 64 pages of a fresh mapping: the scan reports exactly
    /// those as present (qemu-user does not pass this ioctl through; there
    /// the test only reports the skip).
    #[test]
    fn scan_finds_touched_pages() {
        let page = rustix::param::page_size();
        let len = 64 * page;
        let prot = (raw::PROT_READ | raw::PROT_WRITE) as usize;
        let flags = (raw::MAP_PRIVATE | raw::MAP_ANONYMOUS) as usize;
        // SAFETY: a fresh private anonymous mapping the kernel places; no
        // Rust object lives there. (A heap buffer could reuse pages that
        // were touched before.)
        let addr = unsafe { criu_arch::sys_mmap(0, len, prot, flags, usize::MAX, 0) };
        assert!(addr > 0, "mmap: {addr}");
        let start = addr as u64;
        // SAFETY: advice on the mapping made above. No huge pages (or mTHP
        // folios), which would make neighbours of a touched page present.
        unsafe {
            criu_arch::syscall3(
                criu_arch::nr::MADVISE,
                addr as usize,
                len,
                raw::MADV_NOHUGEPAGE as usize,
            )
        };
        for p in [1, 5] {
            // SAFETY: inside the writable mapping made above.
            unsafe { ((addr as usize + p * page) as *mut u8).write_volatile(1) };
        }
        let pagemap = File::open("/proc/self/pagemap").expect("pagemap");
        let args = ScanArgs {
            start,
            end: start + len as u64,
            category_anyof_mask: category::PRESENT,
            return_mask: category::PRESENT,
            ..ScanArgs::default()
        };
        let mut out = [PageRegion::default(); 16];
        let result = scan(&pagemap, &args, &mut out);
        // SAFETY: unmaps the mapping made above; nothing refers to it.
        unsafe { criu_arch::syscall2(criu_arch::nr::MUNMAP, addr as usize, len) };
        match result {
            Ok(r) => {
                assert_eq!(r.walk_end, args.end);
                let found: Vec<(u64, u64)> = out[..r.regions]
                    .iter()
                    .map(|x| {
                        (
                            (x.start - start) / page as u64,
                            (x.end - start) / page as u64,
                        )
                    })
                    .collect();
                assert_eq!(found, [(1, 2), (5, 6)]);
                assert!(
                    out[..r.regions]
                        .iter()
                        .all(|x| x.categories == category::PRESENT)
                );
            }
            Err(e) => eprintln!("SKIPPED scan_finds_touched_pages: PAGEMAP_SCAN failed: {e}"),
        }
    }
}
