//! Private file mappings: `DIR/private.dat` (16 pages) mapped MAP_PRIVATE
//! read-write with pages 1, 3, 4 and 15 written (copied on write) and the
//! others untouched, and `DIR/ro file (x).dat` (a name with spaces)
//! mapped MAP_PRIVATE read-only from page 4 on. After restore the written
//! pages hold the private data, the others show the file, the files on
//! disk are unchanged and the maps lines still name the files with their
//! offsets and `rw-p` / `r--p`.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::AsRawFd;
use std::path::PathBuf;

use zdtm::{MAP_PRIVATE, PROT_READ, PROT_WRITE, page};

const PAGES: usize = 16;
const WRITTEN: [usize; 4] = [1, 3, 4, 15];
const FILE_SEED: u64 = 7;
const RO_PAGES: usize = 12;
const RO_SKIP: usize = 4;
const RO_SEED: u64 = 8;

struct State {
    rw: usize,
    ro: usize,
    rw_path: PathBuf,
    ro_path: PathBuf,
}

fn file_contents(seed: u64, pages: usize) -> Vec<u8> {
    let mut v = vec![0u8; pages * page()];
    zdtm::fill_pattern(&mut v, seed);
    v
}

/// What page `p` of the read-write mapping must hold.
fn rw_page(p: usize) -> Vec<u8> {
    if WRITTEN.contains(&p) {
        let mut v = vec![0u8; page()];
        zdtm::fill_pattern(&mut v, 100 + p as u64);
        v
    } else {
        file_contents(FILE_SEED, PAGES)[p * page()..][..page()].to_vec()
    }
}

fn map_file(path: &PathBuf, len: usize, prot: usize, off: usize) -> Result<usize, String> {
    let f = std::fs::File::options()
        .read(true)
        .write(prot & PROT_WRITE != 0)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    // The mapping keeps the file; the fd is closed when `f` drops.
    zdtm::mmap(0, len, prot, MAP_PRIVATE, f.as_raw_fd(), off)
}

fn main() {
    zdtm::run(
        |args| {
            let rw_path = args.dir.join("private.dat");
            let ro_path = args.dir.join("ro file (x).dat");
            std::fs::write(&rw_path, file_contents(FILE_SEED, PAGES)).map_err(|e| e.to_string())?;
            std::fs::write(&ro_path, file_contents(RO_SEED, RO_PAGES))
                .map_err(|e| e.to_string())?;
            let rw = map_file(&rw_path, PAGES * page(), PROT_READ | PROT_WRITE, 0)?;
            let ro_len = (RO_PAGES - RO_SKIP) * page();
            let ro = map_file(&ro_path, ro_len, PROT_READ, RO_SKIP * page())?;
            // SAFETY: our fresh private read-write mapping.
            let mem = unsafe { zdtm::region(rw, PAGES * page()) };
            for p in WRITTEN {
                mem[p * page()..][..page()].copy_from_slice(&rw_page(p));
            }
            // Read the untouched pages and the read-only mapping too, so
            // that they are in the page tables (as file pages) at the dump.
            let mut sum = 0u8;
            for p in 0..PAGES {
                sum ^= mem[p * page()];
            }
            // SAFETY: our fresh read-only mapping.
            for b in unsafe { zdtm::region(ro, ro_len) }.iter().step_by(page()) {
                sum ^= b;
            }
            std::hint::black_box(sum);
            Ok(State {
                rw,
                ro,
                rw_path,
                ro_path,
            })
        },
        |_| {},
        |s| {
            let vma = zdtm::expect_vma("rw mapping", s.rw, PAGES * page(), "rw-p")?;
            zdtm::ensure(
                vma.path == s.rw_path.to_string_lossy() && vma.offset == 0,
                || format!("rw mapping: maps {} at offset {:#x}", vma.path, vma.offset),
            )?;
            let ro_len = (RO_PAGES - RO_SKIP) * page();
            let vma = zdtm::expect_vma("ro mapping", s.ro, ro_len, "r--p")?;
            zdtm::ensure(
                vma.path == s.ro_path.to_string_lossy() && vma.offset == (RO_SKIP * page()) as u64,
                || format!("ro mapping: maps {} at offset {:#x}", vma.path, vma.offset),
            )?;
            // SAFETY: checked above: our private read-write mapping.
            let mem = unsafe { zdtm::region(s.rw, PAGES * page()) };
            for p in 0..PAGES {
                let what = if WRITTEN.contains(&p) {
                    "written"
                } else {
                    "untouched"
                };
                let want = rw_page(p);
                let got = &mem[p * page()..][..page()];
                if let Some(i) = (0..page()).find(|&i| got[i] != want[i]) {
                    return Err(format!(
                        "rw mapping {what} page {p} byte {i}: {:#04x}, want {:#04x}",
                        got[i], want[i]
                    ));
                }
            }
            // SAFETY: checked above: our read-only mapping.
            let ro = unsafe { zdtm::region(s.ro, ro_len) };
            let want = file_contents(RO_SEED, RO_PAGES);
            zdtm::ensure(ro == &want[RO_SKIP * page()..], || {
                "ro mapping does not show the file from page 4 on".into()
            })?;
            let disk = std::fs::read(&s.rw_path).map_err(|e| e.to_string())?;
            zdtm::ensure(disk == file_contents(FILE_SEED, PAGES), || {
                "private.dat on disk changed (private writes reached the file?)".into()
            })?;
            let disk = std::fs::read(&s.ro_path).map_err(|e| e.to_string())?;
            zdtm::ensure(disk == want, || "the read-only file on disk changed".into())?;
            // Untouched pages still map the file's page cache (they were
            // not copied in as private pages): a write() to the file shows
            // in them, but not in the pages written before the dump.
            {
                use std::os::unix::fs::FileExt;
                let f = std::fs::File::options()
                    .write(true)
                    .open(&s.rw_path)
                    .map_err(|e| e.to_string())?;
                for p in [6, 3] {
                    f.write_all_at(b"NEW!", (p * page() + 100) as u64)
                        .map_err(|e| e.to_string())?;
                }
                let seen = std::hint::black_box(&mem[6 * page() + 100..][..4]);
                zdtm::ensure(seen == b"NEW!", || {
                    format!("untouched page 6 does not follow the file: {seen:02x?}")
                })?;
                let seen = std::hint::black_box(&mem[3 * page() + 100..][..4]);
                zdtm::ensure(seen == &rw_page(3)[100..104], || {
                    format!("written page 3 follows the file: {seen:02x?}")
                })?;
                let orig = file_contents(FILE_SEED, PAGES);
                for p in [6, 3] {
                    f.write_all_at(&orig[p * page() + 100..][..4], (p * page() + 100) as u64)
                        .map_err(|e| e.to_string())?;
                }
            }
            // The mapping is still private: a new write stays out of the file.
            mem[2 * page()] ^= 0xff;
            let disk = std::fs::read(&s.rw_path).map_err(|e| e.to_string())?;
            zdtm::ensure(disk == file_contents(FILE_SEED, PAGES), || {
                "a write to the mapping after restore reached private.dat".into()
            })
        },
    );
}
