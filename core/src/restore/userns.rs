//! The root's own user namespace at restore (its maps: [`crate::ns::user`]):
//! the root is cloned with `CLONE_NEWUSER` together with its other clone
//! flags (pid, UTS, IPC), so that the new user namespace owns those, and
//! waits until the tool has written its maps from outside; its cgroup
//! namespace, which it unshares itself, is the user namespace's too.
//!
//! What is not done yet is refused by name before anything is created:
//! - a net, mount or time namespace of the tree's own besides: the tool
//!   makes those before the root is forked, so they would belong to
//!   criu's user namespace, not to the tree's;
//! - more than one task, or threads, without a pid namespace of the
//!   tree's own: the root would fork them with their PIDs in criu's pid
//!   namespace, which a task of another user namespace may not do (its
//!   own pid namespace, owned by the new user namespace, it may).

use crate::ns::RootNs;

use super::RestoreError;
use super::images::TaskImages;

/// Refuse a tree in its own user namespace (`own.user`) that cannot be
/// restored yet (see the module).
pub fn check<'a>(
    own: &RootNs,
    root_pid: u32,
    alive: impl Iterator<Item = &'a TaskImages>,
    zombies: usize,
) -> Result<(), RestoreError> {
    for (yes, kind) in [(own.net, "net"), (own.mnt, "mount"), (own.time, "time")] {
        if yes {
            return Err(RestoreError::Unsupported(format!(
                "the root task {root_pid} is in its own user namespace and its own {kind} \
                 namespace: restoring both, the {kind} namespace owned by the user namespace, \
                 is not done yet"
            )));
        }
    }
    if own.pid {
        return Ok(());
    }
    let mut tasks = 0usize;
    for t in alive {
        tasks += 1;
        if t.pstree.threads.len() > 1 {
            return Err(RestoreError::Unsupported(format!(
                "task {} of a tree in its own user namespace has {} threads, and the tree has \
                 no pid namespace of its own: its threads' TIDs in criu's pid namespace \
                 cannot be set from inside the user namespace (not done yet)",
                t.pstree.pid,
                t.pstree.threads.len()
            )));
        }
    }
    if tasks + zombies > 1 {
        return Err(RestoreError::Unsupported(format!(
            "the tree of root task {root_pid} is in its own user namespace with {} tasks and \
             no pid namespace of its own: their PIDs in criu's pid namespace cannot be set \
             from inside the user namespace (not done yet)",
            tasks + zombies
        )));
    }
    Ok(())
}
