//! The dump commands the daemon serves. Each fills its result block in the
//! argument area and returns 0 or `-errno`.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use criu_blob_rt::sys;

use crate::abi::{
    self, Creds, DrainFdsArgs, DumpPagesArgs, IoVec, ItimersArgs, MiscArgs, MprotectArgs,
    MprotectRegion, PosixTimer, PosixTimersArgs, SigactsArgs, ThreadArgs,
};
use crate::area::Area;
use crate::sock::{Sock, close};

const EINVAL: isize = -(criu_arch::kernel::errno::EINVAL as isize);
const EIO: isize = -(criu_arch::kernel::errno::EIO as isize);
const EINTR: isize = -(criu_arch::kernel::errno::EINTR as isize);

const PR_GET_PDEATHSIG: usize = criu_arch::kernel::prctl::PR_GET_PDEATHSIG as usize;
const PR_GET_DUMPABLE: usize = criu_arch::kernel::prctl::PR_GET_DUMPABLE as usize;
const PR_GET_NAME: usize = criu_arch::kernel::prctl::PR_GET_NAME as usize;
const PR_CAPBSET_READ: usize = criu_arch::kernel::prctl::PR_CAPBSET_READ as usize;
const PR_GET_SECUREBITS: usize = criu_arch::kernel::prctl::PR_GET_SECUREBITS as usize;
const PR_GET_TIMERSLACK: usize = criu_arch::kernel::prctl::PR_GET_TIMERSLACK as usize;
const PR_MCE_KILL_GET: usize = criu_arch::kernel::prctl::PR_MCE_KILL_GET as usize;
const PR_GET_TSC: usize = criu_arch::kernel::prctl::PR_GET_TSC as usize;
const PR_GET_CHILD_SUBREAPER: usize = criu_arch::kernel::prctl::PR_GET_CHILD_SUBREAPER as usize;
const PR_GET_NO_NEW_PRIVS: usize = criu_arch::kernel::prctl::PR_GET_NO_NEW_PRIVS as usize;
const PR_GET_TID_ADDRESS: usize = criu_arch::kernel::prctl::PR_GET_TID_ADDRESS as usize;
const PR_GET_THP_DISABLE: usize = criu_arch::kernel::prctl::PR_GET_THP_DISABLE as usize;
const PR_CAP_AMBIENT: usize = criu_arch::kernel::prctl::PR_CAP_AMBIENT as usize;
const PR_CAP_AMBIENT_IS_SET: usize = criu_arch::kernel::prctl::PR_CAP_AMBIENT_IS_SET as usize;
const LINUX_CAPABILITY_VERSION_3: u32 = criu_arch::kernel::general::_LINUX_CAPABILITY_VERSION_3;
const F_GETFD: usize = criu_arch::kernel::general::F_GETFD as usize;
const SPLICE_F_GIFT: usize = criu_arch::kernel::general::SPLICE_F_GIFT as usize;

/// Run daemon command `cmd`.
pub fn dispatch(cmd: u32, mut area: Area, sock: &Sock) -> isize {
    match cmd {
        abi::CMD_DAEMON_PING => match area.get::<abi::PingArgs>() {
            Some(a) => {
                let r = crate::ping(a);
                if r < 0 { r } else { 0 }
            }
            None => EINVAL,
        },
        abi::CMD_DUMP_MISC => area.get::<MiscArgs>().map_or(EINVAL, dump_misc),
        abi::CMD_DUMP_THREAD => area.get::<ThreadArgs>().map_or(EINVAL, dump_thread),
        abi::CMD_DUMP_SIGACTS => area.get::<SigactsArgs>().map_or(EINVAL, dump_sigacts),
        abi::CMD_DUMP_ITIMERS => area.get::<ItimersArgs>().map_or(EINVAL, dump_itimers),
        abi::CMD_DUMP_POSIX_TIMERS => dump_posix_timers(area),
        abi::CMD_MPROTECT_VMAS => mprotect_vmas(area),
        abi::CMD_DUMPPAGES => dump_pages(area, sock),
        abi::CMD_DRAIN_FDS => drain_fds(area, sock),
        abi::CMD_UFFD_WP => crate::uffd::uffd_wp(area),
        _ => abi::ERR_NO_COMMAND,
    }
}

