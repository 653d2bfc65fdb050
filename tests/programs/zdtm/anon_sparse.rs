//! Sparse private anonymous memory: a 64 MiB mapping (no transparent huge
//! pages) of which only a few pages are written. After restore the written
//! pages hold their data, the pages that were never touched are still
//! holes (not present in /proc/self/pagemap, not resident by mincore), the
//! pages that were written and then zeroed read as zero, and so does a
//! page that was only read.
#[path = "lib.rs"]
mod zdtm;

use zdtm::{MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, page};

const PAGES: usize = 16384;
/// Pages written with a pattern (seeded by their index).
const DATA: [usize; 8] = [0, 1, 2, 100, 4095, 4096, 9999, PAGES - 1];
/// Pages written with a pattern and then zeroed again.
const ZEROED: [usize; 3] = [200, 201, 5000];
/// A page that was only read (it maps the shared zero page).
const READ_ONLY: usize = 7000;
const MADV_NOHUGEPAGE: usize = 15;

fn main() {
    zdtm::run(
        |_| {
            let addr = zdtm::mmap(
                0,
                PAGES * page(),
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                -1,
                0,
            )?;
            // A write must fault in one small page, not a 2 MiB huge one.
            // SAFETY: madvise on our own fresh mapping.
            let ret = unsafe {
                criu_arch::syscall3(
                    criu_arch::nr::MADVISE,
                    addr,
                    PAGES * page(),
                    MADV_NOHUGEPAGE,
                )
            };
            zdtm::errno(ret, "madvise(MADV_NOHUGEPAGE)")?;
            // SAFETY: a fresh read-write mapping only this program uses.
            let mem = unsafe { zdtm::region(addr, PAGES * page()) };
            for p in DATA.iter().chain(&ZEROED) {
                zdtm::fill_pattern(&mut mem[p * page()..][..page()], *p as u64);
            }
            for p in ZEROED {
                mem[p * page()..][..page()].fill(0);
            }
            let r = std::hint::black_box(mem[READ_ONLY * page() + 8]);
            zdtm::ensure(r == 0, || "fresh page not zero".into())?;
            holes(addr, "before dump")?;
            no_huge_pages(addr, "before dump")?;
            Ok(addr)
        },
        |_| {},
        |addr| {
            // First look at the holes: reading them would fault them in.
            holes(addr, "after restore")?;
            zdtm::expect_vma("mapping", addr, PAGES * page(), "rw-p")?;
            no_huge_pages(addr, "after restore")?;
            // SAFETY: still our read-write mapping (checked above).
            let mem = unsafe { zdtm::region(addr, PAGES * page()) };
            for p in DATA {
                zdtm::check_pattern(&format!("page {p}"), &mem[p * page()..][..page()], p as u64)?;
            }
            for p in ZEROED.into_iter().chain([READ_ONLY]) {
                let page = &mem[p * page()..][..page()];
                if let Some(i) = page.iter().position(|&b| b != 0) {
                    return Err(format!("page {p} byte {i} is {:#04x}, want 0", page[i]));
                }
            }
            Ok(())
        },
    );
}

/// Check that every page not in DATA, ZEROED or READ_ONLY is a hole and
/// every DATA page is present.
fn holes(addr: usize, when: &str) -> Result<(), String> {
    let present = zdtm::pagemap_present(addr, PAGES)?;
    let resident = zdtm::resident_pages(addr, PAGES)?;
    let touched = |p: &usize| DATA.contains(p) || ZEROED.contains(p) || *p == READ_ONLY;
    let filled: Vec<usize> = (0..PAGES)
        .filter(|p| !touched(p) && (present[*p] || resident[*p]))
        .collect();
    zdtm::ensure(filled.is_empty(), || {
        format!(
            "{when}: {} untouched pages are not holes (first {:?}; pagemap present {}, mincore {})",
            filled.len(),
            &filled[..filled.len().min(8)],
            present[filled[0]],
            resident[filled[0]],
        )
    })?;
    let missing: Vec<usize> = DATA.into_iter().filter(|&p| !present[p]).collect();
    zdtm::ensure(missing.is_empty(), || {
        format!("{when}: data pages {missing:?} are not present")
    })
}

/// Check that the mapping at `addr` still has MADV_NOHUGEPAGE (`nh` in
/// the VmFlags of /proc/self/smaps): without it a later write may fault in
/// a whole huge page and fill the holes around it.
fn no_huge_pages(addr: usize, when: &str) -> Result<(), String> {
    let flags = zdtm::vm_flags(addr).map_err(|e| format!("{when}: {e}"))?;
    zdtm::ensure(flags.iter().any(|f| f == "nh"), || {
        format!("{when}: MADV_NOHUGEPAGE lost: VmFlags {}", flags.join(" "))
    })
}
