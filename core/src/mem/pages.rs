//! Choosing the pages to dump with `PAGEMAP_SCAN`.

use std::fs::File;

use super::{PagePolicy, page_policy, pagemap_flags};
use crate::proc::vmas::CollectedVma;
use crate::sys::pagemap_scan::{self, PageRegion, ScanArgs, category};

/// A run of pages to dump: `[start, end)`, with the pagemap flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRange {
    pub start: u64,
    pub end: u64,
    pub flags: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("opening /proc/{pid}/pagemap: {source}")]
    Open { pid: i32, source: std::io::Error },
    #[error("PAGEMAP_SCAN of {start:#x}-{end:#x} in task {pid}: {source}")]
    Scan {
        pid: i32,
        start: u64,
        end: u64,
        source: rustix::io::Errno,
    },
}

/// Regions returned per ioctl.
const REGIONS: usize = 512;

/// The pages of `vmas` to dump, in address order, adjacent runs with equal
/// flags merged.
pub fn pages_to_dump(
    pid: i32,
    vmas: &[CollectedVma],
    task_size: u64,
) -> Result<Vec<PageRange>, ScanError> {
    let pagemap = File::open(format!("/proc/{pid}/pagemap"))
        .map_err(|source| ScanError::Open { pid, source })?;
    let mut out: Vec<PageRange> = Vec::new();
    let mut push = |r: PageRange| match out.last_mut() {
        Some(last) if last.end == r.start && last.flags == r.flags => last.end = r.end,
        _ => out.push(r),
    };
    let mut regions = vec![PageRegion::default(); REGIONS];
    for c in vmas {
        let flags = pagemap_flags(c);
        let (start, end) = (c.vma.start, c.vma.end);
        match page_policy(c, task_size) {
            PagePolicy::Skip => {}
            PagePolicy::Whole => push(PageRange { start, end, flags }),
            PagePolicy::Scan => {
                let mut at = start;
                while at < end {
                    // Present or swapped, and neither the zero page nor a
                    // page-cache page of the file (never written: the file
                    // has it).
                    let args = ScanArgs {
                        start: at,
                        end,
                        category_inverted: category::PFNZERO | category::FILE,
                        category_mask: category::PFNZERO | category::FILE,
                        category_anyof_mask: category::PRESENT | category::SWAPPED,
                        return_mask: category::PRESENT | category::SWAPPED,
                        ..ScanArgs::default()
                    };
                    let res =
                        pagemap_scan::scan(&pagemap, &args, &mut regions).map_err(|source| {
                            ScanError::Scan {
                                pid,
                                start: at,
                                end,
                                source,
                            }
                        })?;
                    for r in &regions[..res.regions] {
                        push(PageRange {
                            start: r.start,
                            end: r.end,
                            flags,
                        });
                    }
                    if res.walk_end <= at {
                        break;
                    }
                    at = res.walk_end;
                }
            }
        }
    }
    Ok(out)
}
