//! Task state after the memory: name, rlimits, pending signals, POSIX
//! timers, sigactions, itimers, fds, credentials, per-arch registers and the
//! task's rseq.

use criu_arch::{
    KSigaction, nr, syscall0, syscall1, syscall2, syscall3, syscall4, syscall5, syscall6,
};

use super::{Fail, check, items};
use crate::abi::{self, RestoreArgs};

pub(super) fn register_rseq(r: &abi::RseqArg) -> Result<(), Fail> {
    if r.addr == 0 {
        return Ok(());
    }
    // SAFETY: the area lies in the restored memory, where the task had it.
    let ret = unsafe { syscall4(nr::RSEQ, r.addr as usize, r.len as usize, 0, r.sig as usize) };
    check(ret, 1).map(drop)
}

/// The name, then the attributes that need privileges the credentials may
/// take away (a negative nice, a real-time policy) or that change how
/// memory is mapped (personality: READ_IMPLIES_EXEC would make the
/// restorer's own mappings executable, so it comes after them).
pub(super) fn task(args: &RestoreArgs) -> Result<(), Fail> {
    const PR_SET_CHILD_SUBREAPER: usize = criu_arch::kernel::prctl::PR_SET_CHILD_SUBREAPER as usize;
    set_name(&args.comm)?;
    let a = &args.attrs;
    if a.has & abi::ATTR_PERSONALITY != 0 {
        // SAFETY: integer argument only.
        check(
            unsafe { syscall1(nr::PERSONALITY, a.personality as usize) },
            1,
        )?;
    }
    sched(a)?;
    if a.has & abi::ATTR_SUBREAPER != 0 {
        // SAFETY: integer arguments only.
        check(
            unsafe {
                syscall2(
                    nr::PRCTL,
                    PR_SET_CHILD_SUBREAPER,
                    a.child_subreaper as usize,
                )
            },
            4,
        )?;
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
                syscall3(
                    nr::SCHED_SETSCHEDULER,
                    0,
                    a.sched_policy as usize,
                    &param as *const i32 as usize,
                ),
                2,
            )?;
            check(
                syscall3(nr::SETPRIORITY, PRIO_PROCESS, 0, a.sched_nice as usize),
                3,
            )?;
        }
    }
    Ok(())
}

