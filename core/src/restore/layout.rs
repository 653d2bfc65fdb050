//! The tool's own address space (from `/proc/self/maps`) as far as restore
//! cares: what to unmap in the child, where the runtime vDSO and vvar are,
//! and a bootstrap address free in both the tool and the restored task.

use crate::blob::restorer_abi::{Region, Remap};
use crate::images::pb;
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
            if matches!(it.nth(4), Some("[vvar]" | "[vvar_vclock]" | "[vdso]")) {
                vdso.push((s, e));
            }
        }
        all.sort_unstable();
        vdso.sort_unstable();
        SelfMaps { all, vdso }
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

    /// Moves from the parking area to the dumped vDSO/vvar VMAs (those whose
    /// status has a bit of `mask`). The layouts must match: same sizes at the
    /// same relative offsets (vDSO proxying is not implemented). Without a
    /// dumped vDSO, the parked one is unmapped.
    pub fn unpark_list(
        &self,
        park: u64,
        vmas: &[pb::VmaEntry],
        mask: u32,
    ) -> Result<Vec<Remap>, RestoreError> {
        let dumped: Vec<(u64, u64)> = vmas
            .iter()
            .filter(|v| v.status & mask != 0)
            .map(|v| (v.start, v.end))
            .collect();
        let parked = self.park_list(park);
        if dumped.is_empty() {
            return Ok(parked
                .iter()
                .map(|r| Remap {
                    from: r.to,
                    to: 0,
                    len: r.len,
                })
                .collect());
        }
        let rel = |v: &[(u64, u64)]| -> Vec<(u64, u64)> {
            let f = v.first().map_or(0, |f| f.0);
            v.iter().map(|&(s, e)| (s - f, e - s)).collect()
        };
        if rel(&dumped) != rel(&self.vdso) {
            return Err(RestoreError::Unsupported(format!(
                "the dumped vDSO/vvar layout {dumped:x?} differs from this kernel's {:x?} \
                 (vDSO proxying is not implemented)",
                self.vdso
            )));
        }
        let first = dumped[0].0;
        let rt_first = self.vdso[0].0;
        Ok(parked
            .iter()
            .zip(&self.vdso)
            .map(|(p, &(s, _))| Remap {
                from: p.to,
                to: first + (s - rt_first),
                len: p.len,
            })
            .collect())
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
    use crate::proc::vma_kind::status::{VMA_AREA_VDSO, VMA_AREA_VVAR};

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
        let dumped = [
            vma(0x7e00_0000_0000, 0x7e00_0000_4000, VMA_AREA_VVAR, 1),
            vma(0x7e00_0000_4000, 0x7e00_0000_6000, VMA_AREA_VVAR, 1),
            vma(0x7e00_0000_6000, 0x7e00_0000_8000, VMA_AREA_VDSO, 5),
        ];
        let mask = VMA_AREA_VDSO | VMA_AREA_VVAR;
        let un = m.unpark_list(0x1000_0000, &dumped, mask).unwrap();
        assert_eq!(
            un[2],
            Remap {
                from: 0x1000_6000,
                to: 0x7e00_0000_6000,
                len: 0x2000
            }
        );
        // A different layout is refused; no dumped vDSO unmaps the parked one.
        assert!(m.unpark_list(0x1000_0000, &dumped[2..], mask).is_err());
        assert!(
            m.unpark_list(0x1000_0000, &[], mask)
                .unwrap()
                .iter()
                .all(|r| r.to == 0)
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
