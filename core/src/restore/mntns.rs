//! The root's own mount namespace at restore (see [`crate::ns::mnt::build`]):
//! planned from the images and the options before anything is created,
//! entered by the tool's thread before the tasks' files are opened (their
//! paths then lead below the new namespace's root), and finished once the
//! root task exists.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::images::ImageDir;
use crate::ns::mnt::build::{self, OwnNs, Plan};
use crate::opts::Opts;

use super::RestoreError;
use super::images::TreeTaskImages;

/// Tool-side fault: the mount namespace is built (before the root is
/// forked into it).
pub const FAULT_MOUNTS: &str = "mounts";

/// The external mounts' directories the options give at restore:
/// `--external mnt[KEY]:DIR` and `--ext-mount-map KEY:DIR` (RPC
/// `ext_mnt`).
fn externals(opts: &Opts) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = crate::ns::mnt::collect::externals(&opts.common.external)
        .into_iter()
        .map(|e| (e.mountpoint, PathBuf::from(e.key)))
        .collect();
    out.extend(
        opts.common
            .ext_mounts
            .iter()
            .map(|m| (m.key.clone(), PathBuf::from(&m.val))),
    );
    out
}

/// The mount namespace to build (`Some` when the root has its own), or
/// the refusal of an option that needs one.
pub fn plan(
    opts: &Opts,
    dir: &ImageDir,
    ns: &crate::ns::RootNsImages,
    own_pid: bool,
) -> Result<Option<Plan>, RestoreError> {
    if !ns.own.mnt {
        if let Some(r) = &opts.common.root {
            return Err(RestoreError::Unsupported(format!(
                "--root {}: the dumped tree has no mount namespace of its own to put there",
                r.display()
            )));
        }
        return Ok(None);
    }
    let own = OwnNs {
        pid: own_pid,
        ipc: ns.own.ipc,
        net: false,
    };
    let plan = build::plan(
        dir,
        ns.mnt_id,
        opts.common.root.as_deref(),
        &externals(opts),
        opts.common.auto_ext_mounts,
        own,
    )?;
    Ok(Some(plan))
}

/// Every task's regular files (and the ghost copies made for them) are
/// opened below `root`, the restored namespace's root while the tool
/// builds it. Refuses what cannot be opened that way yet.
pub fn files_below(tasks: &mut [TreeTaskImages], root: &Path) -> Result<(), RestoreError> {
    let Some(first) = tasks.iter().find_map(|t| match t {
        TreeTaskImages::Alive(t) => Some(t),
        TreeTaskImages::Zombie(_) => None,
    }) else {
        return Ok(());
    };
    if let Some(u) = first
        .other_files
        .unix
        .values()
        .find(|u| u.name.first() == Some(&b'/'))
    {
        return Err(RestoreError::Unsupported(format!(
            "unix socket {} is bound to {} in the tree's own mount namespace, which cannot be \
             restored yet",
            u.ino,
            String::from_utf8_lossy(&u.name)
        )));
    }
    let below = |r: &mut crate::images::pb::RegFileEntry| {
        if let Some(rest) = r.name.strip_prefix('/') {
            r.name = root.join(rest).to_string_lossy().into_owned();
        }
    };
    let mut reg = (*first.reg_files).clone();
    reg.values_mut().for_each(below);
    let mut other = (*first.other_files).clone();
    other
        .entries
        .values_mut()
        .filter_map(|e| e.reg.as_mut())
        .for_each(below);
    let (reg, other) = (Arc::new(reg), Arc::new(other));
    for t in tasks.iter_mut() {
        if let TreeTaskImages::Alive(t) = t {
            t.reg_files = reg.clone();
            t.other_files = other.clone();
        }
    }
    Ok(())
}
