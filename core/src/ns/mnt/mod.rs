//! The root task's own mount namespace, as CRIU's `mountpoints-ID.img`
//! holds it: one `mnt_entry` per mount of the namespace (its filesystem
//! type, device, root within the filesystem, mount point, source, options
//! and flags), and the contents of every tmpfs in `tmpfs-dev-N.tar.gz.img`
//! (see [`tmpfs`]).
//!
//! What a mount becomes again at restore ([`How`]), decided the same way
//! on both sides so that the dump refuses what the restore could not
//! build:
//! - the namespace's root mount is a bind of `--root` (its contents are
//!   the user's: a container's root filesystem), as in CRIU;
//! - a mount the user declared external (`--external mnt[PATH]:KEY` at
//!   dump, `--external mnt[KEY]:DIR` or `--ext-mount-map` at restore) is a
//!   bind of what the restore is given for its key;
//! - a filesystem that is nothing but its superblock's options (proc,
//!   sysfs, devpts, mqueue, cgroup, tmpfs with its archive, ...) is
//!   mounted fresh, once per device; every other mount of the same device
//!   is a bind of that one (or of the root mount, for the root's device);
//!   (binfmt_misc too: in criu's user namespace every mount of it is the
//!   one instance, whose formats the tree's shares with the host's;)
//! - anything else (a disk filesystem that is not the root's, an overlay,
//!   a FUSE mount) is refused by name at dump, with the option that would
//!   take it.
//!
//! Propagation inside the namespace comes back: peer groups and their
//! slaves are set once every mount exists (with `MOVE_MOUNT_SET_GROUP`,
//! as CRIU's newer engine does). Sharing with mounts outside it, and the
//! root mount's own, are refused at dump, never restored private in
//! silence.

pub mod build;
pub mod collect;
pub mod tmpfs;
pub mod tree;

use crate::images::pb;

/// A mount namespace's mounts could not be dumped or restored.
#[derive(Debug, thiserror::Error)]
pub enum MntError {
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    #[error(
        "mount {id} at {mountpoint} ({fstype} from {from}) of task {pid}'s mount namespace \
         cannot be dumped: {why}"
    )]
    Refused {
        pid: i32,
        id: u32,
        mountpoint: String,
        fstype: String,
        from: String,
        why: String,
    },
    #[error("cannot read the mounts of task {pid}: {source}")]
    Proc {
        pid: i32,
        #[source]
        source: crate::proc::ProcError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: rustix::io::Errno,
    },
    #[error(transparent)]
    Image(#[from] crate::images::ImageError),
    #[error(transparent)]
    Tmpfs(#[from] tmpfs::TmpfsError),
    #[error("{0}")]
    Restore(String),
}

impl MntError {
    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> MntError {
        let what = what.into();
        move |source| MntError::Sys { what, source }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MntError {
        let what = what.into();
        move |source| MntError::Io { what, source }
    }
}

/// CRIU's `fstype` numbers (`images/mnt.proto`) by kernel name; 0 is
/// `UNSUPPORTED` (any other filesystem: only a root, bind or external
/// mount of it can be restored).
pub fn fstype_code(name: &str) -> u32 {
    match name {
        "proc" => 1,
        "sysfs" => 2,
        "devtmpfs" => 3,
        "binfmt_misc" => 4,
        "tmpfs" => 5,
        "devpts" => 6,
        "pstore" => 8,
        "securityfs" => 9,
        "fusectl" => 10,
        "debugfs" => 11,
        "cgroup" => 12,
        "mqueue" => 14,
        "overlay" => 17,
        "autofs" => 18,
        "tracefs" => 19,
        "cgroup2" => 23,
        n if n.starts_with("fuse") => 15,
        _ => 0,
    }
}

/// The kernel name of a `fstype` code, for the codes that are mounted
/// fresh (see [`fresh`]); `fsname` names the others.
pub fn fstype_name(code: u32) -> Option<&'static str> {
    Some(match code {
        1 => "proc",
        2 => "sysfs",
        3 => "devtmpfs",
        4 => "binfmt_misc",
        5 => "tmpfs",
        6 => "devpts",
        8 => "pstore",
        9 => "securityfs",
        10 => "fusectl",
        11 => "debugfs",
        12 => "cgroup",
        14 => "mqueue",
        19 => "tracefs",
        23 => "cgroup2",
        _ => return None,
    })
}

/// A filesystem mounted again from nothing but its options: everything
/// it holds is the kernel's (proc, sysfs, cgroup, ...) or is in the
/// images (a tmpfs's archive).
pub fn fresh(code: u32) -> bool {
    fstype_name(code).is_some()
}

/// The namespace a filesystem of this type shows, when it is one the
/// restored tree has its own of: such a mount is made from inside that
/// namespace, once the tree's root task exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// proc: the pid namespace of whoever mounts it.
    Pid,
    /// mqueue: the IPC namespace.
    Ipc,
    /// sysfs: the network namespace.
    Net,
}

pub fn bound_to(code: u32) -> Option<Bound> {
    match code {
        1 => Some(Bound::Pid),
        14 => Some(Bound::Ipc),
        2 => Some(Bound::Net),
        _ => None,
    }
}

/// A device number as CRIU keeps it in `root_dev` and in tmpfs image
/// names (the kernel's internal `MKDEV`: major << 20 | minor).
pub fn kdev(major: u32, minor: u32) -> u32 {
    (major << 20) | (minor & 0xfffff)
}

/// The key of an external mount: `ext_key` when set (all CRIU 3.x and 4.x
/// write, without `ext_mount`), else `root` under the old flag
/// `ext_mount` (CRIU before 3.x wrote the key there).
pub fn ext_key(e: &pb::MntEntry) -> Option<&str> {
    match (&e.ext_key, e.ext_mount) {
        (Some(key), _) => Some(key),
        (None, Some(true)) => Some(&e.root),
        (None, _) => None,
    }
}
