//! Task state a dump reads beside the parasite's (scheduling), and the
//! refusals of task state CRIU's images cannot hold or a restore cannot
//! bring back: SCHED_DEADLINE, a timer slack of its own, THP disabled
//! "except advised", a controlling terminal that is not a dumped pty, an
//! exit signal other than SIGCHLD, a CPU affinity, an I/O priority, a
//! machine-check kill policy or a TSC setting of its own, a
//! coredump_filter other than the tool's. A restored task
//! inherits those from the restoring tool, as a child would: they are
//! refused only where they differ from what it would get.

use super::{Collected, DumpError, collect_err, tree};
use crate::sys::sched::SchedInfo;

/// A session leader's controlling terminal comes back only if it is a pty
/// the dump holds (an end of it in some task's fds): any other one (a
/// console, a serial line, a pty whose master is outside the dump and no
/// fd of the tree on it) would be lost.
pub(super) fn refuse_lost_ctty(
    tree: &tree::Tree,
    files: &crate::files::table::FileTable,
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

/// A thread's machine-check kill policy (`PR_MCE_KILL`) and, on x86,
/// its TSC readability (`PR_SET_TSC`) have no place in CRIU's images: a
/// restored thread gets the restoring tool's. Refused where they differ
/// (the parasite's DUMP_THREAD read them).
pub(super) fn refuse_thread_prctls(c: &Collected) -> Result<(), DumpError> {
    use rustix::process::{
        machine_check_memory_corruption_kill_policy as mce_kill,
        time_stamp_counter_readability as tsc,
    };
    let our_mce = mce_kill().map_err(collect_err(c.pid, "the tool's PR_MCE_KILL_GET"))? as i32;
    // EINVAL off x86, where the parasite reads 0 as well.
    let our_tsc = tsc().map_or(0, |t| t as i32);
    let leader = c.thread.as_ref().map(|a| (c.pid, a));
    let others = c
        .threads
        .iter()
        .filter_map(|t| t.args.as_ref().map(|a| (t.tid, a)));
    for (tid, a) in leader.into_iter().chain(others) {
        let what = if a.mce_kill != our_mce {
            format!(
                "thread {tid} has machine-check kill policy {} (PR_MCE_KILL; the tool's is {our_mce})",
                a.mce_kill
            )
        } else if a.tsc != our_tsc && !strict_tsc(c, tid, a.tsc) {
            format!(
                "thread {tid} has TSC readability {} (PR_SET_TSC; the tool's is {our_tsc})",
                a.tsc
            )
        } else {
            continue;
        };
        return Err(DumpError::Refused {
            pid: c.pid,
            what: format!("{what}, which CRIU's images cannot hold"),
        });
    }
    Ok(())
}

/// x86 strict seccomp mode makes the TSC unreadable (`PR_TSC_SIGSEGV`)
/// itself, and restoring the mode does it again.
fn strict_tsc(c: &Collected, tid: i32, tsc: i32) -> bool {
    const PR_TSC_SIGSEGV: i32 = linux_raw_sys::prctl::PR_TSC_SIGSEGV as i32;
    tsc == PR_TSC_SIGSEGV
        && c.seccomp
            .iter()
            .any(|s| s.tid == tid && s.mode == crate::images::set::seccomp::MODE_STRICT)
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

/// A task created by `clone` with an exit signal other than SIGCHLD (0
/// included: its parent waits for it with `__WCLONE`) comes back with
/// SIGCHLD, which `pstree.img` cannot change. Zombies included: a wait
/// for them would change too.
pub(super) fn refuse_exit_signals(tree: &tree::Tree) -> Result<(), DumpError> {
    let sigchld = linux_raw_sys::general::SIGCHLD as i32;
    match tree.tasks.iter().find(|t| t.stat.exit_signal != sigchld) {
        None => Ok(()),
        Some(t) => Err(DumpError::Refused {
            pid: t.pid,
            what: format!(
                "it was created with exit signal {} instead of SIGCHLD ({sigchld}), which \
                 CRIU's images cannot hold",
                t.stat.exit_signal
            ),
        }),
    }
}

/// A thread's CPU affinity and I/O priority have no place in CRIU's
/// images (a restored thread gets the restoring tool's): refused where
/// they differ from the tool's. `ioprio_get` answers the priority set,
/// not the one in effect: a thread that never set one reads the default
/// (class NONE; best effort 4 before Linux 6.0), which the tool's
/// default stands for.
pub(super) fn refuse_thread_attrs(pid: i32, tid: rustix::process::Pid) -> Result<(), DumpError> {
    use crate::sys::sched::{affinity, ioprio};
    let t = tid.as_raw_nonzero();
    let ours = affinity(None).map_err(collect_err(pid, "the tool's CPU affinity"))?;
    let cpus = affinity(Some(tid)).map_err(collect_err(pid, "CPU affinity"))?;
    if cpus != ours {
        return Err(DumpError::Refused {
            pid,
            what: format!(
                "thread {t} may run on CPUs {} only (sched_setaffinity), which CRIU's images \
                 cannot hold (a restored thread gets CPUs {})",
                cpu_list(&cpus),
                cpu_list(&ours)
            ),
        });
    }
    let ours = ioprio(None).map_err(collect_err(pid, "the tool's I/O priority"))?;
    let prio = ioprio(Some(tid)).map_err(collect_err(pid, "I/O priority"))?;
    if !same_ioprio(prio, ours) {
        let (class, level) = ioprio_parts(prio);
        return Err(DumpError::Refused {
            pid,
            what: format!(
                "thread {t} has I/O priority class {class} level {level} (ioprio_set), which \
                 CRIU's images cannot hold"
            ),
        });
    }
    Ok(())
}

/// Whether a thread with I/O priority `prio` keeps it when it gets the
/// tool's, `ours`: the same, or both a default (never set).
fn same_ioprio(prio: u32, ours: u32) -> bool {
    use crate::sys::kconst::{IOPRIO_CLASS_BE, IOPRIO_CLASS_NONE, IOPRIO_NORM};
    let default =
        |p| [(IOPRIO_CLASS_NONE, 0), (IOPRIO_CLASS_BE, IOPRIO_NORM)].contains(&ioprio_parts(p));
    prio == ours || (default(prio) && default(ours))
}

/// The class and level of an I/O priority.
fn ioprio_parts(prio: u32) -> (u32, u32) {
    let shift = crate::sys::kconst::IOPRIO_CLASS_SHIFT;
    (prio >> shift, prio & ((1 << shift) - 1))
}

/// `0-3,6` for CPUs 0, 1, 2, 3 and 6.
fn cpu_list(cpus: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &c in cpus {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == c => *end = c,
            _ => runs.push((c, c)),
        }
    }
    let run = |&(a, b): &(usize, usize)| match a == b {
        true => a.to_string(),
        false => format!("{a}-{b}"),
    };
    runs.iter().map(run).collect::<Vec<_>>().join(",")
}

/// The process's `coredump_filter` (the mm's dump flags) has no place in
/// CRIU's images: a restored task gets the restoring tool's.
pub(super) fn refuse_coredump_filter(proc: &crate::proc::ProcDir) -> Result<(), DumpError> {
    let pid = proc.pid();
    let read = |path: String| std::fs::read_to_string(path).map(|s| s.trim().to_string());
    let Ok(ours) = read("/proc/self/coredump_filter".into()) else {
        return Ok(()); // no ELF core dumps in this kernel: nothing to lose
    };
    let theirs = read(format!("/proc/{pid}/coredump_filter"))
        .map_err(collect_err(pid, "coredump_filter"))?;
    if theirs != ours {
        return Err(DumpError::Refused {
            pid,
            what: format!(
                "its coredump_filter is {theirs} (the tool's is {ours}), which CRIU's images \
                 cannot hold"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_as_ranges() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(cpu_list(&[1]), "1");
        assert_eq!(cpu_list(&[0, 2, 3]), "0,2-3");
    }

    #[test]
    fn ioprio_own_or_the_tools() {
        let v = |class: u32, level: u32| class << 13 | level;
        assert!(same_ioprio(0, 0));
        assert!(same_ioprio(v(2, 4), 0));
        assert!(same_ioprio(0, v(2, 4)));
        assert!(same_ioprio(v(3, 0), v(3, 0)));
        assert!(!same_ioprio(v(3, 0), 0));
        assert!(!same_ioprio(v(2, 5), 0));
        assert!(!same_ioprio(0, v(3, 0)));
    }
}
