//! Shared memory objects of one task (shared anonymous memory and memfd
//! mappings): read from `pagemap-shmem-<shmid>.img` and its pages image,
//! and checked against the object's size. Restore recreates them (see
//! `crate::files::shmem`).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::images::check::{CheckError, invalid};
use crate::images::kinds::Kind;
use crate::images::pb;
use crate::images::typed::ImageDir;
use crate::images::vma::status::{VMA_ANON_SHARED, VMA_AREA_MEMFD, VMA_AREA_SYSVIPC};
use crate::images::vma::{PagesRun, read_pagemap};

/// One shmem object to recreate.
#[derive(Debug)]
pub struct ShmemImage {
    /// Inode number at dump time (names the pagemap image).
    pub shmid: u64,
    /// The memfd's inode entry; `None` for shared anonymous memory.
    pub memfd: Option<pb::MemfdInodeEntry>,
    /// Object size in bytes.
    pub size: u64,
    /// Runs of pages: `vaddr` is the offset in the object.
    pub runs: Vec<PagesRun>,
    /// `pages-N.img` holding them (`None` without a pagemap image).
    pub pages_path: Option<PathBuf>,
}

/// The shmem object a VMA maps, as a key into the objects: the shmid of
/// shared anonymous memory, the memfd inode's shmid for a memfd mapping
/// (through its `files.img` entry).
pub fn object_of(
    v: &pb::VmaEntry,
    memfd_files: &HashMap<u32, pb::MemfdFileEntry>,
    inodes: &[pb::MemfdInodeEntry],
) -> Option<u64> {
    if v.status & VMA_AREA_MEMFD != 0 {
        let f = memfd_files.get(&(v.shmid as u32))?;
        let ino = inodes
            .iter()
            .find(|i| i.inode_id == u64::from(f.inode_id))?;
        Some(u64::from(ino.shmid))
    } else if v.status & VMA_ANON_SHARED != 0 && v.status & VMA_AREA_SYSVIPC == 0 {
        Some(v.shmid)
    } else {
        None
    }
}

/// Index in `objs` of the object the VMA `v` maps, if it maps one.
pub fn index_of(
    objs: &[ShmemImage],
    v: &pb::VmaEntry,
    memfd_files: &HashMap<u32, pb::MemfdFileEntry>,
) -> Option<usize> {
    if v.status & VMA_AREA_MEMFD != 0 {
        let inode_id = u64::from(memfd_files.get(&(v.shmid as u32))?.inode_id);
        objs.iter()
            .position(|o| o.memfd.as_ref().is_some_and(|m| m.inode_id == inode_id))
    } else if v.status & VMA_ANON_SHARED != 0 && v.status & VMA_AREA_SYSVIPC == 0 {
        objs.iter()
            .position(|o| o.memfd.is_none() && o.shmid == v.shmid)
    } else {
        None
    }
}

/// Reads and validates the objects the VMAs of `vmas` map.
pub fn read(
    dir: &ImageDir,
    vmas: &[pb::VmaEntry],
    memfd_files: &HashMap<u32, pb::MemfdFileEntry>,
    page_size: u64,
    mm_file: &str,
) -> Result<Vec<ShmemImage>, CheckError> {
    let memfd_path = dir.path(Kind::MemfdInode, 0);
    let inodes: Vec<pb::MemfdInodeEntry> = if memfd_path.exists() {
        dir.read_all(Kind::MemfdInode, 0)?
    } else {
        Vec::new()
    };
    let mut out: Vec<ShmemImage> = Vec::new();
    for v in vmas {
        let memfd = v.status & VMA_AREA_MEMFD != 0;
        if !memfd && (v.status & VMA_ANON_SHARED == 0 || v.status & VMA_AREA_SYSVIPC != 0) {
            continue;
        }
        let Some(shmid) = object_of(v, memfd_files, &inodes) else {
            return Err(invalid(
                mm_file,
                format!(
                    "memfd VMA {:#x}-{:#x} names file id {}, which no files/memfd image holds",
                    v.start, v.end, v.shmid
                ),
            ));
        };
        if out.iter().any(|o| o.shmid == shmid) {
            continue;
        }
        // Shared anonymous memory is as big as its VMAs reach.
        let extent = vmas
            .iter()
            .filter(|w| w.status & VMA_ANON_SHARED != 0 && w.shmid == v.shmid)
            .map(|w| w.pgoff.saturating_add(w.end.saturating_sub(w.start)))
            .max()
            .unwrap_or(0);
        let inode = memfd.then(|| inodes.iter().find(|i| u64::from(i.shmid) == shmid).cloned());
        out.push(load(dir, shmid, inode.flatten(), extent, page_size)?);
    }
    // memfds only open as fds (not mapped) come back too.
    for i in &inodes {
        if !out
            .iter()
            .any(|o| o.memfd.as_ref().is_some_and(|m| m.inode_id == i.inode_id))
        {
            out.push(load(
                dir,
                u64::from(i.shmid),
                Some(i.clone()),
                i.size,
                page_size,
            )?);
        }
    }
    Ok(out)
}

/// Reads the pagemap of object `shmid` (`inode`: its memfd entry; `extent`:
/// the size of shared anonymous memory) and checks it.
fn load(
    dir: &ImageDir,
    shmid: u64,
    inode: Option<pb::MemfdInodeEntry>,
    extent: u64,
    page_size: u64,
) -> Result<ShmemImage, CheckError> {
    let size = inode.as_ref().map_or(extent, |i| i.size);
    let pm = dir.path(Kind::ShmemPagemap, shmid);
    let (runs, pages_path) = if pm.exists() {
        let (pages_id, runs) = read_pagemap(&pm, page_size)?;
        (runs, Some(dir.path(Kind::Pages, u64::from(pages_id))))
    } else {
        (Vec::new(), None)
    };
    let pm_file = Kind::ShmemPagemap.file_name(shmid);
    let mut total = 0u64;
    for r in &runs {
        let end = r
            .nr_pages
            .checked_mul(page_size)
            .and_then(|l| r.vaddr.checked_add(l));
        match end {
            Some(end) if r.vaddr % page_size == 0 && end <= size.next_multiple_of(page_size) => {}
            _ => {
                return Err(invalid(
                    pm_file,
                    format!(
                        "run at offset {:#x} of {} pages lies outside the object ({size} bytes)",
                        r.vaddr, r.nr_pages
                    ),
                ));
            }
        }
        total = total.saturating_add(r.nr_pages * page_size);
    }
    if let Some(p) = &pages_path {
        let len = std::fs::metadata(p)
            .map_err(|e| invalid(p.display().to_string(), e.to_string()))?
            .len();
        // Exactly the pages listed: a shorter image would leave the
        // object half-filled, a longer one means the pagemap lost runs.
        if len != total {
            return Err(invalid(
                p.display().to_string(),
                format!("holds {len} bytes, {pm_file} lists {total}"),
            ));
        }
    }
    Ok(ShmemImage {
        shmid,
        memfd: inode,
        size,
        runs,
        pages_path,
    })
}
