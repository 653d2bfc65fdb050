//! The image set of a tree, read and validated: everything a restore
//! needs from the images directory, loaded into [`TaskImages`] per task
//! and checked (each image alone, see [`super::check`] and
//! [`super::vma`], and against each other: threads, parents, fd tables,
//! files the VMAs name), so that a bad image is reported with the file it
//! came from before a single process exists. Restore takes the set as
//! read here.

pub mod chain;
pub mod files;
pub mod seccomp;
pub mod shmem;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::check::{
    CheckError, RegsCheck, invalid, read_core, read_single, validate_core, validate_fdinfo,
    validate_pid,
};
use super::kinds::Kind;
use super::pb;
use super::typed::ImageDir;
use super::vma::{
    PagesRun, is_file_vma, is_mapped_vma, refuse_unsupported, validate_pages, validate_vmas,
};
use files::{FileImages, TreeFiles, read_tree_files};
use shmem::ShmemImage;

/// The images of one task, as read and validated.
#[derive(Debug)]
pub struct TaskImages {
    pub pstree: pb::PstreeEntry,
    pub core: pb::CoreEntry,
    /// The other threads' `core-TID.img`, in `pstree.threads` order.
    pub threads: Vec<(u32, pb::CoreEntry)>,
    /// Each thread's seccomp state: the leader's, then the other
    /// threads' in `threads` order.
    pub seccomp: Vec<seccomp::ThreadSeccomp>,
    pub mm: pb::MmEntry,
    pub pages: Vec<PagesRun>,
    /// Path of `pages-N.img` (or of the pages gathered from the parent
    /// chain, see [`chain`]).
    pub pages_path: std::path::PathBuf,
    /// Keeps the gathered pages of a parent chain open.
    pub pages_keep: Option<Arc<std::os::fd::OwnedFd>>,
    /// Regular files by id (`files.img`, or the older `reg-files.img`).
    /// This and the other file images are the tree's, read once and
    /// shared by every task.
    pub reg_files: Arc<HashMap<u32, pb::RegFileEntry>>,
    pub fs: Option<pb::FsEntry>,
    pub fdinfo: Vec<pb::FdinfoEntry>,
    /// Name of the fdinfo image (for messages).
    pub fdinfo_file: String,
    /// There is no fdinfo image at all (a hand-made image set, not a
    /// dump): the task keeps the tool's stdio. A dump of a task without
    /// fds has an empty one, and the task gets no fd.
    pub no_fdinfo_image: bool,
    /// memfd file objects by id (`files.img`).
    pub memfd_files: Arc<HashMap<u32, pb::MemfdFileEntry>>,
    /// Shared memory objects the VMAs map.
    pub shmem: Vec<ShmemImage>,
    /// Pipes, FIFOs and unix sockets (`files.img` and their data images).
    pub other_files: Arc<FileImages>,
    /// `remap-fpath.img`: regular files opened through a ghost copy.
    pub remaps: Arc<Vec<pb::RemapFilePathEntry>>,
    /// `filelocks.img` entries of this task (a task sharing its parent's
    /// fd table has none: POSIX locks belong to the table, and its
    /// owner takes them).
    pub file_locks: Vec<pb::FileLockEntry>,
    /// `ids-PID.img`: the ids of its fd table and fs struct.
    pub ids: Option<pb::TaskKobjIdsEntry>,
    /// Forked with `CLONE_FILES`: it uses its parent's fd table (same
    /// `files_id`), and so has no fds of its own to open (`fdinfo` empty).
    pub shares_files: bool,
    /// Forked with `CLONE_FS`: same `fs_id` as its parent.
    pub shares_fs: bool,
}

/// A zombie of the tree: forked with its PID by its parent, it ends at
/// once with its dumped wait status.
#[derive(Debug, Clone)]
pub struct ZombieImages {
    pub pstree: pb::PstreeEntry,
    /// Raw wait status (`task_core_entry.exit_code`).
    pub exit_status: u32,
}

/// One task of `pstree.img`, read and validated.
#[derive(Debug)]
pub enum TreeTaskImages {
    Alive(Box<TaskImages>),
    Zombie(ZombieImages),
}

impl TreeTaskImages {
    pub fn pstree(&self) -> &pb::PstreeEntry {
        match self {
            TreeTaskImages::Alive(t) => &t.pstree,
            TreeTaskImages::Zombie(z) => &z.pstree,
        }
    }
}

