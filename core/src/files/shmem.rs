//! Shared memory objects (shared anonymous memory and memfd mappings),
//! both halves: CRIU's `shmem.c`.
//!
//! Dump: their contents do not live in the task's private pages but in
//! a shmem inode, read here through `/proc/PID/map_files/` while the task is
//! frozen. Each object goes to `pagemap-shmem-<shmid>.img` (a
//! `pagemap_head` and `pagemap_entry` runs whose `vaddr` is the offset in
//! the object) and its own `pages-<id>.img`; `shmid` is the inode number, as
//! CRIU chooses it. Holes of the object (found with `SEEK_DATA` /
//! `SEEK_HOLE`, which also see swapped-out shmem pages) stay holes.
//!
//! For a memfd mapping the tool also fills the `memfd_inode_entry` (name,
//! size, seals, owner, mode) that goes to `memfd.img`.
//!
//! Restore (the objects of one task as read and checked by
//! `crate::images::set::shmem`): recreated by the tool before the restorer
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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags, SeekFrom};

use crate::page_server::wire::Iov;
use crate::page_server::{Connection, Target};
use rustix::io::Errno;

use super::FileError;
pub use crate::images::set::shmem::{ShmemImage, index_of};
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
    #[error(transparent)]
    PageServer(#[from] crate::page_server::ClientError),
}

/// The pages of one object: its image, or the page server's socket.
enum PagesOut<'a> {
    File(File),
    Server(&'a Connection),
}

impl Write for PagesOut<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            PagesOut::File(f) => f.write(buf),
            PagesOut::Server(c) => c.stream().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            PagesOut::File(f) => f.flush(),
            PagesOut::Server(c) => c.stream().flush(),
        }
    }
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

/// Where an object's pages go.
pub enum ShmemDest<'a, C: std::ops::Deref<Target = Connection>> {
    /// `pagemap-shmem-<shmid>.img` and `pages-<pages_id>.img` in `dir`.
    Dir { dir: &'a Path, pages_id: u64 },
    /// A page server (`--page-server`).
    Server(C),
}

/// Write `obj`'s pagemap and pages to `dest`.
pub fn dump_object<C: std::ops::Deref<Target = Connection>>(
    dest: ShmemDest<'_, C>,
    obj: &ShmemObject,
    page_size: u64,
) -> Result<DumpedObject, ShmemError> {
    let err = |what, source| ShmemError::Read {
        shmid: obj.shmid,
        what,
        source,
    };
    let target = Target::Shmem(obj.shmid);
    let (dir, pages_id, pages_path, mut pages) = match &dest {
        ShmemDest::Dir { dir, pages_id } => {
            let pages_path = dir.join(Kind::Pages.file_name(*pages_id));
            let file = crate::images::writer::create_raw(&pages_path)?;
            (Some(*dir), *pages_id, pages_path, PagesOut::File(file))
        }
        ShmemDest::Server(conn) => {
            conn.open(target)?;
            (None, 0, "the page server".into(), PagesOut::Server(conn))
        }
    };
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
        let nr = (end - start) / page_size;
        if let PagesOut::Server(conn) = &pages {
            let nr32 = u32::try_from(nr).map_err(|_| err("run too long", Errno::FBIG))?;
            conn.send(
                Iov::add(pe::PRESENT, nr32, start, target.dst_id()),
                "shmem pages",
            )?;
        }
        copy_range(&obj.fd, &mut pages, &mut buf, start, end, &pages_path)
            .map_err(|e| err("pread", e))?;
        entries.extend(crate::images::pagemap::entries(
            start,
            nr,
            pe::PRESENT,
            page_size,
        ));
        total += nr;
        off = end;
    }
    let Some(dir) = dir else {
        return Ok(DumpedObject {
            shmid: obj.shmid,
            pages: total,
        });
    };
    let img = ImageDir::new(dir);
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
    out: &mut impl Write,
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

// The restore half.

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
pub fn create(o: &ShmemImage) -> Result<OwnedFd, FileError> {
    let fd = match &o.memfd {
        Some(m) => {
            let flags = if m.seals == F_SEAL_SEAL {
                // Created without sealing allowed, the kernel sets exactly
                // F_SEAL_SEAL.
                MemfdFlags::CLOEXEC
            } else {
                MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING
            };
            let fd =
                rustix::fs::memfd_create(m.name.as_str(), flags).map_err(|e| FileError::Sys {
                    call: "memfd_create",
                    errno: e,
                })?;
            rustix::fs::ftruncate(&fd, m.size).map_err(|e| FileError::Sys {
                call: "ftruncate",
                errno: e,
            })?;
            fd
        }
        None => anon_shared(o.size)?,
    };
    fill(&fd, o)?;
    if let Some(m) = &o.memfd {
        if let Some(mode) = m.mode {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777)).map_err(|e| {
                FileError::Sys {
                    call: "fchmod (memfd)",
                    errno: e,
                }
            })?;
        }
        // The dumped owner; without the right to chown it stays ours.
        let _ = rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(m.uid)),
            Some(rustix::fs::Gid::from_raw(m.gid)),
        );
        if m.seals != F_SEAL_SEAL && m.seals != 0 {
            rustix::fs::fcntl_add_seals(&fd, SealFlags::from_bits_retain(m.seals)).map_err(
                |e| FileError::Sys {
                    call: "F_ADD_SEALS (memfd)",
                    errno: e,
                },
            )?;
        }
    }
    Ok(fd)
}

/// A new shared anonymous memory object of `size` bytes: map `/dev/zero`
/// shared (which makes one), take a descriptor through map_files, unmap.
fn anon_shared(size: u64) -> Result<OwnedFd, FileError> {
    let zero = rustix::fs::open("/dev/zero", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| FileError::Open {
            path: "/dev/zero".into(),
            errno: e,
        })?;
    let map =
        crate::sys::shared_mapping::SharedMapping::map(&zero, size as usize).map_err(|e| {
            FileError::Sys {
                call: "mmap of /dev/zero (shared anonymous memory)",
                errno: e,
            }
        })?;
    let start = map.as_slice().as_ptr() as u64;
    let path = format!("/proc/self/map_files/{:x}-{:x}", start, start + size);
    let fd = rustix::fs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| FileError::Open { path, errno: e })?;
    drop(map);
    Ok(fd)
}

/// Writes the object's pages at their offsets.
fn fill(fd: &OwnedFd, o: &ShmemImage) -> Result<(), FileError> {
    let Some(path) = &o.pages_path else {
        return Ok(());
    };
    let pages = rustix::fs::open(
        path.as_path(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FileError::Open {
        path: path.display().to_string(),
        errno: e,
    })?;
    let page_size = crate::proc::page_size() as u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut src = 0u64;
    for r in &o.runs {
        let mut dst = r.vaddr;
        let mut left = r.nr_pages * page_size;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            let chunk = &mut buf[..n];
            read_exact_at(&pages, chunk, src).map_err(|e| FileError::Sys {
                call: "reading shmem pages",
                errno: e,
            })?;
            // The last page may lie past a memfd's end: write what fits.
            let fits = o.size.saturating_sub(dst).min(n as u64) as usize;
            write_all_at(fd, &chunk[..fits], dst).map_err(|e| FileError::Sys {
                call: "writing shmem pages",
                errno: e,
            })?;
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
