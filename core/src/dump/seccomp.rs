//! Seccomp state of the dumped threads (CRIU's `criu/seccomp.c`, dump
//! half): each thread's mode from `/proc/TID/status`, its filters read
//! with `PTRACE_SECCOMP_GET_FILTER` (and their flags with
//! `PTRACE_SECCOMP_GET_METADATA`), and `seccomp.img` laid out as CRIU 4
//! writes it (see `images::set::seccomp` for the layout).
//!
//! The kernel does not say whether two threads share a filter or hold
//! equal copies. As CRIU: a task whose threads all hold the same chain
//! as its leader keeps the chain once, on the leader, every filter of it
//! flagged `SECCOMP_FILTER_FLAG_TSYNC`, and its other threads record no
//! mode (the restored leader's TSYNC gives them the chain); otherwise
//! every thread keeps its own chain. Filters are not shared between
//! tasks in the image (CRIU 4 writes each thread's chain whole).
//!
//! The filters stay suspended while the tree is traced: the seize sets
//! `PTRACE_O_SUSPEND_SECCOMP` on every thread under seccomp, so the
//! parasite's syscalls are not filtered.

use rustix::io::Errno;

use super::error::{DumpError, collect_err};
use crate::images::pb;
use crate::images::set::seccomp::{Filter, MODE_DISABLED, MODE_FILTER, MODE_STRICT};
use crate::proc::ProcDir;
use crate::sys::ptrace;

/// `SECCOMP_FILTER_FLAG_TSYNC`.
pub const FLAG_TSYNC: u32 = linux_raw_sys::ptrace::SECCOMP_FILTER_FLAG_TSYNC;

/// One thread's seccomp state as dumped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadSeccomp {
    pub tid: i32,
    /// `SECCOMP_MODE_*`.
    pub mode: u32,
    /// In filter mode: the filters, oldest first.
    pub filters: Vec<Filter>,
    /// Where its oldest filter lies in `seccomp.img` (set by [`image`]).
    pub index: Option<u32>,
}

/// The seccomp state of task `pid`'s threads `tids` (the leader first),
/// read on the task's tracer thread; the TSYNC merge applied.
pub(super) fn collect(pid: i32, tids: &[i32]) -> Result<Vec<ThreadSeccomp>, DumpError> {
    let mut out = Vec::with_capacity(tids.len());
    for &tid in tids {
        let mode = ProcDir::open(tid)
            .and_then(|p| p.status())
            .map_err(collect_err(pid, "thread status (seccomp)"))?
            .seccomp
            .unwrap_or(MODE_DISABLED);
        let filters = match mode {
            MODE_DISABLED | MODE_STRICT => Vec::new(),
            MODE_FILTER => {
                let t = rustix::process::Pid::from_raw(tid).ok_or(DumpError::NoTree)?;
                filters_of(t).map_err(collect_err(pid, "seccomp filters"))?
            }
            m => {
                return Err(DumpError::Collect {
                    pid,
                    what: "seccomp mode",
                    source: super::error::CollectError::Io(std::io::Error::other(format!(
                        "thread {tid}: unknown seccomp mode {m}"
                    ))),
                });
            }
        };
        out.push(ThreadSeccomp {
            tid,
            mode,
            filters,
            index: None,
        });
    }
    use_tsync(&mut out);
    Ok(out)
}

/// Every filter of traced thread `t`, oldest first.
fn filters_of(t: rustix::process::Pid) -> Result<Vec<Filter>, Errno> {
    let mut out = Vec::new();
    for i in 0.. {
        let insns = match ptrace::seccomp_filter(t, i) {
            Ok(insns) => insns,
            Err(Errno::NOENT) => break,
            Err(e) => return Err(e),
        };
        // Kernels before 4.16 have no metadata (EIO): no flags then.
        let flags = match ptrace::seccomp_filter_flags(t, i) {
            Ok(f) => f as u32,
            Err(Errno::IO) => 0,
            Err(e) => return Err(e),
        };
        out.push(Filter { insns, flags });
    }
    Ok(out)
}

