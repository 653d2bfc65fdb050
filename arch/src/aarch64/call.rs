//! aarch64 code injection and the blob calling convention (AAPCS64).

use core::arch::{asm, naked_asm};

use super::regs::GpRegs;
use crate::common::{BlobCall, BlobCallError, MAX_BLOB_ARGS};

/// `brk #0` (0xd4200000), little-endian.
pub const TRAP_INSN: &[u8] = &[0x00, 0x00, 0x20, 0xd4];
/// `svc #0` (0xd4000001), little-endian.
pub const SYSCALL_INSN: &[u8] = &[0x01, 0x00, 0x00, 0xd4];
/// What is written over the injection point: `svc #0; brk #0`.
pub const INJECT_CODE: [u8; 8] = [0x01, 0x00, 0x00, 0xd4, 0x00, 0x00, 0x20, 0xd4];
/// Upper bound of the page size (64 KiB granule); the real page size is
/// read at run time.
pub const MAX_PAGE_SIZE: usize = 65536;

/// Prepare `regs` to call `entry(args...)` inside the target on the stack
/// ending at `stack_top` (rounded down to 16 bytes), returning to
/// `return_addr` through x30. Nothing needs to be written to memory.
pub fn setup_blob_call(
    regs: &mut GpRegs,
    entry: u64,
    stack_top: u64,
    args: &[u64],
    return_addr: u64,
) -> Result<BlobCall, BlobCallError> {
    if args.len() > MAX_BLOB_ARGS {
        return Err(BlobCallError::TooManyArgs(args.len()));
    }
    if stack_top < 16 {
        return Err(BlobCallError::StackTooLow(stack_top));
    }
    let sp = stack_top & !15;
    regs.regs[..args.len()].copy_from_slice(args);
    regs.regs[args.len()..MAX_BLOB_ARGS].fill(0);
    regs.regs[30] = return_addr;
    // A zero frame pointer ends back-traces inside the blob.
    regs.regs[29] = 0;
    regs.pc = entry;
    regs.sp = sp;
    Ok(BlobCall {
        sp,
        stack_word: None,
    })
}

/// Make freshly written code at `start..start+len` visible to instruction
/// fetch: clean the data cache to the point of unification, invalidate the
/// instruction cache, line by line with the sizes from CTR_EL0. The range
/// must be mapped in this process (a stale alias of shared memory is fine:
/// maintenance is by physical line), else the process faults.
pub fn flush_icache(start: usize, len: usize) {
    if len == 0 {
        return;
    }
    let ctr: u64;
    // SAFETY: CTR_EL0 is readable from EL0 on Linux (or trapped and emulated).
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let dline = 4usize << ((ctr >> 16) & 0xf);
    let iline = 4usize << (ctr & 0xf);
    let end = start.saturating_add(len);
    let mut a = start & !(dline - 1);
    while a < end {
        // SAFETY: cache maintenance on a mapped line; no memory is changed.
        unsafe { asm!("dc cvau, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += dline;
    }
    // SAFETY: barrier only.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
    let mut a = start & !(iline - 1);
    while a < end {
        // SAFETY: as above.
        unsafe { asm!("ic ivau, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += iline;
    }
    // SAFETY: barriers only.
    unsafe { asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// `sa_restorer` trampoline: issues `rt_sigreturn` with the frame at `sp`.
///
/// # Safety
/// Only to be reached as a signal handler's return address.
#[unsafe(naked)]
pub unsafe extern "C" fn restore_rt() -> ! {
    naked_asm!("mov x8, #139", "svc #0", "brk #0")
}

/// Switch to the signal frame whose `rt_sigreturn` stack pointer is `sp`
/// (frame address + [`RT_SIGFRAME_OFFSET`](super::RT_SIGFRAME_OFFSET)) and
/// execute `rt_sigreturn`.
///
/// # Safety
/// `sp` must point at a valid frame; the current context is abandoned.
#[inline(always)]
pub unsafe fn sigreturn(sp: usize) -> ! {
    // SAFETY: the caller guarantees a valid frame; rt_sigreturn does not return.
    unsafe {
        asm!("mov sp, {sp}", "mov x8, #139", "svc #0", "brk #0",
             sp = in(reg) sp, options(noreturn));
    }
}

/// `clone3(args, size)` for a new thread of this process: the child starts
/// on the stack `args` names (its top must be 16-byte aligned) and calls
/// `entry(arg)`, which must never return. The parent gets clone3's result
/// (the new TID or `-errno`). Needed because a child on a fresh stack
/// cannot return into the caller's frame.
///
/// # Safety
/// `args` points to a valid `struct clone_args` of `size` bytes with
/// `CLONE_VM` and a stack of its own; `entry` may use only that stack.
#[unsafe(naked)]
pub unsafe extern "C" fn clone_thread(
    args: usize,
    size: usize,
    entry: extern "C" fn(usize) -> !,
    arg: usize,
) -> isize {
    // x0, x1: clone3's arguments; entry and arg move to x9/x10, which the
    // syscall keeps (arm64 syscalls change only x0) and the child inherits
    // with the parent's other registers. The child's sp is the top of its
    // new stack; zero fp and lr end back-traces there.
    naked_asm!(
        "mov x9, x2",
        "mov x10, x3",
        "mov x8, #435",
        "svc #0",
        "cbnz x0, 2f",
        "mov x29, xzr",
        "mov x30, xzr",
        "mov x0, x10",
        "blr x9",
        "brk #0",
        "2:",
        "ret",
    )
}

/// Write the thread pointer `tpidr_el0`, which neither the signal frame nor
/// a system call restores on arm64 (CRIU writes it with `msr` in its
/// restorer too). Made right before `rt_sigreturn`.
///
/// # Safety
/// Code of this thread that uses TLS afterwards sees `tp` as its base.
#[inline(always)]
pub unsafe fn set_thread_pointer(tp: u64) {
    // SAFETY: EL0 may write tpidr_el0; the caller vouches for the value.
    unsafe { asm!("msr tpidr_el0, {}", in(reg) tp, options(nomem, nostack, preserves_flags)) };
}
