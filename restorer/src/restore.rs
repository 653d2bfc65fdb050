//! `RESTORE`: fork the task, then rebuild it from [`RestoreArgs`].
//!
//! Runs in three places, in order:
//! 1. [`start`], in the tool (on the tool's stack): `clone3`, then return the
//!    child's PID to the tool.
//! 2. The child, still on its copy of the tool's stack: session, fds, fs,
//!    then a signal to itself whose handler runs on the alternate stack in the
//!    bootstrap region. That is how it changes stacks without arch code.
//! 3. [`on_own_stack`], the handler: everything that unmaps the tool, the
//!    other threads (module `threads`, each ending in its own
//!    `rt_sigreturn`), then `rt_sigreturn` on the frame core built from
//!    the dumped registers.
//!
//! Every system call result is checked; a failure is published in
//! `args.status` and the child calls `exit_group(1)`: it never spins.
//! Arrays in the args are read through raw pointers with their lengths; the
//! tool placed them all inside the bootstrap region.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use criu_arch::{
    KSigaction, SA_ONSTACK, SA_RESTORER, SA_SIGINFO, StackT, set_thread_pointer, sigreturn,
};
use criu_blob_rt::sys;

use crate::abi::{self, Array, RestoreArgs};

mod creds;
mod mem;
mod seccomp;
mod state;
mod threads;
mod tree;

use creds::creds;
use mem::{
    await_copy, flush_patches, map_vmas, mark_vdso, offer_copy, patch_code, protect, read_pages,
    remap_all, set_mm, unmap, unregister_rseq,
};
use state::{
    arch_syscalls, attrs, close_fds, itimers, posix_timers, proc_attrs, register_rseq, rlimits,
    sigactions, signals, task,
};

/// The args of the running restore, for the signal handler and the threads
/// (in `.bss`).
pub(crate) static ARGS: AtomicUsize = AtomicUsize::new(0);

pub(crate) const MAP_FIXED: usize = criu_arch::kernel::general::MAP_FIXED as usize;
/// `clone3` flag of `--restore-sibling` (the root's parent is ours).
const CLONE_PARENT: u64 = criu_arch::kernel::general::CLONE_PARENT as u64;
pub(crate) const MREMAP_MAYMOVE: usize = criu_arch::kernel::general::MREMAP_MAYMOVE as usize;
pub(crate) const MREMAP_FIXED: usize = criu_arch::kernel::general::MREMAP_FIXED as usize;
pub(crate) const PR_SET_MM: usize = criu_arch::kernel::prctl::PR_SET_MM as usize;
pub(crate) const PR_SET_MM_MAP: usize = criu_arch::kernel::prctl::PR_SET_MM_MAP as usize;
pub(crate) const EINTR: isize = -(criu_arch::kernel::errno::EINTR as isize);

/// `struct clone_args` (the fields of clone3's first version).
#[repr(C)]
pub(crate) struct CloneArgs {
    pub(crate) flags: u64,
    pub(crate) pidfd: u64,
    pub(crate) child_tid: u64,
    pub(crate) parent_tid: u64,
    pub(crate) exit_signal: u64,
    pub(crate) stack: u64,
    pub(crate) stack_size: u64,
    pub(crate) tls: u64,
    pub(crate) set_tid: u64,
    pub(crate) set_tid_size: u64,
    pub(crate) cgroup: u64,
}

/// Failure of a stage: (errno, item index).
pub(crate) type Fail = (isize, u32);

/// Turns a raw syscall result into a `Result` for item `index`.
pub(crate) fn check(ret: isize, index: u32) -> Result<isize, Fail> {
    if ret < 0 { Err((ret, index)) } else { Ok(ret) }
}

/// The elements of an [`Array`] as a slice.
///
/// # Safety
/// The tool placed `len` valid `T`s at `addr` inside the bootstrap region.
pub(crate) unsafe fn items<T>(a: &Array) -> &'static [T] {
    if a.len == 0 || a.addr == 0 {
        return &[];
    }
    // SAFETY: per the caller's contract.
    unsafe { core::slice::from_raw_parts(a.addr as usize as *const T, a.len as usize) }
}

