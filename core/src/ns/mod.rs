//! Namespaces a dump takes into the images: the UTS namespace (host and
//! domain name, [`uts`]) and the IPC namespace (its sysctls and SysV
//! objects, [`ipc`]) of a tree's root task, when they are its own; its
//! own network namespace is [`net`]'s (made by the tool before the root,
//! not filled through [`run_in`]).
//!
//! Both are read and filled from inside: a short-lived thread of the tool
//! enters the task's namespaces with `setns` (UTS and IPC namespaces are
//! per thread, so the rest of the tool stays where it is), does the work
//! and ends ([`run_in`]).
//!
//! Ids are numbered as CRIU numbers them ([`NsNumbers`]): criu's own
//! namespaces 1 to 8, then the root task's own ones from 9, in the order
//! CRIU meets them (pid, net, ipc, uts, ...), so that `ids-PID.img` and
//! the image names (`utsns-10.img`) match what CRIU writes for the same
//! tree.

pub mod ipc;
pub mod mnt;
pub mod net;
pub mod user;
pub mod uts;

use std::os::fd::AsFd;

use rustix::io::Errno;
use rustix::thread::LinkNameSpaceType;

use crate::images::{ImageError, pb};

/// The namespaces of the root task that are its own (not criu's) and of a
/// kind a dump takes into the images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RootNs {
    /// Its own pid namespace, whose init it is (see
    /// [`crate::dump::pidns`]): made with `CLONE_NEWPID`, nothing to fill.
    pub pid: bool,
    /// Its own network namespace (see [`net`]): made by the tool before
    /// the root is forked into it, not by `clone3` flags (the tool opens
    /// the tree's sockets in it first).
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    /// Its own time namespace (see [`crate::restore::namespaces`]): made
    /// by the tool before the root is forked, not by `clone3` flags.
    pub time: bool,
    /// Its own mount namespace (see [`mnt`]): made by the tool before the
    /// root is forked.
    pub mnt: bool,
    /// Its own user namespace (see [`user`]), one level below criu's,
    /// which owns every other namespace of the tree's own: the root is
    /// cloned with `CLONE_NEWUSER` and the tool writes its maps.
    pub user: bool,
}

impl RootNs {
    /// An own UTS or IPC namespace, filled from inside.
    pub fn any(self) -> bool {
        self.ipc || self.uts
    }

    /// The `clone3` flags that give a task such namespaces (a time
    /// namespace needs its offsets set before its first task: see
    /// [`crate::restore::namespaces::TimeNs`]).
    pub fn clone_flags(self) -> u64 {
        use linux_raw_sys::general::{CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWUTS};
        let mut f = 0u64;
        if self.user {
            f |= u64::from(CLONE_NEWUSER);
        }
        if self.ipc {
            f |= u64::from(CLONE_NEWIPC);
        }
        if self.uts {
            f |= u64::from(CLONE_NEWUTS);
        }
        f
    }

    /// The ids the images give these namespaces.
    pub fn numbers(self) -> NsNumbers {
        let mut next = FIRST_OWN_ID;
        let mut own = |yes: bool, criu: u32| {
            if yes {
                next += 1;
                next - 1
            } else {
                criu
            }
        };
        // CRIU's order: pid, net, ipc, uts, time (then mnt, user, cgroup).
        let pid = own(self.pid, CRIU_PID_ID);
        let net = own(self.net, CRIU_NET_ID);
        let ipc = own(self.ipc, CRIU_IPC_ID);
        let uts = own(self.uts, CRIU_UTS_ID);
        let time = own(self.time, CRIU_TIME_ID);
        let mnt = own(self.mnt, CRIU_MNT_ID);
        let user = own(self.user, CRIU_USER_ID);
        NsNumbers {
            pid,
            net,
            ipc,
            uts,
            time,
            mnt,
            user,
        }
    }
}

/// The ids of criu's own ipc and uts namespaces in the images (CRIU's
/// numbering of the dumping tool's namespaces: pid 1, net 2, ipc 3,
/// uts 4, time 5, mnt 6, user 7, cgroup 8).
pub const CRIU_PID_ID: u32 = 1;
pub const CRIU_NET_ID: u32 = 2;
pub const CRIU_IPC_ID: u32 = 3;
pub const CRIU_UTS_ID: u32 = 4;
pub const CRIU_TIME_ID: u32 = 5;
pub const CRIU_MNT_ID: u32 = 6;
pub const CRIU_USER_ID: u32 = 7;
/// The first id of a namespace of the tree's own.
pub const FIRST_OWN_ID: u32 = 9;

/// The pid, net, ipc, uts and time namespace ids every task of the tree
/// gets in `ids-PID.img`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsNumbers {
    pub pid: u32,
    pub net: u32,
    pub ipc: u32,
    pub uts: u32,
    pub time: u32,
    pub mnt: u32,
    pub user: u32,
}

impl Default for NsNumbers {
    fn default() -> Self {
        RootNs::default().numbers()
    }
}

