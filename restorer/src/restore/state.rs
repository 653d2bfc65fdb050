//! Task state after the memory: name, rlimits, pending signals, POSIX
//! timers, sigactions, itimers, fds, per-arch registers and the task's
//! rseq (and, first of all, the attributes of `proc_attrs`).

use criu_arch::{KSigaction, syscall6};
use criu_blob_rt::sys;

use super::{Fail, check, items};
use crate::abi::{self, RestoreArgs};

pub(super) fn register_rseq(r: &abi::RseqArg) -> Result<(), Fail> {
    if r.addr == 0 {
        return Ok(());
    }
    // SAFETY: the area lies in the restored memory, where the task had it.
    let ret = unsafe { sys::rseq(r.addr as usize, r.len as usize, 0, r.sig as usize) };
    check(ret, 1).map(drop)
}

/// Early attributes, while the task still is the tool's copy, with the
/// tool's privileges, and before its memory is mapped: oom_score_adj
/// (lowering it needs CAP_SYS_RESOURCE), loginuid (only the task itself
/// may write its own, and changing a set one needs CAP_AUDIT_CONTROL),
/// then the THP-disable flag (so that no huge page is formed while the
/// pages are read back). Errors: index 0, 1, 2 in that order.
pub(super) fn proc_attrs(a: &abi::TaskAttrsArg) -> Result<(), Fail> {
    const PR_SET_THP_DISABLE: usize = criu_arch::kernel::prctl::PR_SET_THP_DISABLE as usize;
    static OOM_SCORE_ADJ: [u8; 25] = *b"/proc/self/oom_score_adj\0";
    static LOGINUID: [u8; 20] = *b"/proc/self/loginuid\0";
    if a.has & abi::ATTR_OOM_SCORE_ADJ != 0 {
        write_proc(&OOM_SCORE_ADJ, &a.oom_score_adj, 0)?;
    }
    if a.has & abi::ATTR_LOGINUID != 0 {
        write_proc(&LOGINUID, &a.loginuid, 1)?;
    }
    if a.has & abi::ATTR_THP_DISABLE != 0 {
        check(
            // SAFETY: integer arguments only.
            unsafe { sys::prctl(PR_SET_THP_DISABLE, a.thp_disabled as usize, 0, 0, 0) },
            2,
        )?;
    }
    Ok(())
}

/// Write the NUL-padded `text` to the NUL-terminated `path` (one
/// `write`, as /proc's one-number files want it).
fn write_proc(path: &[u8], text: &[u8; 12], index: u32) -> Result<(), Fail> {
    const AT_FDCWD: isize = criu_arch::kernel::general::AT_FDCWD as isize;
    const O_WRONLY: usize = criu_arch::kernel::general::O_WRONLY as usize;
    let len = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    // SAFETY: `path` is NUL-terminated static data.
    let fd = check(
        unsafe { sys::openat(AT_FDCWD as usize, path.as_ptr() as usize, O_WRONLY, 0) },
        index,
    )? as usize;
    // SAFETY: writes `len` bytes of a live buffer to our own fd.
    let ret = unsafe { sys::write(fd, text.as_ptr() as usize, len) };
    // SAFETY: closes the fd just opened.
    unsafe { sys::close(fd) };
    check(ret, index).map(drop)
}

/// The name, then the attributes that need privileges the credentials may
/// take away (a negative nice, a real-time policy) or that change how
/// memory is mapped (personality: READ_IMPLIES_EXEC would make the
/// restorer's own mappings executable, so it comes after them), and the
/// process's membarrier registrations (per mm: the new mm has none).
pub(super) fn task(args: &RestoreArgs) -> Result<(), Fail> {
    const PR_SET_CHILD_SUBREAPER: usize = criu_arch::kernel::prctl::PR_SET_CHILD_SUBREAPER as usize;
    set_name(&args.comm)?;
    let a = &args.attrs;
    if a.has & abi::ATTR_PERSONALITY != 0 {
        check(
            // SAFETY: integer argument only.
            unsafe { sys::personality(a.personality as usize) },
            1,
        )?;
    }
    sched(a)?;
    if a.has & abi::ATTR_SUBREAPER != 0 {
        check(
            // SAFETY: integer arguments only.
            unsafe { sys::prctl(PR_SET_CHILD_SUBREAPER, a.child_subreaper as usize, 0, 0, 0) },
            4,
        )?;
    }
    if a.has & abi::ATTR_MEMBARRIER != 0 {
        membarrier(a.membarrier)?;
    }
    Ok(())
}

/// Issue every `MEMBARRIER_CMD_REGISTER_*` bit of `mask` (error index 5).
fn membarrier(mask: u32) -> Result<(), Fail> {
    for bit in 0..32 {
        let cmd = mask & (1 << bit);
        if cmd != 0 {
            // SAFETY: integer arguments only.
            check(unsafe { sys::membarrier(cmd as usize, 0, 0) }, 5)?;
        }
    }
    Ok(())
}

