//! Classifying VMAs the way CRIU does (`handle_vma`, `parse_vmflags` in
//! criu/proc_parse.c), into the `status`, `flags`, `madv` and `fdflags`
//! values of `vma_entry` in mm images.

use linux_raw_sys::general::{
    MADV_DONTDUMP, MADV_DONTFORK, MADV_HUGEPAGE, MADV_MERGEABLE, MADV_NOHUGEPAGE, MADV_RANDOM,
    MADV_SEQUENTIAL, MADV_WIPEONFORK, MAP_ANONYMOUS, MAP_DROPPABLE, MAP_GROWSDOWN, MAP_HUGETLB,
    MAP_LOCKED, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_READ, S_IFCHR, S_IFMT,
    S_IFREG,
};

use super::map_files::MapFile;
use super::maps::{SpecialVma, Vma, VmaName};
use super::vm_flags::VmFlags;

/// `vma_entry.status` bits: the image format's (see [`crate::images::vma`]).
pub use crate::images::vma::status;
use status::*;

/// The mapping-type field of mmap flags (`MAP_SHARED`/`MAP_PRIVATE`/
/// `MAP_DROPPABLE`…); the same 0x0f on every arch.
pub const MAP_TYPE: u32 = linux_raw_sys::general::MAP_TYPE;

/// `makedev(1, 5)`: `/dev/zero`, whose shared mappings are anonymous
/// shared memory.
const DEV_ZERO_RDEV: u64 = (1 << 8) | 5;

/// What classification needs to know about the machine and the options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassifyConfig {
    /// `st_dev` of the kernel's internal shmem mount (shared anonymous
    /// memory, memfd, SysV shm), see [`probe_shmem_dev`].
    pub shmem_dev: u64,
    /// `--allow-uprobes`: accept a `[uprobes]` VMA instead of failing.
    pub allow_uprobes: bool,
}

/// The image-facing description of one VMA (the scalar fields of
/// `vma_entry`; `shmid` for file mappings is the file id, which the files
/// layer fills in later).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmaEntryBits {
    pub start: u64,
    pub end: u64,
    pub pgoff: u64,
    pub prot: u32,
    pub flags: u32,
    pub status: u32,
    /// `1 << MADV_*` for each advice in effect.
    pub madv: u64,
    pub fdflags: Option<u32>,
    pub shmid: u64,
}

impl VmaEntryBits {
    /// True when every bit of `mask` is set in `status`.
    pub fn is(&self, mask: u32) -> bool {
        self.status & mask == mask
    }

    /// CRIU's `vma_entry_is_private`: private memory whose pages the dump
    /// saves (regular anonymous or file-private areas below `task_size`,
    /// and AIO rings).
    pub fn is_private(&self, task_size: u64) -> bool {
        (self.is(VMA_AREA_REGULAR)
            && (self.is(VMA_ANON_PRIVATE) || self.is(VMA_FILE_PRIVATE))
            && self.end <= task_size)
            || self.is(VMA_AREA_AIORING)
    }
}

/// A VMA dump cannot handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmaError {
    #[error("unsupported mapping {start:#x}-{end:#x}: {why}")]
    Unsupported {
        start: u64,
        end: u64,
        why: &'static str,
    },
    #[error("can't handle non-regular mapping {start:#x}-{end:#x} (st_mode {mode:#o})")]
    NonRegularFile { start: u64, end: u64, mode: u32 },
    #[error("bogus mapping {start:#x}-{end:#x}: private mapping of shared anonymous memory")]
    Bogus { start: u64, end: u64 },
    #[error("[uprobes] vma at {start:#x} found; use --allow-uprobes to dump it anyway")]
    Uprobes { start: u64 },
    #[error(
        "a memfd_secret mapping {start:#x}-{end:#x}, which cannot be dumped: its memory is \
         readable by the task alone"
    )]
    Secretmem { start: u64, end: u64 },
}

