//! Cgroups of the dumped tasks, as the checks before the seize see them
//! (what is recorded is [`crate::cgroups::collect`]'s): under
//! `--manage-cgroups=ignore` (CRIU's mode for "do not dump or restore
//! cgroups") the log says which tasks' cgroups are left out.
//!
//! A task whose cgroup is frozen (cgroup v2 `cgroup.freeze`, the v1
//! freezer) can be seized but cannot run the parasite: without
//! `--freeze-cgroup` (see [`super::freezer`]) it is refused before it is
//! touched, naming the cgroup, instead of the dump hanging.

use std::path::{Path, PathBuf};

use crate::proc::cgroup::CgroupLine;
use crate::proc::mountinfo::MountInfo;

/// A cgroup refusal.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "task {pid} is in cgroup {path} of {hierarchy}, which is frozen ({how}): a frozen \
         task cannot be dumped without thawing it; dump it with --freeze-cgroup {dir}, \
         which seizes it while frozen and leaves it frozen"
    )]
    Frozen {
        pid: i32,
        hierarchy: &'static str,
        path: String,
        how: &'static str,
        dir: String,
    },
    #[error("reading the cgroups of task {pid}: {source}")]
    Proc {
        pid: i32,
        source: crate::proc::ProcError,
    },
}

/// The first hierarchy in which `task` is not where `ours` is:
/// (hierarchy, task's path, ours).
pub fn difference(task: &[CgroupLine], ours: &[CgroupLine]) -> Option<(String, String, String)> {
    for t in task {
        let o = ours
            .iter()
            .find(|o| o.hierarchy == t.hierarchy && o.controllers == t.controllers);
        if o.is_some_and(|o| o.path == t.path) {
            continue;
        }
        let ours = o.map_or_else(|| "none".to_string(), |o| o.path.display().to_string());
        return Some((hierarchy_name(t), t.path.display().to_string(), ours));
    }
    None
}

/// `cgroup v2`, or `the cpu,cpuacct hierarchy`.
fn hierarchy_name(l: &CgroupLine) -> String {
    if l.controllers.is_empty() {
        "cgroup v2".to_string()
    } else {
        format!("the {} hierarchy", l.controllers.join(","))
    }
}

/// Where the cgroup filesystems that can freeze a task are mounted, from
/// criu's `/proc/self/mountinfo`: (mount point, root of the hierarchy it
/// shows).
#[derive(Debug, Default, Clone)]
pub struct FreezerMounts {
    pub v2: Option<(PathBuf, PathBuf)>,
    pub v1: Option<(PathBuf, PathBuf)>,
}

impl FreezerMounts {
    /// Pick the cgroup2 mount and the v1 mount with the freezer controller.
    pub fn from_mounts(mounts: &[MountInfo]) -> FreezerMounts {
        let mut out = FreezerMounts::default();
        for m in mounts {
            let at = (m.mount_point.clone(), m.root.clone());
            if m.fstype == "cgroup2" && out.v2.is_none() {
                out.v2 = Some(at);
            } else if m.fstype == "cgroup"
                && out.v1.is_none()
                && m.super_options.split(',').any(|o| o == "freezer")
            {
                out.v1 = Some(at);
            }
        }
        out
    }
}

/// The directory of cgroup `path` under a mount of its hierarchy.
fn dir_of((mount, root): &(PathBuf, PathBuf), path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    Some(mount.join(rel))
}

/// Is one of the cgroups of a task (its `/proc/PID/cgroup` lines) frozen
/// or freezing? The refusal, naming it and the `--freeze-cgroup` path.
pub fn check_frozen(
    pid: i32,
    lines: &[CgroupLine],
    mounts: &FreezerMounts,
) -> Result<(), CgroupError> {
    for l in lines {
        let (hierarchy, mount) = if l.controllers.is_empty() {
            ("cgroup v2", &mounts.v2)
        } else if l.controllers.iter().any(|c| c == "freezer") {
            ("the freezer hierarchy", &mounts.v1)
        } else {
            continue;
        };
        let Some(dir) = mount.as_ref().and_then(|m| dir_of(m, &l.path)) else {
            continue;
        };
        let how = if l.controllers.is_empty() {
            v2_frozen(&dir, &mount.as_ref().expect("checked").0)
        } else {
            v1_frozen(&dir)
        };
        if let Some(how) = how {
            return Err(CgroupError::Frozen {
                pid,
                hierarchy,
                path: l.path.display().to_string(),
                how,
                dir: dir.display().to_string(),
            });
        }
    }
    Ok(())
}

/// A v2 cgroup is frozen when `cgroup.events` says `frozen 1`, and on its
/// way there when it or an ancestor has `cgroup.freeze` 1.
fn v2_frozen(dir: &Path, mount: &Path) -> Option<&'static str> {
    let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
    if events.lines().any(|l| l.trim() == "frozen 1") {
        return Some("cgroup.events: frozen 1");
    }
    let mut d = Some(dir);
    while let Some(at) = d.filter(|d| d.starts_with(mount)) {
        let freeze = std::fs::read_to_string(at.join("cgroup.freeze")).unwrap_or_default();
        if freeze.trim() == "1" {
            return Some("cgroup.freeze: 1");
        }
        d = at.parent();
    }
    None
}

/// A v1 freezer cgroup is frozen (or freezing, by itself or a parent)
/// when `freezer.state` says so.
fn v1_frozen(dir: &Path) -> Option<&'static str> {
    match std::fs::read_to_string(dir.join("freezer.state"))
        .unwrap_or_default()
        .trim()
    {
        "FROZEN" => Some("freezer.state: FROZEN"),
        "FREEZING" => Some("freezer.state: FREEZING"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::cgroup::parse;

    #[test]
    fn same_membership_has_no_difference() {
        let ours = parse(b"2:freezer:/\n1:name=systemd:/user.slice\n0::/a\n").unwrap();
        assert_eq!(difference(&ours, &ours), None);
    }

    #[test]
    fn a_difference_names_the_hierarchy_and_both_paths() {
        let ours = parse(b"2:freezer:/\n1:cpu,cpuacct:/\n0::/a\n").unwrap();
        let t = parse(b"2:freezer:/\n1:cpu,cpuacct:/x\n0::/a\n").unwrap();
        assert_eq!(
            difference(&t, &ours),
            Some((
                "the cpu,cpuacct hierarchy".to_string(),
                "/x".to_string(),
                "/".to_string()
            ))
        );
        let t = parse(b"2:freezer:/\n1:cpu,cpuacct:/\n0::/b\n").unwrap();
        assert_eq!(
            difference(&t, &ours).map(|d| d.0),
            Some("cgroup v2".to_string())
        );
        // A hierarchy criu is not in at all.
        let t = parse(b"7:pids:/\n").unwrap();
        assert_eq!(difference(&t, &ours).map(|d| d.2), Some("none".into()));
    }

    #[test]
    fn cgroup_dirs_are_found_below_the_mount_root() {
        let m = (PathBuf::from("/sys/fs/cgroup/unified"), PathBuf::from("/"));
        assert_eq!(
            dir_of(&m, Path::new("/a/b")),
            Some(PathBuf::from("/sys/fs/cgroup/unified/a/b"))
        );
        // A mount showing only a subtree.
        let m = (PathBuf::from("/cg"), PathBuf::from("/ctr"));
        assert_eq!(
            dir_of(&m, Path::new("/ctr/x")),
            Some(PathBuf::from("/cg/x"))
        );
        assert_eq!(dir_of(&m, Path::new("/other")), None);
    }
}
