//! Copy-on-write sharing between a parent and its children (CRIU's
//! premapped private VMAs, `vma_inherited` and `restore_priv_vma_content`
//! with its page comparison).
//!
//! A dump writes every task's pages, shared or not. A restore that mapped
//! every task's memory afresh would double what a forked server uses. So
//! a private anonymous VMA that a child has with the same range and flags
//! as its parent is built in the parent before the child is forked, and
//! inherited: the child writes only the pages whose dumped contents differ
//! from the parent's and drops those it did not have; every other page
//! stays the parent's, shared until one of them writes it.
//!
//! Before the tool forks the root it reserves one premap area for the
//! tree with a slot for each distinct such range (sorted by address, so
//! that every task's slots lie in the order of its VMAs). The restorer
//! fills a task's slots before it forks its children (`STAGE_PREMAP`) and
//! moves them to their VMAs' addresses once the tool is unmapped.

use std::collections::{BTreeSet, HashMap};

use crate::blob::restorer_abi::{PageRun, Region, Remap};
use crate::images::pb;
use crate::proc::vma_kind::status::{VMA_ANON_PRIVATE, VMA_AREA_SHSTK};

use super::RestoreError;
use super::images::{TaskImages, is_file_vma, is_mapped_vma};
use super::layout::SelfMaps;
use crate::blob::bootstrap::Reservation;

/// The only `mmap` flags a slot is made with: a VMA with others
/// (`MAP_NORESERVE`, `MAP_LOCKED`, `MAP_GROWSDOWN`...) is mapped on its own.
const PLAIN: u32 = linux_raw_sys::general::MAP_PRIVATE | linux_raw_sys::general::MAP_ANONYMOUS;
/// Advice (bit N of `VmaEntry.madv`: advice N) under which a fork does
/// not give the child the parent's pages.
const NOT_INHERITED: u64 =
    (1 << linux_raw_sys::general::MADV_DONTFORK) | (1 << linux_raw_sys::general::MADV_WIPEONFORK);

/// May this VMA be built in the premap area and handed down by fork?
fn eligible(t: &TaskImages, v: &pb::VmaEntry) -> bool {
    is_mapped_vma(v)
        && v.status & VMA_ANON_PRIVATE != 0
        && v.status & VMA_AREA_SHSTK == 0
        && !is_file_vma(v)
        && v.flags & !PLAIN == 0
        && v.madv.unwrap_or(0) & NOT_INHERITED == 0
        && crate::files::shmem::index_of(&t.shmem, v, &t.memfd_files).is_none()
}

/// One VMA of a task that lives in a premap slot first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CowVma {
    pub start: u64,
    pub end: u64,
    /// The slot's address.
    pub slot: u64,
    /// The slot comes from the parent, with the parent's contents.
    pub inherited: bool,
}

/// The tree's premap area: its size, and each task's slots as offsets
/// into it (made addresses by [`Premap::place`]).
#[derive(Debug, Default)]
pub struct Premap {
    pub len: u64,
    pub tasks: HashMap<i32, Vec<CowVma>>,
}

/// Which VMAs of which task go through the premap area.
pub fn plan(alive: &[&TaskImages]) -> Premap {
    let by_pid: HashMap<u32, &TaskImages> = alive.iter().map(|t| (t.pstree.pid, *t)).collect();
    // (task, VMA start) -> inherited from its parent.
    let mut marks: HashMap<(u32, u64), bool> = HashMap::new();
    for t in alive {
        let Some(parent) = by_pid.get(&t.pstree.ppid) else {
            continue;
        };
        for v in t.mm.vmas.iter().filter(|v| eligible(t, v)) {
            let same = parent.mm.vmas.iter().any(|p| {
                p.start == v.start && p.end == v.end && p.flags == v.flags && eligible(parent, p)
            });
            if same {
                marks.insert((t.pstree.pid, v.start), true);
                marks.entry((parent.pstree.pid, v.start)).or_insert(false);
            }
        }
    }
    let ranges: BTreeSet<(u64, u64)> = marks
        .keys()
        .map(|&(pid, start)| {
            let v = by_pid[&pid].mm.vmas.iter().find(|v| v.start == start);
            (start, v.map_or(start, |v| v.end))
        })
        .collect();
    let mut slot_of = HashMap::new();
    let mut len = 0;
    for &(s, e) in &ranges {
        slot_of.insert((s, e), len);
        len += e - s;
    }
    let mut tasks: HashMap<i32, Vec<CowVma>> = HashMap::new();
    for (&(pid, start), &inherited) in &marks {
        let Some(v) = by_pid[&pid].mm.vmas.iter().find(|v| v.start == start) else {
            continue;
        };
        tasks.entry(pid as i32).or_default().push(CowVma {
            start,
            end: v.end,
            slot: slot_of[&(start, v.end)],
            inherited,
        });
    }
    for list in tasks.values_mut() {
        list.sort_unstable_by_key(|c| c.start);
    }
    Premap { len, tasks }
}

