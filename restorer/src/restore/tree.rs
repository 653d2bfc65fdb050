//! A task's place in a process tree, set up in `STAGE_SESSION` while the
//! task still has the tool's memory (and so every task's region and the
//! tree's shared counters): children that stay in the session the task
//! had are forked first, then the task's own `setsid`/`setpgid`, then the
//! other children, then it joins its group once every group exists
//! (CRIU's `create_children_and_session` and `restore_pgid`).
//!
//! No wait here can deadlock: a task forks all its children before it
//! waits for anything, group leaders create their group before forking,
//! and a helper only waits for the joins, which wait only for the groups.

use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use criu_arch::KSigaction;
use criu_blob_rt::sys;

use super::{CloneArgs, Fail, check, items};
use crate::abi::{self, ChildArg, RestoreArgs, TreeWords};

const FUTEX_WAIT: usize = criu_arch::kernel::general::FUTEX_WAIT as usize;
const FUTEX_WAKE: usize = criu_arch::kernel::general::FUTEX_WAKE as usize;
const PR_SET_PDEATHSIG: usize = criu_arch::kernel::prctl::PR_SET_PDEATHSIG as usize;
const SIGKILL: usize = criu_arch::kernel::general::SIGKILL as usize;
const CLONE_FS: u64 = criu_arch::kernel::general::CLONE_FS as u64;
const CLONE_FILES: u64 = criu_arch::kernel::general::CLONE_FILES as u64;
/// Failure index of the fork of child `i`: `FORK_INDEX + i`.
pub const FORK_INDEX: u32 = 0x100;

/// `STAGE_CLOSE_FDS` of a task whose fd table is shared: a task using its
/// parent's table closes nothing and says it no longer needs the tool's
/// fds (its children are forked, its files mapped, its pages read); the
/// table's owner waits for every such task before it closes them.
/// `Ok(true)`: the task closes the tool's fds itself.
pub(super) fn close_shared_fds(args: &RestoreArgs) -> Result<bool, Fail> {
    let fd = args.fd_sync as usize;
    match args.fd_table {
        abi::FD_TABLE_SHARED => {
            let byte = [1u8];
            check(
                // SAFETY: writes one byte from a live local to a pipe fd.
                unsafe { sys::write(fd, byte.as_ptr() as usize, 1) },
                0,
            )?;
            Ok(false)
        }
        abi::FD_TABLE_LENT => {
            let mut buf = [0u8; 64];
            let mut left = args.fd_sync_count as usize;
            while left > 0 {
                let want = left.min(buf.len());
                // SAFETY: reads at most `want` bytes into a live local.
                let n = unsafe { sys::read(fd, buf.as_mut_ptr() as usize, want) };
                if n == -4 {
                    continue; // EINTR
                }
                check(n, 1)?;
                if n == 0 {
                    return Err((-32, 1)); // EPIPE: cannot happen, we hold a write end
                }
                left -= n as usize;
            }
            Ok(true)
        }
        _ => Ok(true),
    }
}

/// The tree's counters, if the task is part of a tree.
fn words(tree: u64) -> Option<(&'static AtomicU32, &'static AtomicU32)> {
    if tree == 0 {
        return None;
    }
    let w = tree as usize as *mut TreeWords;
    // SAFETY: the tool mapped the TreeWords page shared before the first
    // fork; it stays mapped in this task until STAGE_UNMAP, after this.
    unsafe {
        Some((
            AtomicU32::from_ptr(core::ptr::addr_of_mut!((*w).groups)),
            AtomicU32::from_ptr(core::ptr::addr_of_mut!((*w).joins)),
        ))
    }
}

/// The word a zombie or helper that failed writes its PID to (right
/// after the two counters; the tool reads it).
fn failed_word(tree: u64) -> Option<&'static AtomicI32> {
    if tree == 0 {
        return None;
    }
    let at = (tree as usize + core::mem::size_of::<TreeWords>()) as *mut i32;
    // SAFETY: inside the same shared page as the counters.
    Some(unsafe { AtomicI32::from_ptr(at) })
}

fn count_down(w: &AtomicU32) {
    if w.fetch_sub(1, Ordering::AcqRel) == 1 {
        // SAFETY: wakes the waiters of a live shared futex word.
        unsafe { sys::futex(w.as_ptr() as usize, FUTEX_WAKE, i32::MAX as usize, 0) };
    }
}

fn wait_zero(w: &AtomicU32) {
    loop {
        let v = w.load(Ordering::Acquire);
        if v == 0 {
            return;
        }
        // SAFETY: waits while the shared word still holds `v`.
        unsafe { sys::futex(w.as_ptr() as usize, FUTEX_WAIT, v as usize, 0) };
    }
}

