//! ptrace(2) and wait4(2) for tracing a victim: safe, typed wrappers.
//!
//! rustix has no ptrace, so requests go through the arch crate's raw syscall
//! entry. Every request here works on one stopped tracee; the kernel checks
//! that we are its tracer, so a wrong PID yields `ESRCH`, never memory unsafety
//! in our process: the only pointers we hand to the kernel are to our own
//! buffers, sized as the request expects.

use std::mem::{MaybeUninit, size_of};

use criu_arch::GpRegs;
use linux_raw_sys::ptrace as raw;
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions};

/// Seize options (`PTRACE_O_*`).
pub mod options {
    use linux_raw_sys::ptrace as raw;
    /// Report syscall stops as `SIGTRAP | 0x80`.
    pub const TRACESYSGOOD: u32 = raw::PTRACE_O_TRACESYSGOOD;
    /// Kill the tracee when the tracer exits. Never set it for a victim that
    /// must survive us.
    pub const EXITKILL: u32 = raw::PTRACE_O_EXITKILL;
    /// Suspend the tracee's seccomp filters while it is traced.
    pub const SUSPEND_SECCOMP: u32 = raw::PTRACE_O_SUSPEND_SECCOMP;
}

/// ELF note types naming the register sets for `PTRACE_GETREGSET`.
pub mod note {
    use linux_raw_sys::elf_uapi as raw;
    /// General purpose registers (`user_regs_struct`).
    pub const PRSTATUS: u32 = raw::NT_PRSTATUS;
    /// Floating point registers.
    pub const PRFPREG: u32 = raw::NT_PRFPREG;
    /// x86 extended state (the XSAVE area).
    pub const X86_XSTATE: u32 = raw::NT_X86_XSTATE;
}

/// `PTRACE_EVENT_STOP`: the event of a stop caused by `PTRACE_INTERRUPT` or
/// a group stop of a seized tracee.
pub const EVENT_STOP: u32 = raw::PTRACE_EVENT_STOP;

/// A signal number as the kernel uses it (1..=64).
pub type Signal = i32;

/// A signal set as one 64-bit word: bit `n - 1` is signal `n`. This is the
/// kernel's `sigset_t` on every supported architecture.
pub type SigSet = u64;

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

