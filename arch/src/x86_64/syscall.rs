//! Raw system call entry: `syscall` with the number in rax, arguments in
//! rdi, rsi, rdx, r10, r8, r9 and the result in rax. The instruction
//! clobbers rcx (return rip) and r11 (rflags).

use core::arch::asm;

/// Raw syscall without arguments; returns the kernel's result (`-errno` on failure).
///
/// # Safety
/// A raw system call can do anything; the caller upholds the syscall's contract.
#[inline(always)]
pub unsafe fn syscall0(nr: usize) -> isize {
    let ret;
    // SAFETY: the kernel clobbers only rcx and r11 besides rax; the caller
    // vouches for the syscall itself.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret,
             lateout("rcx") _, lateout("r11") _, options(nostack, preserves_flags));
    }
    ret
}

/// Raw syscall with one argument.
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall1(nr: usize, a1: usize) -> isize {
    let ret;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a1,
             lateout("rcx") _, lateout("r11") _, options(nostack, preserves_flags));
    }
    ret
}

/// Raw syscall with two arguments.
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall2(nr: usize, a1: usize, a2: usize) -> isize {
    let ret;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a1, in("rsi") a2,
             lateout("rcx") _, lateout("r11") _, options(nostack, preserves_flags));
    }
    ret
}

/// Raw syscall with three arguments.
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall3(nr: usize, a1: usize, a2: usize, a3: usize) -> isize {
    let ret;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret,
             in("rdi") a1, in("rsi") a2, in("rdx") a3,
             lateout("rcx") _, lateout("r11") _, options(nostack, preserves_flags));
    }
    ret
}

/// Raw syscall with four arguments (the fourth goes in r10, not rcx).
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall4(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret,
             in("rdi") a1, in("rsi") a2, in("rdx") a3, in("r10") a4,
             lateout("rcx") _, lateout("r11") _, options(nostack, preserves_flags));
    }
    ret
}

/// Raw syscall with five arguments.
///
/// # Safety
/// See [`syscall0`].
#[inline(always)]
pub unsafe fn syscall5(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> isize {
    let ret;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret,
             in("rdi") a1, in("rsi") a2, in("rdx") a3, in("r10") a4, in("r8") a5,
             lateout("rcx") _, lateout("r11") _, options(nostack, preserves_flags));
    }
    ret
}

/// Raw syscall with six arguments.
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
    let ret;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret,
             in("rdi") a1, in("rsi") a2, in("rdx") a3, in("r10") a4, in("r8") a5, in("r9") a6,
             lateout("rcx") _, lateout("r11") _, options(nostack, preserves_flags));
    }
    ret
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
