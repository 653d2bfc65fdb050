//! ptrace(2) and wait4(2) for tracing a victim: safe, typed wrappers.
//!
//! rustix has no ptrace, so requests go through the arch crate's raw syscall
//! entry. Every request here works on one stopped tracee; the kernel checks
//! that we are its tracer, so a wrong PID yields `ESRCH`, never memory unsafety
//! in our process: the only pointers we hand to the kernel are to our own
//! buffers, sized as the request expects.

use linux_raw_sys::ptrace as raw;
use rustix::io::Errno;
use rustix::process::Pid;

mod regs;
mod signals;
mod task;
mod wait;

pub use regs::*;
pub use signals::*;
pub use task::*;
pub use wait::*;

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
