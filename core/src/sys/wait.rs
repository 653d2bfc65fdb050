//! wait4(2): reap a child and learn what it used (`struct rusage`).
//!
//! rustix's `waitpid` drops the rusage the kernel fills in, and a child's
//! peak RSS (`ru_maxrss`) is only available this way once it has gone (its
//! `/proc/PID/status` `VmHWM` vanishes with it). The benchmark measures
//! criu's own memory with it.

use std::time::Duration;

use linux_raw_sys::general::{__kernel_old_timeval, rusage};
use rustix::io::Errno;
use rustix::process::Pid;

// The kernel's `struct rusage` (include/uapi/linux/resource.h): two
// `timeval`s, then fourteen longs. Pinned so a change in the bindings shows
// up at build time rather than as garbage figures.
const LONG: usize = size_of::<core::ffi::c_long>();
const _: () = assert!(size_of::<__kernel_old_timeval>() == 2 * LONG);
const _: () = assert!(core::mem::offset_of!(rusage, ru_utime) == 0);
const _: () = assert!(core::mem::offset_of!(rusage, ru_stime) == 2 * LONG);
const _: () = assert!(core::mem::offset_of!(rusage, ru_maxrss) == 4 * LONG);
const _: () = assert!(core::mem::offset_of!(rusage, ru_minflt) == 8 * LONG);
const _: () = assert!(core::mem::offset_of!(rusage, ru_majflt) == 9 * LONG);
const _: () = assert!(core::mem::offset_of!(rusage, ru_nvcsw) == 16 * LONG);
const _: () = assert!(core::mem::offset_of!(rusage, ru_nivcsw) == 17 * LONG);
const _: () = assert!(size_of::<rusage>() == 18 * LONG);

/// How a reaped child ended (the decoded wait status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Neither (only with `WUNTRACED`/`WCONTINUED`, which [`wait4`] does
    /// not pass): the raw status.
    Other(i32),
}

impl ChildExit {
    fn from_raw(st: i32) -> Self {
        let sig = st & 0x7f;
        if sig == 0 {
            ChildExit::Exited((st >> 8) & 0xff)
        } else if sig != 0x7f {
            ChildExit::Signaled(sig)
        } else {
            ChildExit::Other(st)
        }
    }

    /// Exited with code 0.
    pub fn success(self) -> bool {
        self == ChildExit::Exited(0)
    }
}

/// What the kernel reports about a reaped child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildUsage {
    pub exit: ChildExit,
    /// CPU time in user mode.
    pub user: Duration,
    /// CPU time in the kernel.
    pub system: Duration,
    /// Peak resident set size, KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    /// Page faults without / with I/O.
    pub minor_faults: u64,
    pub major_faults: u64,
    /// Voluntary / involuntary context switches.
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

fn timeval(tv: &__kernel_old_timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0).min(999_999);
    Duration::new(secs, micros * 1000)
}

fn count(v: core::ffi::c_long) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Waits (blocking, retrying on `EINTR`) for the child `pid` to end, reaps
/// it, and returns how it ended with its resource usage.
pub fn wait4(pid: Pid) -> Result<ChildUsage, Errno> {
    let mut status: i32 = 0;
    // SAFETY: all-zero is a valid `rusage` (plain integers).
    let mut ru: rusage = unsafe { core::mem::zeroed() };
    loop {
        // SAFETY: the kernel writes one int to `status` and one `rusage`
        // (layout pinned above) to `ru`, both live locals of ours.
        let ret = unsafe {
            criu_arch::syscall4(
                criu_arch::nr::WAIT4,
                pid.as_raw_nonzero().get() as usize,
                &mut status as *mut i32 as usize,
                0,
                &mut ru as *mut rusage as usize,
            )
        };
        if ret >= 0 {
            break;
        }
        let e = Errno::from_raw_os_error(-ret as i32);
        if e != Errno::INTR {
            return Err(e);
        }
    }
    Ok(ChildUsage {
        exit: ChildExit::from_raw(status),
        user: timeval(&ru.ru_utime),
        system: timeval(&ru.ru_stime),
        max_rss_kib: count(ru.ru_maxrss),
        minor_faults: count(ru.ru_minflt),
        major_faults: count(ru.ru_majflt),
        voluntary_switches: count(ru.ru_nvcsw),
        involuntary_switches: count(ru.ru_nivcsw),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaps_a_child_and_reports_its_exit_and_rss() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("spawn sh");
        let pid = Pid::from_raw(child.id() as i32).expect("pid");
        let u = wait4(pid).expect("wait4");
        assert_eq!(u.exit, ChildExit::Exited(7));
        assert!(!u.exit.success());
        // Any process has some resident memory.
        assert!(u.max_rss_kib > 0, "{u:?}");
        // Reaped: a second wait finds no such child.
        assert_eq!(wait4(pid), Err(Errno::CHILD));
        // std would otherwise try to reap it again in Drop (it does not,
        // but keep the handle alive until here).
        drop(child);
    }

    #[test]
    fn decodes_a_signal_death() {
        assert_eq!(ChildExit::from_raw(9), ChildExit::Signaled(9));
        assert_eq!(ChildExit::from_raw(0), ChildExit::Exited(0));
        assert!(ChildExit::from_raw(0).success());
    }
}
