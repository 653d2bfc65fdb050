//! Running code in the seized task until it traps, and injecting single
//! syscalls with it: the syscall-plus-trap stub is swapped into the start of
//! the first executable mapping, run with every signal but SIGTRAP blocked,
//! and everything (code, registers, signal mask) is put back afterwards,
//! whether the syscall succeeded or not.

use criu_arch::GpRegs;
use rustix::io::Errno;

use super::error::InfectError;
use super::seize::{Seized, write_ext_regs};
use super::{SIGTRAP, is_fault_signal, is_stop_signal};
use crate::sys::ptrace::{self, EVENT_STOP, SigSet, WaitStatus};

/// Every signal blocked except SIGTRAP, so nothing but our trap interrupts
/// injected code (SIGKILL and SIGSTOP cannot be blocked; faults are forced).
pub(super) const TRAP_ONLY_MASK: SigSet = !(1u64 << (SIGTRAP - 1));

/// Largest negative value a syscall returns as `-errno`.
const MAX_ERRNO: i64 = 4095;

/// The bytes of the stub, as one word in the target's byte order.
fn inject_word() -> u64 {
    u64::from_ne_bytes(criu_arch::INJECT_CODE)
}

impl Seized {
    /// Load `regs` and a trap-only signal mask, resume the task and wait until
    /// it traps with its PC in `trap_lo..=trap_hi`. Returns the registers at
    /// the trap. Does not restore anything: callers do (see
    /// [`Seized::restore_context`]).
    pub(super) fn run_to_trap(
        &mut self,
        regs: &GpRegs,
        trap_lo: u64,
        trap_hi: u64,
        doing: &'static str,
    ) -> Result<GpRegs, InfectError> {
        let pid = self.pid();
        ptrace::set_gp_regs(self.pid, regs).map_err(InfectError::ptrace(pid, "SETREGSET"))?;
        // No restart of the syscall the task sat in may touch our code.
        ptrace::set_syscall_restart(self.pid, 0)
            .map_err(InfectError::ptrace(pid, "SETREGSET(syscall restart)"))?;
        ptrace::set_sigmask(self.pid, TRAP_ONLY_MASK)
            .map_err(InfectError::ptrace(pid, "SETSIGMASK"))?;
        ptrace::cont(self.pid, 0).map_err(InfectError::ptrace(pid, "CONT"))?;
        loop {
            let status = ptrace::wait(self.pid).map_err(InfectError::wait(
                pid,
                "trap at the end of injected code",
                ptrace::WAIT_BOUND,
            ))?;
            match status {
                WaitStatus::Exited(_) | WaitStatus::Killed(_) => {
                    // Nothing left to restore or detach from.
                    self.released = true;
                    return Err(InfectError::Gone { pid, status });
                }
                WaitStatus::Stopped { sig, event: 0 } if sig == SIGTRAP => {
                    let info = ptrace::get_siginfo(self.pid)
                        .map_err(InfectError::ptrace(pid, "GETSIGINFO"))?;
                    if info.code() <= 0 {
                        // Sent by kill()/tgkill()/sigqueue(), not our trap:
                        // hand it back on release.
                        self.deferred_signals.push(sig);
                        ptrace::cont(self.pid, 0).map_err(InfectError::ptrace(pid, "CONT"))?;
                        continue;
                    }
                    let at = ptrace::get_gp_regs(self.pid)
                        .map_err(InfectError::ptrace(pid, "GETREGSET"))?;
                    let pc = at.pc();
                    if pc < trap_lo || pc > trap_hi {
                        return Err(InfectError::WrongTrap {
                            pid,
                            pc,
                            expected: trap_lo,
                            doing,
                        });
                    }
                    return Ok(at);
                }
                WaitStatus::Stopped { sig, event: 0 } if is_fault_signal(sig) => {
                    let pc = ptrace::get_gp_regs(self.pid).map(|r| r.pc()).unwrap_or(0);
                    // The signal is dropped: restoring the registers undoes
                    // the faulting context.
                    return Err(InfectError::Fault {
                        pid,
                        sig,
                        pc,
                        doing,
                    });
                }
                WaitStatus::Stopped { sig, event: 0 } => {
                    // Only unblockable signals get here (SIGSTOP): keep it for
                    // the release and let our code finish.
                    if is_stop_signal(sig) {
                        self.stop_on_release = true;
                    } else {
                        self.deferred_signals.push(sig);
                    }
                    ptrace::cont(self.pid, 0).map_err(InfectError::ptrace(pid, "CONT"))?;
                }
                WaitStatus::Stopped { sig, event } if event == EVENT_STOP => {
                    // A group stop reported to us as tracer: remember it and go on.
                    if is_stop_signal(sig) {
                        self.stop_on_release = true;
                    }
                    ptrace::cont(self.pid, 0).map_err(InfectError::ptrace(pid, "CONT"))?;
                }
                status => {
                    return Err(InfectError::UnexpectedStop { pid, doing, status });
                }
            }
        }
    }

