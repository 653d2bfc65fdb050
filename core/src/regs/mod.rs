//! Registers between the kernel's register sets (`criu_arch` types, as
//! ptrace and signal frames lay them out) and CRIU's per-arch
//! `thread_info_*` message of `core-PID.img`, in both directions.
//!
//! The conversion needs the protobuf types, so it cannot live in the
//! dependency-free `arch` crate; it is the one per-arch module of core,
//! chosen here the way `criu_arch` chooses its arch module. Each arch module
//! provides the same items:
//! - dump: [`fill_thread_info`] sets `core.mtype` and the arch's
//!   `thread_info` from the (restart-fixed) registers, the extended register
//!   set and the `clear_child_tid` address;
//! - restore: [`HostFpu`] (this kernel's FPU state format, probed once from a
//!   traced fork of the tool), [`validate`] (what `rt_sigreturn` would refuse,
//!   checked before the first fork) and [`frame_for`] (the signal frame the
//!   restorer returns through, plus the state no frame carries) and
//!   [`ptrace_regsets`] (state only ptrace can set, such as arm64's PAC
//!   keys, written while the restored threads wait in the restorer).
//!
//! Every arch has its conversion; `unsupported` stands in for a fifth
//! until it has its own.

use crate::blob::restorer_abi::RawSyscall;

pub mod cpuinfo;

/// Why registers could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// The image's registers are unusable (missing, wrong length, values the
    /// kernel would refuse).
    #[error("{0}")]
    Invalid(String),
    /// This architecture (or this kind of task) is not handled.
    #[error("{0}")]
    Unsupported(String),
    /// Reading a register set of the stopped task failed.
    #[error("{what} of task {pid}: {source}")]
    Ptrace {
        what: &'static str,
        pid: i32,
        source: rustix::io::Errno,
    },
}

/// A restored thread's way back to its own code: the `rt_sigreturn` frame
/// and what it does not carry.
pub struct Frame {
    pub frame: Box<criu_arch::RtSigframe>,
    /// Raw system calls the restorer makes right before `rt_sigreturn`
    /// (x86_64 fs/gs bases, `set_tid_address`, ...).
    pub arch_syscalls: Vec<RawSyscall>,
    /// Written with `criu_arch::set_thread_pointer` (aarch64 `tpidr_el0`).
    pub thread_pointer: u64,
}

/// `set_tid_address(addr)`: the futex word the kernel clears when the
/// thread exits (every arch keeps it in its `thread_info`).
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "powerpc64",
        target_arch = "s390x"
    )),
    allow(dead_code)
)]
fn set_tid_address(addr: u64) -> RawSyscall {
    RawSyscall {
        nr: criu_arch::nr::SET_TID_ADDRESS as u64,
        args: [addr, 0, 0, 0, 0, 0],
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
use x86_64 as imp;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
use aarch64 as imp;

#[cfg(target_arch = "powerpc64")]
mod powerpc64;
#[cfg(target_arch = "powerpc64")]
use powerpc64 as imp;

#[cfg(target_arch = "s390x")]
mod s390x;
#[cfg(target_arch = "s390x")]
use s390x as imp;

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
mod unsupported;
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
use unsupported as imp;

pub use imp::{HostFpu, core_thread_notes, fill_thread_info, frame_for, ptrace_regsets, validate};

/// One note of an ELF core file (`criu coredump`): owner, type and
/// descriptor bytes, in the image's (this machine's) byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreNote {
    /// `CORE` or `LINUX`.
    pub name: &'static str,
    pub n_type: u32,
    pub desc: Vec<u8>,
}

/// What a thread's `elf_prstatus` says besides its registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadStatus {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    /// Signals pending for the thread (bit N-1 for signal N).
    pub sigpend: u64,
    /// Signals it blocks.
    pub sighold: u64,
    /// The signal that stopped it (`pr_cursig`; 0: none).
    pub cursig: u32,
}

/// The refusal of an arch whose core file notes are not written yet:
/// better no core file than one whose registers are wrong.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn core_notes_not_done(arch: &str) -> RegsError {
    RegsError::Unsupported(format!(
        "criu coredump: writing the registers of {arch} tasks into a core file is not supported yet"
    ))
}
