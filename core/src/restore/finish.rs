//! The end of a restore (CRIU's `attach_to_tasks`, `catch_tasks`,
//! `finalize_restore` and `finalize_restore_detach`): no restored task may
//! run a single instruction of its own while its bootstrap region is still
//! mapped, or a fork, exec or mmap of it would carry the region along.
//!
//! So every thread of every task is seized while it waits for the tool's
//! go on its futex (it runs restorer code only), then let go with
//! `PTRACE_SYSCALL` and stopped at the exit of its `rt_sigreturn`: there
//! it holds its dumped registers but has not run them yet. Once the whole
//! tree stands there, each leader runs one injected `munmap` of its region
//! (a syscall instruction written into the region itself, stopped at the
//! syscall's exit so nothing runs from the unmapped page), and only then is
//! every thread detached. Any failure on the way is the caller's to turn
//! into killing the whole tree; [`Held::reap_killed`] then collects every
//! traced thread so that nothing stays behind.

use rustix::io::Errno;
use rustix::process::{Pid, Signal};

use super::RestoreError;
use crate::sys::ptrace::{self, EVENT_STOP, SyscallInfo, WaitStatus, options};

/// SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU: a group stop sent by someone else
/// while we hold the task; it is sent again on detach.
fn is_stop_signal(sig: i32) -> bool {
    use linux_raw_sys::general::{SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU};
    [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU].contains(&(sig as u32))
}

/// Enough syscall stops for a thread between its futex and the exit of
/// its `rt_sigreturn`, two a call: futex restart, futex, sigreturn, and
/// under seccomp one `seccomp` call per filter (at most 4096 of the
/// shortest) and the few dozen calls of its credentials, attributes and
/// arch state, which then follow the filters.
const MAX_STOPS: usize = 64 + 2 * 4096;

/// One seized thread.
struct Thread {
    tid: Pid,
    /// A stop signal arrived while we held it.
    stop: bool,
}

/// One task: its leader first, then its other threads.
pub(super) struct Task {
    pid: Pid,
    threads: Vec<Thread>,
    /// Its bootstrap region `[base, base + len)`.
    base: u64,
    len: u64,
    /// The signal to stop it with on detach (it was dumped stopped).
    restop: Option<Signal>,
}

/// Every thread seized so far.
#[derive(Default)]
pub(super) struct Held {
    tasks: Vec<Task>,
}

fn sys(what: &'static str) -> impl Fn(Errno) -> RestoreError {
    move |e| RestoreError::Sys(what, e)
}

/// A failed bounded wait ([`ptrace::wait`]) for `what`.
fn waited(what: &'static str) -> impl Fn(Errno) -> RestoreError {
    move |e| match e {
        Errno::TIMEDOUT => RestoreError::WaitTimeout {
            what,
            secs: ptrace::WAIT_BOUND.as_secs(),
        },
        e => RestoreError::Sys(what, e),
    }
}

fn died(tid: Pid, status: WaitStatus, doing: &str) -> RestoreError {
    RestoreError::Died(format!(
        "thread {} {status:?} while {doing}",
        tid.as_raw_nonzero()
    ))
}

impl Held {
    /// Seize and stop every thread of task `pid` (`tids`: the others),
    /// all of them waiting in the restorer for the go. `seccomp`: the task
    /// installs seccomp state after the go; its filters are suspended
    /// (`PTRACE_O_SUSPEND_SECCOMP`, as CRIU's `attach_to_tasks`) until we
    /// detach, so that they cannot refuse or kill the restorer's last
    /// calls or our injected `munmap`.
    pub fn seize_task(
        &mut self,
        pid: i32,
        tids: &[u32],
        base: u64,
        len: u64,
        restop: Option<Signal>,
        seccomp: bool,
    ) -> Result<(), RestoreError> {
        let pid = Pid::from_raw(pid).ok_or(RestoreError::Sys("pid", Errno::INVAL))?;
        self.tasks.push(Task {
            pid,
            threads: Vec::new(),
            base,
            len,
            restop,
        });
        let task = self.tasks.last_mut().expect("just pushed");
        let all = std::iter::once(Ok(pid)).chain(
            tids.iter()
                .map(|&t| Pid::from_raw(t as i32).ok_or(RestoreError::Sys("tid", Errno::INVAL))),
        );
        for tid in all {
            let tid = tid?;
            // EXITKILL: should the tool die while holding the tree, the
            // tree dies too rather than stay stopped with its regions.
            let suspend = if seccomp { options::SUSPEND_SECCOMP } else { 0 };
            ptrace::seize(tid, options::TRACESYSGOOD | options::EXITKILL | suspend)
                .map_err(sys("PTRACE_SEIZE of a restored thread"))?;
            task.threads.push(Thread { tid, stop: false });
            let th = task.threads.last_mut().expect("just pushed");
            ptrace::interrupt(tid).map_err(sys("PTRACE_INTERRUPT of a restored thread"))?;
            wait_interrupt(th)?;
        }
        Ok(())
    }