/// This thread's scheduling policy, priority and nice value.
pub(super) fn sched(a: &abi::TaskAttrsArg) -> Result<(), Fail> {
    const PRIO_PROCESS: usize = criu_arch::kernel::general::PRIO_PROCESS as usize;
    if a.has & abi::ATTR_SCHED != 0 {
        let param: i32 = a.sched_prio as i32;
        // SAFETY: `param` is a live struct sched_param; then integers.
        unsafe {
            check(
                sys::sched_setscheduler(0, a.sched_policy as usize, &param as *const i32 as usize),
                2,
            )?;
            check(sys::setpriority(PRIO_PROCESS, 0, a.sched_nice as usize), 3)?;
        }
    }
    Ok(())
}

/// `PR_SET_NAME` (this thread's name) unless `comm` is empty.
pub(super) fn set_name(comm: &[u8; 16]) -> Result<(), Fail> {
    const PR_SET_NAME: usize = criu_arch::kernel::prctl::PR_SET_NAME as usize;
    if comm[0] != 0 {
        check(
            // SAFETY: `comm` is 16 live bytes, NUL-terminated by the tool.
            unsafe { sys::prctl(PR_SET_NAME, comm.as_ptr() as usize, 0, 0, 0) },
            0,
        )?;
    }
    Ok(())
}

/// After the credentials (which reset the parent-death signal and
/// dumpable when they change ids): the parent-death signal, no_new_privs
/// (one-way), and dumpable last, as CRIU does.
pub(super) fn attrs(a: &abi::TaskAttrsArg) -> Result<(), Fail> {
    const PR_SET_PDEATHSIG: usize = criu_arch::kernel::prctl::PR_SET_PDEATHSIG as usize;
    const PR_SET_DUMPABLE: usize = criu_arch::kernel::prctl::PR_SET_DUMPABLE as usize;
    const PR_SET_NO_NEW_PRIVS: usize = criu_arch::kernel::prctl::PR_SET_NO_NEW_PRIVS as usize;
    // Always: a child of the tree dies with its parent until here (see
    // tree::fork_child); the images' signal, or none, from here on.
    let pdeath_sig = if a.has & abi::ATTR_PDEATH_SIG != 0 {
        a.pdeath_sig as usize
    } else {
        0
    };
    check(
        // SAFETY: integer arguments only.
        unsafe { sys::prctl(PR_SET_PDEATHSIG, pdeath_sig, 0, 0, 0) },
        0,
    )?;
    if a.has & abi::ATTR_NO_NEW_PRIVS != 0 {
        check(
            // SAFETY: integer arguments only.
            unsafe { sys::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
            1,
        )?;
    }
    if a.has & abi::ATTR_DUMPABLE != 0 {
        check(
            // SAFETY: integer arguments only.
            unsafe { sys::prctl(PR_SET_DUMPABLE, a.dumpable as usize, 0, 0, 0) },
            2,
        )?;
    }
    Ok(())
}

pub(super) fn rlimits(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, r) in unsafe { items::<abi::RlimitArg>(&args.rlimits) }
        .iter()
        .enumerate()
    {
        let lim: [u64; 2] = [r.cur, r.max];
        check(
            // SAFETY: `lim` is a live struct rlimit64.
            unsafe { sys::prlimit64(0, r.resource as usize, lim.as_ptr() as usize, 0) },
            i as u32,
        )?;
    }
    Ok(())
}

/// Queues the pending signals of `list`: process-wide ones, and this
/// thread's own.
pub(super) fn signals(list: &abi::Array) -> Result<(), Fail> {
    // SAFETY: getpid/gettid take no arguments.
    let (pid, tid) = unsafe { (sys::getpid(), sys::gettid()) };
    // SAFETY: the tool filled the list.
    for (i, s) in unsafe { items::<abi::SiginfoArg>(list) }.iter().enumerate() {
        let info = s.info.as_ptr() as usize;
        // SAFETY: `info` is 128 live bytes of siginfo_t; every signal is
        // blocked here, so they stay pending until rt_sigreturn.
        let ret = unsafe {
            if s.shared != 0 {
                sys::rt_sigqueueinfo(pid as usize, s.signo as usize, info)
            } else {
                sys::rt_tgsigqueueinfo(pid as usize, tid as usize, s.signo as usize, info)
            }
        };
        check(ret, i as u32)?;
    }
    Ok(())
}

pub(super) fn sigactions(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, s) in unsafe { items::<abi::SigactionArg>(&args.sigactions) }
        .iter()
        .enumerate()
    {
        let act = KSigaction {
            handler: s.handler,
            flags: s.flags,
            restorer: s.restorer,
            mask: s.mask,
        };
        check(
            // SAFETY: `act` is a live kernel sigaction.
            unsafe { sys::rt_sigaction(s.sig as usize, &act as *const KSigaction as usize, 0, 8) },
            i as u32,
        )?;
    }
    Ok(())
}

