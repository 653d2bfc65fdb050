//! `RESTORE`: fork the task, then rebuild it from [`RestoreArgs`].
//!
//! Runs in three places, in order:
//! 1. [`start`], in the tool (on the tool's stack): `clone3`, then return the
//!    child's PID to the tool.
//! 2. The child, still on its copy of the tool's stack: session, fds, fs,
//!    then a signal to itself whose handler runs on the alternate stack in the
//!    bootstrap region. That is how it changes stacks without arch code.
//! 3. [`on_own_stack`], the handler: everything that unmaps the tool, then
//!    `rt_sigreturn` on the frame core built from the dumped registers.
//!
//! Every system call result is checked; a failure is published in
//! `args.status` and the child calls `exit_group(1)`: it never spins.
//! Arrays in the args are read through raw pointers with their lengths; the
//! tool placed them all inside the bootstrap region.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use criu_arch::{
    KSigaction, SA_ONSTACK, SA_RESTORER, SA_SIGINFO, StackT, nr, sigreturn, sys_mmap, syscall0,
    syscall1, syscall2, syscall3, syscall4, syscall5, syscall6,
};

use crate::abi::{self, Array, RestoreArgs};

/// The args of the running restore, for the signal handler (in `.bss`).
static ARGS: AtomicUsize = AtomicUsize::new(0);

const MAP_FIXED: usize = 0x10;
const MREMAP_MAYMOVE: usize = 1;
const MREMAP_FIXED: usize = 2;
const PR_SET_MM: usize = 35;
const PR_SET_MM_MAP: usize = 14;
const EINTR: isize = -4;

/// `struct clone_args` (the fields of clone3's first version).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Failure of a stage: (errno, item index).
type Fail = (isize, u32);

/// Turns a raw syscall result into a `Result` for item `index`.
fn check(ret: isize, index: u32) -> Result<isize, Fail> {
    if ret < 0 { Err((ret, index)) } else { Ok(ret) }
}

/// The elements of an [`Array`] as a slice.
///
/// # Safety
/// The tool placed `len` valid `T`s at `addr` inside the bootstrap region.
unsafe fn items<T>(a: &Array) -> &'static [T] {
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
        flags: 0,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: 17, // SIGCHLD
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
        syscall2(
            nr::CLONE3,
            &ca as *const CloneArgs as usize,
            core::mem::size_of::<CloneArgs>(),
        )
    };
    if ret != 0 {
        return ret;
    }
    child(args)
}

/// Publish a failure and end the child.
fn fail(args: &mut RestoreArgs, stage: u32, (err, index): Fail) -> ! {
    args.status.stage = stage;
    args.status.errno = (-err) as i32;
    args.status.index = index;
    publish(args, abi::STATE_FAILED);
    loop {
        // SAFETY: exit_group takes an integer and ends the process.
        unsafe { syscall1(nr::EXIT_GROUP, 1) };
    }
}

fn publish(args: &mut RestoreArgs, state: u32) {
    // SAFETY: `state` is a naturally aligned u32 inside the shared region.
    let word = unsafe { AtomicU32::from_ptr(&mut args.status.state) };
    word.store(state, Ordering::Release);
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
        if let Err(e) = $body {
            fail($args, $stage, e);
        }
    }};
}

/// Child, on its copy of the tool's stack.
fn child(args: &mut RestoreArgs) -> isize {
    stage!(args, abi::STAGE_SESSION, session(args));
    stage!(args, abi::STAGE_FDS, move_fds(args));
    stage!(args, abi::STAGE_FS, fs(args));
    stage!(args, abi::STAGE_SWITCH_STACK, switch_stack(args));
    // The handler never returns; reaching this means the signal was lost.
    fail(args, abi::STAGE_SWITCH_STACK, (-4, 0))
}

fn session(args: &RestoreArgs) -> Result<(), Fail> {
    if args.setsid != 0 {
        // SAFETY: setsid takes no arguments.
        check(unsafe { syscall0(nr::SETSID) }, 0)?;
    }
    if args.pgid != 0 {
        // SAFETY: integer arguments only.
        check(unsafe { syscall2(nr::SETPGID, 0, args.pgid as usize) }, 1)?;
    }
    Ok(())
}

