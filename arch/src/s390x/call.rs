//! s390x code injection and the blob calling convention (s390x ELF ABI).

use core::arch::{asm, naked_asm};

use super::regs::{GpRegs, PSW_MASK_RI};
use super::sigframe::SIGNAL_FRAMESIZE;
use crate::common::{BlobCall, BlobCallError, MAX_BLOB_ARGS};

/// The breakpoint halfword 0x0001 (big-endian).
pub const TRAP_INSN: &[u8] = &[0x00, 0x01];
/// `svc 0` (0x0a00): number in r1.
pub const SYSCALL_INSN: &[u8] = &[0x0a, 0x00];
/// What is written over the injection point: `svc 0` then three breakpoints.
pub const INJECT_CODE: [u8; 8] = [0x0a, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x01];
/// Upper bound of the page size; the real page size is read at run time.
pub const MAX_PAGE_SIZE: usize = 4096;

/// Prepare `regs` to call `entry(args...)` inside the target on the stack
/// ending at `stack_top`, returning to `return_addr` through r14. r15 gets
/// the 160-byte register save area the ABI gives every callee, below the
/// 16-byte aligned top. Runtime instrumentation is switched off in the PSW
/// (the caller restores the original PSW afterwards). Nothing needs to be
/// written to memory.
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
    if stack_top < SIGNAL_FRAMESIZE as u64 + 16 {
        return Err(BlobCallError::StackTooLow(stack_top));
    }
    let sp = (stack_top & !15) - SIGNAL_FRAMESIZE as u64;
    regs.gprs[2..2 + args.len()].copy_from_slice(args);
    regs.gprs[2 + args.len()..2 + MAX_BLOB_ARGS].fill(0);
    regs.gprs[14] = return_addr;
    regs.gprs[15] = sp;
    regs.psw.addr = entry;
    regs.psw.mask &= !PSW_MASK_RI;
    Ok(BlobCall {
        sp,
        stack_word: None,
    })
}

/// Make freshly written code visible to instruction fetch. s390x keeps
/// instruction fetch coherent with stores; only the compiler must not move
/// the stores past the jump.
pub fn flush_icache(start: usize, len: usize) {
    let _ = (start, len);
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

/// `sa_restorer` trampoline: `svc 173` (rt_sigreturn) with the frame at r15.
///
/// # Safety
/// Only to be reached as a signal handler's return address.
#[unsafe(naked)]
pub unsafe extern "C" fn restore_rt() -> ! {
    naked_asm!("svc 173", ".2byte 0x0001")
}

/// `sa_restorer` trampoline for handlers without `SA_SIGINFO`, whose
/// frame is s390's old non-RT `sigframe`: `svc 119` (sigreturn) with the
/// frame at r15 (see `sa_restorer`).
///
/// # Safety
/// Only to be reached as a signal handler's return address.
#[unsafe(naked)]
pub unsafe extern "C" fn restore_sigreturn() -> ! {
    naked_asm!("svc 119", ".2byte 0x0001")
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
        asm!("lgr %r15, {sp}", "svc 173", ".2byte 0x0001", sp = in(reg) sp, options(noreturn));
    }
}

/// `clone3(args, size)` for a new thread of this process: the child starts
/// on the stack `args` names (its top must be 8-byte aligned) and calls
/// `entry(arg)`, which must never return. The parent gets clone3's result
/// (the new TID or `-errno`). Needed because a child on a fresh stack
/// cannot return into the caller's frame. (clone3's arguments are a
/// struct, so s390's swapped `clone(stack, flags, ...)` order does not
/// matter here.)
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
    // r2, r3: clone3's arguments; entry (r4) and arg (r5) survive `svc`
    // (it changes only r2), and the child inherits them. The kernel sets
    // the child's r15 to the stack top; the callee may use the 160 bytes
    // above its r15, so the child makes room and ends the back chain there.
    naked_asm!(
        "lghi %r1, 435",
        "svc 0",
        "ltgr %r2, %r2",
        "jnz 2f",
        "aghi %r15, -160",
        "lghi %r0, 0",
        "stg %r0, 0(%r15)",
        "lgr %r2, %r5",
        "basr %r14, %r4",
        ".2byte 0x0001",
        "2:",
        "br %r14",
    )
}

/// The thread pointer register a signal frame does not carry (aarch64's
/// `tpidr_el0`), written right before `rt_sigreturn`. On s390x: a no-op. The thread pointer is in access registers a0/a1, carried by
/// the signal frame.
///
/// # Safety
/// Safe to call; `unsafe` to match the arches where it changes the TLS base.
#[inline(always)]
pub unsafe fn set_thread_pointer(tp: u64) {
    let _ = tp;
}
