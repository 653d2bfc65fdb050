//! The memory of a core file: which part of each VMA goes in (as
//! CRIU's `criu-coredump` decides) and where each page comes from: the
//! task's pages image, the pages of the shared memory object it maps, the
//! mapped file for pages never dumped (as upstream does), or zeros (left
//! as holes of a sparse file).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::CoredumpError;
use crate::images::pb;
use crate::images::set::TaskImages;
use crate::images::set::shmem::index_of;
use crate::images::vma::status::*;
use crate::images::vma::{PagesRun, is_file_vma};

use linux_raw_sys::general::{PROT_EXEC, PROT_READ, PROT_WRITE};
use object::elf::{PF_R, PF_W, PF_X};

/// How many bytes of VMA `v` the core file holds (CRIU's rule): all of
/// the vDSO, vvar and vsyscall areas, none of an inaccessible one, the
/// first page of code (its file holds the rest), all of other
/// anonymous or file memory, none of the rest.
pub fn dump_size(v: &pb::VmaEntry, page_size: u64) -> u64 {
    let len = v.end - v.start;
    if v.status & (VMA_AREA_VVAR | VMA_AREA_VSYSCALL | VMA_AREA_VDSO) != 0 {
        len
    } else if v.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 {
        0
    } else if v.prot & PROT_READ != 0 && v.prot & PROT_EXEC != 0 {
        page_size.min(len)
    } else if v.status & (VMA_ANON_SHARED | VMA_FILE_SHARED | VMA_ANON_PRIVATE | VMA_FILE_PRIVATE)
        != 0
    {
        len
    } else {
        0
    }
}

/// `p_flags` of VMA `v`'s segment.
pub fn segment_flags(v: &pb::VmaEntry) -> u32 {
    let mut f = 0;
    if v.prot & PROT_READ != 0 {
        f |= PF_R;
    }
    if v.prot & PROT_WRITE != 0 {
        f |= PF_W;
    }
    if v.prot & PROT_EXEC != 0 {
        f |= PF_X;
    }
    f
}

/// A task's memory as the images hold it, read page by page.
pub struct Memory<'a> {
    task: &'a TaskImages,
    page_size: u64,
    pages: Option<File>,
    /// Mapped files by `files.img` id, opened when first needed (`None`:
    /// not there, its pages read as zeros).
    files: HashMap<u64, Option<File>>,
    /// Pages images of shared memory objects.
    shmem_pages: HashMap<PathBuf, File>,
}