/// Classify one VMA from smaps, given what `map_files/` said about it and
/// the link's access mode (see `MapFilesDir::fdflags`).
pub fn classify(
    vma: &Vma,
    file: &MapFile,
    fdflags: Option<u32>,
    cfg: &ClassifyConfig,
) -> Result<VmaEntryBits, VmaError> {
    let (start, end) = (vma.start, vma.end);
    let mut e = VmaEntryBits {
        start,
        end,
        pgoff: vma.offset,
        prot: vma.prot,
        flags: if vma.shared { MAP_SHARED } else { MAP_PRIVATE },
        fdflags,
        ..VmaEntryBits::default()
    };
    match file {
        MapFile::Socket { ino } => {
            e.status = VMA_AREA_SOCKET | VMA_AREA_REGULAR;
            e.shmid = *ino;
        }
        MapFile::AioRing => e.status = VMA_AREA_AIORING,
        MapFile::Secretmem => return Err(VmaError::Secretmem { start, end }),
        MapFile::NoFile | MapFile::File { .. } => {
            classify_by_name(vma, &mut e, cfg)?;
            classify_backing(vma, file, &mut e, cfg)?;
        }
    }
    apply_vm_flags(vma, &mut e)?;
    Ok(e)
}

fn classify_by_name(vma: &Vma, e: &mut VmaEntryBits, cfg: &ClassifyConfig) -> Result<(), VmaError> {
    let special = match &vma.name {
        VmaName::Special(s) => Some(*s),
        _ => None,
    };
    e.status = match special {
        Some(SpecialVma::Vsyscall | SpecialVma::Vectors) => VMA_AREA_VSYSCALL,
        Some(SpecialVma::Vdso) => {
            let rx = PROT_READ | PROT_EXEC;
            VMA_AREA_REGULAR | if e.prot & rx == rx { VMA_AREA_VDSO } else { 0 }
        }
        Some(SpecialVma::Vvar | SpecialVma::VvarVclock) => {
            VMA_AREA_REGULAR
                | if e.prot & PROT_READ != 0 {
                    VMA_AREA_VVAR
                } else {
                    0
                }
        }
        Some(SpecialVma::Heap) => VMA_AREA_REGULAR | VMA_AREA_HEAP,
        Some(SpecialVma::Uprobes) => {
            if !cfg.allow_uprobes {
                return Err(VmaError::Uprobes { start: vma.start });
            }
            // The kernel owns its contents: tracked, never dumped.
            VMA_AREA_UPROBES
        }
        // `[stack]` is ordinary anonymous memory; `gd` marks it.
        Some(SpecialVma::Stack) | None => VMA_AREA_REGULAR,
    };
    Ok(())
}

fn classify_backing(
    vma: &Vma,
    file: &MapFile,
    e: &mut VmaEntryBits,
    cfg: &ClassifyConfig,
) -> Result<(), VmaError> {
    let (start, end) = (vma.start, vma.end);
    let MapFile::File { id, .. } = file else {
        // No file: anonymous memory. Shared anonymous memory without a
        // map_files link is identified by the inode maps shows.
        if vma.shared {
            e.status |= VMA_ANON_SHARED;
            e.shmid = vma.inode;
        } else {
            e.status |= VMA_ANON_PRIVATE;
        }
        e.flags |= MAP_ANONYMOUS;
        return Ok(());
    };
    let fmt = id.mode & S_IFMT;
    if !(fmt == S_IFREG || (fmt == S_IFCHR && id.rdev == DEV_ZERO_RDEV)) {
        return Err(VmaError::NonRegularFile {
            start,
            end,
            mode: id.mode,
        });
    }
    let path = vma
        .path()
        .map(|p| p.as_os_str().as_encoded_bytes())
        .unwrap_or(b"");
    if id.dev == cfg.shmem_dev {
        if path.starts_with(b"/memfd:") {
            // A memfd is dumped as a file (with its contents in the memfd
            // image), mapped shared or private.
            e.status |= VMA_AREA_MEMFD | file_kind(vma);
            return Ok(());
        }
        // Shared anonymous memory (`/dev/zero (deleted)`) or SysV shm.
        if !vma.shared {
            return Err(VmaError::Bogus { start, end });
        }
        e.flags |= MAP_ANONYMOUS;
        e.status |= VMA_ANON_SHARED;
        e.shmid = id.ino;
        if path.starts_with(b"/SYSV") {
            e.status |= VMA_AREA_SYSVIPC;
        }
        return Ok(());
    }
    e.status |= file_kind(vma);
    Ok(())
}

