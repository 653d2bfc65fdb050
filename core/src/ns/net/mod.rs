//! The root task's own network namespace (`unshare -n`), as CRIU keeps it.
//!
//! A dump records it in `ids-PID.img` (`net_ns_id`, numbered as CRIU
//! numbers it, see [`super::NsNumbers`]) and writes its contents into
//! CRIU's images, or nothing with `--empty-ns net` (CRIU writes no
//! `netns-ID.img` then: the caller, runc, sets the namespace up again on
//! restore in its `setup-namespaces` hook); an external namespace
//! (`--external net[INODE]:KEY`) is a `netns-ID.img` holding only its key.
//!
//! A restore makes the namespace before anything else of the tree ([`create`],
//! or joins the one an `--inherit-fd` gives for an external one), fills it
//! from a thread of the tool that entered it ([`run_in`]), and the tool's
//! main thread then stays in it while it opens the tree's sockets and
//! forks the root (see `crate::restore::netns`): sockets belong to the
//! namespace of the thread that makes them, and the root inherits its
//! parent thread's.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::thread::LinkNameSpaceType;

use super::NsError;
use crate::images::typed::ImageDir;
use crate::images::{Kind, pb};

/// What the images give the root's own net namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum NetNsImages {
    /// A new namespace with nothing but its loopback device, down, as the
    /// kernel makes it (`--empty-ns net`, or images without `netns-ID.img`).
    Empty,
    /// A namespace the restore is given (`--inherit-fd fd[N]:KEY`).
    External { key: String },
    /// A namespace made and filled from the images.
    Full(Box<pb::NetnsEntry>),
}

/// How a dump takes the root's own net namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpMode<'a> {
    /// `--empty-ns net`: only its id.
    Empty,
    /// `--external net[INODE]:KEY`: its key.
    External(&'a str),
    /// Its contents.
    Full,
}

/// Dump the net namespace of task `pid` into `dir` as namespace `id`.
pub fn dump(dir: &ImageDir, id: u32, pid: i32, mode: DumpMode<'_>) -> Result<(), NsError> {
    match mode {
        DumpMode::Empty => {
            crate::pr_info!(
                "Net namespace {id} of task {pid}: only its id is dumped (--empty-ns net)"
            );
            Ok(())
        }
        DumpMode::External(key) => {
            crate::pr_info!("Net namespace {id} of task {pid} is external, key {key:?}");
            let e = pb::NetnsEntry {
                ext_key: Some(key.to_owned()),
                ..Default::default()
            };
            dir.write_one(Kind::Netns, id.into(), &e)?;
            Ok(())
        }
        DumpMode::Full => Err(NsError::Lost {
            what: format!(
                "task {pid} is in a net namespace of its own, whose links, addresses and \
                 routes cannot be dumped yet: dump it with --empty-ns net (the caller \
                 sets it up again on restore) or declare it --external net[INODE]:KEY"
            ),
        }),
    }
}

/// Read what the images hold of net namespace `id` (`empty`: restore it
/// empty whatever they hold, `--empty-ns net`).
pub fn read(dir: &ImageDir, id: u32, empty: bool) -> Result<NetNsImages, NsError> {
    let path = dir.path(Kind::Netns, id.into());
    if !path.exists() {
        return Ok(NetNsImages::Empty);
    }
    let e: pb::NetnsEntry = dir.read_one(Kind::Netns, id.into())?;
    if let Some(key) = e.ext_key {
        return Ok(NetNsImages::External { key });
    }
    if empty {
        return Ok(NetNsImages::Empty);
    }
    Ok(NetNsImages::Full(Box::new(e)))
}

/// A new net namespace, made on a short-lived thread of the tool: its
/// `ns/net` fd, which keeps it alive.
pub fn create() -> Result<OwnedFd, NsError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            crate::sys::probe::unshare_this_thread(linux_raw_sys::general::CLONE_NEWNET)
                .map_err(NsError::sys("unshare(CLONE_NEWNET)"))?;
            rustix::fs::open(
                "/proc/thread-self/ns/net",
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(NsError::sys("open(/proc/thread-self/ns/net)"))
        })
        .join()
        .unwrap_or(Err(NsError::Panicked))
    })
}

/// Run `f` on a new thread of the tool in net namespace `ns`.
pub fn run_in<T: Send>(
    ns: BorrowedFd<'_>,
    f: impl FnOnce() -> Result<T, NsError> + Send,
) -> Result<T, NsError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(ns, Some(LinkNameSpaceType::Network))
                .map_err(NsError::sys("setns(CLONE_NEWNET)"))?;
            f()
        })
        .join()
        .unwrap_or(Err(NsError::Panicked))
    })
}

/// Fill the new namespace `ns` from `images`.
pub fn fill(ns: &OwnedFd, images: &NetNsImages) -> Result<(), NsError> {
    match images {
        NetNsImages::Empty | NetNsImages::External { .. } => Ok(()),
        NetNsImages::Full(_) => run_in(ns.as_fd(), || {
            Err(NsError::Lost {
                what: "a dumped net namespace's contents cannot be restored yet".into(),
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_netns_image_is_an_empty_namespace_and_a_key_an_external_one() {
        let tmp = std::env::temp_dir().join(format!("netns-read-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let dir = ImageDir::new(&tmp);
        assert_eq!(read(&dir, 9, false).unwrap(), NetNsImages::Empty);
        dump(&dir, 9, 1, DumpMode::External("extRootNetNS")).unwrap();
        assert_eq!(
            read(&dir, 9, true).unwrap(),
            NetNsImages::External {
                key: "extRootNetNS".into()
            }
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
