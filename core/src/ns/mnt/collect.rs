//! Dump: the mounts of the root task's own mount namespace from its
//! `/proc/PID/mountinfo`, checked against what a restore can build
//! ([`super::tree`]), written as `mountpoints-ID.img`, and each tmpfs's
//! contents archived (read through the task's root while the tree is
//! frozen).

use std::collections::HashSet;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};

use crate::images::{ImageDir, Kind, pb};
use crate::proc::mountinfo::MountInfo;

use super::tree::{Base, Tree};
use super::{AUTODETECTED, MntError, fstype_of, kdev};

/// `--external mnt[MOUNTPOINT]:KEY` (and RPC `ext_mnt`) at dump: the
/// mount at that point of the namespace is the user's to give back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct External {
    pub mountpoint: String,
    pub key: String,
}

/// The `--external` values of kind `mnt` (`mnt[PATH]:KEY`); others are
/// left to their own kinds.
pub fn externals(values: &[String]) -> Vec<External> {
    values
        .iter()
        .filter_map(|v| {
            let rest = v.strip_prefix("mnt[")?;
            let (path, key) = rest.split_once("]:")?;
            Some(External {
                mountpoint: path.to_string(),
                key: key.to_string(),
            })
        })
        .collect()
}

/// `--ext-mount-map auto` (RPC `auto_ext_mnt`): a mount of a filesystem
/// criu's own namespace shows too is made external by itself, the path
/// criu sees it at kept as its source (CRIU's "autodetected" external
/// mounts). `sharing`/`masters`: `--enable-external-sharing`/`-masters`,
/// without which a shared or slave mount is not taken so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AutoExt {
    pub sharing: bool,
    pub masters: bool,
}

/// The mount of criu's own namespace (`ours`) that `m` is a bind of,
/// as CRIU's `resolve_external_mounts` finds it (same superblock, `m`'s
/// root below its root; the last such, unless one shares `m`'s peer or
/// master group), and the path of `m`'s root through it, as CRIU writes
/// it (relative to criu's root, but for a mount of criu's root itself).
fn autodetect(m: &MountInfo, ours: &[MountInfo], auto: AutoExt) -> Option<String> {
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let mut found = None;
    for o in ours {
        if (o.major, o.minor) != (m.major, m.minor)
            || o.fstype != m.fstype
            || o.source != m.source
            || o.super_options != m.super_options
        {
            continue;
        }
        let Some(cut) = super::tree::below(&text(&o.root), &text(&m.root)) else {
            continue;
        };
        found = Some((o, cut));
        let exact = (m.shared_id().is_some() && m.shared_id() == o.shared_id())
            || (m.master_id().is_some() && m.master_id() == o.shared_id());
        if exact {
            break;
        }
    }
    let (o, cut) = found?;
    if m.shared_id().is_some() && !auto.sharing {
        return None;
    }
    if let Some(g) = m.master_id()
        && (!auto.masters || (Some(g) != o.shared_id() && Some(g) != o.master_id()))
    {
        return None;
    }
    let at = text(&o.mount_point);
    Some(format!(
        "{}/{}",
        at.trim_start_matches('/'),
        cut.to_string_lossy()
    ))
}

/// The namespace's mounts, as `mountpoints-ID.img` will hold them.
pub struct Mounts {
    pub pid: i32,
    pub tree: Tree,
    /// Kernel type name of each mount of `tree` (for messages).
    pub fstypes: Vec<String>,
}

/// How a mount is external: declared by the user, or found by
/// [`autodetect`] (with the path it keeps as its source).
enum Ext<'a> {
    Declared(&'a External),
    Auto(String),
}

fn entry(m: &MountInfo, ext: Option<&Ext<'_>>, enable_fs: &[String]) -> pb::MntEntry {
    let (sb_flags, options) = m.super_flags();
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let (fstype, fsname) = fstype_of(&m.fstype, enable_fs);
    pb::MntEntry {
        fstype,
        fsname,
        mnt_id: m.mnt_id as u32,
        root_dev: kdev(m.major, m.minor),
        parent_mnt_id: m.parent_id as u32,
        flags: m.mount_flags(),
        root: text(&m.root),
        mountpoint: text(&m.mount_point),
        source: match ext {
            Some(Ext::Auto(path)) => path.clone(),
            _ => String::from_utf8_lossy(&m.source).into_owned(),
        },
        options,
        shared_id: Some(m.shared_id().unwrap_or(0)),
        master_id: Some(m.master_id().unwrap_or(0)),
        // `ext_key` alone: CRIU 4 hits a BUG_ON on an entry that also
        // has the old `ext_mount` mark.
        ext_key: ext.map(|e| match e {
            Ext::Declared(e) => e.key.clone(),
            Ext::Auto(_) => AUTODETECTED.to_string(),
        }),
        sb_flags: Some(sb_flags),
        ..Default::default()
    }
}

