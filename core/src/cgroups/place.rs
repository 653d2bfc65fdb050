//! Cgroups at restore: the directories of `cgroup.img` made again (moved
//! under `--cgroup-root` where asked), their properties written as
//! `--manage-cgroups` allows, and for every task that is not to stay
//! where it is born (its set differs from its parent's; the root's parent
//! is criu, whose set was `root_cg_set` at dump) the `cgroup.procs` file of
//! each of its cgroups opened, for the task to write itself into before
//! it restores its memory and forks its children (so its pages are
//! charged there and its children are born there).
//!
//! `--manage-cgroups` (CRIU's modes):
//! - `none`: the cgroups must exist; no property is written;
//! - `props`: they must exist; their properties are written;
//! - `soft` (the default): missing ones are created and only those get
//!   their properties;
//! - `full`: missing ones are created, every one gets its properties;
//! - `strict`: none may exist; all are created with their properties;
//! - `ignore`: nothing of this; the tasks stay in criu's cgroups.
//!
//! A frozen cgroup (`cgroup.freeze 1`, `freezer.state FROZEN`) is frozen
//! again only once the tree is restored ([`Placed::finish`]). Directories
//! created for a restore that fails are removed again.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::collect::{hierarchy_label, prefix_path};
use super::{Hierarchy, find, hierarchies, perms_only};

use crate::images::kinds::Kind;
use crate::images::pb;
use crate::images::typed::ImageDir;
use crate::opts::{CgroupMode, CgroupRoot};
use crate::{pr_debug, pr_info, pr_warn};

/// Why the tree's cgroups cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("cgroup.img: {0}")]
    Image(String),
    #[error(
        "task {pid} is in cgroup set {set}, which cgroup.img does not hold (or there \
         is no cgroup.img)"
    )]
    NoSet { pid: i32, set: u32 },
    #[error("cgroup.img names {hierarchy}, which is not mounted here")]
    NotMounted { hierarchy: String },
    #[error("cgroup {path} of {hierarchy} is outside what criu's mount of it shows")]
    Outside { hierarchy: String, path: String },
    #[error("cgroup {0} does not exist (--manage-cgroups={1} creates none)")]
    Missing(PathBuf, &'static str),
    #[error("cgroup {0} exists already (--manage-cgroups=strict wants to create it)")]
    Exists(PathBuf),
    #[error("creating cgroup {0}: {1}")]
    Create(PathBuf, std::io::Error),
    #[error("writing {value:?} into {file}: {source}")]
    Write {
        file: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("opening {0}: {1}")]
    Open(PathBuf, std::io::Error),
    #[error("reading criu's mounts: {0}")]
    Mounts(String),
    #[error("{0}")]
    Fd(String),
    #[error(
        "the root task {pid} is in a cgroup namespace of its own, but cgroup.img records \
         no root of it (cgns_prefix) in its set {set}: the namespace cannot be made again \
         (CRIU records none where the namespace's root is the hierarchies' root)"
    )]
    NoCgns { pid: i32, set: u32 },
}

/// What a task writes itself into (tool fds of `cgroup.procs` files).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Join {
    /// The root task's own cgroup namespace: its roots, joined before the
    /// task unshares it (empty: none).
    pub cgns: Vec<i32>,
    /// Its cgroups.
    pub fds: Vec<i32>,
}

/// What [`prepare`] made.
#[derive(Debug, Default)]
pub struct Placed {
    /// What each task that moves writes itself into.
    pub fds: HashMap<i32, Join>,
    /// Directories created, parents first: removed if the restore fails.
    created: Vec<PathBuf>,
    /// Freezes to set once the tree is restored: (file, value).
    freeze: Vec<(PathBuf, String)>,
    kept: bool,
}

impl Placed {
    /// The tree is restored: freeze what was frozen, keep what was made.
    pub fn finish(&mut self) -> Result<(), PlaceError> {
        self.kept = true;
        for (file, value) in &self.freeze {
            pr_info!("cgroups: freezing {} again", file.display());
            write(file, value)?;
        }
        Ok(())
    }
}

impl Drop for Placed {
    /// A failed restore: the directories it made go (once the killed
    /// tasks have left them, within a second).
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for dir in self.created.iter().rev() {
            let deadline = Instant::now() + Duration::from_secs(1);
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc_ebusy()) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        pr_warn!("cgroups: cannot remove {}: {e}", dir.display());
                        break;
                    }
                }
            }
        }
    }
}

fn libc_ebusy() -> i32 {
    rustix::io::Errno::BUSY.raw_os_error()
}