fn io(path: &Path, source: std::io::Error) -> CoredumpError {
    CoredumpError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The run of `runs` (sorted, disjoint) holding `addr`, and the offset of
/// `addr` in the pages image.
fn find(runs: &[PagesRun], addr: u64, page_size: u64) -> Option<u64> {
    let i = runs.partition_point(|r| r.vaddr <= addr).checked_sub(1)?;
    let r = &runs[i];
    let off = addr - r.vaddr;
    (off / page_size < r.nr_pages).then(|| r.offset + off)
}

/// Opens `name` for reading if it is a regular file: an image may name a
/// FIFO or a device, which must neither block nor be read.
fn open_regular(name: &str) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(name)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// The first address at or after `addr` that `runs` (sorted, disjoint)
/// hold.
fn next_in_runs(runs: &[PagesRun], addr: u64, page_size: u64) -> Option<u64> {
    let end_of = |r: &PagesRun| r.vaddr.saturating_add(r.nr_pages.saturating_mul(page_size));
    let i = runs.partition_point(|r| end_of(r) <= addr);
    runs.get(i).map(|r| r.vaddr.max(addr))
}

impl<'a> Memory<'a> {
    pub fn new(task: &'a TaskImages, page_size: u64) -> Result<Self, CoredumpError> {
        let pages = if task.pages.is_empty() {
            None
        } else {
            Some(File::open(&task.pages_path).map_err(|e| io(&task.pages_path, e))?)
        };
        Ok(Memory {
            task,
            page_size,
            pages,
            files: HashMap::new(),
            shmem_pages: HashMap::new(),
        })
    }

    /// Reads the page at `addr` of VMA `v` into `buf` (one page); false if
    /// it is all zeros as far as the images know (left out of the file).
    pub fn page(
        &mut self,
        v: &pb::VmaEntry,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<bool, CoredumpError> {
        let ps = self.page_size;
        if v.status & (VMA_AREA_VVAR | VMA_AREA_VSYSCALL) != 0 {
            // Not readable from user space; CRIU writes zeros too.
            return Ok(false);
        }
        if let Some(off) = find(&self.task.pages, addr, ps)
            && let Some(f) = &self.pages
        {
            f.read_exact_at(buf, off)
                .map_err(|e| io(&self.task.pages_path, e))?;
            return Ok(true);
        }
        let in_object = v.pgoff + (addr - v.start);
        if let Some(i) = index_of(&self.task.shmem, v, &self.task.memfd_files) {
            let obj = &self.task.shmem[i];
            let (Some(off), Some(path)) = (find(&obj.runs, in_object, ps), &obj.pages_path) else {
                return Ok(false);
            };
            let f = match self.shmem_pages.get(path) {
                Some(f) => f,
                None => {
                    let f = File::open(path).map_err(|e| io(path, e))?;
                    self.shmem_pages.entry(path.clone()).or_insert(f)
                }
            };
            f.read_exact_at(buf, off).map_err(|e| io(path, e))?;
            return Ok(true);
        }
        if is_file_vma(v) {
            return Ok(self.file_page(v, in_object, buf));
        }
        Ok(false)
    }

    /// The first page at or after `addr` (below `end`, in VMA `v`) that
    /// may hold data: what the images know to be zeros is skipped without
    /// a look, so a huge VMA with few pages costs only those pages.
    pub fn next_data(&mut self, v: &pb::VmaEntry, addr: u64, end: u64) -> Option<u64> {
        let ps = self.page_size;
        if v.status & (VMA_AREA_VVAR | VMA_AREA_VSYSCALL) != 0 || addr >= end {
            return None;
        }
        let mut best = next_in_runs(&self.task.pages, addr, ps);
        if let Some(i) = index_of(&self.task.shmem, v, &self.task.memfd_files) {
            // The object's runs count from its start; the VMA shows it
            // from `pgoff` on.
            let in_object = v.pgoff + (addr - v.start);
            let next = next_in_runs(&self.task.shmem[i].runs, in_object, ps)
                .map(|o| (o - v.pgoff).saturating_add(v.start));
            best = match (best, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        } else if is_file_vma(v) {
            let len = self
                .file(v)
                .and_then(|f| f.metadata().ok())
                .map_or(0, |m| m.len());
            if v.pgoff + (addr - v.start) < len {
                best = Some(addr);
            }
        }
        best.filter(|&a| a < end)
    }

    /// The file VMA `v` maps, opened when first needed.
    fn file(&mut self, v: &pb::VmaEntry) -> Option<&File> {
        let task = self.task;
        self.files
            .entry(v.shmid)
            .or_insert_with(|| {
                let name = &task.reg_files.get(&(v.shmid as u32))?.name;
                match open_regular(name) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        crate::pr_warn!(
                            "{name}: {e}: its pages that were not dumped are zeros in the core file"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    /// A page never dumped of a file mapping: the file's contents at
    /// `off`, zeros past its end or if the file is not there.
    fn file_page(&mut self, v: &pb::VmaEntry, off: u64, buf: &mut [u8]) -> bool {
        let Some(f) = self.file(v) else { return false };
        let mut got = 0;
        while got < buf.len() {
            match f.read_at(&mut buf[got..], off + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        buf[got..].fill(0);
        got > 0
    }

    /// `len` bytes at `addr` (within one VMA, else as far as it goes),
    /// zeros where the images have nothing: the command line.
    pub fn read(&mut self, addr: u64, len: u64) -> Result<Vec<u8>, CoredumpError> {
        let ps = self.page_size;
        let task = self.task;
        let vmas = &task.mm.vmas;
        let Some(v) = vmas
            .iter()
            .find(|v| v.start <= addr && addr < v.end && v.status & VMA_AREA_GUARD == 0)
        else {
            return Ok(Vec::new());
        };
        let end = addr.saturating_add(len).min(v.end);
        let mut out = Vec::with_capacity((end - addr) as usize);
        let mut page = vec![0u8; ps as usize];
        let mut at = addr;
        while at < end {
            let base = at - at % ps;
            if !self.page(v, base, &mut page)? {
                page.fill(0);
            }
            let from = (at - base) as usize;
            let to = ((end - base).min(ps)) as usize;
            out.extend_from_slice(&page[from..to]);
            at = base + ps;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vma(prot: u32, status: u32) -> pb::VmaEntry {
        pb::VmaEntry {
            start: 0x10000,
            end: 0x14000,
            prot,
            status,
            ..Default::default()
        }
    }

    #[test]
    fn what_goes_into_the_core_file() {
        let ps = 0x1000;
        let anon = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
        assert_eq!(dump_size(&vma(PROT_READ | PROT_WRITE, anon), ps), 0x4000);
        assert_eq!(dump_size(&vma(0, anon), ps), 0);
        assert_eq!(
            dump_size(&vma(PROT_READ | PROT_EXEC, VMA_FILE_PRIVATE), ps),
            ps
        );
        assert_eq!(dump_size(&vma(PROT_READ, VMA_AREA_VVAR), ps), 0x4000);
        assert_eq!(dump_size(&vma(PROT_READ, VMA_AREA_SOCKET), ps), 0);
        assert_eq!(
            segment_flags(&vma(PROT_READ | PROT_EXEC, anon)),
            PF_R | PF_X
        );
    }

    #[test]
    fn runs_are_found_by_address() {
        let runs = [
            PagesRun {
                vaddr: 0x1000,
                nr_pages: 2,
                offset: 0,
            },
            PagesRun {
                vaddr: 0x8000,
                nr_pages: 1,
                offset: 0x2000,
            },
        ];
        assert_eq!(find(&runs, 0x2000, 0x1000), Some(0x1000));
        assert_eq!(find(&runs, 0x3000, 0x1000), None);
        assert_eq!(find(&runs, 0x8000, 0x1000), Some(0x2000));
        assert_eq!(find(&runs, 0x0, 0x1000), None);
        assert_eq!(next_in_runs(&runs, 0x0, 0x1000), Some(0x1000));
        assert_eq!(next_in_runs(&runs, 0x2000, 0x1000), Some(0x2000));
        assert_eq!(next_in_runs(&runs, 0x3000, 0x1000), Some(0x8000));
        assert_eq!(next_in_runs(&runs, 0x9000, 0x1000), None);
    }
}
