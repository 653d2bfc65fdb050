//! ppc64le code injection and the blob calling convention (ELFv2).

use core::arch::{asm, naked_asm};

use super::regs::GpRegs;
use crate::common::{BlobCall, BlobCallError, MAX_BLOB_ARGS, StackWord};

/// `tw 31,0,0` (`trap`, 0x7fe00008), little-endian.
pub const TRAP_INSN: &[u8] = &[0x08, 0x00, 0xe0, 0x7f];
/// `sc` (0x44000002), little-endian.
pub const SYSCALL_INSN: &[u8] = &[0x02, 0x00, 0x00, 0x44];
/// What is written over the injection point: `sc; trap`.
pub const INJECT_CODE: [u8; 8] = [0x02, 0x00, 0x00, 0x44, 0x08, 0x00, 0xe0, 0x7f];
/// Upper bound of the page size (64 KiB pages are common); the real page
/// size is read at run time.
pub const MAX_PAGE_SIZE: usize = 65536;
/// Minimum ELFv2 stack frame: back chain, CR save, LR save, TOC save.
pub const MIN_FRAME: u64 = 32;

/// Prepare `regs` to call `entry(args...)` inside the target on the stack
/// ending at `stack_top`, returning to `return_addr` through the link
/// register. The function is entered at its global entry point with r12 =
/// `entry` (it derives its TOC pointer r2 from r12). r1 gets a 32-byte
/// minimum frame below the 16-byte aligned top; the caller must store
/// [`BlobCall::stack_word`] (a zero back chain) before resuming.
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
    if stack_top < MIN_FRAME + 16 {
        return Err(BlobCallError::StackTooLow(stack_top));
    }
    let sp = (stack_top & !15) - MIN_FRAME;
    regs.gpr[3..3 + args.len()].copy_from_slice(args);
    regs.gpr[3 + args.len()..3 + MAX_BLOB_ARGS].fill(0);
    regs.gpr[12] = entry;
    regs.gpr[1] = sp;
    regs.nip = entry;
    regs.ctr = entry;
    regs.link = return_addr;
    // Not an interrupted syscall any more: no restart on resume.
    regs.trap = 0;
    Ok(BlobCall {
        sp,
        stack_word: Some(StackWord { addr: sp, value: 0 }),
    })
}

/// Step for cache-block instructions: no POWER cache block is smaller, and
/// touching a block twice is harmless.
const CACHE_STEP: usize = 32;

/// Make freshly written code at `start..start+len` visible to instruction
/// fetch: `dcbst` every block, `sync`, `icbi` every block, `sync; isync`.
/// The range must be mapped in this process, else the process faults.
pub fn flush_icache(start: usize, len: usize) {
    if len == 0 {
        return;
    }
    let end = start.saturating_add(len);
    let first = start & !(CACHE_STEP - 1);
    let mut a = first;
    while a < end {
        // SAFETY: cache maintenance on a mapped block; no memory changes.
        unsafe { asm!("dcbst 0, {}", in(reg_nonzero) a, options(nostack, preserves_flags)) };
        a += CACHE_STEP;
    }
    // SAFETY: barrier only.
    unsafe { asm!("sync", options(nostack, preserves_flags)) };
    let mut a = first;
    while a < end {
        // SAFETY: as above.
        unsafe { asm!("icbi 0, {}", in(reg_nonzero) a, options(nostack, preserves_flags)) };
        a += CACHE_STEP;
    }
    // SAFETY: barriers only.
    unsafe { asm!("sync", "isync", options(nostack, preserves_flags)) };
}

/// Return trampoline equivalent to the kernel's: pops the handler's dummy
/// caller frame and issues `rt_sigreturn`. The ppc64 kernel ignores
/// `sa_restorer` (it returns through the vDSO), so this exists for API
/// parity and for code that calls handlers itself.
///
/// # Safety
/// Only to be reached as a signal handler's return address.
#[unsafe(naked)]
pub unsafe extern "C" fn restore_rt() -> ! {
    naked_asm!("addi 1, 1, 128", "li 0, 172", "sc", "trap")
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
        asm!("mr 1, {sp}", "li 0, 172", "sc", "trap", sp = in(reg) sp, options(noreturn));
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
    // `entry` and `arg` are stored in the two top words of the child's
    // stack (`clone_args.stack` + `.stack_size`, offsets 40 and 48), where
    // the child, whose r1 is that top, finds them: every register the
    // syscall keeps is one the caller expects kept. The child then pushes
    // a frame with a zero back chain below those words and enters `entry`
    // at its global entry point (r12 = address, from which it derives its
    // TOC pointer r2), with `arg` in r3.
    naked_asm!(
        "ld 9, 40(3)",
        "ld 10, 48(3)",
        "add 9, 9, 10",
        "std 5, -8(9)",
        "std 6, -16(9)",
        "li 0, 435",
        "sc",
        "bns+ 1f",
        "neg 3, 3",
        "blr",
        "1:",
        "cmpdi 3, 0",
        "bnelr",
        "ld 12, -8(1)",
        "ld 3, -16(1)",
        "li 0, 0",
        "stdu 0, -64(1)",
        "mtctr 12",
        "bctrl",
        "trap",
    )
}

/// The thread pointer register a signal frame does not carry (aarch64's
/// `tpidr_el0`), written right before `rt_sigreturn`. On ppc64le: a
/// no-op, the thread pointer is r13, which the signal frame carries.
///
/// # Safety
/// Safe to call; `unsafe` to match the arches where it changes the TLS base.
#[inline(always)]
pub unsafe fn set_thread_pointer(tp: u64) {
    let _ = tp;
}
