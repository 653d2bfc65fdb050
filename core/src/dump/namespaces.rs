//! Namespaces of the dumped tasks. The root task's own net, UTS, IPC,
//! time, mount and user namespaces are dumped (`netns-ID.img` and its
//! kin, see [`crate::ns::net`]; `utsns-ID.img`, `ipcns-*-ID.img`, see
//! [`crate::ns`]; `timens-ID.img`, see [`crate::restore::namespaces`];
//! `mountpoints-ID.img`, see [`crate::ns::mnt`]; `userns-ID.img`, see
//! [`crate::ns::user`]: one level below criu's only, [`check_user_parent`],
//! and not with its own net, mount or time namespace), and its own cgroup
//! namespace's roots go into `cgroup.img` ([`own_cgroup`]), and every task
//! of the tree must then be in them, as CRIU requires (it cannot restore a
//! task nested in another UTS or IPC namespace). So every other namespace
//! of every task must be criu's own, as `/proc/PID/ns/*` shows, or the
//! task is refused by name before anything is lost: its mounts, its
//! in-namespace PIDs, its network.
//!
//! CRIU's own rules are looser (it dumps a root task's own namespaces, and
//! nested pid, net and mount namespaces), but it too refuses a task whose
//! `pid_for_children` differs from its `pid` namespace; here both
//! `*_for_children` links must be criu's as well, since a task that
//! unshared them starts its future children elsewhere.
//!
//! One exception (see [`super::pidns`]): a root task that is the init
//! (pid 1) of its own pid namespace, one level below criu's, takes the
//! whole tree into that namespace; every other task must then be in it
//! (a nested pid namespace is refused by name).
//!
//! The check runs twice: on the tree as found before any task is seized
//! (a container is refused before its tasks are stopped, their memory
//! read, or the parasite fails to connect from their network namespace),
//! and on every seized task, which is the authoritative answer (the tree
//! cannot change any more).

use crate::ns::RootNs;
use crate::proc::task::NsIds;

/// A task in a namespace that is not criu's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NsError {
    #[error(
        "task {pid} is in its own {kind} namespace ({kind}:[{ino}], criu is in \
         {kind}:[{ours}]), which cannot be dumped yet"
    )]
    Own {
        pid: i32,
        kind: &'static str,
        ino: u64,
        ours: u64,
    },
    #[error(
        "task {pid} is in its own pid namespace (pid:[{ino}]) but is not its init \
         (it is pid {vpid} there); only a tree whose root is the namespace's init \
         can be dumped"
    )]
    PidNotInit { pid: i32, ino: u64, vpid: i32 },
    #[error(
        "task {pid} is in a pid namespace (pid:[{ino}]) nested {levels} level(s) below \
         criu's; only the root's own pid namespace, one level below, can be dumped yet"
    )]
    NestedPid { pid: i32, ino: u64, levels: usize },
    #[error(
        "task {pid} starts its children in another pid namespace (a new one, whose init \
         is not born yet: pid_for_children has no link), which cannot be dumped yet"
    )]
    NewPid { pid: i32 },
    #[error(
        "task {pid} starts its children in another {kind} namespace \
         ({link} is {kind}:[{ino}], criu is in {kind}:[{ours}]), which cannot \
         be dumped yet"
    )]
    ForChildren {
        pid: i32,
        kind: &'static str,
        link: &'static str,
        ino: u64,
        ours: u64,
    },
    #[error(
        "task {pid} is in {kind}:[{ino}], not in the root task's own {kind} namespace \
         ({kind}:[{root}]): only the root task's {kind} namespace is dumped, and every \
         task of the tree must share it (a nested {kind} namespace cannot be restored)"
    )]
    NotRoots {
        pid: i32,
        kind: &'static str,
        ino: u64,
        root: u64,
    },
    #[error(
        "task {pid} is in a user namespace (user:[{ino}]) nested below another one than \
         criu's (its parent is {parent}); only the root's own user namespace, one level \
         below criu's, can be dumped yet"
    )]
    NestedUser { pid: i32, ino: u64, parent: String },
    #[error(
        "task {pid} is in its own user namespace and its own {kind} namespace: restoring \
         the {kind} namespace owned by the user namespace is not done yet, so it is not \
         dumped"
    )]
    UserWith { pid: i32, kind: &'static str },
    #[error(
        "task {pid} is in its own user namespace without a pid namespace of its own, {what}: \
         the restore would have to set PIDs in criu's pid namespace from inside the user \
         namespace (not done yet)"
    )]
    UserNoPid { pid: i32, what: String },
    #[error("cannot dump the own namespaces of task {pid}: {reason}")]
    Dump { pid: i32, reason: String },
}

