//! The process tree of a dump: every descendant of the root, seized
//! before anything is collected (CRIU's `collect_pstree`).
//!
//! Seizing goes top-down: a task's children are read only once the whole
//! task (every thread) is stopped, so its list can no longer grow; each
//! new child is seized in turn, until no task has an unseen child. Zombies
//! cannot be seized (nor need it: they do not run); they are recorded with
//! their wait status. A child that exits and is reaped meanwhile is simply
//! not part of the dump.
//!
//! Whatever fails, every task seized so far is released as it was: the
//! [`Seized`] handles undo their changes when the [`Tree`] is dropped.

use std::collections::{HashMap, HashSet};

use crate::infect::{InfectError, Seized, SeizedThread};
use crate::proc::ProcDir;
use crate::proc::stat::Stat;

use super::{DumpError, collect_err};

/// What a task of the tree is.
#[derive(Debug)]
pub enum TaskKind {
    /// Alive and seized: the leader and its other threads (tid order).
    Alive {
        task: Box<Seized>,
        threads: Vec<SeizedThread>,
    },
    /// A zombie: its raw wait status (`stat` field 52, as CRIU stores it).
    Zombie { exit_code: i32 },
}

/// One task of the tree.
#[derive(Debug)]
pub struct TreeTask {
    pub pid: i32,
    /// Its parent in the tree (0 for the root).
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub stat: Stat,
    pub proc: ProcDir,
    pub kind: TaskKind,
}

impl TreeTask {
    pub fn is_zombie(&self) -> bool {
        matches!(self.kind, TaskKind::Zombie { .. })
    }

    /// The thread ids for `pstree.img` (the leader first).
    pub fn thread_ids(&self) -> Vec<i32> {
        match &self.kind {
            TaskKind::Alive { threads, .. } => std::iter::once(self.pid)
                .chain(threads.iter().map(SeizedThread::tid))
                .collect(),
            TaskKind::Zombie { .. } => vec![self.pid],
        }
    }
}

/// The seized tree, in CRIU's order: depth first, the root first, each
/// task followed by its subtree, children in PID order.
#[derive(Debug)]
pub struct Tree {
    pub tasks: Vec<TreeTask>,
}

const STATE_ZOMBIE: u8 = b'Z';

fn seize_err(pid: i32) -> impl FnOnce(InfectError) -> DumpError {
    move |source| DumpError::Infect {
        step: if pid == 0 {
            "seizing the task"
        } else {
            "seizing a task of the tree"
        },
        source,
    }
}

/// Seize `root` and all its descendants.
pub fn seize(root: i32) -> Result<Tree, DumpError> {
    let proc = ProcDir::open(root).map_err(collect_err(root, "/proc"))?;
    let (task, threads) = crate::infect::seize_process(root).map_err(seize_err(0))?;
    let stat = proc.stat().map_err(collect_err(root, "stat"))?;
    let mut found = vec![TreeTask {
        pid: root,
        ppid: 0,
        pgid: stat.pgrp,
        sid: stat.session,
        stat,
        proc,
        kind: TaskKind::Alive {
            task: Box::new(task),
            threads,
        },
    }];
    let mut known: HashSet<i32> = HashSet::from([root]);
    let mut next = 0;
    while next < found.len() {
        let parent = found[next].pid;
        next += 1;
        if found[next - 1].is_zombie() {
            continue;
        }
        let children = found[next - 1]
            .proc
            .process_children()
            .map_err(collect_err(parent, "children"))?;
        for pid in children {
            if !known.insert(pid) {
                continue;
            }
            if let Some(t) = seize_child(pid, parent)? {
                found.push(t);
            }
        }
    }
    Ok(Tree {
        tasks: depth_first(found),
    })
}