/// Tool side: create the child. Returns its PID or `-errno`.
pub fn start(args: &mut RestoreArgs) -> isize {
    ARGS.store(args as *mut RestoreArgs as usize, Ordering::Release);
    let tid = [args.pid];
    let ca = CloneArgs {
        flags: args.start_flags,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        // clone3 refuses an exit signal with CLONE_PARENT: the child then
        // gets the tool's own (SIGCHLD for its parent, the new parent).
        exit_signal: if args.start_flags & CLONE_PARENT != 0 {
            0
        } else {
            17 // SIGCHLD
        },
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: if args.pid != 0 {
            tid.as_ptr() as u64
        } else {
            0
        },
        set_tid_size: if args.pid != 0 { 1 } else { 0 },
        cgroup: 0,
    };
    // SAFETY: clone3 reads `ca` and `tid`, both live; without CLONE_VM the
    // child gets a copy of this address space and runs only blob code.
    let ret = unsafe {
        sys::clone3(
            &ca as *const CloneArgs as usize,
            core::mem::size_of::<CloneArgs>(),
        )
    };
    if ret != 0 {
        return ret;
    }
    child(args)
}

/// A task of a tree, just forked by its parent's restorer: restore it
/// from its own args (this code is its own region's copy of the blob).
pub fn start_child(args: &mut RestoreArgs) -> isize {
    ARGS.store(args as *mut RestoreArgs as usize, Ordering::Release);
    child(args)
}

/// Publish a failure and end the child.
pub(crate) fn fail(args: &mut RestoreArgs, stage: u32, (err, index): Fail) -> ! {
    args.status.stage = stage;
    args.status.errno = (-err) as i32;
    args.status.index = index;
    publish(args, abi::STATE_FAILED);
    loop {
        // SAFETY: exit_group takes an integer and ends the process.
        unsafe { sys::exit_group(1) };
    }
}

pub(crate) fn publish(args: &mut RestoreArgs, state: u32) {
    // SAFETY: `state` is a naturally aligned u32 inside the shared region.
    let word = unsafe { AtomicU32::from_ptr(&mut args.status.state) };
    word.store(state, Ordering::Release);
}

/// Wait until the tool sets `status.resume` (a futex word in the shared
/// region; signals stay blocked until the final sigreturn, so nothing
/// interrupts this but the tool).
pub(crate) fn wait_resume(args: &mut RestoreArgs) {
    const FUTEX_WAIT: usize = criu_arch::kernel::general::FUTEX_WAIT as usize;
    // SAFETY: `resume` is a naturally aligned u32 inside the shared region.
    let word = unsafe { AtomicU32::from_ptr(&mut args.status.resume) };
    while word.load(Ordering::Acquire) == 0 {
        // SAFETY: waits while the word is 0; the address is valid and
        // shared with the tool (not FUTEX_PRIVATE: two processes use it).
        unsafe { sys::futex(word.as_ptr() as usize, FUTEX_WAIT, 0, 0) };
    }
}

/// A root made in new UTS, IPC or user namespaces waits until the tool
/// has filled them (`status.ns_ready`: a user namespace's maps written),
/// before its children exist, it sets any credential or any task
/// attaches a SysV segment.
fn wait_ns_ready(args: &mut RestoreArgs) {
    const FUTEX_WAIT: usize = criu_arch::kernel::general::FUTEX_WAIT as usize;
    const NS: u64 = (criu_arch::kernel::general::CLONE_NEWIPC
        | criu_arch::kernel::general::CLONE_NEWUTS
        | criu_arch::kernel::general::CLONE_NEWUSER) as u64;
    if args.start_flags & NS == 0 {
        return;
    }
    // SAFETY: `ns_ready` is a naturally aligned u32 inside the shared region.
    let word = unsafe { AtomicU32::from_ptr(&mut args.status.ns_ready) };
    while word.load(Ordering::Acquire) == 0 {
        // SAFETY: waits while the word is 0; the address is valid and
        // shared with the tool (not FUTEX_PRIVATE: two processes use it).
        unsafe { sys::futex(word.as_ptr() as usize, FUTEX_WAIT, 0, 0) };
    }
}

