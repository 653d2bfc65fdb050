//! Cgroups of a tree as CRIU keeps them (its `cgroup.c`): every task's
//! membership as a *set* (one path per hierarchy, `thread_core.cg_set`
//! names it), and the directories of the tree's own cgroups with their
//! properties, in `cgroup.img`.
//!
//! - [`collect`] reads them at dump and writes the image;
//! - [`place`] makes them again at restore (`--manage-cgroups` decides
//!   which directories may be created and which properties written) and
//!   opens, for each task that must move, the `cgroup.procs` files it
//!   writes itself into before its memory is restored and its children
//!   forked.
//!
//! A task in the dumping criu's own cgroups has set [`TOOL_SET`]
//! (`root_cg_set` in the inventory): it is restored in the restoring
//! criu's cgroups, as CRIU does.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

use crate::proc::mountinfo::MountInfo;

pub mod collect;
pub mod place;

/// The set of the dumping criu's own cgroups (CRIU's `root_cg_set`).
pub const TOOL_SET: u32 = 1;

/// Most cgroup directories one dump records (a bound on the walk of the
/// tree's own sub-cgroups, far beyond what a container has).
pub const MAX_DIRS: usize = 10_000;

/// A cgroup hierarchy as criu sees it mounted.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    /// Its controllers (`cpu`, `name=systemd`), sorted; empty for v2.
    pub controllers: Vec<String>,
    pub mount: PathBuf,
    /// The cgroup the mount shows at its mount point.
    pub root: PathBuf,
    /// A detached mount criu made itself ([`mount_private`]), which
    /// `mount` reaches through `/proc/self/fd`: held while it is used.
    pub private: Option<Arc<OwnedFd>>,
}

impl PartialEq for Hierarchy {
    fn eq(&self, o: &Hierarchy) -> bool {
        self.controllers == o.controllers && self.mount == o.mount && self.root == o.root
    }
}
impl Eq for Hierarchy {}

impl Hierarchy {
    /// The directory of cgroup `path` (as `/proc/PID/cgroup` names it)
    /// through this mount; `None` if the mount does not show it.
    pub fn dir_of(&self, path: &Path) -> Option<PathBuf> {
        let rel = path.strip_prefix(&self.root).ok()?;
        Some(self.mount.join(rel))
    }

    pub fn is_v2(&self) -> bool {
        self.controllers.is_empty()
    }

    /// The hierarchy's name as CRIU writes it in a set: the controllers
    /// joined by commas, `""` for v2.
    pub fn name(&self) -> String {
        self.controllers.join(",")
    }
}

/// A v1 superblock option that is no controller.
fn is_controller_option(o: &str) -> bool {
    !o.is_empty()
        && !matches!(
            o,
            "rw" | "ro" | "noprefix" | "xattr" | "cpuset_v2_mode" | "favordynmods"
        )
        && !o.starts_with("release_agent=")
        && !o.starts_with("clone_children")
}

/// The controllers of a hierarchy name (`cpu,cpuacct`), sorted.
pub fn controllers_of(name: &str) -> Vec<String> {
    let mut c: Vec<String> = name
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    c.sort();
    c
}

/// Every cgroup hierarchy mounted where criu runs (the first mount of
/// each: a mount of its root where there is one).
pub fn hierarchies(mounts: &[MountInfo]) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in mounts {
        let mut controllers: Vec<String> = match m.fstype.as_str() {
            "cgroup2" => Vec::new(),
            "cgroup" => m
                .super_options
                .split(',')
                .filter(|o| is_controller_option(o))
                .map(str::to_owned)
                .collect(),
            _ => continue,
        };
        controllers.sort();
        let h = Hierarchy {
            controllers,
            mount: m.mount_point.clone(),
            root: m.root.clone(),
            private: None,
        };
        match out.iter_mut().find(|o| o.controllers == h.controllers) {
            // A mount of the hierarchy's root shows every cgroup.
            Some(o) if o.root != Path::new("/") && h.root == Path::new("/") => *o = h,
            Some(_) => {}
            None => out.push(h),
        }
    }
    out
}

/// Hierarchy `name` (`cpu,cpuacct`, `name=systemd`, `""` for v2) mounted
/// detached, for criu alone: a runtime may hide a hierarchy from the
/// namespace criu runs in (crun unmounts cgroup2 on hybrid machines)
/// while its tasks are still members, and CRIU mounts every hierarchy it
/// reads for itself. The mount goes when the last clone is dropped.
pub fn mount_private(name: &str) -> std::io::Result<Hierarchy> {
    let controllers = controllers_of(name);
    let fs = if controllers.is_empty() {
        "cgroup2"
    } else {
        "cgroup"
    };
    let ctx = rustix::mount::fsopen(fs, FsOpenFlags::FSOPEN_CLOEXEC)?;
    for c in &controllers {
        match c.strip_prefix("name=") {
            Some(n) => rustix::mount::fsconfig_set_string(&ctx, "name", n)?,
            None => rustix::mount::fsconfig_set_flag(&ctx, c.as_str())?,
        }
    }
    rustix::mount::fsconfig_create(&ctx)?;
    let fd = rustix::mount::fsmount(&ctx, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    Ok(Hierarchy {
        controllers,
        mount: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        root: PathBuf::from("/"),
        private: Some(Arc::new(fd)),
    })
}

/// `hs` and, mounted by [`mount_private`], each hierarchy of `names`
/// that is not among them; one that cannot be mounted is left out (its
/// user says it is not mounted), with the reason in the log.
pub fn with_private<'a>(
    hs: &[Hierarchy],
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<Hierarchy> {
    let mut out = hs.to_vec();
    for name in names {
        if find(&out, name).is_some() {
            continue;
        }
        match mount_private(name) {
            Ok(h) => {
                crate::pr_info!(
                    "cgroups: {} is not mounted where criu runs: mounted for criu alone",
                    collect::hierarchy_label(name)
                );
                out.push(h);
            }
            Err(e) => crate::pr_warn!(
                "cgroups: cannot mount {}: {e}",
                collect::hierarchy_label(name)
            ),
        }
    }
    out
}

/// The hierarchy named `name` (as in a set: `cpu,cpuacct`, `""` for v2).
pub fn find<'a>(hs: &'a [Hierarchy], name: &str) -> Option<&'a Hierarchy> {
    let want = controllers_of(name);
    hs.iter().find(|h| h.controllers == want)
}

