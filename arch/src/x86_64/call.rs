//! x86_64 code injection and the blob calling convention (System V AMD64).

use core::arch::{asm, naked_asm};

use super::regs::{EFLAGS_DF, EFLAGS_TF, GpRegs};
use crate::common::{BlobCall, BlobCallError, MAX_BLOB_ARGS, StackWord};

/// `int3`: the trap that ends an injected syscall or blob call.
pub const TRAP_INSN: &[u8] = &[0xcc];
/// `syscall`.
pub const SYSCALL_INSN: &[u8] = &[0x0f, 0x05];
/// What is written over the injection point: `syscall` then `int3`s.
pub const INJECT_CODE: [u8; 8] = [0x0f, 0x05, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc];
/// Upper bound of the page size (for linker alignment only; the real page
/// size is read at run time).
pub const MAX_PAGE_SIZE: usize = 4096;

/// Prepare `regs` to call `entry(args...)` inside the target on the stack
/// ending at `stack_top`, returning to `return_addr` (normally the address of
/// a trap instruction). The return address is pushed on the stack: the caller
/// must store [`BlobCall::stack_word`] in the target before resuming it. At
/// entry `rsp + 8` is 16-byte aligned, as after a `call`.
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
    let sp = (stack_top & !15) - 8;
    let mut a = [0u64; MAX_BLOB_ARGS];
    a[..args.len()].copy_from_slice(args);
    regs.di = a[0];
    regs.si = a[1];
    regs.dx = a[2];
    regs.cx = a[3];
    regs.r8 = a[4];
    regs.r9 = a[5];
    regs.ax = 0;
    regs.ip = entry;
    regs.sp = sp;
    // Not an interrupted syscall any more: no restart on resume.
    regs.orig_ax = u64::MAX;
    regs.flags &= !(EFLAGS_TF | EFLAGS_DF);
    Ok(BlobCall {
        sp,
        stack_word: Some(StackWord {
            addr: sp,
            value: return_addr,
        }),
    })
}

/// Make freshly written code at `start..start+len` visible to instruction
/// fetch. x86 keeps instruction caches coherent; only the compiler must not
/// reorder the stores past the jump.
pub fn flush_icache(start: usize, len: usize) {
    let _ = (start, len);
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

/// `sa_restorer` trampoline: issues `rt_sigreturn` with the frame the
/// handler's `ret` left at `rsp`. Use its address with `SA_RESTORER`.
///
/// # Safety
/// Only to be reached as a signal handler's return address.
#[unsafe(naked)]
pub unsafe extern "C" fn restore_rt() -> ! {
    naked_asm!("mov eax, 15", "syscall", "ud2")
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
        asm!("mov rsp, {sp}", "mov eax, 15", "syscall", "ud2",
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
    // rdi, rsi: clone3's arguments; entry and arg move to r8/r9, which the
    // syscall keeps (it clobbers only rax, rcx and r11) and the child
    // inherits.
    naked_asm!(
        "mov r8, rdx",
        "mov r9, rcx",
        "mov eax, 435",
        "syscall",
        "test rax, rax",
        "jnz 2f",
        "xor ebp, ebp",
        "mov rdi, r9",
        "call r8",
        "ud2",
        "2:",
        "ret",
    )
}

/// The thread pointer register a signal frame does not carry (aarch64's
/// `tpidr_el0`), written right before `rt_sigreturn`. On x86_64: a no-op. The thread pointer is the fs base, part of the general
/// registers, set by core's `arch_prctl(ARCH_SET_FS)` raw system call.
///
/// # Safety
/// Safe to call; `unsafe` to match the arches where it changes the TLS base.
#[inline(always)]
pub unsafe fn set_thread_pointer(tp: u64) {
    let _ = tp;
}
