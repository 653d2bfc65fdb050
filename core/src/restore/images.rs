//! The image set restore works from: read, validated and cross-checked by
//! [`crate::images::set`] (with this arch's register check) before
//! anything is created. Restore only takes it.

use crate::images::check::CheckError;
use crate::images::typed::ImageDir;

pub use crate::images::set::{TaskImages, TreeTaskImages, ZombieImages};
pub use crate::images::vma::{is_file_vma, is_mapped_vma};

/// Reads every image of every task of `pstree.img` in `dir` and validates
/// them, in pstree order (the root first, each parent before its
/// children).
pub fn read_tree(
    dir: &ImageDir,
    page_size: u64,
    task_size: u64,
) -> Result<Vec<TreeTaskImages>, CheckError> {
    crate::images::set::read_tree(dir, page_size, task_size, |core, task_size| {
        crate::regs::validate(core, task_size).map_err(Into::into)
    })
}

/// The network lock `inventory.img` records (see
/// [`crate::images::check::network_lock`]).
pub fn network_lock(
    dir: &ImageDir,
    root: u32,
) -> Result<(crate::opts::NetworkLock, String), CheckError> {
    crate::images::check::network_lock(dir, root)
}