/// CRIU's `try_use_tsync`: `threads[0]` is the leader.
fn use_tsync(threads: &mut [ThreadSeccomp]) {
    let Some((leader, others)) = threads.split_first_mut() else {
        return;
    };
    if leader.mode != MODE_FILTER {
        return;
    }
    let same = |a: &[Filter], b: &[Filter]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.insns == y.insns)
    };
    if others
        .iter()
        .any(|t| t.mode != leader.mode || !same(&t.filters, &leader.filters))
    {
        return;
    }
    for f in &mut leader.filters {
        f.flags |= FLAG_TSYNC;
    }
    for t in others {
        t.mode = MODE_DISABLED;
        t.filters.clear();
    }
}

/// `seccomp.img` from every thread of the tree, in TID order, each
/// chain newest first (the newest without `prev`, each older one naming
/// the one before it); sets each thread's [`ThreadSeccomp::index`] to its
/// oldest filter.
pub fn image<'a>(threads: impl IntoIterator<Item = &'a mut ThreadSeccomp>) -> pb::SeccompEntry {
    let mut all: Vec<&mut ThreadSeccomp> = threads.into_iter().collect();
    all.sort_by_key(|t| t.tid);
    let mut entry = pb::SeccompEntry::default();
    for t in all {
        if t.filters.is_empty() {
            continue;
        }
        let first = entry.seccomp_filters.len() as u32;
        for (k, f) in t.filters.iter().rev().enumerate() {
            entry.seccomp_filters.push(pb::SeccompFilter {
                filter: f.insns.clone(),
                prev: (k > 0).then(|| first + k as u32 - 1),
                flags: Some(f.flags),
            });
        }
        t.index = Some(entry.seccomp_filters.len() as u32 - 1);
    }
    entry
}

/// The seccomp fields of a thread's core (`thread_core.seccomp_mode`,
/// `seccomp_filter`): none for a thread without seccomp.
pub fn core_fields(s: Option<&ThreadSeccomp>) -> (Option<i32>, Option<u32>) {
    match s {
        Some(t) if t.mode != MODE_DISABLED => (
            Some(t.mode as i32),
            if t.mode == MODE_FILTER { t.index } else { None },
        ),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(b: u8) -> Filter {
        Filter {
            insns: vec![b; 8],
            flags: 0,
        }
    }

    fn thread(tid: i32, filters: &[u8]) -> ThreadSeccomp {
        ThreadSeccomp {
            tid,
            mode: if filters.is_empty() { 0 } else { MODE_FILTER },
            filters: filters.iter().map(|&b| filter(b)).collect(),
            index: None,
        }
    }

    #[test]
    fn equal_chains_of_a_task_go_once_with_tsync() {
        let mut t = vec![thread(5, &[1, 2]), thread(6, &[1, 2])];
        use_tsync(&mut t);
        assert!(t[0].filters.iter().all(|f| f.flags == FLAG_TSYNC));
        assert_eq!((t[1].mode, t[1].filters.len()), (MODE_DISABLED, 0));
        // A thread with a filter of its own keeps every chain apart.
        let mut t = vec![thread(5, &[1]), thread(6, &[1, 3])];
        use_tsync(&mut t);
        assert_eq!(t[0].filters[0].flags, 0);
        assert_eq!(t[1].filters.len(), 2);
    }

    #[test]
    fn the_image_is_laid_out_as_criu_writes_it() {
        let mut t = [thread(9, &[7]), thread(4, &[1, 2, 3]), thread(6, &[])];
        let img = image(t.iter_mut());
        let got: Vec<(u8, Option<u32>)> = img
            .seccomp_filters
            .iter()
            .map(|f| (f.filter[0], f.prev))
            .collect();
        // Thread 4 first (newest 3 .. oldest 1), then thread 9.
        assert_eq!(got, [(3, None), (2, Some(0)), (1, Some(1)), (7, None)]);
        assert_eq!(
            (t[1].index, t[0].index, t[2].index),
            (Some(2), Some(3), None)
        );
        assert_eq!(core_fields(Some(&t[1])), (Some(2), Some(2)));
        assert_eq!(core_fields(Some(&t[2])), (None, None));
    }
}
