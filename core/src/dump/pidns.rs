//! A tree whose root is the init (pid 1) of its own pid namespace, one
//! level below criu's (what `unshare --pid --fork PROG` makes).
//!
//! The dump sees every task by its PID in criu's namespace (the "outer"
//! PID: `/proc`, ptrace, fcntl's owners); the images hold the PIDs the
//! tasks have in their namespace, as CRIU writes them: the last field of
//! `NSpid:` in `/proc/PID/status`. [`VPids`] maps one to the other; it is
//! the identity for a tree in criu's own pid namespace (no lookups, no
//! allocation). Every PID an image holds goes through it: `pstree.img`
//! (pid, ppid, pgid, sid, threads), the names of the per-task images,
//! file owners (`fown`), the sessions and groups of terminals, file
//! locks' owners, and POSIX timers' target threads. A pidfd's PID is the
//! innermost one already (see [`crate::files::pidfd`]). A session, group
//! or owner outside the namespace has no PID in it: refused by name, as
//! CRIU refuses it ("A session leader ... is outside of its pid
//! namespace").
//!
//! The tree's pid namespace gets CRIU's id for the first namespace that
//! is not the tool's: 9 (`root_ids` numbers the tool's own 1..=8). CRIU
//! writes no image for it.

use std::collections::HashMap;

use super::namespaces::NsError;
use super::tree::{TaskKind, Tree};
pub use super::vpids::VPids;
use super::write::{Collected, TreeEntry};
use super::{DumpError, collect_err};
use crate::files::table::FileTable;
use crate::proc::ProcDir;
use crate::proc::task::NsIds;

/// The tree's own pid namespace: its inode, and how many PIDs each of its
/// tasks has (`NSpid:` fields: criu's levels and one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreePidNs {
    pub ino: u64,
    pub levels: usize,
}

/// The number of `NSpid:` fields of criu itself.
pub fn our_levels() -> Result<usize, DumpError> {
    let me = ProcDir::open_self().map_err(collect_err(0, "/proc/self"))?;
    let st = me
        .status()
        .map_err(collect_err(me.pid(), "criu's status"))?;
    Ok(st.ns_pid.len().max(1))
}

/// The root's own pid namespace, if it is in one: it must be the init of
/// a namespace one level below criu's (whose number of levels
/// `our_levels` gives; asked only then).
pub fn detect(
    root: i32,
    proc: &ProcDir,
    ours: &NsIds,
    our_levels: impl FnOnce() -> Result<usize, DumpError>,
) -> Result<Option<TreePidNs>, DumpError> {
    let ns = proc.ns_ids().map_err(collect_err(root, "namespaces"))?;
    let (Some(ino), Some(o)) = (ns.pid, ours.pid) else {
        return Ok(None);
    };
    if ino == o {
        return Ok(None);
    }
    let nspid = proc.status().map_err(collect_err(root, "status"))?.ns_pid;
    let our_levels = our_levels()?;
    if nspid.len() != our_levels + 1 {
        return Err(NsError::NestedPid {
            pid: root,
            ino,
            levels: nspid.len().saturating_sub(our_levels),
        }
        .into());
    }
    let vpid = nspid.last().copied().unwrap_or(0);
    if vpid != 1 {
        return Err(NsError::PidNotInit {
            pid: root,
            ino,
            vpid,
        }
        .into());
    }
    Ok(Some(TreePidNs {
        ino,
        levels: nspid.len(),
    }))
}

/// The namespaces every task of the tree must have: criu's, with the
/// tree's pid namespace for `pid` and `pid_for_children`.
pub fn allowed(ours: &NsIds, tree: Option<TreePidNs>) -> NsIds {
    match tree {
        None => *ours,
        Some(t) => NsIds {
            pid: Some(t.ino),
            pid_for_children: Some(t.ino),
            ..*ours
        },
    }
}

/// A task (`proc`, with namespaces `ns`) of a tree in its own pid
/// namespace must be in that one, not in one nested in it.
pub fn check(
    pid: i32,
    proc: &ProcDir,
    ns: &NsIds,
    tree: Option<TreePidNs>,
) -> Result<(), DumpError> {
    let (Some(t), Some(ino)) = (tree, ns.pid) else {
        return Ok(());
    };
    if ino == t.ino {
        return Ok(());
    }
    let levels = proc.status().map_or(0, |s| s.ns_pid.len());
    Err(NsError::NestedPid {
        pid,
        ino,
        levels: levels.saturating_sub(t.levels - 1),
    }
    .into())
}

