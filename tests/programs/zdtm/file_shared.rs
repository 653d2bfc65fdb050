//! A shared file mapping: `DIR/shared.dat` (8 pages) mapped MAP_SHARED
//! read-write; pages 0-4 are written through the mapping, pages 5-7 hold
//! what write() put in the file. After restore the mapping shows all of
//! it, is still `rw-s` of that file, a write through the mapping reaches
//! the file (seen by pread) and a pwrite to the file shows in the mapping.
#[path = "lib.rs"]
mod zdtm;

use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use zdtm::{MAP_SHARED, PAGE, PROT_READ, PROT_WRITE};

const PAGES: usize = 8;
const THROUGH_MAP: usize = 5;
const MAP_SEED: u64 = 21;
const FILE_SEED: u64 = 22;

struct State {
    addr: usize,
    path: PathBuf,
}

/// The whole file as it must be at the dump.
fn expected() -> Vec<u8> {
    let mut v = vec![0u8; PAGES * PAGE];
    zdtm::fill_pattern(&mut v[..THROUGH_MAP * PAGE], MAP_SEED);
    zdtm::fill_pattern(&mut v[THROUGH_MAP * PAGE..], FILE_SEED);
    v
}

fn main() {
    zdtm::run(
        |args| {
            let path = args.dir.join("shared.dat");
            let mut init = vec![0u8; PAGES * PAGE];
            init[THROUGH_MAP * PAGE..].copy_from_slice(&expected()[THROUGH_MAP * PAGE..]);
            std::fs::write(&path, &init).map_err(|e| e.to_string())?;
            let f = std::fs::File::options()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| e.to_string())?;
            use std::os::fd::AsRawFd;
            let addr = zdtm::mmap(
                0,
                PAGES * PAGE,
                PROT_READ | PROT_WRITE,
                MAP_SHARED,
                f.as_raw_fd(),
                0,
            )?;
            // SAFETY: our fresh shared mapping of the file.
            let mem = unsafe { zdtm::region(addr, PAGES * PAGE) };
            mem[..THROUGH_MAP * PAGE].copy_from_slice(&expected()[..THROUGH_MAP * PAGE]);
            Ok(State { addr, path })
        },
        |_| {},
        |s| {
            let vma = zdtm::expect_vma("mapping", s.addr, PAGES * PAGE, "rw-s")?;
            zdtm::ensure(
                vma.path == s.path.to_string_lossy() && vma.offset == 0,
                || format!("mapping: maps {} at offset {:#x}", vma.path, vma.offset),
            )?;
            // SAFETY: checked above: our shared mapping of the file.
            let mem = unsafe { zdtm::region(s.addr, PAGES * PAGE) };
            let want = expected();
            if let Some(i) = (0..want.len()).find(|&i| mem[i] != want[i]) {
                return Err(format!(
                    "mapping page {} byte {}: {:#04x}, want {:#04x}",
                    i / PAGE,
                    i % PAGE,
                    mem[i],
                    want[i]
                ));
            }
            let f = std::fs::File::options()
                .read(true)
                .write(true)
                .open(&s.path)
                .map_err(|e| e.to_string())?;
            let mut disk = vec![0u8; PAGES * PAGE];
            f.read_exact_at(&mut disk, 0).map_err(|e| e.to_string())?;
            zdtm::ensure(disk == want, || {
                "the file does not hold what was written through the mapping".into()
            })?;
            // Still shared both ways.
            mem[6 * PAGE + 10..][..4].copy_from_slice(b"MAP!");
            let mut got = [0u8; 4];
            f.read_exact_at(&mut got, (6 * PAGE + 10) as u64)
                .map_err(|e| e.to_string())?;
            zdtm::ensure(&got == b"MAP!", || {
                format!("a write through the mapping did not reach the file: {got:?}")
            })?;
            f.write_all_at(b"FILE", (7 * PAGE + 20) as u64)
                .map_err(|e| e.to_string())?;
            let seen = std::hint::black_box(&mem[7 * PAGE + 20..][..4]);
            zdtm::ensure(seen == b"FILE", || {
                format!("a write to the file does not show in the mapping: {seen:?}")
            })
        },
    );
}
