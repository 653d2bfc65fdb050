//! Collecting a task's VMAs for dump (CRIU's `collect_mappings` /
//! `parse_smaps`): smaps, then `map_files/` for each VMA, then the
//! classification into `vma_entry` values.

use super::ProcDir;
use super::error::ProcError;
use super::map_files::MapFile;
use super::maps::Vma;
use super::vma_kind::{ClassifyConfig, VmaEntryBits, VmaError, add_stack_guard_pages, classify};

/// One VMA with what dump needs next: the mapped file (if any) and the
/// image values.
#[derive(Debug)]
pub struct CollectedVma {
    pub vma: Vma,
    pub file: MapFile,
    pub entry: VmaEntryBits,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("{path}: {error}")]
    Vma { path: String, error: VmaError },
}

impl ProcDir {
    /// All VMAs of the task, classified; stack VMAs include their guard
    /// page as CRIU records them. Consecutive VMAs of the same file share
    /// one descriptor.
    pub fn collect_vmas(&self, cfg: &ClassifyConfig) -> Result<Vec<CollectedVma>, CollectError> {
        let vmas = self.smaps()?;
        let map_files = self.map_files()?;
        let mut out: Vec<CollectedVma> = Vec::with_capacity(vmas.len());
        for vma in vmas {
            // No file behind it (`00:00 0`: private anonymous memory, heap,
            // stack, special mappings): no map_files entry to look at.
            if (vma.dev_major, vma.dev_minor, vma.inode) == (0, 0, 0) {
                let file = MapFile::NoFile;
                let entry =
                    classify(&vma, &file, None, cfg).map_err(|error| CollectError::Vma {
                        path: self.path_of("smaps"),
                        error,
                    })?;
                out.push(CollectedVma { vma, file, entry });
                continue;
            }
            let same_file_as_prev = out.last().filter(|p| {
                vma.inode != 0
                    && (p.vma.dev_major, p.vma.dev_minor, p.vma.inode)
                        == (vma.dev_major, vma.dev_minor, vma.inode)
                    && matches!(p.file, MapFile::File { .. })
            });
            let file = match same_file_as_prev {
                Some(prev) => prev.file.clone(),
                None => map_files.open(&vma)?,
            };
            let fdflags = map_files.fdflags(&vma)?;
            let entry = classify(&vma, &file, fdflags, cfg).map_err(|error| CollectError::Vma {
                path: self.path_of("smaps"),
                error,
            })?;
            out.push(CollectedVma { vma, file, entry });
        }
        merge_vvar(&mut out);
        let mut entries: Vec<VmaEntryBits> = out.iter().map(|c| c.entry).collect();
        add_stack_guard_pages(&mut entries, super::page_size() as u64);
        for (c, e) in out.iter_mut().zip(entries) {
            c.entry = e;
        }
        Ok(out)
    }
}

/// Adjacent vvar areas as one VMA, as CRIU 4.x records them: Linux 6.13+
/// shows the vvar pages as `[vvar]` and `[vvar_vclock]`, which the vDSO
/// reaches at fixed offsets, so they only ever move together. CRIU's
/// restore compares the one dumped vvar area with its own (both parts);
/// two areas in the image make it take the dumped vDSO for a different
/// one.
fn merge_vvar(vmas: &mut Vec<CollectedVma>) {
    use super::vma_kind::status::VMA_AREA_VVAR;
    let mut out: Vec<CollectedVma> = Vec::with_capacity(vmas.len());
    for c in vmas.drain(..) {
        if let Some(prev) = out.last_mut()
            && prev.entry.is(VMA_AREA_VVAR)
            && c.entry.is(VMA_AREA_VVAR)
            && prev.entry.end == c.entry.start
            && (prev.entry.prot, prev.entry.flags, prev.entry.status)
                == (c.entry.prot, c.entry.flags, c.entry.status)
        {
            prev.entry.end = c.entry.end;
            prev.vma.end = c.vma.end;
            continue;
        }
        out.push(c);
    }
    *vmas = out;
}
