//! Iterative dumps: `criu pre-dump` rounds and `criu dump --track-mem`
//! with `--prev-images-dir` (see [`crate::mem::dirty`] for the tracking
//! and [`crate::mem::parent`] for the pages left in the parent).
//!
//! Before any task is touched: tracking must be available; the parent
//! directory (relative to the images directory, as CRIU takes it) is
//! linked as `parent` and must hold an `inventory.img`, else the dump
//! goes on without a parent (CRIU's warning) and saves every page.

use std::path::{Path, PathBuf};

use super::DumpError;
use super::vpids::VPids;
use crate::mem::dirty;
use crate::mem::parent::{PARENT_LINK, ParentPages};
use crate::opts::{CommonOpts, DumpOpts, FinalState, PreDumpMode};
use crate::{pr_info, pr_warn};

/// What the tracker of each task becomes after this round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackerAfter {
    /// A new one over the task's memory as it is now (pre-dump, or a
    /// dump with `--track-mem` that leaves the tree alive).
    Track,
    /// Closed (a dump without `--track-mem` that leaves the tree alive).
    Stop,
    /// Left alone (the tree is killed).
    Keep,
}

/// How this round relates to the others.
#[derive(Clone, Debug)]
pub struct Iterative {
    /// The parent images directory, if there is a usable one.
    pub parent: Option<PathBuf>,
    pub after: TrackerAfter,
    /// A pre-dump: its pages are written after the tree runs again, as
    /// this mode says (see [`crate::mem::deferred`]).
    pub pre: Option<PreDumpMode>,
    /// The PIDs the tasks have in the tree's pid namespace, which name
    /// their images in every round (set once the tree is seized).
    pub vpids: VPids,
}

impl Iterative {
    /// The pages of task `pid` (as criu sees it) that the parent holds,
    /// in its images named by the task's PID in the tree's namespace.
    pub fn parent_pages(&self, pid: i32, page_size: u64) -> Result<Option<ParentPages>, DumpError> {
        let Some(dir) = &self.parent else {
            return Ok(None);
        };
        ParentPages::read(dir, self.vpids.of(pid), page_size).map_err(|e| DumpError::Parent {
            dir: dir.clone(),
            reason: e.to_string(),
        })
    }
}

/// `pre_dump_mode` of CRIU's inventory.
pub fn inventory_mode(mode: PreDumpMode) -> u32 {
    match mode {
        PreDumpMode::Splice => 1,
        PreDumpMode::Read => 2,
    }
}

/// Check and set up the round (`pre`: a pre-dump) before any task is
/// touched.
pub fn prepare(common: &CommonOpts, opts: &DumpOpts, pre: bool) -> Result<Iterative, DumpError> {
    let track = pre || opts.track_mem;
    if track {
        dirty::available().map_err(DumpError::NoMemTrack)?;
        pr_info!(
            "Memory dirty tracking: userfaultfd async write-protect + PAGEMAP_SCAN \
             (no soft-dirty needed)"
        );
    }
    let after = if pre {
        TrackerAfter::Track
    } else if opts.final_state == FinalState::Dead {
        TrackerAfter::Keep
    } else if opts.track_mem {
        TrackerAfter::Track
    } else {
        TrackerAfter::Stop
    };
    let parent = match (&opts.prev_images_dir, track) {
        (Some(prev), true) => link_parent(&common.images_dir, prev)?,
        (Some(_), false) => {
            pr_warn!("--prev-images-dir without --track-mem: dumping without a parent");
            None
        }
        (None, _) => None,
    };
    Ok(Iterative {
        parent,
        after,
        pre: pre.then_some(opts.pre_dump_mode),
        vpids: VPids::default(),
    })
}

/// Link `prev` as `parent` in `dir` (as given: relative paths are taken
/// from `dir`), and return the parent directory if it holds images.
fn link_parent(dir: &Path, prev: &Path) -> Result<Option<PathBuf>, DumpError> {
    let resolved = dir.join(prev);
    if !resolved.join("inventory.img").exists() {
        pr_warn!(
            "No parent images in {} (no inventory.img): dumping without a parent",
            resolved.display()
        );
        return Ok(None);
    }
    let link = dir.join(PARENT_LINK);
    // A link left by an earlier dump into this directory is replaced.
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link).map_err(|e| DumpError::Parent {
            dir: link.clone(),
            reason: format!("removing the old link: {e}"),
        })?;
    }
    std::os::unix::fs::symlink(prev, &link).map_err(|e| DumpError::Parent {
        dir: resolved.clone(),
        reason: format!("linking it as {}: {e}", link.display()),
    })?;
    pr_info!("Parent images: {} (linked as parent)", prev.display());
    Ok(Some(resolved))
}
