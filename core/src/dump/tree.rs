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
//! With `--freeze-cgroup` the tree holds the [`Freezer`] too, which
//! freezes the cgroup again (if it was frozen) before any task is let go.
//!
//! Every task must stop within `--timeout` of the start of the seize
//! ([`SeizeOpts`]): a task that never stops (frozen by a cgroup, stuck in
//! the kernel) fails the dump, naming it, instead of hanging it.

use super::freezer::Freezer;
use crate::infect::{InfectError, SeizeOpts, Seized, SeizedThread};
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
    /// `--freeze-cgroup`'s cgroup (dropped after the tasks: it lets the
    /// cgroup's other threads go).
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
}

impl Drop for Tree {
    fn drop(&mut self) {
        // A failed dump: frozen again first, then the tasks (fields) go.
        self.before_release(false);
    }
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

/// Seize `root` and all its descendants, each within `opts`' deadline
/// (threads `freezer` attached are only waited for).
pub fn seize(root: i32, opts: &SeizeOpts<'_>, freezer: Option<Freezer>) -> Result<Tree, DumpError> {
    let mut tree = Tree {
        tasks: Vec::new(),
        freezer,
    };
    let proc = ProcDir::open(root).map_err(collect_err(root, "/proc"))?;
    let (task, threads) = crate::infect::seize_process_with(root, opts).map_err(seize_err(0))?;
    let stat = proc.stat().map_err(collect_err(root, "stat"))?;
    let found = &mut tree.tasks;
    found.push(TreeTask {
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
    });
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
            if found.iter().any(|t| t.pid == pid) {
                continue;
            }
            if let Some(t) = seize_child(pid, parent, opts)? {
                found.push(t);
            }
        }
    }
    tree.tasks = depth_first(std::mem::take(&mut tree.tasks));
    Ok(tree)
}

/// Seize child `pid` of `parent`, or record it as a zombie. `None`: it is
/// gone already (reaped).
fn seize_child(pid: i32, parent: i32, opts: &SeizeOpts<'_>) -> Result<Option<TreeTask>, DumpError> {
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
    match crate::infect::seize_process_with(pid, opts) {
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
fn depth_first(mut found: Vec<TreeTask>) -> Vec<TreeTask> {
    let mut out = Vec::with_capacity(found.len());
    let mut stack = vec![found.remove(0)];
    while let Some(t) = stack.pop() {
        let pid = t.pid;
        out.push(t);
        let mut kids: Vec<TreeTask> = Vec::new();
        let mut i = 0;
        while i < found.len() {
            if found[i].ppid == pid {
                kids.push(found.remove(i));
            } else {
                i += 1;
            }
        }
        kids.sort_by_key(|k| std::cmp::Reverse(k.pid));
        stack.extend(kids);
    }
    out
}

/// Session rules: every task's session must be one the restore can
/// create again, i.e. led by a task of the tree, or (`shell_job`) the
/// root's own session, which the restored tree joins the restorer's.
pub fn check_sessions(tree: &Tree, shell_job: bool) -> Result<(), DumpError> {
    let root = &tree.tasks[0];
    for t in &tree.tasks {
        let inside = tree.tasks.iter().any(|o| o.pid == t.sid);
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
pub fn shared_tables(tree: &Tree) -> Result<Sharing, DumpError> {
    use crate::sys::kcmp::{KcmpOrder, KcmpType, kcmp};
    let n = tree.tasks.len();
    let mut out = Sharing::own(n);
    let pid_of = |i: usize| rustix::process::Pid::from_raw(tree.tasks[i].pid);
    let same = |a: usize, b: usize, kind: KcmpType| -> Result<Option<bool>, DumpError> {
        let (Some(pa), Some(pb)) = (pid_of(a), pid_of(b)) else {
            return Ok(Some(false));
        };
        match kcmp(pa, pb, kind, 0, 0) {
            Ok(order) => Ok(Some(order == KcmpOrder::Equal)),
            Err(rustix::io::Errno::NOSYS) => Ok(None),
            Err(e) => Err(DumpError::Collect {
                pid: tree.tasks[b].pid,
                what: "kcmp with another task of the tree",
                reason: e.to_string(),
            }),
        }
    };
    let alive: Vec<usize> = (0..n).filter(|&i| !tree.tasks[i].is_zombie()).collect();
    // Down the tree first (parents come before their children).
    for &i in alive.iter().skip(1) {
        let ppid = tree.tasks[i].ppid;
        let Some(p) = (0..i).find(|&p| tree.tasks[p].pid == ppid) else {
            continue;
        };
        if tree.tasks[p].is_zombie() {
            continue;
        }
        for (kind, group) in [
            (KcmpType::Files, &mut out.files),
            (KcmpType::Fs, &mut out.fs),
        ] {
            match same(p, i, kind)? {
                None => return Ok(Sharing::own(n)),
                Some(true) => group[i] = group[p],
                Some(false) => {}
            }
        }
    }
    // Then every pair: any other sharing is refused.
    for (x, &a) in alive.iter().enumerate() {
        for &b in &alive[x + 1..] {
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
                if groups.is_some_and(|g| g[a] == g[b]) {
                    continue;
                }
                match same(a, b, kind)? {
                    None => return Ok(Sharing::own(n)),
                    Some(false) => {}
                    Some(true) => {
                        return Err(DumpError::SharedTable {
                            what,
                            pid1: tree.tasks[a].pid,
                            pid2: tree.tasks[b].pid,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}