/// Reads and checks the mounts of task `pid`'s namespace: every mount
/// must be one a restore can make again, or be declared external.
/// `enable_fs`: `--enable-fs`, the filesystems CRIU's table does not know
/// that may be mounted again fresh; `auto`: `--ext-mount-map auto`.
pub fn collect(
    pid: i32,
    externals: &[External],
    enable_fs: &[String],
    auto: Option<AutoExt>,
) -> Result<Mounts, MntError> {
    let proc = crate::proc::ProcDir::open(pid).map_err(|source| MntError::Proc { pid, source })?;
    let infos = proc
        .mountinfo()
        .map_err(|source| MntError::Proc { pid, source })?;
    let ours = crate::proc::ProcDir::open_self()
        .and_then(|p| p.mountinfo())
        .map_err(|source| MntError::Proc { pid, source })?;
    let ids: HashSet<i32> = infos.iter().map(|m| m.mnt_id).collect();
    let is_root = |m: &MountInfo| !ids.contains(&m.parent_id) || m.parent_id == m.mnt_id;
    let refused = |m: &MountInfo, why: String| MntError::Refused {
        pid,
        id: m.mnt_id as u32,
        mountpoint: m.mount_point.display().to_string(),
        fstype: m.fstype.clone(),
        from: String::from_utf8_lossy(&m.source).into_owned(),
        why,
    };
    let mut used = HashSet::new();
    let mut entries = Vec::with_capacity(infos.len());
    for m in &infos {
        let mp = m.mount_point.to_string_lossy();
        let ext = match externals.iter().find(|e| e.mountpoint == mp) {
            Some(e) => {
                used.insert(e.mountpoint.clone());
                Some(Ext::Declared(e))
            }
            None if is_root(m) => None,
            None => auto.and_then(|a| autodetect(m, &ours, a)).map(|path| {
                crate::pr_info!("autodetected external mount {path} for {mp} ({})", m.mnt_id);
                Ext::Auto(path)
            }),
        };
        if m.root_deleted {
            return Err(refused(m, "its root was deleted".into()));
        }
        if let Some(p) = m.propagation.iter().find(|p| {
            !matches!(
                p,
                crate::proc::mountinfo::Propagation::Shared(_)
                    | crate::proc::mountinfo::Propagation::Master(_)
            )
        }) {
            return Err(refused(
                m,
                format!("its propagation ({p:?}) cannot be restored yet"),
            ));
        }
        entries.push(entry(m, ext.as_ref(), enable_fs));
    }
    // As in CRIU, an external mount the namespace does not have is only
    // a map entry nothing uses (runc names its device binds whether or
    // not the container has them).
    for e in externals.iter().filter(|e| !used.contains(&e.mountpoint)) {
        crate::pr_warn!(
            "external mount {} (key {}): task {pid}'s mount namespace has no mount there",
            e.mountpoint,
            e.key
        );
    }
    refuse_outside_propagation(&infos, &ours, &refused)?;
    let fstypes_by_id: std::collections::HashMap<u32, String> = infos
        .iter()
        .map(|m| (m.mnt_id as u32, m.fstype.clone()))
        .collect();
    let tree = Tree::new(entries, &format!("/proc/{pid}/mountinfo")).map_err(|e| match e {
        MntError::Invalid { what, .. } => MntError::Restore(format!(
            "the mounts of task {pid}'s mount namespace cannot be dumped: {what}"
        )),
        other => other,
    })?;
    let fstypes = tree
        .mounts
        .iter()
        .map(|e| fstypes_by_id.get(&e.mnt_id).cloned().unwrap_or_default())
        .collect();
    let mounts = Mounts { pid, tree, fstypes };
    // A tmpfs must be seen whole through one of its mounts to be saved.
    for (i, s) in mounts.tree.source.iter().enumerate() {
        if let Base::Fresh(f) = s.base
            && f == i
            && mounts.tree.mounts[i].fstype == 5
            && mounts.tree.mounts[i].root != "/"
        {
            let m = &mounts.tree.mounts[i];
            return Err(MntError::Refused {
                pid,
                id: m.mnt_id,
                mountpoint: m.mountpoint.clone(),
                fstype: "tmpfs".into(),
                from: m.source.clone(),
                why: format!(
                    "only {} of the tmpfs is mounted in the namespace, so its contents \
                     cannot be saved whole",
                    m.root
                ),
            });
        }
    }
    Ok(mounts)
}