/// Reserves the tree's premap area of `len` bytes in the tool where no
/// VMA of any task of the tree lies: where the kernel puts it, unless
/// that overlaps one, else in the highest free gap below. A slot inside
/// a VMA's range would be in the way of the moves that put the slots in
/// place (mremap refuses to move a slot onto a range overlapping it, and
/// moving one slot onto its VMA would replace another slot lying there).
pub fn reserve(len: u64, alive: &[&TaskImages], page: u64) -> Result<Reservation, RestoreError> {
    let sys = |e| RestoreError::Sys("mmap(premap area)", e);
    let first = Reservation::map(len).map_err(sys)?;
    let vmas = || alive.iter().flat_map(|t| t.mm.vmas.iter());
    if len == 0 || !vmas().any(|v| v.start < first.base + len && first.base < v.end) {
        return Ok(first);
    }
    let mut busy = SelfMaps::read()?.all;
    busy.extend(vmas().map(|v| (v.start, v.end)));
    let at = SelfMaps::free_gap(&busy, len, first.base, page).ok_or_else(|| {
        RestoreError::Unsupported(format!(
            "no free place of {len} bytes for the premap area apart from the tree's memory"
        ))
    })?;
    crate::pr_debug!(
        "premap area {:#x}+{len:#x} overlapped the tree's memory: moved to {at:#x}",
        first.base
    );
    drop(first);
    Reservation::at(at, len).map_err(sys)
}

impl Premap {
    /// The slots as addresses in the area reserved at `base`.
    pub fn place(&mut self, base: u64) {
        for c in self.tasks.values_mut().flatten() {
            c.slot += base;
        }
    }
}

/// A task's share of the premap work, as restorer arrays.
#[derive(Debug, Default)]
pub struct TaskCow {
    pub unmap: Vec<Region>,
    pub maps: Vec<Region>,
    pub fill: Vec<PageRun>,
    pub compare: Vec<PageRun>,
    pub discard: Vec<Region>,
    pub moves: Vec<Remap>,
}

/// What task `vmas` (its slots, placed) does with the area
/// `[area, area + area_len)`, given its page runs at their VMA addresses.
/// The runs that go to slots are taken out of `runs`.
pub fn task_arrays(vmas: &[CowVma], area: u64, area_len: u64, runs: &mut Vec<PageRun>) -> TaskCow {
    let mut out = TaskCow::default();
    if area_len == 0 {
        return out;
    }
    // Free what this task does not use (its parent's other slots, or the
    // reservation itself in the root).
    let mut at = area;
    for c in vmas {
        if c.slot > at {
            out.unmap.push(Region {
                start: at,
                end: c.slot,
            });
        }
        at = c.slot + (c.end - c.start);
    }
    if area + area_len > at {
        out.unmap.push(Region {
            start: at,
            end: area + area_len,
        });
    }
    for c in vmas {
        let slot = |addr: u64| c.slot + (addr - c.start);
        let mine: Vec<PageRun> = take_within(runs, c.start, c.end)
            .into_iter()
            .map(|r| PageRun {
                addr: slot(r.addr),
                ..r
            })
            .collect();
        if c.inherited {
            // The holes between the task's runs: pages it did not have.
            let mut hole = c.slot;
            for r in &mine {
                if r.addr > hole {
                    out.discard.push(Region {
                        start: hole,
                        end: r.addr,
                    });
                }
                hole = hole.max(r.addr + r.len);
            }
            let end = slot(c.end);
            if end > hole {
                out.discard.push(Region { start: hole, end });
            }
            out.compare.extend(mine);
        } else {
            out.maps.push(Region {
                start: c.slot,
                end: slot(c.end),
            });
            out.fill.extend(mine);
        }
    }
    out.moves = moves(vmas);
    out
}

/// Take out of `runs` the parts that lie in `[start, end)`. A run may
/// span adjacent VMAs (a dump merges contiguous pages into one pagemap
/// entry): it is cut at the bounds, the parts outside stay in `runs`
/// (their slots, if any, need not be adjacent to this one).
fn take_within(runs: &mut Vec<PageRun>, start: u64, end: u64) -> Vec<PageRun> {
    let mut mine = Vec::new();
    let mut rest = Vec::with_capacity(runs.len());
    let part = |r: &PageRun, lo: u64, hi: u64| PageRun {
        addr: lo,
        len: hi - lo,
        offset: r.offset + (lo - r.addr),
    };
    for r in runs.drain(..) {
        let r_end = r.addr + r.len;
        if r_end <= start || r.addr >= end {
            rest.push(r);
            continue;
        }
        if r.addr < start {
            rest.push(part(&r, r.addr, start));
        }
        mine.push(part(&r, r.addr.max(start), r_end.min(end)));
        if r_end > end {
            rest.push(part(&r, end, r_end));
        }
    }
    *runs = rest;
    mine
}