/// Undo what must not outlive the parasite (the temporary `PROT_READ`s).
pub fn cleanup() {
    undo_mprotects();
}

fn prctl(op: usize, arg: usize) -> isize {
    // SAFETY: the prctl ops used here either take no pointer or write to
    // the pointer `arg` the caller passes (sized as the op expects).
    unsafe { sys::prctl(op, arg, 0, 0, 0) }
}

fn dump_misc(a: &mut MiscArgs) -> isize {
    // SAFETY: none of these syscalls takes a pointer.
    unsafe {
        a.brk = sys::brk(0) as u64;
        a.pid = sys::getpid() as i32;
        a.sid = sys::getsid(0) as i32;
        a.pgid = sys::getpgid(0) as i32;
        // umask() can only be read by setting it: set it back at once.
        let old = sys::umask(0);
        sys::umask(old as usize);
        a.umask = old as u32;
    }
    a.dumpable = prctl(PR_GET_DUMPABLE, 0) as i32;
    a.thp_disabled = prctl(PR_GET_THP_DISABLE, 0) as i32;
    let mut reaper: i32 = 0;
    let r = prctl(PR_GET_CHILD_SUBREAPER, &mut reaper as *mut i32 as usize);
    if r < 0 {
        return r;
    }
    a.child_subreaper = reaper;
    match membarrier_registrations() {
        Ok(mask) => a.membarrier = mask,
        Err(e) => return e,
    }
    0
}

/// The process's membarrier registrations: `MEMBARRIER_CMD_GET_REGISTRATIONS`
/// (Linux 6.3+), else CRIU's probe of each private expedited kind (the
/// barrier fails with EPERM where the process is not registered for it,
/// with EINVAL where the kernel lacks it; a global expedited
/// registration cannot be seen that way).
fn membarrier_registrations() -> Result<u32, isize> {
    use criu_arch::kernel::general::membarrier_cmd as cmd;
    const EPERM: isize = -(criu_arch::kernel::errno::EPERM as isize);
    const ENOSYS: isize = -(criu_arch::kernel::errno::ENOSYS as isize);
    const CMD_PRIVATE_EXPEDITED: usize = cmd::MEMBARRIER_CMD_PRIVATE_EXPEDITED as usize;
    const CMD_PRIVATE_EXPEDITED_SYNC_CORE: usize =
        cmd::MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE as usize;
    const CMD_PRIVATE_EXPEDITED_RSEQ: usize = cmd::MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ as usize;
    const CMD_GET_REGISTRATIONS: usize = cmd::MEMBARRIER_CMD_GET_REGISTRATIONS as usize;
    let call = |cmd: usize| {
        // SAFETY: integer arguments only.
        unsafe { sys::membarrier(cmd, 0, 0) }
    };
    let r = call(CMD_GET_REGISTRATIONS);
    if r >= 0 {
        return Ok(r as u32);
    }
    if r == ENOSYS {
        return Ok(0); // no membarrier at all
    }
    if r != EINVAL {
        return Err(r);
    }
    let mut mask = 0;
    for cmd in [
        CMD_PRIVATE_EXPEDITED,
        CMD_PRIVATE_EXPEDITED_SYNC_CORE,
        CMD_PRIVATE_EXPEDITED_RSEQ,
    ] {
        match call(cmd) {
            // Registering for a barrier is the barrier's command << 1.
            0 => mask |= (cmd << 1) as u32,
            EPERM | EINVAL => {}
            e => return Err(e),
        }
    }
    Ok(mask)
}

