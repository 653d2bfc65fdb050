//! Restore: the root task's mount namespace built again from
//! `mountpoints-ID.img` (CRIU's `prepare_mnt_ns`, done the way its newer
//! engine does: every mount made in a private yard, then the yard's root
//! made the namespace's root).
//!
//! The tool itself makes the namespace: it unshares a mount namespace
//! (only for its restoring thread; everything in it private, so nothing
//! reaches the host's), mounts a tmpfs yard on a fresh directory under
//! `/tmp`, binds `--root` at `YARD/root`, and makes every mount of the
//! tree below it in mount order: each one a bind of where its contents
//! come from ([`super::tree::Source`]): `--root`, an external mount's
//! directory, or a filesystem mounted fresh once in `YARD/fs-N` (a
//! tmpfs's archive unpacked into it). The tasks' files are then opened
//! below `YARD/root`, and the root task is forked into the namespace.
//!
//! Mounts of a filesystem that shows the namespaces of whoever mounts it
//! (proc, mqueue, sysfs: see [`super::Bound`]), when the tree has its own
//! such namespace, and everything below or bound from them, are made only
//! once the root task exists ([`Yard::finish`]), from a child born in its
//! pid namespace or joined to its IPC or network one. Then the tool goes
//! back to its own mount namespace, and a child joined to the new one
//! pivots it onto `YARD/root` (which moves the tasks' roots with it) and
//! detaches the rest: the yard, the scratch mounts, the host's tree.
//!
//! On failure before that, the namespace simply dies with the tool's
//! thread leaving it and the tasks being killed; the yard's directory is
//! removed either way.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::LinkNameSpaceType;

use crate::images::{ImageDir, Kind, pb};

use super::tree::{Base, Tree, dev_str};
use super::{AUTODETECTED, Bound, MntError, bound_to, fresh_name};

/// Per-mount flags a bind remount sets (the others are the superblock's
/// or are not flags of a mount).
const MNT_FLAGS: u32 = linux_raw_sys::general::MS_RDONLY
    | linux_raw_sys::general::MS_NOSUID
    | linux_raw_sys::general::MS_NODEV
    | linux_raw_sys::general::MS_NOEXEC
    | linux_raw_sys::general::MS_NOATIME
    | linux_raw_sys::general::MS_NODIRATIME
    | linux_raw_sys::general::MS_RELATIME
    | linux_raw_sys::general::MS_STRICTATIME;

/// The namespaces the restored tree has its own of, which decide which
/// mounts wait for the root task ([`Bound`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct OwnNs {
    pub pid: bool,
    pub ipc: bool,
    pub net: bool,
}

impl OwnNs {
    fn late(self, fstype: u32) -> bool {
        match bound_to(fstype) {
            Some(Bound::Pid) => self.pid,
            Some(Bound::Ipc) => self.ipc,
            Some(Bound::Net) => self.net,
            None => false,
        }
    }
}

/// The mount namespace to build, read and checked before anything is
/// created.
#[derive(Debug)]
pub struct Plan {
    tree: Tree,
    /// `--root`: what the namespace's root mount is a bind of.
    root: PathBuf,
    /// External mounts' keys -> the directory given for each.
    external: HashMap<String, PathBuf>,
    images: PathBuf,
    own: OwnNs,
    late: Vec<bool>,
}

