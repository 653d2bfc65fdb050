//! Taking hold of a task: `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, then waiting
//! until it sits in the interrupt stop, and saving everything we may change
//! (registers, FP/vector state, signal mask) so that it can be put back
//! exactly.

use std::time::{Duration, Instant};

use criu_arch::GpRegs;
use rustix::process::Pid;

use super::error::InfectError;
use super::task_info::{self, TaskStatus};
use super::{SIGTRAP, is_stop_signal};
use crate::sys::ptrace::{self, EVENT_STOP, SigSet, WaitStatus, note, options};

/// How the task was when we seized it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Running (or sleeping): it is resumed when released.
    Running,
    /// In a group stop by this signal (SIGSTOP, SIGTSTP, SIGTTIN or
    /// SIGTTOU, CRIU's `stop_signo`): it is stopped again when released.
    Stopped(i32),
}

impl TaskState {
    pub fn is_stopped(self) -> bool {
        matches!(self, TaskState::Stopped(_))
    }
}

/// The extended register set: the XSAVE area on x86_64, the FP/vector set
/// elsewhere, kept as the kernel returned it so it can be written back as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtRegs {
    /// The regset (ELF note type) this came from.
    pub note: u32,
    /// Its bytes, exactly as long as the kernel filled them.
    pub bytes: Vec<u8>,
    /// The arch's further vector regsets (`criu_arch::VECTOR_REGSETS`,
    /// ppc64's VMX and VSX) as `(note, bytes)`, those the kernel offers.
    pub more: Vec<(u32, Vec<u8>)>,
}

/// A seized, stopped task and the state to restore when it is released.
///
/// Dropping it (or [`Seized::release`]) writes back the original registers
/// and signal mask and detaches, stopping the task again if it was stopped.
#[derive(Debug)]
pub struct Seized {
    pub(super) pid: Pid,
    pub(super) state: TaskState,
    pub(super) regs: GpRegs,
    pub(super) ext_regs: ExtRegs,
    pub(super) sigmask: SigSet,
    /// The kernel's syscall-restart word kept outside the registers
    /// (s390x's `NT_S390_SYSTEM_CALL`; 0 elsewhere), put back with them.
    pub(super) syscall_restart: u32,
    pub(super) exec_start: u64,
    /// A stop signal arrived while our code ran; honour it on release.
    pub(super) stop_on_release: bool,
    /// Other signals that arrived while our code ran, re-sent on release.
    pub(super) deferred_signals: Vec<i32>,
    /// Detached (or the task is gone): nothing left to undo.
    pub(super) released: bool,
}

/// How a process is taken hold of.
#[derive(Clone, Copy, Debug)]
pub struct SeizeOpts<'a> {
    /// How long every thread may take to stop (`--timeout`), for messages.
    pub timeout: Duration,
    /// When every thread must have stopped: `timeout` after freezing the
    /// tree began.
    pub deadline: Instant,
    /// Threads the caller has already `PTRACE_SEIZE`d and interrupted (the
    /// tasks of a freezer cgroup, seized while frozen): only waited for.
    pub attached: &'a [i32],
}

impl SeizeOpts<'static> {
    /// Every thread stops within `timeout` from now; none is attached yet.
    pub fn within(timeout: Duration) -> SeizeOpts<'static> {
        SeizeOpts {
            timeout,
            deadline: Instant::now() + timeout,
            attached: &[],
        }
    }
}

impl SeizeOpts<'_> {
    /// Was `tid` attached by the caller?
    pub(super) fn is_attached(&self, tid: i32) -> bool {
        self.attached.contains(&tid)
    }

    /// `PTRACE_SEIZE` and `PTRACE_INTERRUPT` `tid` (unless the caller did),
    /// then wait for the stop. `EPERM`/`ESRCH` of the seize come back as
    /// [`InfectError::Seize`].
    pub(super) fn stop(&self, tid: Pid) -> Result<TaskState, InfectError> {
        let pid = tid.as_raw_nonzero().get();
        if !self.is_attached(pid) {
            ptrace::seize(tid, options::TRACESYSGOOD).map_err(|source| seize_error(pid, source))?;
            if let Err(e) = ptrace::interrupt(tid) {
                detach_seized(tid);
                return Err(InfectError::ptrace(pid, "INTERRUPT")(e));
            }
        }
        wait_interrupt_stop(tid, self.deadline, self.timeout).inspect_err(|_| detach_seized(tid))
    }
}

/// How long the clean-up of a failed seize waits for the task to stop:
/// one that did not stop for the first interrupt will not for the second.
const DETACH_WAIT: Duration = Duration::from_secs(1);

/// Largest extended register set we read; x86 XSAVE with AMX is ~11 KiB.
const EXT_REGS_MAX: usize = 64 * 1024;