/// Sharing that reaches outside the namespace is not restored yet: a
/// peer group criu's own namespace has a mount of, a master group the
/// namespace has no mount of (what `--enable-external-sharing` and
/// `--enable-external-masters` let CRIU take for an autodetected
/// external mount); nor is the propagation of the namespace's root mount
/// (the pivot onto it needs it private).
fn refuse_outside_propagation(
    infos: &[MountInfo],
    ours: &[MountInfo],
    refused: &dyn Fn(&MountInfo, String) -> MntError,
) -> Result<(), MntError> {
    let ours: HashSet<u32> = ours.iter().filter_map(MountInfo::shared_id).collect();
    let inside: HashSet<u32> = infos.iter().filter_map(MountInfo::shared_id).collect();
    let ids: HashSet<i32> = infos.iter().map(|m| m.mnt_id).collect();
    for m in infos {
        let is_root = !ids.contains(&m.parent_id) || m.parent_id == m.mnt_id;
        // A shared root alone in its peer group (as LXC makes it) is
        // restored; any other propagation of the root is not yet.
        let alone = m.master_id().is_none()
            && m.shared_id().is_some_and(|g| {
                infos.iter().all(|o| {
                    o.mnt_id == m.mnt_id || (o.shared_id() != Some(g) && o.master_id() != Some(g))
                })
            });
        if is_root && !m.propagation.is_empty() && !alone {
            return Err(refused(
                m,
                "it is the namespace's root mount and propagates mount events to or from \
                 other mounts, which cannot be restored yet"
                    .into(),
            ));
        }
        if let Some(g) = m.shared_id()
            && ours.contains(&g)
        {
            return Err(refused(
                m,
                format!(
                    "it shares mount events with criu's own mounts (peer group {g}), \
                     which cannot be restored yet"
                ),
            ));
        }
        if let Some(g) = m.master_id()
            && !inside.contains(&g)
        {
            return Err(refused(
                m,
                format!(
                    "it receives mount events from a mount outside the namespace (master \
                     group {g}), which cannot be restored yet"
                ),
            ));
        }
    }
    Ok(())
}

impl Mounts {
    /// Is `mnt_id` one of the namespace's mounts?
    pub fn has(&self, mnt_id: i32) -> bool {
        self.tree.mounts.iter().any(|e| e.mnt_id as i32 == mnt_id)
    }

    /// Writes `mountpoints-ID.img` (children first, as CRIU writes it)
    /// and the archive of every tmpfs. The tree must be frozen.
    pub fn write(&self, dir: &ImageDir, id: u32) -> Result<(), MntError> {
        for (i, s) in self.tree.source.iter().enumerate() {
            if s.base == Base::Fresh(i) && self.tree.mounts[i].fstype == 5 {
                self.archive(dir, i)?;
            }
        }
        let mut entries = self.tree.mounts.clone();
        entries.reverse();
        dir.write_all(Kind::Mnts, u64::from(id), &entries)?;
        crate::pr_info!(
            "Dumped {} mounts of task {}'s mount namespace into {}",
            entries.len(),
            self.pid,
            Kind::Mnts.file_name(u64::from(id))
        );
        Ok(())
    }

    /// How many mounts are stacked over mount `i` at its mount point.
    fn covered_by(&self, i: usize) -> usize {
        let ms = &self.tree.mounts;
        let mut top = i;
        let mut depth = 0;
        while let Some(j) = (0..ms.len()).find(|&j| {
            j != top && self.tree.parent[j] == top && ms[j].mountpoint == ms[top].mountpoint
        }) {
            top = j;
            depth += 1;
        }
        depth
    }