/// Seize child `pid` of `parent`, or record it as a zombie. `None`: it is
/// gone already (reaped).
fn seize_child(pid: i32, parent: i32) -> Result<Option<TreeTask>, DumpError> {
    let Ok(proc) = ProcDir::open(pid) else {
        return Ok(None);
    };
    let Ok(stat) = proc.stat() else {
        return Ok(None);
    };
    let zombie = |stat: Stat, proc: ProcDir| TreeTask {
        pid,
        ppid: parent,
        pgid: stat.pgrp,
        sid: stat.session,
        kind: TaskKind::Zombie {
            exit_code: stat.exit_code.unwrap_or(0),
        },
        stat,
        proc,
    };
    if stat.state == STATE_ZOMBIE {
        return Ok(Some(zombie(stat, proc)));
    }
    match crate::infect::seize_process(pid) {
        Ok((task, threads)) => {
            // Read again now that it is stopped: group and session are final.
            let stat = proc.stat().map_err(collect_err(pid, "stat"))?;
            Ok(Some(TreeTask {
                pid,
                ppid: parent,
                pgid: stat.pgrp,
                sid: stat.session,
                stat,
                proc,
                kind: TaskKind::Alive {
                    task: Box::new(task),
                    threads,
                },
            }))
        }
        // It exited while we seized it: a zombie now (its parent is
        // stopped and cannot reap it), or gone if it was auto-reaped.
        Err(InfectError::Dead { .. } | InfectError::Gone { .. }) => match proc.stat() {
            Ok(stat) if stat.state == STATE_ZOMBIE => Ok(Some(zombie(stat, proc))),
            Ok(_) => Err(DumpError::Collect {
                pid,
                what: "task state",
                reason: "it could not be seized but is not a zombie".into(),
            }),
            Err(_) => Ok(None),
        },
        Err(InfectError::Seize { source, .. }) if source == rustix::io::Errno::SRCH => Ok(None),
        Err(e) => Err(seize_err(pid)(e)),
    }
}

/// Order `found` (the root first, each task after its parent) depth first.
fn depth_first(found: Vec<TreeTask>) -> Vec<TreeTask> {
    let mut kids: HashMap<i32, Vec<TreeTask>> = HashMap::new();
    let mut it = found.into_iter();
    let Some(root) = it.next() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(it.len() + 1);
    for t in it {
        kids.entry(t.ppid).or_default().push(t);
    }
    let mut stack = vec![root];
    while let Some(t) = stack.pop() {
        let pid = t.pid;
        out.push(t);
        if let Some(mut k) = kids.remove(&pid) {
            // Popped in PID order.
            k.sort_by_key(|k| std::cmp::Reverse(k.pid));
            stack.extend(k);
        }
    }
    out
}

/// Session rules: every task's session must be one the restore can
/// create again, i.e. led by a task of the tree, or (`shell_job`) the
/// root's own session, which the restored tree joins the restorer's.
pub fn check_sessions(tree: &Tree, shell_job: bool) -> Result<(), DumpError> {
    let root = &tree.tasks[0];
    let pids: HashSet<i32> = tree.tasks.iter().map(|t| t.pid).collect();
    for t in &tree.tasks {
        let inside = pids.contains(&t.sid);
        if inside || (shell_job && t.sid == root.sid) {
            continue;
        }
        return Err(DumpError::Session {
            pid: t.pid,
            sid: t.sid,
        });
    }
    Ok(())
}

/// Whose fd table and fs struct (cwd, root, umask) each task of the tree
/// uses, as indexes into [`Tree::tasks`] (its own index when it has its
/// own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharing {
    pub files: Vec<usize>,
    pub fs: Vec<usize>,
}

impl Sharing {
    fn own(n: usize) -> Sharing {
        Sharing {
            files: (0..n).collect(),
            fs: (0..n).collect(),
        }
    }
}

