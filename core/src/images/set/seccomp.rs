//! `seccomp.img` and the per-thread seccomp fields of the core images,
//! resolved into each thread's mode and filter list.
//!
//! The layout is CRIU's (`criu/seccomp.c`): the image holds every filter
//! of the tree once per thread that carries a chain of its own; a
//! thread's `thread_core.seccomp_filter` names the index of its *oldest*
//! filter, and each filter's `prev` names the next one to install after
//! it (the newest has none). Installing along that walk rebuilds the
//! chain in the kernel's order. A thread whose filters came from a
//! sibling's `SECCOMP_FILTER_FLAG_TSYNC` records no mode: the sibling's
//! filters carry the flag and give it them again.

use super::super::check::{CheckError, invalid};
use super::super::kinds::Kind;
use super::super::pb;
use super::super::typed::ImageDir;

/// `SECCOMP_MODE_*`.
pub const MODE_DISABLED: u32 = 0;
pub const MODE_STRICT: u32 = 1;
pub const MODE_FILTER: u32 = 2;

/// Size of one `struct sock_filter`.
pub const INSN_SIZE: usize = 8;
/// The kernel's `BPF_MAXINSNS`: the longest filter it takes.
pub const MAX_INSNS: usize = 4096;

/// One classic-BPF filter: its instructions as the kernel gave them
/// (native byte order) and its `SECCOMP_FILTER_FLAG_*` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub insns: Vec<u8>,
    pub flags: u32,
}

/// A thread's seccomp state: its mode and, in filter mode, its filters
/// in the order to install them (oldest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadSeccomp {
    pub mode: u32,
    pub filters: Vec<Filter>,
}

/// The filters of `seccomp.img` (none if the image is absent or empty).
pub(super) fn read_filters(dir: &ImageDir) -> Result<Vec<pb::SeccompFilter>, CheckError> {
    if !dir.path(Kind::Seccomp, 0).exists() {
        return Ok(Vec::new());
    }
    let entries = dir.read_all::<pb::SeccompEntry>(Kind::Seccomp, 0)?;
    Ok(entries
        .into_iter()
        .flat_map(|e| e.seccomp_filters)
        .collect())
}

/// The seccomp state `core` (of thread `tid`, from image `file`) records,
/// its filters taken from `filters` (`seccomp.img`). Older images keep
/// the leader's in the task core (`old_seccomp_*`).
pub(super) fn thread_state(
    core: &pb::CoreEntry,
    filters: &[pb::SeccompFilter],
    tid: u32,
    file: &str,
) -> Result<ThreadSeccomp, CheckError> {
    let tc = core.thread_core.as_ref();
    let old = core.tc.as_ref();
    let (mode, index) = match tc.and_then(|t| t.seccomp_mode) {
        Some(m) => (m, tc.and_then(|t| t.seccomp_filter)),
        None => (
            old.and_then(|t| t.old_seccomp_mode).unwrap_or(0),
            old.and_then(|t| t.old_seccomp_filter),
        ),
    };
    let mode = u32::try_from(mode).unwrap_or(u32::MAX);
    match mode {
        MODE_DISABLED | MODE_STRICT => Ok(ThreadSeccomp {
            mode,
            filters: Vec::new(),
        }),
        MODE_FILTER => {
            let index = index.ok_or_else(|| {
                invalid(
                    file,
                    format!("thread {tid} is in seccomp filter mode but names no filter"),
                )
            })?;
            Ok(ThreadSeccomp {
                mode,
                filters: chain(filters, index, tid, file)?,
            })
        }
        m => Err(invalid(
            file,
            format!("thread {tid}: unknown seccomp mode {m}"),
        )),
    }
}

/// The filters from `index` along the `prev` links, checked.
fn chain(
    filters: &[pb::SeccompFilter],
    index: u32,
    tid: u32,
    file: &str,
) -> Result<Vec<Filter>, CheckError> {
    let bad = |what: String| {
        invalid(
            format!("{file} / seccomp.img"),
            format!("thread {tid}: {what}"),
        )
    };
    let mut out = Vec::new();
    let mut at = Some(index);
    while let Some(i) = at {
        // Each filter at most once: a longer walk is a loop.
        if out.len() >= filters.len() {
            return Err(bad(format!("the filter chain loops (at index {i})")));
        }
        let f = filters.get(i as usize).ok_or_else(|| {
            bad(format!(
                "filter index {i} is beyond the {} filters of seccomp.img",
                filters.len()
            ))
        })?;
        let n = f.filter.len();
        if n == 0 || !n.is_multiple_of(INSN_SIZE) || n / INSN_SIZE > MAX_INSNS {
            return Err(bad(format!(
                "filter {i} is {n} bytes, not 1 to {MAX_INSNS} instructions of {INSN_SIZE} bytes"
            )));
        }
        out.push(Filter {
            insns: f.filter.clone(),
            flags: f.flags.unwrap_or(0),
        });
        at = f.prev;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(byte: u8, prev: Option<u32>) -> pb::SeccompFilter {
        pb::SeccompFilter {
            filter: vec![byte; 8],
            prev,
            flags: Some(u32::from(byte)),
        }
    }

    fn core(mode: Option<i32>, index: Option<u32>) -> pb::CoreEntry {
        pb::CoreEntry {
            thread_core: Some(pb::ThreadCoreEntry {
                seccomp_mode: mode,
                seccomp_filter: index,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_chain_is_walked_from_the_oldest_along_prev() {
        // As CRIU writes it: newest first without prev, each older one
        // naming the one written before it; the thread names the oldest.
        let img = [filter(3, None), filter(2, Some(0)), filter(1, Some(1))];
        let s = thread_state(&core(Some(2), Some(2)), &img, 7, "core-7.img").unwrap();
        assert_eq!(s.mode, MODE_FILTER);
        let order: Vec<u32> = s.filters.iter().map(|f| f.flags).collect();
        assert_eq!(order, [1, 2, 3]);
        let none = thread_state(&core(None, None), &img, 7, "core-7.img").unwrap();
        assert_eq!(none, ThreadSeccomp::default());
        let strict = thread_state(&core(Some(1), None), &img, 7, "core-7.img").unwrap();
        assert_eq!((strict.mode, strict.filters.len()), (MODE_STRICT, 0));
    }

    #[test]
    fn bad_chains_are_refused_by_name() {
        let what = |img: &[pb::SeccompFilter], c| {
            thread_state(&c, img, 7, "core-7.img")
                .unwrap_err()
                .to_string()
        };
        let looped = [filter(1, Some(1)), filter(2, Some(0))];
        assert!(what(&looped, core(Some(2), Some(0))).contains("loops"));
        assert!(what(&looped, core(Some(2), Some(5))).contains("beyond the 2 filters"));
        assert!(what(&looped, core(Some(2), None)).contains("names no filter"));
        assert!(what(&looped, core(Some(9), None)).contains("unknown seccomp mode 9"));
        let short = [pb::SeccompFilter {
            filter: vec![0; 12],
            prev: None,
            flags: None,
        }];
        assert!(what(&short, core(Some(2), Some(0))).contains("12 bytes"));
    }
}
