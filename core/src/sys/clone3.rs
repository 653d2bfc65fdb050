//! clone3(2): creating processes, optionally with a chosen PID (`set_tid`).
//!
//! Restore recreates every task with the PID it had (`set_tid`, which needs
//! CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the PID namespace); the
//! feature probes need throwaway children to trace.
//!
//! A child made by clone3 without `CLONE_VM` is a copy of this process with
//! only the calling thread. Until it execs or exits it may only do what is
//! async-signal-safe: no allocation, no locks. Hence no general "run this
//! closure in the child" here, only children whose whole life is written
//! below in raw syscalls.

use linux_raw_sys::general as raw;
use rustix::io::Errno;
use rustix::process::Pid;

const _: () = assert!(size_of::<raw::clone_args>() == 88);

/// What a process-creating [`clone3`] call returned.
pub(super) enum Forked {
    Parent(Pid),
    Child,
}

/// Raw clone3 creating a new process (no `CLONE_VM`, no new stack): returns
/// in both parent and child, like fork.
///
/// # Safety
/// In the child only async-signal-safe code may run (see module docs), and
/// it must end with `exit_group`.
pub(super) unsafe fn clone3(args: &raw::clone_args) -> Result<Forked, Errno> {
    // SAFETY: the kernel reads one `clone_args` of the given size; the
    // `set_tid` array it may point to is owned by the caller and outlives the
    // call. The caller upholds the rules for the child.
    let ret = unsafe {
        criu_arch::syscall2(
            criu_arch::nr::CLONE3,
            args as *const raw::clone_args as usize,
            size_of::<raw::clone_args>(),
        )
    };
    match ret {
        0 => Ok(Forked::Child),
        r if r < 0 => Err(Errno::from_raw_os_error(-r as i32)),
        r => Pid::from_raw(r as i32)
            .map(Forked::Parent)
            .ok_or(Errno::INVAL),
    }
}

pub(super) fn fork_args() -> raw::clone_args {
    raw::clone_args {
        flags: 0,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: raw::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    }
}

/// The end of every child here: `exit_group(code)`, never returning.
pub(super) fn child_exit(code: usize) -> ! {
    loop {
        // SAFETY: exit_group ends the process; it takes an integer only.
        unsafe { criu_arch::syscall1(criu_arch::nr::EXIT_GROUP, code) };
    }
}

/// Starts a child that sleeps until it is killed (or traced). The caller
/// owns it: it must kill and reap it.
///
/// The child first makes itself dumpable: a tool run from a binary with
/// file capabilities (`--unprivileged`) is not, and the kernel lets
/// nobody without CAP_SYS_PTRACE trace a task that is not dumpable, not
/// even its parent. Until the child has done so, seizing it fails with
/// `EPERM` (retry).
pub fn spawn_parked_child() -> Result<Pid, Errno> {
    let args = fork_args();
    // SAFETY: the child branch below only makes raw syscalls and never
    // returns.
    match unsafe { clone3(&args) }? {
        Forked::Parent(pid) => Ok(pid),
        Forked::Child => park(),
    }
}

/// A parked child's life: dumpable, then waiting for signals forever.
pub(super) fn park() -> ! {
    loop {
        // SAFETY: integer arguments only (PR_SET_DUMPABLE, 1).
        unsafe { criu_arch::syscall2(criu_arch::nr::PRCTL, PR_SET_DUMPABLE, 1) };
        // SAFETY: ppoll on no fds with no timeout just waits for a
        // signal; all pointers are NULL.
        unsafe { criu_arch::syscall5(criu_arch::nr::PPOLL, 0, 0, 0, 0, 0) };
    }
}

/// A fork (clone3 with only `SIGCHLD`): returns in parent and child.
///
/// # Safety
/// As for `clone3`: the child may only run async-signal-safe code (raw
/// syscalls on memory prepared before the call) and must end with
/// [`child_exit`] or [`park`].
pub(super) unsafe fn fork() -> Result<Forked, Errno> {
    let args = fork_args();
    // SAFETY: forwarded to the caller.
    unsafe { clone3(&args) }
}

const PR_SET_DUMPABLE: usize = linux_raw_sys::prctl::PR_SET_DUMPABLE as usize;

/// `PTRACE_SEIZE` of a child from [`spawn_parked_child`], retrying while it
/// is not dumpable yet (it makes itself so first thing, so this is brief).
pub fn seize_parked_child(pid: Pid) -> Result<(), Errno> {
    let mut seized = super::ptrace::seize(pid, 0);
    for _ in 0..1000 {
        if seized != Err(Errno::PERM) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
        seized = super::ptrace::seize(pid, 0);
    }
    seized
}

/// How a `set_tid` attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTid {
    /// A child was created with exactly the requested PID (and has exited;
    /// the caller reaps it).
    Created(Pid),
    /// That PID is in use.
    Busy,
}

/// Creates a child with PID `tid` in our PID namespace; the child exits at
/// once with status 0 and the caller must reap it. Needs CAP_SYS_ADMIN or
/// CAP_CHECKPOINT_RESTORE (`EPERM` otherwise).
pub fn spawn_exiting_child_with_pid(tid: Pid) -> Result<SetTid, Errno> {
    let tids = [tid.as_raw_nonzero().get()];
    let mut args = fork_args();
    args.set_tid = tids.as_ptr() as u64;
    args.set_tid_size = 1;
    // SAFETY: `tids` outlives the call; the child branch only exits.
    match unsafe { clone3(&args) } {
        Ok(Forked::Parent(pid)) => Ok(SetTid::Created(pid)),
        Ok(Forked::Child) => child_exit(0),
        Err(Errno::EXIST) => Ok(SetTid::Busy),
        Err(e) => Err(e),
    }
}

/// Does the kernel's clone3 know `set_tid`? CRIU's probe: a non-null
/// `set_tid` with `set_tid_size == 0` is rejected with `EINVAL` by kernels
/// that know the field, `E2BIG` by clone3 without it, `ENOSYS` without
/// clone3. No child is created either way.
pub fn set_tid_known() -> Result<bool, Errno> {
    let mut args = fork_args();
    args.set_tid = u64::MAX;
    // SAFETY: with set_tid_size 0 the kernel rejects the call before reading
    // through `set_tid`; should it ever succeed, the child only exits.
    match unsafe { clone3(&args) } {
        Err(Errno::INVAL) => Ok(true),
        Err(Errno::NOSYS) | Err(Errno::TOOBIG) => Ok(false),
        Err(e) => Err(e),
        Ok(Forked::Child) => child_exit(0),
        Ok(Forked::Parent(pid)) => {
            // Unexpected success: reap the child, which exits at once.
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            Err(Errno::INVAL)
        }
    }
}