/// What went wrong dumping or restoring a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("cannot open /proc/{pid}/ns/{kind} to enter task {pid}'s {kind} namespace: {source}")]
    Open {
        pid: i32,
        kind: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter task {pid}'s {kind} namespace (setns): {source}")]
    Enter {
        pid: i32,
        kind: &'static str,
        #[source]
        source: Errno,
    },
    #[error("{path}: {source}")]
    Sysctl {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: unexpected contents {text:?}")]
    Parse { path: String, text: String },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: Errno,
    },
    #[error("{what}")]
    Lost { what: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    #[error("the namespace thread panicked")]
    Panicked,
}

impl NsError {
    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> NsError {
        let what = what.into();
        move |source| NsError::Sys { what, source }
    }
}

/// Run `f` on a new thread of the tool that has entered the `kinds`
/// namespaces of task `pid` first (UTS and IPC namespaces are per thread:
/// the tool's other threads stay where they are). Its result.
pub fn run_in<T: Send>(
    pid: i32,
    kinds: RootNs,
    f: impl FnOnce() -> Result<T, NsError> + Send,
) -> Result<T, NsError> {
    let mut links = Vec::new();
    for (yes, kind, ty) in [
        (
            kinds.uts,
            "uts",
            LinkNameSpaceType::HostNameAndNISDomainName,
        ),
        (
            kinds.ipc,
            "ipc",
            LinkNameSpaceType::InterProcessCommunication,
        ),
    ] {
        if yes {
            let file = std::fs::File::open(format!("/proc/{pid}/ns/{kind}"))
                .map_err(|source| NsError::Open { pid, kind, source })?;
            links.push((kind, ty, file));
        }
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            for (kind, ty, file) in &links {
                rustix::thread::move_into_link_name_space(file.as_fd(), Some(*ty))
                    .map_err(|source| NsError::Enter { pid, kind, source })?;
            }
            f()
        })
        .join()
        .unwrap_or(Err(NsError::Panicked))
    })
}

/// A sysctl of the calling thread's namespaces (`/proc/sys/PATH`), as text.
pub(crate) fn read_sysctl(path: &str) -> Result<String, NsError> {
    let full = format!("/proc/sys/{path}");
    std::fs::read_to_string(&full)
        .map(|s| s.trim().to_string())
        .map_err(|source| NsError::Sysctl { path: full, source })
}

/// Write sysctl `/proc/sys/PATH` of the calling thread's namespaces.
/// A namespace owned by a user namespace of the tree's own lets only
/// that namespace's root (who owns its sysctl files) write most of its
/// sysctls, whatever our capabilities: such a write is retried with the
/// calling thread's effective uid switched to the file's owner for the
/// write (this thread only; its real and saved uids stay as they are, so
/// it switches back with its capabilities).
pub(crate) fn write_sysctl(path: &str, value: &str) -> Result<(), NsError> {
    let full = format!("/proc/sys/{path}");
    let err = |source| NsError::Sysctl {
        path: full.clone(),
        source,
    };
    match std::fs::write(&full, value) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
        other => return other.map_err(err),
    }
    let owner = rustix::fs::stat(full.as_str())
        .map_err(|e| err(e.into()))?
        .st_uid;
    let me = rustix::process::geteuid();
    if owner == me.as_raw() {
        return std::fs::write(&full, value).map_err(err);
    }
    // -1: leave the real and saved uids unchanged.
    let keep = rustix::process::Uid::from_raw(u32::MAX);
    let as_owner = rustix::process::Uid::from_raw(owner);
    rustix::thread::set_thread_res_uid(keep, as_owner, keep).map_err(|e| err(e.into()))?;
    let r = std::fs::write(&full, value).map_err(err);
    if let Err(e) = rustix::thread::set_thread_res_uid(keep, me, keep) {
        crate::pr_warn!("cannot switch this thread back to uid {}: {e}", me.as_raw());
    }
    r
}

/// A numeric sysctl.
pub(crate) fn read_sysctl_num<T: std::str::FromStr>(path: &str) -> Result<T, NsError> {
    let text = read_sysctl(path)?;
    text.parse().map_err(|_| NsError::Parse {
        path: format!("/proc/sys/{path}"),
        text,
    })
}

/// Dump root task `pid`'s own namespaces `own` into `dir`, from inside
/// them. SysV segment contents take `pages-N.img` ids from `pages_id`
/// on; how many they took.
pub fn dump(dir: &std::path::Path, pid: i32, own: RootNs, pages_id: u64) -> Result<u64, NsError> {
    let img = crate::images::ImageDir::new(dir);
    let ids = own.numbers();
    if own.user {
        let e = user::read(pid)?;
        crate::pr_info!(
            "Dumping user namespace {} of task {pid}: uid_map {:?}, gid_map {:?}, setgroups {}",
            ids.user,
            user::map_text(&e.uid_map).trim(),
            user::map_text(&e.gid_map).trim(),
            if e.setgroups_deny == Some(true) {
                "deny"
            } else {
                "allow"
            }
        );
        user::write(&img, ids.user, &e)?;
    }
    if !own.any() {
        return Ok(0);
    }
    run_in(pid, own, || {
        if own.uts {
            let e = uts::read_current();
            crate::pr_info!(
                "Dumping UTS namespace {} of task {pid}: {:?}, domain {:?}",
                ids.uts,
                e.nodename,
                e.domainname
            );
            uts::write(&img, ids.uts, &e)?;
        }
        if !own.ipc {
            return Ok(0);
        }
        let ns = ipc::read_current()?;
        crate::pr_info!(
            "Dumping IPC namespace {} of task {pid}: {} shm segments, {} semaphore sets, \
             {} message queues",
            ids.ipc,
            ns.shm.len(),
            ns.sem.len(),
            ns.msg.len()
        );
        ipc::write(&img, ids.ipc, &ns, pages_id)
    })
}

