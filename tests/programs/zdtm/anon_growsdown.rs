//! A MAP_GROWSDOWN mapping (like a thread stack): 4 pages with a pattern,
//! with free address space below it. After restore it is the same VMA
//! (`rw-p`, the `gd` VmFlag, the same end; the start may be one page lower,
//! as with CRIU, see the check), holds its data, and still grows down: a
//! write just below its start extends it by a page.
#[path = "lib.rs"]
mod zdtm;

use zdtm::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE, page};

const PAGES: usize = 4;
/// Free pages kept below the mapping for it to grow into (more than the
/// kernel's stack guard gap of 256 pages).
const ROOM: usize = 512;
const MAP_GROWSDOWN: usize = 0x100;
const SEED: u64 = 600;

fn main() {
    zdtm::run(
        |_| {
            // Reserve room + the mapping, then free the room below it.
            let base = zdtm::mmap(
                0,
                (ROOM + PAGES) * page(),
                PROT_READ,
                MAP_PRIVATE | MAP_ANONYMOUS,
                -1,
                0,
            )?;
            let addr = base + ROOM * page();
            zdtm::mmap(
                addr,
                PAGES * page(),
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED,
                -1,
                0,
            )?;
            zdtm::munmap(base, ROOM * page())?;
            // SAFETY: our fresh read-write mapping.
            zdtm::fill_pattern(unsafe { zdtm::region(addr, PAGES * page()) }, SEED);
            vma(addr, addr + PAGES * page(), "before dump")?;
            Ok(addr)
        },
        |_| {},
        |addr| {
            // CRIU's dump records a grows-down VMA one page lower (the guard
            // page kernels before 4.12 hid from /proc/PID/maps) and a restore
            // on a newer kernel maps that page too: CRIU's own behaviour, so
            // the VMA may come back starting one page lower.
            let start = match zdtm::vma_at(addr - page()) {
                Ok(v) if v.start == addr - page() => addr - page(),
                _ => addr,
            };
            vma(start, addr + PAGES * page(), "after restore")?;
            // SAFETY: checked above: our read-write mapping.
            let mem = unsafe { zdtm::region(addr, PAGES * page()) };
            zdtm::check_pattern("growsdown mapping", mem, SEED)?;
            // Grow it: the kernel extends the VMA on a fault below it.
            let below = start - page();
            // SAFETY: a write just below a MAP_GROWSDOWN mapping, with
            // nothing else mapped there: the kernel grows the mapping.
            unsafe { std::ptr::write_volatile((below + 8) as *mut u64, 0x1234_5678) };
            let grown = zdtm::vma_at(below)?;
            zdtm::ensure(
                grown.start == below && grown.end == addr + PAGES * page(),
                || {
                    format!(
                        "after a write below it the VMA is {:#x}-{:#x}, want {below:#x}-{:#x}",
                        grown.start,
                        grown.end,
                        addr + PAGES * page()
                    )
                },
            )
        },
    );
}

/// The mapping is one `rw-p` VMA `start..end` with the growsdown flag.
fn vma(start: usize, end: usize, when: &str) -> Result<(), String> {
    zdtm::expect_vma(when, start, end - start, "rw-p")?;
    let flags = zdtm::vm_flags(start).map_err(|e| format!("{when}: {e}"))?;
    zdtm::ensure(flags.iter().any(|f| f == "gd"), || {
        format!("{when}: not growsdown: VmFlags {}", flags.join(" "))
    })
}
