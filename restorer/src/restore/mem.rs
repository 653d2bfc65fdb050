//! Memory: parking the vDSO, unmapping the tool, mapping the task's VMAs,
//! reading its pages, final protections, and the mm boundaries.

use criu_arch::{flush_icache, sys_mmap};
use criu_blob_rt::sys;

use super::{
    EINTR, Fail, MAP_FIXED, MREMAP_FIXED, MREMAP_MAYMOVE, PR_SET_MM, PR_SET_MM_MAP, check, items,
};
use crate::abi::{self, Array, RestoreArgs};

pub(super) fn remap_all(list: &Array) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, r) in unsafe { items::<abi::Remap>(list) }.iter().enumerate() {
        let ret = if r.to == 0 {
            // SAFETY: unmapping a range the tool chose, outside the region.
            unsafe { sys::munmap(r.from as usize, r.len as usize) }
        } else {
            // mremap refuses (EINVAL) a move onto a range that overlaps
            // the source: a premap slot placed by the kernel near the
            // VMA it is for (ASLR) may. Such a move goes through a free
            // place first, as CRIU's vma_remap does.
            let mut from = r.from as usize;
            if r.from < r.to + r.len && r.to < r.from + r.len {
                let tmp = free_place_apart_from(r.to as usize, r.len as usize, i as u32)?;
                // SAFETY: moves the whole slot onto the reservation just
                // made, which nothing else uses.
                let moved = unsafe {
                    sys::mremap(
                        from,
                        r.len as usize,
                        r.len as usize,
                        MREMAP_MAYMOVE | MREMAP_FIXED,
                        tmp,
                    )
                };
                check(moved, i as u32)?;
                from = tmp;
            }
            // SAFETY: moves a vDSO/vvar mapping or a premap slot; the
            // target range is inside the bootstrap region's parking area,
            // a dumped vDSO address that no restored VMA uses, or the
            // slot's own VMA.
            unsafe {
                sys::mremap(
                    from,
                    r.len as usize,
                    r.len as usize,
                    MREMAP_MAYMOVE | MREMAP_FIXED,
                    r.to as usize,
                )
            }
        };
        check(ret, i as u32)?;
    }
    Ok(())
}

/// A reserved free place of `len` bytes that does not overlap
/// `[to, to + len)`. The kernel picks a fresh reservation's place, and a
/// top-down search may well pick one overlapping the move's target (the
/// part of the target the slot does not cover may be free, and the gap
/// below it too: seen on ppc64le, where the second move then failed with
/// EINVAL). So three times `len` is reserved: its first or its last
/// `len` bytes are clear of the target (a range of `len` bytes cannot
/// reach both), and the rest is unmapped again.
fn free_place_apart_from(to: usize, len: usize, item: u32) -> Result<usize, Fail> {
    const PROT_NONE: usize = criu_arch::kernel::general::PROT_NONE as usize;
    const MAP_PRIVATE_ANON: usize = (criu_arch::kernel::general::MAP_PRIVATE
        | criu_arch::kernel::general::MAP_ANONYMOUS) as usize;
    // SAFETY: a new reservation wherever the kernel has room.
    let big = unsafe { sys_mmap(0, 3 * len, PROT_NONE, MAP_PRIVATE_ANON, usize::MAX, 0) };
    check(big, item)?;
    let big = big as usize;
    let place = if big < to + len && to < big + len {
        big + 2 * len
    } else {
        big
    };
    // The other 2 * len bytes: after the place, or before it.
    let unused = if place == big { big + len } else { big };
    // SAFETY: unmaps the part of the reservation just made that is not
    // the chosen place (nothing else is there).
    check(unsafe { sys::munmap(unused, 2 * len) }, item)?;
    Ok(place)
}

pub(super) fn unregister_rseq(r: &abi::RseqArg) -> Result<(), Fail> {
    const RSEQ_FLAG_UNREGISTER: usize = 1;
    if r.addr == 0 {
        return Ok(());
    }
    // SAFETY: unregistering only stops the kernel writing to `addr`.
    let ret = unsafe {
        sys::rseq(
            r.addr as usize,
            r.len as usize,
            RSEQ_FLAG_UNREGISTER,
            r.sig as usize,
        )
    };
    check(ret, 0).map(drop)
}