pub(super) fn itimers(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, t) in unsafe { items::<abi::ItimerArg>(&args.itimers) }
        .iter()
        .enumerate()
    {
        let val: [u64; 4] = [t.interval_sec, t.interval_usec, t.value_sec, t.value_usec];
        check(
            // SAFETY: `val` is a live struct itimerval.
            unsafe { sys::setitimer(t.which as usize, val.as_ptr() as usize, 0) },
            i as u32,
        )?;
    }
    Ok(())
}

/// `struct sigevent` (64 bytes): value, signo, notify, then the thread id.
#[repr(C)]
struct Sigevent {
    value: u64,
    signo: i32,
    notify: i32,
    tid: i32,
    _pad: [i32; 11],
}

pub(super) fn posix_timers(args: &RestoreArgs) -> Result<(), Fail> {
    const PR_TIMER_CREATE_RESTORE_IDS: usize =
        criu_arch::kernel::prctl::PR_TIMER_CREATE_RESTORE_IDS as usize;
    const ON: usize = 1;
    const OFF: usize = 0;
    // SAFETY: the tool filled the list.
    let timers = unsafe { items::<abi::PosixTimerArg>(&args.posix_timers) };
    if timers.is_empty() {
        return Ok(());
    }
    // Linux 6.17+: timer_create takes the wanted id from its out-parameter.
    // Without it ids are handed out in increasing order: a timer that got
    // a lower id than wanted is deleted and made again until it gets the
    // id (CRIU's way, for ids freed by timer_delete before the dump).
    // SAFETY: integer arguments only.
    let by_id = unsafe { sys::prctl(PR_TIMER_CREATE_RESTORE_IDS, ON, 0, 0, 0) } == 0;
    for (i, t) in timers.iter().enumerate() {
        let sev = Sigevent {
            value: t.sival,
            signo: t.signo,
            notify: t.notify,
            tid: t.tid,
            _pad: [0; 11],
        };
        let create = || -> Result<i32, Fail> {
            let mut id: i32 = t.id;
            check(
                // SAFETY: `sev` and `id` are live for the call.
                unsafe {
                    sys::timer_create(
                        t.clock as usize,
                        &sev as *const Sigevent as usize,
                        &mut id as *mut i32 as usize,
                    )
                },
                i as u32,
            )?;
            Ok(id)
        };
        let mut id = create()?;
        while !by_id && id < t.id {
            // SAFETY: integer argument; the timer was just made here.
            check(unsafe { sys::timer_delete(id as usize) }, i as u32)?;
            let next = create()?;
            if next <= id {
                break; // not handed out in order: reported just below
            }
            id = next;
        }
        if id != t.id {
            return Err((-17, i as u32)); // EEXIST: the id could not be had
        }
        let spec: [u64; 4] = [t.interval_sec, t.interval_nsec, t.value_sec, t.value_nsec];
        check(
            // SAFETY: `spec` is a live struct itimerspec.
            unsafe { sys::timer_settime(id as usize, 0, spec.as_ptr() as usize, 0) },
            i as u32,
        )?;
    }
    if by_id {
        check(
            // SAFETY: integer arguments only.
            unsafe { sys::prctl(PR_TIMER_CREATE_RESTORE_IDS, OFF, 0, 0, 0) },
            0,
        )?;
    }
    Ok(())
}

pub(super) fn close_fds(args: &RestoreArgs) -> Result<(), Fail> {
    let mut next: u64 = 0;
    // SAFETY: the tool filled the sorted list.
    for &fd in unsafe { items::<i32>(&args.keep_fds) } {
        let fd = fd as u64;
        if fd > next {
            check(
                // SAFETY: integer arguments.
                unsafe { sys::close_range(next as usize, (fd - 1) as usize, 0) },
                fd as u32,
            )?;
        }
        next = fd + 1;
    }
    check(
        // SAFETY: integer arguments.
        unsafe { sys::close_range(next as usize, u32::MAX as usize, 0) },
        u32::MAX,
    )?;
    Ok(())
}

pub(super) fn arch_syscalls(calls: &abi::Array) -> Result<(), Fail> {
    let mut saved: isize = 0;
    // SAFETY: the tool filled the list with syscalls that only set state of
    // this thread (TLS bases and the like), advice on the task's own VMAs,
    // or state of the task's own fds.
    for (i, s) in unsafe { items::<abi::RawSyscall>(calls) }
        .iter()
        .enumerate()
    {
        let mut a = s.args;
        if s.nr & abi::RAW_ARG0_SAVED != 0 {
            a[0] = saved as u64;
        }
        let ret = check(
            // SAFETY: see above.
            unsafe {
                syscall6(
                    (s.nr & !(abi::RAW_SAVE | abi::RAW_ARG0_SAVED)) as usize,
                    a[0] as usize,
                    a[1] as usize,
                    a[2] as usize,
                    a[3] as usize,
                    a[4] as usize,
                    a[5] as usize,
                )
            },
            i as u32,
        )?;
        if s.nr & abi::RAW_SAVE != 0 {
            saved = ret;
        }
    }
    Ok(())
}
