//! The task's other threads (CRIU's `restore_thread`): the main thread
//! creates each with `clone3` and its TID; each then restores its own
//! per-thread state on a stack of its own in the bootstrap region, reports
//! ready, waits for the tool's go like the main thread and `rt_sigreturn`s
//! on its own frame.
//!
//! Every signal stays blocked in a new thread until that sigreturn (a
//! thread starts with its creator's mask, and the main thread runs inside
//! a handler that blocks them all). A failure anywhere publishes it and
//! ends the whole task with `exit_group`, so no thread is left behind.

use core::sync::atomic::{AtomicU32, Ordering};

use criu_arch::{clone_thread, set_thread_pointer, sigreturn};
use criu_blob_rt::sys;

use super::creds::creds;
use super::state::{arch_syscalls, attrs, register_rseq, sched, set_name, signals};
use super::{ARGS, CloneArgs, Fail, check, items, publish, wait_resume};
use crate::abi::{self, RestoreArgs, ThreadArg};

const CLONE_VM: u64 = criu_arch::kernel::general::CLONE_VM as u64;
const CLONE_FS: u64 = criu_arch::kernel::general::CLONE_FS as u64;
const CLONE_FILES: u64 = criu_arch::kernel::general::CLONE_FILES as u64;
const CLONE_SIGHAND: u64 = criu_arch::kernel::general::CLONE_SIGHAND as u64;
const CLONE_THREAD: u64 = criu_arch::kernel::general::CLONE_THREAD as u64;
const CLONE_SYSVSEM: u64 = criu_arch::kernel::general::CLONE_SYSVSEM as u64;
const FUTEX_WAIT: usize = criu_arch::kernel::general::FUTEX_WAIT as usize;
const FUTEX_WAKE: usize = criu_arch::kernel::general::FUTEX_WAKE as usize;

/// Main thread: create every thread, then wait until all are ready (their
/// credentials are set: the main thread's own credentials and dumpable
/// flag come after them).
pub(super) fn create(args: &mut RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    let threads = unsafe { items::<ThreadArg>(&args.threads) };
    for (i, t) in threads.iter().enumerate() {
        let tid = [t.tid];
        let ca = CloneArgs {
            flags: CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM,
            pidfd: 0,
            child_tid: 0,
            parent_tid: 0,
            exit_signal: 0,
            stack: t.stack.start,
            stack_size: t.stack.end - t.stack.start,
            tls: 0,
            set_tid: tid.as_ptr() as u64,
            set_tid_size: 1,
            cgroup: 0,
        };
        // SAFETY: `ca` and `tid` are live for the call; the stack lies in
        // the bootstrap region and belongs to this thread alone; the new
        // thread runs only `thread_main`, which never returns.
        let ret = unsafe {
            clone_thread(
                &ca as *const CloneArgs as usize,
                core::mem::size_of::<CloneArgs>(),
                thread_main,
                t as *const ThreadArg as usize,
            )
        };
        check(ret, i as u32)?;
    }
    // SAFETY: `threads_ready` is a naturally aligned u32 in the region.
    let ready = unsafe { AtomicU32::from_ptr(&mut args.threads_ready) };
    loop {
        let n = ready.load(Ordering::Acquire);
        if n as usize >= threads.len() {
            return Ok(());
        }
        // SAFETY: waits while the word is still `n`; the address is valid.
        unsafe { sys::futex(ready.as_ptr() as usize, FUTEX_WAIT, n as usize, 0) };
    }
}

/// A new thread, on its own stack: `arg` is its [`ThreadArg`]. The order
/// is the main thread's: scheduling needs the privileges the credentials
/// may drop; the parent-death signal comes after them (a credential
/// change resets it).
extern "C" fn thread_main(arg: usize) -> ! {
    // SAFETY: the main thread passed a ThreadArg of the list, which lies
    // in the bootstrap region and is only read.
    let t = unsafe { &*(arg as *const ThreadArg) };
    let p = ARGS.load(Ordering::Acquire) as *mut RestoreArgs;
    // SAFETY: `p` is the live args; these fields are only read.
    let (base, fault_stage) = unsafe { ((*p).threads.addr as usize, (*p).fault_stage) };
    let place = ((arg - base) / core::mem::size_of::<ThreadArg>()) as u32;
    // Run one step; on error (or an injected fault) report it and end.
    macro_rules! step {
        ($stage:expr, $body:expr) => {{
            let result = if fault_stage == $stage {
                Err((-125, 0)) // ECANCELED, injected
            } else {
                $body
            };
            if let Err((err, _)) = result {
                thread_fail(p, $stage, err, place);
            }
        }};
    }
    step!(abi::STAGE_SIGNALS, signals(&t.signals));
    step!(
        abi::STAGE_TASK,
        set_name(&t.comm).and_then(|()| sched(&t.attrs))
    );
    // As the main thread's: under seccomp, the filters and then the
    // credentials and the rest after the tool's go.
    let late = t.seccomp.mode != abi::SECCOMP_MODE_DISABLED;
    let last_steps = move || {
        step!(abi::STAGE_CREDS, creds(&t.creds));
        step!(abi::STAGE_ATTRS, attrs(&t.attrs));
        step!(abi::STAGE_ARCH, arch_syscalls(&t.arch_syscalls));
        step!(abi::STAGE_RSEQ, register_rseq(&t.rseq));
    };
    if !late {
        last_steps();
    }
    // SAFETY: `threads_ready` is a naturally aligned u32 in the region.
    let ready = unsafe { AtomicU32::from_ptr(&raw mut (*p).threads_ready) };
    ready.fetch_add(1, Ordering::AcqRel);
    // SAFETY: wakes the main thread waiting on the word; no memory access.
    unsafe { sys::futex(ready.as_ptr() as usize, FUTEX_WAKE, 1, 0) };
    // SAFETY: only the `status.resume` word is touched by the wait (the
    // function reads it atomically); the main thread waits the same way.
    wait_resume(unsafe { &mut *p });
    if late {
        step!(abi::STAGE_SECCOMP, super::seccomp::seccomp(&t.seccomp));
        last_steps();
    }
    // SAFETY: the blob uses no TLS; the thread's own code, reached by the
    // sigreturn below, expects this value.
    unsafe { set_thread_pointer(t.thread_pointer) };
    // SAFETY: core built this thread's frame at sp - RT_SIGFRAME_OFFSET.
    unsafe { sigreturn(t.sigreturn_sp as usize) }
}

/// Publish a thread's failure and end the whole task.
fn thread_fail(p: *mut RestoreArgs, stage: u32, err: isize, place: u32) -> ! {
    // SAFETY: valid, aligned fields of the live args; volatile so the tool
    // reads them after `publish`'s release store.
    unsafe {
        core::ptr::write_volatile(&raw mut (*p).status.stage, stage);
        core::ptr::write_volatile(&raw mut (*p).status.errno, (-err) as i32);
        core::ptr::write_volatile(
            &raw mut (*p).status.index,
            abi::THREAD_INDEX_BASE.wrapping_add(place),
        );
        publish(&mut *p, abi::STATE_FAILED);
    }
    loop {
        // SAFETY: exit_group takes an integer and ends the process.
        unsafe { sys::exit_group(1) };
    }
}