/// One raw ptrace request. Returns the kernel's non-negative result.
///
/// # Safety
/// `addr` and `data` must be what `request` expects: for requests that write
/// through them, pointers to writable memory of the size the request writes.
unsafe fn ptrace(request: u32, pid: Pid, addr: usize, data: usize) -> Result<usize, Errno> {
    crate::fault::call(&format_args!("ptrace request {request:#x}"), Errno::IO)?;
    // SAFETY: forwarded to the caller: the arguments match the request.
    let ret = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::PTRACE,
            request as usize,
            pid.as_raw_nonzero().get() as usize,
            addr,
            data,
        )
    };
    if ret < 0 {
        Err(Errno::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// Requests whose `addr` and `data` are plain integers, not pointers.
fn ptrace_value(request: u32, pid: Pid, addr: usize, data: usize) -> Result<usize, Errno> {
    // SAFETY: the callers below only pass requests that read no memory of
    // ours (SEIZE, INTERRUPT, CONT, SYSCALL, DETACH, SETOPTIONS, POKEDATA).
    unsafe { ptrace(request, pid, addr, data) }
}

/// `PTRACE_SEIZE`: become the tracer of `pid` without stopping it.
pub fn seize(pid: Pid, opts: u32) -> Result<(), Errno> {
    ptrace_value(raw::PTRACE_SEIZE, pid, 0, opts as usize).map(drop)
}

/// `PTRACE_SETOPTIONS`.
pub fn set_options(pid: Pid, opts: u32) -> Result<(), Errno> {
    ptrace_value(raw::PTRACE_SETOPTIONS, pid, 0, opts as usize).map(drop)
}

/// `PTRACE_INTERRUPT`: make a seized tracee stop (reported as
/// `PTRACE_EVENT_STOP`).
pub fn interrupt(pid: Pid) -> Result<(), Errno> {
    ptrace_value(raw::PTRACE_INTERRUPT, pid, 0, 0).map(drop)
}

/// `PTRACE_CONT`, delivering `sig` (0 for none) if stopped at a signal.
pub fn cont(pid: Pid, sig: Signal) -> Result<(), Errno> {
    ptrace_value(raw::PTRACE_CONT, pid, 0, sig as usize).map(drop)
}

/// `PTRACE_SYSCALL`: continue and stop at the next syscall entry or exit.
pub fn cont_syscall(pid: Pid, sig: Signal) -> Result<(), Errno> {
    ptrace_value(raw::PTRACE_SYSCALL, pid, 0, sig as usize).map(drop)
}

/// `PTRACE_DETACH`, delivering `sig` (0 for none) if stopped at a signal.
pub fn detach(pid: Pid, sig: Signal) -> Result<(), Errno> {
    ptrace_value(raw::PTRACE_DETACH, pid, 0, sig as usize).map(drop)
}

/// `PTRACE_PEEKDATA`: read one word of the tracee's memory.
pub fn peek_data(pid: Pid, addr: u64) -> Result<u64, Errno> {
    let mut word = 0u64;
    // SAFETY: the raw request stores one word through `data`, which points
    // to our local `word`.
    unsafe {
        ptrace(
            raw::PTRACE_PEEKDATA,
            pid,
            addr as usize,
            &mut word as *mut u64 as usize,
        )?
    };
    Ok(word)
}

/// `PTRACE_POKEDATA`: write one word of the tracee's memory.
pub fn poke_data(pid: Pid, addr: u64, word: u64) -> Result<(), Errno> {
    ptrace_value(raw::PTRACE_POKEDATA, pid, addr as usize, word as usize).map(drop)
}

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

/// What `wait4` reported about a tracee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal.
    Killed(Signal),
    /// Stopped for the tracer: `sig` is the stop signal and `event` the
    /// `PTRACE_EVENT_*` (0 for a plain signal-delivery stop).
    Stopped { sig: Signal, event: u32 },
    /// A syscall entry or exit stop (needs `TRACESYSGOOD`).
    SyscallStop,
}

impl WaitStatus {
    fn from_raw(status: u32) -> Self {
        let low = status & 0x7f;
        if low == 0 {
            WaitStatus::Exited(((status >> 8) & 0xff) as i32)
        } else if status & 0xff == 0x7f {
            let sig = ((status >> 8) & 0xff) as i32;
            if sig == (linux_raw_sys::general::SIGTRAP as i32 | 0x80) {
                WaitStatus::SyscallStop
            } else {
                WaitStatus::Stopped {
                    sig,
                    event: (status >> 16) & 0xff,
                }
            }
        } else {
            WaitStatus::Killed(low as i32)
        }
    }
}

/// How long [`wait`] waits for a tracee before giving up: far beyond any
/// stop our own requests cause (microseconds), short enough that a tracee
/// that will never stop (frozen by a cgroup, stuck in the kernel) is
/// reported instead of hanging the tool.
pub const WAIT_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

/// `wait4(pid, __WALL)` for at most [`WAIT_BOUND`]: any state change of
/// one tracee (or child), whether it is a thread or a process. `ETIMEDOUT`
/// when nothing happened in time (the tracee is left as it is).
pub fn wait(pid: Pid) -> Result<WaitStatus, Errno> {
    wait_until(pid, std::time::Instant::now() + WAIT_BOUND)
}

/// [`wait`] until `deadline`, then `ETIMEDOUT`. The kernel has no wait4
/// with a timeout (and a pidfd polls readable only on exit, not on a
/// stop), so this polls with `WNOHANG`, napping a little longer each time
/// up to 2 ms: a stop our own request causes arrives within microseconds.
pub fn wait_until(pid: Pid, deadline: std::time::Instant) -> Result<WaitStatus, Errno> {
    use std::time::{Duration, Instant};
    let mut nap = Duration::from_micros(10);
    loop {
        if let Some(status) = try_wait(pid)? {
            return Ok(status);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Errno::TIMEDOUT);
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(2));
    }
}

