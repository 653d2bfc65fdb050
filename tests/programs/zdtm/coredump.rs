//! For `criu coredump` (tests/coredump.rs): a process whose state gdb
//! must find in the core file made from its images. The main thread waits
//! in `main -> coredump_main_outer -> coredump_main_inner`, a second thread
//! in `coredump_worker_outer -> coredump_worker_inner`, and the exported
//! variable `COREDUMP_MAGIC` holds [`MAGIC`] (set at run time, so the value
//! comes from the dumped memory, not from the executable's file).
//!
//! Usage: `zdtm_coredump DIR`. It writes its PID to `DIR/ready` once both
//! threads are in place, then waits to be dumped (killed); it gives up
//! after ten minutes or when `DIR/go` appears.
#[path = "lib.rs"]
mod zdtm;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The value gdb must print.
const MAGIC: u64 = 0x5eed_c0de_2023_0a17;

#[unsafe(no_mangle)]
pub static COREDUMP_MAGIC: AtomicU64 = AtomicU64::new(0);

static WORKER_READY: AtomicBool = AtomicBool::new(false);

const GIVE_UP: Duration = Duration::from_secs(600);

fn waiting_is_over(dir: &Path, start: Instant) -> bool {
    start.elapsed() > GIVE_UP || dir.join("go").exists()
}

#[inline(never)]
fn coredump_worker_inner(dir: &Path) {
    WORKER_READY.store(true, Ordering::SeqCst);
    let start = Instant::now();
    while !waiting_is_over(black_box(dir), start) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[inline(never)]
fn coredump_worker_outer(dir: PathBuf) {
    coredump_worker_inner(black_box(&dir));
    black_box(&dir);
}

#[inline(never)]
fn coredump_main_inner(dir: &Path) -> Result<(), String> {
    while !WORKER_READY.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    zdtm::write_atomic(&dir.join("ready"), &format!("{}\n", std::process::id()))?;
    let start = Instant::now();
    while !waiting_is_over(black_box(dir), start) {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

#[inline(never)]
fn coredump_main_outer(dir: &Path) -> Result<(), String> {
    let r = coredump_main_inner(black_box(dir));
    black_box(&r);
    r
}

fn main() {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .expect("usage: zdtm_coredump DIR"),
    );
    let _ = rustix::process::setsid();
    // SAFETY: close_range(3, ~0, 0) only closes fds; none is owned by a
    // Rust object yet (see zdtm::run).
    let ret = unsafe { criu_arch::syscall3(criu_arch::nr::CLOSE_RANGE, 3, u32::MAX as usize, 0) };
    if let Err(e) = zdtm::errno(ret, "close_range") {
        let _ = zdtm::write_atomic(&dir.join("result"), &format!("FAIL: {e}\n"));
        return;
    }
    COREDUMP_MAGIC.store(black_box(MAGIC), Ordering::SeqCst);
    let worker_dir = dir.clone();
    let worker = std::thread::Builder::new()
        .name("cd-worker".into())
        .spawn(move || coredump_worker_outer(worker_dir))
        .expect("spawn the worker");
    let verdict = coredump_main_outer(&dir);
    let _ = worker.join();
    let text = match verdict {
        Ok(()) => "PASS\n".to_string(),
        Err(e) => format!("FAIL: {e}\n"),
    };
    let _ = zdtm::write_atomic(&dir.join("result"), &text);
}