pub fn dump_thread(a: &mut ThreadArgs) -> isize {
    let mut tid_addr: u64 = 0;
    let r = prctl(PR_GET_TID_ADDRESS, &mut tid_addr as *mut u64 as usize);
    if r < 0 {
        return r;
    }
    a.tid_addr = tid_addr;
    let mut sas = criu_arch::StackT::default();
    // SAFETY: sigaltstack writes one stack_t to our local.
    let r = unsafe { sys::sigaltstack(0, &mut sas as *mut _ as usize) };
    if r < 0 {
        return r;
    }
    a.sas_sp = sas.sp;
    a.sas_flags = sas.flags;
    a.sas_size = sas.size;
    let mut pdeath: i32 = 0;
    let r = prctl(PR_GET_PDEATHSIG, &mut pdeath as *mut i32 as usize);
    if r < 0 {
        return r;
    }
    a.pdeath_sig = pdeath;
    let mut comm = [0u8; 16];
    let r = prctl(PR_GET_NAME, comm.as_mut_ptr() as usize);
    if r < 0 {
        return r;
    }
    a.comm = comm;
    let slack = prctl(PR_GET_TIMERSLACK, 0);
    if slack < 0 {
        return slack;
    }
    a.timer_slack = slack as u64;
    let mce = prctl(PR_MCE_KILL_GET, 0);
    if mce < 0 {
        return mce;
    }
    a.mce_kill = mce as i32;
    // x86 only: elsewhere EINVAL, and no TSC setting to lose.
    let mut tsc: i32 = 0;
    match prctl(PR_GET_TSC, &mut tsc as *mut i32 as usize) {
        r if r < 0 && r != EINVAL => return r,
        _ => a.tsc = tsc,
    }
    // SAFETY: gettid takes no arguments.
    a.tid = unsafe { sys::gettid() } as i32;
    dump_creds(&mut a.creds)
}

fn dump_creds(c: &mut Creds) -> isize {
    let hdr: [u32; 2] = [LINUX_CAPABILITY_VERSION_3, 0];
    // Two `__user_cap_data_struct`s: {effective, permitted, inheritable}.
    let mut data = [0u32; 6];
    // SAFETY: capget reads the header and writes two data structs.
    let r = unsafe { sys::capget(hdr.as_ptr() as usize, data.as_mut_ptr() as usize) };
    if r < 0 {
        return r;
    }
    let [e0, p0, i0, e1, p1, i1] = data;
    c.cap_eff = [e0, e1];
    c.cap_prm = [p0, p1];
    c.cap_inh = [i0, i1];
    c.cap_bnd = [0; 2];
    c.cap_amb = [0; 2];
    c.cap_last = 64;
    for cap in 0..64usize {
        let r = prctl(PR_CAPBSET_READ, cap);
        if r < 0 {
            c.cap_last = cap as u32;
            break;
        }
        let word = cap / 32;
        if let Some(w) = c.cap_bnd.get_mut(word)
            && r > 0
        {
            *w |= 1 << (cap % 32);
        }
        // SAFETY: PR_CAP_AMBIENT takes integers only.
        let amb = unsafe { sys::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) };
        if let Some(w) = c.cap_amb.get_mut(word)
            && amb > 0
        {
            *w |= 1 << (cap % 32);
        }
    }
    c.no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0).max(0) as u32;
    c.secbits = prctl(PR_GET_SECUREBITS, 0).max(0) as u32;
    let mut ids = [0u32; 3];
    // SAFETY: getresuid/getresgid write one u32 to each of three pointers.
    let r = unsafe {
        sys::getresuid(
            ids.as_mut_ptr() as usize,
            ids.as_mut_ptr().wrapping_add(1) as usize,
            ids.as_mut_ptr().wrapping_add(2) as usize,
        )
    };
    if r < 0 {
        return r;
    }
    // setfsuid(-1) fails but returns the current fsuid.
    // SAFETY: integer-only syscall.
    let fsuid = unsafe { sys::setfsuid(usize::MAX) } as u32;
    c.uids = [ids[0], ids[1], ids[2], fsuid];
    // SAFETY: as for getresuid.
    let r = unsafe {
        sys::getresgid(
            ids.as_mut_ptr() as usize,
            ids.as_mut_ptr().wrapping_add(1) as usize,
            ids.as_mut_ptr().wrapping_add(2) as usize,
        )
    };
    if r < 0 {
        return r;
    }
    // SAFETY: integer-only syscall.
    let fsgid = unsafe { sys::setfsgid(usize::MAX) } as u32;
    c.gids = [ids[0], ids[1], ids[2], fsgid];
    // SAFETY: getgroups writes at most `size` gids into `groups`.
    let r = unsafe { sys::getgroups(abi::CREDS_MAX_GROUPS, c.groups.as_mut_ptr() as usize) };
    if r < 0 {
        return r;
    }
    c.ngroups = r as u32;
    0
}

