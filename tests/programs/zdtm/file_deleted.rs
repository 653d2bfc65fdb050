//! A private read-write mapping of a file that was then unlinked (CRIU
//! keeps such a file's contents in a ghost file image): pages 0 and 2
//! written (copied on write), the others untouched. After restore the
//! mapping still shows the file's data and the private pages, and
//! /proc/self/maps names the file as `(deleted)`.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::AsRawFd;

use zdtm::{MAP_PRIVATE, PROT_READ, PROT_WRITE};

const PAGES: usize = 6;
const FILE_SEED: u64 = 800;
const WRITTEN: [usize; 2] = [0, 2];

/// What page `p` of the mapping must hold.
fn page_bytes(p: usize) -> Vec<u8> {
    let mut v = vec![0u8; zdtm::page()];
    if WRITTEN.contains(&p) {
        zdtm::fill_pattern(&mut v, 900 + p as u64);
    } else {
        let mut file = vec![0u8; PAGES * zdtm::page()];
        zdtm::fill_pattern(&mut file, FILE_SEED);
        v.copy_from_slice(&file[p * zdtm::page()..][..zdtm::page()]);
    }
    v
}

fn main() {
    zdtm::run(
        |args| {
            let path = args.dir.join("gone.dat");
            let mut data = vec![0u8; PAGES * zdtm::page()];
            zdtm::fill_pattern(&mut data, FILE_SEED);
            std::fs::write(&path, &data).map_err(|e| e.to_string())?;
            let f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            let addr = zdtm::mmap(
                0,
                PAGES * zdtm::page(),
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )?;
            drop(f);
            std::fs::remove_file(&path).map_err(|e| e.to_string())?;
            // SAFETY: our fresh private mapping.
            let mem = unsafe { zdtm::region(addr, PAGES * zdtm::page()) };
            for p in WRITTEN {
                mem[p * zdtm::page()..][..zdtm::page()].copy_from_slice(&page_bytes(p));
            }
            Ok((addr, path))
        },
        |_| {},
        |(addr, path)| {
            let vma = zdtm::expect_vma("mapping", addr, PAGES * zdtm::page(), "rw-p")?;
            let want = format!("{} (deleted)", path.display());
            zdtm::ensure(vma.path == want, || {
                format!("mapping: maps {:?}, want {want:?}", vma.path)
            })?;
            // SAFETY: checked above: our private mapping.
            let mem = unsafe { zdtm::region(addr, PAGES * zdtm::page()) };
            for p in 0..PAGES {
                let want = page_bytes(p);
                let got = &mem[p * zdtm::page()..][..zdtm::page()];
                if let Some(i) = (0..zdtm::page()).find(|&i| got[i] != want[i]) {
                    return Err(format!(
                        "page {p} byte {i}: {:#04x}, want {:#04x}",
                        got[i], want[i]
                    ));
                }
            }
            zdtm::ensure(!path.exists(), || "the deleted file is back in DIR".into())
        },
    );
}