    /// Put back the registers (and, with `ext`, the FP/vector state) and the
    /// signal mask saved at the seize. Tries every step and reports the first
    /// failure.
    pub(super) fn restore_context(&mut self, ext: bool) -> Result<(), InfectError> {
        let _undo = crate::fault::Undo::enter();
        let pid = self.pid();
        let gp = ptrace::set_gp_regs(self.pid, &self.regs)
            .and_then(|()| ptrace::set_syscall_restart(self.pid, self.syscall_restart))
            .map_err(InfectError::ptrace(pid, "SETREGSET(restore)"));
        let fp = if ext {
            write_ext_regs(self.pid, &self.ext_regs)
                .map_err(InfectError::ptrace(pid, "SETREGSET(FP restore)"))
        } else {
            Ok(())
        };
        let mask = ptrace::set_sigmask(self.pid, self.sigmask)
            .map_err(InfectError::ptrace(pid, "SETSIGMASK(restore)"));
        gp.and(fp).and(mask)
    }

    /// Run syscall `nr` with `args` in the task and return its raw result
    /// (`-errno` on failure). `data` words are placed right after the stub,
    /// at [`Seized::exec_start`]` + 8`, for syscalls that take a small buffer.
    pub fn remote_syscall_raw(
        &mut self,
        nr: usize,
        args: [u64; 6],
        data: &[u64],
    ) -> Result<i64, InfectError> {
        let pid = self.pid();
        let base = self.exec_start;
        let words = 1 + data.len();

        let mut saved = Vec::with_capacity(words);
        for i in 0..words {
            let word = ptrace::peek_data(self.pid, base + 8 * i as u64)
                .map_err(InfectError::ptrace(pid, "PEEKDATA"))?;
            saved.push(word);
        }
        let mut written = 0;
        let mut result = (|| {
            for (i, word) in std::iter::once(inject_word())
                .chain(data.iter().copied())
                .enumerate()
            {
                ptrace::poke_data(self.pid, base + 8 * i as u64, word)
                    .map_err(InfectError::ptrace(pid, "POKEDATA"))?;
                written += 1;
            }
            let mut regs = self.regs;
            regs.set_pc(base);
            regs.set_syscall(nr as u64, args);
            let stub_end = base + criu_arch::INJECT_CODE.len() as u64;
            let at = self.run_to_trap(&regs, base, stub_end, "running an injected syscall")?;
            Ok(at.syscall_result())
        })();

        if !self.released {
            let _undo = crate::fault::Undo::enter();
            for (i, word) in saved.iter().enumerate().take(written) {
                let restored = ptrace::poke_data(self.pid, base + 8 * i as u64, *word)
                    .map_err(InfectError::ptrace(pid, "POKEDATA(restore)"));
                result = result.and_then(|r| restored.map(|()| r));
            }
            let restored = self.restore_context(false);
            result = result.and_then(|r| restored.map(|()| r));
        }
        result
    }

    /// Run syscall `nr` in the task; a `-errno` result becomes
    /// [`InfectError::RemoteSyscall`] naming `name`.
    pub fn remote_syscall(
        &mut self,
        name: &'static str,
        nr: usize,
        args: [u64; 6],
    ) -> Result<u64, InfectError> {
        self.remote_syscall_with_data(name, nr, args, &[])
    }

    /// [`Seized::remote_syscall`] with `data` words after the stub.
    pub fn remote_syscall_with_data(
        &mut self,
        name: &'static str,
        nr: usize,
        args: [u64; 6],
        data: &[u64],
    ) -> Result<u64, InfectError> {
        crate::fault::call(&name, Errno::NOMEM).map_err(|errno| InfectError::RemoteSyscall {
            pid: self.pid(),
            name,
            errno,
        })?;
        let ret = self.remote_syscall_raw(nr, args, data)?;
        if (-MAX_ERRNO..0).contains(&ret) {
            return Err(InfectError::RemoteSyscall {
                pid: self.pid(),
                name,
                errno: Errno::from_raw_os_error(-ret as i32),
            });
        }
        Ok(ret as u64)
    }
}
