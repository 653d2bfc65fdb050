//! The root's own time namespace (every task of the tree in it; which
//! namespaces the images give the root is [`super::root_ns`]'s), made
//! with offsets that let its `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` go on
//! from the values `timens-ID.img` holds (CRIU's `prepare_timens`). The
//! tool unshares one for its children, sets the offsets, forks the root
//! into it and goes back to its own: see [`TimeNs::fork_in`].

use std::os::fd::OwnedFd;

use rustix::io::Errno;

use super::RestoreError;
use crate::images::pb;

/// `CLONE_NEWTIME` (the uapi value; linux-raw-sys has it as a u32).
const CLONE_NEWTIME: u32 = linux_raw_sys::general::CLONE_NEWTIME;

/// A time namespace for the root, its clocks set to go on from `at`.
pub struct TimeNs<'a> {
    pub at: &'a pb::TimensEntry,
}

impl TimeNs<'_> {
    /// The offsets that make the new namespace's clocks read `at` now.
    fn offsets(&self) -> String {
        let now = |id| {
            let t = rustix::time::clock_gettime(id);
            i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
        };
        let want =
            |ts: &pb::Timespec| i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec);
        let line = |name: &str, off: i128| {
            // Seconds and a non-negative nanosecond part, as the kernel
            // wants them.
            let (s, ns) = (off.div_euclid(1_000_000_000), off.rem_euclid(1_000_000_000));
            format!("{name} {s} {ns}\n")
        };
        let mono = want(&self.at.monotonic) - now(rustix::time::ClockId::Monotonic);
        let boot = want(&self.at.boottime) - now(rustix::time::ClockId::Boottime);
        format!("{}{}", line("monotonic", mono), line("boottime", boot))
    }

    /// Run `fork` (which forks the root) with the calling thread's
    /// children going into a new time namespace with the offsets set,
    /// then put the thread's own back (for whatever it forks later:
    /// hooks, helpers). The kernel lets only a single-threaded task
    /// change its time namespace, and takes the offsets from the thread
    /// group's leader: the tool must be both here, or the restore fails
    /// before anything is forked.
    pub fn fork_in<T>(
        &self,
        fork: impl FnOnce() -> Result<T, RestoreError>,
    ) -> Result<T, RestoreError> {
        let threads = crate::proc::ProcDir::open_self()
            .and_then(|p| p.threads())
            .map_err(|e| RestoreError::Unsupported(e.to_string()))?;
        if threads.len() != 1 || rustix::thread::gettid() != rustix::process::getpid() {
            return Err(RestoreError::Unsupported(format!(
                "a time namespace is made by a single-threaded criu only (it has {} threads)",
                threads.len()
            )));
        }
        let own: OwnedFd = rustix::fs::open(
            "/proc/self/ns/time_for_children",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| RestoreError::Open("/proc/self/ns/time_for_children".into(), e))?;
        crate::sys::probe::unshare_this_thread(CLONE_NEWTIME)
            .map_err(|e| RestoreError::Sys("unshare(CLONE_NEWTIME)", e))?;
        let back = || {
            let undo = rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&own),
                Some(rustix::thread::LinkNameSpaceType::Time),
            );
            if let Err(e) = undo {
                crate::pr_warn!("cannot put criu's own time namespace back for its children: {e}");
            }
        };
        let offsets = self.offsets();
        crate::pr_info!(
            "time namespace offsets: {}",
            offsets.trim().replace('\n', ", ")
        );
        if let Err(e) = std::fs::write("/proc/self/timens_offsets", &offsets) {
            back();
            let errno = Errno::from_io_error(&e).unwrap_or(Errno::INVAL);
            return Err(RestoreError::Sys("write(/proc/self/timens_offsets)", errno));
        }
        let r = fork();
        back();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_whole_seconds_and_positive_nanoseconds() {
        // A clock far behind now: a negative offset.
        let at = pb::TimensEntry {
            monotonic: pb::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            boottime: pb::Timespec {
                tv_sec: 1 << 40,
                tv_nsec: 5,
            },
        };
        let text = TimeNs { at: &at }.offsets();
        let lines: Vec<Vec<i128>> = text
            .lines()
            .map(|l| l.split(' ').skip(1).map(|x| x.parse().unwrap()).collect())
            .collect();
        assert!(text.starts_with("monotonic "), "{text}");
        assert!(
            lines[0][0] < 0 && (0..1_000_000_000).contains(&lines[0][1]),
            "{text}"
        );
        assert!(
            lines[1][0] > 0 && (0..1_000_000_000).contains(&lines[1][1]),
            "{text}"
        );
    }
}