/// A task of the tree as far as cgroups go.
#[derive(Clone, Copy, Debug)]
pub struct TaskSet {
    pub pid: i32,
    pub ppid: i32,
    pub set: u32,
}

/// The options and the images that decide it all.
pub struct Inputs<'a> {
    pub dir: &'a ImageDir,
    pub mode: CgroupMode,
    pub roots: &'a [CgroupRoot],
    /// The inventory's `root_cg_set`: the set of the dumping criu.
    pub root_set: u32,
    /// Alive tasks in pstree order (parents first).
    pub tasks: &'a [TaskSet],
}

fn mode_name(m: CgroupMode) -> &'static str {
    match m {
        CgroupMode::Ignore => "ignore",
        CgroupMode::None => "none",
        CgroupMode::Props => "props",
        CgroupMode::Soft => "soft",
        CgroupMode::Full => "full",
        CgroupMode::Strict => "strict",
    }
}

/// Make the tree's cgroups and open what each task writes itself into;
/// `keep` turns an opened file into the tool fd the task takes.
pub fn prepare(
    inp: &Inputs<'_>,
    mut keep: impl FnMut(OwnedFd) -> Result<i32, String>,
) -> Result<Placed, PlaceError> {
    let mut placed = Placed::default();
    let path = inp.dir.path(Kind::Cgroup, 0);
    let image: Option<pb::CgroupEntry> = if path.exists() {
        Some(
            crate::images::check::read_single(inp.dir, Kind::Cgroup, 0)
                .map_err(|e| PlaceError::Image(e.to_string()))?,
        )
    } else {
        None
    };
    if inp.mode == CgroupMode::Ignore {
        if let Some(image) = &image {
            pr_info!("cgroups: cgroup.img is not restored (--manage-cgroups=ignore)");
            if let Some(root) = inp.tasks.first()
                && has_cgns(image, root.set)
            {
                pr_warn!(
                    "cgroups: the root task {} had its own cgroup namespace, which is not \
                     made again (--manage-cgroups=ignore): it is restored in criu's",
                    root.pid
                );
            }
        }
        return Ok(placed);
    }
    let mut moves = moving(inp);
    // The root with a cgroup namespace of its own unshares it even if it
    // were born in its set.
    if let (Some(root), Some(image)) = (inp.tasks.first(), &image)
        && has_cgns(image, root.set)
        && moves.first().is_none_or(|t| t.pid != root.pid)
    {
        moves.insert(0, *root);
    }
    let Some(image) = image else {
        if let Some(t) = moves.first() {
            return Err(PlaceError::NoSet {
                pid: t.pid,
                set: t.set,
            });
        }
        return Ok(placed);
    };
    let me = crate::proc::ProcDir::open_self().map_err(|e| PlaceError::Mounts(e.to_string()))?;
    let mounts = me
        .mountinfo()
        .map_err(|e| PlaceError::Mounts(e.to_string()))?;
    let hs = super::with_private(
        &hierarchies(&mounts),
        image
            .controllers
            .iter()
            .map(|c| c.cnames.join(","))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    // The restoring criu's own cgroups: they (and their ancestors) exist
    // whatever the mode, and are not the tree's to change.
    let ours = me.cgroup().map_err(|e| PlaceError::Mounts(e.to_string()))?;
    // Each hierarchy's dumped top cgroup and where it goes now.
    let mut moved: HashMap<Vec<String>, (PathBuf, PathBuf)> = HashMap::new();
    for c in &image.controllers {
        let name = c.cnames.join(",");
        let h = find(&hs, &name).ok_or_else(|| PlaceError::NotMounted {
            hierarchy: hierarchy_label(&name),
        })?;
        for d in &c.dirs {
            let old = Path::new("/").join(&d.dir_name);
            let new = new_root(inp.roots, &c.cnames).unwrap_or_else(|| old.clone());
            if new != old {
                pr_info!(
                    "cgroups: {} of {} goes to {}",
                    old.display(),
                    hierarchy_label(&name),
                    new.display()
                );
            }
            let own = ours
                .iter()
                .find(|l| super::controllers_of(&l.controllers.join(",")) == h.controllers)
                .map(|l| l.path.clone());
            let cx = Ctx {
                h,
                mode: inp.mode,
                ours: own.as_deref(),
            };
            make(&cx, &new, d, &mut placed)?;
            moved.insert(h.controllers.clone(), (old, new));
        }
    }
    let sets: HashMap<u32, &pb::CgSetEntry> = image.sets.iter().map(|s| (s.id, s)).collect();
    let mut opened: HashMap<PathBuf, i32> = HashMap::new();
    let root_pid = inp.tasks.first().map(|t| t.pid);
    for t in moves {
        let set = sets.get(&t.set).ok_or(PlaceError::NoSet {
            pid: t.pid,
            set: t.set,
        })?;
        let mut join = Join::default();
        for m in &set.ctls {
            let h = find(&hs, &m.name).ok_or_else(|| PlaceError::NotMounted {
                hierarchy: hierarchy_label(&m.name),
            })?;
            let moved = moved.get(&h.controllers);
            let mut cx = Open {
                h,
                name: &m.name,
                mode: inp.mode,
                placed: &mut placed,
                opened: &mut opened,
                keep: &mut keep,
            };
            // Only the root makes the namespace; the others are born in it.
            if let Some(n) = m.cgns_prefix.filter(|_| Some(t.pid) == root_pid) {
                let root = prefix_path(&m.path, n).ok_or_else(|| {
                    PlaceError::Image(format!(
                        "set {}: cgns_prefix {n} does not end a component of {}",
                        set.id, m.path
                    ))
                })?;
                let root = rewrite(Path::new(root), moved);
                pr_info!(
                    "cgroups: task {} unshares its cgroup namespace at {} of {}",
                    t.pid,
                    root.display(),
                    hierarchy_label(&m.name)
                );
                join.cgns.push(cx.procs(&root)?);
            }
            join.fds
                .push(cx.procs(&rewrite(Path::new(&m.path), moved))?);
        }
        pr_debug!("cgroups: task {} joins set {}", t.pid, t.set);
        placed.fds.insert(t.pid, join);
    }
    Ok(placed)
}

/// Does set `id` of `image` record a cgroup namespace's roots (its
/// members' `cgns_prefix`)?
pub fn has_cgns(image: &pb::CgroupEntry, id: u32) -> bool {
    image
        .sets
        .iter()
        .filter(|s| s.id == id)
        .flat_map(|s| &s.ctls)
        .any(|m| m.cgns_prefix.is_some())
}

/// Check, before anything is made, that the images' root task `pid` in a
/// cgroup namespace of its own (set `set`) has its roots in `cgroup.img`
/// (CRIU records none where the namespace's root is every hierarchy's
/// root, and then restores the task in criu's namespace).
pub fn check_cgns(dir: &ImageDir, pid: i32, set: u32) -> Result<(), PlaceError> {
    let image: Option<pb::CgroupEntry> = if dir.path(Kind::Cgroup, 0).exists() {
        Some(
            crate::images::check::read_single(dir, Kind::Cgroup, 0)
                .map_err(|e| PlaceError::Image(e.to_string()))?,
        )
    } else {
        None
    };
    if image.is_some_and(|i| has_cgns(&i, set)) {
        return Ok(());
    }
    Err(PlaceError::NoCgns { pid, set })
}

/// A task's cgroup set: its main thread's (CRIU 3.x and later), else the
/// task core's (older images), else criu's.
pub fn task_set(core: &pb::CoreEntry) -> u32 {
    core.thread_core
        .as_ref()
        .and_then(|t| t.cg_set)
        .or_else(|| core.tc.as_ref().and_then(|tc| tc.cg_set))
        .unwrap_or(super::TOOL_SET)
}

/// Opening the `cgroup.procs` files of one hierarchy for a task.
struct Open<'a, K> {
    h: &'a Hierarchy,
    name: &'a str,
    mode: CgroupMode,
    placed: &'a mut Placed,
    opened: &'a mut HashMap<PathBuf, i32>,
    keep: &'a mut K,
}