    /// Let every thread (told to go meanwhile) run to the exit of its
    /// `rt_sigreturn`, checking that it is the restorer's.
    pub fn run_to_sigreturn(&mut self) -> Result<(), RestoreError> {
        for task in &mut self.tasks {
            let region = task.base..task.base + task.len;
            for th in &mut task.threads {
                let ip = run_to_exit_of(th, criu_arch::nr::RT_SIGRETURN as u64)?.0;
                if !region.contains(&ip) {
                    return Err(RestoreError::Cure(format!(
                        "thread {} called rt_sigreturn at {ip:#x}, outside its restorer",
                        th.tid.as_raw_nonzero()
                    )));
                }
            }
        }
        Ok(())
    }

    /// In every task (all stopped after `rt_sigreturn`), unmap its region.
    pub fn unmap_regions(&mut self) -> Result<(), RestoreError> {
        for task in &mut self.tasks {
            unmap_region(task)?;
        }
        Ok(())
    }

    /// Let every thread go: a task dumped stopped (or stopped by someone
    /// while we held it) gets its stop signal first, so it stops before
    /// running anything.
    /// Threads let go are forgotten; those whose detach failed stay held
    /// for [`Held::reap_killed`] (the caller kills the tree).
    ///
    /// A task told to stop is stopped (every thread of it) when this
    /// returns: the signal is taken on its way back to user space, before
    /// it runs an instruction of its own, but that takes a moment, and
    /// whoever restored it may look at once.
    pub fn detach_all(&mut self) -> Result<(), RestoreError> {
        let mut result = Ok(());
        let mut stopping = Vec::new();
        for task in &mut self.tasks {
            let sig = task
                .restop
                .or_else(|| task.threads.iter().any(|t| t.stop).then_some(Signal::STOP));
            if let Some(sig) = sig {
                let sent = rustix::process::kill_process(task.pid, sig)
                    .map_err(sys("kill(stop signal) of a task dumped stopped"));
                result = result.and(sent);
                stopping.push(task.pid);
            }
            task.threads.retain(|th| match ptrace::detach(th.tid, 0) {
                Ok(()) => false,
                Err(e) => {
                    result =
                        std::mem::replace(&mut result, Ok(())).and(Err(sys("PTRACE_DETACH")(e)));
                    true
                }
            });
        }
        result?;
        stopping.into_iter().try_for_each(wait_stopped)
    }

