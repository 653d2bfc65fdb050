//! Sparse unlinked files (CRIU's ghost_holes00..02): DIR/sparse is 7 MiB
//! long (over the default `--ghost-limit` of 1 MiB) but holds only three
//! runs of data (48 KiB: under it, as only data counts): a hole at the
//! start, data, a hole, data, data at a page boundary and a hole at the
//! end. It is open read-write at an offset inside a hole, then unlinked.
//! After restore its size, its data, where its holes are (`SEEK_DATA` /
//! `SEEK_HOLE`) and its offset are as they were, and it uses no more
//! blocks than before (the holes were not filled).
//!
//! DIR/mapped, also unlinked, is mapped `MAP_SHARED` read-write and kept
//! open: after restore a write through the mapping is read through the fd
//! (one file again).
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

use zdtm::{MAP_SHARED, PROT_READ, PROT_WRITE, ensure, page};

const MIB: u64 = 1 << 20;
const SIZE: u64 = 7 * MIB;
/// (offset, length, pattern seed) of the data.
const RUNS: [(u64, u64, u64); 3] = [
    (MIB, 16 << 10, 51),
    (3 * MIB, 8 << 10, 52),
    (5 * MIB - (8 << 10), 24 << 10, 53),
];
/// The fd's offset: in the hole between the first two runs.
const POS: u64 = 2 * MIB + 5;

struct State {
    sparse: OwnedFd,
    /// `(data start, hole start)` pairs before the dump.
    layout: Vec<(u64, u64)>,
    blocks: u64,
    mapped: OwnedFd,
    map: usize,
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}

fn err(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Where the data and holes of `fd` are, as `SEEK_DATA`/`SEEK_HOLE` see it.
fn layout(fd: &OwnedFd) -> Result<Vec<(u64, u64)>, String> {
    use rustix::fs::SeekFrom;
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let data = match rustix::fs::seek(fd, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => return Ok(out),
            Err(e) => return Err(format!("SEEK_DATA: {e}")),
        };
        let hole = rustix::fs::seek(fd, SeekFrom::Hole(data)).map_err(|e| e.to_string())?;
        out.push((data, hole));
        pos = hole;
    }
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let path = args.dir.join("sparse");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(err("create sparse"))?;
    f.set_len(SIZE).map_err(err("ftruncate"))?;
    for (off, len, seed) in RUNS {
        let mut data = vec![0u8; len as usize];
        zdtm::fill_pattern(&mut data, seed);
        f.write_all_at(&data, off).map_err(err("write"))?;
    }
    f.sync_all().map_err(err("fsync"))?;
    let sparse = OwnedFd::from(f);
    std::fs::remove_file(&path).map_err(err("unlink sparse"))?;
    // (SEEK_DATA/SEEK_HOLE move the offset: it is set afterwards.)
    let layout = layout(&sparse)?;
    rustix::fs::seek(&sparse, rustix::fs::SeekFrom::Start(POS)).map_err(|e| e.to_string())?;
    ensure(layout.len() >= RUNS.len() - 1, || {
        format!("this filesystem keeps no holes: {layout:?}")
    })?;
    let blocks = rustix::fs::fstat(&sparse)
        .map_err(|e| e.to_string())?
        .st_blocks as u64;

    let mpath = args.dir.join("mapped");
    let m = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&mpath)
        .map_err(err("create mapped"))?;
    m.set_len(page() as u64).map_err(err("ftruncate"))?;
    let mapped = OwnedFd::from(m);
    let map = zdtm::mmap(
        0,
        page(),
        PROT_READ | PROT_WRITE,
        MAP_SHARED,
        mapped.as_raw_fd(),
        0,
    )?;
    std::fs::remove_file(&mpath).map_err(err("unlink mapped"))?;
    Ok(State {
        sparse,
        layout,
        blocks,
        mapped,
        map,
    })
}

fn check(s: State) -> Result<(), String> {
    let st = rustix::fs::fstat(&s.sparse).map_err(|e| e.to_string())?;
    ensure(st.st_nlink == 0, || {
        format!("sparse: {} links", st.st_nlink)
    })?;
    ensure(st.st_size as u64 == SIZE, || {
        format!("sparse: size {}, want {SIZE}", st.st_size)
    })?;
    let pos =
        rustix::fs::seek(&s.sparse, rustix::fs::SeekFrom::Current(0)).map_err(|e| e.to_string())?;
    ensure(pos == POS, || format!("sparse: offset {pos}, want {POS}"))?;
    let f = std::fs::File::from(s.sparse.try_clone().map_err(err("dup"))?);
    for (off, len, seed) in RUNS {
        let mut data = vec![0u8; len as usize];
        f.read_exact_at(&mut data, off).map_err(err("read"))?;
        zdtm::check_pattern(&format!("sparse data at {off:#x}"), &data, seed)?;
    }
    let now = layout(&s.sparse)?;
    ensure(now == s.layout, || {
        format!(
            "sparse: data/holes {now:x?}, were {:x?} (holes filled?)",
            s.layout
        )
    })?;
    ensure(st.st_blocks as u64 <= s.blocks, || {
        format!("sparse: {} blocks, were {}", st.st_blocks, s.blocks)
    })?;
    // The mapping and the fd are one unlinked file.
    // SAFETY: our shared mapping of one page.
    let mem = unsafe { zdtm::region(s.map, page()) };
    mem[10..16].copy_from_slice(b"shared");
    let mut got = [0u8; 6];
    let mf = std::fs::File::from(s.mapped);
    mf.read_exact_at(&mut got, 10).map_err(err("read mapped"))?;
    ensure(&got == b"shared", || {
        format!("mapped: a write through the mapping reads back as {got:?}")
    })?;
    let st = rustix::fs::fstat(&mf).map_err(|e| e.to_string())?;
    ensure(st.st_nlink == 0, || {
        format!("mapped: {} links", st.st_nlink)
    })
}