/// The properties CRIU saves of a cgroup of controller `name`, in the
/// order they are written back (`cpuset.cpus` before `cpuset.mems`, both
/// before a task can join).
pub fn properties(name: &str) -> &'static [&'static str] {
    match name {
        "cpu" => &[
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpu.rt_period_us",
            "cpu.rt_runtime_us",
        ],
        "memory" => &[
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.swappiness",
            "memory.soft_limit_in_bytes",
            "memory.move_charge_at_immigrate",
            "memory.oom_control",
            "memory.use_hierarchy",
            "memory.kmem.limit_in_bytes",
            "memory.kmem.tcp.limit_in_bytes",
        ],
        "cpuset" => &[
            "cpuset.cpus",
            "cpuset.mems",
            "cpuset.memory_migrate",
            "cpuset.cpu_exclusive",
            "cpuset.mem_exclusive",
            "cpuset.mem_hardwall",
            "cpuset.memory_spread_page",
            "cpuset.memory_spread_slab",
            "cpuset.sched_load_balance",
            "cpuset.sched_relax_domain_level",
        ],
        "blkio" => &["blkio.weight"],
        "devices" => &["devices.list"],
        "pids" => &["pids.max"],
        _ => &[],
    }
}

/// Properties of every v1 cgroup.
pub const V1_COMMON: &[&str] = &[
    "cgroup.clone_children",
    "notify_on_release",
    "cgroup.procs",
    "tasks",
];

/// Properties of every v2 cgroup (before its controllers' own).
pub const V2_COMMON: &[&str] = &[
    "cgroup.subtree_control",
    "cgroup.max.descendants",
    "cgroup.max.depth",
    "cgroup.freeze",
    "cgroup.type",
];

/// Properties of a v2 cgroup for each controller it has (its
/// `cgroup.controllers`).
pub fn v2_properties(controller: &str) -> &'static [&'static str] {
    match controller {
        "cpu" => &["cpu.weight", "cpu.max"],
        "cpuset" => &["cpuset.cpus", "cpuset.mems"],
        "memory" => &[
            "memory.min",
            "memory.low",
            "memory.high",
            "memory.max",
            "memory.swap.max",
        ],
        "io" => &["io.weight", "io.max"],
        "pids" => &["pids.max"],
        _ => &[],
    }
}

/// Files whose permissions alone are saved: their contents are members.
pub fn perms_only(prop: &str) -> bool {
    prop == "cgroup.procs" || prop == "tasks"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(fstype: &str, point: &str, root: &str, sopts: &str) -> MountInfo {
        MountInfo {
            mnt_id: 1,
            parent_id: 0,
            major: 0,
            minor: 0,
            root: PathBuf::from(root),
            root_deleted: false,
            mount_point: PathBuf::from(point),
            mount_options: "rw".into(),
            propagation: Vec::new(),
            fstype: fstype.into(),
            source: b"cgroup".to_vec(),
            super_options: sopts.into(),
        }
    }

    #[test]
    fn hierarchies_are_found_by_their_controllers() {
        let hs = hierarchies(&[
            mount("tmpfs", "/sys/fs/cgroup", "/", "rw,mode=755"),
            mount(
                "cgroup",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/",
                "rw,cpuacct,cpu",
            ),
            mount(
                "cgroup",
                "/sys/fs/cgroup/systemd",
                "/",
                "rw,xattr,name=systemd",
            ),
            mount("cgroup2", "/sys/fs/cgroup/unified", "/", "rw,nsdelegate"),
            mount("cgroup2", "/other", "/sub", "rw"),
        ]);
        assert_eq!(hs.len(), 3);
        assert_eq!(
            find(&hs, "cpu,cpuacct").unwrap().mount,
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(find(&hs, "cpuacct,cpu").unwrap().name(), "cpu,cpuacct");
        assert_eq!(
            find(&hs, "name=systemd").unwrap().controllers,
            ["name=systemd"]
        );
        let v2 = find(&hs, "").unwrap();
        assert_eq!(v2.mount, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(
            v2.dir_of(Path::new("/a/b")),
            Some(PathBuf::from("/sys/fs/cgroup/unified/a/b"))
        );
        assert!(find(&hs, "pids").is_none());
    }

    #[test]
    fn a_mount_of_a_subtree_shows_only_it() {
        let hs = hierarchies(&[mount("cgroup2", "/cg", "/ctr", "rw")]);
        assert_eq!(
            hs[0].dir_of(Path::new("/ctr/x")),
            Some(PathBuf::from("/cg/x"))
        );
        assert_eq!(hs[0].dir_of(Path::new("/other")), None);
    }
}
