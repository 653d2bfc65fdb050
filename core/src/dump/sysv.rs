//! SysV shared memory segments attached in the dumped tasks (`/SYSV...`
//! VMAs, CRIU's `VMA_AREA_SYSVIPC`; the VMA's inode number is the
//! segment's id, written as its `shmid`). Their contents are not the
//! tasks' pages: they are dumped with the root task's own IPC namespace
//! (`ipcns-shm`), and the restore attaches every VMA again with `shmat`.
//! So, as CRIU, a segment attached in a tree without its own IPC
//! namespace is refused by name, and so (unlike CRIU, which would attach
//! it whole) is one attached in part (`shmat` attaches whole segments:
//! an `munmap` or `mremap` of part of one cannot be made again) and one
//! removed while attached (`IPC_RMID`: made again it would outlive its
//! last detach).

use crate::dump::DumpError;
use crate::ns::RootNs;
use crate::proc::vma_kind::status::VMA_AREA_SYSVIPC;
use crate::proc::vmas::CollectedVma;

/// `SHM_DEST` in a segment's mode: removed, gone at its last detach
/// (linux/shm.h, generic).
const SHM_DEST: u32 = 0o1000;

/// Check the attached segments of `tasks` (pid, VMAs) of a tree whose
/// root task `root` has its own namespaces `own`.
pub fn check_attached<'a>(
    root: i32,
    own: RootNs,
    tasks: impl Iterator<Item = (i32, &'a [CollectedVma])>,
) -> Result<(), DumpError> {
    let mut segments = None;
    let page = crate::proc::page_size() as u64;
    for (pid, vmas) in tasks {
        for v in vmas.iter().filter(|v| v.entry.is(VMA_AREA_SYSVIPC)) {
            let e = &v.entry;
            let refuse = |why: String| DumpError::Memory {
                pid,
                reason: format!(
                    "SysV shared memory segment {} attached at {:#x}-{:#x} {why}",
                    e.shmid, e.start, e.end
                ),
            };
            if !own.ipc {
                return Err(refuse(
                    "cannot be dumped: the tree has no IPC namespace of its own, which \
                     alone holds the segment's contents in the images (CRIU refuses \
                     this too)"
                        .into(),
                ));
            }
            if segments.is_none() {
                let ipc = RootNs {
                    ipc: true,
                    ..RootNs::default()
                };
                let list = crate::ns::run_in(root, ipc, crate::ns::ipc::shm_list)
                    .map_err(|e| refuse(format!("cannot be checked: {e}")))?;
                segments = Some(list);
            }
            let list = segments.as_deref().unwrap_or_default();
            let Some(seg) = list.iter().find(|s| u64::from(s.id) == e.shmid) else {
                return Err(refuse(
                    "is not in the root task's IPC namespace (attached in another one?)".into(),
                ));
            };
            if seg.mode & SHM_DEST != 0 {
                return Err(refuse(
                    "was removed (IPC_RMID) while attached: made again, it would outlive \
                     its last detach"
                        .into(),
                ));
            }
            if e.pgoff != 0 || e.end - e.start != seg.size.next_multiple_of(page) {
                return Err(refuse(format!(
                    "(offset {:#x}) is only a part of the segment ({} bytes): shmat \
                     attaches a segment whole, so it cannot be attached again so",
                    e.pgoff, seg.size
                )));
            }
        }
    }
    Ok(())
}

/// Refuse the tree if a task or thread of it (`tasks`: pid and thread
/// ids) has a SysV semaphore undo list while the tree's IPC namespace
/// (the root's own if `own.ipc`, else criu's) holds semaphore sets. A
/// `semop` with `SEM_UNDO` makes such a list, and the kernel shows its
/// adjustments to no one and takes none back, so a restore would lose
/// them: the semaphores would not be adjusted when the task exits. (CRIU
/// does not even look, and loses them silently.) Whether a list exists is
/// all `kcmp(KCMP_SYSVSEM)` tells, and threads sharing one (`pthread`'s
/// `CLONE_SYSVSEM`) make it too, empty: such a task is refused as well,
/// saying so, where there are semaphores it might have adjusted. Without
/// semaphore sets no adjustment can be pending.
pub fn refuse_sem_undo(root: i32, own: RootNs, tasks: &[(i32, Vec<i32>)]) -> Result<(), DumpError> {
    let refuse = |pid: i32, what: String| DumpError::Refused { pid, what };
    let sets = if own.ipc {
        let ipc = RootNs {
            ipc: true,
            ..RootNs::default()
        };
        crate::ns::run_in(root, ipc, crate::ns::ipc::sem_count)
    } else {
        crate::ns::ipc::sem_count()
    }
    .map_err(|e| {
        refuse(
            root,
            format!("its IPC namespace's semaphores cannot be read: {e}"),
        )
    })?;
    if sets == 0 {
        return Ok(());
    }
    let tids: Vec<(i32, i32)> = tasks
        .iter()
        .flat_map(|(pid, tids)| tids.iter().map(move |t| (*pid, *t)))
        .collect();
    let raw: Vec<i32> = tids.iter().map(|t| t.1).collect();
    let answers = crate::sys::probe_child::sem_undo_lists(&raw).map_err(|e| {
        refuse(
            root,
            format!("SysV semaphore undo lists cannot be checked: {e}"),
        )
    })?;
    for ((pid, tid), a) in tids.into_iter().zip(answers) {
        let who = if pid == tid {
            "it ".to_string()
        } else {
            format!("its thread {tid} ")
        };
        match a {
            Ok(false) | Err(rustix::io::Errno::SRCH | rustix::io::Errno::OPNOTSUPP) => {}
            Ok(true) => {
                return Err(refuse(
                    pid,
                    format!(
                        "{who}has a SysV semaphore undo list (made by a semop with SEM_UNDO, \
                         or by threads sharing one) in an IPC namespace with {sets} \
                         semaphore set(s): no kernel interface reads or sets its \
                         adjustments, so a restore would lose them"
                    ),
                ));
            }
            Err(e) => {
                return Err(refuse(
                    pid,
                    format!("the SysV semaphore undo list {who}has cannot be checked (kcmp: {e})"),
                ));
            }
        }
    }
    Ok(())
}
