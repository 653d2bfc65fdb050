//! Raw system call entry: `svc #0` with the number in x8, arguments in
//! x0..x5 and the result in x0. Nothing else is clobbered.

use core::arch::asm;

/// Raw syscall without arguments; returns the kernel's result (`-errno` on failure).
///
/// # Safety
/// A raw system call can do anything; the caller upholds the syscall's contract.
#[inline(always)]
pub unsafe fn syscall0(nr: usize) -> isize {
    let ret: usize;
    // SAFETY: `svc #0` clobbers only x0 (the result); the caller vouches
    // for the syscall itself.
    unsafe {
        asm!("svc #0", in("x8") nr, lateout("x0") ret, options(nostack, preserves_flags));
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
    // SAFETY: `svc #0` clobbers only x0 (the result); the caller vouches
    // for the syscall itself.
    unsafe {
        asm!("svc #0", in("x8") nr, inlateout("x0") a1 => ret, options(nostack, preserves_flags));
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
    // SAFETY: `svc #0` clobbers only x0 (the result); the caller vouches
    // for the syscall itself.
    unsafe {
        asm!("svc #0", in("x8") nr, inlateout("x0") a1 => ret, in("x1") a2, options(nostack, preserves_flags));
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
    // SAFETY: `svc #0` clobbers only x0 (the result); the caller vouches
    // for the syscall itself.
    unsafe {
        asm!("svc #0", in("x8") nr, inlateout("x0") a1 => ret, in("x1") a2, in("x2") a3, options(nostack, preserves_flags));
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
    // SAFETY: `svc #0` clobbers only x0 (the result); the caller vouches
    // for the syscall itself.
    unsafe {
        asm!("svc #0", in("x8") nr, inlateout("x0") a1 => ret, in("x1") a2, in("x2") a3, in("x3") a4, options(nostack, preserves_flags));
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
    // SAFETY: `svc #0` clobbers only x0 (the result); the caller vouches
    // for the syscall itself.
    unsafe {
        asm!("svc #0", in("x8") nr, inlateout("x0") a1 => ret, in("x1") a2, in("x2") a3, in("x3") a4, in("x4") a5, options(nostack, preserves_flags));
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
    // SAFETY: `svc #0` clobbers only x0 (the result); the caller vouches
    // for the syscall itself.
    unsafe {
        asm!("svc #0", in("x8") nr, inlateout("x0") a1 => ret, in("x1") a2, in("x2") a3, in("x3") a4, in("x4") a5, in("x5") a6, options(nostack, preserves_flags));
    }
    ret as isize
}

/// `mmap` through the native 6-argument syscall (s390x needs an argument
/// block instead; this wrapper hides the difference).
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
    // SAFETY: forwarded contract.
    unsafe { syscall6(super::nr::MMAP, addr, len, prot, flags, fd, off) }
}

/// Whether the `mmap` syscall takes a pointer to a block of its six
/// arguments (s390x's old-style mmap) rather than the arguments: a
/// tracer injecting mmap must then write the block into the task.
pub const MMAP_TAKES_ARG_BLOCK: bool = false;