pub(super) fn unmap(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, r) in unsafe { items::<abi::Region>(&args.unmap) }
        .iter()
        .enumerate()
    {
        if r.end > r.start {
            check(
                // SAFETY: the ranges exclude the bootstrap region we run from.
                unsafe { sys::munmap(r.start as usize, (r.end - r.start) as usize) },
                i as u32,
            )?;
        }
    }
    Ok(())
}

pub(super) fn map_vmas(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, v) in unsafe { items::<abi::VmaArg>(&args.vmas) }
        .iter()
        .enumerate()
        .filter(|(_, v)| v.premapped == 0)
    {
        if v.kind == abi::VMA_SHMAT {
            shmat(v, i)?;
            continue;
        }
        // SAFETY: MAP_FIXED over ranges that hold nothing of ours any more.
        let ret = unsafe {
            sys_mmap(
                v.start as usize,
                (v.end - v.start) as usize,
                v.map_prot as usize,
                v.flags as usize | MAP_FIXED,
                v.fd as isize as usize,
                v.offset as usize,
            )
        };
        check(ret, i as u32)?;
        if ret as u64 != v.start {
            return Err((-22, i as u32));
        }
    }
    Ok(())
}

/// Attach SysV segment `v.fd` at `v.start` (see [`abi::VMA_SHMAT`]): the
/// segment holds its contents already (the root's IPC namespace was
/// filled before any task got here).
fn shmat(v: &abi::VmaArg, i: usize) -> Result<(), Fail> {
    use criu_arch::kernel::general::{PROT_EXEC, PROT_WRITE};
    let mut flags = 0;
    if v.final_prot & PROT_WRITE == 0 {
        flags |= abi::SHM_RDONLY;
    }
    if v.final_prot & PROT_EXEC != 0 {
        flags |= abi::SHM_EXEC;
    }
    // SAFETY: attaches over a range that holds nothing of ours any more.
    let ret = unsafe { sys::shmat(v.fd as usize, v.start as usize, flags as usize) };
    check(ret, i as u32)?;
    if ret as u64 != v.start {
        return Err((-22, i as u32));
    }
    Ok(())
}

/// `MADV_POPULATE_WRITE` (Linux 5.14+): fault pages in writable, as a write
/// would, without touching their contents.
const MADV_POPULATE_WRITE: usize = criu_arch::kernel::general::MADV_POPULATE_WRITE as usize;
/// Bytes populated and then read at a time: small enough that the freshly
/// zeroed pages are still in the cache when `pread` overwrites them, large
/// enough to keep the number of system calls low.
const READ_CHUNK: u64 = 256 << 10;

/// Read every page run from the pages image into the mapped VMAs. Each
/// chunk is first faulted in with one `MADV_POPULATE_WRITE` call: otherwise
/// `pread`'s copy takes a page fault (exception, fault, retry) on every 4K
/// page of the fresh mapping.
pub(super) fn read_pages(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list; every run lies in a writable VMA.
    read_runs(args.pages_fd, unsafe {
        items::<abi::PageRun>(&args.page_runs)
    })
}

/// Read `runs` of the pages image into their VMAs (see [`read_pages`]).
fn read_runs(fd: i32, runs: &[abi::PageRun]) -> Result<(), Fail> {
    // Cleared when the kernel does not know the advice (before 5.14): the
    // read then faults the pages in by itself, as it always could.
    let mut populate = true;
    for (i, r) in runs.iter().enumerate() {
        let (mut addr, mut left, mut off) = (r.addr, r.len, r.offset);
        while left > 0 {
            let len = left.min(READ_CHUNK);
            if populate {
                populate = populate_write(addr, len);
            }
            read_exact(fd, addr, len, off, i as u32)?;
            addr += len;
            off += len;
            left -= len;
        }
    }
    Ok(())
}

