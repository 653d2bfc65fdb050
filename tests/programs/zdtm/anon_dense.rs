//! Dense private anonymous memory: three separate read-write mappings
//! (4 MiB, 2 MiB and 1 MiB plus a page, each page with its own pattern)
//! and a 3 MiB `Vec` on the heap. After restore every byte must be back,
//! and each mapping must still be one `rw-p` VMA at the same place.
#[path = "lib.rs"]
mod zdtm;

use zdtm::{MAP_ANONYMOUS, MAP_PRIVATE};

const LENS: [usize; 3] = [4 << 20, 2 << 20, (1 << 20) + zdtm::PAGE];
const VEC_LEN: usize = 3 << 20;
const VEC_SEED: u64 = 99;

struct State {
    maps: Vec<usize>,
    vec: Vec<u8>,
}

fn main() {
    zdtm::run(
        |_| {
            let maps = zdtm::map_separate(&LENS, MAP_PRIVATE | MAP_ANONYMOUS)?;
            for (i, (&addr, &len)) in maps.iter().zip(&LENS).enumerate() {
                // SAFETY: a fresh read-write mapping of `len` bytes that
                // only this program uses.
                zdtm::fill_pattern(unsafe { zdtm::region(addr, len) }, i as u64 + 1);
            }
            let mut vec = vec![0u8; VEC_LEN];
            zdtm::fill_pattern(&mut vec, VEC_SEED);
            vmas(&maps).map_err(|e| format!("before dump: {e}"))?;
            Ok(State { maps, vec })
        },
        |_| {},
        |s| {
            vmas(&s.maps)?;
            for (i, (&addr, &len)) in s.maps.iter().zip(&LENS).enumerate() {
                let what = format!("mapping {i} at {addr:#x}");
                // SAFETY: still our read-write mapping (checked above).
                zdtm::check_pattern(&what, unsafe { zdtm::region(addr, len) }, i as u64 + 1)?;
            }
            zdtm::check_pattern("heap Vec", &s.vec, VEC_SEED)
        },
    );
}

/// Each mapping is one anonymous `rw-p` VMA of its own.
fn vmas(maps: &[usize]) -> Result<(), String> {
    for (i, (&addr, &len)) in maps.iter().zip(&LENS).enumerate() {
        let what = format!("mapping {i} at {addr:#x}");
        let vma = zdtm::expect_vma(&what, addr, len, "rw-p")?;
        zdtm::ensure(vma.path.is_empty(), || {
            format!("{what}: maps path {:?}, want none", vma.path)
        })?;
    }
    Ok(())
}
