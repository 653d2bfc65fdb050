//! The root task's own namespaces: which ones the images give it (its
//! ids against `inventory.img`'s `root_ids`, the dumping tool's), read
//! and checked before anything is created, and filled from inside once
//! the root exists (see [`crate::ns`]).
//!
//! As CRIU: the root task may have its own UTS and IPC namespaces, which
//! it is created with (`CLONE_NEWUTS`, `CLONE_NEWIPC`) and which every
//! other task inherits, and its own time namespace (made before it is
//! forked, see [`super::namespaces`]) and net namespace (made and filled
//! before it is forked, see [`super::netns`]); a task in another one than its root's cannot be
//! restored. Any other namespace kind that is not the dumping tool's is
//! refused by name (a restore into criu's would lose it).

use crate::images::check::read_single;
use crate::images::typed::ImageDir;
use crate::images::{Kind, pb};
use crate::ns::{NsNumbers, RootNs, RootNsImages};

use super::RestoreError;
use super::images::TreeTaskImages;

/// Tool-side fault: the root task's namespaces are (to be) filled.
pub const FAULT_NAMESPACES: &str = "namespaces";

/// Each namespace kind's id in a `task_kobj_ids_entry`, CRIU's order.
fn ns_ids(ids: &pb::TaskKobjIdsEntry) -> [(&'static str, Option<u32>); 8] {
    [
        ("pid", ids.pid_ns_id),
        ("net", ids.net_ns_id),
        ("ipc", ids.ipc_ns_id),
        ("uts", ids.uts_ns_id),
        ("time", ids.time_ns_id),
        ("mnt", ids.mnt_ns_id),
        ("user", ids.user_ns_id),
        ("cgroup", ids.cgroup_ns_id),
    ]
}

/// The root task's own namespaces of the images in `dir` (the tree
/// `tasks`, root first), with what goes into them, read and checked.
pub fn plan(dir: &ImageDir, tasks: &[TreeTaskImages]) -> Result<RootNsImages, RestoreError> {
    let inventory: pb::InventoryEntry = read_single(dir, Kind::Inventory, 0)?;
    let alive = || {
        tasks.iter().filter_map(|t| match t {
            TreeTaskImages::Alive(t) => Some(&**t),
            TreeTaskImages::Zombie(_) => None,
        })
    };
    let Some(root) = alive().next() else {
        return Ok(RootNsImages::default());
    };
    let (Some(tool), Some(root_ids)) = (inventory.root_ids.as_ref(), root.ids.as_ref()) else {
        // Images without ids (hand-made, or older): criu's namespaces.
        return Ok(RootNsImages::default());
    };
    let root_pid = root.pstree.pid;
    let mut own = RootNs::default();
    let mut numbers = NsNumbers::default();
    for ((kind, r), (_, t)) in ns_ids(root_ids).into_iter().zip(ns_ids(tool)) {
        let (Some(r), Some(t)) = (r, t) else {
            continue;
        };
        if r == t {
            continue;
        }
        match kind {
            "ipc" => (own.ipc, numbers.ipc) = (true, r),
            "uts" => (own.uts, numbers.uts) = (true, r),
            "time" => (own.time, numbers.time) = (true, r),
            // Made and filled by `super::netns` before the root is forked.
            "net" => (own.net, numbers.net) = (true, r),
            // Checked and made by `super::pidns` (CLONE_NEWPID).
            "pid" => (own.pid, numbers.pid) = (true, r),
            // Built by `ns::mnt::build` (its options are the restore's).
            "mnt" => (own.mnt, numbers.mnt) = (true, r),
            // The root is cloned into a new one (CLONE_NEWUSER), which then
            // owns the namespaces its clone flags make; the tool writes
            // its maps (see `ns::user`).
            "user" => (own.user, numbers.user) = (true, r),
            // Made by the root itself at its roots `cgroup.img` records.
            "cgroup" => {
                let set = crate::cgroups::place::task_set(&root.core);
                crate::cgroups::place::check_cgns(dir, root_pid as i32, set)?;
            }
            _ => {
                return Err(RestoreError::Unsupported(format!(
                    "{}: the root task {root_pid} is in its own {kind} namespace \
                     ({kind}_ns_id {r}, the dumping tool's is {t} in inventory.img), \
                     which cannot be restored yet",
                    Kind::Ids.file_name(u64::from(root_pid))
                )));
            }
        }
    }
    for t in alive().skip(1) {
        let Some(ids) = t.ids.as_ref() else {
            continue;
        };
        for ((kind, mine), (_, r)) in ns_ids(ids).into_iter().zip(ns_ids(root_ids)) {
            if let (Some(mine), Some(r)) = (mine, r)
                && mine != r
            {
                return Err(RestoreError::Unsupported(format!(
                    "{}: task {} is in another {kind} namespace ({kind}_ns_id {mine}) than \
                     the root task {root_pid} ({r}): a nested {kind} namespace cannot be \
                     restored",
                    Kind::Ids.file_name(u64::from(t.pstree.pid)),
                    t.pstree.pid
                )));
            }
        }
    }
    if own.user {
        let zombies = tasks.len() - alive().count();
        super::userns::check(&own, root_pid, alive(), zombies)?;
    }
    if own.any() || own.time || own.net || own.mnt || own.user {
        let yes = |b: bool| if b { "yes" } else { "no" };
        crate::pr_info!(
            "The root task {root_pid} has its own namespaces: uts {}, ipc {}, time {}, net {}, \
             mnt {}, user {}",
            yes(own.uts),
            yes(own.ipc),
            yes(own.time),
            yes(own.net),
            yes(own.mnt),
            yes(own.user)
        );
    }
    let ns = RootNsImages::read(dir, own, numbers)
        .map_err(|e| RestoreError::Unsupported(e.to_string()))?;
    super::sysv::check(&ns, alive(), crate::proc::page_size() as u64)?;
    Ok(ns)
}

/// Fill the root task's (`pid`) new namespaces, unless a fault is
/// injected here (`fault`).
pub fn fill(ns: &RootNsImages, pid: i32, fault: bool) -> Result<(), RestoreError> {
    if fault {
        return Err(RestoreError::Unsupported(format!(
            "fault injected at {FAULT_NAMESPACES}"
        )));
    }
    ns.fill(pid).map_err(|e| {
        RestoreError::Unsupported(format!("cannot fill the namespaces of task {pid}: {e}"))
    })
}