/// `STAGE_SESSION` of a task (of a tree, or alone).
pub(super) fn session(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled `children` inside the bootstrap region.
    let children = unsafe { items::<ChildArg>(&args.children) };
    for (i, c) in children.iter().enumerate() {
        if c.before_setsid != 0 {
            fork_child(args, c, i)?;
        }
    }
    super::session(args)?;
    let counters = words(args.tree);
    if args.leads_group != 0
        && let Some((groups, _)) = counters
    {
        count_down(groups);
    }
    for (i, c) in children.iter().enumerate() {
        if c.before_setsid == 0 {
            fork_child(args, c, i)?;
        }
    }
    if args.join_pgid != 0 {
        if let Some((groups, _)) = counters {
            wait_zero(groups);
        }
        check(
            // SAFETY: integer arguments only.
            unsafe { sys::setpgid(0, args.join_pgid as usize) },
            2,
        )?;
        if let Some((_, joins)) = counters {
            count_down(joins);
        }
    }
    for (i, c) in children.iter().enumerate() {
        if c.kind == abi::CHILD_HELPER {
            check(
                // SAFETY: no status wanted; integer arguments.
                unsafe { sys::wait4(c.pid as usize, 0, 0, 0) },
                FORK_INDEX + i as u32,
            )?;
        }
    }
    Ok(())
}

/// Fork child `c` with its PID; the child goes on as what it is.
fn fork_child(args: &RestoreArgs, c: &ChildArg, i: usize) -> Result<(), Fail> {
    // SAFETY: no arguments.
    let parent = unsafe { sys::getpid() };
    let tid = [c.pid];
    let ca = CloneArgs {
        // CLONE_FILES / CLONE_FS only: the child shares nothing else.
        flags: c.clone_flags & (CLONE_FILES | CLONE_FS),
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: 17, // SIGCHLD
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: tid.as_ptr() as u64,
        set_tid_size: 1,
        cgroup: 0,
    };
    // SAFETY: clone3 reads `ca` and `tid`, both live; without CLONE_VM the
    // child gets a copy of this address space.
    let ret = unsafe {
        sys::clone3(
            &ca as *const CloneArgs as usize,
            core::mem::size_of::<CloneArgs>(),
        )
    };
    check(ret, FORK_INDEX + i as u32)?;
    if ret > 0 {
        return Ok(());
    }
    // Until its own attributes are set (STAGE_TASK_ATTRS puts the dumped
    // parent-death signal back), a child dies with its parent: a restore
    // that fails in a parent, which the tool then kills, leaves none of
    // its children behind, even one not yet known to the tool. A parent
    // that died before this child could ask is seen in getppid().
    // SAFETY: integer arguments only.
    unsafe { sys::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) };
    // SAFETY: no arguments.
    if unsafe { sys::getppid() } != parent {
        exit(1)
    }
    if c.kind == abi::CHILD_TASK {
        type Entry = unsafe extern "C" fn(usize, *mut u8) -> isize;
        // SAFETY: the tool put the relocated restorer of the child's own
        // region at `entry` (mapped here, inherited from the tool), and
        // its RestoreArgs at `args`; that copy of the blob takes over.
        unsafe {
            let entry = core::mem::transmute::<usize, Entry>(c.entry as usize);
            entry(abi::CMD_RESTORE_CHILD, c.args as usize as *mut u8);
        }
        exit(1)
    }
    extra_child(args.tree, c)
}

fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exit_group takes an integer and ends the process.
        unsafe { sys::exit_group(code) };
    }
}

/// A zombie or a helper, in its own process: nothing of the tool's is
/// unmapped (it never runs code of its own).
fn extra_child(tree: u64, c: &ChildArg) -> ! {
    let fail = || {
        if let Some(w) = failed_word(tree) {
            w.store(c.pid, Ordering::Release);
        }
        exit(127)
    };
    // It dies with its parent (see fork_child): a zombie's parent reaps it,
    // a helper's parent waits for it.
    let counters = words(tree);
    // SAFETY: no arguments.
    if c.setsid != 0 && unsafe { sys::setsid() } < 0 {
        fail();
    }
    // SAFETY: integer arguments only.
    if c.pgid != 0 && unsafe { sys::setpgid(0, c.pgid as usize) } < 0 {
        fail();
    }
    if c.leads_group != 0
        && let Some((groups, _)) = counters
    {
        count_down(groups);
    }
    if c.join_pgid != 0 {
        if let Some((groups, _)) = counters {
            wait_zero(groups);
        }
        // SAFETY: integer arguments only.
        if unsafe { sys::setpgid(0, c.join_pgid as usize) } < 0 {
            fail();
        }
        if let Some((_, joins)) = counters {
            count_down(joins);
        }
    }
    if c.kind == abi::CHILD_HELPER {
        if let Some((_, joins)) = counters {
            wait_zero(joins);
        }
        exit(0)
    }
    // A zombie: end as it ended.
    let sig = (c.exit_status & 0x7f) as usize;
    if sig != 0 {
        let act = KSigaction {
            handler: 0, // SIG_DFL
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        let set: u64 = 1 << (sig - 1);
        // SAFETY: `act` and `set` are live locals the kernel only reads.
        unsafe {
            sys::rt_sigaction(sig, &act as *const KSigaction as usize, 0, 8);
            sys::rt_sigprocmask(criu_arch::SIG_UNBLOCK, &set as *const u64 as usize, 0, 8);
            let pid = sys::getpid();
            sys::kill(pid as usize, sig);
        }
    }
    exit(((c.exit_status >> 8) & 0xff) as usize)
}