fn move_fds(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled `fd_moves`.
    for (i, m) in unsafe { items::<abi::FdMove>(&args.fd_moves) }
        .iter()
        .enumerate()
    {
        if m.from != m.to {
            // SAFETY: integer arguments only.
            check(
                unsafe { syscall3(nr::DUP3, m.from as usize, m.to as usize, m.flags as usize) },
                i as u32,
            )?;
        }
    }
    Ok(())
}

fn fs(args: &RestoreArgs) -> Result<(), Fail> {
    static DOT: [u8; 2] = *b".\0";
    if args.root_fd >= 0 {
        // SAFETY: integer argument; then a NUL-terminated static path.
        check(unsafe { syscall1(nr::FCHDIR, args.root_fd as usize) }, 0)?;
        check(unsafe { syscall1(nr::CHROOT, DOT.as_ptr() as usize) }, 0)?;
    }
    if args.cwd_fd >= 0 {
        // SAFETY: integer argument.
        check(unsafe { syscall1(nr::FCHDIR, args.cwd_fd as usize) }, 1)?;
    }
    if args.umask != u32::MAX {
        // SAFETY: integer argument; umask cannot fail.
        unsafe { syscall1(nr::UMASK, args.umask as usize) };
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
    // SAFETY: `ss` is a live stack_t; the old one is not wanted.
    check(
        unsafe { syscall2(nr::SIGALTSTACK, &ss as *const StackT as usize, 0) },
        0,
    )?;
    let act = KSigaction {
        handler: on_own_stack as *const () as usize as u64,
        flags: SA_ONSTACK | SA_SIGINFO | SA_RESTORER,
        restorer: criu_arch::restore_rt as *const () as usize as u64,
        mask: u64::MAX,
    };
    let sig = args.switch_signal as usize;
    // SAFETY: `act` is a live kernel sigaction of the size given.
    check(
        unsafe {
            syscall4(
                nr::RT_SIGACTION,
                sig,
                &act as *const KSigaction as usize,
                0,
                8,
            )
        },
        1,
    )?;
    let set: u64 = 1 << (sig - 1);
    // SAFETY: `set` is a live 8-byte signal set.
    check(
        unsafe {
            syscall4(
                nr::RT_SIGPROCMASK,
                criu_arch::SIG_UNBLOCK,
                &set as *const u64 as usize,
                0,
                8,
            )
        },
        2,
    )?;
    // SAFETY: integer arguments; the handler runs when this syscall returns.
    let pid = unsafe { syscall0(nr::GETPID) };
    check(unsafe { syscall2(nr::KILL, pid as usize, sig) }, 3)?;
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
    stage!(args, abi::STAGE_MAP, map_vmas(args));
    stage!(args, abi::STAGE_PAGES, read_pages(args));
    stage!(args, abi::STAGE_PROTECT, protect(args));
    stage!(args, abi::STAGE_VDSO, remap_all(&args.unpark));
    if args.set_mm != 0 {
        stage!(args, abi::STAGE_MM, set_mm(args));
    }
    stage!(args, abi::STAGE_SIGACTIONS, sigactions(args));
    stage!(args, abi::STAGE_TASK, task(args));
    stage!(args, abi::STAGE_RLIMITS, rlimits(args));
    stage!(args, abi::STAGE_SIGNALS, signals(args));
    stage!(args, abi::STAGE_POSIX_TIMERS, posix_timers(args));
    stage!(args, abi::STAGE_ITIMERS, itimers(args));
    stage!(args, abi::STAGE_CLOSE_FDS, close_fds(args));
    stage!(args, abi::STAGE_CREDS, creds(&args.creds));
    stage!(args, abi::STAGE_ARCH, arch_syscalls(args));
    stage!(args, abi::STAGE_RSEQ, register_rseq(&args.task_rseq));
    let sp = args.sigreturn_sp as usize;
    publish(args, abi::STATE_DONE);
    // SAFETY: core built a complete frame at sp - RT_SIGFRAME_OFFSET.
    unsafe { sigreturn(sp) }
}

fn remap_all(list: &Array) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, r) in unsafe { items::<abi::Remap>(list) }.iter().enumerate() {
        let ret = if r.to == 0 {
            // SAFETY: unmapping a range the tool chose, outside the region.
            unsafe { syscall2(nr::MUNMAP, r.from as usize, r.len as usize) }
        } else {
            // SAFETY: moves a vDSO/vvar mapping; the target range is either
            // inside the bootstrap region's parking area or a dumped vDSO
            // address that no restored VMA uses.
            unsafe {
                syscall5(
                    nr::MREMAP,
                    r.from as usize,
                    r.len as usize,
                    r.len as usize,
                    MREMAP_MAYMOVE | MREMAP_FIXED,
                    r.to as usize,
                )
            }
        };
        check(ret, i as u32)?;
    }
    Ok(())
}