/// Read the `NSpid:` of every task and thread of the seized tree.
pub fn collect(tree: &Tree, ns: Option<TreePidNs>) -> Result<VPids, DumpError> {
    let Some(ns) = ns else {
        return Ok(VPids::default());
    };
    let mut map = HashMap::new();
    let mut add = |outer: i32, proc: &ProcDir| -> Result<(), DumpError> {
        let st = proc
            .status()
            .map_err(collect_err(outer, "status (NSpid)"))?;
        match st.ns_pid.last() {
            Some(&inner) if st.ns_pid.len() == ns.levels => {
                map.insert(outer, inner);
                Ok(())
            }
            _ => Err(NsError::NestedPid {
                pid: outer,
                ino: ns.ino,
                levels: st.ns_pid.len().saturating_sub(ns.levels - 1),
            }
            .into()),
        }
    };
    for t in &tree.tasks {
        add(t.pid, &t.proc)?;
        if let TaskKind::Alive { threads, .. } = &t.kind {
            for th in threads {
                let tid = th.tid();
                let proc = t.proc.task(tid).map_err(collect_err(tid, "thread"))?;
                add(tid, &proc)?;
            }
        }
    }
    Ok(VPids::from_map(map))
}

/// The `pstree.img` entries of the tree, in its namespace's PIDs.
pub fn tree_entries(tree: &Tree, v: &VPids) -> Result<Vec<TreeEntry>, DumpError> {
    tree.tasks
        .iter()
        .map(|t| {
            let ppid = match t.ppid {
                0 => 0,
                p => v.of(p),
            };
            Ok(TreeEntry {
                pid: v.of(t.pid),
                ppid,
                pgid: v.inside(t.pgid, || format!("the process group of task {}", t.pid))?,
                sid: v.inside(t.sid, || format!("the session of task {}", t.pid))?,
                threads: t.thread_ids().into_iter().map(|id| v.of(id)).collect(),
            })
        })
        .collect()
}

/// The PIDs the file table holds (owners, terminals' sessions and
/// groups, lock owners) in the tree's namespace.
pub fn translate_files(files: &mut FileTable, v: &VPids) -> Result<(), DumpError> {
    if v.is_identity() {
        return Ok(());
    }
    for e in &mut files.entries {
        let id = e.id;
        if let Some(f) = crate::files::fown::of_mut(e)
            && f.pid != 0
        {
            f.pid = v.inside(f.pid as i32, || {
                format!("the owner (F_SETOWN) of file {id}")
            })? as u32;
        }
    }
    for i in &mut files.kinds.ttys.infos {
        let id = i.id;
        if i.sid != 0 {
            i.sid = v.inside(i.sid as i32, || format!("the session of terminal {id}"))? as u32;
        }
        if i.pgrp != 0 {
            i.pgrp = v.inside(i.pgrp as i32, || {
                format!("the foreground group of terminal {id}")
            })? as u32;
        }
    }
    for l in &mut files.locks.entries {
        l.pid = v.inside(l.pid, || format!("the owner of a lock on fd {}", l.fd))?;
    }
    Ok(())
}

/// The target threads of the tasks' POSIX timers (`SIGEV_THREAD_ID`) in
/// the tree's namespace.
pub fn translate_collected(collected: &mut [Option<Collected>], v: &VPids) {
    if v.is_identity() {
        return;
    }
    for c in collected.iter_mut().flatten() {
        for (t, _) in &mut c.posix {
            if t.notify_pid != 0 {
                t.notify_pid = v.of(t.notify_pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(pid: u64) -> NsIds {
        NsIds {
            pid: Some(pid),
            pid_for_children: Some(pid),
            net: Some(7),
            ..NsIds::default()
        }
    }

    #[test]
    fn outside_a_namespace_every_pid_is_its_own() {
        let v = VPids::default();
        assert!(v.is_identity());
        assert_eq!(v.get(4242), Some(4242));
        assert_eq!(v.of(4242), 4242);
        assert_eq!(allowed(&ns(5), None), ns(5));
    }

    #[test]
    fn inside_one_pids_are_mapped_and_others_refused() {
        let v = VPids::from_map(HashMap::from([(900, 1), (901, 2)]));
        assert!(!v.is_identity());
        assert_eq!((v.of(900), v.of(901)), (1, 2));
        assert_eq!(v.get(77), None);
        let e = v
            .inside(77, || "the session of task 901".into())
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the session of task 901 is PID 77, which is outside"),
            "{e}"
        );
        // The tree's namespace replaces criu's pid ones, nothing else.
        let tree = TreePidNs { ino: 9, levels: 2 };
        let a = allowed(&ns(5), Some(tree));
        assert_eq!(
            (a.pid, a.pid_for_children, a.net),
            (Some(9), Some(9), Some(7))
        );
    }

    #[test]
    fn a_tree_in_our_namespace_is_not_asked_for_levels() {
        let me = ProcDir::open_self().unwrap();
        let ours = me.ns_ids().unwrap();
        let found = detect(me.pid(), &me, &ours, || panic!("asked for levels")).unwrap();
        assert_eq!(found, None);
    }
}
