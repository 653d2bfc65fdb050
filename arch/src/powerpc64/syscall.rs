//! Raw system call entry: `sc` with the number in r0, arguments in r3..r8
//! and the result in r3. The kernel signals failure by setting CR0.SO and
//! returning a positive errno; the wrappers turn that into `-errno` so that
//! callers see the same convention on every arch. r0, r4..r12, ctr, xer and
//! cr0 are volatile across the call.

use core::arch::asm;

/// Raw syscall without arguments; returns the kernel's result (`-errno` on failure).
///
/// # Safety
/// A raw system call can do anything; the caller upholds the syscall's contract.
#[inline(always)]
pub unsafe fn syscall0(nr: usize) -> isize {
    let ret: usize;
    // SAFETY: the asm declares every register the kernel may change and
    // negates r3 when CR0.SO reports an error; the caller vouches for the
    // syscall itself.
    unsafe {
        asm!("sc", "bns+ 1f", "neg 3, 3", "1:", inlateout("r0") nr => _, lateout("r3") ret, lateout("r4") _, lateout("r5") _, lateout("r6") _, lateout("r7") _, lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _, lateout("r12") _, lateout("ctr") _, lateout("xer") _, lateout("cr0") _, options(nostack));
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
    // SAFETY: the asm declares every register the kernel may change and
    // negates r3 when CR0.SO reports an error; the caller vouches for the
    // syscall itself.
    unsafe {
        asm!("sc", "bns+ 1f", "neg 3, 3", "1:", inlateout("r0") nr => _, inlateout("r3") a1 => ret, lateout("r4") _, lateout("r5") _, lateout("r6") _, lateout("r7") _, lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _, lateout("r12") _, lateout("ctr") _, lateout("xer") _, lateout("cr0") _, options(nostack));
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
    // SAFETY: the asm declares every register the kernel may change and
    // negates r3 when CR0.SO reports an error; the caller vouches for the
    // syscall itself.
    unsafe {
        asm!("sc", "bns+ 1f", "neg 3, 3", "1:", inlateout("r0") nr => _, inlateout("r3") a1 => ret, inlateout("r4") a2 => _, lateout("r5") _, lateout("r6") _, lateout("r7") _, lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _, lateout("r12") _, lateout("ctr") _, lateout("xer") _, lateout("cr0") _, options(nostack));
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
    // SAFETY: the asm declares every register the kernel may change and
    // negates r3 when CR0.SO reports an error; the caller vouches for the
    // syscall itself.
    unsafe {
        asm!("sc", "bns+ 1f", "neg 3, 3", "1:", inlateout("r0") nr => _, inlateout("r3") a1 => ret, inlateout("r4") a2 => _, inlateout("r5") a3 => _, lateout("r6") _, lateout("r7") _, lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _, lateout("r12") _, lateout("ctr") _, lateout("xer") _, lateout("cr0") _, options(nostack));
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
    // SAFETY: the asm declares every register the kernel may change and
    // negates r3 when CR0.SO reports an error; the caller vouches for the
    // syscall itself.
    unsafe {
        asm!("sc", "bns+ 1f", "neg 3, 3", "1:", inlateout("r0") nr => _, inlateout("r3") a1 => ret, inlateout("r4") a2 => _, inlateout("r5") a3 => _, inlateout("r6") a4 => _, lateout("r7") _, lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _, lateout("r12") _, lateout("ctr") _, lateout("xer") _, lateout("cr0") _, options(nostack));
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
    // SAFETY: the asm declares every register the kernel may change and
    // negates r3 when CR0.SO reports an error; the caller vouches for the
    // syscall itself.
    unsafe {
        asm!("sc", "bns+ 1f", "neg 3, 3", "1:", inlateout("r0") nr => _, inlateout("r3") a1 => ret, inlateout("r4") a2 => _, inlateout("r5") a3 => _, inlateout("r6") a4 => _, inlateout("r7") a5 => _, lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _, lateout("r12") _, lateout("ctr") _, lateout("xer") _, lateout("cr0") _, options(nostack));
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
    // SAFETY: the asm declares every register the kernel may change and
    // negates r3 when CR0.SO reports an error; the caller vouches for the
    // syscall itself.
    unsafe {
        asm!("sc", "bns+ 1f", "neg 3, 3", "1:", inlateout("r0") nr => _, inlateout("r3") a1 => ret, inlateout("r4") a2 => _, inlateout("r5") a3 => _, inlateout("r6") a4 => _, inlateout("r7") a5 => _, inlateout("r8") a6 => _, lateout("r9") _, lateout("r10") _, lateout("r11") _, lateout("r12") _, lateout("ctr") _, lateout("xer") _, lateout("cr0") _, options(nostack));
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
