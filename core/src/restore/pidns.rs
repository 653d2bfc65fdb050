//! A tree dumped in its own pid namespace (its root the namespace's
//! init): the root is forked with `CLONE_NEWPID` (pid 1 inside, and
//! whatever PID the kernel gives it outside, as CRIU does), every other
//! task by its parent's restorer with its PID in that namespace (its
//! `set_tid` has one level, the innermost).
//!
//! The images' PIDs are the namespace's; the tool, outside it, reaches
//! the tasks by their outer PIDs (`/proc`, ptrace, pidfds, signals). So
//! everything the tool does to a task after the fork goes through
//! [`PidMap`]: the identity for a tree in the tool's own namespace, else
//! a map filled from the tree as it is (every task's and thread's
//! `NSpid:`, found from the root's outer PID through `children`).
//!
//! The namespace is the root's when its `ids-PID.img` names another
//! `pid_ns_id` than `inventory.img`'s `root_ids` (the dumping tool's):
//! how CRIU's images and ours say it. A task in a third pid namespace
//! (nested) is refused.

use std::collections::HashMap;

use super::RestoreError;
use super::images::TreeTaskImages;
use crate::images::typed::ImageDir;
use crate::images::{Kind, pb};
use crate::proc::ProcDir;

/// Whether the tree's root is the init of a pid namespace of its own
/// (checked: every live task is in that one, and the root is its pid 1).
pub fn new_pid_ns(dir: &ImageDir, tasks: &[TreeTaskImages]) -> Result<bool, RestoreError> {
    let Some(TreeTaskImages::Alive(root)) = tasks.first() else {
        return Ok(false);
    };
    let Some(root_ns) = root.ids.as_ref().and_then(|i| i.pid_ns_id) else {
        return Ok(false);
    };
    let inv: pb::InventoryEntry = dir.read_one(Kind::Inventory, 0)?;
    let tool_ns = inv.root_ids.and_then(|i| i.pid_ns_id);
    if tool_ns.is_none_or(|ns| ns == root_ns) {
        return Ok(false);
    }
    if root.pstree.pid != 1 {
        return Err(RestoreError::Unsupported(format!(
            "pstree.img: the root task {} is in its own pid namespace ({root_ns}) but is not \
             its init (pid 1)",
            root.pstree.pid
        )));
    }
    for t in tasks.iter().skip(1) {
        let TreeTaskImages::Alive(t) = t else {
            continue;
        };
        if let Some(ns) = t.ids.as_ref().and_then(|i| i.pid_ns_id)
            && ns != root_ns
        {
            return Err(RestoreError::Unsupported(format!(
                "ids-{}.img: task {} is in pid namespace {ns}, nested in the root's \
                 ({root_ns}), which cannot be restored yet",
                t.pstree.pid, t.pstree.pid
            )));
        }
    }
    Ok(true)
}

/// PIDs of the images (the tree's namespace) → PIDs the tool reaches the
/// tasks by.
#[derive(Debug, Default)]
pub struct PidMap {
    /// `None`: the tree is in the tool's pid namespace (the identity).
    ns: Option<NsMap>,
}

#[derive(Debug)]
struct NsMap {
    /// The root's outer PID.
    root: i32,
    /// Inner PID or TID → outer, as found so far.
    map: HashMap<i32, i32>,
}

impl PidMap {
    /// The tree is in the tool's own pid namespace.
    pub fn identity() -> PidMap {
        PidMap { ns: None }
    }

    /// The tree's root is the init of a new namespace, `root` outside it.
    pub fn new_ns(root: i32) -> PidMap {
        PidMap {
            ns: Some(NsMap {
                root,
                map: HashMap::from([(1, root)]),
            }),
        }
    }

    /// The outer PID of `inner`, if known already (no lookup).
    pub fn known(&self, inner: i32) -> Option<i32> {
        match &self.ns {
            None => Some(inner),
            Some(ns) => ns.map.get(&inner).copied(),
        }
    }

    /// The outer PID of task or thread `inner`, looking at the tree again
    /// if it is not known yet; `None` if it does not exist (yet).
    pub fn outer(&mut self, inner: i32) -> Option<i32> {
        let Some(ns) = self.ns.as_mut() else {
            return Some(inner);
        };
        if let Some(&p) = ns.map.get(&inner) {
            return Some(p);
        }
        ns.refresh();
        ns.map.get(&inner).copied()
    }
}

impl NsMap {
    /// Every task and thread reachable from the root now.
    fn refresh(&mut self) {
        let mut next = vec![self.root];
        let mut seen = 0usize;
        while let Some(pid) = next.pop() {
            seen += 1;
            // Far beyond real trees: a tree that forks without end cannot
            // keep this looking.
            if seen > 1 << 16 {
                break;
            }
            let Ok(proc) = ProcDir::open(pid) else {
                continue;
            };
            for tid in proc.threads().unwrap_or_default() {
                let inner = proc
                    .task(tid)
                    .and_then(|t| t.status())
                    .ok()
                    .and_then(|st| st.ns_pid.last().copied());
                if let Some(inner) = inner {
                    self.map.insert(inner, tid);
                }
            }
            next.extend(proc.process_children().unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_every_pid_to_itself() {
        let mut m = PidMap::identity();
        assert_eq!(m.known(42), Some(42));
        assert_eq!(m.outer(42), Some(42));
    }

    #[test]
    fn a_new_namespace_knows_its_init() {
        let mut m = PidMap::new_ns(i32::MAX - 1);
        assert_eq!(m.known(1), Some(i32::MAX - 1));
        assert_eq!(m.known(2), None);
        // No such tree: nothing is found, and nothing is guessed.
        assert_eq!(m.outer(2), None);
    }
}
