//! SysV shared memory segments attached in the restored tasks (CRIU's
//! `VMA_AREA_SYSVIPC` VMAs, whose `shmid` is the segment's id): the
//! segments and their contents come from the root task's own IPC
//! namespace (`ipcns-shm-ID.img`), filled before any task attaches them;
//! each task attaches its VMAs with `shmat` at their addresses
//! (`VMA_SHMAT`, read-only where the VMA is), so that every attachment
//! shares the one segment and its `shm_nattch` counts them again.
//!
//! Checked before anything is created: a segment attached in a tree
//! without its own IPC namespace has no contents in the images (CRIU
//! refuses such a dump), and one attached only in part (`shmat` attaches
//! a segment whole) cannot be made again.

use crate::images::Kind;
use crate::images::vma::status::VMA_AREA_SYSVIPC;
use crate::ns::RootNsImages;

use super::RestoreError;
use super::images::TaskImages;

/// Check every attached segment of `tasks` against the root's namespaces
/// `ns`.
pub fn check<'a>(
    ns: &RootNsImages,
    tasks: impl Iterator<Item = &'a TaskImages>,
    page_size: u64,
) -> Result<(), RestoreError> {
    for t in tasks {
        let file = Kind::Mm.file_name(u64::from(t.pstree.pid));
        for v in
            t.mm.vmas
                .iter()
                .filter(|v| v.status & VMA_AREA_SYSVIPC != 0)
        {
            let at = format!(
                "{file}: SysV shared memory segment {} attached at {:#x}-{:#x}",
                v.shmid, v.start, v.end
            );
            let Some(ipc) = ns.ipc.as_ref().filter(|_| ns.own.ipc) else {
                return Err(RestoreError::Unsupported(format!(
                    "{at}, but the root task has no IPC namespace of its own: the \
                     segment is not in the images"
                )));
            };
            let Some(seg) = ipc
                .shm
                .iter()
                .find(|s| u64::from(s.entry.desc.id) == v.shmid)
            else {
                return Err(RestoreError::Unsupported(format!(
                    "{at}, which the root's IPC namespace (ipcns-shm) does not hold"
                )));
            };
            let whole = seg.entry.size.next_multiple_of(page_size);
            if v.pgoff != 0 || v.end - v.start != whole {
                return Err(RestoreError::Unsupported(format!(
                    "{at} (offset {:#x}) is only a part of the segment ({} bytes): \
                     shmat attaches a segment whole",
                    v.pgoff, seg.entry.size
                )));
            }
        }
    }
    Ok(())
}
