//! The other threads of a multi-threaded process: each is seized and kept
//! stopped while the leader is infected (injected code runs in the leader
//! only, so no thread can run into the syscall stub), and runs the parasite
//! only in trap mode, on the area's second stack (CRIU's
//! `compel_run_in_thread`).

use criu_arch::GpRegs;
use rustix::process::Pid;

use super::error::InfectError;
use super::seize::{ExtRegs, SeizeOpts, Seized, read_ext_regs, write_ext_regs};
use super::syscall::TRAP_ONLY_MASK;
use super::{SIGTRAP, is_fault_signal, is_stop_signal};
use crate::sys::ptrace::{self, SigSet, WaitStatus, options};

/// A seized non-leader thread and what to put back when it is let go.
#[derive(Debug)]
pub struct SeizedThread {
    tid: Pid,
    regs: GpRegs,
    ext_regs: ExtRegs,
    sigmask: SigSet,
    /// See [`Seized::syscall_restart`].
    syscall_restart: u32,
    stop_on_release: bool,
    released: bool,
}

impl SeizedThread {
    fn seize(tid: i32, opts: &SeizeOpts<'_>) -> Result<SeizedThread, InfectError> {
        let t = Pid::from_raw(tid).ok_or(InfectError::Dead { pid: tid })?;
        let state = opts.stop(t)?;
        let mut th = SeizedThread {
            tid: t,
            regs: GpRegs::default(),
            ext_regs: ExtRegs {
                note: 0,
                bytes: Vec::new(),
                more: Vec::new(),
            },
            sigmask: 0,
            syscall_restart: 0,
            stop_on_release: false,
            // Nothing to restore until the registers are read.
            released: true,
        };
        let detach_on_err = |e| {
            super::seize::detach_seized(t);
            e
        };
        th.stop_on_release = state.is_stopped();
        // Trap-mode parasite calls in this thread must not be filtered.
        let seccomp = std::fs::read_to_string(format!("/proc/{tid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim() != "0"))
            })
            .unwrap_or(false);
        if seccomp {
            ptrace::set_options(t, options::TRACESYSGOOD | options::SUSPEND_SECCOMP)
                .map_err(InfectError::ptrace(tid, "SETOPTIONS(SUSPEND_SECCOMP)"))
                .map_err(detach_on_err)?;
        }
        th.regs = ptrace::get_gp_regs(t)
            .map_err(InfectError::ptrace(tid, "GETREGSET"))
            .map_err(detach_on_err)?;
        th.ext_regs = read_ext_regs(t)
            .map_err(InfectError::ptrace(tid, "GETREGSET(FP)"))
            .map_err(detach_on_err)?;
        th.sigmask = ptrace::get_sigmask(t)
            .map_err(InfectError::ptrace(tid, "GETSIGMASK"))
            .map_err(detach_on_err)?;
        th.syscall_restart = ptrace::get_syscall_restart(t)
            .map_err(InfectError::ptrace(tid, "GETREGSET(syscall restart)"))
            .map_err(detach_on_err)?;
        th.released = false;
        Ok(th)
    }

    /// The thread id.
    pub fn tid(&self) -> i32 {
        self.tid.as_raw_nonzero().get()
    }

    /// Registers as seized (a dumper applies the restart fix-up to a copy).
    pub fn regs(&self) -> &GpRegs {
        &self.regs
    }

    /// FP/vector state as seized.
    pub fn ext_regs(&self) -> &ExtRegs {
        &self.ext_regs
    }

    /// Blocked signals as seized.
    pub fn sigmask(&self) -> SigSet {
        self.sigmask
    }

    fn restore_context(&self) -> Result<(), InfectError> {
        let _undo = crate::fault::Undo::enter();
        let tid = self.tid();
        let gp = ptrace::set_gp_regs(self.tid, &self.regs)
            .and_then(|()| ptrace::set_syscall_restart(self.tid, self.syscall_restart))
            .map_err(InfectError::ptrace(tid, "SETREGSET(restore)"));
        let fp = write_ext_regs(self.tid, &self.ext_regs)
            .map_err(InfectError::ptrace(tid, "SETREGSET(FP restore)"));
        let mask = ptrace::set_sigmask(self.tid, self.sigmask)
            .map_err(InfectError::ptrace(tid, "SETSIGMASK(restore)"));
        gp.and(fp).and(mask)
    }