/// `wait4(pid, __WALL | WNOHANG)`: a state change of the tracee if there is
/// one now, else `None`.
pub fn try_wait(pid: Pid) -> Result<Option<WaitStatus>, Errno> {
    let opts = WaitOptions::from_bits_retain(linux_raw_sys::general::__WALL) | WaitOptions::NOHANG;
    loop {
        match rustix::process::waitpid(Some(pid), opts) {
            Ok(Some((_, status))) => {
                return Ok(Some(WaitStatus::from_raw(status.as_raw() as u32)));
            }
            Ok(None) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
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

/// `get_robust_list(pid)`: the head of the task's robust futex list and the
/// length the task registered.
pub fn get_robust_list(pid: Pid) -> Result<(u64, u64), Errno> {
    let mut head: u64 = 0;
    let mut len: u64 = 0;
    // SAFETY: the kernel stores one pointer-sized word through each of the
    // two pointers, both to our locals.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::GET_ROBUST_LIST,
            pid.as_raw_nonzero().get() as usize,
            &mut head as *mut u64 as usize,
            &mut len as *mut u64 as usize,
        )
    };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(-ret as i32));
    }
    Ok((head, len))
}

/// `PTRACE_GET_THREAD_AREA` (x86): the `struct user_desc` of GDT TLS entry
/// `index` as four words (entry_number, base_addr, limit, flag bits).
#[cfg(target_arch = "x86_64")]
pub fn get_thread_area(pid: Pid, index: u32) -> Result<[u32; 4], Errno> {
    use raw::PTRACE_GET_THREAD_AREA;
    let mut desc = [0u32; 4];
    // SAFETY: the kernel writes one 16-byte user_desc to our local.
    unsafe {
        ptrace(
            PTRACE_GET_THREAD_AREA,
            pid,
            index as usize,
            desc.as_mut_ptr() as usize,
        )?
    };
    Ok(desc)
}

/// `struct ptrace_rseq_configuration`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RseqConfig {
    pub rseq_abi_pointer: u64,
    pub rseq_abi_size: u32,
    pub signature: u32,
    pub flags: u32,
    pub pad: u32,
}
const _: () = assert!(size_of::<RseqConfig>() == 24);

/// `PTRACE_GET_RSEQ_CONFIGURATION` (Linux 5.13+): the task's registered rseq
/// area; `rseq_abi_pointer == 0` when none.
pub fn get_rseq_config(pid: Pid) -> Result<RseqConfig, Errno> {
    use raw::PTRACE_GET_RSEQ_CONFIGURATION;
    let mut conf = RseqConfig::default();
    // SAFETY: the kernel writes at most `addr` (= 24) bytes to our local.
    unsafe {
        ptrace(
            PTRACE_GET_RSEQ_CONFIGURATION,
            pid,
            size_of::<RseqConfig>(),
            &mut conf as *mut RseqConfig as usize,
        )?
    };
    Ok(conf)
}

