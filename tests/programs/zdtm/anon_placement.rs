//! Private anonymous memory at the edges of the address space, where a
//! restore's own helper mappings might want to go: at the lowest address
//! allowed (vm.mmap_min_addr), at 4 GiB, and high up, 1 GiB below the
//! stack. Each holds a pattern; after restore each is the same `rw-p` VMA
//! with its data.
#[path = "lib.rs"]
mod zdtm;

use zdtm::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, page};

const MAP_FIXED_NOREPLACE: usize = 0x10_0000;
fn len() -> usize {
    4 * page()
}

/// Where to map: the lowest address, 4 GiB, and 1 GiB below the stack.
fn addresses() -> Result<Vec<usize>, String> {
    let min: usize = std::fs::read_to_string("/proc/sys/vm/mmap_min_addr")
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .map_err(|e| format!("mmap_min_addr: {e}"))?;
    let local = 0u8;
    let stack = std::hint::black_box(&local) as *const u8 as usize;
    let high = (stack - (1 << 30)) & !(page() - 1);
    Ok(vec![
        min.max(page()).next_multiple_of(page()),
        1 << 32,
        high,
    ])
}

fn main() {
    zdtm::run(
        |_| {
            let addrs = addresses()?;
            for (i, &a) in addrs.iter().enumerate() {
                let got = zdtm::mmap(
                    a,
                    len(),
                    PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
                .map_err(|e| format!("map at {a:#x}: {e}"))?;
                zdtm::ensure(got == a, || format!("mapped at {got:#x}, not {a:#x}"))?;
                // SAFETY: our fresh read-write mapping.
                zdtm::fill_pattern(unsafe { zdtm::region(a, len()) }, 1000 + i as u64);
                zdtm::expect_vma("before dump", a, len(), "rw-p")?;
            }
            Ok(addrs)
        },
        |_| {},
        |addrs| {
            for (i, &a) in addrs.iter().enumerate() {
                let what = format!("mapping at {a:#x}");
                zdtm::expect_vma(&what, a, len(), "rw-p")?;
                // SAFETY: checked above: our read-write mapping.
                zdtm::check_pattern(&what, unsafe { zdtm::region(a, len()) }, 1000 + i as u64)?;
            }
            Ok(())
        },
    );
}
