//! Ending the parasite daemon: FINI with the task followed through its
//! `rt_sigreturn`, and the error path that forces the task back into its
//! saved context (see [`super::daemon`]).

use super::daemon::Daemon;
use super::error::InfectError;
use super::{SIGTRAP, is_fault_signal, is_stop_signal};
use crate::blob::parasite_abi as abi;
use crate::sys::ptrace::{self, EVENT_STOP, WaitStatus};

impl Daemon<'_, '_> {
    /// Stop the running task (`PTRACE_INTERRUPT`) and wait for the stop.
    fn interrupt(&mut self) -> Result<(), InfectError> {
        let pid = self.pid();
        let tid = self.parasite.task().pid;
        ptrace::interrupt(tid).map_err(InfectError::ptrace(pid, "INTERRUPT"))?;
        loop {
            let status = ptrace::wait(tid).map_err(InfectError::wait(
                pid,
                "stop for our PTRACE_INTERRUPT of the parasite",
                ptrace::WAIT_BOUND,
            ))?;
            let task = self.parasite.task_mut();
            match status {
                WaitStatus::Exited(_) | WaitStatus::Killed(_) => {
                    self.running = false;
                    task.released = true;
                    return Err(InfectError::Gone { pid, status });
                }
                WaitStatus::Stopped { sig, event } if event == EVENT_STOP => {
                    if is_stop_signal(sig) {
                        task.stop_on_release = true;
                    }
                    self.running = false;
                    return Ok(());
                }
                WaitStatus::Stopped { sig, event: 0 } => {
                    // Stopped by a signal before our interrupt: the interrupt
                    // is still pending, so let it go on (without the signal,
                    // unless it is one to hand back later).
                    self.running = false;
                    if is_fault_signal(sig) || sig == SIGTRAP {
                        return Ok(());
                    }
                    if is_stop_signal(sig) {
                        task.stop_on_release = true;
                    } else {
                        task.deferred_signals.push(sig);
                    }
                    ptrace::cont(tid, 0).map_err(InfectError::ptrace(pid, "CONT"))?;
                    self.running = true;
                }
                _ => {
                    ptrace::cont(tid, 0).map_err(InfectError::ptrace(pid, "CONT"))?;
                }
            }
        }
    }