/// Which processes of the tree share their fd table or fs struct (made by
/// `clone` with `CLONE_FILES` or `CLONE_FS` but without `CLONE_THREAD`),
/// found with kcmp like CRIU's `ids-PID.img`. A child sharing its
/// parent's is restored by forking it so again; sharing a restore cannot
/// make by forking (with a task that is not its parent along such a
/// chain), and processes sharing an address space or signal handlers, are
/// refused, naming the tasks. Without kcmp nothing is found shared.
///
/// Tasks are sorted by kcmp's order of each object (O(n log n) calls, as
/// CRIU's kcmp trees), so sharing tasks end up next to each other.
pub fn shared_tables(tree: &Tree) -> Result<Sharing, DumpError> {
    use crate::sys::kcmp::{KcmpOrder, KcmpType, kcmp};
    use std::cmp::Ordering;
    let n = tree.tasks.len();
    let mut out = Sharing::own(n);
    let pid_of = |i: usize| rustix::process::Pid::from_raw(tree.tasks[i].pid);
    let order = |a: usize, b: usize, kind: KcmpType| -> Result<Option<Ordering>, DumpError> {
        let (Some(pa), Some(pb)) = (pid_of(a), pid_of(b)) else {
            return Ok(Some(a.cmp(&b)));
        };
        match kcmp(pa, pb, kind, 0, 0) {
            Ok(KcmpOrder::Equal) => Ok(Some(Ordering::Equal)),
            Ok(KcmpOrder::Less) => Ok(Some(Ordering::Less)),
            Ok(KcmpOrder::Greater | KcmpOrder::Unordered) => Ok(Some(Ordering::Greater)),
            Err(rustix::io::Errno::NOSYS) => Ok(None),
            Err(e) => Err(DumpError::Collect {
                pid: tree.tasks[b].pid,
                what: "kcmp with another task of the tree",
                reason: e.to_string(),
            }),
        }
    };
    let alive: Vec<usize> = (0..n).filter(|&i| !tree.tasks[i].is_zombie()).collect();
    let index: HashMap<i32, usize> = (0..n).map(|i| (tree.tasks[i].pid, i)).collect();
    // Down the tree first (parents come before their children).
    for &i in alive.iter().skip(1) {
        let Some(&p) = index.get(&tree.tasks[i].ppid).filter(|&&p| p < i) else {
            continue;
        };
        if tree.tasks[p].is_zombie() {
            continue;
        }
        for (kind, group) in [
            (KcmpType::Files, &mut out.files),
            (KcmpType::Fs, &mut out.fs),
        ] {
            match order(p, i, kind)? {
                None => return Ok(Sharing::own(n)),
                Some(Ordering::Equal) => group[i] = group[p],
                Some(_) => {}
            }
        }
    }
    // Then any other sharing, between neighbours in kcmp order: refused.
    let kinds = [
        (KcmpType::Files, "fd table (CLONE_FILES)", Some(&out.files)),
        (
            KcmpType::Fs,
            "cwd, root and umask (CLONE_FS)",
            Some(&out.fs),
        ),
        (KcmpType::Vm, "address space (CLONE_VM)", None),
        (KcmpType::Sighand, "signal handlers (CLONE_SIGHAND)", None),
    ];
    for (kind, what, groups) in kinds {
        let mut nosys = false;
        let sorted = merge_sort(alive.clone(), &mut |a, b| match order(a, b, kind)? {
            Some(o) => Ok::<_, DumpError>(o),
            None => {
                nosys = true;
                Ok(a.cmp(&b))
            }
        })?;
        if nosys {
            return Ok(Sharing::own(n));
        }
        for w in sorted.windows(2) {
            let (a, b) = (w[0].min(w[1]), w[0].max(w[1]));
            if groups.is_some_and(|g| g[a] == g[b]) {
                continue;
            }
            if order(a, b, kind)? == Some(Ordering::Equal) {
                return Err(DumpError::SharedTable {
                    what,
                    pid1: tree.tasks[a].pid,
                    pid2: tree.tasks[b].pid,
                });
            }
        }
    }
    Ok(out)
}

/// A stable merge sort with a comparison that may fail (a system call):
/// O(n log n) comparisons, and never a panic whatever the comparison says.
fn merge_sort<T: Copy, E>(
    mut v: Vec<T>,
    cmp: &mut impl FnMut(T, T) -> Result<std::cmp::Ordering, E>,
) -> Result<Vec<T>, E> {
    let mut buf = Vec::with_capacity(v.len());
    let mut width = 1;
    while width < v.len() {
        buf.clear();
        for lo in (0..v.len()).step_by(2 * width) {
            let mid = (lo + width).min(v.len());
            let hi = (lo + 2 * width).min(v.len());
            let (mut i, mut j) = (lo, mid);
            while i < mid && j < hi {
                if cmp(v[j], v[i])? == std::cmp::Ordering::Less {
                    buf.push(v[j]);
                    j += 1;
                } else {
                    buf.push(v[i]);
                    i += 1;
                }
            }
            buf.extend_from_slice(&v[i..mid]);
            buf.extend_from_slice(&v[j..hi]);
        }
        std::mem::swap(&mut v, &mut buf);
        width *= 2;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::merge_sort;

    #[test]
    fn merge_sort_sorts_stably_and_stops_at_an_error() {
        let v: Vec<(u32, u32)> = (0..37).map(|i| ((i * 7919) % 13, i)).collect();
        let calls = std::cell::Cell::new(0);
        let sorted = merge_sort(v.clone(), &mut |a: (u32, u32), b: (u32, u32)| {
            calls.set(calls.get() + 1);
            Ok::<_, ()>(a.0.cmp(&b.0))
        })
        .unwrap();
        let mut want = v.clone();
        want.sort_by_key(|x| x.0);
        assert_eq!(sorted, want);
        // n log n comparisons at most (37 * 6).
        assert!(calls.get() <= 37 * 6, "{} comparisons", calls.get());
        let failed = merge_sort(v, &mut |a: (u32, u32), _| {
            if a.1 == 5 {
                Err("kcmp")
            } else {
                Ok(std::cmp::Ordering::Less)
            }
        });
        assert_eq!(failed, Err("kcmp"));
    }
}
