//! Memory protections: separate private anonymous regions made `r--`,
//! `rw-`, `r-x`, `---`, `-w-` and `rwx` after a pattern was written to them, and one
//! 8-page mapping split by mprotect into `rw-`, `r--`, `---` and `r-x`
//! parts of two pages each. After restore every VMA has its old bounds
//! and permissions and its data (the `---` ones are made readable by the
//! check to look at them).
#[path = "lib.rs"]
mod zdtm;

use zdtm::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE, page};

/// (pages, protection, maps permissions) of each separate region.
const REGIONS: [(usize, usize, &str); 6] = [
    (4, PROT_READ, "r--p"),
    (4, PROT_READ | PROT_WRITE, "rw-p"),
    (3, PROT_READ | PROT_EXEC, "r-xp"),
    (5, PROT_NONE, "---p"),
    (2, PROT_WRITE, "-w-p"),
    (3, PROT_READ | PROT_WRITE | PROT_EXEC, "rwxp"),
];
/// The parts of the split mapping: (pages, protection, permissions).
const PARTS: [(usize, usize, &str); 4] = [
    (2, PROT_READ | PROT_WRITE, "rw-p"),
    (2, PROT_READ, "r--p"),
    (2, PROT_NONE, "---p"),
    (2, PROT_READ | PROT_EXEC, "r-xp"),
];

/// Every VMA the program checks: (address, pages, protection, perms, seed).
type Areas = Vec<(usize, usize, usize, &'static str, u64)>;

fn main() {
    zdtm::run(
        |_| {
            let mut lens: Vec<usize> = REGIONS.iter().map(|r| r.0 * page()).collect();
            let split_pages: usize = PARTS.iter().map(|p| p.0).sum();
            lens.push(split_pages * page());
            let addrs = zdtm::map_separate(&lens, MAP_PRIVATE | MAP_ANONYMOUS)?;
            let mut areas: Areas = Vec::new();
            for (i, &(pages, prot, perms)) in REGIONS.iter().enumerate() {
                areas.push((addrs[i], pages, prot, perms, 400 + i as u64));
            }
            let mut at = addrs[REGIONS.len()];
            for (i, &(pages, prot, perms)) in PARTS.iter().enumerate() {
                areas.push((at, pages, prot, perms, 500 + i as u64));
                at += pages * page();
            }
            for &(addr, pages, prot, _, seed) in &areas {
                // SAFETY: still read-write: our fresh mapping.
                zdtm::fill_pattern(unsafe { zdtm::region(addr, pages * page()) }, seed);
                zdtm::mprotect(addr, pages * page(), prot)?;
            }
            vmas(&areas).map_err(|e| format!("before dump: {e}"))?;
            Ok(areas)
        },
        |_| {},
        |areas| {
            vmas(&areas)?;
            for &(addr, pages, prot, perms, seed) in &areas {
                if prot & PROT_READ == 0 {
                    zdtm::mprotect(addr, pages * page(), PROT_READ)?;
                }
                // SAFETY: readable now; only read here.
                let mem = unsafe { zdtm::region(addr, pages * page()) };
                zdtm::check_pattern(&format!("{perms} area at {addr:#x}"), mem, seed)?;
            }
            Ok(())
        },
    );
}

/// Each area is one VMA of its own with its permissions.
fn vmas(areas: &Areas) -> Result<(), String> {
    for &(addr, pages, _, perms, _) in areas {
        let what = format!("{perms} area at {addr:#x}");
        zdtm::expect_vma(&what, addr, pages * page(), perms)?;
    }
    Ok(())
}
