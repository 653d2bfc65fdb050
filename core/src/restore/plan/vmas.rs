//! The plan's VMA step: each VMA the restorer maps, with the file or
//! shared memory object it maps, the page runs to read into them and the
//! advice they get back.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::OFlags;

use super::{MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, TaskRole, high_fd, open_reg};
use crate::blob::restorer_abi::{self as abi, PageRun, RawSyscall, VmaArg};
use crate::files::reg::RegFiles;
use crate::images::pb;
use crate::images::vma::status::VMA_AREA_SYSVIPC;
use crate::restore::RestoreError;
use crate::restore::images::{TaskImages, is_file_vma, is_mapped_vma};

/// Where the task's VMAs come from.
pub(super) struct VmaSources<'a> {
    pub regs: RegFiles<'a>,
    /// The tool's fd of each shared memory object of the task.
    pub shm_fds: &'a [i32],
    pub role: &'a TaskRole,
    pub page_size: u64,
    pub min_fd: i32,
}

/// VMAs and the files they map (`fds` takes the descriptors opened for
/// the task alone).
pub(super) fn vma_args(
    t: &TaskImages,
    src: &VmaSources<'_>,
    fds: &mut Vec<OwnedFd>,
) -> Result<Vec<VmaArg>, RestoreError> {
    let (page_size, min_fd) = (src.page_size, src.min_fd);
    let mut vmas = Vec::new();
    for v in t.mm.vmas.iter().filter(|v| is_mapped_vma(v)) {
        // The first run ending above the VMA's start (runs are sorted).
        let first = t
            .pages
            .partition_point(|r| r.vaddr + r.nr_pages * page_size <= v.start);
        let has_pages = t.pages.get(first).is_some_and(|r| r.vaddr < v.end);
        if v.status & VMA_AREA_SYSVIPC != 0 {
            vmas.push(sysv_vma(v)?);
            continue;
        }
        if let Some(i) = crate::files::shmem::index_of(&t.shmem, v, &t.memfd_files) {
            vmas.push(shmem_vma(t, v, src.shm_fds[i], has_pages, min_fd, fds)?);
            continue;
        }
        let mut fd = -1;
        if is_file_vma(v) {
            let reg = src.regs.get(v.shmid as u32).ok_or_else(|| {
                RestoreError::Unsupported(format!("no file for VMA {:#x}", v.start))
            })?;
            let f = open_reg(&reg, vma_open_mode(v), min_fd)?;
            fd = f.as_raw_fd();
            fds.push(f);
        }
        // A premapped VMA comes read-write from its slot.
        let premapped = src.role.cow.iter().any(|c| c.start == v.start);
        let map_prot = if premapped {
            PROT_READ | PROT_WRITE
        } else if has_pages {
            v.prot | PROT_WRITE
        } else {
            v.prot
        };
        vmas.push(VmaArg {
            start: v.start,
            end: v.end,
            offset: v.pgoff,
            map_prot,
            flags: v.flags,
            fd,
            final_prot: v.prot,
            premapped: u32::from(premapped),
            kind: abi::VMA_MMAP,
        });
    }
    Ok(vmas)
}

/// A SysV shared memory segment attached (`shmid` is its id in the
/// root's IPC namespace, filled before the task attaches it; see
/// [`crate::restore::sysv`]).
fn sysv_vma(v: &pb::VmaEntry) -> Result<VmaArg, RestoreError> {
    let id = i32::try_from(v.shmid).map_err(|_| {
        RestoreError::Unsupported(format!(
            "SysV shared memory at {:#x}: segment id {} out of range",
            v.start, v.shmid
        ))
    })?;
    Ok(VmaArg {
        start: v.start,
        end: v.end,
        map_prot: v.prot,
        fd: id,
        final_prot: v.prot,
        kind: abi::VMA_SHMAT,
        ..VmaArg::default()
    })
}

/// A VMA of a shared memory object (the tool's fd `shm_fd`): the object
/// holds its contents already, so it is mapped as it was. A private
/// mapping of a memfd may have copied-on-write pages of its own in the
/// task's pagemap, read in like a file's.
fn shmem_vma(
    t: &TaskImages,
    v: &pb::VmaEntry,
    shm_fd: i32,
    has_pages: bool,
    min_fd: i32,
    fds: &mut Vec<OwnedFd>,
) -> Result<VmaArg, RestoreError> {
    let fd = match crate::files::shmem::memfd_mapping_mode(v, &t.memfd_files) {
        // The memfd_create'd description: it counts as no writer.
        Some(m) if m != OFlags::RDWR => {
            let f = high_fd(crate::files::memfd::reopen(shm_fd, m)?, min_fd)?;
            let raw = f.as_raw_fd();
            fds.push(f);
            raw
        }
        _ => shm_fd,
    };
    Ok(VmaArg {
        start: v.start,
        end: v.end,
        offset: v.pgoff,
        map_prot: if has_pages {
            v.prot | PROT_WRITE
        } else {
            v.prot
        },
        flags: v.flags & !MAP_ANONYMOUS,
        fd,
        final_prot: v.prot,
        ..VmaArg::default()
    })
}

