//! Probes on child processes: ptrace seize and interrupt, pending-signal
//! peeking, seccomp suspension, clone3 with `set_tid`, rseq configuration,
//! hardware breakpoints.

use rustix::io::Errno;
use rustix::process::{Pid, Signal};

use super::procfs::strerror;
use super::{CheckResult, KernelFeatures, Problem, problem};
use crate::sys::clone3::{self, SetTid};
use crate::sys::ptrace::{self, SigInfo, WaitStatus};

/// A throwaway child of ours, killed and reaped when dropped.
struct Child {
    pid: Pid,
}

impl Child {
    fn spawn() -> Result<Child, Problem> {
        clone3::spawn_parked_child()
            .map(|pid| Child { pid })
            .map_err(|e| problem!(Error, "Can't fork a child for the check: {}", strerror(e)))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(self.pid, Signal::KILL);
        // Reap it (a traced child reports its death like any other).
        while let Ok(status) = ptrace::wait(self.pid) {
            if matches!(status, WaitStatus::Exited(_) | WaitStatus::Killed(_)) {
                break;
            }
        }
    }
}

/// A child seized with `PTRACE_SEIZE` and stopped with `PTRACE_INTERRUPT`,
/// as dump stops every task.
fn seized_child() -> Result<Child, Problem> {
    seize_and_stop(Child::spawn()?)
}

fn seize_and_stop(child: Child) -> Result<Child, Problem> {
    clone3::seize_parked_child(child.pid)
        .map_err(|e| problem!(Error, "Unable to ptrace the child: {}", strerror(e)))?;
    ptrace::interrupt(child.pid)
        .map_err(|e| problem!(Error, "Unable to interrupt the child: {}", strerror(e)))?;
    match ptrace::wait(child.pid) {
        Ok(WaitStatus::Stopped { event, .. }) if event == ptrace::EVENT_STOP => Ok(child),
        Ok(other) => Err(problem!(
            Error,
            "The seized child stopped unexpectedly: {other:?}"
        )),
        Err(e) => Err(problem!(
            Error,
            "Can't wait for the seized child: {}",
            strerror(e)
        )),
    }
}

pub(super) fn check_ptrace_seize(_: &KernelFeatures) -> CheckResult {
    seized_child().map(drop)
}

pub(super) fn check_ptrace_peeksiginfo(_: &KernelFeatures) -> CheckResult {
    let child = seized_child()?;
    let mut buf = [SigInfo::zeroed(); 1];
    let mut result = Ok(());
    if let Err(e) = ptrace::peek_siginfo(child.pid, 0, false, &mut buf) {
        result = Err(problem!(
            Error,
            "Unable to dump pending signals: {}",
            strerror(e)
        ));
    }
    if let Err(e) = ptrace::get_sigmask(child.pid) {
        let p = problem!(
            Error,
            "Unable to dump signal blocking mask: {}",
            strerror(e)
        );
        match &result {
            Ok(()) => result = Err(p),
            Err(_) => p.report(),
        }
    }
    result
}

pub(super) fn check_seccomp_suspend(_: &KernelFeatures) -> CheckResult {
    let child = seized_child()?;
    match ptrace::set_options(child.pid, ptrace::options::SUSPEND_SECCOMP) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL) => Err(problem!(
            Error,
            "Kernel doesn't support PTRACE_O_SUSPEND_SECCOMP"
        )),
        Err(e) => Err(problem!(Error, "couldn't suspend seccomp: {}", strerror(e))),
    }
}

pub(super) fn probe_clone3_set_tid() -> bool {
    clone3::set_tid_known().unwrap_or_else(|e| {
        crate::pr_warn!("Unexpected error from clone3: {}", strerror(e));
        false
    })
}

/// The kernel part: clone3 knows `set_tid` (no privilege needed to tell).
pub(super) fn check_clone3(k: &KernelFeatures) -> CheckResult {
    if !k.clone3_set_tid {
        return Err(problem!(Error, "clone3() with set_tid not supported"));
    }
    Ok(())
}