/// What a restore puts into the root task's new namespaces, read from the
/// images before anything is created.
#[derive(Debug, Default)]
pub struct RootNsImages {
    pub own: RootNs,
    pub uts: Option<pb::UtsnsEntry>,
    pub ipc: Option<ipc::IpcNs>,
    /// The clocks of the root's own time namespace at dump.
    pub time: Option<pb::TimensEntry>,
    /// The id of the root's own mount namespace (its mounts are read by
    /// the restore, which needs its options: see [`mnt::build`]).
    pub mnt_id: u32,
    /// The id of the root's own net namespace (made and filled by
    /// `crate::restore::netns`, not here).
    pub net_id: Option<u32>,
    /// The maps of the root's own user namespace.
    pub user: Option<pb::UsernsEntry>,
}

impl RootNsImages {
    /// Read the images of the namespaces `own` (ids `ids`).
    pub fn read(
        dir: &crate::images::ImageDir,
        own: RootNs,
        ids: NsNumbers,
    ) -> Result<Self, NsError> {
        Ok(RootNsImages {
            own,
            net_id: own.net.then_some(ids.net),
            uts: own.uts.then(|| uts::read(dir, ids.uts)).transpose()?,
            ipc: own.ipc.then(|| ipc::read(dir, ids.ipc)).transpose()?,
            time: own
                .time
                .then(|| {
                    crate::images::check::read_single(
                        dir,
                        crate::images::Kind::Timens,
                        ids.time.into(),
                    )
                    .map_err(|e| NsError::Invalid {
                        file: crate::images::Kind::Timens.file_name(ids.time.into()),
                        what: e.to_string(),
                    })
                })
                .transpose()?,
            mnt_id: ids.mnt,
            user: own
                .user
                .then(|| user::read_image(dir, ids.user))
                .transpose()?,
        })
    }

    /// Fill task `pid`'s new namespaces (it was created with
    /// [`RootNs::clone_flags`]) from inside them.
    pub fn fill(&self, pid: i32) -> Result<(), NsError> {
        if let Some(u) = &self.user {
            user::restore(pid, u)?;
        }
        if !self.own.any() {
            return Ok(());
        }
        run_in(pid, self.own, || {
            if let Some(u) = &self.uts {
                uts::restore_current(u)?;
            }
            if let Some(i) = &self.ipc {
                ipc::restore_current(i)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_criu() {
        let n = |pid, ipc, uts, time| NsNumbers {
            pid,
            net: CRIU_NET_ID,
            ipc,
            uts,
            time,
            mnt: 6,
            user: 7,
        };
        assert_eq!(RootNs::default().numbers(), n(1, 3, 4, 5));
        let both = RootNs {
            ipc: true,
            uts: true,
            ..RootNs::default()
        };
        // What CRIU 4.1.1 wrote for `unshare --uts --ipc`: ipcns-*-9.img
        // and utsns-10.img.
        assert_eq!(both.numbers(), n(1, 9, 10, 5));
        let uts = RootNs {
            uts: true,
            ..RootNs::default()
        };
        assert_eq!(uts.numbers(), n(1, 3, 9, 5));
        // And for `unshare --time`: timens-9.img.
        let time = RootNs {
            time: true,
            ..RootNs::default()
        };
        assert_eq!(time.numbers(), n(1, 3, 4, 9));
        // `unshare --pid --fork`: pid_ns_id 9; the others after it.
        let all = RootNs {
            pid: true,
            ipc: true,
            uts: true,
            time: true,
            ..RootNs::default()
        };
        assert_eq!(all.numbers(), n(9, 10, 11, 12));
        // A container as CRIU 4.1.1 numbered it (pid, ipc, uts and mount
        // namespaces of its own): mountpoints-12.img.
        let ct = RootNs {
            pid: true,
            ipc: true,
            uts: true,
            mnt: true,
            ..RootNs::default()
        };
        assert_eq!(ct.numbers().mnt, 12);
        // `unshare -n` (CRIU 4.1.1: net_ns_id 9), then with the others:
        // pid, net, ipc, uts, time.
        let net = RootNs {
            net: true,
            ..RootNs::default()
        };
        assert_eq!(net.numbers().net, 9);
        let every = RootNs { net: true, ..all };
        let nums = every.numbers();
        assert_eq!((nums.pid, nums.net, nums.ipc, nums.time), (9, 10, 11, 13));
    }
}
