//! Reading and validating the images of one task before anything is created.
//!
//! Everything a restore needs from the images directory is loaded into
//! [`TaskImages`] and checked here, so that a bad image is reported with the
//! file it came from before a single process exists.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::images::kinds::Kind;
use crate::images::pb;
use crate::images::typed::ImageDir;
use crate::proc::vma_kind::status::{
    VMA_AREA_AIORING, VMA_AREA_MEMFD, VMA_AREA_REGULAR, VMA_AREA_SYSVIPC, VMA_AREA_VDSO,
    VMA_AREA_VSYSCALL, VMA_AREA_VVAR, VMA_FILE_PRIVATE, VMA_FILE_SHARED,
};

use super::RestoreError;

pub use crate::images::pagemap::PagesRun;

/// The images of one task, as read and validated.
#[derive(Debug)]
pub struct TaskImages {
    pub pstree: pb::PstreeEntry,
    pub core: pb::CoreEntry,
    /// The other threads' `core-TID.img`, in `pstree.threads` order.
    pub threads: Vec<(u32, pb::CoreEntry)>,
    pub mm: pb::MmEntry,
    pub pages: Vec<PagesRun>,
    /// Path of `pages-N.img`.
    pub pages_path: std::path::PathBuf,
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
    pub shmem: Vec<super::shmem::ShmemImage>,
    /// Pipes, FIFOs and unix sockets (`files.img` and their data images).
    pub other_files: Arc<crate::files::FileImages>,
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
    /// How its vDSO comes back (decided once every image is read, see
    /// [`super::vdso::plan`]).
    pub vdso: crate::vdso::VdsoPlan,
}

fn img(e: crate::images::error::ImageError) -> RestoreError {
    RestoreError::Image(e)
}

fn invalid(file: impl Into<String>, what: String) -> RestoreError {
    RestoreError::Invalid {
        file: file.into(),
        what,
    }
}

/// Reads the one entry of a single-entry image (inventory, core, mm, fs,
/// ids). CRIU writes exactly one, so anything after it, even a well-formed
/// second entry, is damage rather than something to ignore.
/// The `core-ID.img` of a task or thread that pstree.img lists: a missing
/// one is pstree.img's fault (a damaged or foreign ID), and says so.
fn read_core(dir: &ImageDir, what: &str, id: u32) -> Result<pb::CoreEntry, RestoreError> {
    let id = u64::from(id);
    if !dir.path(Kind::Core, id).exists() {
        return Err(invalid(
            "pstree.img",
            format!(
                "{what} {id} is listed, but there is no {}",
                Kind::Core.file_name(id)
            ),
        ));
    }
    read_single(dir, Kind::Core, id)
}

fn read_single<T: prost_reflect::prost::Message + Default>(
    dir: &ImageDir,
    kind: Kind,
    id: u64,
) -> Result<T, RestoreError> {
    let mut r = dir.reader(kind, id).map_err(img)?;
    let Some(m) = r.next_message::<T>().map_err(img)? else {
        return Err(invalid(kind.file_name(id), "holds no entry".into()));
    };
    let end = r.offset();
    if r.next_entry().map_err(img)?.is_some() {
        return Err(invalid(
            kind.file_name(id),
            format!("data after its one entry (at offset {end})"),
        ));
    }
    Ok(m)
}

/// Is the VMA one the restorer maps itself (not vDSO/vvar/vsyscall)?
pub fn is_mapped_vma(v: &pb::VmaEntry) -> bool {
    v.status & VMA_AREA_REGULAR != 0
        && v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL) == 0
}

/// May the pagemap list pages of this VMA? Restorable ones, and the vDSO,
/// whose pages CRIU dumps (for proxying) but a restore with the runtime
/// vDSO skips.
pub fn holds_pages(v: &pb::VmaEntry) -> bool {
    is_mapped_vma(v) || (v.status & VMA_AREA_VDSO != 0 && v.status & VMA_AREA_VVAR == 0)
}

