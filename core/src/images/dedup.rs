//! `criu dedup` and `--auto-dedup`: once an images directory holds a
//! task's page, the copies of that page in its parent images (and theirs,
//! down the chain) are never read again by a restore from this directory,
//! so their room in the parents' `pages-N.img` is given back by punching
//! holes there (`fallocate(PUNCH_HOLE | KEEP_SIZE)`: offsets stay valid,
//! the parents' pagemaps are untouched). As with CRIU, a parent
//! deduplicated this way can no longer be restored on its own.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::FallocateFlags;

use super::kinds::Kind;
use super::pagemap;
use super::set::chain::PARENT_LINK;

#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    #[error("deduplicating {path}: {source}")]
    Image {
        path: PathBuf,
        source: super::ImageError,
    },
    #[error("deduplicating {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("punching a hole in {path}: {source}")]
    Punch {
        path: PathBuf,
        source: rustix::io::Errno,
    },
}

/// Longest parent chain followed.
const MAX_DEPTH: usize = 64;

/// Deduplicate the parents of every task pagemap in `dir` against it; the
/// bytes given back.
pub fn dedup_dir(dir: &Path, page_size: u64) -> Result<u64, DedupError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DedupError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut pids: Vec<u64> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("pagemap-")?
                .strip_suffix(".img")?
                .parse()
                .ok()
        })
        .collect();
    pids.sort_unstable();
    let mut freed = 0;
    for pid in pids {
        let path = dir.join(Kind::Pagemap.file_name(pid));
        let pm =
            pagemap::read(&path, page_size).map_err(|source| DedupError::Image { path, source })?;
        let mine: Vec<(u64, u64)> = pm
            .runs
            .iter()
            .map(|r| (r.vaddr, r.vaddr + r.nr_pages * page_size))
            .collect();
        freed += punch_in(&dir.join(PARENT_LINK), pid, &mine, page_size, 0)?;
    }
    Ok(freed)
}

/// Punch the pages `[start, end)` of `ranges` (sorted) out of `dir`'s
/// images of task `pid`, and out of its parents' for those it keeps
/// there.
fn punch_in(
    dir: &Path,
    pid: u64,
    ranges: &[(u64, u64)],
    page_size: u64,
    depth: usize,
) -> Result<u64, DedupError> {
    let path = dir.join(Kind::Pagemap.file_name(pid));
    if ranges.is_empty() || depth >= MAX_DEPTH || !path.exists() {
        return Ok(0);
    }
    let pm = pagemap::read(&path, page_size).map_err(|source| DedupError::Image {
        path: path.clone(),
        source,
    })?;
    let pages_path = dir.join(Kind::Pages.file_name(u64::from(pm.pages_id)));
    let pages = File::options()
        .write(true)
        .open(&pages_path)
        .map_err(|source| DedupError::Io {
            path: pages_path.clone(),
            source,
        })?;
    let mut freed = 0;
    for r in &pm.runs {
        let end = r.vaddr + r.nr_pages * page_size;
        for (s, e) in overlaps(ranges, r.vaddr, end) {
            rustix::fs::fallocate(
                &pages,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                r.offset + (s - r.vaddr),
                e - s,
            )
            .map_err(|source| DedupError::Punch {
                path: pages_path.clone(),
                source,
            })?;
            freed += e - s;
        }
    }
    let mut up: Vec<(u64, u64)> = pm
        .parent_runs
        .iter()
        .flat_map(|r| overlaps(ranges, r.vaddr, r.vaddr + r.nr_pages * page_size))
        .collect();
    up.sort_unstable();
    Ok(freed + punch_in(&dir.join(PARENT_LINK), pid, &up, page_size, depth + 1)?)
}

/// The pieces of sorted, disjoint `ranges` inside `[start, end)`.
fn overlaps(ranges: &[(u64, u64)], start: u64, end: u64) -> Vec<(u64, u64)> {
    let first = ranges.partition_point(|r| r.1 <= start);
    ranges[first..]
        .iter()
        .take_while(|r| r.0 < end)
        .map(|r| (r.0.max(start), r.1.min(end)))
        .filter(|(s, e)| s < e)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_are_cut_to_the_run() {
        let r = [(0, 10), (20, 30), (40, 50)];
        assert_eq!(overlaps(&r, 5, 25), [(5, 10), (20, 25)]);
        assert_eq!(overlaps(&r, 10, 20), []);
        assert_eq!(overlaps(&r, 45, 100), [(45, 50)]);
    }
}