    /// Run `entry(args...)` in this thread on the stack ending at
    /// `stack_top`, returning to `trap` (a `[trap, trap_end]` range); the
    /// caller stores the stack word (if any) first. Puts the thread's
    /// context back afterwards and returns the blob's return value.
    pub(super) fn run_blob(
        &mut self,
        entry: u64,
        stack_top: u64,
        args: &[u64],
        trap: (u64, u64),
        store_word: &mut dyn FnMut(u64, u64) -> Result<(), InfectError>,
    ) -> Result<i64, InfectError> {
        let tid = self.tid();
        let mut regs = self.regs;
        let call = criu_arch::setup_blob_call(&mut regs, entry, stack_top, args, trap.0)
            .map_err(|e| InfectError::Layout(e.to_string()))?;
        if let Some(w) = call.stack_word {
            store_word(w.addr, w.value)?;
        }
        let ran = (|| {
            ptrace::set_gp_regs(self.tid, &regs).map_err(InfectError::ptrace(tid, "SETREGSET"))?;
            ptrace::set_syscall_restart(self.tid, 0)
                .map_err(InfectError::ptrace(tid, "SETREGSET(syscall restart)"))?;
            ptrace::set_sigmask(self.tid, TRAP_ONLY_MASK)
                .map_err(InfectError::ptrace(tid, "SETSIGMASK"))?;
            ptrace::cont(self.tid, 0).map_err(InfectError::ptrace(tid, "CONT"))?;
            loop {
                let status = ptrace::wait(self.tid).map_err(InfectError::wait(
                    tid,
                    "trap at the end of the parasite in a thread",
                    ptrace::WAIT_BOUND,
                ))?;
                match status {
                    WaitStatus::Exited(_) | WaitStatus::Killed(_) => {
                        self.released = true;
                        return Err(InfectError::Gone { pid: tid, status });
                    }
                    WaitStatus::Stopped { sig, event: 0 } if sig == SIGTRAP => {
                        let at = ptrace::get_gp_regs(self.tid)
                            .map_err(InfectError::ptrace(tid, "GETREGSET"))?;
                        if at.pc() < trap.0 || at.pc() > trap.1 {
                            return Err(InfectError::WrongTrap {
                                pid: tid,
                                pc: at.pc(),
                                expected: trap.0,
                                doing: "running the parasite in a thread",
                            });
                        }
                        return Ok(at.retval() as i64);
                    }
                    WaitStatus::Stopped { sig, event: 0 } if is_fault_signal(sig) => {
                        let pc = ptrace::get_gp_regs(self.tid).map(|r| r.pc()).unwrap_or(0);
                        return Err(InfectError::Fault {
                            pid: tid,
                            sig,
                            pc,
                            doing: "running the parasite in a thread",
                        });
                    }
                    WaitStatus::Stopped { sig, .. } => {
                        if is_stop_signal(sig) {
                            self.stop_on_release = true;
                        }
                        ptrace::cont(self.tid, 0).map_err(InfectError::ptrace(tid, "CONT"))?;
                    }
                    WaitStatus::SyscallStop => {
                        ptrace::cont(self.tid, 0).map_err(InfectError::ptrace(tid, "CONT"))?;
                    }
                }
            }
        })();
        let restored = if self.released {
            Ok(())
        } else {
            self.restore_context()
        };
        let ret = ran?;
        restored?;
        Ok(ret)
    }

    /// Put the thread's context back and detach.
    pub fn release(mut self) -> Result<(), InfectError> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<(), InfectError> {
        let _undo = crate::fault::Undo::enter();
        if self.released {
            return Ok(());
        }
        self.released = true;
        let tid = self.tid();
        let mut result = self.restore_context();
        if self.stop_on_release {
            // A group stop applies to the whole process; the leader's
            // release re-stops it.
        }
        let detached = ptrace::detach(self.tid, 0).map_err(InfectError::ptrace(tid, "DETACH"));
        result = result.and(detached);
        result
    }

    /// The process was killed: nothing to put back.
    pub fn forget(mut self) {
        self.released = true;
    }
}

impl Drop for SeizedThread {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}

/// Every thread of process `pid` seized and stopped: the leader as a
/// [`Seized`], the others as [`SeizedThread`]s (in tid order). Threads
/// created while we seize are caught by listing again until nothing new
/// appears. Each thread must stop within [`ptrace::WAIT_BOUND`].
pub fn seize_process(pid: i32) -> Result<(Seized, Vec<SeizedThread>), InfectError> {
    seize_process_with(pid, &SeizeOpts::within(ptrace::WAIT_BOUND))
}

/// [`seize_process`] with the bound and the already attached threads of
/// `opts`.
pub fn seize_process_with(
    pid: i32,
    opts: &SeizeOpts<'_>,
) -> Result<(Seized, Vec<SeizedThread>), InfectError> {
    let mut others: Vec<SeizedThread> = Vec::new();
    let list = |pid: i32| -> Result<Vec<i32>, InfectError> {
        let dir = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                InfectError::Dead { pid }
            } else {
                InfectError::Proc {
                    pid,
                    file: "task",
                    source: e,
                }
            }
        })?;
        let mut tids: Vec<i32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&t| t != pid)
            .collect();
        tids.sort_unstable();
        Ok(tids)
    };
    // Stop the others first, so that none starts a new thread behind us.
    for _round in 0..16 {
        let mut new = false;
        for tid in list(pid)? {
            if others.iter().any(|t| t.tid() == tid) {
                continue;
            }
            match SeizedThread::seize(tid, opts) {
                Ok(t) => {
                    others.push(t);
                    new = true;
                }
                // Exited meanwhile.
                Err(InfectError::Seize { source, .. }) if source == rustix::io::Errno::SRCH => {}
                Err(e) => return Err(e),
            }
        }
        if !new {
            let leader = Seized::seize_multi(pid, opts)?;
            // Threads that exited while we waited are gone from the list.
            let alive = list(pid)?;
            others.retain(|t| alive.contains(&t.tid()));
            others.sort_by_key(|t| t.tid());
            return Ok((leader, others));
        }
    }
    Err(InfectError::ThreadsKeepAppearing { pid })
}
