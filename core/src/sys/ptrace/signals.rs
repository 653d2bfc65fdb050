//! Signals of a stopped tracee: `siginfo_t`, the blocked mask, the signal
//! that stopped it and the queued ones.

use std::mem::size_of;

use linux_raw_sys::ptrace as raw;
use rustix::io::Errno;
use rustix::process::Pid;

use super::{SigSet, Signal, ptrace};

/// Size of the kernel's `siginfo_t`.
const SIGINFO_SIZE: usize = 128;
const _: () = assert!(size_of::<linux_raw_sys::general::siginfo_t>() == SIGINFO_SIZE);
const _: () = assert!(size_of::<raw::ptrace_peeksiginfo_args>() == 16);
const _: () = assert!(size_of::<SigInfo>() == SIGINFO_SIZE);

/// The kernel's `siginfo_t`, kept as raw words with accessors for the common
/// header (`si_signo`, `si_errno`, `si_code`), which every architecture we
/// support lays out as three `int`s at offset 0.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct SigInfo {
    words: [u64; SIGINFO_SIZE / 8],
}

impl SigInfo {
    /// A zeroed siginfo, for use as an output buffer.
    pub const fn zeroed() -> Self {
        SigInfo {
            words: [0; SIGINFO_SIZE / 8],
        }
    }

    fn int_at(&self, index: usize) -> i32 {
        let word = self.words[index / 2].to_ne_bytes();
        let half = if index.is_multiple_of(2) {
            &word[..4]
        } else {
            &word[4..]
        };
        i32::from_ne_bytes([half[0], half[1], half[2], half[3]])
    }

    /// `si_signo`.
    pub fn signo(&self) -> Signal {
        self.int_at(0)
    }

    /// `si_errno`.
    pub fn errno(&self) -> i32 {
        self.int_at(1)
    }

    /// `si_code`: `SI_KERNEL`, `TRAP_BRKPT`, `SI_USER`, ...
    pub fn code(&self) -> i32 {
        self.int_at(2)
    }

    /// The raw bytes, as the kernel wrote them.
    pub fn as_bytes(&self) -> [u8; SIGINFO_SIZE] {
        let mut out = [0u8; SIGINFO_SIZE];
        for (chunk, word) in out.chunks_exact_mut(8).zip(self.words.iter()) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        out
    }
}

impl std::fmt::Debug for SigInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigInfo")
            .field("signo", &self.signo())
            .field("errno", &self.errno())
            .field("code", &self.code())
            .finish()
    }
}

/// `PTRACE_GETSIGMASK`: the tracee's blocked signals.
pub fn get_sigmask(pid: Pid) -> Result<SigSet, Errno> {
    let mut set: SigSet = 0;
    // SAFETY: the kernel writes `addr` (= 8) bytes to our local `set`.
    unsafe {
        ptrace(
            raw::PTRACE_GETSIGMASK,
            pid,
            size_of::<SigSet>(),
            &mut set as *mut SigSet as usize,
        )?
    };
    Ok(set)
}

/// `PTRACE_SETSIGMASK`: replace the tracee's blocked signals.
pub fn set_sigmask(pid: Pid, set: SigSet) -> Result<(), Errno> {
    // SAFETY: the kernel reads `addr` (= 8) bytes from our local `set`.
    unsafe {
        ptrace(
            raw::PTRACE_SETSIGMASK,
            pid,
            size_of::<SigSet>(),
            &set as *const SigSet as usize,
        )?
    };
    Ok(())
}

/// `PTRACE_GETSIGINFO`: the siginfo of the signal that stopped the tracee.
pub fn get_siginfo(pid: Pid) -> Result<SigInfo, Errno> {
    let mut info = SigInfo::zeroed();
    // SAFETY: the kernel writes one siginfo (128 bytes) to our local `info`.
    unsafe {
        ptrace(
            raw::PTRACE_GETSIGINFO,
            pid,
            0,
            &mut info as *mut SigInfo as usize,
        )?
    };
    Ok(info)
}

/// `PTRACE_PEEKSIGINFO`: copy pending signals, starting at queue position
/// `offset`, from the thread's queue or (`shared`) the process's queue.
/// Returns how many entries of `buf` were filled (0 at the queue's end).
pub fn peek_siginfo(
    pid: Pid,
    offset: u64,
    shared: bool,
    buf: &mut [SigInfo],
) -> Result<usize, Errno> {
    if buf.is_empty() {
        return Ok(0);
    }
    let args = raw::ptrace_peeksiginfo_args {
        off: offset,
        flags: if shared {
            raw::PTRACE_PEEKSIGINFO_SHARED
        } else {
            0
        },
        nr: i32::try_from(buf.len()).unwrap_or(i32::MAX),
    };
    // SAFETY: the kernel reads `args` and writes at most `args.nr` siginfos
    // into `buf`, which holds `buf.len() >= args.nr` of them.
    unsafe {
        ptrace(
            raw::PTRACE_PEEKSIGINFO,
            pid,
            &args as *const raw::ptrace_peeksiginfo_args as usize,
            buf.as_mut_ptr() as usize,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siginfo_header() {
        let mut info = SigInfo::zeroed();
        info.words[0] = u64::from_ne_bytes({
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&5i32.to_ne_bytes());
            b[4..].copy_from_slice(&7i32.to_ne_bytes());
            b
        });
        info.words[1] = u64::from_ne_bytes({
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&0x80i32.to_ne_bytes());
            b
        });
        assert_eq!((info.signo(), info.errno(), info.code()), (5, 7, 0x80));
    }
}