/// Record the stage about to run (volatile: the tool reads it from the
/// shared region after a crash, so the store must not be merged away).
fn set_stage(args: &mut RestoreArgs, stage: u32) {
    // SAFETY: a valid, aligned field of the live args.
    unsafe { core::ptr::write_volatile(&mut args.status.stage, stage) };
}

/// Run one stage; on error report it and exit.
macro_rules! stage {
    ($args:expr, $stage:expr, $body:expr) => {{
        set_stage($args, $stage);
        if $args.fault_stage == $stage {
            fail($args, $stage, (-125, u32::MAX)); // ECANCELED, injected
        }
        if let Err(e) = $body {
            fail($args, $stage, e);
        }
    }};
}

/// Child, on its copy of the tool's stack.
fn child(args: &mut RestoreArgs) -> isize {
    // SAFETY: `created` is a naturally aligned u32 inside the shared region.
    unsafe { AtomicU32::from_ptr(&mut args.status.created) }.store(1, Ordering::Release);
    stage!(args, abi::STAGE_FDS, take_tool_fds(args));
    stage!(args, abi::STAGE_CGROUPS, join_cgroups(args));
    wait_ns_ready(args);
    stage!(args, abi::STAGE_PREMAP, mem::premap(args));
    stage!(args, abi::STAGE_SESSION, tree::session(args));
    stage!(args, abi::STAGE_PROC_ATTRS, proc_attrs(&args.attrs));
    stage!(args, abi::STAGE_FDS, move_fds(args));
    stage!(args, abi::STAGE_FS, fs(args));
    stage!(args, abi::STAGE_SWITCH_STACK, switch_stack(args));
    // The handler never returns; reaching this means the signal was lost.
    fail(args, abi::STAGE_SWITCH_STACK, (-4, 0))
}

pub(crate) fn session(args: &RestoreArgs) -> Result<(), Fail> {
    if args.setsid != 0 {
        // SAFETY: setsid takes no arguments.
        check(unsafe { sys::setsid() }, 0)?;
    }
    if args.pgid != 0 {
        // SAFETY: integer arguments only.
        check(unsafe { sys::setpgid(0, args.pgid as usize) }, 1)?;
    }
    Ok(())
}

/// Into the task's cgroups, before it maps and fills any memory and
/// forks its children: writing `0` into `cgroup.procs` moves the writer's
/// whole thread group (v1 and v2 alike). A root task with its own cgroup
/// namespace first joins the namespace's roots and unshares it there
/// (its children, forked later, inherit it).
fn join_cgroups(args: &RestoreArgs) -> Result<(), Fail> {
    const SELF: &[u8] = b"0";
    const CLONE_NEWCGROUP: usize = criu_arch::kernel::general::CLONE_NEWCGROUP as usize;
    let join = |fd: i32, i: usize| {
        check(
            // SAFETY: SELF is a live one-byte buffer in the blob.
            unsafe { sys::write(fd as usize, SELF.as_ptr() as usize, SELF.len()) },
            i as u32,
        )
    };
    // SAFETY: the tool filled the lists inside the bootstrap region.
    let (ns, fds) = unsafe { (items::<i32>(&args.cgns_fds), items::<i32>(&args.cgroup_fds)) };
    for (i, &fd) in ns.iter().enumerate() {
        join(fd, i)?;
    }
    if !ns.is_empty() {
        // SAFETY: integer arguments only.
        check(unsafe { sys::unshare(CLONE_NEWCGROUP) }, ns.len() as u32)?;
    }
    let first = if ns.is_empty() { 0 } else { ns.len() + 1 };
    for (i, &fd) in fds.iter().enumerate() {
        join(fd, first + i)?;
    }
    Ok(())
}