    /// The root directory of mount `i`, opened: through the task's root,
    /// or, when other mounts cover it, from a private copy of its mount
    /// namespace with those detached (CRIU does the same), made on a
    /// thread of its own.
    fn open_root(&self, i: usize) -> Result<std::os::fd::OwnedFd, MntError> {
        let m = &self.tree.mounts[i];
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let depth = self.covered_by(i);
        if depth == 0 {
            let path = format!("/proc/{}/root{}", self.pid, m.mountpoint);
            return rustix::fs::open(path.as_str(), flags, Mode::empty())
                .map_err(MntError::sys(format!("open {path}")));
        }
        let ns = std::fs::File::open(format!("/proc/{}/ns/mnt", self.pid))
            .map_err(MntError::io(format!("open /proc/{}/ns/mnt", self.pid)))?;
        let mp = m.mountpoint.clone();
        std::thread::scope(|s| {
            s.spawn(move || -> Result<std::os::fd::OwnedFd, MntError> {
                use linux_raw_sys::general::{CLONE_FS, CLONE_NEWNS};
                crate::sys::probe::unshare_this_thread(CLONE_FS)
                    .map_err(MntError::sys("unshare(CLONE_FS)"))?;
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&ns),
                    Some(rustix::thread::LinkNameSpaceType::Mount),
                )
                .map_err(MntError::sys("enter the task's mount namespace"))?;
                crate::sys::probe::unshare_this_thread(CLONE_NEWNS)
                    .map_err(MntError::sys("unshare(CLONE_NEWNS)"))?;
                // Private first: detaching a copy of a shared mount would
                // detach the task's own.
                rustix::mount::mount_change(
                    "/",
                    rustix::mount::MountPropagationFlags::PRIVATE
                        | rustix::mount::MountPropagationFlags::REC,
                )
                .map_err(MntError::sys("make the copy of the namespace private"))?;
                for _ in 0..depth {
                    rustix::mount::unmount(mp.as_str(), rustix::mount::UnmountFlags::DETACH)
                        .map_err(MntError::sys(format!("detach a mount over {mp}")))?;
                }
                rustix::fs::open(mp.as_str(), flags, Mode::empty())
                    .map_err(MntError::sys(format!("open {mp}")))
            })
            .join()
            .unwrap_or_else(|_| Err(MntError::Restore("the mount thread panicked".into())))
        })
    }

    /// The contents of tmpfs mount `i`.
    fn archive(&self, dir: &ImageDir, i: usize) -> Result<(), MntError> {
        let m = &self.tree.mounts[i];
        let fd = self.open_root(i)?;
        let path = &m.mountpoint;
        // Whatever the way in, it must be this tmpfs (by its device: the
        // copy's mount ids are new).
        let st = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
            .map_err(MntError::sys(format!("statx {path}")))?;
        if super::kdev(st.stx_dev_major, st.stx_dev_minor) != m.root_dev {
            return Err(MntError::Refused {
                pid: self.pid,
                id: m.mnt_id,
                mountpoint: m.mountpoint.clone(),
                fstype: "tmpfs".into(),
                from: m.source.clone(),
                why: "another filesystem shows at its mount point, so its contents cannot \
                      be read"
                    .into(),
            });
        }
        let name = super::tmpfs::image_name(u64::from(m.root_dev));
        let out = dir.root().join(&name);
        let file = std::fs::File::create(&out)
            .map_err(MntError::io(format!("create {}", out.display())))?;
        let mut w = std::io::BufWriter::new(file);
        let stats = super::tmpfs::dump(std::os::fd::AsFd::as_fd(&fd), &mut w)?;
        std::io::Write::flush(&mut w).map_err(MntError::io(format!("write {name}")))?;
        crate::pr_info!(
            "tmpfs at {} (mount {}) archived into {name}: {stats:?}",
            m.mountpoint,
            m.mnt_id
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_values_of_kind_mnt() {
        let v = vec![
            "mnt[/etc/hosts]:hosts".to_string(),
            "veth[eth0]:x".to_string(),
            "mnt[/a]b".to_string(),
        ];
        assert_eq!(
            externals(&v),
            [External {
                mountpoint: "/etc/hosts".into(),
                key: "hosts".into()
            }]
        );
    }
}