/// `task_core_entry.task_state` of a zombie.
const TASK_ZOMBIE: u32 = 2;

/// Reads every image of every task of `pstree.img` in `dir` and validates
/// them, in pstree order (the root first, each parent before its
/// children).
/// `regs` checks a core image's registers (the arch's
/// `crate::regs::validate`).
pub fn read_tree(
    dir: &ImageDir,
    page_size: u64,
    task_size: u64,
    regs: RegsCheck,
) -> Result<Vec<TreeTaskImages>, CheckError> {
    let inventory: pb::InventoryEntry = read_single(dir, Kind::Inventory, 0)?;
    let complete = inventory.fdinfo_per_id == Some(true);
    let tree: Vec<pb::PstreeEntry> = dir.read_all(Kind::Pstree, 0)?;
    if tree.is_empty() {
        return Err(invalid("pstree.img", "no task".into()));
    }
    let mut files = read_tree_files(dir, inventory.tcp_close == Some(true))?;
    let mut out: Vec<TreeTaskImages> = Vec::with_capacity(tree.len());
    let all: HashSet<u32> = tree.iter().map(|e| e.pid).collect();
    let mut before: HashSet<u32> = HashSet::with_capacity(tree.len());
    for (i, e) in tree.iter().enumerate() {
        validate_pid(e.pid, "pstree.img")?;
        if !before.insert(e.pid) {
            return Err(invalid(
                "pstree.img",
                format!("task {} is listed twice", e.pid),
            ));
        }
        let parent_ok = if i == 0 {
            e.ppid == 0 || !all.contains(&e.ppid)
        } else {
            e.ppid != e.pid && before.contains(&e.ppid)
        };
        if !parent_ok {
            return Err(invalid(
                "pstree.img",
                format!(
                    "task {} has parent {}, which is not listed before it",
                    e.pid, e.ppid
                ),
            ));
        }
        let core = read_core(dir, "task", e.pid)?;
        let state = core.tc.as_ref().map(|tc| tc.task_state);
        if state == Some(TASK_ZOMBIE) {
            if i == 0 {
                return Err(CheckError::Unsupported(
                    "pstree.img: the root task is a zombie".into(),
                ));
            }
            // A zombie has no threads to restore; CRIU's dump leaves its
            // `threads` uninitialised (whatever its buffer held) and its
            // restore never reads them: neither do we.
            let mut pstree = e.clone();
            pstree.threads = vec![e.pid];
            out.push(TreeTaskImages::Zombie(ZombieImages {
                pstree,
                exit_status: core.tc.as_ref().map_or(0, |tc| tc.exit_code),
            }));
            continue;
        }
        let t = read_task(
            dir,
            e.clone(),
            core,
            complete,
            &mut files,
            (page_size, task_size, regs),
        )?;
        out.push(TreeTaskImages::Alive(Box::new(t)));
    }
    link_shared_tables(&mut out)?;
    Ok(out)
}

/// Tasks with their parent's `files_id` (`fs_id`) were made with
/// `CLONE_FILES` (`CLONE_FS`) and are forked so again. The fds of a
/// shared table are opened once, by the topmost task of the chain (the
/// others' `fdinfo` is emptied), which also takes the chain's POSIX locks
/// (their owner is the table). A table shared by tasks that are not
/// parent and child along such a chain cannot be made by forking.
fn link_shared_tables(tasks: &mut [TreeTaskImages]) -> Result<(), CheckError> {
    let ids = |t: &TreeTaskImages| match t {
        TreeTaskImages::Alive(a) => a.ids.as_ref().map(|i| (i.files_id, i.fs_id)),
        TreeTaskImages::Zombie(_) => None,
    };
    // Index of the task whose fd table each task uses.
    let mut table: Vec<usize> = (0..tasks.len()).collect();
    for i in 1..tasks.len() {
        let ppid = tasks[i].pstree().ppid;
        let Some(p) = tasks[..i].iter().position(|t| t.pstree().pid == ppid) else {
            continue;
        };
        let (Some(mine), Some(parents)) = (ids(&tasks[i]), ids(&tasks[p])) else {
            continue;
        };
        let files = mine.0 == parents.0;
        if files {
            table[i] = table[p];
        }
        if let TreeTaskImages::Alive(t) = &mut tasks[i] {
            t.shares_files = files;
            t.shares_fs = mine.1 == parents.1;
        }
    }
    for i in 0..tasks.len() {
        let Some((files_id, _)) = ids(&tasks[i]) else {
            continue;
        };
        if let Some(j) = (0..i)
            .find(|&j| table[j] != table[i] && ids(&tasks[j]).is_some_and(|(f, _)| f == files_id))
        {
            return Err(invalid(
                Kind::Fdinfo.file_name(u64::from(files_id)),
                format!(
                    "the fd table of tasks {} and {} is one, but neither has it from \
                     the other through its parents (only CLONE_FILES children share \
                     a table a restore can make)",
                    tasks[j].pstree().pid,
                    tasks[i].pstree().pid
                ),
            ));
        }
    }
    for i in 0..tasks.len() {
        let owner = table[i];
        if owner == i {
            continue;
        }
        let locks = match &mut tasks[i] {
            TreeTaskImages::Alive(t) => {
                t.fdinfo.clear();
                std::mem::take(&mut t.file_locks)
            }
            TreeTaskImages::Zombie(_) => continue,
        };
        if let TreeTaskImages::Alive(o) = &mut tasks[owner] {
            o.file_locks.extend(locks);
        }
    }
    Ok(())
}

