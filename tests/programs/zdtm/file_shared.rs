//! A shared file mapping: `DIR/shared.dat` (8 pages) mapped MAP_SHARED
//! read-write; pages 0-4 are written through the mapping, pages 5-7 hold
//! what write() put in the file. After restore the mapping shows all of
//! it, is still `rw-s` of that file, a write through the mapping reaches
//! the file (seen by pread) and a pwrite to the file shows in the mapping.
//! A second, read-only shared mapping of the file from page 4 on must come
//! back as `r--s` at its offset and see both writes.
#[path = "lib.rs"]
mod zdtm;

use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use zdtm::{MAP_SHARED, PROT_READ, PROT_WRITE, page};

const PAGES: usize = 8;
const THROUGH_MAP: usize = 5;
const MAP_SEED: u64 = 21;
const FILE_SEED: u64 = 22;

/// The read-only shared mapping of the same file: pages RO_FROM.. .
const RO_FROM: usize = 4;

struct State {
    addr: usize,
    ro: usize,
    path: PathBuf,
}

/// The whole file as it must be at the dump.
fn expected() -> Vec<u8> {
    let mut v = vec![0u8; PAGES * page()];
    zdtm::fill_pattern(&mut v[..THROUGH_MAP * page()], MAP_SEED);
    zdtm::fill_pattern(&mut v[THROUGH_MAP * page()..], FILE_SEED);
    v
}

fn main() {
    zdtm::run(
        |args| {
            let path = args.dir.join("shared.dat");
            let mut init = vec![0u8; PAGES * page()];
            init[THROUGH_MAP * page()..].copy_from_slice(&expected()[THROUGH_MAP * page()..]);
            std::fs::write(&path, &init).map_err(|e| e.to_string())?;
            let f = std::fs::File::options()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| e.to_string())?;
            use std::os::fd::AsRawFd;
            let addr = zdtm::mmap(
                0,
                PAGES * page(),
                PROT_READ | PROT_WRITE,
                MAP_SHARED,
                f.as_raw_fd(),
                0,
            )?;
            // SAFETY: our fresh shared mapping of the file.
            let mem = unsafe { zdtm::region(addr, PAGES * page()) };
            mem[..THROUGH_MAP * page()].copy_from_slice(&expected()[..THROUGH_MAP * page()]);
            let ro_file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            let ro = zdtm::mmap(
                0,
                (PAGES - RO_FROM) * page(),
                PROT_READ,
                MAP_SHARED,
                ro_file.as_raw_fd(),
                RO_FROM * page(),
            )?;
            Ok(State { addr, ro, path })
        },
        |_| {},
        |s| {
            let vma = zdtm::expect_vma("mapping", s.addr, PAGES * page(), "rw-s")?;
            zdtm::ensure(
                vma.path == s.path.to_string_lossy() && vma.offset == 0,
                || format!("mapping: maps {} at offset {:#x}", vma.path, vma.offset),
            )?;
            let ro_len = (PAGES - RO_FROM) * page();
            let vma = zdtm::expect_vma("read-only mapping", s.ro, ro_len, "r--s")?;
            zdtm::ensure(
                vma.path == s.path.to_string_lossy() && vma.offset == (RO_FROM * page()) as u64,
                || {
                    format!(
                        "read-only mapping: maps {} at offset {:#x}",
                        vma.path, vma.offset
                    )
                },
            )?;
            // SAFETY: checked above: our shared mappings of the file (the
            // read-only one only read).
            let mem = unsafe { zdtm::region(s.addr, PAGES * page()) };
            // SAFETY: as above, the read-only mapping, only read.
            let ro = unsafe { zdtm::region(s.ro, ro_len) };
            let want = expected();
            zdtm::ensure(ro[..] == want[RO_FROM * page()..], || {
                "the read-only mapping does not show the file from page 4 on".into()
            })?;
            if let Some(i) = (0..want.len()).find(|&i| mem[i] != want[i]) {
                return Err(format!(
                    "mapping page {} byte {}: {:#04x}, want {:#04x}",
                    i / page(),
                    i % page(),
                    mem[i],
                    want[i]
                ));
            }
            let f = std::fs::File::options()
                .read(true)
                .write(true)
                .open(&s.path)
                .map_err(|e| e.to_string())?;
            let mut disk = vec![0u8; PAGES * page()];
            f.read_exact_at(&mut disk, 0).map_err(|e| e.to_string())?;
            zdtm::ensure(disk == want, || {
                "the file does not hold what was written through the mapping".into()
            })?;
            // Still shared both ways.
            mem[6 * page() + 10..][..4].copy_from_slice(b"MAP!");
            let mut got = [0u8; 4];
            f.read_exact_at(&mut got, (6 * page() + 10) as u64)
                .map_err(|e| e.to_string())?;
            zdtm::ensure(&got == b"MAP!", || {
                format!("a write through the mapping did not reach the file: {got:?}")
            })?;
            f.write_all_at(b"FILE", (7 * page() + 20) as u64)
                .map_err(|e| e.to_string())?;
            let seen = std::hint::black_box(&mem[7 * page() + 20..][..4]);
            zdtm::ensure(seen == b"FILE", || {
                format!("a write to the file does not show in the mapping: {seen:?}")
            })?;
            let seen = std::hint::black_box(&ro[(6 - RO_FROM) * page() + 10..][..4]);
            zdtm::ensure(seen == b"MAP!", || {
                format!("the read-only mapping misses the write through the other: {seen:?}")
            })?;
            let seen = std::hint::black_box(&ro[(7 - RO_FROM) * page() + 20..][..4]);
            zdtm::ensure(seen == b"FILE", || {
                format!("the read-only mapping misses the write to the file: {seen:?}")
            })
        },
    );
}