/// `pull` (see the args): keep of the tool's fds only those this task
/// (and the tasks sharing its table) use, before it forks its children,
/// who would otherwise copy them all. A kernel without `pidfd_getfd`, or
/// one that does not let us take the tool's files, leaves the inherited
/// fds as they are (what a task without `pull` does).
fn take_tool_fds(args: &RestoreArgs) -> Result<(), Fail> {
    const O_CLOEXEC: usize = criu_arch::kernel::general::O_CLOEXEC as usize;
    if args.pull == 0 || args.fd_table == abi::FD_TABLE_SHARED {
        return Ok(());
    }
    let pidfd = args.tool_pidfd as usize;
    // SAFETY: integer arguments only.
    let probe = unsafe { sys::pidfd_getfd(pidfd, pidfd, 0) };
    if probe < 0 {
        return Ok(());
    }
    // SAFETY: integer arguments only.
    unsafe { sys::close(probe as usize) };
    let from = args.tool_fds_from as usize;
    if pidfd > from {
        check(
            // SAFETY: integer arguments only.
            unsafe { sys::close_range(from, pidfd - 1, 0) },
            u32::MAX,
        )?;
    }
    check(
        // SAFETY: integer arguments only.
        unsafe { sys::close_range(pidfd + 1, u32::MAX as usize, 0) },
        u32::MAX,
    )?;
    // SAFETY: the tool filled the list inside the bootstrap region.
    for (i, &fd) in unsafe { items::<i32>(&args.pull_fds) }.iter().enumerate() {
        let got = check(
            // SAFETY: the tool filled the list.
            unsafe { sys::pidfd_getfd(pidfd, fd as usize, 0) },
            i as u32,
        )?;
        if got != fd as isize {
            // SAFETY: integer arguments only.
            let moved = unsafe { sys::dup3(got as usize, fd as usize, O_CLOEXEC) };
            // SAFETY: integer arguments only.
            unsafe { sys::close(got as usize) };
            check(moved, i as u32)?;
        }
    }
    Ok(())
}

fn move_fds(args: &RestoreArgs) -> Result<(), Fail> {
    // A table shared with the parent gets its fds from its owner.
    if args.fd_table == abi::FD_TABLE_SHARED {
        return Ok(());
    }
    // SAFETY: the tool filled `fd_moves`.
    for (i, m) in unsafe { items::<abi::FdMove>(&args.fd_moves) }
        .iter()
        .enumerate()
    {
        if m.from != m.to {
            check(
                // SAFETY: integer arguments only.
                unsafe { sys::dup3(m.from as usize, m.to as usize, m.flags as usize) },
                i as u32,
            )?;
        }
    }
    Ok(())
}

fn fs(args: &RestoreArgs) -> Result<(), Fail> {
    static DOT: [u8; 2] = *b".\0";
    if args.root_fd >= 0 {
        // SAFETY: integer argument only.
        check(unsafe { sys::fchdir(args.root_fd as usize) }, 0)?;
        // SAFETY: integer argument; then a NUL-terminated static path.
        check(unsafe { sys::chroot(DOT.as_ptr() as usize) }, 0)?;
    }
    if args.cwd_fd >= 0 {
        // SAFETY: integer argument.
        check(unsafe { sys::fchdir(args.cwd_fd as usize) }, 1)?;
    }
    if args.umask != u32::MAX {
        // SAFETY: integer argument; umask cannot fail.
        unsafe { sys::umask(args.umask as usize) };
    }
    Ok(())
}

/// Install [`on_own_stack`] on the alternate stack and signal ourselves.
fn switch_stack(args: &RestoreArgs) -> Result<(), Fail> {
    let ss = StackT {
        sp: args.stack.start,
        flags: 0,
        _pad: 0,
        size: args.stack.end - args.stack.start,
    };
    check(
        // SAFETY: `ss` is a live stack_t; the old one is not wanted.
        unsafe { sys::sigaltstack(&ss as *const StackT as usize, 0) },
        0,
    )?;
    let act = KSigaction {
        handler: on_own_stack as *const () as usize as u64,
        flags: SA_ONSTACK | SA_SIGINFO | SA_RESTORER,
        restorer: criu_arch::restore_rt as *const () as usize as u64,
        mask: u64::MAX,
    };
    let sig = args.switch_signal as usize;
    check(
        // SAFETY: `act` is a live kernel sigaction of the size given.
        unsafe { sys::rt_sigaction(sig, &act as *const KSigaction as usize, 0, 8) },
        1,
    )?;
    let set: u64 = 1 << (sig - 1);
    check(
        // SAFETY: `set` is a live 8-byte signal set.
        unsafe { sys::rt_sigprocmask(criu_arch::SIG_UNBLOCK, &set as *const u64 as usize, 0, 8) },
        2,
    )?;
    // SAFETY: no arguments.
    let pid = unsafe { sys::getpid() };
    // SAFETY: integer arguments; the handler runs when this syscall returns.
    check(unsafe { sys::kill(pid as usize, sig) }, 3)?;
    Ok(())
}

