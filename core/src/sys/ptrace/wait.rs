//! `wait4` for tracees, bounded in time.

use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions};

use super::Signal;

/// What `wait4` reported about a tracee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal.
    Killed(Signal),
    /// Stopped for the tracer: `sig` is the stop signal and `event` the
    /// `PTRACE_EVENT_*` (0 for a plain signal-delivery stop).
    Stopped { sig: Signal, event: u32 },
    /// A syscall entry or exit stop (needs `TRACESYSGOOD`).
    SyscallStop,
}

impl WaitStatus {
    fn from_raw(status: u32) -> Self {
        let low = status & 0x7f;
        if low == 0 {
            WaitStatus::Exited(((status >> 8) & 0xff) as i32)
        } else if status & 0xff == 0x7f {
            let sig = ((status >> 8) & 0xff) as i32;
            if sig == (linux_raw_sys::general::SIGTRAP as i32 | 0x80) {
                WaitStatus::SyscallStop
            } else {
                WaitStatus::Stopped {
                    sig,
                    event: (status >> 16) & 0xff,
                }
            }
        } else {
            WaitStatus::Killed(low as i32)
        }
    }
}

/// How long [`wait`] waits for a tracee before giving up: far beyond any
/// stop our own requests cause (microseconds), short enough that a tracee
/// that will never stop (frozen by a cgroup, stuck in the kernel) is
/// reported instead of hanging the tool.
pub const WAIT_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

/// `wait4(pid, __WALL)` for at most [`WAIT_BOUND`]: any state change of
/// one tracee (or child), whether it is a thread or a process. `ETIMEDOUT`
/// when nothing happened in time (the tracee is left as it is).
pub fn wait(pid: Pid) -> Result<WaitStatus, Errno> {
    wait_until(pid, std::time::Instant::now() + WAIT_BOUND)
}

/// [`wait`] until `deadline`, then `ETIMEDOUT`. The kernel has no wait4
/// with a timeout (and a pidfd polls readable only on exit, not on a
/// stop), so this polls with `WNOHANG`, napping a little longer each time
/// up to 2 ms: a stop our own request causes arrives within microseconds.
pub fn wait_until(pid: Pid, deadline: std::time::Instant) -> Result<WaitStatus, Errno> {
    use std::time::{Duration, Instant};
    let mut nap = Duration::from_micros(10);
    loop {
        if let Some(status) = try_wait(pid)? {
            return Ok(status);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Errno::TIMEDOUT);
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(2));
    }
}

/// `wait4(pid, __WALL | WNOHANG)`: a state change of the tracee if there is
/// one now, else `None`.
pub fn try_wait(pid: Pid) -> Result<Option<WaitStatus>, Errno> {
    let opts = WaitOptions::from_bits_retain(linux_raw_sys::general::__WALL) | WaitOptions::NOHANG;
    loop {
        match rustix::process::waitpid(Some(pid), opts) {
            Ok(Some((_, status))) => {
                return Ok(Some(WaitStatus::from_raw(status.as_raw() as u32)));
            }
            Ok(None) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decoding() {
        assert_eq!(WaitStatus::from_raw(3 << 8), WaitStatus::Exited(3));
        assert_eq!(WaitStatus::from_raw(9), WaitStatus::Killed(9));
        assert_eq!(
            WaitStatus::from_raw(0x7f | (5 << 8) | (128 << 16)),
            WaitStatus::Stopped { sig: 5, event: 128 }
        );
        assert_eq!(
            WaitStatus::from_raw(0x7f | (19 << 8)),
            WaitStatus::Stopped { sig: 19, event: 0 }
        );
        assert_eq!(
            WaitStatus::from_raw(0x7f | (0x85 << 8)),
            WaitStatus::SyscallStop
        );
    }
}