fn unregister_rseq(r: &abi::RseqArg) -> Result<(), Fail> {
    const RSEQ_FLAG_UNREGISTER: usize = 1;
    if r.addr == 0 {
        return Ok(());
    }
    // SAFETY: unregistering only stops the kernel writing to `addr`.
    let ret = unsafe {
        syscall4(
            nr::RSEQ,
            r.addr as usize,
            r.len as usize,
            RSEQ_FLAG_UNREGISTER,
            r.sig as usize,
        )
    };
    check(ret, 0).map(drop)
}

fn register_rseq(r: &abi::RseqArg) -> Result<(), Fail> {
    if r.addr == 0 {
        return Ok(());
    }
    // SAFETY: the area lies in the restored memory, where the task had it.
    let ret = unsafe { syscall4(nr::RSEQ, r.addr as usize, r.len as usize, 0, r.sig as usize) };
    check(ret, 1).map(drop)
}

fn task(args: &RestoreArgs) -> Result<(), Fail> {
    const PR_SET_NAME: usize = 15;
    if args.comm[0] != 0 {
        // SAFETY: `comm` is 16 live bytes, NUL-terminated by the tool.
        check(
            unsafe { syscall2(nr::PRCTL, PR_SET_NAME, args.comm.as_ptr() as usize) },
            0,
        )?;
    }
    Ok(())
}