/// Reads the images of one live task of the tree and validates them.
fn read_task(
    dir: &ImageDir,
    pstree: pb::PstreeEntry,
    core: pb::CoreEntry,
    complete: bool,
    files: &mut TreeFiles,
    (page_size, task_size, regs): (u64, u64, RegsCheck),
) -> Result<TaskImages, CheckError> {
    let pid = u64::from(pstree.pid);
    validate_core(&core, &Kind::Core.file_name(pid), task_size, regs)?;
    let threads = read_threads(dir, &pstree, task_size, regs)?;
    let seccomp = std::iter::once((pstree.pid, &core))
        .chain(threads.iter().map(|(t, c)| (*t, c)))
        .map(|(tid, c)| {
            let file = Kind::Core.file_name(u64::from(tid));
            seccomp::thread_state(c, &files.seccomp, tid, &file)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Alive (1) or stopped (3) tasks only: dead ones and zombies would need
    // helpers that are not written yet.
    if let Some(state) = core.tc.as_ref().map(|tc| tc.task_state)
        && state != 1
        && state != 3
    {
        return Err(CheckError::Unsupported(format!(
            "{}: task state {state} (only alive or stopped tasks are restored)",
            Kind::Core.file_name(pid)
        )));
    }
    let mm: pb::MmEntry = read_single(dir, Kind::Mm, pid)?;
    let mm_file = Kind::Mm.file_name(pid);
    validate_vmas(&mm.vmas, &mm_file, page_size, task_size)?;
    refuse_unsupported(&mm.vmas, &mm_file)?;
    let (pages, pages_path, pages_keep) = read_pages(dir, pid, &mm, page_size)?;
    check_file_vmas(&mm, &mm_file, files)?;
    let shmem = shmem::read(dir, &mm.vmas, &files.memfd_files, page_size, &mm_file)?;
    let fs = if complete || dir.path(Kind::Fs, pid).exists() {
        Some(read_single::<pb::FsEntry>(dir, Kind::Fs, pid)?)
    } else {
        None
    };
    // The kernel-object ids live in ids-PID.img (older images: in the core).
    let ids = if dir.path(Kind::Ids, pid).exists() || (complete && core.ids.is_none()) {
        Some(read_single::<pb::TaskKobjIdsEntry>(dir, Kind::Ids, pid)?)
    } else {
        core.ids
    };
    let files_id = ids.as_ref().map(|i| i.files_id).unwrap_or(pstree.pid);
    let (fdinfo, no_fdinfo_image) = read_fdinfo(dir, &pstree, ids.is_some(), files_id, complete)?;
    let file_locks = files.locks.remove(&(pstree.pid as i32)).unwrap_or_default();
    Ok(TaskImages {
        pstree,
        core,
        threads,
        seccomp,
        mm,
        pages,
        pages_path,
        pages_keep,
        reg_files: files.reg_files.clone(),
        fs,
        fdinfo,
        fdinfo_file: Kind::Fdinfo.file_name(u64::from(files_id)),
        no_fdinfo_image,
        memfd_files: files.memfd_files.clone(),
        shmem,
        other_files: files.other_files.clone(),
        remaps: files.remaps.clone(),
        file_locks,
        ids,
        shares_files: false,
        shares_fs: false,
    })
}

/// The cores of the task's other threads, each listed once, validated.
fn read_threads(
    dir: &ImageDir,
    pstree: &pb::PstreeEntry,
    task_size: u64,
    regs: RegsCheck,
) -> Result<Vec<(u32, pb::CoreEntry)>, CheckError> {
    let mut threads = Vec::new();
    let mut seen = HashSet::with_capacity(pstree.threads.len());
    for &tid in pstree.threads.iter().filter(|&&t| t != pstree.pid) {
        if !seen.insert(tid) {
            return Err(invalid(
                "pstree.img",
                format!("thread {tid} is listed twice"),
            ));
        }
        validate_pid(tid, "pstree.img")?;
        let c = read_core(dir, "thread", tid)?;
        validate_core(&c, &Kind::Core.file_name(u64::from(tid)), task_size, regs)?;
        threads.push((tid, c));
    }
    Ok(threads)
}

/// The task's pagemap runs (through the parent chain of an iterative
/// dump), checked against its VMAs and the size of its pages file, and
/// that file's path.
fn read_pages(
    dir: &ImageDir,
    pid: u64,
    mm: &pb::MmEntry,
    page_size: u64,
) -> Result<PagesRead, CheckError> {
    let chain::TaskPages {
        runs: pages,
        path: pages_path,
        keep,
    } = chain::task_pages(dir.root(), pid, page_size)?;
    let pages_len = std::fs::metadata(&pages_path)
        .map_err(|e| invalid(pages_path.display().to_string(), e.to_string()))?
        .len();
    let pm_file = Kind::Pagemap.file_name(pid);
    let pages_file = pages_path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    validate_pages(
        &pages,
        &mm.vmas,
        &pm_file,
        &pages_file,
        page_size,
        pages_len,
    )?;
    Ok((pages, pages_path, keep))
}

/// What [`read_pages`] returns.
type PagesRead = (
    Vec<PagesRun>,
    std::path::PathBuf,
    Option<Arc<std::os::fd::OwnedFd>>,
);

/// Every file-backed VMA names a regular file of `files.img`.
fn check_file_vmas(mm: &pb::MmEntry, mm_file: &str, files: &TreeFiles) -> Result<(), CheckError> {
    let reg_files = &files.reg_files;
    for v in mm
        .vmas
        .iter()
        .filter(|v| is_mapped_vma(v) && is_file_vma(v))
    {
        let id = v.shmid as u32;
        if !reg_files.contains_key(&id) {
            return Err(invalid(
                mm_file.to_string(),
                format!(
                    "file VMA {:#x}-{:#x} names file id {id}, which files.img {}",
                    v.start,
                    v.end,
                    if files.has_files_img {
                        "does not hold"
                    } else {
                        "(missing) would hold"
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// The fds of fd table `files_id` (none when the images have no fdinfo
/// image and need not: then also `true`), validated. `has_ids`: the
/// task's kernel-object ids were read (from ids-PID.img or its core).
fn read_fdinfo(
    dir: &ImageDir,
    pstree: &pb::PstreeEntry,
    has_ids: bool,
    files_id: u32,
    complete: bool,
) -> Result<(Vec<pb::FdinfoEntry>, bool), CheckError> {
    let pid = u64::from(pstree.pid);
    let no_fdinfo_image = !(complete || dir.path(Kind::Fdinfo, u64::from(files_id)).exists());
    let fdinfo = if no_fdinfo_image {
        Vec::new()
    } else if !dir.path(Kind::Fdinfo, u64::from(files_id)).exists() {
        // Complete images have one fdinfo image per fd table: a missing one
        // is the fault of the id that names it (a damaged or foreign one).
        let named_by = if has_ids && dir.path(Kind::Ids, pid).exists() {
            Kind::Ids.file_name(pid)
        } else {
            Kind::Core.file_name(pid)
        };
        return Err(invalid(
            named_by,
            format!(
                "task {}'s fd table is files id {files_id}, but there is no {}",
                pstree.pid,
                Kind::Fdinfo.file_name(u64::from(files_id))
            ),
        ));
    } else {
        dir.read_all::<pb::FdinfoEntry>(Kind::Fdinfo, u64::from(files_id))?
    };
    validate_fdinfo(&fdinfo, &Kind::Fdinfo.file_name(u64::from(files_id)))?;
    Ok((fdinfo, no_fdinfo_image))
}
