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
//! Each task is seized by one of the dump's tracer threads
//! ([`super::workers`]), the tasks of one level of the tree by all of them
//! at once, and stays that thread's ([`TreeTask::owner`]).
//!
//! Whatever fails, every task seized so far is released as it was: the
//! [`Seized`] handles undo their changes when the [`Tree`] is dropped
//! (each on the thread that seized it).
//! With `--freeze-cgroup` the tree holds the [`Freezer`] too, which
//! freezes the cgroup again (if it was frozen) before any task is let go.
//! Its threads are attached by the freezer, so the tree then has one
//! tracer thread, which attaches the cgroup and seizes every task.
//!
//! Every task must stop within `--timeout` of the start of the seize
//! ([`SeizeOpts`]): a task that never stops (frozen by a cgroup, stuck in
//! the kernel) fails the dump, naming it, instead of hanging it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::freezer::Freezer;
use crate::infect::{InfectError, SeizeOpts, Seized, SeizedThread};
use crate::proc::ProcDir;
use crate::proc::stat::Stat;

use super::workers::Workers;
use super::{CollectError, DumpError, collect_err};

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
    /// The tracer thread that seized it (an index into the workers): the
    /// only one that may touch it through ptrace.
    pub owner: usize,
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
/// task followed by its subtree, children in PID order; and the tracer
/// threads that hold them.
#[derive(Debug)]
pub struct Tree {
    pub tasks: Vec<TreeTask>,
    pub workers: Workers,
    /// `--freeze-cgroup`'s cgroup (dropped after the tasks, on worker 0,
    /// which attached its threads: it lets the cgroup's other threads go).
    pub freezer: Option<Freezer>,
}

impl Tree {
    /// Right before the tasks are let go (`killing`: by SIGKILL): the
    /// freezer cgroup is frozen again if it was frozen before the dump.
    pub fn before_release(&mut self, killing: bool) {
        if let Some(f) = &mut self.freezer {
            f.before_release(killing);
        }
    }

    /// Once the tasks are let go: waits for a cgroup frozen again to be
    /// frozen (see [`Freezer::wait_refrozen`]).
    pub fn after_release(&mut self) {
        if let Some(f) = &mut self.freezer {
            f.wait_refrozen();
        }
    }