fn read_number(path: &str) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The whole feature: actually create a child with a PID we chose (a free
/// one a little above the last PID handed out), which also needs
/// CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE.
pub(super) fn check_clone3_set_tid(k: &KernelFeatures) -> CheckResult {
    check_clone3(k).map_err(|p| Problem {
        level: crate::log::Level::Warn,
        ..p
    })?;
    let last = read_number("/proc/sys/kernel/ns_last_pid").unwrap_or(300);
    let max = read_number("/proc/sys/kernel/pid_max").unwrap_or(32768);
    for step in 1..=64 {
        let candidate = (last + 97 * step) % max;
        let Some(tid) = Pid::from_raw(candidate).filter(|_| candidate > 300) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{candidate}")).exists() {
            continue;
        }
        match clone3::spawn_exiting_child_with_pid(tid) {
            Ok(SetTid::Created(pid)) => {
                let _ = ptrace::wait(pid);
                if pid != tid {
                    return Err(problem!(
                        Warn,
                        "clone3() with set_tid not supported: asked for pid {candidate}, got {}",
                        pid.as_raw_nonzero()
                    ));
                }
                crate::pr_debug!("clone3() created a child with pid {candidate}");
                return Ok(());
            }
            Ok(SetTid::Busy) => continue,
            Err(Errno::PERM) => {
                return Err(problem!(
                    Warn,
                    "clone3() with set_tid not supported: Operation not permitted \
                     (needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE)"
                ));
            }
            Err(e) => {
                return Err(problem!(
                    Warn,
                    "clone3() with set_tid not supported: {}",
                    strerror(e)
                ));
            }
        }
    }
    Err(problem!(
        Warn,
        "clone3() with set_tid: no free pid found to try"
    ))
}

/// CRIU's probe: `PTRACE_GET_RSEQ_CONFIGURATION` on a stopped child
/// answers with the whole structure and no flags set.
pub(super) fn probe_get_rseq_conf() -> bool {
    let Ok(child) = seized_child() else {
        return false;
    };
    match ptrace::get_rseq_config(child.pid) {
        Ok(conf) if conf.flags == 0 => true,
        Ok(_) => {
            crate::pr_err!("ptrace(PTRACE_GET_RSEQ_CONFIGURATION): rseq.flags != 0");
            false
        }
        Err(e) => {
            crate::pr_info!("ptrace(PTRACE_GET_RSEQ_CONFIGURATION) is not supported: {e}");
            false
        }
    }
}

pub(super) fn check_get_rseq_conf(k: &KernelFeatures) -> CheckResult {
    if !k.ptrace_get_rseq_conf {
        return Err(problem!(
            Warn,
            "ptrace(PTRACE_GET_RSEQ_CONFIGURATION) isn't supported. C/R of processes which are \
             using rseq() won't work."
        ));
    }
    Ok(())
}

/// A hardware breakpoint can be armed in a stopped child (x86 debug
/// registers, arm64 `NT_ARM_HW_BREAK` slots; see
/// [`ptrace::hw_breakpoint_works`]). The address is any user address: the
/// breakpoint is disarmed before the child runs again.
pub(super) fn probe_breakpoints() -> bool {
    let Ok(child) = seized_child() else {
        return false;
    };
    ptrace::hw_breakpoint_works(child.pid, 0x10000).unwrap_or_else(|e| {
        crate::pr_info!("Hardware breakpoints can't be set: {e}");
        false
    })
}

pub(super) fn check_breakpoints(k: &KernelFeatures) -> CheckResult {
    if !k.breakpoints {
        return Err(problem!(Warn, "Hardware breakpoints don't seem to work"));
    }
    Ok(())
}

/// CRIU's `seccomp_filters`: the seccomp filter of a traced child can be
/// read back (`PTRACE_SECCOMP_GET_FILTER`), as dump reads every task's.
pub(super) fn check_seccomp_filters(_: &KernelFeatures) -> CheckResult {
    let pid = crate::sys::probe_child::spawn_parked_child_with_seccomp()
        .map_err(|e| problem!(Error, "Can't fork a child for the check: {}", strerror(e)))?;
    let child = seize_and_stop(Child { pid })?;
    ptrace::seccomp_filter_len(child.pid, 0)
        .map(drop)
        .map_err(|e| {
            problem!(
                Error,
                "Dumping seccomp filters not supported: {}",
                strerror(e)
            )
        })
}
