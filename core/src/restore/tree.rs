//! The process tree of a restore: who forks whom, with which session and
//! process group (CRIU's `prepare_pstree` and `create_children_and_session`).
//!
//! Every task is forked with its PID by its parent's restorer, in
//! `STAGE_SESSION`, while both still have the tool's memory: each task's
//! bootstrap region is mapped (shared) in the tool before the root is
//! forked, so every task inherits all of them, and jumps into its own
//! region's copy of the blob (`CMD_RESTORE_CHILD`) before unmapping the
//! rest. Files are opened once in the tool and inherited likewise.
//!
//! Sessions: a session leader calls `setsid` before forking its children,
//! except the children that stayed in its former session (forked first).
//! Groups: a group leader creates its group before forking; every other
//! member joins once all groups exist (shared counters, see the
//! restorer's `restore/tree.rs`). A group whose leader is gone gets a
//! helper task with the leader's PID, forked by the session's leader (or
//! the root), which exits and is reaped once every member has joined.
//! Zombies are forked by their parent and end at once with their wait
//! status, unreaped.
//!
//! A child that shared its parent's fd table or cwd/root/umask when dumped
//! (same `files_id`/`fs_id`) is forked with `CLONE_FILES`/`CLONE_FS`. The
//! topmost task of a shared table moves its fds into place; the others
//! move none and tell it through a pipe when they no longer need the
//! tool's fds, which it then closes for all of them.

use std::collections::HashMap;

use crate::blob::restorer_abi::{self as abi, ChildArg};
use crate::images::pb;

use super::RestoreError;
use super::images::TreeTaskImages;
use super::plan::TaskRole;

/// A helper holding a group whose leader is not in the tree.
#[derive(Clone, Debug)]
pub struct Helper {
    pub pid: i32,
    /// The task that forks it (the session's leader, or the root).
    pub parent: i32,
}

/// Session and group set-up of every task of the tree.
#[derive(Debug, Default)]
pub struct Roles {
    /// By PID (tasks and zombies; zombies use the session/group fields).
    pub roles: HashMap<i32, TaskRole>,
    /// Forked before the parent's setsid.
    pub before_setsid: Vec<i32>,
    pub helpers: Vec<Helper>,
    /// Initial counter values.
    pub groups: u32,
    pub joins: u32,
}

fn unsupported(what: String) -> RestoreError {
    RestoreError::Unsupported(format!("pstree.img: {what}"))
}

/// Decide every task's session and group actions, or refuse a tree whose
/// sessions cannot be made again by forking.
pub fn roles(tasks: &[TreeTaskImages], shell_job: bool) -> Result<Roles, RestoreError> {
    let entries: Vec<&pb::PstreeEntry> = tasks.iter().map(TreeTaskImages::pstree).collect();
    let zombies: Vec<u32> = tasks
        .iter()
        .filter(|t| matches!(t, TreeTaskImages::Zombie(_)))
        .map(|t| t.pstree().pid)
        .collect();
    let mut roles = roles_of(&entries, &zombies, shell_job)?;
    // Fd tables shared down the tree: the sharer uses its parent's, whose
    // owner (the topmost task of the chain) closes the tool's fds last.
    // Parents come first in pstree order, so a parent's owner is known.
    for t in tasks {
        let TreeTaskImages::Alive(t) = t else {
            continue;
        };
        if !t.shares_files {
            continue;
        }
        let parent = t.pstree.ppid as i32;
        let owner = match roles.roles.get(&parent) {
            Some(r) if r.fd_table == abi::FD_TABLE_SHARED => r.fd_owner,
            _ => parent,
        };
        if let Some(r) = roles.roles.get_mut(&owner) {
            r.fd_table = abi::FD_TABLE_LENT;
            r.fd_sync_count += 1;
        }
        if let Some(r) = roles.roles.get_mut(&(t.pstree.pid as i32)) {
            r.fd_table = abi::FD_TABLE_SHARED;
            r.fd_owner = owner;
        }
    }
    Ok(roles)
}

/// `clone` flags of a task forked by its parent: what it shares with it.
fn clone_flags(t: &super::images::TaskImages) -> u64 {
    const CLONE_FS: u64 = linux_raw_sys::general::CLONE_FS as u64;
    const CLONE_FILES: u64 = linux_raw_sys::general::CLONE_FILES as u64;
    let mut flags = 0;
    if t.shares_files {
        flags |= CLONE_FILES;
    }
    if t.shares_fs {
        flags |= CLONE_FS;
    }
    flags
}