    /// Hands every task to its owner to drop (so released there as it
    /// was), waiting until all are. The tree is empty afterwards.
    pub fn release_all(&mut self) {
        let pending: Vec<_> = std::mem::take(&mut self.tasks)
            .into_iter()
            .map(|t| self.workers.submit(t.owner, move || drop(t)))
            .collect();
        for p in pending {
            p.wait();
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        // A failed dump: frozen again first, then the tasks go, then the
        // freezer's other threads (on the thread that attached them).
        self.before_release(false);
        self.release_all();
        self.after_release();
        if let Some(f) = self.freezer.take() {
            self.workers.run(0, move || drop(f));
        }
    }
}

/// How many tracer threads a tree gets: enough to keep every CPU busy
/// while others wait for their tasks, no more than there are tasks.
fn workers_for(estimate: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (2 * cpus).clamp(2, 8).min(estimate.max(1))
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

/// A task seized (or found a zombie) by a worker, with its children as
/// listed once it stopped.
type Seen = (Option<TreeTask>, Vec<i32>);

/// The bound of the seize, and the threads the freezer attached, for
/// every tracer thread's [`SeizeOpts`].
#[derive(Clone)]
struct Bound {
    timeout: Duration,
    deadline: Instant,
    attached: Arc<[i32]>,
}

impl Bound {
    fn opts(&self) -> SeizeOpts<'_> {
        SeizeOpts {
            timeout: self.timeout,
            deadline: self.deadline,
            attached: &self.attached,
        }
    }
}

/// Seize `root` and all its descendants, level by level, each level's
/// tasks by all the tracer threads at once, each within `opts`' deadline.
/// With `freeze` (`--freeze-cgroup`), that cgroup is frozen and its
/// threads attached first ([`Freezer::freeze_and_attach`], bounded by the
/// same deadline), by the one tracer thread the tree then has; threads it
/// attached are only waited for, and those outside the tree are kept
/// stopped ([`Freezer::hold_bystanders`]).
pub fn seize(root: i32, opts: SeizeOpts<'_>, freeze: Option<&Path>) -> Result<Tree, DumpError> {
    let proc = ProcDir::open(root).map_err(collect_err(root, "/proc"))?;
    // The root's children tell how wide the tree starts; the thread count
    // is fixed here (tasks never change threads). The freezer's threads
    // are traced by the thread that attached them: one worker then.
    let estimate = 1 + proc.process_children().map_or(0, |c| c.len()) * 4;
    let count = if freeze.is_some() {
        1
    } else {
        workers_for(estimate)
    };
    let workers = Workers::spawn(count).map_err(collect_err(root, "tracer threads"))?;
    let mut tree = Tree {
        tasks: Vec::new(),
        workers,
        freezer: None,
    };
    let (timeout, deadline) = (opts.timeout, opts.deadline);
    let mut bound = Bound {
        timeout,
        deadline,
        attached: Arc::from(opts.attached),
    };
    if let Some(dir) = freeze {
        let dir = dir.to_path_buf();
        let f = tree.workers.run(0, move || {
            Freezer::freeze_and_attach(&dir, timeout, deadline)
        })?;
        bound.attached = f.attached().iter().chain(opts.attached).copied().collect();
        tree.freezer = Some(f);
    }
    let b = bound.clone();
    let (t, kids) = tree
        .workers
        .run(0, move || seize_root(root, proc, &b.opts()))?;
    tree.tasks.push(t);
    let mut known: HashSet<i32> = HashSet::from([root]);
    let mut next_owner = 1;
    let mut level: Vec<(i32, Vec<i32>)> = vec![(root, kids)];
    while !level.is_empty() {
        // (pid, parent) of this level, each seized on its own worker.
        let todo: Vec<(i32, i32)> = level
            .iter()
            .flat_map(|(parent, kids)| kids.iter().map(move |&k| (k, *parent)))
            .filter(|(pid, _)| known.insert(*pid))
            .collect();
        let pending: Vec<_> = todo
            .iter()
            .map(|&(pid, parent)| {
                let w = next_owner % tree.workers.len();
                next_owner += 1;
                let b = bound.clone();
                tree.workers
                    .submit(w, move || seize_child(pid, parent, w, &b.opts()))
            })
            .collect();
        // Every answer is taken (and its task kept in the tree, to be
        // released with it) before an error is returned.
        let mut first_err = None;
        level = Vec::new();
        for p in pending {
            match p.wait() {
                Ok((Some(t), kids)) => {
                    level.push((t.pid, kids));
                    tree.tasks.push(t);
                }
                Ok((None, _)) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    tree.tasks = depth_first(std::mem::take(&mut tree.tasks));
    hold_bystanders(&mut tree, timeout, deadline)?;
    Ok(tree)
}

/// The freezer's attached threads outside the tree, kept stopped until
/// the end, by the thread that attached them (worker 0).
fn hold_bystanders(tree: &mut Tree, timeout: Duration, deadline: Instant) -> Result<(), DumpError> {
    let Some(mut f) = tree.freezer.take() else {
        return Ok(());
    };
    let tids: HashSet<i32> = tree.tasks.iter().flat_map(|t| t.thread_ids()).collect();
    let (f, r) = tree.workers.run(0, move || {
        let r = f.hold_bystanders(|t| tids.contains(&t), timeout, deadline);
        (f, r)
    });
    tree.freezer = Some(f);
    Ok(r?)
}

/// The root, seized on worker 0, and its children.
fn seize_root(
    root: i32,
    proc: ProcDir,
    opts: &SeizeOpts<'_>,
) -> Result<(TreeTask, Vec<i32>), DumpError> {
    let (task, threads) = crate::infect::seize_process_with(root, opts).map_err(seize_err(0))?;
    // Dropped on error: released right here, on the thread that seized it.
    let kind = TaskKind::Alive {
        task: Box::new(task),
        threads,
    };
    let stat = proc.stat().map_err(collect_err(root, "stat"))?;
    let t = TreeTask {
        pid: root,
        ppid: 0,
        pgid: stat.pgrp,
        sid: stat.session,
        stat,
        proc,
        kind,
        owner: 0,
    };
    // Read once the whole task is stopped: its list can no longer grow.
    let kids = t
        .proc
        .process_children()
        .map_err(collect_err(root, "children"))?;
    Ok((t, kids))
}

/// Seize child `pid` of `parent` (on worker `owner`, the calling thread,
/// within `opts`' deadline), or record it as a zombie; and its children
/// once it is stopped. `None`: it is gone already (reaped).
fn seize_child(
    pid: i32,
    parent: i32,
    owner: usize,
    opts: &SeizeOpts<'_>,
) -> Result<Seen, DumpError> {
    let Ok(proc) = ProcDir::open(pid) else {
        return Ok((None, Vec::new()));
    };
    let Ok(stat) = proc.stat() else {
        return Ok((None, Vec::new()));
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
        owner,
    };
    if stat.state == STATE_ZOMBIE {
        return Ok((Some(zombie(stat, proc)), Vec::new()));
    }
    match crate::infect::seize_process_with(pid, opts) {
        Ok((task, threads)) => {
            // Dropped on error: released right here, on its own thread.
            let kind = TaskKind::Alive {
                task: Box::new(task),
                threads,
            };
            // Read again now that it is stopped: group and session are final.
            let stat = proc.stat().map_err(collect_err(pid, "stat"))?;
            let t = TreeTask {
                pid,
                ppid: parent,
                pgid: stat.pgrp,
                sid: stat.session,
                stat,
                proc,
                kind,
                owner,
            };
            let kids = t
                .proc
                .process_children()
                .map_err(collect_err(pid, "children"))?;
            Ok((Some(t), kids))
        }
        // It exited while we seized it: a zombie now (its parent is
        // stopped and cannot reap it), or gone if it was auto-reaped.
        Err(InfectError::Dead { .. } | InfectError::Gone { .. }) => match proc.stat() {
            Ok(stat) if stat.state == STATE_ZOMBIE => Ok((Some(zombie(stat, proc)), Vec::new())),
            Ok(_) => Err(DumpError::Collect {
                pid,
                what: "task state",
                source: CollectError::NotSeizedNotZombie,
            }),
            Err(_) => Ok((None, Vec::new())),
        },
        Err(InfectError::Seize { source, .. }) if source == rustix::io::Errno::SRCH => {
            Ok((None, Vec::new()))
        }
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
                source: e.into(),
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