/// Detaches on drop unless disarmed: covers the window between
/// `PTRACE_SEIZE` and a complete [`Seized`].
struct DetachGuard(Option<Pid>);

/// Detach from a seized task in whatever state it is: PTRACE_DETACH works
/// only on a stopped tracee, so one still running (its INTERRUPT failed)
/// is stopped first. Left traced, it would stay our tracee (and its
/// zombie ours to reap) for as long as we run. Best effort: a failure
/// means the task is gone.
pub(super) fn detach_seized(pid: Pid) {
    let _undo = crate::fault::Undo::enter();
    if ptrace::detach(pid, 0).is_ok() {
        return;
    }
    if ptrace::interrupt(pid).is_ok()
        && wait_interrupt_stop(pid, Instant::now() + DETACH_WAIT, DETACH_WAIT).is_ok()
    {
        let _ = ptrace::detach(pid, 0);
    }
}

impl Drop for DetachGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // Nothing of the task was changed yet.
            detach_seized(pid);
        }
    }
}

impl Seized {
    /// Seize task `pid` and stop it (waiting up to [`ptrace::WAIT_BOUND`]).
    /// The task must be single-threaded, alive, not traced by anyone else,
    /// and without a pending SIGTRAP.
    pub fn seize(pid: i32) -> Result<Seized, InfectError> {
        Seized::seize_inner(pid, false, &SeizeOpts::within(ptrace::WAIT_BOUND))
    }

    /// Seize the leader `pid` of a process whose other threads the caller
    /// has already seized ([`super::threads::seize_process`]).
    pub(super) fn seize_multi(pid: i32, opts: &SeizeOpts<'_>) -> Result<Seized, InfectError> {
        Seized::seize_inner(pid, true, opts)
    }

    fn seize_inner(
        pid: i32,
        threads_ok: bool,
        opts: &SeizeOpts<'_>,
    ) -> Result<Seized, InfectError> {
        let check_status = |pid: i32, status: &TaskStatus| {
            if threads_ok {
                check_alive(pid, status)
            } else {
                check_status(pid, status)
            }
        };
        let tid = Pid::from_raw(pid).ok_or(InfectError::Dead { pid })?;
        if !opts.is_attached(pid) {
            let status = TaskStatus::read(pid)?;
            check_status(pid, &status)?;
        }
        let state = opts.stop(tid)?;
        let mut guard = DetachGuard(Some(tid));

        // Read again now that it cannot change under us.
        let status = TaskStatus::read(pid)?;
        check_status(pid, &status)?;
        if status.is_pending(SIGTRAP) {
            return Err(InfectError::PendingSigtrap { pid });
        }
        if status.seccomp != 0 {
            // Injected syscalls must not be filtered.
            ptrace::set_options(tid, options::TRACESYSGOOD | options::SUSPEND_SECCOMP)
                .map_err(InfectError::ptrace(pid, "SETOPTIONS(SUSPEND_SECCOMP)"))?;
        }

        let regs = ptrace::get_gp_regs(tid).map_err(InfectError::ptrace(pid, "GETREGSET"))?;
        let ext_regs = read_ext_regs(tid).map_err(InfectError::ptrace(pid, "GETREGSET(FP)"))?;
        let sigmask = ptrace::get_sigmask(tid).map_err(InfectError::ptrace(pid, "GETSIGMASK"))?;
        let syscall_restart = ptrace::get_syscall_restart(tid)
            .map_err(InfectError::ptrace(pid, "GETREGSET(syscall restart)"))?;
        let exec_start = task_info::exec_start(pid)?;

        guard.0 = None;
        Ok(Seized {
            pid: tid,
            state,
            regs,
            ext_regs,
            sigmask,
            syscall_restart,
            exec_start,
            stop_on_release: false,
            deferred_signals: Vec::new(),
            released: false,
        })
    }

    /// The task's PID.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw_nonzero().get()
    }

    /// Whether it was running or stopped when seized.
    pub fn state(&self) -> TaskState {
        self.state
    }

    /// The general purpose registers exactly as they were at the seize (an
    /// interrupted syscall still shows its `-ERESTART*` code; a dumper applies
    /// `restart_syscall_fixup` to a copy).
    pub fn regs(&self) -> &GpRegs {
        &self.regs
    }

    /// The FP/vector registers as they were at the seize.
    pub fn ext_regs(&self) -> &ExtRegs {
        &self.ext_regs
    }

    /// The blocked-signal mask as it was at the seize.
    pub fn sigmask(&self) -> SigSet {
        self.sigmask
    }

    /// The kernel's syscall-restart word as it was at the seize (s390x's
    /// `NT_S390_SYSTEM_CALL`: instruction length << 16 | number; 0 when
    /// not in a syscall, and always 0 on arches without it).
    pub fn syscall_restart(&self) -> u32 {
        self.syscall_restart
    }

    /// Where injected syscall stubs are placed.
    pub fn exec_start(&self) -> u64 {
        self.exec_start
    }
}

