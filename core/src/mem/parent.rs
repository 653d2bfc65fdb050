//! The parent images of an iterative dump (`--prev-images-dir`, linked as
//! `parent` from the images directory, as CRIU links it): which pages of
//! a task they hold, and which pages of this round therefore go into the
//! pagemap as `in_parent` entries (flags `PE_PARENT` alone, as CRIU 4.x
//! writes its holes) instead of into `pages-N.img`.
//!
//! A page goes to the parent when it was not written since the previous
//! round (see [`super::dirty`]) and the parent's pagemap covers it, with
//! its pages or with an `in_parent` entry of its own (restore follows the
//! chain). Everything else is dumped: written pages, and pages the parent
//! lacks (a VMA mapped since, pages a `read`-mode pre-dump could not
//! read).

use std::path::{Path, PathBuf};

use super::PageRange;
use super::pe;
use crate::images::pb::PagemapEntry;
use crate::images::{Kind, pagemap};

pub use crate::images::set::chain::PARENT_LINK;

#[derive(Debug, thiserror::Error)]
pub enum ParentError {
    #[error("parent images {dir}: {source}")]
    Pagemap {
        dir: PathBuf,
        source: crate::images::ImageError,
    },
}

/// The pages a parent holds for one task: sorted, merged `[start, end)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParentPages {
    runs: Vec<(u64, u64)>,
}

impl ParentPages {
    /// What `dir`'s `pagemap-PID.img` covers; `None` when the parent has
    /// no pagemap of the task (a task new since).
    pub fn read(dir: &Path, pid: i32, page_size: u64) -> Result<Option<Self>, ParentError> {
        let path = dir.join(Kind::Pagemap.file_name(pid as u64));
        if !path.exists() {
            return Ok(None);
        }
        let pm = pagemap::read(&path, page_size).map_err(|source| ParentError::Pagemap {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mut all: Vec<(u64, u64)> = pm
            .runs
            .iter()
            .chain(&pm.parent_runs)
            .map(|r| (r.vaddr, r.vaddr + r.nr_pages * page_size))
            .collect();
        Ok(Some(Self::from_runs(&mut all)))
    }

    /// From `[start, end)` runs in any order.
    pub fn from_runs(all: &mut [(u64, u64)]) -> Self {
        all.sort_unstable();
        let mut runs: Vec<(u64, u64)> = Vec::with_capacity(all.len());
        for &(s, e) in all.iter() {
            match runs.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => runs.push((s, e)),
            }
        }
        Self { runs }
    }

    /// The pieces of `[start, end)` the parent holds, in order.
    fn covered(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let first = self.runs.partition_point(|r| r.1 <= start);
        self.runs[first..]
            .iter()
            .take_while(move |r| r.0 < end)
            .map(move |r| (r.0.max(start), r.1.min(end)))
    }
}

/// This round's pages split into those to dump and those left in the
/// parent (`[start, end)` runs), both in address order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub dump: Vec<PageRange>,
    pub in_parent: Vec<(u64, u64)>,
}

/// Split `ranges` against `parent` (no parent: dump everything).
pub fn split(ranges: &[PageRange], parent: Option<&ParentPages>) -> Split {
    let Some(parent) = parent else {
        return Split {
            dump: ranges.to_vec(),
            in_parent: Vec::new(),
        };
    };
    let mut out = Split::default();
    let mut dump = |r: &PageRange, s: u64, e: u64| {
        if s >= e {
            return;
        }
        match out.dump.last_mut() {
            Some(last) if last.end == s && last.flags == r.flags => last.end = e,
            _ => out.dump.push(PageRange {
                start: s,
                end: e,
                ..*r
            }),
        }
    };
    let mut holes: Vec<(u64, u64)> = Vec::new();
    for r in ranges {
        if r.dirty {
            dump(r, r.start, r.end);
            continue;
        }
        let mut at = r.start;
        for (s, e) in parent.covered(r.start, r.end) {
            dump(r, at, s);
            match holes.last_mut() {
                Some(last) if last.1 == s => last.1 = e,
                _ => holes.push((s, e)),
            }
            at = e;
        }
        dump(r, at, r.end);
    }
    out.in_parent = holes;
    out
}

/// `entries` (the dumped pages') and the `in_parent` runs as one pagemap,
/// in address order.
pub fn with_parent_entries(
    entries: Vec<PagemapEntry>,
    in_parent: &[(u64, u64)],
    page_size: u64,
) -> Vec<PagemapEntry> {
    let mut all = entries;
    for &(s, e) in in_parent {
        all.extend(pagemap::entries(
            s,
            (e - s) / page_size,
            pe::PARENT,
            page_size,
        ));
    }
    all.sort_by_key(|e| e.vaddr);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 0x1000;

    fn r(s: u64, e: u64, dirty: bool) -> PageRange {
        PageRange {
            start: s * P,
            end: e * P,
            flags: pe::PRESENT,
            dirty,
        }
    }

    #[test]
    fn clean_pages_the_parent_holds_stay_there() {
        let parent = ParentPages::from_runs(&mut [(2 * P, 6 * P), (8 * P, 9 * P), (5 * P, 7 * P)]);
        assert_eq!(parent.runs, [(2 * P, 7 * P), (8 * P, 9 * P)]);
        let s = split(
            &[r(0, 4, false), r(4, 5, true), r(5, 10, false)],
            Some(&parent),
        );
        // Clean and in the parent: 2-4, 5-7, 8-9. Dirty 4-5 dumped, clean
        // but missing from the parent 0-2, 7-8, 9-10 dumped.
        assert_eq!(
            s.in_parent,
            [(2 * P, 4 * P), (5 * P, 7 * P), (8 * P, 9 * P)]
        );
        let dumped: Vec<(u64, u64)> = s.dump.iter().map(|x| (x.start / P, x.end / P)).collect();
        assert_eq!(dumped, [(0, 2), (4, 5), (7, 8), (9, 10)]);
        assert!(split(&[r(0, 4, false)], None).in_parent.is_empty());
    }

    #[test]
    fn parent_entries_are_flagged_and_sorted() {
        let dumped = pagemap::entries(0, 1, pe::PRESENT, P);
        let all = with_parent_entries(dumped, &[(4 * P, 6 * P)], P);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].vaddr, 4 * P);
        assert_eq!(all[1].flags, Some(pe::PARENT));
        assert!(pagemap::entry_in_parent(&all[1]));
        assert!(!pagemap::entry_in_parent(&all[0]));
    }
}
