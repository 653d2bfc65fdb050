//! Shared memory objects for restore (shared anonymous memory and memfd
//! mappings of one task), as read and checked by
//! `crate::images::set::shmem`: recreated by the tool before the restorer
//! runs, so the restorer only maps a descriptor (`MAP_SHARED|MAP_FIXED`)
//! like a file.
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

use std::os::fd::OwnedFd;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

use super::RestoreError;
use crate::images::pb;

pub use crate::images::set::shmem::{ShmemImage, index_of};

/// `F_SEAL_SEAL`: no more seals may be added.
const F_SEAL_SEAL: u32 = linux_raw_sys::general::F_SEAL_SEAL;

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
