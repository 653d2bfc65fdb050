//! The root task's own net namespace at restore (see [`crate::ns::net`]).
//!
//! Unlike the UTS and IPC namespaces (made by the root's `clone3` flags
//! and filled once it exists), it is made by the tool before anything of
//! the tree: the tool opens the tree's sockets before it forks the root,
//! and a socket belongs to the namespace of the thread that makes it (a
//! listener bound to an address of the namespace needs that address
//! there already). So the namespace is made and filled first
//! ([`prepare`]), the tool's main thread enters it while it opens the
//! tree's files and forks the root, which inherits it ([`RootNetNs::enter`]),
//! then goes back to its own. A namespace given by `--inherit-fd` for an
//! external one (`--external net[INODE]:KEY` at dump) is joined the same
//! way instead of made.
//!
//! The namespace exists before the tree's sockets are opened, but with
//! `--empty-ns net` it is empty then: the caller's `setup-namespaces` hook
//! (which needs the root's PID) runs only once the root is forked, so a
//! socket bound to an address the hook makes (even 127.0.0.1, lo being
//! down) cannot be restored in that mode; CRIU, whose tasks open their own
//! sockets after the hook, can. Wildcard-bound sockets are restored.
//!
//! Nothing outlives a failed restore: the namespace is held by the tool's
//! fd and by the tree's tasks, which are killed; its links go with it
//! (a veth's peer outside too).

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::thread::LinkNameSpaceType;

use super::RestoreError;
use crate::hooks::{Action, Hooks};
use crate::images::typed::ImageDir;
use crate::ns::RootNsImages;
use crate::ns::net::{self, NetNsImages};
use crate::opts::Opts;

/// Tool-side fault: the root's own net namespace (if any) is made and
/// filled, no task forked.
pub const FAULT_NETNS: &str = "netns";

/// The root's own net namespace, ready for its tree.
pub struct RootNetNs {
    ns: OwnedFd,
    /// The `--inherit-fd` it came from, for an external one.
    pub inherited_fd: Option<i32>,
}

/// Make (or join, for an external one) and fill the root's own net
/// namespace, if the images give it one.
pub fn prepare(opts: &Opts, root_ns: &RootNsImages) -> Result<Option<RootNetNs>, RestoreError> {
    let Some(id) = root_ns.net_id else {
        fault()?;
        return Ok(None);
    };
    let dir = ImageDir::new(&opts.common.images_dir);
    let threads = tool_threads();
    let images = net::read(&dir, id, opts.restore.empty_net_ns)
        .map_err(|e| RestoreError::Unsupported(e.to_string()))?;
    let inherited_fd = match &images {
        NetNsImages::External { key } => Some(inherit_fd(opts, key)?),
        _ => None,
    };
    let ns = match &images {
        NetNsImages::External { key } => inherited(opts, key)?,
        _ => net::create().map_err(|e| {
            RestoreError::Unsupported(format!("cannot make the root's net namespace: {e}"))
        })?,
    };
    let what = match &images {
        NetNsImages::Empty => "empty (its loopback device down)".to_string(),
        NetNsImages::External { key } => format!("external, given by --inherit-fd as {key:?}"),
        NetNsImages::Full(_) => "filled from the images".to_string(),
    };
    let tool_ns = rustix::fs::open(
        "/proc/thread-self/ns/net",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RestoreError::Open("/proc/thread-self/ns/net".into(), e))?;
    let veths = veth_peers(opts);
    let outside = net::Outside {
        ns: tool_ns.as_fd(),
        veths: &veths,
        weak_sysctls: false,
    };
    net::fill(&ns, &images, &outside).map_err(|e| {
        RestoreError::Unsupported(format!("cannot fill the root's net namespace {id}: {e}"))
    })?;
    crate::pr_info!("The root's own net namespace {id}: {what}");
    // The threads that made and filled it have ended, but may still be
    // listed a moment: a time namespace wants a single-threaded tool.
    let t0 = std::time::Instant::now();
    while tool_threads() > threads && t0.elapsed() < std::time::Duration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    fault()?;
    Ok(Some(RootNetNs { ns, inherited_fd }))
}

impl RootNetNs {
    /// Where the images hold TCP connections the namespace is locked
    /// again as the dump locked it: nothing of the dump's netfilter rules
    /// comes back (CRIU's `network_lock_internal` at restore with
    /// `--empty-ns net`, which runc and Podman send; a namespace made from
    /// the images, where CRIU restores its iptables rules with the lock's
    /// chain in them, is locked the same way): until the connections
    /// leave repair mode and the lock goes (`launch::fds::release_tcp`), a
    /// peer's packet must not reach the namespace, where the kernel would
    /// answer it with a reset while the connection's socket does not
    /// exist yet (a namespace the runtime made again for the restore,
    /// the container's address already up). A lock still in place from
    /// the dump (an external namespace that lived on) is kept as it is.
    pub fn lock_for_tcp(&self, opts: &Opts, root: u32) -> Result<(), RestoreError> {
        let dir = ImageDir::new(&opts.common.images_dir);
        if !has_tcp_streams(dir.root()) {
            return Ok(());
        }
        let (method, id) = super::images::network_lock(&dir, root)?;
        let fail = |e: String| RestoreError::Unsupported(format!("locking the network: {e}"));
        let locked = crate::proc::netns::run_in(self.ns.as_fd(), || {
            Ok(crate::netlock::lock_namespace(method, &id))
        })
        .map_err(|e| fail(format!("cannot enter the root's net namespace: {e}")))?;
        match locked {
            Ok(()) => Ok(()),
            Err(e) if e.already_locked() => {
                crate::pr_info!("The root's net namespace is still locked by the dump");
                Ok(())
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

/// Whether `dir` holds a `tcp-stream-*.img` (a connection of the dump).
fn has_tcp_streams(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("tcp-stream-") && n.ends_with(".img"))
        })
    })
}

