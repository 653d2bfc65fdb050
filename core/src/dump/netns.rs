//! The root task's own net namespace in a dump (see [`crate::ns::net`]):
//! how it is taken (`--empty-ns net`, `--external net[INODE]:KEY`, or
//! whole), the `sock_diag` queries that list its sockets, and the
//! namespace id its sockets' entries name.

use crate::files::table::FileTable;
use crate::images::typed::ImageDir;
use crate::ns::RootNs;
use crate::ns::net::DumpMode;
use crate::opts::{CommonOpts, DumpOpts};

use super::DumpError;
use super::namespaces::NsError;

/// The key `--external net[INODE]:KEY` gives net namespace `ino`.
pub fn external_key(common: &CommonOpts, ino: u64) -> Option<&str> {
    let want = format!("net[{ino}]:");
    common
        .external
        .iter()
        .find_map(|e| e.strip_prefix(want.as_str()))
}

/// How the root's (`pid`) own net namespace is dumped: an external one
/// by its key even with `--empty-ns net` (runc sends both for a container
/// whose namespace Podman made; CRIU records the key then, and the
/// restore joins the namespace given with it).
pub fn mode<'a>(
    common: &'a CommonOpts,
    opts: &DumpOpts,
    pid: i32,
) -> Result<DumpMode<'a>, DumpError> {
    let st = rustix::fs::stat(format!("/proc/{pid}/ns/net")).map_err(|e| {
        DumpError::Namespace(NsError::Dump {
            pid,
            reason: format!("/proc/{pid}/ns/net: {e}"),
        })
    })?;
    Ok(match external_key(common, st.st_ino) {
        Some(key) => DumpMode::External(key),
        None if opts.empty_net_ns => DumpMode::Empty,
        None => DumpMode::Full,
    })
}

/// While the result lives, `sock_diag` lists the sockets of the root's
/// own net namespace (every task of the tree is in it), if it has one.
pub fn diag_in_root(
    own: RootNs,
    pid: i32,
) -> Result<Option<crate::proc::netns::DiagIn>, DumpError> {
    if !own.net {
        return Ok(None);
    }
    let ns = crate::proc::netns::of_task(pid).map_err(|e| {
        DumpError::Namespace(NsError::Dump {
            pid,
            reason: format!("cannot open /proc/{pid}/ns/net: {e}"),
        })
    })?;
    Ok(ns.map(crate::proc::netns::DiagIn::new))
}

/// The lock of the root's own net namespace (`--tcp-established`), as
/// CRIU's `network_lock_internal`: the whole namespace, taken once the
/// tree is frozen (before any connection goes into repair mode), kept
/// for the restore when the tree is killed ([`NsLock::finish`]), taken
/// away when it runs on or the dump fails (dropped). The connections'
/// own locks in criu's namespace would not hold back their traffic,
/// which does not pass there (see [`crate::files::inet`]).
pub struct NsLock {
    method: crate::netlock::Method,
    id: String,
    ns: std::os::fd::OwnedFd,
    pid: i32,
    done: bool,
}

impl NsLock {
    /// Locks the net namespace of `pid` (not criu's, dumped as `mode`
    /// says), the lock named after `run_id`. A namespace dumped whole
    /// takes the nftables lock only: its firewall (where CRIU's iptables
    /// chain would be) is not dumped yet, the lock's own table is left out.
    pub fn take(
        common: &CommonOpts,
        pid: i32,
        run_id: &str,
        mode: &DumpMode<'_>,
    ) -> Result<NsLock, DumpError> {
        if matches!(mode, DumpMode::Full) && common.network_lock == crate::netlock::Method::Iptables
        {
            return Err(ns_error(
                pid,
                "--network-lock iptables cannot lock the TCP connections of a net namespace \
                 dumped whole (its iptables rules are not dumped yet): lock with nftables, \
                 or dump the namespace as external (--external net[INODE]:KEY)"
                    .into(),
            ));
        }
        let ns = crate::proc::netns::of_task(pid)
            .map_err(|e| ns_error(pid, format!("cannot open /proc/{pid}/ns/net: {e}")))?
            .ok_or_else(|| ns_error(pid, "the net namespace is criu's own".into()))?;
        let method = common.network_lock;
        let id = run_id.to_owned();
        in_ns(&ns, pid, || crate::netlock::lock_namespace(method, &id))?;
        Ok(NsLock {
            method,
            id,
            ns,
            pid,
            done: false,
        })
    }

    /// The dump is done: a killed tree's (`dead`) namespace stays locked
    /// for the restore to unlock (as CRIU leaves it), one that runs on is
    /// unlocked.
    pub fn finish(mut self, dead: bool) -> Result<(), DumpError> {
        self.done = true;
        if dead {
            crate::pr_info!("Leaving the net namespace of task {} locked", self.pid);
            return Ok(());
        }
        self.unlock()
    }

    /// The nftables table of the lock, if it is one.
    pub fn table(&self) -> Option<String> {
        (self.method == crate::netlock::Method::Nftables)
            .then(|| crate::netlock::table_name(&self.id))
    }

    fn unlock(&self) -> Result<(), DumpError> {
        let (method, id) = (self.method, self.id.as_str());
        in_ns(&self.ns, self.pid, || {
            crate::netlock::unlock_namespace(method, id)
        })
    }
}

impl Drop for NsLock {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = self.unlock()
        {
            crate::pr_err!("cannot unlock the net namespace of task {}: {e}", self.pid);
        }
    }
}

/// Runs `f` (a lock step) in net namespace `ns` of task `pid`.
fn in_ns(
    ns: &std::os::fd::OwnedFd,
    pid: i32,
    f: impl FnOnce() -> Result<(), crate::netlock::NetLockError> + Send,
) -> Result<(), DumpError> {
    use std::os::fd::AsFd;
    crate::proc::netns::run_in(ns.as_fd(), || Ok(f()))
        .map_err(|e| ns_error(pid, format!("cannot enter its net namespace: {e}")))?
        .map_err(DumpError::NetLock)
}

fn ns_error(pid: i32, reason: String) -> DumpError {
    DumpError::Namespace(NsError::Dump { pid, reason })
}

/// Every socket entry of `files` names net namespace `id` (the root's
/// own): CRIU's restore opens each socket in the namespace its `ns_id`
/// names, which must be one of the dump's.
pub fn renumber_sockets(files: &mut FileTable, id: u32) {
    let criu = crate::files::unix::NET_NS_ID;
    let fix = |n: &mut Option<u32>| {
        if *n == Some(criu) {
            *n = Some(id);
        }
    };
    for e in &mut files.entries {
        if let Some(s) = e.usk.as_mut() {
            fix(&mut s.ns_id);
        }
        if let Some(s) = e.isk.as_mut() {
            fix(&mut s.ns_id);
        }
        if let Some(s) = e.nlsk.as_mut() {
            fix(&mut s.ns_id);
        }
        if let Some(s) = e.psk.as_mut() {
            fix(&mut s.ns_id);
        }
    }
}

/// Dump the root's (`pid`) own net namespace, as `mode` says.
pub fn dump(
    common: &CommonOpts,
    mode: DumpMode<'_>,
    pid: i32,
    own: RootNs,
    lock: Option<&NsLock>,
) -> Result<(), DumpError> {
    let dir = ImageDir::new(&common.images_dir);
    let table = lock.and_then(NsLock::table);
    crate::ns::net::dump(&dir, own.numbers().net, pid, mode, table.as_deref()).map_err(|e| {
        DumpError::Namespace(NsError::Dump {
            pid,
            reason: e.to_string(),
        })
    })
}