/// The namespaces of the root task (`root`) that are its own and that a
/// dump takes into the images (pid, net, UTS, IPC and time).
pub fn root_own(root: &NsIds, ours: &NsIds) -> RootNs {
    let differs = |t: Option<u64>, o: Option<u64>| matches!((t, o), (Some(t), Some(o)) if t != o);
    RootNs {
        pid: differs(root.pid, ours.pid),
        net: differs(root.net, ours.net),
        ipc: differs(root.ipc, ours.ipc),
        uts: differs(root.uts, ours.uts),
        time: differs(root.time, ours.time),
        mnt: differs(root.mnt, ours.mnt),
        user: differs(root.user, ours.user),
    }
}

/// The root task's own user namespace (`ino`) must be a child of criu's
/// (`ours`): a deeper one would be restored one level below criu's, its
/// maps composed, the levels between lost.
pub fn check_user_parent(pid: i32, ino: u64, ours: u64) -> Result<(), NsError> {
    let nested = |parent: String| NsError::NestedUser { pid, ino, parent };
    let file = std::fs::File::open(format!("/proc/{pid}/ns/user"))
        .map_err(|e| nested(format!("unreadable: {e}")))?;
    let parent = crate::sys::probe::ns_get_parent(&file)
        .map_err(|e| nested(format!("unreadable: NS_GET_PARENT: {e}")))?;
    let st = rustix::fs::fstat(&parent).map_err(|e| nested(format!("unreadable: fstat: {e}")))?;
    #[allow(clippy::useless_conversion)] // st_ino's width varies by arch
    let parent_ino = u64::from(st.st_ino);
    if parent_ino != ours {
        return Err(nested(format!(
            "user:[{parent_ino}], criu is in user:[{ours}]"
        )));
    }
    Ok(())
}

/// Whether the root task (`root`) has a cgroup namespace of its own: its
/// roots are recorded in `cgroup.img` (see
/// [`crate::cgroups::collect::cgns_roots`]), and the restore makes it
/// again once the root has joined them.
pub fn own_cgroup(root: &NsIds, ours: &NsIds) -> bool {
    matches!((root.cgroup, ours.cgroup), (Some(r), Some(o)) if r != o)
}

/// [`check`] for task `pid` of a tree whose root task is in namespaces
/// `root`: where the root has its own net, UTS, IPC, time, mount or cgroup namespace, every
/// task must be in it (and it stands in for criu's in the other checks,
/// `time_for_children` included).
pub fn check_in_tree(pid: i32, task: &NsIds, ours: &NsIds, root: &NsIds) -> Result<(), NsError> {
    let own = root_own(root, ours);
    let own_cgroup = own_cgroup(root, ours);
    if own.user {
        for (yes, kind) in [(own.net, "net"), (own.mnt, "mnt"), (own.time, "time")] {
            if yes {
                return Err(NsError::UserWith { pid, kind });
            }
        }
    }
    let mut yardstick = *ours;
    for (kind, is_own, t, r, slot) in [
        ("user", own.user, task.user, root.user, &mut yardstick.user),
        ("net", own.net, task.net, root.net, &mut yardstick.net),
        ("ipc", own.ipc, task.ipc, root.ipc, &mut yardstick.ipc),
        ("uts", own.uts, task.uts, root.uts, &mut yardstick.uts),
        ("time", own.time, task.time, root.time, &mut yardstick.time),
        ("mnt", own.mnt, task.mnt, root.mnt, &mut yardstick.mnt),
        (
            "cgroup",
            own_cgroup,
            task.cgroup,
            root.cgroup,
            &mut yardstick.cgroup,
        ),
    ] {
        if !is_own {
            continue;
        }
        if let (Some(ino), Some(root)) = (t, r)
            && ino != root
        {
            return Err(NsError::NotRoots {
                pid,
                kind,
                ino,
                root,
            });
        }
        *slot = r;
    }
    check(pid, task, &yardstick)
}

