//! Register sets: `PTRACE_GETREGSET`/`SETREGSET`, the general purpose
//! registers, the FP registers inside an extended set, and the syscall state
//! some arches keep outside the general registers.

use std::mem::{MaybeUninit, size_of};

use criu_arch::GpRegs;
use linux_raw_sys::ptrace as raw;
use rustix::io::Errno;
use rustix::process::Pid;

use super::{note, ptrace};

/// The `struct iovec` that GETREGSET/SETREGSET take.
#[repr(C)]
struct IoVec {
    base: *mut u8,
    len: usize,
}

/// `PTRACE_GETREGSET`: read register set `note` into `buf`; returns the
/// number of bytes the kernel filled.
pub fn get_regset(pid: Pid, note: u32, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut iov = IoVec {
        base: buf.as_mut_ptr(),
        len: buf.len(),
    };
    // SAFETY: the kernel writes at most `iov.len` bytes to `iov.base`, which
    // is `buf`, and then updates `iov.len`, our local.
    unsafe {
        ptrace(
            raw::PTRACE_GETREGSET,
            pid,
            note as usize,
            &mut iov as *mut IoVec as usize,
        )?
    };
    Ok(iov.len)
}

/// Make a tracee stopped at a syscall-entry stop skip that syscall when
/// resumed, whatever registers it is given. arm64 takes the number of the
/// pending syscall from its own `syscallno` (`NT_ARM_SYSTEM_CALL`), not
/// from x8, and runs it with the new x0..x5: set it to -1 (`NO_SYSCALL`).
/// Harmless at any other stop (the number is already -1 there). Elsewhere
/// a no-op: x86_64's number is `orig_ax` in the general registers, which
/// every injection sets to -1. (ppc64 and s390x read the number from the
/// general registers once resumed: the daemon steps their pending syscall
/// over, `ENTRY_STOP_RUNS_INJECTED_SYSCALL`.)
pub fn skip_pending_syscall(pid: Pid) -> Result<(), Errno> {
    match criu_arch::SYSCALL_NR_REGSET {
        Some(note) => set_regset(pid, note, &(-1i32).to_ne_bytes()),
        None => Ok(()),
    }
}

/// The kernel's syscall-restart state of stopped thread `pid` that lives
/// outside the general registers (`criu_arch::SYSCALL_RESTART_REGSET`,
/// s390x's `NT_S390_SYSTEM_CALL`); 0 where the arch has none.
pub fn get_syscall_restart(pid: Pid) -> Result<u32, Errno> {
    let Some(note) = criu_arch::SYSCALL_RESTART_REGSET else {
        return Ok(0);
    };
    let mut word = [0u8; 4];
    get_regset(pid, note, &mut word)?;
    Ok(u32::from_ne_bytes(word))
}

/// Write the state [`get_syscall_restart`] read (0: the kernel does not
/// restart anything when the thread resumes). A no-op where the arch has
/// no such state.
pub fn set_syscall_restart(pid: Pid, word: u32) -> Result<(), Errno> {
    match criu_arch::SYSCALL_RESTART_REGSET {
        Some(note) => set_regset(pid, note, &word.to_ne_bytes()),
        None => Ok(()),
    }
}

/// `PTRACE_GETREGSET` of a register set the CPU or kernel may lack (up
/// to `max` bytes): `None` then (EINVAL, ENODEV).
pub fn get_optional_regset(pid: Pid, note: u32, max: usize) -> Result<Option<Vec<u8>>, Errno> {
    let mut buf = vec![0u8; max];
    match get_regset(pid, note, &mut buf) {
        Ok(len) => {
            buf.truncate(len);
            Ok(Some(buf))
        }
        Err(Errno::INVAL | Errno::NODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `PTRACE_SETREGSET`: write register set `note` from `buf`.
pub fn set_regset(pid: Pid, note: u32, buf: &[u8]) -> Result<(), Errno> {
    // The kernel only reads through `base` for SETREGSET.
    let mut iov = IoVec {
        base: buf.as_ptr() as *mut u8,
        len: buf.len(),
    };
    // SAFETY: the kernel reads `iov.len` bytes from `buf` and may update
    // `iov.len`, our local.
    unsafe {
        ptrace(
            raw::PTRACE_SETREGSET,
            pid,
            note as usize,
            &mut iov as *mut IoVec as usize,
        )?
    };
    Ok(())
}

/// The general purpose registers (`NT_PRSTATUS`).
pub fn get_gp_regs(pid: Pid) -> Result<GpRegs, Errno> {
    let mut regs = MaybeUninit::<GpRegs>::zeroed();
    let size = size_of::<GpRegs>();
    let mut iov = IoVec {
        base: regs.as_mut_ptr().cast::<u8>(),
        len: size,
    };
    // SAFETY: the kernel writes at most `size` bytes into `regs`.
    unsafe {
        ptrace(
            raw::PTRACE_GETREGSET,
            pid,
            note::PRSTATUS as usize,
            &mut iov as *mut IoVec as usize,
        )?
    };
    if iov.len != size {
        // A compat (32-bit) tracee has a shorter set; we only handle native.
        return Err(Errno::NOTSUP);
    }
    // SAFETY: `GpRegs` is the kernel's register struct, made only of
    // integers, so any bit pattern (zeroed or written by the kernel) is valid.
    Ok(unsafe { regs.assume_init() })
}

/// Write the general purpose registers (`NT_PRSTATUS`).
pub fn set_gp_regs(pid: Pid, regs: &GpRegs) -> Result<(), Errno> {
    let mut iov = IoVec {
        base: (regs as *const GpRegs).cast::<u8>() as *mut u8,
        len: size_of::<GpRegs>(),
    };
    // SAFETY: the kernel reads `size_of::<GpRegs>()` bytes from `regs`.
    unsafe {
        ptrace(
            raw::PTRACE_SETREGSET,
            pid,
            note::PRSTATUS as usize,
            &mut iov as *mut IoVec as usize,
        )?
    };
    Ok(())
}

/// The legacy FP registers at the start of an extended register set as
/// ptrace returns it (`NT_PRFPREG` is exactly `FpRegs`; x86's
/// `NT_X86_XSTATE` starts with the same FXSAVE image). `None` if too short.
pub fn fp_regs_from_bytes(bytes: &[u8]) -> Option<criu_arch::FpRegs> {
    if bytes.len() < size_of::<criu_arch::FpRegs>() {
        return None;
    }
    // SAFETY: `FpRegs` is a `#[repr(C)]` struct of integers (any bit pattern
    // is valid) and `bytes` holds at least its size; read_unaligned copes
    // with the slice's alignment.
    Some(unsafe { bytes.as_ptr().cast::<criu_arch::FpRegs>().read_unaligned() })
}
