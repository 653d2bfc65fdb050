//! Raw system call entry: `svc 0` with the number in r1, arguments in
//! r2..r7 and the result in r2. Nothing else is clobbered.

use core::arch::asm;

/// Raw syscall without arguments; returns the kernel's result (`-errno` on failure).
///
/// # Safety
/// A raw system call can do anything; the caller upholds the syscall's contract.
#[inline(always)]
pub unsafe fn syscall0(nr: usize) -> isize {
    let ret: usize;
    // SAFETY: `svc 0` changes only r2 (the result); the caller vouches for
    // the syscall itself.
    unsafe {
        asm!("svc 0", in("r1") nr, lateout("r2") ret, options(nostack));
    }
    ret as isize
}

/// Raw syscall with 1 argument.
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall1(nr: usize, a1: usize) -> isize {
    let ret: usize;
    // SAFETY: `svc 0` changes only r2 (the result); the caller vouches for
    // the syscall itself.
    unsafe {
        asm!("svc 0", in("r1") nr, inlateout("r2") a1 => ret, options(nostack));
    }
    ret as isize
}

/// Raw syscall with 2 arguments.
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall2(nr: usize, a1: usize, a2: usize) -> isize {
    let ret: usize;
    // SAFETY: `svc 0` changes only r2 (the result); the caller vouches for
    // the syscall itself.
    unsafe {
        asm!("svc 0", in("r1") nr, inlateout("r2") a1 => ret, in("r3") a2, options(nostack));
    }
    ret as isize
}

/// Raw syscall with 3 arguments.
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall3(nr: usize, a1: usize, a2: usize, a3: usize) -> isize {
    let ret: usize;
    // SAFETY: `svc 0` changes only r2 (the result); the caller vouches for
    // the syscall itself.
    unsafe {
        asm!("svc 0", in("r1") nr, inlateout("r2") a1 => ret, in("r3") a2, in("r4") a3, options(nostack));
    }
    ret as isize
}

/// Raw syscall with 4 arguments.
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall4(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: usize;
    // SAFETY: `svc 0` changes only r2 (the result); the caller vouches for
    // the syscall itself.
    unsafe {
        asm!("svc 0", in("r1") nr, inlateout("r2") a1 => ret, in("r3") a2, in("r4") a3, in("r5") a4, options(nostack));
    }
    ret as isize
}

/// Raw syscall with 5 arguments.
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall5(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> isize {
    let ret: usize;
    // SAFETY: `svc 0` changes only r2 (the result); the caller vouches for
    // the syscall itself.
    unsafe {
        asm!("svc 0", in("r1") nr, inlateout("r2") a1 => ret, in("r3") a2, in("r4") a3, in("r5") a4, in("r6") a5, options(nostack));
    }
    ret as isize
}

/// Raw syscall with 6 arguments.
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall6(
    nr: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
) -> isize {
    let ret: usize;
    // SAFETY: `svc 0` changes only r2 (the result); the caller vouches for
    // the syscall itself.
    unsafe {
        asm!("svc 0", in("r1") nr, inlateout("r2") a1 => ret, in("r3") a2, in("r4") a3, in("r5") a4, in("r6") a5, in("r7") a6, options(nostack));
    }
    ret as isize
}

/// `mmap`: s390x's `mmap` syscall is the old-style one that takes a pointer
/// to a block of its six arguments; this wrapper builds the block.
///
/// # Safety
/// See [`syscall0`]; mapping over live memory is the caller's responsibility.
#[inline(always)]
pub unsafe fn sys_mmap(
    addr: usize,
    len: usize,
    prot: usize,
    flags: usize,
    fd: usize,
    off: usize,
) -> isize {
    let block: [usize; 6] = [addr, len, prot, flags, fd, off];
    // SAFETY: `block` outlives the call; the rest is the caller's contract.
    unsafe { syscall1(super::nr::MMAP, block.as_ptr() as usize) }
}

/// Whether the `mmap` syscall takes a pointer to a block of its six
/// arguments (s390x's old-style mmap) rather than the arguments: a
/// tracer injecting mmap must then write the block into the task.
pub const MMAP_TAKES_ARG_BLOCK: bool = true;