/// `PR_SET_NAME` (this thread's name) unless `comm` is empty.
pub(super) fn set_name(comm: &[u8; 16]) -> Result<(), Fail> {
    const PR_SET_NAME: usize = criu_arch::kernel::prctl::PR_SET_NAME as usize;
    if comm[0] != 0 {
        // SAFETY: `comm` is 16 live bytes, NUL-terminated by the tool.
        check(
            unsafe { syscall2(nr::PRCTL, PR_SET_NAME, comm.as_ptr() as usize) },
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
    // SAFETY (all three): integer arguments only.
    if a.has & abi::ATTR_PDEATH_SIG != 0 {
        check(
            unsafe { syscall2(nr::PRCTL, PR_SET_PDEATHSIG, a.pdeath_sig as usize) },
            0,
        )?;
    }
    if a.has & abi::ATTR_NO_NEW_PRIVS != 0 {
        check(
            unsafe { syscall5(nr::PRCTL, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
            1,
        )?;
    }
    if a.has & abi::ATTR_DUMPABLE != 0 {
        check(
            unsafe { syscall2(nr::PRCTL, PR_SET_DUMPABLE, a.dumpable as usize) },
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
        // SAFETY: `lim` is a live struct rlimit64.
        check(
            unsafe {
                syscall4(
                    nr::PRLIMIT64,
                    0,
                    r.resource as usize,
                    lim.as_ptr() as usize,
                    0,
                )
            },
            i as u32,
        )?;
    }
    Ok(())
}

/// Queues the pending signals of `list`: process-wide ones, and this
/// thread's own.
pub(super) fn signals(list: &abi::Array) -> Result<(), Fail> {
    // SAFETY: getpid/gettid take no arguments.
    let (pid, tid) = unsafe { (syscall0(nr::GETPID), syscall0(nr::GETTID)) };
    // SAFETY: the tool filled the list.
    for (i, s) in unsafe { items::<abi::SiginfoArg>(list) }.iter().enumerate() {
        let info = s.info.as_ptr() as usize;
        // SAFETY: `info` is 128 live bytes of siginfo_t; every signal is
        // blocked here, so they stay pending until rt_sigreturn.
        let ret = unsafe {
            if s.shared != 0 {
                syscall3(nr::RT_SIGQUEUEINFO, pid as usize, s.signo as usize, info)
            } else {
                syscall4(
                    nr::RT_TGSIGQUEUEINFO,
                    pid as usize,
                    tid as usize,
                    s.signo as usize,
                    info,
                )
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
        // SAFETY: `act` is a live kernel sigaction.
        check(
            unsafe {
                syscall4(
                    nr::RT_SIGACTION,
                    s.sig as usize,
                    &act as *const KSigaction as usize,
                    0,
                    8,
                )
            },
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
        // SAFETY: `val` is a live struct itimerval.
        check(
            unsafe { syscall3(nr::SETITIMER, t.which as usize, val.as_ptr() as usize, 0) },
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
    let by_id = unsafe { syscall5(nr::PRCTL, PR_TIMER_CREATE_RESTORE_IDS, ON, 0, 0, 0) } == 0;
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
            // SAFETY: `sev` and `id` are live for the call.
            check(
                unsafe {
                    syscall3(
                        nr::TIMER_CREATE,
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
            check(unsafe { syscall1(nr::TIMER_DELETE, id as usize) }, i as u32)?;
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
        // SAFETY: `spec` is a live struct itimerspec.
        check(
            unsafe { syscall4(nr::TIMER_SETTIME, id as usize, 0, spec.as_ptr() as usize, 0) },
            i as u32,
        )?;
    }
    if by_id {
        // SAFETY: integer arguments only.
        check(
            unsafe { syscall5(nr::PRCTL, PR_TIMER_CREATE_RESTORE_IDS, OFF, 0, 0, 0) },
            0,
        )?;
    }
    Ok(())
}

/// CRIU's order: keep all capabilities, effective ones included, across the
/// uid change (SECBIT_NO_SETUID_FIXUP: CAP_SETPCAP is still needed below),
/// groups, gids, uids, drop bounding-set capabilities, set the three
/// final securebits, then the capability sets.
/// Restores the credentials. A step that would change nothing is skipped:
/// setting securebits, groups or the bounding set needs privileges even
/// to set what is already there, and `--unprivileged` restores (where the
/// task has the tool's own credentials) have none of them.
pub(super) fn creds(c: &abi::CredsArg) -> Result<(), Fail> {
    const PR_CAPBSET_READ: usize = criu_arch::kernel::prctl::PR_CAPBSET_READ as usize;
    const PR_CAPBSET_DROP: usize = criu_arch::kernel::prctl::PR_CAPBSET_DROP as usize;
    const PR_GET_SECUREBITS: usize = criu_arch::kernel::prctl::PR_GET_SECUREBITS as usize;
    const PR_SET_SECUREBITS: usize = criu_arch::kernel::prctl::PR_SET_SECUREBITS as usize;
    const SECBIT_NO_SETUID_FIXUP: usize = 1 << 2;
    const PR_SET_DUMPABLE: usize = criu_arch::kernel::prctl::PR_SET_DUMPABLE as usize;
    const CAP_V3: u32 = criu_arch::kernel::general::_LINUX_CAPABILITY_VERSION_3;
    if c.valid == 0 {
        return Ok(());
    }
    // Keep the capabilities across setresuid when it changes the uids
    // (from root to the task's); with the same uids nothing is lost.
    let mut uids = [0u32; 3];
    // SAFETY: getresuid writes three u32s into `uids`.
    unsafe {
        syscall3(
            nr::GETRESUID,
            uids.as_mut_ptr() as usize,
            uids.as_mut_ptr().wrapping_add(1) as usize,
            uids.as_mut_ptr().wrapping_add(2) as usize,
        )
    };
    if uids != [c.uid, c.euid, c.suid] {
        set_securebits(c.secbits as usize | SECBIT_NO_SETUID_FIXUP, 0)?;
    }
    let n = (c.ngroups as usize).min(abi::MAX_GROUPS);
    if !same_groups(&c.groups[..n]) {
        // SAFETY: `groups` holds `n` live gids.
        check(
            unsafe { syscall2(nr::SETGROUPS, n, c.groups.as_ptr() as usize) },
            1,
        )?;
    }
    // SAFETY: integer arguments only.
    unsafe {
        check(
            syscall3(
                nr::SETRESGID,
                c.gid as usize,
                c.egid as usize,
                c.sgid as usize,
            ),
            2,
        )?;
        // setfsgid/setfsuid return the previous value, never an error.
        syscall1(nr::SETFSGID, c.fsgid as usize);
        check(
            syscall3(
                nr::SETRESUID,
                c.uid as usize,
                c.euid as usize,
                c.suid as usize,
            ),
            3,
        )?;
        syscall1(nr::SETFSUID, c.fsuid as usize);
    }
    for cap in 0..=c.cap_last.min(63) {
        let word = c.cap_bnd[(cap / 32) as usize];
        // SAFETY: integer arguments only.
        let have = unsafe { syscall2(nr::PRCTL, PR_CAPBSET_READ, cap as usize) } == 1;
        if have && word & (1 << (cap % 32)) == 0 {
            // SAFETY: integer arguments only.
            check(
                unsafe { syscall2(nr::PRCTL, PR_CAPBSET_DROP, cap as usize) },
                4,
            )?;
        }
    }
    // The final securebits while CAP_SETPCAP is still ours, then the
    // capability sets, which may drop it.
    set_securebits(c.secbits as usize, 5)?;
    let header: [u32; 2] = [CAP_V3, 0];
    let data: [u32; 6] = [
        c.cap_eff[0],
        c.cap_prm[0],
        c.cap_inh[0],
        c.cap_eff[1],
        c.cap_prm[1],
        c.cap_inh[1],
    ];
    // SAFETY: `header` and `data` are a live cap_user_header and two
    // cap_user_data structs.
    check(
        unsafe { syscall2(nr::CAPSET, header.as_ptr() as usize, data.as_ptr() as usize) },
        6,
    )?;
    // A child of a tool run from a file-capability binary (--unprivileged)
    // starts not dumpable, so not even its own user could trace it (nor
    // the tool cure it). With the task's own credentials in place and the
    // tool's capabilities gone, it is an ordinary task of its user again.
    // (A dumped "not dumpable" state is applied later, with the other
    // task attributes.)
    // SAFETY: integer arguments only (PR_SET_DUMPABLE, 1).
    check(unsafe { syscall2(nr::PRCTL, PR_SET_DUMPABLE, 1) }, 7)?;
    return Ok(());

    fn set_securebits(bits: usize, index: u32) -> Result<(), Fail> {
        // SAFETY: integer arguments only.
        if unsafe { syscall2(nr::PRCTL, PR_GET_SECUREBITS, 0) } == bits as isize {
            return Ok(());
        }
        // SAFETY: integer arguments only.
        check(
            unsafe { syscall5(nr::PRCTL, PR_SET_SECUREBITS, bits, 0, 0, 0) },
            index,
        )
        .map(drop)
    }
}

/// Whether the task's supplementary groups are `want` already.
fn same_groups(want: &[u32]) -> bool {
    let mut now = [0u32; abi::MAX_GROUPS];
    // SAFETY: getgroups writes at most MAX_GROUPS gids into `now`.
    let n = unsafe { syscall2(nr::GETGROUPS, abi::MAX_GROUPS, now.as_mut_ptr() as usize) };
    n >= 0 && now.get(..n as usize) == Some(want)
}

pub(super) fn close_fds(args: &RestoreArgs) -> Result<(), Fail> {
    let mut next: u64 = 0;
    // SAFETY: the tool filled the sorted list.
    for &fd in unsafe { items::<i32>(&args.keep_fds) } {
        let fd = fd as u64;
        if fd > next {
            // SAFETY: integer arguments.
            check(
                unsafe { syscall3(nr::CLOSE_RANGE, next as usize, (fd - 1) as usize, 0) },
                fd as u32,
            )?;
        }
        next = fd + 1;
    }
    // SAFETY: integer arguments.
    check(
        unsafe { syscall3(nr::CLOSE_RANGE, next as usize, u32::MAX as usize, 0) },
        u32::MAX,
    )?;
    Ok(())
}

pub(super) fn arch_syscalls(calls: &abi::Array) -> Result<(), Fail> {
    // SAFETY: the tool filled the list with syscalls that only set state of
    // this thread (TLS bases and the like) or advice on the task's own VMAs.
    for (i, s) in unsafe { items::<abi::RawSyscall>(calls) }
        .iter()
        .enumerate()
    {
        let a = s.args;
        // SAFETY: see above.
        check(
            unsafe {
                syscall6(
                    s.nr as usize,
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
    }
    Ok(())
}
