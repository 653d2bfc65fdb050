//! How a `pagemap_entry` counts its pages. CRIU up to 4.1 has only the
//! 32-bit `nr_pages` (field 2, called `compat_nr_pages` since 4.2, whose
//! 64-bit `nr_pages` is field 5). CRIU 4.2 writes field 5 (with field 2 at
//! 0) and reads either; CRIU 4.1 ignores field 5 and restores no page of
//! such an entry. So entries are written with field 2, split where a run
//! is longer than it can count, and read with field 5 first.

use std::path::Path;

use super::error::{ImageError, Result};
use super::kinds::Kind;
use super::pb::{PagemapEntry, PagemapHead};
use super::reader::ImageReader;

/// One run of pages present in `pages-N.img`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagesRun {
    pub vaddr: u64,
    pub nr_pages: u64,
    /// Byte offset of the run in the pages image.
    pub offset: u64,
}

/// A pagemap image as read: the id of its pages image and its runs, each
/// with its offset there.
#[derive(Debug)]
pub struct Pagemap {
    pub pages_id: u32,
    pub runs: Vec<PagesRun>,
    /// Some run's pages are in a parent image (pre-dump), not in this
    /// pages image: such runs are left out of `runs`.
    pub in_parent: bool,
    /// Those runs (their `offset` is 0: they have none here).
    pub parent_runs: Vec<PagesRun>,
}

/// `PE_PARENT`: the entry's pages are in the parent images.
const PE_PARENT: u32 = 1;

/// Are the entry's pages in the parent images? As CRIU reads it: the
/// `PE_PARENT` flag when the entry has flags (CRIU 3.x and later), else
/// the older `in_parent` field.
pub fn entry_in_parent(e: &PagemapEntry) -> bool {
    match e.flags {
        Some(f) => f & PE_PARENT != 0,
        None => e.in_parent.unwrap_or(false),
    }
}

/// Reads the pagemap image at `path` (a task's `pagemap-PID.img` or a
/// shared memory object's `pagemap-shmem-ID.img`).
pub fn read(path: &Path, page_size: u64) -> Result<Pagemap> {
    let mut r = ImageReader::open(path, Kind::Pagemap)?;
    let head: PagemapHead = r.next_message()?.ok_or_else(|| ImageError::Empty {
        file: path.display().to_string(),
        message: "pagemap head".into(),
    })?;
    let mut pm = Pagemap {
        pages_id: head.pages_id,
        runs: Vec::new(),
        in_parent: false,
        parent_runs: Vec::new(),
    };
    let mut offset = 0u64;
    while let Some(e) = r.next_message::<PagemapEntry>()? {
        let nr = nr_pages(&e);
        if entry_in_parent(&e) {
            pm.in_parent = true;
            pm.parent_runs.push(PagesRun {
                vaddr: e.vaddr,
                nr_pages: nr,
                offset: 0,
            });
            continue;
        }
        pm.runs.push(PagesRun {
            vaddr: e.vaddr,
            nr_pages: nr,
            offset,
        });
        offset = offset.saturating_add(nr.saturating_mul(page_size));
    }
    Ok(pm)
}

/// The pages an entry covers, from whichever field the writer used.
pub fn nr_pages(e: &PagemapEntry) -> u64 {
    e.nr_pages.unwrap_or(u64::from(e.compat_nr_pages))
}

/// Entries for `nr` pages at `vaddr` with `flags`, counted in the field
/// every CRIU reads: one entry unless the run has more than `u32::MAX`
/// pages.
pub fn entries(vaddr: u64, nr: u64, flags: u32, page_size: u64) -> Vec<PagemapEntry> {
    let mut out = Vec::with_capacity(1);
    let (mut vaddr, mut left) = (vaddr, nr);
    while left > 0 {
        let n = left.min(u64::from(u32::MAX));
        out.push(PagemapEntry {
            vaddr,
            compat_nr_pages: n as u32,
            in_parent: None,
            flags: Some(flags),
            nr_pages: None,
        });
        vaddr += n * page_size;
        left -= n;
    }
    out
}

/// Touching runs with equal flags as one run (whatever split them), then
/// written as [`entries`].
pub fn merged(
    runs: impl IntoIterator<Item = (u64, u64, u32)>,
    page_size: u64,
) -> Vec<PagemapEntry> {
    let mut merged: Vec<(u64, u64, u32)> = Vec::new();
    for (vaddr, nr, flags) in runs {
        if let Some(last) = merged.last_mut()
            && last.2 == flags
            && last.0 + last.1 * page_size == vaddr
        {
            last.1 += nr;
            continue;
        }
        merged.push((vaddr, nr, flags));
    }
    merged
        .into_iter()
        .flat_map(|(v, n, f)| entries(v, n, f, page_size))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_counted_in_the_field_every_criu_reads_and_merged() {
        let e = merged([(0x1000, 2, 4), (0x3000, 1, 4), (0x5000, 1, 6)], 0x1000);
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].vaddr, e[0].compat_nr_pages, e[0].nr_pages),
            (0x1000, 3, None)
        );
        assert_eq!(nr_pages(&e[1]), 1);
        // A run longer than field 2 can count is split.
        let big = entries(0, u64::from(u32::MAX) + 5, 4, 0x1000);
        assert_eq!(big.len(), 2);
        assert_eq!(big[1].vaddr, u64::from(u32::MAX) * 0x1000);
        assert_eq!(nr_pages(&big[1]), 5);
        // CRIU 4.2's entries (field 5) read as they are.
        let new = PagemapEntry {
            nr_pages: Some(7),
            ..Default::default()
        };
        assert_eq!(nr_pages(&new), 7);
    }
}
