//! Sparse private anonymous memory: a 64 MiB mapping (no transparent huge
//! pages) of which only a few pages are written. After restore the written
//! pages hold their data, the pages that were never touched are still
//! holes (not present in /proc/self/pagemap, not resident by mincore), the
//! pages that were written and then zeroed read as zero, and so does a
//! page that was only read.
#[path = "lib.rs"]
mod zdtm;

use zdtm::{MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, page};

/// Pages in the 64 MiB mapping (16384 of 4 KiB, 1024 of 64 KiB).
fn pages() -> usize {
    (64 << 20) / page()
}
/// Page `p` of a 16384-page mapping scaled to this one.
fn scaled(p: usize) -> usize {
    p * pages() / 16384
}
/// Pages written with a pattern (seeded by their index).
fn data() -> [usize; 8] {
    let q = pages() / 4;
    [0, 1, 2, 100, q - 1, q, scaled(9999), pages() - 1]
}
/// Pages written with a pattern and then zeroed again.
fn zeroed() -> [usize; 3] {
    [200, 201, scaled(5000)]
}
/// A page that was only read (it maps the shared zero page).
fn read_only() -> usize {
    scaled(7000)
}
const MADV_NOHUGEPAGE: usize = 15;

fn main() {
    zdtm::run(
        |_| {
            let addr = zdtm::mmap(
                0,
                pages() * page(),
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
                    pages() * page(),
                    MADV_NOHUGEPAGE,
                )
            };
            zdtm::errno(ret, "madvise(MADV_NOHUGEPAGE)")?;
            // SAFETY: a fresh read-write mapping only this program uses.
            let mem = unsafe { zdtm::region(addr, pages() * page()) };
            for p in data().iter().chain(&zeroed()) {
                zdtm::fill_pattern(&mut mem[p * page()..][..page()], *p as u64);
            }
            for p in zeroed() {
                mem[p * page()..][..page()].fill(0);
            }
            let r = std::hint::black_box(mem[read_only() * page() + 8]);
            zdtm::ensure(r == 0, || "fresh page not zero".into())?;
            holes(addr, "before dump")?;
            no_huge_pages(addr, "before dump")?;
            Ok(addr)
        },
        |_| {},
        |addr| {
            // First look at the holes: reading them would fault them in.
            holes(addr, "after restore")?;
            zdtm::expect_vma("mapping", addr, pages() * page(), "rw-p")?;
            no_huge_pages(addr, "after restore")?;
            // SAFETY: still our read-write mapping (checked above).
            let mem = unsafe { zdtm::region(addr, pages() * page()) };
            for p in data() {
                zdtm::check_pattern(&format!("page {p}"), &mem[p * page()..][..page()], p as u64)?;
            }
            for p in zeroed().into_iter().chain([read_only()]) {
                let page = &mem[p * page()..][..page()];
                if let Some(i) = page.iter().position(|&b| b != 0) {
                    return Err(format!("page {p} byte {i} is {:#04x}, want 0", page[i]));
                }
            }
            Ok(())
        },
    );
}

/// Check that every page not in data(), zeroed() or read_only() is a hole and
/// every data() page is present.
fn holes(addr: usize, when: &str) -> Result<(), String> {
    let present = zdtm::pagemap_present(addr, pages())?;
    let resident = zdtm::resident_pages(addr, pages())?;
    let touched = |p: &usize| data().contains(p) || zeroed().contains(p) || *p == read_only();
    let filled: Vec<usize> = (0..pages())
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
    let missing: Vec<usize> = data().into_iter().filter(|&p| !present[p]).collect();
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