/// Hand `copy_runs` to the tool (see [`abi::STATE_PAGES`]): a userfaultfd
/// with every `copy_vmas` range registered for missing pages, published in
/// the status. `None` when there is nothing to hand over or the kernel
/// gives no userfaultfd (no `UFFD_USER_MODE_ONLY` before 5.11, none at all
/// without CONFIG_USERFAULTFD, a seccomp filter of ours...): the runs are
/// then read here like the others.
pub(super) fn offer_copy(args: &mut RestoreArgs) -> Option<i32> {
    // SAFETY: the tool filled the list.
    let vmas = unsafe { items::<abi::Region>(&args.copy_vmas) };
    if vmas.is_empty() {
        return None;
    }
    let uffd = make_uffd(vmas)?;
    args.status.uffd = uffd;
    super::publish(args, abi::STATE_PAGES);
    Some(uffd)
}

/// A userfaultfd (user-mode faults only, which any user may make) with
/// `vmas` registered for missing pages, or `None` (closed again) if any
/// step fails.
fn make_uffd(vmas: &[abi::Region]) -> Option<i32> {
    use criu_arch::kernel::general::{
        O_CLOEXEC, UFFD_API, UFFD_USER_MODE_ONLY, UFFDIO_REGISTER_MODE_MISSING, uffdio_api,
        uffdio_range, uffdio_register,
    };
    const RW: u32 = criu_arch::IOC_READ | criu_arch::IOC_WRITE;
    const UFFDIO_API: u32 = criu_arch::ioc(RW, 0xAA, 0x3F, size_of::<uffdio_api>());
    const UFFDIO_REGISTER: u32 = criu_arch::ioc(RW, 0xAA, 0x00, size_of::<uffdio_register>());
    // SAFETY: integer arguments only.
    let fd = unsafe { sys::userfaultfd((O_CLOEXEC | UFFD_USER_MODE_ONLY) as usize) };
    if fd < 0 {
        return None;
    }
    let mut api = uffdio_api {
        api: UFFD_API as u64,
        features: 0,
        ioctls: 0,
    };
    // SAFETY: the kernel reads and writes back `api`, a live local.
    let mut ok =
        unsafe { sys::ioctl(fd as usize, UFFDIO_API as usize, &raw mut api as usize) } == 0;
    for v in vmas {
        if !ok {
            break;
        }
        let mut reg = uffdio_register {
            range: uffdio_range {
                start: v.start,
                len: v.end - v.start,
            },
            mode: UFFDIO_REGISTER_MODE_MISSING as u64,
            ioctls: 0,
        };
        // SAFETY: the kernel reads `reg` and writes its `ioctls`; the range
        // is a private anonymous VMA we just mapped.
        ok = unsafe { sys::ioctl(fd as usize, UFFDIO_REGISTER as usize, &raw mut reg as usize) }
            == 0;
    }
    if !ok {
        // SAFETY: our own fd; closing it unregisters whatever was.
        unsafe { sys::close(fd as usize) };
        return None;
    }
    Some(fd as i32)
}

/// Wait until the tool has copied the runs in through `uffd` (or tells us
/// to read them ourselves), close the userfaultfd (which unregisters the
/// VMAs) and work on.
pub(super) fn await_copy(args: &mut RestoreArgs, uffd: Option<i32>) -> Result<(), Fail> {
    const FUTEX_WAIT: usize = criu_arch::kernel::general::FUTEX_WAIT as usize;
    // SAFETY: the tool filled the list.
    let runs = unsafe { items::<abi::PageRun>(&args.copy_runs) };
    let Some(uffd) = uffd else {
        return read_runs(args.pages_fd, runs);
    };
    // SAFETY: `filled` is a naturally aligned u32 inside the shared region.
    let word = unsafe { core::sync::atomic::AtomicU32::from_ptr(&mut args.status.filled) };
    let filled = loop {
        match word.load(core::sync::atomic::Ordering::Acquire) {
            abi::FILL_PENDING => {}
            f => break f,
        }
        // SAFETY: waits while the word is FILL_PENDING; the address is
        // valid and shared with the tool (not private: two processes).
        unsafe { sys::futex(word.as_ptr() as usize, FUTEX_WAIT, 0, 0) };
    };
    // SAFETY: our own fd (the tool closed its copy before answering).
    unsafe { sys::close(uffd as usize) };
    super::publish(args, abi::STATE_RUNNING);
    match filled {
        abi::FILL_DONE => Ok(()),
        abi::FILL_SELF => read_runs(args.pages_fd, runs),
        _ => Err((-(args.status.fill_errno as isize), 0)),
    }
}