impl<K: FnMut(OwnedFd) -> Result<i32, String>> Open<'_, K> {
    /// The tool fd of cgroup `path`'s `cgroup.procs` (the cgroup made if
    /// missing and the mode allows), opened once for every task.
    fn procs(&mut self, path: &Path) -> Result<i32, PlaceError> {
        let dir = self.h.dir_of(path).ok_or_else(|| PlaceError::Outside {
            hierarchy: hierarchy_label(self.name),
            path: path.display().to_string(),
        })?;
        if !dir.is_dir() {
            create_all(&dir, &self.h.mount, self.mode, self.placed)?;
        }
        let procs = dir.join("cgroup.procs");
        if let Some(&fd) = self.opened.get(&procs) {
            return Ok(fd);
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .map_err(|e| PlaceError::Open(procs.clone(), e))?;
        let fd = (self.keep)(OwnedFd::from(f)).map_err(PlaceError::Fd)?;
        self.opened.insert(procs, fd);
        Ok(fd)
    }
}

/// The tasks whose set is not the one they are born in.
fn moving(inp: &Inputs<'_>) -> Vec<TaskSet> {
    let by_pid: HashMap<i32, u32> = inp.tasks.iter().map(|t| (t.pid, t.set)).collect();
    inp.tasks
        .iter()
        .filter(|t| {
            let born_in = by_pid.get(&t.ppid).copied().unwrap_or(inp.root_set);
            t.set != born_in
        })
        .copied()
        .collect()
}

