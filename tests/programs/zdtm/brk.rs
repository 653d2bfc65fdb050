//! The heap end (brk): the program grows it by 8 pages with glibc's sbrk
//! (so that malloc, which uses brk too, knows) and fills them with a
//! pattern. After restore the kernel's brk (raw `brk(0)`) is where glibc
//! left it, the pages hold their data inside the `[heap]` VMA, and brk can
//! still grow (new pages are zero and writable) and shrink (the pages go).
#[path = "lib.rs"]
mod zdtm;

use zdtm::page;

const PAGES: usize = 8;
const SEED: u64 = 77;

unsafe extern "C" {
    /// glibc's sbrk: moves the break by `incr` bytes, returns the old one.
    fn sbrk(incr: isize) -> *mut u8;
}

/// The kernel's break (raw `brk(0)`).
fn kernel_brk() -> usize {
    // SAFETY: brk(0) only reports the break.
    unsafe { criu_arch::syscall1(criu_arch::nr::BRK, 0) as usize }
}

/// glibc's idea of the break (sbrk(0) does not call the kernel once
/// glibc knows it).
fn glibc_brk() -> usize {
    // SAFETY: sbrk(0) moves nothing.
    unsafe { sbrk(0) as usize }
}

fn grow(incr: isize) -> Result<usize, String> {
    // SAFETY: moves the break; the pages above are only used here and
    // malloc copes with foreign sbrk calls.
    let old = unsafe { sbrk(incr) } as isize;
    zdtm::ensure(old != -1, || format!("sbrk({incr}) failed"))?;
    Ok(old as usize)
}

fn main() {
    zdtm::run(
        |_| {
            // Round the break up to a page first so that our pages are whole.
            let cur = glibc_brk();
            grow((cur.next_multiple_of(page()) - cur) as isize)?;
            let start = grow((PAGES * page()) as isize)?;
            zdtm::ensure(kernel_brk() == start + PAGES * page(), || {
                format!(
                    "brk {:#x} after sbrk, want {:#x}",
                    kernel_brk(),
                    start + PAGES * page()
                )
            })?;
            // SAFETY: the pages we just got from sbrk, used only here.
            zdtm::fill_pattern(unsafe { zdtm::region(start, PAGES * page()) }, SEED);
            Ok((start, start_brk()?))
        },
        |_| {},
        |(start, heap_start)| {
            let now = start_brk()?;
            zdtm::ensure(now == heap_start, || {
                format!("start_brk {now:#x}, was {heap_start:#x}")
            })?;
            let (k, g) = (kernel_brk(), glibc_brk());
            zdtm::ensure(k == g, || format!("kernel brk {k:#x}, glibc's {g:#x}"))?;
            zdtm::ensure(k >= start + PAGES * page(), || {
                format!(
                    "brk {k:#x} is below our pages' end {:#x}",
                    start + PAGES * page()
                )
            })?;
            let vma = zdtm::vma_at(start)?;
            zdtm::ensure(
                vma.path == "[heap]"
                    && vma.perms == "rw-p"
                    && vma.end == k.next_multiple_of(page()),
                || {
                    format!(
                        "VMA of our pages: {:#x}-{:#x} {} {:?}, want [heap] rw-p up to brk {k:#x}",
                        vma.start, vma.end, vma.perms, vma.path
                    )
                },
            )?;
            zdtm::check_pattern(
                "heap pages",
                // SAFETY: our sbrk pages, still inside the heap (checked above).
                unsafe { zdtm::region(start, PAGES * page()) },
                SEED,
            )?;
            // Grow: new zeroed, writable pages.
            let top = grow((4 * page()) as isize)?;
            zdtm::ensure(kernel_brk() == top + 4 * page(), || {
                format!("brk {:#x} after growing from {top:#x}", kernel_brk())
            })?;
            // SAFETY: the pages we just got from sbrk.
            let new = unsafe { zdtm::region(top, 4 * page()) };
            zdtm::ensure(new.iter().all(|&b| b == 0), || "grown heap not zero".into())?;
            new.fill(0x5a);
            // Shrink back: the pages go away.
            grow(-((4 * page()) as isize))?;
            zdtm::ensure(kernel_brk() == top, || {
                format!("brk {:#x} after shrinking, want {top:#x}", kernel_brk())
            })?;
            let vma = zdtm::vma_at(start)?;
            zdtm::ensure(vma.end == top.next_multiple_of(page()), || {
                format!("heap ends at {:#x} after shrinking to {top:#x}", vma.end)
            })?;
            // SAFETY: our sbrk pages, below the break (checked above).
            let mem = unsafe { zdtm::region(start, PAGES * page()) };
            zdtm::check_pattern("heap pages after grow/shrink", mem, SEED)
        },
    );
}

/// Where the heap starts (`start_brk`, field 47 of /proc/self/stat).
fn start_brk() -> Result<usize, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // Fields after the command name (which may hold spaces) start at 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .nth(47 - 3)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("no start_brk in /proc/self/stat: {stat}"))
}