/// `CRIU_RESTORE_FAULT=netns`: the root's own net namespace, if any, is
/// made and filled; nothing else of the tree exists.
fn fault() -> Result<(), RestoreError> {
    let index = super::FAULT_STAGES
        .iter()
        .position(|s| *s == FAULT_NETNS)
        .unwrap_or(usize::MAX);
    if crate::fault::at(
        crate::fault::RESTORE_BASE,
        index,
        FAULT_NETNS,
        super::FAULT_ENV,
    ) {
        return Err(RestoreError::Unsupported(format!(
            "fault injected at {FAULT_NETNS}"
        )));
    }
    Ok(())
}

/// How many threads the tool has now.
fn tool_threads() -> usize {
    crate::proc::ProcDir::open_self()
        .and_then(|p| p.threads())
        .map_or(0, |t| t.len())
}

/// Each veth's peer name outside: `--veth-pair IN=OUT` and `--external
/// veth[IN]:OUT` (CRIU makes the former the latter).
fn veth_peers(opts: &Opts) -> Vec<(String, String)> {
    let mut v = opts.restore.veth_pairs.clone();
    for e in &opts.common.external {
        if let Some((i, o)) = e.strip_prefix("veth[").and_then(|r| r.split_once("]:")) {
            v.push((i.to_owned(), o.to_owned()));
        }
    }
    v
}

/// The fd `--inherit-fd fd[N]:KEY` gives for external key `key`.
fn inherit_fd(opts: &Opts, key: &str) -> Result<i32, RestoreError> {
    match opts.restore.inherit_fds.iter().find(|i| i.key == key) {
        Some(i) => Ok(i.fd),
        None => Err(RestoreError::Unsupported(format!(
            "the root's net namespace is external (key {key:?}): give it with \
             --inherit-fd fd[N]:{key}"
        ))),
    }
}

/// The namespace `--inherit-fd fd[N]:KEY` gives for external key `key`.
fn inherited(opts: &Opts, key: &str) -> Result<OwnedFd, RestoreError> {
    let fd = inherit_fd(opts, key)?;
    let path = format!("/proc/self/fd/{fd}");
    let ns = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| RestoreError::Open(path.clone(), e))?;
    // Only a net namespace will do: setns checks the kind.
    let probe = net::run_in(ns.as_fd(), || Ok(()));
    if let Err(e) = probe {
        return Err(RestoreError::Unsupported(format!(
            "--inherit-fd fd[{fd}]:{key} is not a net namespace: {e}"
        )));
    }
    Ok(ns)
}

/// The calling thread in the root's net namespace until this is dropped.
pub struct Inside {
    back: OwnedFd,
}

impl RootNetNs {
    /// Put the calling thread (the one that opens the tree's sockets and
    /// forks the root) into the namespace, until the result is dropped.
    pub fn enter(&self) -> Result<Inside, RestoreError> {
        let back = rustix::fs::open(
            "/proc/thread-self/ns/net",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RestoreError::Open("/proc/thread-self/ns/net".into(), e))?;
        rustix::thread::move_into_link_name_space(
            self.ns.as_fd(),
            Some(LinkNameSpaceType::Network),
        )
        .map_err(|e| RestoreError::Sys("setns(the root's net namespace)", e))?;
        Ok(Inside { back })
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        let r = rustix::thread::move_into_link_name_space(
            self.back.as_fd(),
            Some(LinkNameSpaceType::Network),
        );
        if let Err(e) = r {
            crate::pr_err!("cannot put criu back into its own net namespace: {e}");
        }
    }
}

/// The caller's `setup-namespaces` or `post-setup-namespaces` hook, with
/// the root's PID, when the root has namespaces of its own (as CRIU: the
/// first once they exist, before they are filled and any task runs its
/// code, which is where runc sets up an empty net namespace; the second
/// once they are filled).
pub fn ns_hook(
    hooks: &mut Hooks,
    action: Action,
    root_ns: &RootNsImages,
    pid: i32,
) -> Result<(), RestoreError> {
    if root_ns.own == crate::ns::RootNs::default() {
        return Ok(());
    }
    hooks.run(action, Some(pid)).map_err(RestoreError::from)
}