    /// End the daemon: FINI, follow the task through its `rt_sigreturn`,
    /// check that it is back in its own context, and restore the saved
    /// registers and signal mask. The area stays mapped until the
    /// [`Parasite`] is cured.
    pub fn fini(mut self) -> Result<(), InfectError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), InfectError> {
        let pid = self.pid();
        let tid = self.parasite.task().pid;
        if !self.running {
            return Err(self.protocol("the parasite is not running"));
        }
        self.interrupt()?;
        self.send_ctl(abi::CMD_FINI)?;
        // The parasite closes its socket itself from here on; `remote_sock`
        // is kept until it is seen back in its saved context, for `abort`
        // to close should we lose it on the way.
        self.sock = None;
        let mut entered = false;
        let at = loop {
            ptrace::cont_syscall(tid, 0).map_err(InfectError::ptrace(pid, "SYSCALL"))?;
            self.running = true;
            let status = ptrace::wait(tid).map_err(InfectError::wait(
                pid,
                "reach its next syscall stop on the way out of the parasite",
                ptrace::WAIT_BOUND,
            ))?;
            self.running = false;
            let task = self.parasite.task_mut();
            match status {
                WaitStatus::SyscallStop => {
                    let regs =
                        ptrace::get_gp_regs(tid).map_err(InfectError::ptrace(pid, "GETREGSET"))?;
                    if entered {
                        break regs;
                    }
                    // The kernel's word on the syscall: the number is not
                    // in a general register on every arch (s390x's `svc
                    // 173` encodes it in the instruction).
                    entered = matches!(
                        ptrace::get_syscall_info(tid)
                            .map_err(InfectError::ptrace(pid, "GET_SYSCALL_INFO"))?,
                        ptrace::SyscallInfo::Entry { nr, .. }
                            if nr == criu_arch::nr::RT_SIGRETURN as u64
                    );
                }
                WaitStatus::Exited(_) | WaitStatus::Killed(_) => {
                    task.released = true;
                    return Err(InfectError::Gone { pid, status });
                }
                WaitStatus::Stopped { sig, event: 0 } if is_fault_signal(sig) => {
                    let pc = ptrace::get_gp_regs(tid).map(|r| r.pc()).unwrap_or(0);
                    return Err(InfectError::Fault {
                        pid,
                        sig,
                        pc,
                        doing: "returning from the parasite",
                    });
                }
                WaitStatus::Stopped { sig, event } => {
                    if is_stop_signal(sig) {
                        task.stop_on_release = true;
                    } else if event == 0 && sig != SIGTRAP {
                        task.deferred_signals.push(sig);
                    }
                }
            }
        };
        let want = &self.frame_regs;
        if at.pc() != want.pc() || at.sp() != want.sp() || at.retval() != want.retval() {
            return Err(InfectError::Daemon {
                pid,
                reason: format!(
                    "after rt_sigreturn the task is at pc {:#x} sp {:#x}, expected pc {:#x} sp {:#x}",
                    at.pc(),
                    at.sp(),
                    want.pc(),
                    want.sp()
                ),
            });
        }
        self.done = true;
        self.remote_sock = None;
        self.parasite.task_mut().restore_context(true)
    }

    /// Where resuming from a syscall-entry stop runs the syscall the
    /// written registers name (ppc64, s390x), a pending syscall of the
    /// parasite is cancelled and stepped to its exit stop, so that the
    /// injected `close` below runs once, not twice (the second time on the
    /// result of the first: fd 0 or 1 of the task), and no other syscall
    /// runs in its place.
    fn step_over_pending_syscall(&mut self) -> Result<(), InfectError> {
        let pid = self.pid();
        let tid = self.parasite.task().pid;
        if !criu_arch::ENTRY_STOP_RUNS_INJECTED_SYSCALL {
            return Ok(());
        }
        match ptrace::get_syscall_info(tid) {
            Ok(ptrace::SyscallInfo::Entry { .. }) => {}
            // Elsewhere, or a kernel before 5.3: nothing pending to step.
            Ok(_) | Err(rustix::io::Errno::IO | rustix::io::Errno::INVAL) => return Ok(()),
            Err(e) => return Err(InfectError::ptrace(pid, "GET_SYSCALL_INFO")(e)),
        }
        let mut regs = ptrace::get_gp_regs(tid).map_err(InfectError::ptrace(pid, "GETREGSET"))?;
        regs.cancel_pending_syscall();
        ptrace::set_gp_regs(tid, &regs).map_err(InfectError::ptrace(pid, "SETREGSET"))?;
        loop {
            ptrace::cont_syscall(tid, 0).map_err(InfectError::ptrace(pid, "SYSCALL"))?;
            let status = ptrace::wait(tid).map_err(InfectError::wait(
                pid,
                "stop at the exit of its pending syscall",
                ptrace::WAIT_BOUND,
            ))?;
            let task = self.parasite.task_mut();
            match status {
                WaitStatus::SyscallStop => return Ok(()),
                WaitStatus::Exited(_) | WaitStatus::Killed(_) => {
                    task.released = true;
                    return Err(InfectError::Gone { pid, status });
                }
                WaitStatus::Stopped { sig, event } => {
                    if is_stop_signal(sig) {
                        task.stop_on_release = true;
                    } else if event == 0 && sig != SIGTRAP {
                        task.deferred_signals.push(sig);
                    }
                }
            }
        }
    }

    /// The error path: get the task back into its saved context whatever
    /// state the parasite is in, and close the parasite's socket in it.
    fn abort(&mut self) -> Result<(), InfectError> {
        let _undo = crate::fault::Undo::enter();
        if self.running {
            self.interrupt()?;
        }
        self.done = true;
        // Followed with PTRACE_SYSCALL, the task may sit at the entry of one
        // of the parasite's syscalls; the close below must not run it.
        let tid = self.parasite.task().pid;
        ptrace::skip_pending_syscall(tid)
            .map_err(InfectError::ptrace(self.pid(), "SETREGSET(skip syscall)"))?;
        self.step_over_pending_syscall()?;
        self.parasite.task_mut().restore_context(true)?;
        if let Some(fd) = self.remote_sock.take() {
            // After FINI the parasite may have closed it already (EBADF);
            // nothing else runs in the task to reuse the number meanwhile.
            match self.parasite.task_mut().remote_syscall(
                "close",
                criu_arch::nr::CLOSE,
                [fd as u64, 0, 0, 0, 0, 0],
            ) {
                Ok(_) => {}
                Err(InfectError::RemoteSyscall {
                    errno: rustix::io::Errno::BADF,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Drop for Daemon<'_, '_> {
    fn drop(&mut self) {
        let _undo = crate::fault::Undo::enter();
        // Error paths: get the task out of the parasite and back into its
        // saved context, so the area can be unmapped.
        if self.done || self.parasite.task().released {
            return;
        }
        // A live parasite cleans up after itself (socket, mprotects) when
        // sent home; if it cannot be, force the task back.
        if self.sock.is_some() && self.finish().is_ok() {
            return;
        }
        if self.done || self.parasite.task().released {
            return;
        }
        let _ = self.abort();
    }
}
