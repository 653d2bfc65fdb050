//! Task state a dump reads beside the parasite's (scheduling), and the
//! refusals of task state CRIU's images cannot hold or a restore cannot
//! bring back: SCHED_DEADLINE, a timer slack of its own, THP disabled
//! "except advised", a controlling terminal that is not a dumped pty.

use super::{Collected, DumpError, collect_err, files, tree};
use crate::sys::sched::SchedInfo;

/// A session leader's controlling terminal comes back only if it is a pty
/// the dump holds (an end of it in some task's fds): any other one (a
/// console, a serial line, a pty whose master is outside the dump and no
/// fd of the tree on it) would be lost.
pub(super) fn refuse_lost_ctty(
    tree: &tree::Tree,
    files: &files::FileTable,
) -> Result<(), DumpError> {
    for t in tree.tasks.iter().filter(|t| !t.is_zombie()) {
        let tty = t.stat.tty_nr as u32;
        if t.stat.session != t.pid || tty == 0 {
            continue;
        }
        if crate::files::tty::dumps_terminal(&files.kinds.ttys, tty) {
            continue;
        }
        let (major, minor) = crate::files::tty::major_minor(u64::from(tty));
        return Err(DumpError::Refused {
            pid: t.pid,
            what: format!(
                "it leads its session, whose controlling terminal (device {major}:{minor}) \
                 is not a pty of the dump (no dumped fd holds an end of it)"
            ),
        });
    }
    Ok(())
}

/// A thread's timer slack (`PR_SET_TIMERSLACK`) has no place in CRIU's
/// images: a restored thread gets the restoring tool's, as a child
/// would. Refused when it differs from ours (a real-time thread's is the
/// kernel's to set: 0 on Linux 6.8+, whatever its policy is restored to).
pub(super) fn refuse_timer_slack(c: &Collected) -> Result<(), DumpError> {
    use linux_raw_sys::general::{SCHED_FIFO, SCHED_RR};
    let Some(ours) = std::fs::read_to_string("/proc/self/timerslack_ns")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    else {
        return Ok(()); // no such file before Linux 4.6: nothing to compare
    };
    let leader = c.thread.as_ref().map(|a| (c.pid, c.sched, a.timer_slack));
    let others = c
        .threads
        .iter()
        .filter_map(|t| t.args.as_ref().map(|a| (t.tid, t.sched, a.timer_slack)));
    for (tid, sched, slack) in leader.into_iter().chain(others) {
        let rt = [SCHED_FIFO, SCHED_RR].contains(&sched.base_policy());
        if !rt && slack != ours {
            return Err(DumpError::Refused {
                pid: c.pid,
                what: format!(
                    "thread {tid} has a timer slack of {slack} ns (PR_SET_TIMERSLACK), which \
                     CRIU's images cannot hold (a restored thread gets {ours} ns)"
                ),
            });
        }
    }
    Ok(())
}

/// `PR_GET_THP_DISABLE` answers 3 for Linux 6.18's
/// `PR_THP_DISABLE_EXCEPT_ADVISED` mode, which `mm_entry.thp_disabled`
/// (a bool) cannot tell from plain disabling.
pub(super) fn refuse_thp_except_advised(
    pid: i32,
    misc: &crate::blob::parasite_abi::MiscArgs,
) -> Result<(), DumpError> {
    use crate::sys::kconst::PR_THP_DISABLE_EXCEPT_ADVISED;
    if misc.thp_disabled > 0 && misc.thp_disabled & PR_THP_DISABLE_EXCEPT_ADVISED != 0 {
        return Err(DumpError::Refused {
            pid,
            what: "THP is disabled with PR_THP_DISABLE_EXCEPT_ADVISED, which CRIU's \
                   mm image (thp_disabled, a bool) cannot tell from disabled"
                .into(),
        });
    }
    Ok(())
}

/// The scheduling of thread `tid` of task `pid`; SCHED_DEADLINE is
/// refused (its parameters have no place in CRIU's images, and
/// `sched_setscheduler` cannot set it).
pub(super) fn sched_of(pid: i32, tid: rustix::process::Pid) -> Result<SchedInfo, DumpError> {
    use crate::sys::sched::{self, SCHED_DEADLINE};
    let s = sched::sched_info(tid).map_err(collect_err(pid, "scheduling"))?;
    if s.base_policy() == SCHED_DEADLINE {
        return Err(DumpError::Refused {
            pid,
            what: format!(
                "thread {} runs under SCHED_DEADLINE, whose runtime, deadline and period \
                 CRIU's images cannot hold",
                tid.as_raw_nonzero()
            ),
        });
    }
    Ok(s)
}