/// [`roles`] of the pstree `entries` (the root first), `zombies` naming
/// the zombies among them.
fn roles_of(
    entries: &[&pb::PstreeEntry],
    zombies: &[u32],
    shell_job: bool,
) -> Result<Roles, RestoreError> {
    let Some(&root) = entries.first() else {
        return Err(unsupported("no task".into()));
    };
    let by_pid: HashMap<i32, &pb::PstreeEntry> =
        entries.iter().map(|e| (e.pid as i32, *e)).collect();
    let in_tree = |pid: u32| by_pid.contains_key(&(pid as i32));
    if root.sid != root.pid && !shell_job {
        return Err(RestoreError::Unsupported(format!(
            "pstree.img: task {} was not a session leader (sid {}); restore it with --shell-job",
            root.pid, root.sid
        )));
    }
    // The session a task had before its own setsid: its parent's (the
    // tool's for the root, which no dumped session id stands for unless
    // the root kept it, --shell-job).
    let before = |e: &pb::PstreeEntry| -> u32 {
        match by_pid.get(&(e.ppid as i32)) {
            Some(p) if e.pid != root.pid => p.sid,
            _ if root.sid != root.pid => root.sid,
            _ => 0,
        }
    };
    let mut out = Roles::default();
    let mut helper_groups: Vec<u32> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let pid = e.pid as i32;
        let mut role = TaskRole::default();
        let leader = e.sid == e.pid;
        if leader {
            role.setsid = 1;
            role.leads_group = 1;
        }
        if i > 0 {
            let Some(&parent) = by_pid.get(&(e.ppid as i32)) else {
                return Err(unsupported(format!(
                    "task {} has parent {}, which is not in the tree",
                    e.pid, e.ppid
                )));
            };
            if zombies.contains(&parent.pid) {
                return Err(unsupported(format!(
                    "task {} has a zombie ({}) for parent",
                    e.pid, parent.pid
                )));
            }
            // Which session does it start in?
            if !leader && e.sid != parent.sid {
                if parent.sid == parent.pid && e.sid == before(parent) && e.sid != 0 {
                    out.before_setsid.push(pid);
                } else {
                    return Err(unsupported(format!(
                        "task {} is in session {}, which its parent {} (session {}) \
                         cannot give it",
                        e.pid, e.sid, parent.pid, parent.sid
                    )));
                }
            }
        }
        // Its group.
        if e.pgid == e.pid {
            if !leader {
                role.pgid = pid;
                role.leads_group = 1;
            }
        } else if in_tree(e.pgid) {
            role.join_pgid = e.pgid as i32;
        } else if shell_job && e.pgid == root.pgid && e.sid == root.sid {
            // The shell's job group: the tree stays in the restorer's.
        } else {
            role.join_pgid = e.pgid as i32;
            if !helper_groups.contains(&e.pgid) {
                helper_groups.push(e.pgid);
                // Forked in the right session: by its leader, else the root.
                let parent = if in_tree(e.sid) {
                    e.sid as i32
                } else {
                    root.pid as i32
                };
                out.helpers.push(Helper {
                    pid: e.pgid as i32,
                    parent,
                });
            }
        }
        out.roles.insert(pid, role);
    }
    // A helper's PID must not be a task's own.
    for h in &out.helpers {
        if by_pid.contains_key(&h.pid) {
            return Err(unsupported(format!(
                "group {} is both a task and a helper",
                h.pid
            )));
        }
    }
    out.groups =
        out.roles.values().filter(|r| r.leads_group != 0).count() as u32 + out.helpers.len() as u32;
    out.joins = out.roles.values().filter(|r| r.join_pgid != 0).count() as u32;
    for (pid, r) in &out.roles {
        crate::pr_debug!(
            "task {pid}: setsid {} pgid {} leads {} joins {}",
            r.setsid,
            r.pgid,
            r.leads_group,
            r.join_pgid
        );
    }
    Ok(out)
}

/// Where a task's region is: (base of the region, offset of its args).
pub type RegionAt = (u64, usize);

