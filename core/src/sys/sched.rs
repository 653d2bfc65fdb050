//! A thread's scheduling, read from outside it as CRIU reads it:
//! `sched_getscheduler` (which, unlike `/proc/PID/stat`, reports
//! SCHED_RESET_ON_FORK), `sched_getparam` and `getpriority`; and what
//! CRIU's images have no field for, for a dump to compare with the
//! tool's own: the CPU affinity and the I/O priority.

use rustix::io::Errno;
use rustix::process::Pid;

/// `SCHED_DEADLINE`: its runtime, deadline and period live only in
/// `sched_attr`, which CRIU's images have no field for.
pub const SCHED_DEADLINE: u32 = linux_raw_sys::general::SCHED_DEADLINE;
/// The flag `sched_getscheduler` ORs into the policy.
pub const SCHED_RESET_ON_FORK: u32 = linux_raw_sys::general::SCHED_RESET_ON_FORK;

/// One thread's scheduling (CRIU's `thread_core_entry` sched_* fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedInfo {
    /// The policy, with [`SCHED_RESET_ON_FORK`] if set.
    pub policy: u32,
    /// The real-time priority (0 for the normal policies).
    pub prio: u32,
    /// The nice value (kept by the kernel under a real-time policy too).
    pub nice: i32,
}

impl SchedInfo {
    /// The policy without the reset-on-fork flag.
    pub fn base_policy(&self) -> u32 {
        self.policy & !SCHED_RESET_ON_FORK
    }
}

/// The scheduling of thread `tid`.
pub fn sched_info(tid: Pid) -> Result<SchedInfo, Errno> {
    let t = tid.as_raw_nonzero().get() as usize;
    // SAFETY: integer arguments only.
    let policy = unsafe { criu_arch::syscall1(criu_arch::nr::SCHED_GETSCHEDULER, t) };
    let policy = check(policy)? as u32;
    let mut prio: i32 = 0;
    // SAFETY: `prio` is a live struct sched_param (one int) the kernel
    // writes.
    let ret = unsafe {
        criu_arch::syscall2(
            criu_arch::nr::SCHED_GETPARAM,
            t,
            &mut prio as *mut i32 as usize,
        )
    };
    check(ret)?;
    let nice = rustix::process::getpriority_process(Some(tid))?;
    Ok(SchedInfo {
        policy,
        prio: prio.max(0) as u32,
        nice,
    })
}

/// The CPUs thread `tid` may run on (`sched_getaffinity`; `None`: the
/// calling thread), in increasing order.
pub fn affinity(tid: Option<Pid>) -> Result<Vec<usize>, Errno> {
    let set = rustix::thread::sched_getaffinity(tid)?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect())
}

/// Thread `tid`'s I/O priority as `ioprio_get(IOPRIO_WHO_PROCESS)`
/// returns it (class << 13 | level; `None`: the calling thread).
pub fn ioprio(tid: Option<Pid>) -> Result<u32, Errno> {
    let t = tid.map_or(0, |t| t.as_raw_nonzero().get() as usize);
    let who = crate::sys::kconst::IOPRIO_WHO_PROCESS as usize;
    // SAFETY: integer arguments only.
    let ret =
        unsafe { criu_arch::syscall2(linux_raw_sys::general::__NR_ioprio_get as usize, who, t) };
    Ok(check(ret)? as u32)
}

fn check(ret: isize) -> Result<isize, Errno> {
    if ret < 0 {
        Err(Errno::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_scheduling() {
        let me = rustix::process::getpid();
        let s = sched_info(me).unwrap();
        assert_eq!(s.prio, 0, "{s:?}");
        assert_eq!(s.nice, rustix::process::getpriority_process(None).unwrap());
        assert_ne!(s.base_policy(), SCHED_DEADLINE);
    }

    #[test]
    fn our_own_affinity_and_ioprio_read_the_same_by_pid() {
        let me = rustix::process::getpid();
        let cpus = affinity(None).unwrap();
        assert!(!cpus.is_empty());
        assert_eq!(affinity(Some(me)).unwrap(), cpus);
        assert_eq!(ioprio(Some(me)).unwrap(), ioprio(None).unwrap());
    }
}