fn dump_sigacts(a: &mut SigactsArgs) -> isize {
    for (i, act) in a.acts.iter_mut().enumerate() {
        let sig = i + 1;
        *act = abi::Sigaction::default();
        if sig == criu_arch::sig::SIGKILL || sig == criu_arch::sig::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction writes one kernel sigaction to `act`.
        let r = unsafe {
            sys::rt_sigaction(
                sig,
                0,
                act as *mut abi::Sigaction as usize,
                criu_arch::KSIGSET_SIZE,
            )
        };
        if r < 0 {
            return r;
        }
    }
    0
}

fn dump_itimers(a: &mut ItimersArgs) -> isize {
    for (which, t) in a.timers.iter_mut().enumerate() {
        // SAFETY: getitimer writes one itimerval (four longs) to `t`.
        let r = unsafe { sys::getitimer(which, t as *mut abi::Itimerval as usize) };
        if r < 0 {
            return r;
        }
    }
    0
}

fn dump_posix_timers(mut area: Area) -> isize {
    let Some(hdr) = area.get::<PosixTimersArgs>() else {
        return EINVAL;
    };
    let nr_timers = hdr.nr;
    let Some(timers) = area.array::<PosixTimer>(core::mem::size_of::<PosixTimersArgs>(), nr_timers)
    else {
        return EINVAL;
    };
    for t in timers.iter_mut() {
        let mut spec = [0i64; 4];
        // SAFETY: timer_gettime writes one itimerspec (four longs).
        let r = unsafe { sys::timer_gettime(t.id as usize, spec.as_mut_ptr() as usize) };
        if r < 0 {
            return r;
        }
        let [isec, insec, vsec, vnsec] = spec;
        t.interval_sec = isec;
        t.interval_nsec = insec;
        t.value_sec = vsec;
        t.value_nsec = vnsec;
        // SAFETY: integer-only syscall.
        let r = unsafe { sys::timer_getoverrun(t.id as usize) };
        if r < 0 {
            return r;
        }
        t.overrun = r as i32;
    }
    0
}

/// Regions whose protection MPROTECT_VMAS changed: (start, len, orig).
static SAVED: [AtomicU64; 3 * abi::MPROTECT_MAX] =
    [const { AtomicU64::new(0) }; 3 * abi::MPROTECT_MAX];
static NR_SAVED: AtomicUsize = AtomicUsize::new(0);

fn mprotect(start: u64, len: u64, prot: u64) -> isize {
    // SAFETY: mprotect changes only the task's own mappings, as the tool asked.
    unsafe { sys::mprotect(start as usize, len as usize, prot as usize) }
}

fn undo_mprotects() -> isize {
    let n = NR_SAVED.swap(0, Ordering::Relaxed);
    let mut ret = 0;
    for i in 0..n.min(abi::MPROTECT_MAX) {
        let word = |k: usize| {
            SAVED
                .get(3 * i + k)
                .map_or(0, |w| w.load(Ordering::Relaxed))
        };
        let r = mprotect(word(0), word(1), word(2));
        if r < 0 && ret == 0 {
            ret = r;
        }
    }
    ret
}