/// The task's pages image, opened for the restorer at or above `min_fd`.
pub(super) fn open_pages(t: &TaskImages, min_fd: i32) -> Result<OwnedFd, RestoreError> {
    let pages = File::open(&t.pages_path).map_err(|e| {
        RestoreError::Open(
            t.pages_path.display().to_string(),
            rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
        )
    })?;
    high_fd(pages.into(), min_fd)
}

/// The page runs to read, cut at VMA boundaries and limited to the VMAs the
/// restorer maps (the vDSO's dumped pages are skipped), with their offsets
/// in the pages image.
pub(super) fn page_runs(t: &TaskImages, page_size: u64) -> Vec<PageRun> {
    // Both lists are sorted and disjoint (checked when read): one merge.
    let mapped: Vec<&pb::VmaEntry> = t.mm.vmas.iter().filter(|v| is_mapped_vma(v)).collect();
    let mut out: Vec<PageRun> = Vec::new();
    for r in &t.pages {
        let end = r.vaddr + r.nr_pages * page_size;
        let first = mapped.partition_point(|v| v.end <= r.vaddr);
        for v in mapped[first..].iter().take_while(|v| v.start < end) {
            let (s, e) = (r.vaddr.max(v.start), end.min(v.end));
            if s >= e {
                continue;
            }
            let offset = r.offset + (s - r.vaddr);
            // Pieces of one run in adjacent VMAs are read in one go (every
            // VMA with pages is mapped writable until the pages are in).
            match out.last_mut() {
                Some(p) if p.addr + p.len == s && p.offset + p.len == offset => p.len += e - s,
                _ => out.push(PageRun {
                    addr: s,
                    len: e - s,
                    offset,
                }),
            }
        }
    }
    out
}

/// The access mode to open a mapped file with: the one the mapping held
/// it with at dump (`vma_entry.fdflags`, as CRIU reopens it), so that a
/// shared mapping of a file opened read-write can be made writable again
/// and one of a read-only file cannot. Images without it (CRIU before
/// 3.x) get read-write for a writable shared mapping, read-only otherwise.
fn vma_open_mode(v: &pb::VmaEntry) -> OFlags {
    match v.fdflags.map(|f| f & OFlags::ACCMODE.bits()) {
        Some(m) if m == OFlags::RDWR.bits() => OFlags::RDWR,
        Some(m) if m == OFlags::WRONLY.bits() => OFlags::WRONLY,
        Some(_) => OFlags::RDONLY,
        None if v.flags & MAP_SHARED != 0 && v.prot & PROT_WRITE != 0 => OFlags::RDWR,
        None => OFlags::RDONLY,
    }
}

/// The `madvise` calls that give each VMA back its advice (MADV_NOHUGEPAGE,
/// MADV_DONTFORK, ...: `VmaEntry.madv` has bit N set for advice N, as CRIU
/// records it). The restorer makes them right after mapping the VMAs and
/// before reading their pages: with THP `always`, reading pages into a
/// VMA still without its MADV_NOHUGEPAGE would fault in huge pages and
/// fill the holes around them.
pub(super) fn madvise_calls(t: &TaskImages) -> Vec<RawSyscall> {
    let mut calls = Vec::new();
    for v in t.mm.vmas.iter().filter(|v| is_mapped_vma(v)) {
        let madv = v.madv.unwrap_or(0);
        for advice in (0..64).filter(|a| madv & (1u64 << a) != 0) {
            calls.push(RawSyscall {
                nr: criu_arch::nr::MADVISE as u64,
                args: [v.start, v.end - v.start, advice, 0, 0, 0],
            });
        }
    }
    // Guard regions over them, as CRIU's restore_madv_guard_regions: no
    // pages are read there, and those of a file mapping are dropped.
    for g in t.mm.vmas.iter().filter(|v| crate::mem::guards::is_guard(v)) {
        calls.push(RawSyscall {
            nr: criu_arch::nr::MADVISE as u64,
            args: [
                g.start,
                g.end - g.start,
                u64::from(linux_raw_sys::general::MADV_GUARD_INSTALL),
                0,
                0,
                0,
            ],
        });
    }
    calls
}