/// Why `PTRACE_SEIZE` of `pid` failed: EPERM of a task someone else
/// traces is said so, by name.
pub(super) fn seize_error(pid: i32, source: rustix::io::Errno) -> InfectError {
    if source == rustix::io::Errno::PERM
        && let Ok(st) = TaskStatus::read(pid)
        && st.tracer != 0
    {
        return InfectError::Traced {
            pid,
            tracer: st.tracer as i32,
        };
    }
    InfectError::Seize { pid, source }
}

fn check_alive(pid: i32, status: &TaskStatus) -> Result<(), InfectError> {
    if matches!(status.state, 'Z' | 'X' | 'x') {
        return Err(InfectError::Dead { pid });
    }
    Ok(())
}

fn check_status(pid: i32, status: &TaskStatus) -> Result<(), InfectError> {
    check_alive(pid, status)?;
    if status.threads > 1 {
        return Err(InfectError::MultiThreaded {
            pid,
            threads: status.threads,
        });
    }
    Ok(())
}

/// Wait for the stop our `PTRACE_INTERRUPT` asked for. A signal that arrives
/// first is delivered (the interrupt stays pending and follows), as CRIU's
/// `compel_wait_task` does. The stop's signal tells a running task
/// (`SIGTRAP`) from one in a group stop (its stop signal). Gives up at
/// `deadline` (`bound` after the wait began, for the message).
pub(super) fn wait_interrupt_stop(
    tid: Pid,
    deadline: Instant,
    bound: Duration,
) -> Result<TaskState, InfectError> {
    let pid = tid.as_raw_nonzero().get();
    loop {
        let status = ptrace::wait_until(tid, deadline).map_err(InfectError::wait(
            pid,
            "stop for our PTRACE_INTERRUPT (is it frozen, or stuck in the kernel?)",
            bound,
        ))?;
        match status {
            WaitStatus::Exited(_) | WaitStatus::Killed(_) => {
                return Err(InfectError::Gone { pid, status });
            }
            WaitStatus::Stopped { sig, event } if event == EVENT_STOP => {
                return Ok(if is_stop_signal(sig) {
                    TaskState::Stopped(sig)
                } else {
                    TaskState::Running
                });
            }
            WaitStatus::Stopped { sig, event: 0 } => {
                // A signal-delivery stop: let the task have its signal.
                ptrace::cont(tid, sig).map_err(InfectError::ptrace(pid, "CONT"))?;
            }
            status => {
                return Err(InfectError::UnexpectedStop {
                    pid,
                    doing: "seizing",
                    status,
                });
            }
        }
    }
}

/// Read the richest FP/vector regset the kernel offers: the XSAVE area where
/// it exists (x86), else the plain FP set. Other arches reject the x86 note
/// with EINVAL, so no per-arch code is needed here. Only that refusal
/// falls back: any other failure is an error, since the plain set would
/// silently lose the vector state.
pub(super) fn read_ext_regs(tid: Pid) -> Result<ExtRegs, rustix::io::Errno> {
    let mut last = rustix::io::Errno::INVAL;
    for note in [note::X86_XSTATE, note::PRFPREG] {
        let mut buf = vec![0u8; EXT_REGS_MAX];
        match ptrace::get_regset(tid, note, &mut buf) {
            Ok(len) => {
                buf.truncate(len);
                return Ok(ExtRegs {
                    note,
                    bytes: buf,
                    more: read_vector_regsets(tid)?,
                });
            }
            Err(e @ (rustix::io::Errno::INVAL | rustix::io::Errno::NODEV)) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The arch's further vector regsets; one the CPU lacks (ENODEV) or the
/// kernel does not know (EINVAL) is left out.
fn read_vector_regsets(tid: Pid) -> Result<Vec<(u32, Vec<u8>)>, rustix::io::Errno> {
    let mut sets = Vec::new();
    for &note in criu_arch::VECTOR_REGSETS {
        if let Some(bytes) = ptrace::get_optional_regset(tid, note, 4096)? {
            sets.push((note, bytes));
        }
    }
    Ok(sets)
}

/// Put an [`ExtRegs`] back (every set is tried; the first failure is
/// reported).
pub(super) fn write_ext_regs(tid: Pid, ext: &ExtRegs) -> Result<(), rustix::io::Errno> {
    let mut result = ptrace::set_regset(tid, ext.note, &ext.bytes);
    for (note, bytes) in &ext.more {
        let r = ptrace::set_regset(tid, *note, bytes);
        result = result.and(r);
    }
    result
}