fn mprotect_vmas(mut area: Area) -> isize {
    let Some(hdr) = area.get::<MprotectArgs>() else {
        return EINVAL;
    };
    if hdr.undo != 0 {
        return undo_mprotects();
    }
    let nr_regions = u64::from(hdr.nr);
    let Some(regions) =
        area.array::<MprotectRegion>(core::mem::size_of::<MprotectArgs>(), nr_regions)
    else {
        return EINVAL;
    };
    for r in regions.iter() {
        let n = NR_SAVED.load(Ordering::Relaxed);
        if n >= abi::MPROTECT_MAX {
            return -7; // -E2BIG
        }
        let ret = mprotect(r.start, r.len, r.prot);
        if ret < 0 {
            return ret;
        }
        for (k, v) in [r.start, r.len, r.orig].into_iter().enumerate() {
            if let Some(w) = SAVED.get(3 * n + k) {
                w.store(v, Ordering::Relaxed);
            }
        }
        NR_SAVED.store(n + 1, Ordering::Relaxed);
    }
    0
}

fn dump_pages(area: Area, sock: &Sock) -> isize {
    let pipe = match sock.recv_fd() {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    let ret = splice_iovs(area, pipe);
    close(pipe);
    ret
}

/// `vmsplice` every iovec into `pipe`, blocking while the pipe is full: the
/// tool drains it into the pages image at the same time, so a batch may be
/// far larger than the pipe. The kernel moves what fits on each call, so
/// the iovecs (ours to change: the tool rewrites them for every batch) are
/// advanced past what went in and the rest offered again.
fn splice_iovs(mut area: Area, pipe: i32) -> isize {
    let Some(hdr) = area.get::<DumpPagesArgs>() else {
        return EINVAL;
    };
    let (nr_iovs, total) = (hdr.nr_iovs, hdr.total);
    let Some(iovs) = area.array::<IoVec>(core::mem::size_of::<DumpPagesArgs>(), nr_iovs) else {
        return EINVAL;
    };
    let mut moved: u64 = 0;
    let mut next = 0;
    while let Some(rest) = iovs.get_mut(next..) {
        if rest.is_empty() {
            break;
        }
        let chunk = rest.len().min(abi::UIO_MAXIOV);
        // SAFETY: the iovecs describe the task's own memory; vmsplice only
        // reads them and the pages they name.
        let r =
            unsafe { sys::vmsplice(pipe as usize, rest.as_ptr() as usize, chunk, SPLICE_F_GIFT) };
        if r == EINTR {
            continue;
        }
        if r < 0 {
            return r;
        }
        if r == 0 {
            // Nothing moved with data left: do not spin.
            return EIO;
        }
        moved += r as u64;
        next += advance(rest, r as u64);
    }
    if moved != total { EIO } else { 0 }
}

/// Consume `done` bytes from the front of `iovs`: returns how many iovecs
/// are used up, and shortens the first one left.
fn advance(iovs: &mut [IoVec], mut done: u64) -> usize {
    let mut used = 0;
    for v in iovs.iter_mut() {
        if done < v.len {
            v.base += done;
            v.len -= done;
            break;
        }
        done -= v.len;
        used += 1;
    }
    used
}

fn drain_fds(mut area: Area, sock: &Sock) -> isize {
    let Some(nr_fds) = area.get::<DrainFdsArgs>().map(|hdr| hdr.nr) else {
        return EINVAL;
    };
    let Some(fds) = area.array::<i32>(core::mem::size_of::<DrainFdsArgs>(), nr_fds) else {
        return EINVAL;
    };
    for chunk in fds.chunks_mut(abi::SCM_MAX_FD) {
        let r = sock.send_fds(chunk);
        if r < 0 {
            return r;
        }
        for fd in chunk.iter_mut() {
            // SAFETY: integer-only syscall.
            let flags = unsafe { sys::fcntl(*fd as usize, F_GETFD) };
            if flags < 0 {
                return flags;
            }
            *fd = flags as i32;
        }
    }
    0
}