/// `regions` (at most two) less `[lo, hi)`: the unmap list of a task
/// that keeps the premap area (empty entries are skipped by the restorer).
pub fn except(regions: &[Region; 2], (lo, hi): (u64, u64)) -> [Region; 4] {
    let mut out = [Region::default(); 4];
    for (i, r) in regions.iter().enumerate() {
        if hi <= lo || r.end <= lo || hi <= r.start {
            out[2 * i] = *r;
            continue;
        }
        out[2 * i] = Region {
            start: r.start,
            end: lo.max(r.start),
        };
        out[2 * i + 1] = Region {
            start: hi.min(r.end),
            end: r.end,
        };
    }
    out
}

/// Slot-to-VMA moves in an order in which none lands on a slot not yet
/// moved: the slots lie in the order of the VMAs, so those that move down
/// go first, lowest first, then those that move up, highest first.
fn moves(vmas: &[CowVma]) -> Vec<Remap> {
    let remap = |c: &CowVma| Remap {
        from: c.slot,
        to: c.start,
        len: c.end - c.start,
    };
    let mut out: Vec<Remap> = vmas
        .iter()
        .filter(|c| c.start <= c.slot)
        .map(remap)
        .collect();
    out.extend(vmas.iter().rev().filter(|c| c.start > c.slot).map(remap));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cow(start: u64, end: u64, slot: u64, inherited: bool) -> CowVma {
        CowVma {
            start,
            end,
            slot,
            inherited,
        }
    }

    #[test]
    fn moves_never_land_on_a_slot_still_to_move() {
        // Slots packed at 0x5000; VMAs on both sides of the area.
        let vmas = [
            cow(0x1000, 0x3000, 0x5000, false),
            cow(0x4000, 0x6000, 0x7000, false),
            cow(0x9000, 0xa000, 0x9000, false),
            cow(0xc000, 0xd000, 0xa000, false),
            cow(0xe000, 0x10000, 0xb000, false),
        ];
        let list = moves(&vmas);
        assert_eq!(list.len(), vmas.len());
        let mut pending: Vec<(u64, u64)> = vmas.iter().map(|c| (c.slot, c.end - c.start)).collect();
        for m in &list {
            pending.retain(|&(s, _)| s != m.from);
            for &(s, l) in &pending {
                assert!(
                    m.to + m.len <= s || s + l <= m.to,
                    "{m:x?} hits slot {s:#x}"
                );
            }
        }
    }

    #[test]
    fn an_inherited_slot_compares_its_runs_and_drops_its_holes() {
        let vmas = [cow(0x10000, 0x18000, 0x100000, true)];
        let mut runs = vec![
            PageRun {
                addr: 0x11000,
                len: 0x2000,
                offset: 0,
            },
            PageRun {
                addr: 0x20000,
                len: 0x1000,
                offset: 0x2000,
            },
        ];
        let t = task_arrays(&vmas, 0x100000, 0x10000, &mut runs);
        assert_eq!(runs.len(), 1, "the run outside the slot stays");
        assert_eq!(t.compare[0].addr, 0x101000);
        assert_eq!(
            t.discard,
            [
                Region {
                    start: 0x100000,
                    end: 0x101000
                },
                Region {
                    start: 0x103000,
                    end: 0x108000
                }
            ]
        );
        assert_eq!(
            t.unmap,
            [Region {
                start: 0x108000,
                end: 0x110000
            }]
        );
        assert!(t.maps.is_empty() && t.fill.is_empty());
    }

    #[test]
    fn a_run_spanning_two_vmas_is_cut_at_their_bound() {
        // Two adjacent VMAs whose slots are not adjacent (another range
        // lies between them in the area), one dumped run over both.
        let vmas = [
            cow(0x10000, 0x14000, 0x100000, true),
            cow(0x14000, 0x15000, 0x108000, false),
        ];
        let mut runs = vec![
            PageRun {
                addr: 0xf000,
                len: 0x6000,
                offset: 0x1000,
            },
            PageRun {
                addr: 0x20000,
                len: 0x1000,
                offset: 0x8000,
            },
        ];
        let t = task_arrays(&vmas, 0x100000, 0x10000, &mut runs);
        assert_eq!(
            t.compare,
            [PageRun {
                addr: 0x100000,
                len: 0x4000,
                offset: 0x2000
            }]
        );
        assert_eq!(
            t.fill,
            [PageRun {
                addr: 0x108000,
                len: 0x1000,
                offset: 0x6000
            }]
        );
        // The page before the first VMA and the run elsewhere stay.
        assert_eq!(
            runs,
            [
                PageRun {
                    addr: 0xf000,
                    len: 0x1000,
                    offset: 0x1000
                },
                PageRun {
                    addr: 0x20000,
                    len: 0x1000,
                    offset: 0x8000
                }
            ]
        );
    }
}
