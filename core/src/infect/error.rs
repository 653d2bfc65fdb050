//! What can go wrong while infecting a task, with enough context to act on.

use rustix::io::Errno;

use crate::sys::ptrace::{Signal, WaitStatus};

/// An infection step failed. Whatever the step, the task has been (or will be,
/// when the owning handle is dropped) restored and released as it was.
#[derive(Debug, thiserror::Error)]
pub enum InfectError {
    /// `PTRACE_SEIZE` refused: no permission, already traced, or no such task.
    #[error("cannot seize task {pid}: {source}")]
    Seize { pid: i32, source: Errno },

    /// Traced by someone else (a debugger, or a task of the tree): only
    /// one tracer at a time, and a tracer's hold cannot be restored.
    #[error(
        "task {pid} is traced by {tracer} (ptrace): a traced task cannot be dumped \
         (detach the tracer first)"
    )]
    Traced { pid: i32, tracer: i32 },

    /// The task is a zombie or exited before we could stop it.
    #[error("task {pid} is dead or a zombie")]
    Dead { pid: i32 },

    /// The task exited or was killed while we held it.
    #[error("task {pid} went away while infected: {status:?}")]
    Gone { pid: i32, status: WaitStatus },

    /// CRIU refuses these too (upstream issue 1429): our own traps would be
    /// indistinguishable from the pending one.
    #[error("task {pid} has a pending SIGTRAP; refusing to infect it")]
    PendingSigtrap { pid: i32 },

    /// Injected code runs at the start of the first executable mapping; other
    /// threads could run into it, and only single-threaded tasks are handled.
    #[error("task {pid} has {threads} threads; only single-threaded tasks can be infected")]
    MultiThreaded { pid: i32, threads: u32 },

    /// A ptrace request failed.
    #[error("ptrace {op} on task {pid} failed: {source}")]
    Ptrace {
        pid: i32,
        op: &'static str,
        source: Errno,
    },

    /// The task neither stopped nor ended within the bound of a wait
    /// (a frozen cgroup, a task stuck in the kernel).
    #[error("task {pid} did not {what} within {secs} s")]
    Timeout {
        pid: i32,
        what: &'static str,
        secs: u64,
    },

    /// The task stopped in a way the current step did not expect.
    #[error("task {pid} stopped unexpectedly while {doing}: {status:?}")]
    UnexpectedStop {
        pid: i32,
        doing: &'static str,
        status: WaitStatus,
    },

    /// Injected code (syscall stub or parasite) took a fault.
    #[error("task {pid} got signal {sig} at pc {pc:#x} while {doing}")]
    Fault {
        pid: i32,
        sig: Signal,
        pc: u64,
        doing: &'static str,
    },

    /// The task trapped, but not where our code puts its trap.
    #[error("task {pid} trapped at pc {pc:#x}, expected {expected:#x} while {doing}")]
    WrongTrap {
        pid: i32,
        pc: u64,
        expected: u64,
        doing: &'static str,
    },

    /// Reading a /proc file of the task failed.
    #[error("/proc/{pid}/{file}: {source}")]
    Proc {
        pid: i32,
        file: &'static str,
        source: std::io::Error,
    },

    /// The task's /proc status is malformed.
    #[error("/proc/{pid}/status: {source}")]
    Status { pid: i32, source: StatusError },

    /// New threads kept appearing while the task's threads were seized.
    #[error("/proc/{pid}/task: threads keep appearing while seizing")]
    ThreadsKeepAppearing { pid: i32 },

    /// No executable mapping to place the syscall stub in.
    #[error("task {pid} has no executable mapping to inject code into")]
    NoExecArea { pid: i32 },

    /// The task may not make memory executable (`mprotect` adding
    /// `PROT_EXEC` said `EACCES`): the parasite cannot run in it.
    #[error(
        "task {pid} refuses to make memory executable (mprotect(PROT_EXEC): permission \
         denied): it has memory-deny-write-execute set (PR_SET_MDWE), or a security module \
         forbids it; the parasite cannot run in it, so it cannot be dumped"
    )]
    ExecDenied { pid: i32 },

    /// A syscall injected into the task returned an error.
    #[error("injected {name} in task {pid} failed: {errno}")]
    RemoteSyscall {
        pid: i32,
        name: &'static str,
        errno: Errno,
    },

    /// A syscall in our own process failed while setting up the shared area.
    #[error("{op} failed: {source}")]
    Local { op: &'static str, source: Errno },

    /// The blob could not be placed in the shared area.
    #[error("placing the parasite: {0}")]
    Blob(#[from] crate::blob::BlobError),

    /// The parasite daemon misbehaved (no connection, bad answer, timeout).
    #[error("parasite daemon in task {pid}: {reason}")]
    Daemon { pid: i32, reason: String },

    /// A parasite command failed inside the task.
    #[error("parasite command {cmd} in task {pid} failed: {errno}")]
    Command { pid: i32, cmd: u32, errno: Errno },

    /// The blob, its arguments and stacks do not fit the shared area.
    #[error("parasite area layout: {0}")]
    Layout(String),
}

impl InfectError {
    /// Shorthand for a failed ptrace request.
    pub(crate) fn ptrace(pid: i32, op: &'static str) -> impl FnOnce(Errno) -> InfectError {
        move |source| InfectError::Ptrace { pid, op, source }
    }

    /// Shorthand for a failed wait for the task, which waited `bound` for
    /// it to `what` (`"stop for our PTRACE_INTERRUPT"`): a wait that ran
    /// out says so and what it waited for.
    pub(crate) fn wait(
        pid: i32,
        what: &'static str,
        bound: std::time::Duration,
    ) -> impl FnOnce(Errno) -> InfectError {
        move |source| match source {
            Errno::TIMEDOUT => InfectError::Timeout {
                pid,
                what,
                secs: bound.as_secs().max(1),
            },
            source => InfectError::Ptrace {
                pid,
                op: "wait4",
                source,
            },
        }
    }
}

/// Why the text of `/proc/PID/status` does not parse.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("bad {key} value {value:?}: {source}")]
    Value {
        key: String,
        value: String,
        source: std::num::ParseIntError,
    },
    #[error("empty State")]
    EmptyState,
    #[error("no State line")]
    NoState,
}
