//! Shared memory objects of a task (shared anonymous memory and memfd
//! mappings): their contents do not live in the task's private pages but in
//! a shmem inode, read here through `/proc/PID/map_files/` while the task is
//! frozen. Each object goes to `pagemap-shmem-<shmid>.img` (a
//! `pagemap_head` and `pagemap_entry` runs whose `vaddr` is the offset in
//! the object) and its own `pages-<id>.img`; `shmid` is the inode number, as
//! CRIU chooses it. Holes of the object (found with `SEEK_DATA` /
//! `SEEK_HOLE`, which also see swapped-out shmem pages) stay holes.
//!
//! For a memfd mapping the tool also fills the `memfd_inode_entry` (name,
//! size, seals, owner, mode) that goes to `memfd.img`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use crate::images::{ImageDir, ImageError, Kind, pb};
use crate::mem::pe;
use crate::proc::map_files::MapFile;
use crate::proc::vma_kind::status::{VMA_ANON_SHARED, VMA_AREA_MEMFD, VMA_AREA_SYSVIPC};
use crate::proc::vmas::CollectedVma;

/// Bytes moved per `pread`/`write`: bounded memory whatever the object size.
const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ShmemError {
    #[error("shared memory at {start:#x}-{end:#x}: no map_files link to read it through")]
    NoLink { start: u64, end: u64 },
    #[error("reading shmem object {shmid}: {what}: {source}")]
    Read {
        shmid: u64,
        what: &'static str,
        source: Errno,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// One shmem object as the dump sees it.
#[derive(Debug)]
pub struct ShmemObject {
    /// Inode number of the object (`vma_entry.shmid` of anonymous shared
    /// VMAs, `memfd_inode_entry.shmid` of memfds).
    pub shmid: u64,
    /// Read-only descriptor of the object (its `map_files/` link).
    fd: Arc<OwnedFd>,
    /// Bytes of the object worth dumping: the VMAs' extent for anonymous
    /// shared memory, the file size for a memfd.
    pub size: u64,
    pub memfd: bool,
}

/// The shmem objects behind `vmas` and the open memfds `fds` (inode,
/// descriptor, size), one per inode, in shmid order. SysV segments are not
/// among them (refused elsewhere).
pub fn objects<'a>(
    vmas: impl IntoIterator<Item = &'a CollectedVma>,
    fds: &[(u64, Arc<OwnedFd>, u64)],
) -> Result<Vec<ShmemObject>, ShmemError> {
    let mut out: BTreeMap<u64, ShmemObject> = BTreeMap::new();
    for (ino, fd, size) in fds {
        out.insert(
            *ino,
            ShmemObject {
                shmid: *ino,
                fd: fd.clone(),
                size: *size,
                memfd: true,
            },
        );
    }
    for v in vmas {
        let e = &v.entry;
        let memfd = e.is(VMA_AREA_MEMFD);
        if !(memfd || (e.is(VMA_ANON_SHARED) && !e.is(VMA_AREA_SYSVIPC))) {
            continue;
        }
        let MapFile::File { fd, id } = &v.file else {
            return Err(ShmemError::NoLink {
                start: e.start,
                end: e.end,
            });
        };
        let extent = e.pgoff + (e.end - e.start);
        let size = if memfd { id.size.max(0) as u64 } else { extent };
        let obj = out.entry(id.ino).or_insert_with(|| ShmemObject {
            shmid: id.ino,
            fd: fd.clone(),
            size,
            memfd,
        });
        obj.size = obj.size.max(size);
    }
    Ok(out.into_values().collect())
}

/// What one object's dump wrote.
#[derive(Debug)]
pub struct DumpedObject {
    pub shmid: u64,
    pub pages: u64,
}

/// Write `pagemap-shmem-<shmid>.img` and `pages-<pages_id>.img` of `obj`.
pub fn dump_object(
    dir: &Path,
    obj: &ShmemObject,
    pages_id: u64,
    page_size: u64,
) -> Result<DumpedObject, ShmemError> {
    let err = |what, source| ShmemError::Read {
        shmid: obj.shmid,
        what,
        source,
    };
    let img = ImageDir::new(dir);
    let pages_path = dir.join(Kind::Pages.file_name(pages_id));
    let mut pages = crate::images::writer::create_raw(&pages_path)?;
    let mut entries = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    let mut total = 0u64;
    while off < obj.size {
        let data = match rustix::fs::seek(&*obj.fd, SeekFrom::Data(off)) {
            Ok(d) => d,
            // No data at or after `off`.
            Err(Errno::NXIO) => break,
            Err(e) => return Err(err("SEEK_DATA", e)),
        };
        if data >= obj.size {
            break;
        }
        let hole =
            rustix::fs::seek(&*obj.fd, SeekFrom::Hole(data)).map_err(|e| err("SEEK_HOLE", e))?;
        let start = data / page_size * page_size;
        let end = hole.min(obj.size).next_multiple_of(page_size);
        copy_range(&obj.fd, &mut pages, &mut buf, start, end, &pages_path)
            .map_err(|e| err("pread", e))?;
        let nr = (end - start) / page_size;
        entries.extend(crate::images::pagemap::entries(
            start,
            nr,
            pe::PRESENT,
            page_size,
        ));
        total += nr;
        off = end;
    }
    let mut w = img.writer(Kind::ShmemPagemap, obj.shmid)?;
    w.write_message(&pb::PagemapHead {
        pages_id: pages_id as u32,
    })?;
    for e in &entries {
        w.write_message(e)?;
    }
    w.finish()?;
    Ok(DumpedObject {
        shmid: obj.shmid,
        pages: total,
    })
}

/// Copy bytes `[start, end)` of `fd` to the end of `out`. Bytes past the
/// object's end (its last partial page) read as zeros.
fn copy_range(
    fd: &OwnedFd,
    out: &mut File,
    buf: &mut [u8],
    start: u64,
    end: u64,
    path: &Path,
) -> Result<(), Errno> {
    let mut at = start;
    while at < end {
        let want = ((end - at) as usize).min(buf.len());
        let chunk = &mut buf[..want];
        let mut got = 0;
        while got < want {
            match rustix::io::pread(fd, &mut chunk[got..], at + got as u64) {
                Ok(0) => {
                    chunk[got..].fill(0);
                    got = want;
                }
                Ok(n) => got += n,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        out.write_all(chunk).map_err(|e| {
            crate::pr_err!("writing {}: {e}", path.display());
            Errno::from_io_error(&e).unwrap_or(Errno::IO)
        })?;
        at += want as u64;
    }
    Ok(())
}
