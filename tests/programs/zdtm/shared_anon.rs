//! Shared anonymous memory: a 32-page MAP_SHARED|MAP_ANONYMOUS mapping
//! with a pattern in every third page and the others never touched. After
//! restore the pattern pages are back, the others read as zero, and it is
//! still one `rw-s` mapping at the same place.
#[path = "lib.rs"]
mod zdtm;

use zdtm::{MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, page};

const PAGES: usize = 32;

fn main() {
    zdtm::run(
        |_| {
            let addr = zdtm::mmap(
                0,
                PAGES * page(),
                PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS,
                -1,
                0,
            )?;
            // SAFETY: our fresh shared mapping.
            let mem = unsafe { zdtm::region(addr, PAGES * page()) };
            for p in (0..PAGES).step_by(3) {
                zdtm::fill_pattern(&mut mem[p * page()..][..page()], 300 + p as u64);
            }
            holes(addr, "before dump")?;
            Ok(addr)
        },
        |_| {},
        |addr| {
            // First look at the holes: reading them would fault them in.
            holes(addr, "after restore")?;
            let vma = zdtm::expect_vma("mapping", addr, PAGES * page(), "rw-s")?;
            zdtm::ensure(vma.path.starts_with("/dev/zero"), || {
                format!(
                    "mapping: maps path {:?}, want /dev/zero (deleted)",
                    vma.path
                )
            })?;
            // SAFETY: checked above: our shared mapping.
            let mem = unsafe { zdtm::region(addr, PAGES * page()) };
            for p in 0..PAGES {
                let page = &mem[p * page()..][..page()];
                if p % 3 == 0 {
                    zdtm::check_pattern(&format!("page {p}"), page, 300 + p as u64)?;
                } else if let Some(i) = page.iter().position(|&b| b != 0) {
                    return Err(format!("hole page {p} byte {i} is {:#04x}", page[i]));
                }
            }
            Ok(())
        },
    );
}

/// Check that the pages never written are not in the shared memory
/// (mincore looks at the shmem object's page cache).
fn holes(addr: usize, when: &str) -> Result<(), String> {
    let resident = zdtm::resident_pages(addr, PAGES)?;
    let filled: Vec<usize> = (0..PAGES).filter(|&p| p % 3 != 0 && resident[p]).collect();
    zdtm::ensure(filled.is_empty(), || {
        format!("{when}: hole pages {filled:?} are resident")
    })?;
    let missing: Vec<usize> = (0..PAGES).filter(|&p| p % 3 == 0 && !resident[p]).collect();
    zdtm::ensure(missing.is_empty(), || {
        format!("{when}: data pages {missing:?} are not resident")
    })
}