    /// After the caller killed the tree: wait for every thread we trace
    /// (the others of a task first: its leader is reported only after
    /// them), so none stays a zombie of ours and the root can be reaped.
    ///
    /// They are polled all together, not one after the other: in a pid
    /// namespace of its own, the init's last thread waits in the kernel
    /// until every other task of the namespace is reaped, and those are
    /// ours to reap too.
    pub fn reap_killed(&mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        let mut left: Vec<Pid> = tasks
            .iter()
            .flat_map(|task| task.threads.iter().map(|th| th.tid))
            .collect();
        let deadline = std::time::Instant::now() + ptrace::WAIT_BOUND;
        while !left.is_empty() && std::time::Instant::now() < deadline {
            left.retain(|&tid| match ptrace::try_wait(tid) {
                Ok(Some(WaitStatus::Exited(_) | WaitStatus::Killed(_))) | Err(_) => false,
                Ok(Some(_)) => {
                    let _ = ptrace::cont(tid, 0);
                    true
                }
                Ok(None) => true,
            });
            if !left.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

/// How long a task given its stop signal may take to stop.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Wait until every thread of `pid` is in its group stop (state `T`).
fn wait_stopped(pid: Pid) -> Result<(), RestoreError> {
    let p = pid.as_raw_nonzero().get();
    let end = std::time::Instant::now() + STOP_TIMEOUT;
    loop {
        let states = thread_states(p)
            .map_err(|e| RestoreError::Died(format!("task {p} while it stops: {e}")))?;
        if states.iter().all(|&s| s == 'T') {
            return Ok(());
        }
        if std::time::Instant::now() > end {
            return Err(RestoreError::Died(format!(
                "task {p} was dumped stopped but did not stop within {STOP_TIMEOUT:?} \
                 of its stop signal (thread states {states:?})"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The state letter of every thread of `pid`.
fn thread_states(pid: i32) -> Result<Vec<char>, crate::proc::ProcError> {
    let dir = crate::proc::ProcDir::open(pid)?;
    dir.threads()?
        .into_iter()
        .map(|tid| {
            dir.task(tid)
                .and_then(|t| t.stat())
                .map(|st| st.state as char)
        })
        .collect()
}

/// Wait for the stop our `PTRACE_INTERRUPT` asked for.
fn wait_interrupt(th: &mut Thread) -> Result<(), RestoreError> {
    loop {
        match ptrace::wait(th.tid)
            .map_err(waited("a restored thread to stop for our PTRACE_INTERRUPT"))?
        {
            s @ (WaitStatus::Exited(_) | WaitStatus::Killed(_)) => {
                return Err(died(th.tid, s, "being seized"));
            }
            WaitStatus::Stopped { event, sig } if event == EVENT_STOP => {
                th.stop |= is_stop_signal(sig);
                return Ok(());
            }
            WaitStatus::Stopped { sig, event: 0 } => {
                // Everything else is blocked in the restorer: only a stop
                // signal gets here; it is sent again on detach.
                th.stop |= is_stop_signal(sig);
                let pass = if is_stop_signal(sig) { 0 } else { sig };
                ptrace::cont(th.tid, pass).map_err(sys("PTRACE_CONT"))?;
            }
            s => {
                return Err(RestoreError::Cure(format!(
                    "unexpected stop {s:?} of thread {} while seizing it",
                    th.tid.as_raw_nonzero()
                )));
            }
        }
    }
}

/// Resume `th` with `PTRACE_SYSCALL` until it leaves syscall `nr`: the
/// address of its entry and the syscall's result.
fn run_to_exit_of(th: &mut Thread, nr: u64) -> Result<(u64, i64), RestoreError> {
    let mut entered = None;
    for _ in 0..MAX_STOPS {
        ptrace::cont_syscall(th.tid, 0).map_err(sys("PTRACE_SYSCALL"))?;
        match ptrace::wait(th.tid).map_err(waited(
            "a restored thread's next syscall stop on its way out of the restorer",
        ))? {
            s @ (WaitStatus::Exited(_) | WaitStatus::Killed(_)) => {
                return Err(died(th.tid, s, "leaving the restorer"));
            }
            WaitStatus::SyscallStop => {
                match ptrace::get_syscall_info(th.tid).map_err(sys("PTRACE_GET_SYSCALL_INFO"))? {
                    // A restorer step failed after the go: the thread
                    // published why and ends its task.
                    SyscallInfo::Entry { nr: n, .. } if n == criu_arch::nr::EXIT_GROUP as u64 => {
                        return Err(RestoreError::Died(format!(
                            "thread {} ended its task in the restorer (exit_group)",
                            th.tid.as_raw_nonzero()
                        )));
                    }
                    SyscallInfo::Entry { nr: n, ip } => entered = (n == nr).then_some(ip),
                    SyscallInfo::Exit { rval } => {
                        if let Some(ip) = entered {
                            return Ok((ip, rval));
                        }
                    }
                    SyscallInfo::Other => {}
                }
            }
            // A group stop or a stop signal from someone else: noted and
            // passed over (every other signal is blocked here).
            WaitStatus::Stopped { sig, .. } => th.stop |= is_stop_signal(sig),
        }
    }
    Err(RestoreError::Cure(format!(
        "thread {} did not reach the exit of syscall {nr}",
        th.tid.as_raw_nonzero()
    )))
}

/// Unmap the region of a task stopped after `rt_sigreturn`: its leader
/// runs `munmap` from a syscall instruction written at the region's start
/// (no thread runs restorer code any more), with every signal blocked so
/// that none is delivered on our registers; then its dumped registers and
/// signal mask are put back.
fn unmap_region(task: &mut Task) -> Result<(), RestoreError> {
    let th = task
        .threads
        .first_mut()
        .ok_or(RestoreError::Sys("leader", Errno::SRCH))?;
    let tid = th.tid;
    let saved = ptrace::get_gp_regs(tid).map_err(sys("PTRACE_GETREGSET"))?;
    let mask = ptrace::get_sigmask(tid).map_err(sys("PTRACE_GETSIGMASK"))?;
    ptrace::set_sigmask(tid, !0).map_err(sys("PTRACE_SETSIGMASK"))?;
    ptrace::poke_data(tid, task.base, u64::from_ne_bytes(criu_arch::INJECT_CODE))
        .map_err(sys("PTRACE_POKEDATA"))?;
    let mut regs = saved;
    regs.set_pc(task.base);
    regs.set_syscall(
        criu_arch::nr::MUNMAP as u64,
        [task.base, task.len, 0, 0, 0, 0],
    );
    ptrace::set_gp_regs(tid, &regs).map_err(sys("PTRACE_SETREGSET"))?;
    let (_, rval) = run_to_exit_of(th, criu_arch::nr::MUNMAP as u64)?;
    ptrace::set_gp_regs(tid, &saved).map_err(sys("PTRACE_SETREGSET"))?;
    ptrace::set_sigmask(tid, mask).map_err(sys("PTRACE_SETSIGMASK"))?;
    if rval < 0 {
        return Err(RestoreError::Cure(format!(
            "munmap of the restorer in task {}: {}",
            tid.as_raw_nonzero(),
            Errno::from_raw_os_error(-rval as i32)
        )));
    }
    Ok(())
}