/// Compare the namespaces of task `pid` with criu's (`ours`). A namespace
/// either side lacks (an older kernel, a zombie whose links are gone)
/// cannot differ. The order puts the namespaces that contain others
/// first, so a container is named by its user namespace.
pub fn check(pid: i32, task: &NsIds, ours: &NsIds) -> Result<(), NsError> {
    let own = [
        ("user", task.user, ours.user),
        ("mnt", task.mnt, ours.mnt),
        ("pid", task.pid, ours.pid),
        ("net", task.net, ours.net),
        ("ipc", task.ipc, ours.ipc),
        ("uts", task.uts, ours.uts),
        ("cgroup", task.cgroup, ours.cgroup),
        ("time", task.time, ours.time),
    ];
    for (kind, t, o) in own {
        if let (Some(ino), Some(ours)) = (t, o)
            && ino != ours
        {
            return Err(NsError::Own {
                pid,
                kind,
                ino,
                ours,
            });
        }
    }
    // After unshare(CLONE_NEWPID), the link is missing until the new
    // namespace's init (the task's next child) exists. (A zombie has lost
    // every namespace but its pid one: its uts link is gone too.)
    let alive = task.uts.is_some();
    if alive
        && task.pid.is_some()
        && task.pid_for_children.is_none()
        && ours.pid_for_children.is_some()
    {
        return Err(NsError::NewPid { pid });
    }
    let for_children = [
        ("pid", "pid_for_children", task.pid_for_children, ours.pid),
        (
            "time",
            "time_for_children",
            task.time_for_children,
            ours.time,
        ),
    ];
    for (kind, link, t, o) in for_children {
        if let (Some(ino), Some(ours)) = (t, o)
            && ino != ours
        {
            return Err(NsError::ForChildren {
                pid,
                kind,
                link,
                ino,
                ours,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(base: u64) -> NsIds {
        NsIds {
            cgroup: Some(base),
            ipc: Some(base + 1),
            mnt: Some(base + 2),
            net: Some(base + 3),
            pid: Some(base + 4),
            pid_for_children: Some(base + 4),
            time: Some(base + 5),
            time_for_children: Some(base + 5),
            user: Some(base + 6),
            uts: Some(base + 7),
        }
    }

    #[test]
    fn same_namespaces_pass() {
        assert_eq!(check(7, &ids(100), &ids(100)), Ok(()));
        // A link the kernel does not have cannot differ.
        let mut t = ids(100);
        t.time = None;
        t.time_for_children = None;
        assert_eq!(check(7, &t, &ids(100)), Ok(()));
    }

    #[test]
    fn each_namespace_is_named() {
        let ours = ids(100);
        let mut t = ours;
        t.uts = Some(999);
        let e = check(42, &t, &ours).unwrap_err();
        assert_eq!(
            e.to_string(),
            "task 42 is in its own uts namespace (uts:[999], criu is in uts:[107]), \
             which cannot be dumped yet"
        );
        // The containing namespace is reported first.
        t.user = Some(998);
        assert!(matches!(
            check(42, &t, &ours),
            Err(NsError::Own { kind: "user", .. })
        ));
    }

    #[test]
    fn the_roots_own_uts_and_ipc_namespaces_pass() {
        let ours = ids(100);
        let mut root = ours;
        root.uts = Some(900);
        root.ipc = Some(901);
        assert_eq!(
            root_own(&root, &ours),
            RootNs {
                ipc: true,
                uts: true,
                ..RootNs::default()
            }
        );
        // The root itself, and a child in its namespaces.
        assert_eq!(check_in_tree(7, &root, &ours, &root), Ok(()));
        assert_eq!(check_in_tree(8, &root, &ours, &root), Ok(()));
        // A child left in criu's uts namespace.
        let mut child = root;
        child.uts = ours.uts;
        let e = check_in_tree(8, &child, &ours, &root).unwrap_err();
        assert!(
            matches!(
                e,
                NsError::NotRoots {
                    kind: "uts",
                    root: 900,
                    ..
                }
            ),
            "{e}"
        );
        // A child in a uts namespace of its own under a root in criu's.
        let mut child = ours;
        child.uts = Some(555);
        assert!(matches!(
            check_in_tree(8, &child, &ours, &ours),
            Err(NsError::Own { kind: "uts", .. })
        ));
        // An own cgroup namespace of the root's, which a child shares.
        let mut root = ours;
        root.cgroup = Some(903);
        assert!(own_cgroup(&root, &ours));
        assert_eq!(check_in_tree(8, &root, &ours, &root), Ok(()));
        assert!(matches!(
            check_in_tree(8, &ours, &ours, &root),
            Err(NsError::NotRoots { kind: "cgroup", .. })
        ));
        // An own mount namespace of the root's, which a child shares.
        let mut root = ours;
        root.mnt = Some(902);
        assert_eq!(check_in_tree(7, &root, &ours, &root), Ok(()));
        assert!(matches!(
            check_in_tree(8, &ours, &ours, &root),
            Err(NsError::NotRoots { kind: "mnt", .. })
        ));
        // An own user namespace of the root's, which a child shares; a
        // child in another (nested) one is refused.
        let mut root = ours;
        root.user = Some(904);
        assert_eq!(check_in_tree(7, &root, &ours, &root), Ok(()));
        let mut nested = root;
        nested.user = Some(905);
        assert!(matches!(
            check_in_tree(8, &nested, &ours, &root),
            Err(NsError::NotRoots { kind: "user", .. })
        ));
        // Its own net namespace passes (dumped whole or, with --empty-ns
        // net, as an empty one), a child elsewhere does not.
        let mut root = ours;
        root.net = Some(903);
        assert_eq!(check_in_tree(7, &root, &ours, &root), Ok(()));
        assert!(matches!(
            check_in_tree(8, &ours, &ours, &root),
            Err(NsError::NotRoots { kind: "net", .. })
        ));
    }

    #[test]
    fn children_namespaces_are_checked() {
        let ours = ids(100);
        let mut t = ours;
        t.pid_for_children = Some(555);
        let e = check(3, &t, &ours).unwrap_err();
        assert_eq!(
            e,
            NsError::ForChildren {
                pid: 3,
                kind: "pid",
                link: "pid_for_children",
                ino: 555,
                ours: 104
            }
        );
        assert!(
            e.to_string().contains("pid_for_children is pid:[555]"),
            "{e}"
        );
        let mut t = ours;
        t.pid_for_children = None;
        assert_eq!(check(3, &t, &ours), Err(NsError::NewPid { pid: 3 }));
        // A zombie keeps only its pid namespace.
        let zombie = NsIds {
            pid: ours.pid,
            ..NsIds::default()
        };
        assert_eq!(check(3, &zombie, &ours), Ok(()));
        let mut t = ours;
        t.time_for_children = Some(556);
        assert!(matches!(
            check(3, &t, &ours),
            Err(NsError::ForChildren { kind: "time", .. })
        ));
    }
}
