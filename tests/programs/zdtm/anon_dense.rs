//! Dense private anonymous memory: three separate read-write mappings
//! (4 MiB, 2 MiB and 1 MiB plus a page, each page with its own pattern)
//! and a 3 MiB `Vec` on the heap, and a 4 MiB mapping aligned to 2 MiB with
//! MADV_HUGEPAGE (transparent huge pages where the kernel gives them).
//! After restore every byte must be back, each mapping must still be one
//! `rw-p` VMA at the same place, and the huge page one keeps its advice.
#[path = "lib.rs"]
mod zdtm;

use zdtm::{MAP_ANONYMOUS, MAP_PRIVATE};

fn lens() -> [usize; 3] {
    [4 << 20, 2 << 20, (1 << 20) + zdtm::page()]
}
const VEC_LEN: usize = 3 << 20;
const VEC_SEED: u64 = 99;
const HUGE: usize = 2 << 20;
const THP_LEN: usize = 2 * HUGE;
const THP_SEED: u64 = 98;
const MADV_HUGEPAGE: usize = 14;

struct State {
    maps: Vec<usize>,
    vec: Vec<u8>,
    thp: usize,
}

/// A THP_LEN mapping at a 2 MiB boundary with MADV_HUGEPAGE, filled.
fn map_thp() -> Result<usize, String> {
    let raw = zdtm::mmap(
        0,
        THP_LEN + HUGE,
        zdtm::PROT_READ | zdtm::PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
        -1,
        0,
    )?;
    let addr = raw.next_multiple_of(HUGE);
    if addr > raw {
        zdtm::munmap(raw, addr - raw)?;
    }
    zdtm::munmap(addr + THP_LEN, raw + HUGE - addr)?;
    // SAFETY: madvise on our own fresh mapping.
    let ret = unsafe { criu_arch::syscall3(criu_arch::nr::MADVISE, addr, THP_LEN, MADV_HUGEPAGE) };
    zdtm::errno(ret, "madvise(MADV_HUGEPAGE)")?;
    // SAFETY: our fresh read-write mapping.
    zdtm::fill_pattern(unsafe { zdtm::region(addr, THP_LEN) }, THP_SEED);
    Ok(addr)
}

/// The huge page mapping is one `rw-p` VMA with the `hg` advice.
fn thp_vma(addr: usize) -> Result<(), String> {
    zdtm::expect_vma("THP mapping", addr, THP_LEN, "rw-p")?;
    let flags = zdtm::vm_flags(addr)?;
    zdtm::ensure(flags.iter().any(|f| f == "hg"), || {
        format!(
            "THP mapping: MADV_HUGEPAGE lost: VmFlags {}",
            flags.join(" ")
        )
    })
}

fn main() {
    zdtm::run(
        |_| {
            let maps = zdtm::map_separate(&lens(), MAP_PRIVATE | MAP_ANONYMOUS)?;
            for (i, (&addr, &len)) in maps.iter().zip(&lens()).enumerate() {
                // SAFETY: a fresh read-write mapping of `len` bytes that
                // only this program uses.
                zdtm::fill_pattern(unsafe { zdtm::region(addr, len) }, i as u64 + 1);
            }
            let mut vec = vec![0u8; VEC_LEN];
            zdtm::fill_pattern(&mut vec, VEC_SEED);
            vmas(&maps).map_err(|e| format!("before dump: {e}"))?;
            let thp = map_thp()?;
            thp_vma(thp).map_err(|e| format!("before dump: {e}"))?;
            Ok(State { maps, vec, thp })
        },
        |_| {},
        |s| {
            vmas(&s.maps)?;
            for (i, (&addr, &len)) in s.maps.iter().zip(&lens()).enumerate() {
                let what = format!("mapping {i} at {addr:#x}");
                // SAFETY: still our read-write mapping (checked above).
                zdtm::check_pattern(&what, unsafe { zdtm::region(addr, len) }, i as u64 + 1)?;
            }
            zdtm::check_pattern("heap Vec", &s.vec, VEC_SEED)?;
            thp_vma(s.thp)?;
            // SAFETY: still our read-write mapping (checked above).
            zdtm::check_pattern(
                "THP mapping",
                unsafe { zdtm::region(s.thp, THP_LEN) },
                THP_SEED,
            )
        },
    );
}

/// Each mapping is one anonymous `rw-p` VMA of its own.
fn vmas(maps: &[usize]) -> Result<(), String> {
    for (i, (&addr, &len)) in maps.iter().zip(&lens()).enumerate() {
        let what = format!("mapping {i} at {addr:#x}");
        let vma = zdtm::expect_vma(&what, addr, len, "rw-p")?;
        zdtm::ensure(vma.path.is_empty(), || {
            format!("{what}: maps path {:?}, want none", vma.path)
        })?;
    }
    Ok(())
}