fn rlimits(args: &RestoreArgs) -> Result<(), Fail> {
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

fn signals(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: getpid/gettid take no arguments.
    let (pid, tid) = unsafe { (syscall0(nr::GETPID), syscall0(nr::GETTID)) };
    // SAFETY: the tool filled the list.
    for (i, s) in unsafe { items::<abi::SiginfoArg>(&args.signals) }
        .iter()
        .enumerate()
    {
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

fn unmap(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, r) in unsafe { items::<abi::Region>(&args.unmap) }
        .iter()
        .enumerate()
    {
        if r.end > r.start {
            // SAFETY: the ranges exclude the bootstrap region we run from.
            check(
                unsafe { syscall2(nr::MUNMAP, r.start as usize, (r.end - r.start) as usize) },
                i as u32,
            )?;
        }
    }
    Ok(())
}

fn map_vmas(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, v) in unsafe { items::<abi::VmaArg>(&args.vmas) }
        .iter()
        .enumerate()
    {
        // SAFETY: MAP_FIXED over ranges that hold nothing of ours any more.
        let ret = unsafe {
            sys_mmap(
                v.start as usize,
                (v.end - v.start) as usize,
                v.map_prot as usize,
                v.flags as usize | MAP_FIXED,
                v.fd as isize as usize,
                v.offset as usize,
            )
        };
        check(ret, i as u32)?;
        if ret as u64 != v.start {
            return Err((-22, i as u32));
        }
    }
    Ok(())
}

fn read_pages(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list; every run lies in a writable VMA.
    for (i, r) in unsafe { items::<abi::PageRun>(&args.page_runs) }
        .iter()
        .enumerate()
    {
        let (mut addr, mut left, mut off) = (r.addr, r.len, r.offset);
        while left > 0 {
            // SAFETY: writes into a mapped, writable restored VMA.
            let n = unsafe {
                syscall4(
                    nr::PREAD64,
                    args.pages_fd as usize,
                    addr as usize,
                    left as usize,
                    off as usize,
                )
            };
            if n == EINTR {
                continue;
            }
            check(n, i as u32)?;
            if n == 0 {
                // pages image shorter than the pagemap says.
                return Err((-5, i as u32));
            }
            addr += n as u64;
            off += n as u64;
            left -= n as u64;
        }
    }
    Ok(())
}

fn protect(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list.
    for (i, v) in unsafe { items::<abi::VmaArg>(&args.vmas) }
        .iter()
        .enumerate()
    {
        if v.final_prot != v.map_prot {
            // SAFETY: changes protections of a VMA we just mapped.
            check(
                unsafe {
                    syscall3(
                        nr::MPROTECT,
                        v.start as usize,
                        (v.end - v.start) as usize,
                        v.final_prot as usize,
                    )
                },
                i as u32,
            )?;
        }
    }
    Ok(())
}

fn set_mm(args: &RestoreArgs) -> Result<(), Fail> {
    let m = &args.mm_map;
    // SAFETY: `m` is a live prctl_mm_map of the size given.
    check(
        unsafe {
            syscall5(
                nr::PRCTL,
                PR_SET_MM,
                PR_SET_MM_MAP,
                m as *const abi::PrctlMmMap as usize,
                core::mem::size_of::<abi::PrctlMmMap>(),
                0,
            )
        },
        0,
    )?;
    Ok(())
}

fn sigactions(args: &RestoreArgs) -> Result<(), Fail> {
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

fn itimers(args: &RestoreArgs) -> Result<(), Fail> {
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

fn posix_timers(args: &RestoreArgs) -> Result<(), Fail> {
    const PR_TIMER_CREATE_RESTORE_IDS: usize = 77;
    const ON: usize = 1;
    const OFF: usize = 0;
    // SAFETY: the tool filled the list.
    let timers = unsafe { items::<abi::PosixTimerArg>(&args.posix_timers) };
    if timers.is_empty() {
        return Ok(());
    }
    // Linux 6.17+: timer_create takes the wanted id from its out-parameter.
    // Without it ids are handed out in order from 0, which matches a task
    // that never deleted a timer; a mismatch is reported below.
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
fn creds(c: &abi::CredsArg) -> Result<(), Fail> {
    const PR_CAPBSET_DROP: usize = 24;
    const PR_SET_SECUREBITS: usize = 28;
    const SECBIT_NO_SETUID_FIXUP: usize = 1 << 2;
    const CAP_V3: u32 = 0x2008_0522;
    if c.valid == 0 {
        return Ok(());
    }
    let n = (c.ngroups as usize).min(abi::MAX_GROUPS);
    // SAFETY: integer arguments; `groups` holds `n` live gids.
    unsafe {
        check(
            syscall5(
                nr::PRCTL,
                PR_SET_SECUREBITS,
                c.secbits as usize | SECBIT_NO_SETUID_FIXUP,
                0,
                0,
                0,
            ),
            0,
        )?;
        check(syscall2(nr::SETGROUPS, n, c.groups.as_ptr() as usize), 1)?;
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
        if word & (1 << (cap % 32)) == 0 {
            // SAFETY: integer arguments only.
            check(
                unsafe { syscall2(nr::PRCTL, PR_CAPBSET_DROP, cap as usize) },
                4,
            )?;
        }
    }
    let header: [u32; 2] = [CAP_V3, 0];
    let data: [u32; 6] = [
        c.cap_eff[0],
        c.cap_prm[0],
        c.cap_inh[0],
        c.cap_eff[1],
        c.cap_prm[1],
        c.cap_inh[1],
    ];
    // The final securebits while CAP_SETPCAP is still ours, then the
    // capability sets, which may drop it.
    // SAFETY: integer arguments; then `header` and `data` are a live
    // cap_user_header and two cap_user_data structs.
    unsafe {
        check(
            syscall5(nr::PRCTL, PR_SET_SECUREBITS, c.secbits as usize, 0, 0, 0),
            5,
        )?;
        check(
            syscall2(nr::CAPSET, header.as_ptr() as usize, data.as_ptr() as usize),
            6,
        )?;
    }
    Ok(())
}

fn close_fds(args: &RestoreArgs) -> Result<(), Fail> {
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

fn arch_syscalls(args: &RestoreArgs) -> Result<(), Fail> {
    // SAFETY: the tool filled the list with syscalls that only set state of
    // this thread (TLS bases and the like).
    for (i, s) in unsafe { items::<abi::RawSyscall>(&args.arch_syscalls) }
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
