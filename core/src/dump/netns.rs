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

/// Established TCP connections of a root in its own net namespace are
/// refused by name: the network lock (`crate::netlock`) is taken in
/// criu's namespace, where it would not hold their traffic back.
pub fn refuse_locked_connections(files: &FileTable, pid: i32) -> Result<(), DumpError> {
    match files.kinds.inet.lock.as_ref() {
        Some(l) if !l.is_empty() => Err(DumpError::Namespace(NsError::Dump {
            pid,
            reason: format!(
                "{} established TCP connection(s) in the root's own net namespace cannot \
                 be dumped yet (--tcp-established locks the network in criu's namespace only)",
                l.len()
            ),
        })),
        _ => Ok(()),
    }
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
) -> Result<(), DumpError> {
    let dir = ImageDir::new(&common.images_dir);
    crate::ns::net::dump(&dir, own.numbers().net, pid, mode).map_err(|e| {
        DumpError::Namespace(NsError::Dump {
            pid,
            reason: e.to_string(),
        })
    })
}
