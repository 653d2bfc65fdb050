//! File mappings keep the access mode of the file they were made from
//! (`vma_entry.fdflags`), not one guessed from their protections:
//!
//! - `rw.dat` opened `O_RDWR`, mapped `MAP_SHARED` read-only, fd closed:
//!   after restore `mprotect` to read-write works and a write through the
//!   mapping reaches the file;
//! - `ro.dat` opened `O_RDONLY`, mapped `MAP_SHARED` read-only: after
//!   restore `mprotect` to write still fails with `EACCES`;
//! - `priv.dat` opened `O_RDWR`, mapped `MAP_PRIVATE` read-only: its
//!   `map_files` link still says read-write, and a write stays private.
//!
//! Each mapping's `/proc/self/map_files/` link shows the mode it holds
//! the file with (`rw` or `r-`), which must be the same after restore.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use zdtm::{MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, page};

const EACCES: &str = "errno 13";

struct Map {
    name: &'static str,
    path: PathBuf,
    addr: usize,
    /// The `map_files` link's owner permission bits (0o600 or 0o400).
    mode: u32,
}

struct State {
    rw: Map,
    ro: Map,
    private: Map,
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}

/// Make `name` (one page of `fill`), open it read-write or not, map it.
fn map(dir: &Path, name: &'static str, write: bool, flags: usize) -> Result<Map, String> {
    let path = dir.join(name);
    std::fs::write(&path, vec![b'a'; page()]).map_err(|e| format!("{name}: {e}"))?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(&path)
        .map_err(|e| format!("open {name}: {e}"))?;
    let addr = zdtm::mmap(0, page(), PROT_READ, flags, f.as_raw_fd(), 0)?;
    drop(f);
    let mode = link_mode(addr)?;
    let want = if write { 0o600 } else { 0o400 };
    zdtm::ensure(mode == want, || {
        format!("{name}: map_files link mode {mode:o} before dump, want {want:o}")
    })?;
    Ok(Map {
        name,
        path,
        addr,
        mode,
    })
}

/// Owner permission bits of the mapping's `map_files` link.
fn link_mode(addr: usize) -> Result<u32, String> {
    let link = format!("/proc/self/map_files/{:x}-{:x}", addr, addr + page());
    let m = std::fs::symlink_metadata(&link).map_err(|e| format!("{link}: {e}"))?;
    Ok(m.mode() & 0o600)
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    Ok(State {
        rw: map(&args.dir, "rw.dat", true, MAP_SHARED)?,
        ro: map(&args.dir, "ro.dat", false, MAP_SHARED)?,
        private: map(&args.dir, "priv.dat", true, MAP_PRIVATE)?,
    })
}

/// Byte 0 of file `path`.
fn file_byte(path: &Path) -> Result<u8, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut b = [0u8];
    f.read_exact_at(&mut b, 0)
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    Ok(b[0])
}

fn check(s: State) -> Result<(), String> {
    let perms = [(&s.rw, "r--s"), (&s.ro, "r--s"), (&s.private, "r--p")];
    for (m, perms) in perms {
        zdtm::expect_vma(m.name, m.addr, page(), perms)?;
        let mode = link_mode(m.addr)?;
        zdtm::ensure(mode == m.mode, || {
            format!(
                "{}: the mapping holds the file with mode {mode:o}, was {:o}",
                m.name, m.mode
            )
        })?;
    }
    // Made writable again, the shared mapping still writes to the file.
    zdtm::mprotect(s.rw.addr, page(), PROT_READ | PROT_WRITE)
        .map_err(|e| format!("rw.dat: mprotect to read-write: {e}"))?;
    // SAFETY: our shared mapping of one page, writable now.
    let mem = unsafe { zdtm::region(s.rw.addr, page()) };
    mem[0] = b'W';
    let b = file_byte(&s.rw.path)?;
    zdtm::ensure(b == b'W', || {
        format!("rw.dat: a write through the mapping is not in the file ({b:#04x})")
    })?;
    // A read-only file stays so.
    match zdtm::mprotect(s.ro.addr, page(), PROT_READ | PROT_WRITE) {
        Err(e) if e.ends_with(EACCES) => {}
        Err(e) => return Err(format!("ro.dat: mprotect to write: {e}, want EACCES")),
        Ok(()) => return Err("ro.dat: a read-only file's shared mapping became writable".into()),
    }
    // A private mapping's writes stay private.
    zdtm::mprotect(s.private.addr, page(), PROT_READ | PROT_WRITE)?;
    // SAFETY: our private mapping of one page, writable now.
    let mem = unsafe { zdtm::region(s.private.addr, page()) };
    mem[0] = b'P';
    let b = file_byte(&s.private.path)?;
    zdtm::ensure(b == b'a', || {
        format!("priv.dat: a write to the private mapping reached the file ({b:#04x})")
    })
}