/// Is the VMA a mapping of a regular file (private or shared)? memfd
/// mappings are shmem objects instead.
pub fn is_file_vma(v: &pb::VmaEntry) -> bool {
    v.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED) != 0 && v.status & VMA_AREA_MEMFD == 0
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

/// The network lock `inventory.img` records, to take the dump's lock away
/// with: its method (CRIU's default, iptables, for a value CRIU does not
/// define) and the id its table is named after (the dump's run id, else
/// the root's PID, as CRIU names it).
pub fn network_lock(
    dir: &ImageDir,
    root: u32,
) -> Result<(crate::opts::NetworkLock, String), RestoreError> {
    let inventory: pb::InventoryEntry = read_single(dir, Kind::Inventory, 0)?;
    let method = inventory
        .network_lock_method
        .and_then(crate::opts::NetworkLock::from_inventory)
        .unwrap_or(crate::opts::NetworkLock::Iptables);
    let id = inventory
        .dump_criu_run_id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| root.to_string());
    Ok((method, id))
}

/// Reads every image of every task of `pstree.img` in `dir` and validates
/// them, in pstree order (the root first, each parent before its
/// children).
pub fn read_tree(
    dir: &ImageDir,
    page_size: u64,
    task_size: u64,
) -> Result<Vec<TreeTaskImages>, RestoreError> {
    let inventory: pb::InventoryEntry = read_single(dir, Kind::Inventory, 0)?;
    let complete = inventory.fdinfo_per_id == Some(true);
    let tree: Vec<pb::PstreeEntry> = dir.read_all(Kind::Pstree, 0).map_err(img)?;
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
                return Err(RestoreError::Unsupported(
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
            (page_size, task_size),
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
fn link_shared_tables(tasks: &mut [TreeTaskImages]) -> Result<(), RestoreError> {
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

/// The images of the tree's files (`files.img` and what its kinds read,
/// `remap-fpath.img`, `filelocks.img`): read and checked once, shared by
/// every task (each task's own part of them is picked by id).
struct TreeFiles {
    has_files_img: bool,
    reg_files: Arc<HashMap<u32, pb::RegFileEntry>>,
    memfd_files: Arc<HashMap<u32, pb::MemfdFileEntry>>,
    other_files: Arc<crate::files::FileImages>,
    remaps: Arc<Vec<pb::RemapFilePathEntry>>,
    /// File locks by the PID that holds them.
    locks: HashMap<i32, Vec<pb::FileLockEntry>>,
}

fn read_tree_files(dir: &ImageDir, tcp_close: bool) -> Result<TreeFiles, RestoreError> {
    let mut reg_files = HashMap::new();
    let mut memfd_files = HashMap::new();
    let mut all_files = Vec::new();
    let has_files_img = dir.path(Kind::Files, 0).exists();
    if has_files_img {
        all_files = dir.read_all::<pb::FileEntry>(Kind::Files, 0).map_err(img)?;
        for f in &all_files {
            if let Some(reg) = &f.reg {
                reg_files.insert(f.id, reg.clone());
            } else if let Some(m) = &f.memfd {
                memfd_files.insert(f.id, *m);
            }
        }
    }
    let mut other_files = crate::files::FileImages::read(dir, &all_files)?;
    other_files.dumped_tcp_close = tcp_close;
    drop(all_files);
    if dir.path(Kind::RegFiles, 0).exists() {
        for reg in dir
            .read_all::<pb::RegFileEntry>(Kind::RegFiles, 0)
            .map_err(img)?
        {
            other_files.entries.insert(
                reg.id,
                pb::FileEntry {
                    r#type: pb::FdTypes::Reg as i32,
                    id: reg.id,
                    reg: Some(reg.clone()),
                    ..Default::default()
                },
            );
            reg_files.insert(reg.id, reg);
        }
    }
    for reg in reg_files.values() {
        validate_path(&reg.name, "files.img", reg.id)?;
    }
    let remaps = if dir.path(Kind::RemapFpath, 0).exists() {
        dir.read_all::<pb::RemapFilePathEntry>(Kind::RemapFpath, 0)
            .map_err(img)?
    } else {
        Vec::new()
    };
    for r in &remaps {
        if !reg_files.contains_key(&r.orig_id) {
            return Err(invalid(
                "remap-fpath.img",
                format!("file id {} is not a regular file of files.img", r.orig_id),
            ));
        }
    }
    let mut locks: HashMap<i32, Vec<pb::FileLockEntry>> = HashMap::new();
    if dir.path(Kind::FileLocks, 0).exists() {
        for l in dir
            .read_all::<pb::FileLockEntry>(Kind::FileLocks, 0)
            .map_err(img)?
        {
            locks.entry(l.pid).or_default().push(l);
        }
    }
    Ok(TreeFiles {
        has_files_img,
        reg_files: Arc::new(reg_files),
        memfd_files: Arc::new(memfd_files),
        other_files: Arc::new(other_files),
        remaps: Arc::new(remaps),
        locks,
    })
}

/// Reads the images of one live task of the tree and validates them.
fn read_task(
    dir: &ImageDir,
    pstree: pb::PstreeEntry,
    core: pb::CoreEntry,
    complete: bool,
    files: &mut TreeFiles,
    (page_size, task_size): (u64, u64),
) -> Result<TaskImages, RestoreError> {
    let pid = u64::from(pstree.pid);
    validate_core(&core, &Kind::Core.file_name(pid), task_size)?;
    super::seccomp::refuse(&core, pstree.pid, &Kind::Core.file_name(pid))?;
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
        validate_core(&c, &Kind::Core.file_name(u64::from(tid)), task_size)?;
        super::seccomp::refuse(&c, tid, &Kind::Core.file_name(u64::from(tid)))?;
        threads.push((tid, c));
    }
    // Alive (1) or stopped (3) tasks only: dead ones and zombies would need
    // helpers that are not written yet.
    if let Some(state) = core.tc.as_ref().map(|tc| tc.task_state)
        && state != 1
        && state != 3
    {
        return Err(RestoreError::Unsupported(format!(
            "{}: task state {state} (only alive or stopped tasks are restored)",
            Kind::Core.file_name(pid)
        )));
    }
    let mm: pb::MmEntry = read_single(dir, Kind::Mm, pid)?;
    let mm_file = Kind::Mm.file_name(pid);
    validate_vmas(&mm.vmas, &mm_file, page_size, task_size)?;
    refuse_unsupported(&mm.vmas, &mm_file)?;

    let (pages_id, pages) = super::read_pagemap(&dir.path(Kind::Pagemap, pid), page_size)?;
    let pages_path = dir.path(Kind::Pages, u64::from(pages_id));
    let pages_len = std::fs::metadata(&pages_path)
        .map_err(|e| invalid(pages_path.display().to_string(), e.to_string()))?
        .len();
    let pm_file = Kind::Pagemap.file_name(pid);
    let pages_file = Kind::Pages.file_name(u64::from(pages_id));
    validate_pages(
        &pages,
        &mm.vmas,
        &pm_file,
        &pages_file,
        page_size,
        pages_len,
    )?;

    let reg_files = &files.reg_files;
    for v in mm
        .vmas
        .iter()
        .filter(|v| is_mapped_vma(v) && is_file_vma(v))
    {
        let id = v.shmid as u32;
        if !reg_files.contains_key(&id) {
            return Err(invalid(
                mm_file.clone(),
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
    let shmem = super::shmem::read(dir, &mm.vmas, &files.memfd_files, page_size, &mm_file)?;
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
    let no_fdinfo_image = !(complete || dir.path(Kind::Fdinfo, u64::from(files_id)).exists());
    let fdinfo = if no_fdinfo_image {
        Vec::new()
    } else if !dir.path(Kind::Fdinfo, u64::from(files_id)).exists() {
        // Complete images have one fdinfo image per fd table: a missing one
        // is the fault of the id that names it (a damaged or foreign one).
        let named_by = match &ids {
            Some(_) if dir.path(Kind::Ids, pid).exists() => Kind::Ids.file_name(pid),
            _ => Kind::Core.file_name(pid),
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
        dir.read_all::<pb::FdinfoEntry>(Kind::Fdinfo, u64::from(files_id))
            .map_err(img)?
    };
    validate_fdinfo(&fdinfo, &Kind::Fdinfo.file_name(u64::from(files_id)))?;
    let file_locks = files.locks.remove(&(pstree.pid as i32)).unwrap_or_default();
    Ok(TaskImages {
        pstree,
        core,
        threads,
        mm,
        pages,
        pages_path,
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
        vdso: crate::vdso::VdsoPlan::Nothing,
    })
}

/// Memory whose contents live outside the task's pages and is not restored
/// yet (SysV shm, AIO rings): refuse it rather than bring it back empty.
/// (Shared anonymous memory and memfd mappings are restored, see
/// [`super::shmem`].)
pub fn refuse_unsupported(vmas: &[pb::VmaEntry], file: &str) -> Result<(), RestoreError> {
    for v in vmas {
        let what = if v.status & VMA_AREA_SYSVIPC != 0 {
            "SysV shared memory"
        } else if v.status & VMA_AREA_AIORING != 0 {
            "an AIO ring"
        } else {
            continue;
        };
        return Err(RestoreError::Unsupported(format!(
            "{file}: {what} at {:#x}-{:#x} cannot be restored yet",
            v.start, v.end
        )));
    }
    // Guard regions need MADV_GUARD_INSTALL here: said before anything is
    // created, not as a failed madvise in the restorer.
    if let Some(g) = vmas.iter().find(|v| crate::mem::guards::is_guard(v))
        && !matches!(crate::sys::pagemap_scan::madv_guard_supported(), Ok(true))
    {
        return Err(RestoreError::Unsupported(format!(
            "{file}: guard region at {:#x}-{:#x} needs madvise(MADV_GUARD_INSTALL), \
             which this kernel lacks (Linux 6.13+)",
            g.start, g.end
        )));
    }
    Ok(())
}

/// VMAs must be page-aligned, non-empty, sorted, non-overlapping and inside
/// the task size; guard regions (CRIU writes them after the VMAs, see
/// [`crate::mem::guards`]) must be whole pages of mapped VMAs.
pub fn validate_vmas(
    vmas: &[pb::VmaEntry],
    file: &str,
    page_size: u64,
    task_size: u64,
) -> Result<(), RestoreError> {
    let is_guard = crate::mem::guards::is_guard;
    let mut prev_end = 0u64;
    for v in vmas.iter().filter(|v| !is_guard(v)) {
        let range = format!("VMA {:#x}-{:#x}", v.start, v.end);
        if v.start % page_size != 0 || v.end % page_size != 0 {
            return Err(invalid(file, format!("{range} is not page-aligned")));
        }
        if v.start >= v.end {
            return Err(invalid(file, format!("{range} is empty or inverted")));
        }
        // mmap takes the file offset in pages.
        if v.pgoff % page_size != 0 {
            return Err(invalid(
                file,
                format!("{range}: file offset {:#x} is not page-aligned", v.pgoff),
            ));
        }
        if v.start < prev_end {
            return Err(invalid(
                file,
                format!("{range} overlaps or precedes the VMA before it"),
            ));
        }
        if v.end > task_size && v.status & VMA_AREA_VSYSCALL == 0 {
            return Err(invalid(
                file,
                format!("{range} ends above the task size {task_size:#x}"),
            ));
        }
        prev_end = v.end;
    }
    validate_guards(vmas, file, page_size)
}

/// Guard regions lie on whole pages of mapped VMAs (see
/// [`crate::mem::guards::check_guards`]).
fn validate_guards(vmas: &[pb::VmaEntry], file: &str, page_size: u64) -> Result<(), RestoreError> {
    crate::mem::guards::check_guards(vmas, page_size, is_mapped_vma).map_err(|e| invalid(file, e))
}

/// The kernel's `PID_MAX_LIMIT` on 64-bit: no PID (or TID) is above it.
const PID_MAX_LIMIT: u32 = 1 << 22;
/// `RLIM_NLIMITS`: resources the kernel knows (the rlimits are indexed by
/// resource number).
const RLIM_NLIMITS: usize = 16;
/// A pending `siginfo_t` is exactly this long.
const SIGINFO_SIZE: usize = 128;

/// A PID clone3 can be asked for: 1..=`PID_MAX_LIMIT`.
pub fn validate_pid(pid: u32, file: &str) -> Result<(), RestoreError> {
    if pid == 0 || pid > PID_MAX_LIMIT {
        return Err(invalid(
            file,
            format!("PID {pid} is outside 1..={PID_MAX_LIMIT}"),
        ));
    }
    Ok(())
}

/// What the restorer would otherwise fail at late (or not at all, leaving
/// a task that crashes once it runs): the registers, the pending signals,
/// the supplementary groups and the rlimits of the core image.
pub fn validate_core(core: &pb::CoreEntry, file: &str, task_size: u64) -> Result<(), RestoreError> {
    super::regs::validate(core, task_size).map_err(|what| invalid(file, what))?;
    let tc = core.tc.as_ref();
    let th = core.thread_core.as_ref();
    let queues = [
        tc.and_then(|tc| tc.signals_s.as_ref()),
        th.and_then(|th| th.signals_p.as_ref()),
    ];
    for s in queues.iter().flatten().flat_map(|q| q.signals.iter()) {
        if s.siginfo.len() != SIGINFO_SIZE {
            return Err(invalid(
                file,
                format!(
                    "a pending siginfo of {} bytes (want {SIGINFO_SIZE})",
                    s.siginfo.len()
                ),
            ));
        }
    }
    if let Some(c) = th.and_then(|th| th.creds.as_ref())
        && c.groups.len() > crate::blob::restorer_abi::MAX_GROUPS
    {
        return Err(invalid(
            file,
            format!(
                "{} supplementary groups (at most {} are restored)",
                c.groups.len(),
                crate::blob::restorer_abi::MAX_GROUPS
            ),
        ));
    }
    if let Some(rl) = tc.and_then(|tc| tc.rlimits.as_ref()) {
        if rl.rlimits.len() > RLIM_NLIMITS {
            return Err(invalid(
                file,
                format!(
                    "{} rlimits (the kernel has {RLIM_NLIMITS})",
                    rl.rlimits.len()
                ),
            ));
        }
        // setrlimit refuses a soft limit above the hard one (EINVAL), which
        // the restorer would only meet after the task exists.
        if let Some((res, r)) = rl.rlimits.iter().enumerate().find(|(_, r)| r.cur > r.max) {
            return Err(invalid(
                file,
                format!(
                    "rlimit {res} has a soft limit {:#x} above its hard limit {:#x}",
                    r.cur, r.max
                ),
            ));
        }
    }
    Ok(())
}

/// Fd numbers must be ones this process may have (below the hard
/// RLIMIT_NOFILE, which also keeps them far from `i32` overflow) and each
/// appear once.
pub fn validate_fdinfo(fdinfo: &[pb::FdinfoEntry], file: &str) -> Result<(), RestoreError> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::from(i32::MAX as u32));
    let mut seen = std::collections::HashSet::new();
    for f in fdinfo {
        if u64::from(f.fd) >= limit || f.fd > i32::MAX as u32 {
            return Err(invalid(
                file,
                format!("fd {} is not below the hard RLIMIT_NOFILE {limit}", f.fd),
            ));
        }
        if !seen.insert(f.fd) {
            return Err(invalid(file, format!("fd {} appears twice", f.fd)));
        }
    }
    Ok(())
}

/// A path the restore opens: non-empty and without NUL (which the kernel
/// would cut the name at).
pub fn validate_path(name: &str, file: &str, id: u32) -> Result<(), RestoreError> {
    if name.is_empty() {
        return Err(invalid(file, format!("file id {id} has an empty path")));
    }
    if name.contains('\0') {
        return Err(invalid(
            file,
            format!("file id {id}: path {name:?} holds a NUL byte"),
        ));
    }
    Ok(())
}

/// Page runs must lie inside restorable VMAs, and the pages image must hold
/// exactly the pages the pagemap lists. Fixes up run offsets for `page_size`.
pub fn validate_pages(
    runs: &[PagesRun],
    vmas: &[pb::VmaEntry],
    file: &str,
    pages_file: &str,
    page_size: u64,
    pages_len: u64,
) -> Result<(), RestoreError> {
    let mut total = 0u64;
    let mut prev_end = 0u64;
    for r in runs {
        // Runs are sorted and disjoint (as dump writes them): pages read
        // twice into one address would mean a broken pagemap.
        if r.vaddr < prev_end {
            return Err(invalid(
                file,
                format!(
                    "run at {:#x} overlaps or precedes the run before it",
                    r.vaddr
                ),
            ));
        }
        let len = r.nr_pages.checked_mul(page_size);
        let end = len.and_then(|l| r.vaddr.checked_add(l));
        let Some(end) = end else {
            return Err(invalid(
                file,
                format!("run at {:#x} of {} pages overflows", r.vaddr, r.nr_pages),
            ));
        };
        if r.vaddr % page_size != 0 {
            return Err(invalid(
                file,
                format!("run at {:#x} is not page-aligned", r.vaddr),
            ));
        }
        // A run may span adjacent VMAs (CRIU merges contiguous pages), but
        // every page must lie in a restorable one.
        let mut cur = r.vaddr;
        while cur < end {
            // VMAs are sorted and disjoint (validate_vmas): the one that
            // may hold `cur` is the first ending above it.
            let at = vmas.partition_point(|v| v.end <= cur);
            let Some(v) = vmas
                .get(at)
                .filter(|v| holds_pages(v) && v.start <= cur && cur < v.end)
            else {
                return Err(invalid(
                    file,
                    format!(
                        "pages {:#x}-{end:#x}: {cur:#x} is not inside a restorable VMA",
                        r.vaddr
                    ),
                ));
            };
            cur = v.end.min(end);
        }
        total = total.saturating_add(end - r.vaddr);
        prev_end = end;
    }
    if total != pages_len {
        return Err(invalid(
            file,
            format!("lists {total} bytes of pages but {pages_file} holds {pages_len}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::vma_kind::status::VMA_ANON_SHARED;

    const PAGE: u64 = 4096;
    const TOP: u64 = 1 << 47;

    fn vma(start: u64, end: u64) -> pb::VmaEntry {
        pb::VmaEntry {
            start,
            end,
            status: VMA_AREA_REGULAR,
            ..Default::default()
        }
    }

    fn run(vaddr: u64, nr_pages: u64) -> PagesRun {
        PagesRun {
            vaddr,
            nr_pages,
            offset: 0,
        }
    }

    fn what(r: Result<(), RestoreError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn vmas_must_be_aligned_sorted_disjoint_and_below_task_size() {
        assert!(
            validate_vmas(&[vma(0x1000, 0x3000), vma(0x3000, 0x4000)], "mm", PAGE, TOP).is_ok()
        );
        assert!(
            what(validate_vmas(&[vma(0x1001, 0x3000)], "mm-1.img", PAGE, TOP))
                .contains("mm-1.img: VMA 0x1001-0x3000 is not page-aligned")
        );
        assert!(what(validate_vmas(&[vma(0x3000, 0x3000)], "mm", PAGE, TOP)).contains("empty"));
        assert!(
            what(validate_vmas(
                &[vma(0x1000, 0x3000), vma(0x2000, 0x4000)],
                "mm",
                PAGE,
                TOP
            ))
            .contains("overlaps")
        );
        assert!(
            what(validate_vmas(&[vma(TOP, TOP + PAGE)], "mm", PAGE, TOP)).contains("task size")
        );
    }

    /// A guard region not on mapped VMAs is a damaged image, named.
    #[test]
    fn guard_regions_off_the_vmas_are_refused() {
        let mut v = vec![vma(0x1000, 0x3000)];
        v.push(crate::mem::guards::guard_entry(0x2000, 0x4000));
        assert!(
            what(validate_vmas(&v, "mm-7.img", PAGE, TOP))
                .contains("mm-7.img: guard region 0x2000-0x4000 is not mapped at 0x3000")
        );
    }

    #[test]
    fn fds_paths_and_pids_must_be_sane() {
        let fd = |fd: u32| pb::FdinfoEntry {
            fd,
            ..Default::default()
        };
        assert!(validate_fdinfo(&[fd(0), fd(1), fd(7)], "fdinfo-2.img").is_ok());
        assert!(
            what(validate_fdinfo(&[fd(3), fd(3)], "fdinfo-2.img"))
                .contains("fdinfo-2.img: fd 3 appears twice")
        );
        assert!(what(validate_fdinfo(&[fd(u32::MAX)], "f")).contains("RLIMIT_NOFILE"));
        assert!(validate_path("/etc/passwd", "files.img", 1).is_ok());
        assert!(what(validate_path("", "files.img", 4)).contains("file id 4 has an empty path"));
        assert!(what(validate_path("/a\0b", "files.img", 4)).contains("NUL"));
        assert!(validate_pid(1, "pstree.img").is_ok());
        assert!(what(validate_pid(0, "pstree.img")).contains("PID 0"));
        assert!(validate_pid(u32::MAX, "pstree.img").is_err());
    }

    #[test]
    fn memory_kept_outside_the_task_is_refused() {
        let mut shared = vma(0x1000, 0x2000);
        shared.status |= VMA_ANON_SHARED;
        // Shared anonymous memory is restored (from its shmem images).
        refuse_unsupported(&[vma(0, 0x1000), shared], "mm-7.img").unwrap();
        shared.status |= VMA_AREA_SYSVIPC;
        let e = refuse_unsupported(&[vma(0, 0x1000), shared], "mm-7.img").unwrap_err();
        assert!(
            e.to_string()
                .contains("mm-7.img: SysV shared memory at 0x1000-0x2000")
        );
    }

    #[test]
    fn page_runs_must_be_inside_vmas_and_match_the_pages_image() {
        let vmas = [
            vma(0x1000, 0x3000),
            vma(0x3000, 0x5000),
            vma(0x8000, 0x9000),
        ];
        // Spanning two adjacent VMAs is fine.
        assert!(validate_pages(&[run(0x2000, 2)], &vmas, "pm", "pages", PAGE, 2 * PAGE).is_ok());
        assert!(
            what(validate_pages(
                &[run(0x4000, 2)],
                &vmas,
                "pagemap-1.img",
                "pages-1.img",
                PAGE,
                2 * PAGE
            ))
            .contains("pagemap-1.img: pages 0x4000-0x6000: 0x5000 is not inside")
        );
        assert!(
            what(validate_pages(
                &[run(0x1000, 1)],
                &vmas,
                "pm",
                "pages",
                PAGE,
                2 * PAGE
            ))
            .contains("lists 4096 bytes of pages but pages holds 8192")
        );
        assert!(
            what(validate_pages(
                &[run(0x1000, u64::MAX)],
                &vmas,
                "pm",
                "pages",
                PAGE,
                0
            ))
            .contains("overflows")
        );
        // Runs out of order or overlapping are refused.
        assert!(
            what(validate_pages(
                &[run(0x2000, 2), run(0x1000, 1)],
                &vmas,
                "pm",
                "pages",
                PAGE,
                3 * PAGE
            ))
            .contains("overlaps or precedes")
        );
        // vDSO pages may be listed (CRIU dumps them), vvar ones not.
        let mut vdso = vma(0x8000, 0x9000);
        vdso.status |= VMA_AREA_VDSO;
        assert!(validate_pages(&[run(0x8000, 1)], &[vdso], "pm", "pages", PAGE, PAGE).is_ok());
        vdso.status = VMA_AREA_REGULAR | VMA_AREA_VVAR;
        assert!(validate_pages(&[run(0x8000, 1)], &[vdso], "pm", "pages", PAGE, PAGE).is_err());
    }
}