/// The `[ChildArg]` list of task `parent`: its children in pstree order
/// (tasks with their regions, zombies), then the helpers it forks.
pub fn children_of(
    parent: i32,
    tasks: &[TreeTaskImages],
    roles: &Roles,
    regions: &HashMap<i32, RegionAt>,
    entry_off: usize,
) -> Vec<ChildArg> {
    let mut out = Vec::new();
    for t in tasks.iter().skip(1) {
        let e = t.pstree();
        if e.ppid as i32 != parent {
            continue;
        }
        let pid = e.pid as i32;
        let role = &roles.roles[&pid];
        let mut c = ChildArg {
            pid,
            before_setsid: u32::from(roles.before_setsid.contains(&pid)),
            setsid: role.setsid,
            pgid: role.pgid,
            leads_group: role.leads_group,
            join_pgid: role.join_pgid,
            ..ChildArg::default()
        };
        match t {
            TreeTaskImages::Alive(t) => {
                let (base, args_off) = regions[&pid];
                c.kind = abi::CHILD_TASK;
                c.clone_flags = clone_flags(t);
                c.entry = base + entry_off as u64;
                c.args = base + args_off as u64;
            }
            TreeTaskImages::Zombie(z) => {
                c.kind = abi::CHILD_ZOMBIE;
                c.exit_status = z.exit_status as i32;
            }
        }
        out.push(c);
    }
    for h in roles.helpers.iter().filter(|h| h.parent == parent) {
        out.push(ChildArg {
            pid: h.pid,
            kind: abi::CHILD_HELPER,
            pgid: h.pid,
            leads_group: 1,
            ..ChildArg::default()
        });
    }
    out
}

/// How many children `parent` forks (for the space in its region).
pub fn nr_children(parent: i32, tasks: &[TreeTaskImages], roles: &Roles) -> usize {
    tasks
        .iter()
        .skip(1)
        .filter(|t| t.pstree().ppid as i32 == parent)
        .count()
        + roles.helpers.iter().filter(|h| h.parent == parent).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pid: u32, ppid: u32, pgid: u32, sid: u32) -> pb::PstreeEntry {
        pb::PstreeEntry {
            pid,
            ppid,
            pgid,
            sid,
            threads: vec![pid],
        }
    }

    fn of(tree: &[pb::PstreeEntry], zombies: &[u32], shell: bool) -> Result<Roles, RestoreError> {
        let refs: Vec<&pb::PstreeEntry> = tree.iter().collect();
        roles_of(&refs, zombies, shell)
    }

    #[test]
    fn leaders_create_and_members_join() {
        let tree = [
            e(10, 0, 10, 10),
            e(11, 10, 10, 10),
            e(12, 11, 12, 10),
            e(13, 10, 12, 10),
        ];
        let r = of(&tree, &[], false).unwrap();
        assert_eq!(r.roles[&10].setsid, 1);
        assert_eq!(r.roles[&12].pgid, 12);
        assert_eq!(r.roles[&13].join_pgid, 12);
        assert_eq!(r.roles[&11].join_pgid, 10);
        assert!(r.helpers.is_empty());
        assert_eq!((r.groups, r.joins), (2, 2));
    }

    #[test]
    fn a_group_without_its_leader_gets_a_helper_from_the_session_leader() {
        let tree = [e(10, 0, 10, 10), e(11, 10, 7, 10), e(12, 10, 7, 10)];
        let r = of(&tree, &[], false).unwrap();
        assert_eq!(r.helpers.len(), 1);
        assert_eq!((r.helpers[0].pid, r.helpers[0].parent), (7, 10));
        assert_eq!(r.roles[&11].join_pgid, 7);
        assert_eq!((r.groups, r.joins), (2, 2));
    }

    #[test]
    fn a_child_left_in_its_parents_former_session_is_forked_first() {
        let tree = [e(10, 0, 10, 10), e(11, 10, 11, 11), e(12, 11, 12, 10)];
        let r = of(&tree, &[], false).unwrap();
        assert_eq!(r.before_setsid, vec![12]);
    }

    #[test]
    fn sessions_that_forking_cannot_give_are_refused() {
        // 12's session 11 is not its parent's (10), nor one 10 had before.
        let tree = [e(10, 0, 10, 10), e(11, 10, 11, 11), e(12, 10, 12, 11)];
        assert!(of(&tree, &[], false).is_err());
        // A root that is not a session leader needs --shell-job.
        let tree = [e(10, 0, 10, 5)];
        assert!(of(&tree, &[], false).is_err());
        assert!(of(&tree, &[], true).is_ok());
        // Children of a zombie cannot be forked.
        let tree = [e(10, 0, 10, 10), e(11, 10, 10, 10), e(12, 11, 10, 10)];
        assert!(of(&tree, &[11], false).is_err());
    }

    #[test]
    fn a_shell_job_tree_stays_in_the_shells_group() {
        let tree = [e(10, 0, 5, 5), e(11, 10, 5, 5)];
        let r = of(&tree, &[], true).unwrap();
        assert!(r.helpers.is_empty());
        assert_eq!(r.roles[&11].join_pgid, 0);
        assert_eq!(r.roles[&10].setsid, 0);
    }
}
