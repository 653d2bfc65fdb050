//! Shared memory objects for restore (shared anonymous memory and memfd
//! mappings of one task): read from `pagemap-shmem-<shmid>.img` and its
//! pages image, and recreated by the tool before the restorer runs, so the
//! restorer only maps a descriptor (`MAP_SHARED|MAP_FIXED`) like a file.
//!
//! - Shared anonymous memory comes back as the same kind of object: a
//!   shared mapping of `/dev/zero` creates it (the kernel's
//!   `shmem_zero_setup`, as for `MAP_SHARED|MAP_ANONYMOUS`) and its
//!   `/proc/self/map_files/` link gives a descriptor (CRIU does the same),
//!   so the task sees `/dev/zero (deleted)` again.
//! - A memfd is `memfd_create`d with its dumped name, sized, filled, then
//!   sealed (`F_ADD_SEALS` after filling, since seals may forbid writes).
//!   Its fds and mappings get descriptions with the modes they had: the
//!   created one for read-write use (it counts as no writer, so the memfd
//!   can still be executed), reopened ones otherwise.
//!
//! Only the pages listed are written: holes stay holes.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

use super::RestoreError;
use crate::images::kinds::Kind;
use crate::images::pagemap::PagesRun;
use crate::images::pb;
use crate::images::typed::ImageDir;
use crate::proc::vma_kind::status::{VMA_ANON_SHARED, VMA_AREA_MEMFD, VMA_AREA_SYSVIPC};

/// `F_SEAL_SEAL`: no more seals may be added.
const F_SEAL_SEAL: u32 = linux_raw_sys::general::F_SEAL_SEAL;

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

fn invalid(file: impl Into<String>, what: String) -> RestoreError {
    RestoreError::Invalid {
        file: file.into(),
        what,
    }
}

/// Reads and validates the objects the VMAs of `vmas` map.
pub fn read(
    dir: &ImageDir,
    vmas: &[pb::VmaEntry],
    memfd_files: &HashMap<u32, pb::MemfdFileEntry>,
    page_size: u64,
    mm_file: &str,
) -> Result<Vec<ShmemImage>, RestoreError> {
    let memfd_path = dir.path(Kind::MemfdInode, 0);
    let inodes: Vec<pb::MemfdInodeEntry> = if memfd_path.exists() {
        dir.read_all(Kind::MemfdInode, 0)
            .map_err(RestoreError::Image)?
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
) -> Result<ShmemImage, RestoreError> {
    let size = inode.as_ref().map_or(extent, |i| i.size);
    let pm = dir.path(Kind::ShmemPagemap, shmid);
    let (runs, pages_path) = if pm.exists() {
        let (pages_id, runs) = super::read_pagemap(&pm, page_size)?;
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

/// The access mode a memfd mapping held its file with (`vma_entry.fdflags`,
/// else its memfd file entry's flags); `None` when the image says neither.
pub fn memfd_mapping_mode(
    v: &pb::VmaEntry,
    memfd_files: &std::collections::HashMap<u32, pb::MemfdFileEntry>,
) -> Option<OFlags> {
    let flags = v
        .fdflags
        .or_else(|| memfd_files.get(&(v.shmid as u32)).map(|m| m.flags))?;
    Some(OFlags::from_bits_retain(flags) & OFlags::ACCMODE)
}

/// Creates the object `o`, fills it with its pages and returns a
/// read-write descriptor of it.
pub fn create(o: &ShmemImage) -> Result<OwnedFd, RestoreError> {
    let fd = match &o.memfd {
        Some(m) => {
            let flags = if m.seals == F_SEAL_SEAL {
                // Created without sealing allowed, the kernel sets exactly
                // F_SEAL_SEAL.
                MemfdFlags::CLOEXEC
            } else {
                MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING
            };
            let fd = rustix::fs::memfd_create(m.name.as_str(), flags)
                .map_err(|e| RestoreError::Sys("memfd_create", e))?;
            rustix::fs::ftruncate(&fd, m.size).map_err(|e| RestoreError::Sys("ftruncate", e))?;
            fd
        }
        None => anon_shared(o.size)?,
    };
    fill(&fd, o)?;
    if let Some(m) = &o.memfd {
        if let Some(mode) = m.mode {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
                .map_err(|e| RestoreError::Sys("fchmod (memfd)", e))?;
        }
        // The dumped owner; without the right to chown it stays ours.
        let _ = rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(m.uid)),
            Some(rustix::fs::Gid::from_raw(m.gid)),
        );
        if m.seals != F_SEAL_SEAL && m.seals != 0 {
            rustix::fs::fcntl_add_seals(&fd, SealFlags::from_bits_retain(m.seals))
                .map_err(|e| RestoreError::Sys("F_ADD_SEALS (memfd)", e))?;
        }
    }
    Ok(fd)
}

/// A new shared anonymous memory object of `size` bytes: map `/dev/zero`
/// shared (which makes one), take a descriptor through map_files, unmap.
fn anon_shared(size: u64) -> Result<OwnedFd, RestoreError> {
    let zero = rustix::fs::open("/dev/zero", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| RestoreError::Open("/dev/zero".into(), e))?;
    let map = crate::sys::shared_mapping::SharedMapping::map(&zero, size as usize)
        .map_err(|e| RestoreError::Sys("mmap of /dev/zero (shared anonymous memory)", e))?;
    let start = map.as_slice().as_ptr() as u64;
    let path = format!("/proc/self/map_files/{:x}-{:x}", start, start + size);
    let fd = rustix::fs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| RestoreError::Open(path, e))?;
    drop(map);
    Ok(fd)
}

/// Writes the object's pages at their offsets.
fn fill(fd: &OwnedFd, o: &ShmemImage) -> Result<(), RestoreError> {
    let Some(path) = &o.pages_path else {
        return Ok(());
    };
    let pages = rustix::fs::open(
        path.as_path(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RestoreError::Open(path.display().to_string(), e))?;
    let page_size = crate::proc::page_size() as u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut src = 0u64;
    for r in &o.runs {
        let mut dst = r.vaddr;
        let mut left = r.nr_pages * page_size;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            let chunk = &mut buf[..n];
            read_exact_at(&pages, chunk, src)
                .map_err(|e| RestoreError::Sys("reading shmem pages", e))?;
            // The last page may lie past a memfd's end: write what fits.
            let fits = o.size.saturating_sub(dst).min(n as u64) as usize;
            write_all_at(fd, &chunk[..fits], dst)
                .map_err(|e| RestoreError::Sys("writing shmem pages", e))?;
            src += n as u64;
            dst += n as u64;
            left -= n as u64;
        }
    }
    Ok(())
}

fn read_exact_at(fd: &OwnedFd, buf: &mut [u8], off: u64) -> Result<(), rustix::io::Errno> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::pread(fd, &mut buf[got..], off + got as u64) {
            Ok(0) => return Err(rustix::io::Errno::IO),
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_all_at(fd: &OwnedFd, buf: &[u8], off: u64) -> Result<(), rustix::io::Errno> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pwrite(fd, &buf[done..], off + done as u64) {
            Ok(0) => return Err(rustix::io::Errno::IO),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
