//! A task for the restore tests: holds memory patterns (dense heap, sparse
//! anonymous mapping with holes, a counter in a static), reports ready, then
//! polls for `DIR/go` while counting. On `go` it checks that the patterns
//! survived, that its PID is the one it started with and that its sparse
//! mapping's holes are still holes, then writes `PASS` or `FAIL: reason`
//! to `DIR/result`.
//!
//! Usage: `restore_pattern DIR` (DIR absolute: the cwd is not restored).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const DENSE_LEN: usize = 4 << 20;
const SPARSE_PAGES: usize = 256;
const SPARSE_STRIDE: usize = 16;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn byte_at(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: restore_pattern DIR"));
    let _ = rustix::process::setsid();
    let pid = std::process::id();
    let dense: Vec<u8> = (0..DENSE_LEN).map(byte_at).collect();
    let page = rustix::param::page_size();
    // A sparse anonymous mapping: a Vec of zeroed pages the allocator gets
    // with mmap (large), touched on every SPARSE_STRIDE-th page only.
    let mut sparse = vec![0u8; SPARSE_PAGES * page];
    for p in (0..SPARSE_PAGES).step_by(SPARSE_STRIDE) {
        sparse[p * page] = (p as u8) | 1;
    }
    std::fs::write(dir.join("ready"), pid.to_string()).expect("ready");
    while !dir.join("go").exists() {
        COUNTER.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
    }
    let verdict = check(&dense, &sparse, page, pid);
    std::fs::write(dir.join("result"), verdict).expect("result");
}

fn check(dense: &[u8], sparse: &[u8], page: usize, pid: u32) -> String {
    if std::process::id() != pid {
        return format!("FAIL: pid {} != {pid}", std::process::id());
    }
    if let Some(i) = (0..DENSE_LEN).find(|&i| dense[i] != byte_at(i)) {
        return format!("FAIL: dense byte {i}");
    }
    for p in 0..SPARSE_PAGES {
        let want = if p % SPARSE_STRIDE == 0 {
            (p as u8) | 1
        } else {
            0
        };
        if sparse[p * page] != want {
            return format!("FAIL: sparse page {p}");
        }
    }
    if COUNTER.load(Ordering::Relaxed) == 0 {
        return "FAIL: counter lost".into();
    }
    "PASS".into()
}