/// Reads `mountpoints-ID.img` of `dir` and checks that every mount can
/// be made: `root` (`--root`) is needed unless the namespace's root was
/// the whole of its filesystem; every external mount's key must be in
/// `external` (`--external mnt[KEY]:DIR`, `--ext-mount-map KEY:DIR`);
/// every tmpfs's archive must be there; an autodetected one (CRIU's
/// `--ext-mount-map auto`) needs `auto`.
pub fn plan(
    dir: &ImageDir,
    id: u32,
    root: Option<&Path>,
    external: &[(String, PathBuf)],
    auto: bool,
    own: OwnNs,
) -> Result<Plan, MntError> {
    let file = Kind::Mnts.file_name(u64::from(id));
    let mut entries: Vec<pb::MntEntry> = dir.read_all(Kind::Mnts, u64::from(id))?;
    let mut external: HashMap<String, PathBuf> = external.iter().cloned().collect();
    autodetected(&mut entries, &mut external, auto, &file)?;
    let tree = Tree::new(entries, &file)?;
    let top = &tree.mounts[0];
    let root = match root {
        Some(r) => r.to_path_buf(),
        None if top.root == "/" => PathBuf::from("/"),
        None => {
            return Err(MntError::Restore(format!(
                "{file}: the namespace's root mount {} was {} of device {}: give the \
                 directory that holds it now with --root",
                top.mnt_id,
                top.root,
                dev_str(top.root_dev)
            )));
        }
    };
    // A shared root is made so after the pivot (which refuses one), as
    // the only mount of its peer group; more of the root's propagation
    // is not restored yet.
    let root_group = top.shared_id.filter(|&g| g != 0);
    if top.master_id.unwrap_or(0) != 0
        || root_group.is_some_and(|g| {
            tree.mounts[1..]
                .iter()
                .any(|m| m.shared_id == Some(g) || m.master_id == Some(g))
        })
    {
        return Err(MntError::Restore(format!(
            "{file}: the namespace's root mount {} propagates mount events to or from other \
             mounts, which cannot be restored yet",
            top.mnt_id
        )));
    }
    for (i, s) in tree.source.iter().enumerate() {
        let m = &tree.mounts[i];
        match &s.base {
            Base::External(key) if !external.contains_key(key) => {
                return Err(MntError::Restore(format!(
                    "{file}: mount {} at {} is external (key {key:?}): give its directory \
                     with --external mnt[{key}]:DIR",
                    m.mnt_id, m.mountpoint
                )));
            }
            Base::Fresh(f) if *f == i => {
                if fresh_name(m).is_none() {
                    return Err(MntError::Restore(format!(
                        "{file}: mount {} at {} has filesystem type {}, which criu does not \
                         mount",
                        m.mnt_id, m.mountpoint, m.fstype
                    )));
                }
                if m.fstype == 5 {
                    let name = super::tmpfs::image_name(u64::from(m.root_dev));
                    if !dir.root().join(&name).exists() {
                        return Err(MntError::Restore(format!(
                            "{file}: the contents of the tmpfs at {} (mount {}) should be in \
                             {name}, which is missing",
                            m.mountpoint, m.mnt_id
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    let late = tree.late(|f| own.late(f));
    Ok(Plan {
        tree,
        root,
        external,
        images: dir.root().to_path_buf(),
        own,
        late,
    })
}

/// Autodetected external mounts ([`AUTODETECTED`] key, the path criu saw
/// the filesystem at in `source`) are binds of that path again, as in
/// CRIU: each gets a key of its own (the mount id's) in `external`.
/// Without `auto` they are refused with CRIU's hint.
fn autodetected(
    entries: &mut [pb::MntEntry],
    external: &mut HashMap<String, PathBuf>,
    auto: bool,
    file: &str,
) -> Result<(), MntError> {
    for e in entries
        .iter_mut()
        .filter(|e| e.ext_key.as_deref() == Some(AUTODETECTED))
    {
        if !auto {
            return Err(MntError::Restore(format!(
                "{file}: mount {} at {} is an autodetected external mount; try \
                 \"--ext-mount-map auto\" to allow them",
                e.mnt_id, e.mountpoint
            )));
        }
        let key = format!("{AUTODETECTED}:{}", e.mnt_id);
        let dir = Path::new("/").join(&e.source);
        crate::pr_info!(
            "mount {} at {}: autodetected external, bound from {}",
            e.mnt_id,
            e.mountpoint,
            dir.display()
        );
        external.insert(key.clone(), dir);
        e.ext_key = Some(key);
    }
    Ok(())
}

fn cpath(p: &Path) -> Result<CString, MntError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| MntError::Restore(format!("{} holds a NUL byte", p.display())))
}

/// The namespace being built: the tool's thread is in it until
/// [`Yard::finish`] (or drop) takes it back to its own.
pub struct Yard {
    own_ns: OwnedFd,
    /// The thread's cwd before (setns resets it to the namespace's root).
    cwd: OwnedFd,
    ns: Option<OwnedFd>,
    /// The yard's directory (on the host's filesystem; a tmpfs in the
    /// new namespace).
    dir: PathBuf,
    inside: bool,
    /// Ptys made for a bind of a devpts entry that did not exist (runc's
    /// `/dev/console`, a bind of the container's `/dev/pts/N`): the index
    /// and its master, for the terminals' restore to take over.
    ptys: std::cell::RefCell<Vec<(u32, OwnedFd)>>,
}

impl Yard {
    /// Where the restored tree's `/` is while the namespace is built:
    /// task files are opened below it.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The ptys made for binds of devpts entries (see [`Yard::ptys`]),
    /// by index: their masters.
    pub fn take_ptys(&self) -> Vec<(u32, OwnedFd)> {
        std::mem::take(&mut *self.ptys.borrow_mut())
    }

    fn leave(&mut self) -> Result<(), MntError> {
        if self.inside {
            rustix::thread::move_into_link_name_space(
                self.own_ns.as_fd(),
                Some(LinkNameSpaceType::Mount),
            )
            .map_err(MntError::sys("setns back into criu's mount namespace"))?;
            self.inside = false;
            rustix::process::fchdir(&self.cwd)
                .map_err(MntError::sys("go back to criu's working directory"))?;
        }
        Ok(())
    }
}

impl Drop for Yard {
    fn drop(&mut self) {
        if let Err(e) = self.leave() {
            crate::pr_err!("{e}");
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            crate::pr_warn!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

impl Plan {
    /// Is there anything for [`Yard::finish`] to do once the root exists?
    pub fn has_late(&self) -> bool {
        self.late.iter().any(|&l| l)
    }

    /// Unshares a mount namespace for the calling thread and makes every
    /// mount that does not wait for the root task.
    pub fn enter(&self) -> Result<Yard, MntError> {
        let own_ns = rustix::fs::open(
            "/proc/thread-self/ns/mnt",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(MntError::sys("open /proc/thread-self/ns/mnt"))?;
        let cwd = rustix::fs::open(
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(MntError::sys("open criu's working directory"))?;
        let dir = yard_dir()?;
        let mut yard = Yard {
            own_ns,
            cwd,
            ns: None,
            dir,
            inside: false,
            ptys: Default::default(),
        };
        crate::sys::probe::unshare_this_thread(
            linux_raw_sys::general::CLONE_NEWNS | linux_raw_sys::general::CLONE_FS,
        )
        .map_err(MntError::sys("unshare(CLONE_NEWNS)"))?;
        yard.inside = true;
        rustix::mount::mount_change(
            "/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .map_err(MntError::sys("make / private in the new mount namespace"))?;
        rustix::mount::mount(
            "criu-yard",
            &yard.dir,
            "tmpfs",
            MountFlags::empty(),
            c"mode=0700",
        )
        .map_err(MntError::sys(format!(
            "mount the yard on {}",
            yard.dir.display()
        )))?;
        yard.ns = Some(
            rustix::fs::open(
                "/proc/thread-self/ns/mnt",
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(MntError::sys("open the new /proc/thread-self/ns/mnt"))?,
        );
        let root = yard.root();
        std::fs::create_dir(&root).map_err(MntError::io(format!("mkdir {}", root.display())))?;
        self.bind(&self.root, &root, self.tree.mounts[0].flags)
            .map_err(|e| self.failed(0, e))?;
        crate::pr_info!(
            "mount namespace: root {} at {}",
            self.root.display(),
            root.display()
        );
        for i in 1..self.tree.mounts.len() {
            if !self.late[i] {
                self.place(&yard, i, None).map_err(|e| self.failed(i, e))?;
            }
        }
        Ok(yard)
    }

    /// Once the root task `root_pid` exists (forked into the namespace
    /// by the caller's thread): makes the mounts that waited for its
    /// namespaces, goes back to criu's own mount namespace and pivots the
    /// new one onto its root.
    pub fn finish(&self, mut yard: Yard, root_pid: i32) -> Result<(), MntError> {
        if self.has_late() {
            let ns = NsFds::open(root_pid, self.own)?;
            for i in 1..self.tree.mounts.len() {
                if self.late[i] {
                    self.place(&yard, i, Some(&ns))
                        .map_err(|e| self.failed(i, e))?;
                }
            }
        }
        self.propagate(&yard)?;
        let ns = yard
            .ns
            .take()
            .ok_or_else(|| MntError::Restore("the mount namespace was not made".into()))?;
        yard.leave()?;
        let root = cpath(&yard.root())?;
        let shared = self.tree.mounts[0].shared_id.unwrap_or(0) != 0;
        crate::sys::mount_child::pivot_in_child(ns.as_fd(), &root, shared).map_err(|e| {
            // The usual reason, said: an initramfs cannot be pivoted away.
            let why = match e == rustix::io::Errno::INVAL && root_is_initramfs() {
                true => " (criu's root is an initramfs, which pivot_root cannot leave)",
                false => "",
            };
            MntError::Sys {
                what: format!("pivot_root into {}{why}", yard.root().display()),
                source: e,
            }
        })?;
        crate::pr_info!(
            "mount namespace of task {root_pid}: {} mounts restored",
            self.tree.mounts.len()
        );
        Ok(())
    }

    /// Peer groups and slaves, once every mount exists (nothing has
    /// propagated while they were made). Each group's mount with the
    /// widest root leads it: the kernel copies sharing only from a mount
    /// whose root holds the other's. Groups are made masters first.
    fn propagate(&self, yard: &Yard) -> Result<(), MntError> {
        let ms = &self.tree.mounts;
        let path = |i: usize| yard.root().join(ms[i].mountpoint.trim_start_matches('/'));
        let mut leader: HashMap<u32, usize> = HashMap::new();
        // (The root's sharing waits for the pivot: see `plan`.)
        for (i, m) in ms.iter().enumerate().skip(1) {
            if let Some(g) = m.shared_id.filter(|&g| g != 0) {
                let l = leader.entry(g).or_insert(i);
                if m.root.len() < ms[*l].root.len() {
                    *l = i;
                }
            }
        }
        let master = |i: usize| ms[i].master_id.filter(|&g| g != 0);
        // Join `to` to the sharing of `from` (its peer group and master).
        let join = |from: usize, to: usize| {
            rustix::mount::move_mount(
                rustix::fs::CWD,
                path(from),
                rustix::fs::CWD,
                path(to),
                rustix::mount::MoveMountFlags::MOVE_MOUNT_SET_GROUP,
            )
            .map_err(MntError::sys(format!(
                "share the mount events of mount {} with mount {}",
                ms[from].mnt_id, ms[to].mnt_id
            )))
        };
        let change = |i: usize, how: MountPropagationFlags, what: &str| {
            rustix::mount::mount_change(path(i), how).map_err(MntError::sys(format!(
                "make mount {} at {} {what}",
                ms[i].mnt_id, ms[i].mountpoint
            )))
        };
        // A mount is a slave of group `g`: a peer of its leader first.
        let enslave = |i: usize, g: u32| -> Result<(), MntError> {
            let Some(&l) = leader.get(&g) else {
                return Err(MntError::Restore(format!(
                    "mount {} is a slave of peer group {g}, which no mount of the namespace \
                     is in",
                    ms[i].mnt_id
                )));
            };
            join(l, i)?;
            change(i, MountPropagationFlags::DOWNSTREAM, "a slave")
        };
        let mut done: HashMap<u32, bool> = HashMap::new();
        let mut groups: Vec<u32> = leader.keys().copied().collect();
        groups.sort_unstable();
        // Masters before their slaves' groups (a chain is at most as long
        // as the number of groups).
        for _ in 0..=groups.len() {
            for &g in &groups {
                if done.contains_key(&g) {
                    continue;
                }
                let l = leader[&g];
                if let Some(m) = master(l) {
                    if !done.contains_key(&m) {
                        continue;
                    }
                    enslave(l, m)?;
                }
                change(l, MountPropagationFlags::SHARED, "shared")?;
                for (i, e) in ms.iter().enumerate() {
                    if i != l && e.shared_id == Some(g) {
                        join(l, i)?;
                    }
                }
                done.insert(g, true);
            }
        }
        if let Some(g) = groups.iter().find(|g| !done.contains_key(g)) {
            return Err(MntError::Restore(format!(
                "peer group {g} is its own master through other groups"
            )));
        }
        for (i, e) in ms.iter().enumerate() {
            if e.shared_id.unwrap_or(0) == 0
                && let Some(m) = master(i)
            {
                enslave(i, m)?;
            }
        }
        if !groups.is_empty() {
            crate::pr_info!("mount namespace: {} peer groups restored", groups.len());
        }
        Ok(())
    }

    fn failed(&self, i: usize, e: MntError) -> MntError {
        let m = &self.tree.mounts[i];
        MntError::Restore(format!(
            "cannot restore mount {} at {} ({}): {e}",
            m.mnt_id,
            m.mountpoint,
            fresh_name(m).unwrap_or("a bind")
        ))
    }

    /// Makes mount `i` at its place below the yard's root.
    fn place(&self, yard: &Yard, i: usize, ns: Option<&NsFds>) -> Result<(), MntError> {
        let m = &self.tree.mounts[i];
        let src = &self.tree.source[i];
        let base = match &src.base {
            Base::Root => self.root.clone(),
            Base::External(key) => self.external[key].clone(),
            Base::Fresh(f) => {
                let scratch = yard.dir.join(format!("fs-{f}"));
                // Mounted once, when the first mount of it needs it.
                if !scratch.exists() {
                    self.fresh(&scratch, &self.tree.mounts[*f], ns)?;
                }
                scratch
            }
        };
        // (`join("")` would add a `/`, which a file cannot take.)
        let from = match src.sub.as_os_str().is_empty() {
            true => base,
            false => base.join(&src.sub),
        };
        let to = yard.root().join(m.mountpoint.trim_start_matches('/'));
        if let Base::Fresh(f) = &src.base {
            self.make_pts(yard, &self.tree.mounts[*f], &from)?;
        }
        make_mountpoint(&from, &to)?;
        self.bind(&from, &to, m.flags)?;
        crate::pr_debug!(
            "mount {} at {}: bind of {}",
            m.mnt_id,
            m.mountpoint,
            from.display()
        );
        Ok(())
    }

    /// A bind of pts `N` of a devpts instance (`fs` mounted whole) whose
    /// pty does not exist yet (runc binds the container's console onto
    /// `/dev/console`): the pty is made now through the instance's
    /// `ptmx`, its master kept in the yard for the terminals' restore, as
    /// CRIU makes it when it mounts the devpts.
    fn make_pts(&self, yard: &Yard, fs: &pb::MntEntry, from: &Path) -> Result<(), MntError> {
        if fresh_name(fs) != Some("devpts") || from.symlink_metadata().is_ok() {
            return Ok(());
        }
        let (Some(dir), Some(index)) = (
            from.parent(),
            from.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok()),
        ) else {
            return Ok(());
        };
        let master = open_ptmx_index(&dir.join("ptmx"), index)?;
        crate::pr_info!(
            "pts {index} made in its devpts to be bound ({})",
            from.display()
        );
        yard.ptys.borrow_mut().push((index, master));
        Ok(())
    }

    /// The filesystem of `m`, mounted whole at `at` (with its archive,
    /// for a tmpfs); from a child in the tree's namespaces where the
    /// filesystem shows them (`ns`).
    fn fresh(&self, at: &Path, m: &pb::MntEntry, ns: Option<&NsFds>) -> Result<(), MntError> {
        let fstype = fresh_name(m).unwrap_or("none");
        std::fs::create_dir(at).map_err(MntError::io(format!("mkdir {}", at.display())))?;
        let source = CString::new(m.source.as_bytes())
            .map_err(|_| MntError::Restore("a mount source holds a NUL byte".into()))?;
        let data = CString::new(m.options.as_bytes())
            .map_err(|_| MntError::Restore("mount options hold a NUL byte".into()))?;
        let target = cpath(at)?;
        let ftype = CString::new(fstype).unwrap_or_default();
        let sb_flags = u64::from(m.sb_flags.unwrap_or(0));
        // A read-only tmpfs is filled first, then made read-only.
        let ro = u64::from(linux_raw_sys::general::MS_RDONLY);
        let flags = match m.fstype == 5 {
            true => sb_flags & !ro,
            false => sb_flags,
        };
        match (ns, bound_to(m.fstype)) {
            (Some(ns), Some(kind)) if self.own.late(m.fstype) => {
                let (join, pid) = ns.for_kind(kind);
                crate::sys::mount_child::mount_in_child(
                    &join, pid, &source, &target, &ftype, flags, &data,
                )
                .map_err(MntError::sys(format!(
                    "mount {fstype} ({}) on {} inside the tree's namespaces",
                    m.options,
                    at.display()
                )))?;
            }
            _ => {
                rustix::mount::mount(
                    source.as_c_str(),
                    at,
                    ftype.as_c_str(),
                    MountFlags::from_bits_retain(flags as _),
                    data.as_c_str(),
                )
                .map_err(MntError::sys(format!(
                    "mount {fstype} ({}) on {}",
                    m.options,
                    at.display()
                )))?;
            }
        }
        if m.fstype == 5 {
            let name = super::tmpfs::image_name(u64::from(m.root_dev));
            let path = self.images.join(&name);
            let file = std::fs::File::open(&path)
                .map_err(MntError::io(format!("open {}", path.display())))?;
            let dirfd = rustix::fs::open(
                at,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::empty(),
            )
            .map_err(MntError::sys(format!("open {}", at.display())))?;
            let stats = super::tmpfs::restore(dirfd.as_fd(), std::io::BufReader::new(file))?;
            crate::pr_info!("tmpfs at {} filled from {name}: {stats:?}", m.mountpoint);
            if sb_flags & ro != 0 {
                rustix::mount::mount_remount(
                    at,
                    MountFlags::from_bits_retain(sb_flags as _),
                    data.as_c_str(),
                )
                .map_err(MntError::sys(format!(
                    "make the tmpfs on {} read-only",
                    at.display()
                )))?;
            }
        }
        Ok(())
    }

    /// Binds `from` on `to` (not recursively) and sets its per-mount
    /// flags.
    fn bind(&self, from: &Path, to: &Path, flags: u32) -> Result<(), MntError> {
        rustix::mount::mount_bind(from, to).map_err(MntError::sys(format!(
            "bind {} on {}",
            from.display(),
            to.display()
        )))?;
        let set = MountFlags::from_bits_retain((flags & MNT_FLAGS) as _);
        rustix::mount::mount_remount(to, MountFlags::BIND | set, c"").map_err(MntError::sys(
            format!("set the flags {flags:#x} of {}", to.display()),
        ))
    }
}

/// Creates the mount point `to` if it is missing: a directory, or an
/// empty file for a file bind mount (as CRIU does).
fn make_mountpoint(from: &Path, to: &Path) -> Result<(), MntError> {
    if std::fs::symlink_metadata(to).is_ok() {
        return Ok(());
    }
    let is_dir = std::fs::metadata(from)
        .map_err(MntError::io(format!("stat {}", from.display())))?
        .is_dir();
    if is_dir {
        std::fs::create_dir_all(to)
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(MntError::io(format!("mkdir {}", parent.display())))?;
        }
        std::fs::File::create(to).map(drop)
    }
    .map_err(MntError::io(format!(
        "create the mount point {}",
        to.display()
    )))
}

/// Whether criu's own root is the initramfs (`rootfs`).
fn root_is_initramfs() -> bool {
    crate::proc::ProcDir::open_self()
        .and_then(|p| p.mountinfo())
        .is_ok_and(|ms| {
            ms.iter()
                .any(|m| m.mount_point == Path::new("/") && m.fstype == "rootfs")
        })
}

/// A fresh directory for the yard, `/tmp/.criu.mntns.PID.N`.
fn yard_dir() -> Result<PathBuf, MntError> {
    let pid = std::process::id();
    for n in 0..1000u32 {
        let p = PathBuf::from(format!("/tmp/.criu.mntns.{pid}.{n}"));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(MntError::io(format!("mkdir {}", p.display()))(e)),
        }
    }
    Err(MntError::Restore(
        "no free name for the mount yard in /tmp".into(),
    ))
}

/// The root task's namespaces a late mount is made in.
struct NsFds {
    pid: Option<OwnedFd>,
    ipc: Option<OwnedFd>,
    net: Option<OwnedFd>,
}

impl NsFds {
    fn open(pid: i32, own: OwnNs) -> Result<NsFds, MntError> {
        let open = |yes: bool, kind: &str| -> Result<Option<OwnedFd>, MntError> {
            if !yes {
                return Ok(None);
            }
            let path = format!("/proc/{pid}/ns/{kind}");
            rustix::fs::open(
                path.as_str(),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map(Some)
            .map_err(MntError::sys(format!("open {path}")))
        };
        Ok(NsFds {
            pid: open(own.pid, "pid")?,
            ipc: open(own.ipc, "ipc")?,
            net: open(own.net, "net")?,
        })
    }

    /// What a child mounting a filesystem bound to `kind` joins, and the
    /// pid namespace it is born in.
    fn for_kind(
        &self,
        kind: Bound,
    ) -> (
        Vec<std::os::fd::BorrowedFd<'_>>,
        Option<std::os::fd::BorrowedFd<'_>>,
    ) {
        match kind {
            Bound::Pid => (Vec::new(), self.pid.as_ref().map(|f| f.as_fd())),
            Bound::Ipc => (self.ipc.iter().map(|f| f.as_fd()).collect(), None),
            Bound::Net => (self.net.iter().map(|f| f.as_fd()).collect(), None),
        }
    }
}

/// A master of pty `index` of the devpts whose `ptmx` is at `ptmx`: opened
/// until the kernel hands out that index (it gives the lowest free one;
/// the lower ones are held meanwhile and closed after), at most 32 times
/// (CRIU's limit, as the terminals' restore).
fn open_ptmx_index(ptmx: &Path, index: u32) -> Result<OwnedFd, MntError> {
    let mut held = Vec::new();
    for _ in 0..32 {
        let fd = rustix::fs::open(
            ptmx,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(MntError::sys(format!("open {}", ptmx.display())))?;
        let got = crate::sys::tty::get_int(&fd, crate::sys::tty::TIOCGPTN)
            .map_err(MntError::sys(format!("TIOCGPTN on {}", ptmx.display())))?;
        match (got as u32).cmp(&index) {
            std::cmp::Ordering::Equal => return Ok(fd),
            std::cmp::Ordering::Greater => {
                return Err(MntError::Restore(format!(
                    "{}: pts {index} is taken (the kernel gave {got})",
                    ptmx.display()
                )));
            }
            std::cmp::Ordering::Less => held.push(fd),
        }
    }
    Err(MntError::Restore(format!(
        "{}: pts {index} was not given in 32 opens",
        ptmx.display()
    )))
}
