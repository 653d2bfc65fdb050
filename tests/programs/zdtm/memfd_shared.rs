//! A memfd (16 pages, a pattern in every other page) mapped MAP_SHARED
//! read-write, with its fd kept open. After restore the mapping shows the
//! data (and zeroes in the untouched pages), is still `rw-s` of
//! `/memfd:zdtm-memfd (deleted)`, and the fd and the mapping are still the
//! same object: a pwrite to the fd shows in the mapping and a write to the
//! mapping is read back by pread.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, OwnedFd};

use zdtm::{MAP_SHARED, PROT_READ, PROT_WRITE, page};

const PAGES: usize = 16;
const NAME: &str = "zdtm-memfd";

struct State {
    fd: OwnedFd,
    addr: usize,
}

fn main() {
    zdtm::run(
        |_| {
            let fd = rustix::fs::memfd_create(NAME, rustix::fs::MemfdFlags::CLOEXEC)
                .map_err(|e| format!("memfd_create: {e}"))?;
            rustix::fs::ftruncate(&fd, (PAGES * page()) as u64)
                .map_err(|e| format!("ftruncate: {e}"))?;
            let addr = zdtm::mmap(
                0,
                PAGES * page(),
                PROT_READ | PROT_WRITE,
                MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )?;
            // SAFETY: our fresh shared mapping of the memfd.
            let mem = unsafe { zdtm::region(addr, PAGES * page()) };
            for p in (0..PAGES).step_by(2) {
                zdtm::fill_pattern(&mut mem[p * page()..][..page()], 700 + p as u64);
            }
            Ok(State { fd, addr })
        },
        |_| {},
        |s| {
            let vma = zdtm::expect_vma("mapping", s.addr, PAGES * page(), "rw-s")?;
            let want = format!("/memfd:{NAME} (deleted)");
            zdtm::ensure(vma.path == want && vma.offset == 0, || {
                format!(
                    "mapping: maps {:?} at offset {:#x}, want {want:?}",
                    vma.path, vma.offset
                )
            })?;
            let link = std::fs::read_link(format!("/proc/self/fd/{}", s.fd.as_raw_fd()))
                .map_err(|e| format!("fd link: {e}"))?;
            zdtm::ensure(link.to_string_lossy() == want, || {
                format!("fd {} is {}, want {want}", s.fd.as_raw_fd(), link.display())
            })?;
            // SAFETY: checked above: our shared mapping of the memfd.
            let mem = unsafe { zdtm::region(s.addr, PAGES * page()) };
            for p in 0..PAGES {
                let page = &mem[p * page()..][..page()];
                if p % 2 == 0 {
                    zdtm::check_pattern(&format!("page {p}"), page, 700 + p as u64)?;
                } else if let Some(i) = page.iter().position(|&b| b != 0) {
                    return Err(format!("untouched page {p} byte {i} is {:#04x}", page[i]));
                }
            }
            // The fd and the mapping are one object.
            let n = rustix::io::pwrite(&s.fd, b"FD->MAP", (3 * page() + 5) as u64)
                .map_err(|e| format!("pwrite: {e}"))?;
            zdtm::ensure(n == 7, || format!("short pwrite: {n}"))?;
            let seen = std::hint::black_box(&mem[3 * page() + 5..][..7]);
            zdtm::ensure(seen == b"FD->MAP", || {
                format!("a pwrite to the memfd does not show in the mapping: {seen:02x?}")
            })?;
            mem[4 * page() + 9..][..7].copy_from_slice(b"MAP->FD");
            let mut got = [0u8; 7];
            rustix::io::pread(&s.fd, &mut got, (4 * page() + 9) as u64)
                .map_err(|e| format!("pread: {e}"))?;
            zdtm::ensure(&got == b"MAP->FD", || {
                format!("a write to the mapping does not reach the memfd: {got:02x?}")
            })
        },
    );
}