fn file_kind(vma: &Vma) -> u32 {
    if vma.shared {
        VMA_FILE_SHARED
    } else {
        VMA_FILE_PRIVATE
    }
}

fn apply_vm_flags(vma: &Vma, e: &mut VmaEntryBits) -> Result<(), VmaError> {
    let (start, end) = (vma.start, vma.end);
    let Some(info) = &vma.smaps else {
        return Ok(());
    };
    if info.nonlinear {
        return Err(VmaError::Unsupported {
            start,
            end,
            why: "nonlinear mapping",
        });
    }
    let f = info.vm_flags;
    for (flag, map) in [
        (VmFlags::GROWSDOWN, MAP_GROWSDOWN),
        (VmFlags::LOCKED, MAP_LOCKED),
        (VmFlags::NORESERVE, MAP_NORESERVE),
        (VmFlags::HUGETLB, MAP_HUGETLB),
    ] {
        if f.contains(flag) {
            e.flags |= map;
        }
    }
    for (flag, advice) in [
        (VmFlags::SEQ_READ, MADV_SEQUENTIAL),
        (VmFlags::RAND_READ, MADV_RANDOM),
        (VmFlags::DONTCOPY, MADV_DONTFORK),
        (VmFlags::DONTDUMP, MADV_DONTDUMP),
        (VmFlags::MERGEABLE, MADV_MERGEABLE),
        (VmFlags::HUGEPAGE, MADV_HUGEPAGE),
        (VmFlags::NOHUGEPAGE, MADV_NOHUGEPAGE),
        (VmFlags::WIPEONFORK, MADV_WIPEONFORK),
    ] {
        if f.contains(flag) {
            e.madv |= 1u64 << advice;
        }
    }
    if f.contains(VmFlags::DROPPABLE) {
        // MAP_DROPPABLE is a mapping type of its own, not a modifier.
        e.flags = (e.flags & !MAP_TYPE) | MAP_DROPPABLE;
    }
    if f.contains(VmFlags::SHADOW_STACK) {
        e.status |= VMA_AREA_SHSTK;
    }
    // vmsplice cannot read VM_IO / VM_PFNMAP memory; only the vvar area,
    // which is never dumped, may have them.
    if (f.contains(VmFlags::IO) || f.contains(VmFlags::PFNMAP)) && !e.is(VMA_AREA_VVAR) {
        return Err(VmaError::Unsupported {
            start,
            end,
            why: "VM_IO/VM_PFNMAP mapping",
        });
    }
    Ok(())
}

/// CRIU's guard-page rule (`vma_list_add`): a grows-down VMA is recorded
/// one page lower, to include the guard page the kernel hides, when the
/// previous VMA leaves room for it. `entries` must be in address order.
pub fn add_stack_guard_pages(entries: &mut [VmaEntryBits], page_size: u64) {
    let mut prev_end = 0u64;
    for e in entries {
        let end = e.end;
        if e.flags & MAP_GROWSDOWN != 0 && prev_end < e.start {
            e.start = e.start.saturating_sub(page_size);
        }
        prev_end = end;
    }
}

/// `st_dev` of the kernel's internal shmem mount: a memfd lives there, as do
/// shared anonymous mappings and SysV segments.
pub fn probe_shmem_dev() -> Result<u64, rustix::io::Errno> {
    let fd = rustix::fs::memfd_create("criu-shmem-dev", rustix::fs::MemfdFlags::CLOEXEC)?;
    Ok(rustix::fs::fstat(&fd)?.st_dev)
}

#[cfg(test)]
mod tests;
