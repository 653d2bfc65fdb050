//! Memory: parking the vDSO, unmapping the tool, mapping the task's VMAs,
//! reading its pages, final protections, and the mm boundaries.

use criu_arch::{nr, sys_mmap, syscall2, syscall3, syscall4, syscall5};

use super::{
    EINTR, Fail, MAP_FIXED, MREMAP_FIXED, MREMAP_MAYMOVE, PR_SET_MM, PR_SET_MM_MAP, check, items,
};
use crate::abi::{self, Array, RestoreArgs};

pub(super) fn remap_all(list: &Array) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, r) in unsafe { items::<abi::Remap>(list) }.iter().enumerate() {
        let ret = if r.to == 0 {
            // SAFETY: unmapping a range the tool chose, outside the region.
            unsafe { syscall2(nr::MUNMAP, r.from as usize, r.len as usize) }
        } else {
            // SAFETY: moves a vDSO/vvar mapping; the target range is either
            // inside the bootstrap region's parking area or a dumped vDSO
            // address that no restored VMA uses.
            unsafe {
                syscall5(
                    nr::MREMAP,
                    r.from as usize,
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

pub(super) fn unregister_rseq(r: &abi::RseqArg) -> Result<(), Fail> {
    const RSEQ_FLAG_UNREGISTER: usize = 1;
    if r.addr == 0 {
        return Ok(());
    }
    // SAFETY: unregistering only stops the kernel writing to `addr`.
    let ret = unsafe {
        syscall4(
            nr::RSEQ,
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
            // SAFETY: the ranges exclude the bootstrap region we run from.
            check(
                unsafe { syscall2(nr::MUNMAP, r.start as usize, (r.end - r.start) as usize) },
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
    {
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

pub(super) fn read_pages(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list; every run lies in a writable VMA.
    for (i, r) in unsafe { items::<abi::PageRun>(&args.page_runs) }
        .iter()
        .enumerate()
    {
        let (mut addr, mut left, mut off) = (r.addr, r.len, r.offset);
        while left > 0 {
            // SAFETY: writes into a mapped, writable restored VMA.
            let n = unsafe {
                syscall4(
                    nr::PREAD64,
                    args.pages_fd as usize,
                    addr as usize,
                    left as usize,
                    off as usize,
                )
            };
            if n == EINTR {
                continue;
            }
            check(n, i as u32)?;
            if n == 0 {
                // pages image shorter than the pagemap says.
                return Err((-5, i as u32));
            }
            addr += n as u64;
            off += n as u64;
            left -= n as u64;
        }
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
            // SAFETY: changes protections of a VMA we just mapped.
            check(
                unsafe {
                    syscall3(
                        nr::MPROTECT,
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
    // SAFETY: `m` is a live prctl_mm_map of the size given.
    check(
        unsafe {
            syscall5(
                nr::PRCTL,
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