/// `--cgroup-root` for a hierarchy of controllers `cnames`: the one naming
/// one of them, else the one naming none.
fn new_root(roots: &[CgroupRoot], cnames: &[String]) -> Option<PathBuf> {
    let named = roots.iter().find(|r| {
        r.controller
            .as_deref()
            .is_some_and(|c| cnames.iter().any(|n| n == c) || cnames.join(",") == c)
    });
    named
        .or_else(|| roots.iter().find(|r| r.controller.is_none()))
        .map(|r| r.new_root.clone())
}

/// A set's path with its hierarchy's top cgroup moved.
fn rewrite(path: &Path, moved: Option<&(PathBuf, PathBuf)>) -> PathBuf {
    let Some((old, new)) = moved else {
        return path.to_path_buf();
    };
    match path.strip_prefix(old) {
        Ok(rest) if rest.as_os_str().is_empty() => new.clone(),
        Ok(rest) => new.join(rest),
        Err(_) => path.to_path_buf(),
    }
}

/// Missing cgroups from the hierarchy's mount down to `dir`, where the mode
/// allows creating them.
fn create_all(
    dir: &Path,
    mount: &Path,
    mode: CgroupMode,
    placed: &mut Placed,
) -> Result<(), PlaceError> {
    if matches!(mode, CgroupMode::None | CgroupMode::Props) {
        return Err(PlaceError::Missing(dir.to_path_buf(), mode_name(mode)));
    }
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(at) = d.filter(|d| d.starts_with(mount) && !d.is_dir()) {
        missing.push(at.to_path_buf());
        d = at.parent();
    }
    for m in missing.into_iter().rev() {
        std::fs::create_dir(&m).map_err(|e| PlaceError::Create(m.clone(), e))?;
        placed.created.push(m);
    }
    Ok(())
}

/// A hierarchy being made.
struct Ctx<'a> {
    h: &'a Hierarchy,
    mode: CgroupMode,
    /// The restoring criu's cgroup in it.
    ours: Option<&'a Path>,
}

/// Cgroup `path` as entry `d` says, then its children.
fn make(
    cx: &Ctx<'_>,
    path: &Path,
    d: &pb::CgroupDirEntry,
    placed: &mut Placed,
) -> Result<(), PlaceError> {
    let (h, mode) = (cx.h, cx.mode);
    let dir = h.dir_of(path).ok_or_else(|| PlaceError::Outside {
        hierarchy: hierarchy_label(&h.name()),
        path: path.display().to_string(),
    })?;
    // Criu's own cgroup or one above it (the hierarchy's root at least).
    let criu_in_it = cx.ours.is_some_and(|o| o.starts_with(path));
    let exists = dir.is_dir();
    let created = match (mode, exists) {
        (_, true) if criu_in_it => false,
        (CgroupMode::Strict, true) => return Err(PlaceError::Exists(dir)),
        (_, true) => false,
        _ => {
            create_all(&dir, &h.mount, mode, placed)?;
            true
        }
    };
    let props = match mode {
        CgroupMode::None | CgroupMode::Ignore => false,
        CgroupMode::Soft => created,
        CgroupMode::Props | CgroupMode::Full | CgroupMode::Strict => true,
    };
    if props && !criu_in_it && dir != h.mount {
        if created && let Some(p) = &d.dir_perms {
            set_perms(&dir, p)?;
        }
        for p in &d.properties {
            property(&dir, p, placed)?;
        }
    }
    for c in &d.children {
        make(cx, &path.join(&c.dir_name), c, placed)?;
    }
    Ok(())
}

fn set_perms(file: &Path, p: &pb::CgroupPerms) -> Result<(), PlaceError> {
    let err = |e| PlaceError::Write {
        file: file.to_path_buf(),
        value: format!("mode {:o} owner {}:{}", p.mode, p.uid, p.gid),
        source: e,
    };
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(p.mode & 0o7777))
        .map_err(err)?;
    std::os::unix::fs::chown(file, Some(p.uid), Some(p.gid)).map_err(err)
}

