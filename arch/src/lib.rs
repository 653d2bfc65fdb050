//! Everything that differs between CPU architectures, behind one set of names.
//!
//! Each supported architecture is one module (`x86_64`, `aarch64`, `powerpc64`,
//! `s390x`) exporting the same items; exactly one is compiled in and re-exported
//! at the crate root. Porting to a new architecture means adding one module here
//! (plus a linker script for the blobs) and nothing else.
//!
//! Items every arch module provides (the contract):
//! - `syscall0` ..= `syscall6`: raw system call entry (inline asm), returning the
//!   kernel's raw result (`-errno` on failure), as `isize`.
//! - `nr`: syscall numbers as `usize` constants named after the syscall in upper
//!   case (`nr::WRITE`, `nr::RT_SIGRETURN`, ...).
//! - Register sets as the kernel's ptrace regsets lay them out (`GpRegs` for
//!   NT_PRSTATUS, `FpRegs` for the FP/vector set), with accessors used by the
//!   blob calling convention.
//! - The `rt_sigframe` / `ucontext` layout needed to build a frame for
//!   `rt_sigreturn`.
//! - The blob calling convention and trap instruction.
//!
//! This crate is `no_std` and has no dependencies, because it is also compiled
//! inside the nested, offline build of the parasite and restorer blobs.
#![no_std]

mod common;

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;

#[cfg(target_arch = "powerpc64")]
mod powerpc64;
#[cfg(target_arch = "powerpc64")]
pub use powerpc64::*;

#[cfg(target_arch = "s390x")]
mod s390x;
#[cfg(target_arch = "s390x")]
pub use s390x::*;
