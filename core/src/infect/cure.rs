//! Letting go of a task: registers, FP state and signal mask back as they
//! were at the seize, signals that arrived meanwhile handed back, then
//! `PTRACE_DETACH`, stopping the task again if it was stopped.

use rustix::process::Signal;

use super::error::InfectError;
use super::seize::Seized;
use crate::sys::ptrace;

impl Seized {
    /// Restore the task's state and detach from it. The task resumes where
    /// it was (an interrupted restartable syscall is restarted by the kernel
    /// on the way out, since its registers are back exactly as they were),
    /// or stays stopped if it was stopped.
    pub fn release(mut self) -> Result<(), InfectError> {
        self.release_inner()
    }

    /// Undo everything and detach; idempotent. Every step is attempted even
    /// if an earlier one failed, and the first failure is reported.
    pub(super) fn release_inner(&mut self) -> Result<(), InfectError> {
        let _undo = crate::fault::Undo::enter();
        if self.released {
            return Ok(());
        }
        self.released = true;
        let pid = self.pid();
        let mut result = self.restore_context(true);

        // A stop signal or group stop seen while our code ran, or a task that
        // was stopped to begin with: queue SIGSTOP while the task is still
        // held, so it stops again as soon as we detach. (The kernel also
        // re-enters a group stop still in force on detach; the extra SIGSTOP
        // is then discarded by the next SIGCONT.)
        if self.state.is_stopped() || self.stop_on_release {
            let sent = rustix::process::kill_process(self.pid, Signal::STOP).map_err(|source| {
                InfectError::Local {
                    op: "kill(SIGSTOP) to re-stop the task",
                    source,
                }
            });
            result = result.and(sent);
        }
        for sig in std::mem::take(&mut self.deferred_signals) {
            // Only named (non-realtime) signals can reach us here: everything
            // blockable was blocked while our code ran.
            if let Some(sig) = Signal::from_named_raw(sig) {
                let sent = rustix::process::kill_process(self.pid, sig).map_err(|source| {
                    InfectError::Local {
                        op: "kill() to hand back a deferred signal",
                        source,
                    }
                });
                result = result.and(sent);
            }
        }

        let detached = ptrace::detach(self.pid, 0).map_err(InfectError::ptrace(pid, "DETACH"));
        result.and(detached)
    }
}

impl Drop for Seized {
    fn drop(&mut self) {
        // Best effort on the error paths: the caller already has an error to
        // report, and the task must not stay stopped under a dead tracer.
        let _ = self.release_inner();
    }
}

impl Seized {
    /// Like [`Seized::release`], but the task stays stopped (SIGSTOP)
    /// after the detach (`--leave-stopped`).
    pub fn release_stopped(mut self) -> Result<(), InfectError> {
        self.stop_on_release = true;
        self.release_inner()
    }

    /// Kill the task with SIGKILL while we still hold it (the end of a
    /// dump without `--leave-running`), and reap the tracing link.
    pub fn kill(self) -> Result<(), InfectError> {
        self.kill_inner(true)
    }

    /// Like [`Seized::kill`], but the leader is not waited for: the
    /// process frees its memory on its own time. Its other threads are
    /// reaped (each our tracee, its TID in use until we do; left to this
    /// thread's end, the TIDs would be freed only after the leader could
    /// already be reaped, and a restore right after could find them
    /// taken). The leader stays our tracee until this thread detaches or
    /// ends, when its parent reaps it: for a tracer thread that ends right
    /// after (the dump's workers).
    pub fn kill_no_wait(self) -> Result<(), InfectError> {
        self.kill_inner(false)
    }

    fn kill_inner(mut self, wait_leader: bool) -> Result<(), InfectError> {
        self.released = true;
        rustix::process::kill_process(self.pid, Signal::KILL).map_err(|source| {
            InfectError::Local {
                op: "kill(SIGKILL) of the dumped task",
                source,
            }
        })?;
        // The other threads first: each one we trace stays a zombie until we
        // reap it, and the kernel reports the leader's death only once the
        // rest of its thread group is gone. (They are still listed in
        // /proc/PID/task while they are zombies.)
        let leader = self.pid.as_raw_nonzero().get();
        let tids: Vec<i32> = std::fs::read_dir(format!("/proc/{leader}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&tid| tid != leader)
            .collect();
        reap_all(
            tids.into_iter()
                .filter_map(rustix::process::Pid::from_raw)
                .collect(),
        );
        if wait_leader {
            reap(self.pid);
        }
        Ok(())
    }
}

/// [`reap`] every thread of `tids` (killed), polling them all together:
/// the last thread of a pid namespace's init to exit waits in the kernel
/// until the others are reaped, whatever their order.
fn reap_all(mut tids: Vec<rustix::process::Pid>) {
    let deadline = std::time::Instant::now() + ptrace::WAIT_BOUND;
    while !tids.is_empty() && std::time::Instant::now() < deadline {
        tids.retain(|&tid| match ptrace::try_wait(tid) {
            Ok(Some(ptrace::WaitStatus::Exited(_) | ptrace::WaitStatus::Killed(_))) | Err(_) => {
                false
            }
            Ok(Some(_)) => {
                let _ = ptrace::cont(tid, 0);
                true
            }
            Ok(None) => true,
        });
        if !tids.is_empty() {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}

/// Wait until traced task `tid`, killed, is gone. A failure means it is
/// already gone (or reaped by its parent), which is what we want.
fn reap(tid: rustix::process::Pid) {
    loop {
        match ptrace::wait(tid) {
            Ok(ptrace::WaitStatus::Exited(_) | ptrace::WaitStatus::Killed(_)) | Err(_) => break,
            Ok(_) => {
                let _ = ptrace::cont(tid, 0);
            }
        }
    }
}