fn write(file: &Path, value: &str) -> Result<(), PlaceError> {
    std::fs::write(file, value).map_err(|source| PlaceError::Write {
        file: file.to_path_buf(),
        value: value.to_owned(),
        source,
    })
}

/// One property of a cgroup written back (CRIU's special cases included).
fn property(dir: &Path, p: &pb::CgroupPropEntry, placed: &mut Placed) -> Result<(), PlaceError> {
    let file = dir.join(&p.name);
    if !file.exists() {
        pr_warn!(
            "cgroups: {} does not exist here: not restored",
            file.display()
        );
        return Ok(());
    }
    if let Some(perms) = &p.perms {
        set_perms(&file, perms)?;
    }
    if perms_only(&p.name) {
        return Ok(());
    }
    match p.name.as_str() {
        "cgroup.freeze" | "freezer.state" => {
            if matches!(p.value.as_str(), "1" | "FROZEN") {
                placed.freeze.push((file, p.value.clone()));
            }
            Ok(())
        }
        // Only a threaded cgroup is made so (a domain is the default).
        "cgroup.type" if p.value != "threaded" => Ok(()),
        "cgroup.subtree_control" => {
            for c in p.value.split_whitespace() {
                write(&file, &format!("+{c}"))?;
            }
            Ok(())
        }
        "devices.list" => {
            let now = std::fs::read_to_string(&file).unwrap_or_default();
            if now.trim_end() == p.value {
                return Ok(());
            }
            write(&dir.join("devices.deny"), "a")?;
            for rule in p.value.lines().filter(|l| !l.is_empty()) {
                write(&dir.join("devices.allow"), rule)?;
            }
            Ok(())
        }
        _ => {
            // A value the new cgroup already has is left alone (some
            // deprecated files refuse any write, even of their default).
            let now = std::fs::read_to_string(&file).unwrap_or_default();
            if now.trim_end_matches('\n') == p.value {
                return Ok(());
            }
            write(&file, &p.value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(c: Option<&str>, p: &str) -> CgroupRoot {
        CgroupRoot {
            controller: c.map(str::to_owned),
            new_root: PathBuf::from(p),
        }
    }

    #[test]
    fn cgroup_root_picks_the_named_hierarchy_first() {
        let roots = [root(None, "/all"), root(Some("pids"), "/p")];
        assert_eq!(
            new_root(&roots, &["pids".into()]),
            Some(PathBuf::from("/p"))
        );
        assert_eq!(
            new_root(&roots, &["cpu".into()]),
            Some(PathBuf::from("/all"))
        );
        assert_eq!(new_root(&roots[1..], &["cpu".into()]), None);
    }

    #[test]
    fn set_paths_follow_their_top_cgroup() {
        let m = (PathBuf::from("/ctr"), PathBuf::from("/new"));
        assert_eq!(rewrite(Path::new("/ctr"), Some(&m)), PathBuf::from("/new"));
        assert_eq!(
            rewrite(Path::new("/ctr/a/b"), Some(&m)),
            PathBuf::from("/new/a/b")
        );
        assert_eq!(
            rewrite(Path::new("/ctrx"), Some(&m)),
            PathBuf::from("/ctrx")
        );
        assert_eq!(rewrite(Path::new("/x"), None), PathBuf::from("/x"));
    }

    #[test]
    fn only_tasks_born_elsewhere_move() {
        let tasks = [
            TaskSet {
                pid: 10,
                ppid: 1,
                set: 2,
            },
            TaskSet {
                pid: 11,
                ppid: 10,
                set: 2,
            },
            TaskSet {
                pid: 12,
                ppid: 10,
                set: 1,
            },
            TaskSet {
                pid: 13,
                ppid: 12,
                set: 1,
            },
        ];
        let dir = ImageDir::new("/nonexistent");
        let inp = Inputs {
            dir: &dir,
            mode: CgroupMode::Soft,
            roots: &[],
            root_set: 1,
            tasks: &tasks,
        };
        let m: Vec<i32> = moving(&inp).iter().map(|t| t.pid).collect();
        assert_eq!(m, [10, 12]);
        // Without an image, a task that must move is refused by name.
        let e = prepare(&inp, |_| Ok(0)).unwrap_err().to_string();
        assert!(e.contains("task 10 is in cgroup set 2"), "{e}");
    }
}
