//! Everything that differs between CPU architectures, behind one set of names.
//!
//! Each supported architecture is one module (`x86_64`, `aarch64`, `powerpc64`,
//! `s390x`) exporting the same items; exactly one is compiled in and re-exported
//! at the crate root. Porting to a new architecture means adding one module here,
//! a linker script for the blobs, and core's register conversion
//! (`core/src/regs/<arch>.rs`); see "Adding an architecture" in the README.
//!
//! Items every arch module provides (the contract):
//! - `syscall0` ..= `syscall6`: raw system call entry (inline asm), returning the
//!   kernel's raw result (`-errno` on failure, also on ppc64 where the kernel
//!   flags errors with CR0.SO), as `isize`; `sys_mmap` (s390x's `mmap` takes
//!   an argument block, `MMAP_TAKES_ARG_BLOCK`).
//! - `nr`: syscall numbers as `usize` constants named after the syscall in upper
//!   case (`nr::WRITE`, `nr::RT_SIGRETURN`, ...); a syscall the arch lacks is
//!   absent.
//! - `ELF_MACHINE`, `AUDIT_ARCH`, `CORE_MTYPE` (CRIU's `march`), `NT_*` regset
//!   note types, `MAX_PAGE_SIZE` (an upper bound only: the page size is read at
//!   run time).
//! - Register sets as the kernel's ptrace regsets lay them out (`GpRegs` for
//!   NT_PRSTATUS, `FpRegs` for NT_PRFPREG, plus arch-specific vector sets),
//!   with `pc`/`set_pc`/`sp`/`set_sp`/`syscall_nr`/`retval`/`set_retval`/
//!   `syscall_result`/`set_syscall`/`restart_syscall_fixup`;
//!   `SYSCALL_NR_REGSET` and `SYSCALL_RESTART_REGSET` (syscall state a
//!   tracer must handle outside the general registers, if any);
//!   `ENTRY_STOP_RUNS_INJECTED_SYSCALL` with `cancel_pending_syscall`
//!   (ppc64, s390x: resumed from a syscall-entry stop, the task runs the
//!   syscall the written registers name, so a pending one is cancelled
//!   and stepped to its exit first); `VECTOR_REGSETS` (regsets beyond the
//!   FP set that infection keeps: ppc64's VMX and VSX, empty elsewhere).
//! - Signal frames: `RtSigframe`, `Ucontext` (`gpregs`, `fpregs`, `sigmask`),
//!   `fill_sigframe(frame, frame_addr, gp, fp, sigmask)`, `RT_SIGFRAME_OFFSET`
//!   (stack pointer at `rt_sigreturn` = frame address + offset),
//!   `SIGFRAME_SIZE`, `SIGFRAME_ALIGN`, `RtSigframe::set_altstack`,
//!   `sigreturn(sp)` and the `restore_rt` trampoline for `SA_RESTORER`
//!   (`sa_restorer(flags)` picks the right one: s390x handlers without
//!   `SA_SIGINFO` return through `sigreturn`); `FRAME_EXTRA_REGSETS` and
//!   `RtSigframe::set_extra_regset` (state beyond GP/FP registers a frame
//!   built from a live task must carry: s390x's vector registers);
//!   `clone_thread` (clone3 of a thread that starts in a function on its own
//!   stack; all four),
//!   `set_thread_pointer` (the TLS register no frame carries: aarch64's
//!   `tpidr_el0`; a no-op elsewhere).
//! - The blob calling convention and code injection: `TRAP_INSN`,
//!   `SYSCALL_INSN`, `INJECT_CODE`, `setup_blob_call`, `flush_icache`.
//! - Shared kernel ABI (same on all four): `KSigaction`, `StackT`, `Siginfo`,
//!   `SA_*`, `SS_*`, `SIG_*`, `sig::*`, restart errnos, `BlobCall`.
//! - The proxy vDSO: `VDSO_JUMP_LEN` and `vdso_jump(to)`, the jump written
//!   over a dumped vDSO function; `vdso_is_syscall_stub(code)`, a function
//!   too short for it that is a lone system call (kept as dumped; s390x).
//! - `ioc(dir, type, nr, size)` for ioctl numbers, with the generic `IOC_*`
//!   direction bits unless the arch module defines its own (powerpc).
//!
//! - `kernel`: linux-raw-sys, the kernel constants the blobs use (generated
//!   from each arch's uapi headers, so never copied by hand).
//!
//! This crate is `no_std` with one dependency (linux-raw-sys, no_std),
//! because it is also compiled inside the nested, offline build of the
//! parasite and restorer blobs.
#![no_std]

/// Kernel constants for code that depends only on this crate (the blobs).
pub use linux_raw_sys as kernel;

mod common;

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;

#[cfg(all(target_arch = "powerpc64", target_endian = "big"))]
compile_error!("powerpc64: only little-endian ELFv2 (ppc64le) is supported");
#[cfg(target_arch = "powerpc64")]
mod powerpc64;
#[cfg(target_arch = "powerpc64")]
pub use powerpc64::*;

#[cfg(target_arch = "s390x")]
mod s390x;
#[cfg(target_arch = "s390x")]
pub use s390x::*;