/// Fault `[addr, addr + len)` in for writing. False if the kernel does not
/// know the advice; any other failure (say, out of memory) is left for the
/// read to meet and report.
fn populate_write(addr: u64, len: u64) -> bool {
    const EINVAL: isize = -(criu_arch::kernel::errno::EINVAL as isize);
    loop {
        // SAFETY: only faults in pages of a VMA we mapped; contents stay.
        let r = unsafe { sys::madvise(addr as usize, len as usize, MADV_POPULATE_WRITE) };
        if r != EINTR {
            return r != EINVAL;
        }
    }
}

/// `pread` exactly `len` bytes at `off` of `fd` into `addr`.
fn read_exact(fd: i32, mut addr: u64, mut left: u64, mut off: u64, i: u32) -> Result<(), Fail> {
    while left > 0 {
        // SAFETY: writes into a mapped, writable restored VMA.
        let n = unsafe { sys::pread64(fd as usize, addr as usize, left as usize, off as usize) };
        if n == EINTR {
            continue;
        }
        check(n, i)?;
        if n == 0 {
            // pages image shorter than the pagemap says.
            return Err((-5, i));
        }
        addr += n as u64;
        off += n as u64;
        left -= n as u64;
    }
    Ok(())
}

pub(super) fn protect(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, v) in unsafe { items::<abi::VmaArg>(&args.vmas) }
        .iter()
        .enumerate()
    {
        if v.final_prot != v.map_prot {
            check(
                // SAFETY: changes protections of a VMA we just mapped.
                unsafe {
                    sys::mprotect(
                        v.start as usize,
                        (v.end - v.start) as usize,
                        v.final_prot as usize,
                    )
                },
                i as u32,
            )?;
        }
    }
    Ok(())
}

pub(super) fn set_mm(args: &RestoreArgs) -> Result<(), Fail> {
    let m = &args.mm_map;
    check(
        // SAFETY: `m` is a live prctl_mm_map of the size given.
        unsafe {
            sys::prctl(
                PR_SET_MM,
                PR_SET_MM_MAP,
                m as *const abi::PrctlMmMap as usize,
                core::mem::size_of::<abi::PrctlMmMap>(),
                0,
            )
        },
        0,
    )?;
    Ok(())
}

/// Write the proxy vDSO's jumps (see [`abi::CodePatch`]).
pub(super) fn patch_code(list: &Array) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, p) in unsafe { items::<abi::CodePatch>(list) }.iter().enumerate() {
        if p.len as usize > abi::CODE_PATCH_MAX {
            return Err((-22, i as u32));
        }
        for (k, b) in p.code[..p.len as usize].iter().enumerate() {
            // SAFETY: inside a VMA just mapped writable with its pages
            // read; the tool checked the range lies in the dumped vDSO.
            unsafe { core::ptr::write_volatile((p.addr as usize + k) as *mut u8, *b) };
        }
    }
    Ok(())
}

/// Make the patched code visible to instruction fetch (the final
/// protections are set; a no-op where caches are coherent).
pub(super) fn flush_patches(list: &Array) {
    // SAFETY: the tool filled the list.
    for p in unsafe { items::<abi::CodePatch>(list) } {
        flush_icache(p.addr as usize, p.len as usize);
    }
}

/// Write CRIU's mark over this kernel's vDSO at its final place (see
/// [`abi::VdsoMarkArg`]).
pub(super) fn mark_vdso(m: &abi::VdsoMarkArg) -> Result<(), Fail> {
    use criu_arch::kernel::general::{PROT_EXEC, PROT_READ, PROT_WRITE};
    const RW: usize = (PROT_READ | PROT_WRITE) as usize;
    const RX: usize = (PROT_READ | PROT_EXEC) as usize;
    if m.addr == 0 {
        return Ok(());
    }
    let (addr, len) = (m.addr as usize, m.len as usize);
    // SAFETY: changes the protection of this kernel's vDSO, just moved here.
    check(unsafe { sys::mprotect(addr, len, RW) }, 0)?;
    for (i, w) in m.words.iter().enumerate() {
        // SAFETY: the vDSO is writable now and longer than the mark.
        unsafe { core::ptr::write_volatile((addr + 8 * i) as *mut u64, *w) };
    }
    // SAFETY: as above, back to the vDSO's protection.
    check(unsafe { sys::mprotect(addr, len, RX) }, 1)?;
    Ok(())
}