/// [`get_rseq_config`] for dumping: `None` only where the kernel predates
/// the request (before Linux 5.13 it answers `EIO` to an unknown request);
/// on a newer kernel a failure is a failure, not "no rseq".
pub fn rseq_config_for_dump(pid: Pid) -> Result<Option<RseqConfig>, Errno> {
    match get_rseq_config(pid) {
        Ok(c) => Ok(Some(c)),
        Err(Errno::IO) if !kernel_at_least(5, 13) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decoding() {
        assert_eq!(WaitStatus::from_raw(3 << 8), WaitStatus::Exited(3));
        assert_eq!(WaitStatus::from_raw(9), WaitStatus::Killed(9));
        assert_eq!(
            WaitStatus::from_raw(0x7f | (5 << 8) | (128 << 16)),
            WaitStatus::Stopped { sig: 5, event: 128 }
        );
        assert_eq!(
            WaitStatus::from_raw(0x7f | (19 << 8)),
            WaitStatus::Stopped { sig: 19, event: 0 }
        );
        assert_eq!(
            WaitStatus::from_raw(0x7f | (0x85 << 8)),
            WaitStatus::SyscallStop
        );
    }

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

/// What `PTRACE_GET_SYSCALL_INFO` says about a syscall stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallInfo {
    /// Entering syscall `nr`; `ip` is the address after the syscall
    /// instruction.
    Entry { nr: u64, ip: u64 },
    /// Leaving a syscall with result `rval` (`-errno` on failure).
    Exit { rval: i64 },
    /// Not a syscall stop (or a seccomp stop).
    Other,
}

const _: () = assert!(size_of::<raw::ptrace_syscall_info>() == 88);
const _: () = assert!(std::mem::offset_of!(raw::ptrace_syscall_info, instruction_pointer) == 8);
const _: () = assert!(std::mem::offset_of!(raw::ptrace_syscall_info, __bindgen_anon_1) == 24);

/// `PTRACE_GET_SYSCALL_INFO` (Linux 5.3): whether the tracee stopped at a
/// syscall's entry or exit, and with what. The struct is read as words:
/// `op` is byte 0, the instruction pointer word 1, and the union (entry
/// `nr` or exit `rval`) starts at word 3.
pub fn get_syscall_info(pid: Pid) -> Result<SyscallInfo, Errno> {
    let mut words = [0u64; 11];
    // SAFETY: the kernel writes at most `size` (88) bytes into our local
    // buffer of exactly that size.
    unsafe {
        ptrace(
            raw::PTRACE_GET_SYSCALL_INFO,
            pid,
            size_of_val(&words),
            words.as_mut_ptr() as usize,
        )?
    };
    let op = words[0].to_ne_bytes()[0] as u32;
    Ok(match op {
        raw::PTRACE_SYSCALL_INFO_ENTRY => SyscallInfo::Entry {
            nr: words[3],
            ip: words[1],
        },
        raw::PTRACE_SYSCALL_INFO_EXIT => SyscallInfo::Exit {
            rval: words[3] as i64,
        },
        _ => SyscallInfo::Other,
    })
}

/// `PTRACE_SECCOMP_GET_FILTER` with no buffer: the number of instructions
/// of the tracee's seccomp filter `index` (0 is the newest).
pub fn seccomp_filter_len(pid: Pid, index: usize) -> Result<usize, Errno> {
    // SAFETY: with a NULL buffer the kernel only returns the length.
    unsafe { ptrace(raw::PTRACE_SECCOMP_GET_FILTER, pid, index, 0) }
}

/// x86: offset of `u_debugreg[0]` in the kernel's `struct user`
/// (`arch/x86/include/asm/user_64.h`), the address `PTRACE_POKEUSER`
/// takes for debug register N at `+ 8 * N`.
#[cfg(target_arch = "x86_64")]
const X86_DEBUGREG_OFFSET: usize = 848;

/// Whether a hardware breakpoint can be armed in the tracee: x86 writes
/// an execute breakpoint at `addr` into DR0/DR7 (`PTRACE_POKEUSER`) and
/// reads DR7 back, then disarms it; arm64 asks how many breakpoint slots
/// `NT_ARM_HW_BREAK` has. Other arches: `Ok(false)` (CRIU uses hardware
/// breakpoints only on these two).
pub fn hw_breakpoint_works(pid: Pid, addr: u64) -> Result<bool, Errno> {
    #[cfg(target_arch = "x86_64")]
    {
        let dr = |n: usize| X86_DEBUGREG_OFFSET + 8 * n;
        // DR7: L0 (local enable of DR0), RW0 = 00 (execute), LEN0 = 00.
        const DR7_L0: usize = 1;
        // SAFETY: POKEUSER of a debug register slot of the tracee's
        // `struct user`; no memory of ours is touched.
        unsafe { ptrace(raw::PTRACE_POKEUSR, pid, dr(0), addr as usize)? };
        // SAFETY: as above, DR7.
        unsafe { ptrace(raw::PTRACE_POKEUSR, pid, dr(7), DR7_L0)? };
        let mut dr7 = 0usize;
        // SAFETY: PEEKUSER through the raw syscall stores one word at
        // `data`, which points to `dr7`, a live usize of ours.
        let peeked = unsafe {
            ptrace(
                raw::PTRACE_PEEKUSR,
                pid,
                dr(7),
                &mut dr7 as *mut usize as usize,
            )
        };
        // SAFETY: POKEUSER of DR7 in the tracee only (disarms it).
        let _ = unsafe { ptrace(raw::PTRACE_POKEUSR, pid, dr(7), 0) };
        peeked?;
        Ok(dr7 & DR7_L0 == DR7_L0)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let _ = addr;
        // struct user_hwdebug_state: dbg_info (u32; low byte: slots), pad,
        // then 16 slots of {addr u64, ctrl u32, pad u32}.
        let regs = get_optional_regset(pid, linux_raw_sys::elf_uapi::NT_ARM_HW_BREAK, 264)?;
        Ok(regs.is_some_and(|r| r.len() >= 4 && r[0] > 0))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (pid, addr);
        Ok(false)
    }
}
