//! The tool's own address space (from `/proc/self/maps`) as far as restore
//! cares: what to unmap in the child, where the runtime vDSO and vvar are,
//! and a bootstrap address free in both the tool and the restored task.

use crate::blob::restorer_abi::{Region, Remap};
use crate::images::pb;
use crate::vdso::Layout;
use rustix::io::Errno;

use super::RestoreError;

/// Lowest address considered for the bootstrap region.
const SEARCH_FROM: u64 = 0x1000_0000;
const PROT_EXEC: u32 = linux_raw_sys::general::PROT_EXEC;
/// Mappings at or above this are kernel-provided (`[vsyscall]`).
const KERNEL_HALF: u64 = 1 << 63;

/// `[start, end)` of a mapping and whether it is vDSO/vvar.
#[derive(Clone, Debug)]
pub struct SelfMaps {
    pub all: Vec<(u64, u64)>,
    /// `[vvar]`, `[vvar_vclock]`, `[vdso]` in address order.
    pub vdso: Vec<(u64, u64)>,
    /// The `[vdso]` one of those.
    pub vdso_code: Option<(u64, u64)>,
}

impl SelfMaps {
    pub fn read() -> Result<SelfMaps, RestoreError> {
        let text = std::fs::read_to_string("/proc/self/maps").map_err(|e| {
            RestoreError::Open(
                "/proc/self/maps".into(),
                Errno::from_io_error(&e).unwrap_or(Errno::IO),
            )
        })?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> SelfMaps {
        let mut all = Vec::new();
        let mut vdso = Vec::new();
        let mut vdso_code = None;
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let Some((s, e)) = it.next().and_then(|r| r.split_once('-')) else {
                continue;
            };
            let (Ok(s), Ok(e)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16)) else {
                continue;
            };
            if s >= KERNEL_HALF {
                continue;
            }
            all.push((s, e));
            match it.nth(4) {
                Some("[vvar]" | "[vvar_vclock]") => vdso.push((s, e)),
                Some("[vdso]") => {
                    vdso.push((s, e));
                    vdso_code = Some((s, e));
                }
                _ => {}
            }
        }
        all.sort_unstable();
        vdso.sort_unstable();
        SelfMaps {
            all,
            vdso,
            vdso_code,
        }
    }

    /// The tool's private writable mappings (`rw-p`: heap, anonymous
    /// memory, other threads' stacks, written data of its binaries), except
    /// those holding an address of `keep` (the running thread's stack,
    /// which a child forked by the restorer runs on until it switches
    /// stacks, and the thread's rseq area, which the kernel writes until
    /// the child unregisters it).
    pub fn private_writable(keep: &[u64]) -> Result<Vec<(u64, u64)>, RestoreError> {
        let text = std::fs::read_to_string("/proc/self/maps").map_err(|e| {
            RestoreError::Open(
                "/proc/self/maps".into(),
                Errno::from_io_error(&e).unwrap_or(Errno::IO),
            )
        })?;
        let mut out = Vec::new();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some((s, e)), Some("rw-p")) =
                (it.next().and_then(|r| r.split_once('-')), it.next())
            else {
                continue;
            };
            let (Ok(s), Ok(e)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16)) else {
                continue;
            };
            if s < KERNEL_HALF && !keep.iter().any(|k| (s..e).contains(k)) {
                out.push((s, e));
            }
        }
        Ok(out)
    }

    /// Bytes from the first vDSO/vvar mapping to the end of the last.
    pub fn vdso_span(&self) -> u64 {
        match (self.vdso.first(), self.vdso.last()) {
            (Some(f), Some(l)) => l.1 - f.0,
            _ => 0,
        }
    }

    /// Moves of the runtime vDSO/vvar into the parking area at `park`,
    /// keeping their relative layout.
    pub fn park_list(&self, park: u64) -> Vec<Remap> {
        let first = self.vdso.first().map_or(0, |f| f.0);
        self.vdso
            .iter()
            .map(|&(s, e)| Remap {
                from: s,
                to: park + (s - first),
                len: e - s,
            })
            .collect()
    }

    /// This kernel's vDSO and vvar as the tool has them.
    pub fn rt_layout(&self) -> Result<Option<Layout>, RestoreError> {
        let code: Vec<(u64, u64)> = self.vdso_code.into_iter().collect();
        let vvar: Vec<(u64, u64)> = self
            .vdso
            .iter()
            .copied()
            .filter(|a| Some(*a) != self.vdso_code)
            .collect();
        Layout::from_areas(&code, &vvar)
            .map_err(|e| RestoreError::Unsupported(format!("this kernel's vDSO: {e}")))
    }

    /// Moves from the parking area at `park` to `dest` (this kernel's vDSO
    /// at `dest.vdso`, its vvar parts side by side from `dest.vvar`'s
    /// start); without `dest`, the parked areas are unmapped.
    pub fn unpark_to(&self, park: u64, dest: Option<&Layout>) -> Result<Vec<Remap>, RestoreError> {
        let parked = self.park_list(park);
        let Some(dest) = dest else {
            return Ok(parked
                .iter()
                .map(|r| Remap {
                    from: r.to,
                    to: 0,
                    len: r.len,
                })
                .collect());
        };
        let rt = self
            .rt_layout()?
            .ok_or_else(|| RestoreError::Unsupported("this kernel maps no vDSO".into()))?;
        let mut out = Vec::with_capacity(parked.len());
        for (p, &(s, _)) in parked.iter().zip(&self.vdso) {
            let to = if Some(s) == self.vdso_code.map(|c| c.0) {
                dest.vdso.0
            } else {
                match (rt.vvar, dest.vvar) {
                    (Some(v), Some(d)) => d.0 + (s - v.0),
                    _ => {
                        return Err(RestoreError::Unsupported(
                            "no place for this kernel's vvar".into(),
                        ));
                    }
                }
            };
            out.push(Remap {
                from: p.to,
                to,
                len: p.len,
            });
        }
        Ok(out)
    }

    /// A page-aligned place for `len` bytes in the restored task, free of
    /// `busy` (with a guard page each side): the highest below `below`
    /// (where mappings are made top-down, away from the heap), else the
    /// lowest above it.
    pub fn free_gap(busy: &[(u64, u64)], len: u64, below: u64, page: u64) -> Option<u64> {
        let mut busy = busy.to_vec();
        busy.sort_unstable();
        let mut gaps = Vec::new();
        let mut prev = SEARCH_FROM;
        for &(s, e) in busy.iter().chain(&[(KERNEL_HALF >> 16, KERNEL_HALF >> 16)]) {
            let (lo, hi) = (prev + page, s.saturating_sub(page));
            if hi > lo && hi - lo >= len {
                gaps.push((lo, hi));
            }
            prev = prev.max(e.next_multiple_of(page));
        }
        gaps.iter()
            .rev()
            .find(|g| g.0 + len <= below)
            .map(|g| (g.1.min(below) - len) / page * page)
            .or_else(|| {
                gaps.iter().find_map(|g| {
                    let at = g.0.max(below).next_multiple_of(page);
                    (at + len <= g.1).then_some(at)
                })
            })
    }

    /// What the child unmaps: everything outside `[lo, hi)` up to the end of
    /// the highest mapping.
    pub fn unmap_list(&self, lo: u64, hi: u64, page: u64) -> [Region; 2] {
        let top = self.all.iter().map(|m| m.1).max().unwrap_or(hi).max(hi);
        [
            Region {
                start: page,
                end: lo,
            },
            Region {
                start: hi,
                end: top,
            },
        ]
    }

    /// A page-aligned address where `len` bytes are free both here and in
    /// the restored task.
    pub fn free_region(
        &self,
        len: u64,
        vmas: &[pb::VmaEntry],
        page: u64,
    ) -> Result<u64, RestoreError> {
        let mut busy: Vec<(u64, u64)> = self.all.clone();
        busy.extend(vmas.iter().map(|v| (v.start, v.end)));
        busy.sort_unstable();
        // Above the task's first executable VMA: the tool later injects a
        // munmap of this region at the first executable VMA, which must
        // not be the region itself.
        let first_exec = vmas
            .iter()
            .filter(|v| v.prot & PROT_EXEC != 0)
            .map(|v| v.end)
            .min()
            .unwrap_or(0);
        let mut cand = SEARCH_FROM.max(first_exec);
        for (s, e) in busy {
            if e <= cand {
                continue;
            }
            // one guard page each side
            if s >= cand + len + 2 * page {
                return Ok(cand + page);
            }
            cand = cand.max(e.next_multiple_of(page));
        }
        if cand
            .checked_add(len + 2 * page)
            .is_some_and(|end| end < KERNEL_HALF >> 16)
        {
            return Ok(cand + page);
        }
        Err(RestoreError::Unsupported(
            "no free address for the restorer".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0000000-55d0c0002000 r-xp 00000000 00:10 12 /bin/tool
7f0000000000-7f0000004000 r--p 00000000 00:00 0 [vvar]
7f0000004000-7f0000006000 r--p 00000000 00:00 0 [vvar_vclock]
7f0000006000-7f0000008000 r-xp 00000000 00:00 0 [vdso]
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]
";

    fn vma(start: u64, end: u64, status: u32, prot: u32) -> pb::VmaEntry {
        pb::VmaEntry {
            start,
            end,
            status,
            prot,
            ..Default::default()
        }
    }

    #[test]
    fn vdso_is_parked_and_moved_to_the_dumped_place_keeping_its_layout() {
        let m = SelfMaps::parse(MAPS);
        assert_eq!(m.vdso_span(), 0x8000);
        let park = m.park_list(0x1000_0000);
        assert_eq!(
            park[1],
            Remap {
                from: 0x7f00_0000_4000,
                to: 0x1000_4000,
                len: 0x2000
            }
        );
        let rt = m.rt_layout().unwrap().unwrap();
        assert_eq!(rt.vvar, Some((0x7f00_0000_0000, 0x7f00_0000_6000)));
        // In place: this kernel's vvar parts go side by side from the
        // dumped vvar (one area in CRIU's images), the vDSO to the vDSO.
        let dumped = Layout {
            vdso: (0x7e00_0000_6000, 0x7e00_0000_8000),
            vvar: Some((0x7e00_0000_0000, 0x7e00_0000_6000)),
        };
        let un = m.unpark_to(0x1000_0000, Some(&dumped)).unwrap();
        assert_eq!(
            un.iter().map(|r| (r.from, r.to, r.len)).collect::<Vec<_>>(),
            [
                (0x1000_0000, 0x7e00_0000_0000, 0x4000),
                (0x1000_4000, 0x7e00_0000_4000, 0x2000),
                (0x1000_6000, 0x7e00_0000_6000, 0x2000)
            ]
        );
        // No dumped vDSO: the parked one is unmapped.
        assert!(
            m.unpark_to(0x1000_0000, None)
                .unwrap()
                .iter()
                .all(|r| r.to == 0)
        );
    }

    #[test]
    fn a_proxied_vdso_goes_to_the_highest_gap_below_the_dumped_one() {
        let page = 0x1000;
        let busy = [
            (0x5000_0000, 0x5001_0000),
            (0x7f00_0000_0000, 0x7f00_0001_0000),
        ];
        let at = SelfMaps::free_gap(&busy, 0x8000, 0x7f00_0000_0000, page).unwrap();
        assert_eq!(at, 0x7f00_0000_0000 - page - 0x8000);
        // Below the first mapping of the task: the highest place there.
        let at = SelfMaps::free_gap(&busy, 0x8000, 0x2000_0000, page).unwrap();
        assert_eq!(at, 0x2000_0000 - 0x8000);
        // No room below: the lowest place above.
        let at = SelfMaps::free_gap(&busy, 0x8000, 0x1000_4000, page).unwrap();
        assert_eq!(at, 0x1000_4000);
        // Nothing free at all.
        assert_eq!(
            SelfMaps::free_gap(&[(0, u64::MAX >> 1)], 0x8000, 0x1000_4000, page),
            None
        );
    }

    #[test]
    fn bootstrap_region_is_free_in_both_layouts_and_above_the_first_code() {
        let m = SelfMaps::parse(MAPS);
        let target = [vma(0x1000_0000, 0x2000_0000, 0, 5)];
        let base = m.free_region(0x10_000, &target, 0x1000).unwrap();
        assert!(base >= 0x2000_0000);
        let unmap = m.unmap_list(base, base + 0x10_000, 0x1000);
        assert_eq!(
            unmap[0],
            Region {
                start: 0x1000,
                end: base
            }
        );
        // Up to the top of the highest mapping below the kernel half.
        assert_eq!(unmap[1].end, 0x7ffc_0002_1000);
    }
}