/// Bytes compared at a time in an inherited slot: a page on most arches,
/// a part of one where pages are larger (a differing part is written,
/// which copies the whole page: as the task had it).
const COMPARE_CHUNK: usize = 4096;

/// `STAGE_PREMAP`, before the task forks its children: its premap slots
/// get its dumped contents (see [`crate::abi::CowArgs`]).
pub(super) fn premap(args: &mut RestoreArgs) -> Result<(), Fail> {
    const PROT_RW: usize =
        (criu_arch::kernel::general::PROT_READ | criu_arch::kernel::general::PROT_WRITE) as usize;
    const MAP_PRIVATE_ANON: usize = (criu_arch::kernel::general::MAP_PRIVATE
        | criu_arch::kernel::general::MAP_ANONYMOUS) as usize;
    const MADV_DONTNEED: usize = criu_arch::kernel::general::MADV_DONTNEED as usize;
    let cow = args.cow;
    // SAFETY: the tool filled the list inside the bootstrap region.
    for (i, r) in unsafe { items::<abi::Region>(&cow.unmap) }
        .iter()
        .enumerate()
    {
        check(
            // SAFETY: parts of the premap area, which holds nothing else.
            unsafe { sys::munmap(r.start as usize, (r.end - r.start) as usize) },
            i as u32,
        )?;
    }
    // SAFETY: the tool filled the list inside the bootstrap region.
    for (i, r) in unsafe { items::<abi::Region>(&cow.maps) }
        .iter()
        .enumerate()
    {
        // SAFETY: MAP_FIXED over a slot of the premap area.
        let ret = unsafe {
            sys_mmap(
                r.start as usize,
                (r.end - r.start) as usize,
                PROT_RW,
                MAP_PRIVATE_ANON | MAP_FIXED,
                usize::MAX,
                0,
            )
        };
        check(ret, i as u32)?;
    }
    // SAFETY: the tool filled the list inside the bootstrap region.
    for (i, r) in unsafe { items::<abi::PageRun>(&cow.fill) }
        .iter()
        .enumerate()
    {
        read_exact(args.pages_fd, r.addr, r.len, r.offset, i as u32)?;
    }
    let mut skipped = 0;
    // SAFETY: the tool filled the list inside the bootstrap region.
    for (i, r) in unsafe { items::<abi::PageRun>(&cow.compare) }
        .iter()
        .enumerate()
    {
        skipped += compare_run(args.pages_fd, r, i as u32)?;
    }
    // SAFETY: the tool filled the list inside the bootstrap region.
    for (i, r) in unsafe { items::<abi::Region>(&cow.discard) }
        .iter()
        .enumerate()
    {
        check(
            // SAFETY: drops pages of an inherited slot (they read as zero).
            unsafe { sys::madvise(r.start as usize, (r.end - r.start) as usize, MADV_DONTNEED) },
            i as u32,
        )?;
    }
    args.cow.skipped = skipped;
    Ok(())
}

/// Read run `r` chunk by chunk and write only the chunks that differ from
/// what the slot holds (the parent's page, shared until written). Returns
/// the bytes left shared.
fn compare_run(fd: i32, r: &abi::PageRun, i: u32) -> Result<u64, Fail> {
    let mut buf = [0u8; COMPARE_CHUNK];
    let mut skipped = 0;
    let mut done = 0;
    while done < r.len {
        let len = (r.len - done).min(COMPARE_CHUNK as u64);
        let at = r.addr + done;
        read_exact(fd, buf.as_mut_ptr() as u64, len, r.offset + done, i)?;
        // SAFETY: `at..at + len` lies in a mapped, readable slot.
        let here = unsafe { core::slice::from_raw_parts_mut(at as usize as *mut u8, len as usize) };
        let dumped = &buf[..len as usize];
        if here == dumped {
            skipped += len;
        } else {
            here.copy_from_slice(dumped);
        }
        done += len;
    }
    Ok(skipped)
}