/// The signal handler, on the bootstrap stack: the rest of the restore.
extern "C" fn on_own_stack(_sig: i32, _info: usize, _uc: usize) {
    let p = ARGS.load(Ordering::Acquire) as *mut RestoreArgs;
    // SAFETY: `start` stored the args pointer, which lies in the bootstrap
    // region that is never unmapped; only this thread runs.
    let args = unsafe { &mut *p };
    stage!(args, abi::STAGE_PARK_VDSO, remap_all(&args.park));
    stage!(args, abi::STAGE_RSEQ, unregister_rseq(&args.tool_rseq));
    stage!(args, abi::STAGE_UNMAP, unmap(args));
    stage!(args, abi::STAGE_MAP, remap_all(&args.cow.moves));
    stage!(args, abi::STAGE_MAP, map_vmas(args));
    stage!(args, abi::STAGE_MAP, arch_syscalls(&args.madvise));
    // The tool copies the runs it can into the private anonymous VMAs
    // while this task reads the others.
    let uffd = offer_copy(args);
    stage!(args, abi::STAGE_PAGES, read_pages(args));
    stage!(args, abi::STAGE_PAGES, await_copy(args, uffd));
    stage!(args, abi::STAGE_VDSO, patch_code(&args.vdso_patches));
    stage!(args, abi::STAGE_PROTECT, protect(args));
    stage!(args, abi::STAGE_VDSO, remap_all(&args.unpark));
    stage!(args, abi::STAGE_VDSO, mark_vdso(&args.vdso_mark));
    flush_patches(&args.vdso_patches);
    if args.set_mm != 0 {
        stage!(args, abi::STAGE_MM, set_mm(args));
    }
    stage!(args, abi::STAGE_SIGACTIONS, sigactions(args));
    stage!(args, abi::STAGE_TASK, task(args));
    stage!(args, abi::STAGE_RLIMITS, rlimits(args));
    stage!(args, abi::STAGE_SIGNALS, signals(&args.signals));
    stage!(args, abi::STAGE_THREADS, threads::create(args));
    stage!(args, abi::STAGE_POSIX_TIMERS, posix_timers(args));
    stage!(args, abi::STAGE_ITIMERS, itimers(args));
    stage!(
        args,
        abi::STAGE_CLOSE_FDS,
        tree::close_shared_fds(args).and_then(|own| if own { close_fds(args) } else { Ok(()) })
    );
    stage!(args, abi::STAGE_FD_STATE, arch_syscalls(&args.fd_calls));
    // Under seccomp, the filters go in after the tool's go (see
    // `seccomp`), and before the credentials, which may take away the
    // right to install them (CAP_SYS_ADMIN without no_new_privs).
    let late = args.seccomp.mode != abi::SECCOMP_MODE_DISABLED;
    if !late {
        last_steps(args);
    }
    let sp = args.sigreturn_sp as usize;
    let tp = args.thread_pointer;
    publish(args, abi::STATE_DONE);
    wait_resume(args);
    if late {
        stage!(args, abi::STAGE_SECCOMP, seccomp::seccomp(&args.seccomp));
        last_steps(args);
    }
    // SAFETY: the blob uses no TLS; the task's own code, reached by the
    // sigreturn below, expects this value.
    unsafe { set_thread_pointer(tp) };
    // SAFETY: core built a complete frame at sp - RT_SIGFRAME_OFFSET.
    unsafe { sigreturn(sp) }
}

/// The main thread's last steps: credentials, then what they would reset
/// or forbid, then the arch state and rseq right before `rt_sigreturn`.
fn last_steps(args: &mut RestoreArgs) {
    stage!(args, abi::STAGE_CREDS, creds(&args.creds));
    stage!(args, abi::STAGE_ATTRS, attrs(&args.attrs));
    stage!(args, abi::STAGE_ARCH, arch_syscalls(&args.arch_syscalls));
    stage!(args, abi::STAGE_RSEQ, register_rseq(&args.task_rseq));
}
