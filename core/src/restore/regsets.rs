//! State only ptrace can set (arm64's pointer-authentication keys; see
//! `crate::regs::ptrace_regsets`): written into every restored thread
//! while it waits in the restorer for the go, so that none of the task's
//! own code runs without it. Threads with nothing to write are left alone.

use rustix::io::Errno;
use rustix::process::Pid;

use super::RestoreError;
use super::images::TaskImages;
use crate::sys::ptrace::{self, EVENT_STOP, WaitStatus};

/// Write the register sets of the leader (`pid`) and of every other
/// thread of `task` (`tids`: theirs, in its order; PIDs as the tool
/// reaches them).
pub fn write(pid: i32, tids: &[u32], task: &TaskImages) -> Result<(), RestoreError> {
    let threads = tids
        .iter()
        .zip(&task.threads)
        .map(|(tid, (_, core))| (*tid as i32, core));
    for (tid, core) in std::iter::once((pid, &task.core)).chain(threads) {
        let sets = crate::regs::ptrace_regsets(core);
        if !sets.is_empty() {
            write_into(tid, &sets).map_err(|e| RestoreError::Sys("ptrace register sets", e))?;
        }
    }
    Ok(())
}

/// Seize thread `tid`, stop it, write `sets`, let it go.
fn write_into(tid: i32, sets: &[(u32, Vec<u8>)]) -> Result<(), Errno> {
    let t = Pid::from_raw(tid).ok_or(Errno::SRCH)?;
    ptrace::seize(t, 0)?;
    let stopped = stop(t);
    let result = stopped.and_then(|()| {
        sets.iter()
            .try_for_each(|(note, bytes)| ptrace::set_regset(t, *note, bytes))
    });
    // Whatever failed, the thread must not stay ours: only a stopped
    // tracee can be detached, and a thread still traced by the tool when a
    // failed restore kills its task is a zombie only the tool may reap
    // (the restore then hung waiting for the task). Undo steps are not
    // failed on purpose.
    let _undo = crate::fault::Undo::enter();
    let detached = match stopped {
        Ok(()) => ptrace::detach(t, 0),
        Err(_) => stop(t).and_then(|()| ptrace::detach(t, 0)),
    };
    result.and(detached)
}

/// `PTRACE_INTERRUPT` and wait for that stop (a signal that arrives
/// first is delivered; the restorer blocks all but SIGKILL/SIGSTOP).
fn stop(t: Pid) -> Result<(), Errno> {
    ptrace::interrupt(t)?;
    loop {
        match ptrace::wait(t)? {
            WaitStatus::Stopped { event, .. } if event == EVENT_STOP => return Ok(()),
            WaitStatus::Stopped { sig, event: 0 } => ptrace::cont(t, sig)?,
            WaitStatus::Exited(_) | WaitStatus::Killed(_) => return Err(Errno::SRCH),
            _ => return Err(Errno::INVAL),
        }
    }
}
