//! Items whose layout and values are the same on every supported 64-bit
//! architecture (x86_64, aarch64, ppc64le, s390x): the kernel `sigaction`,
//! `stack_t`, `siginfo` size, `SA_*`/`SS_*` flags, restart errnos, the ELF
//! note types shared by all, and the result type of the blob calling
//! convention.
//!
//! The per-arch modules re-export this module, so every name here is also
//! reachable as `criu_arch::NAME`.

mod elfcore;
mod ioc;
mod signal;

pub use elfcore::*;
pub use ioc::*;
pub use signal::*;

/// `NT_PRSTATUS`: general-purpose registers regset (every arch).
pub const NT_PRSTATUS: u32 = 1;
/// `NT_PRFPREG`: floating-point registers regset (every arch).
pub const NT_PRFPREG: u32 = 2;
/// `NT_PRPSINFO`.
pub const NT_PRPSINFO: u32 = 3;
/// `NT_TASKSTRUCT`.
pub const NT_TASKSTRUCT: u32 = 4;
/// `NT_AUXV`.
pub const NT_AUXV: u32 = 6;
/// `NT_SIGINFO`: PTRACE_GETSIGINFO-like note.
pub const NT_SIGINFO: u32 = 0x5349_4749;

/// `ERESTARTSYS`: restart if no handler or handler has SA_RESTART (kernel-internal errno).
pub const ERESTARTSYS: i64 = 512;
/// `ERESTARTNOINTR`: always restart.
pub const ERESTARTNOINTR: i64 = 513;
/// `ERESTARTNOHAND`: restart only if no handler ran.
pub const ERESTARTNOHAND: i64 = 514;
/// `ERESTART_RESTARTBLOCK`: restart through `restart_syscall`.
pub const ERESTART_RESTARTBLOCK: i64 = 516;
/// `EINTR`, what an unrestartable interrupted syscall reports.
pub const EINTR: i64 = 4;

/// Maximum number of integer arguments [`setup_blob_call`](crate::setup_blob_call)
/// passes in registers.
pub const MAX_BLOB_ARGS: usize = 6;

/// A word the caller of `setup_blob_call` must store in the target's memory
/// before resuming it (x86_64 keeps the return address on the stack).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackWord {
    /// Target address of the 8-byte word.
    pub addr: u64,
    /// Value to store, in the target's native byte order.
    pub value: u64,
}

/// What `setup_blob_call` decided, for the caller to finish the set-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlobCall {
    /// Stack pointer the blob starts with (already written into the registers).
    pub sp: u64,
    /// A word that must be written to memory before resuming, if any.
    pub stack_word: Option<StackWord>,
}

/// Why a blob call could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobCallError {
    /// More arguments than the arch passes in registers ([`MAX_BLOB_ARGS`]).
    TooManyArgs(usize),
    /// The stack top is too low to hold the frame the ABI needs.
    StackTooLow(u64),
}

impl core::fmt::Display for BlobCallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlobCallError::TooManyArgs(n) => {
                write!(
                    f,
                    "blob call with {n} arguments, at most {MAX_BLOB_ARGS} are supported"
                )
            }
            BlobCallError::StackTooLow(top) => {
                write!(f, "stack top {top:#x} is too low for a blob call frame")
            }
        }
    }
}

/// The restart-errno fix-up all arches share: given the syscall return value
/// of an interrupted syscall, tell whether the syscall must be re-executed
/// (`Some(true)`), must fail with `-EINTR` (`Some(false)`, restart block), or
/// nothing is to be done (`None`).
/// Whether a syscall interrupted with `-ERESTART_RESTARTBLOCK` (whose
/// restart block stays in the kernel and cannot be carried over) is the
/// same as its call made again, and is re-executed instead of failing
/// with `-EINTR`: `poll` (`nr`, the arch's number `poll_nr`) without a
/// timeout (`timeout`, its third argument, negative), which the kernel's
/// own `do_restart_poll` calls again exactly so. A program that takes
/// `EINTR` from `poll` as fatal (OpenBSD's `nc`: "polling error:
/// Interrupted system call") then runs on after a restore. A call with
/// time left still reports `EINTR`, as CRIU does for them all: the time
/// left is in the lost block.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub(crate) fn reruns_after_restart_block(nr: u64, poll_nr: usize, timeout: u64) -> bool {
    nr == poll_nr as u64 && (timeout as i32) < 0
}

#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub(crate) fn restart_kind(ret: i64) -> Option<bool> {
    match -ret {
        ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => Some(true),
        ERESTART_RESTARTBLOCK => Some(false),
        _ => None,
    }
}
