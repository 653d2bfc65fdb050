//! The program side of the ZDTM-style tests (`tests/zdtm_*.rs`), included by
//! every `tests/programs/zdtm/*.rs` program with `#[path = "lib.rs"] mod zdtm;`.
//!
//! Protocol (driven by `tests/common/zdtm.rs`): a program is started as
//! `PROGRAM DIR [ARGS...]`; it becomes a session leader, closes every fd
//! it inherited above stdio, sets up the one kind of state it tests, and
//! writes its PID to `DIR/ready` (atomically, through a rename). It then
//! works (the `tick` closure, e.g. counting) until `DIR/go` exists,
//! checks that its state is exactly as it was set up and writes `PASS` or
//! `FAIL: reason` to `DIR/result`. The harness dumps and restores it
//! between `ready` and `go`.
#![allow(dead_code)] // Each program uses a different part of it.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a program waits for `go` before giving up (the harness is
/// far quicker; this only bounds a program whose harness died).
const GO_TIMEOUT: Duration = Duration::from_secs(120);

/// The test directory (first argument) and the rest of the arguments.
pub struct Args {
    pub dir: PathBuf,
    pub rest: Vec<String>,
}

/// Run a test program: `setup` builds the state (its value is what
/// `tick` and `check` see), `tick` runs repeatedly until `go` (about every
/// millisecond), `check` verifies the state after restore.
pub fn run<T>(
    setup: impl FnOnce(&Args) -> Result<T, String>,
    mut tick: impl FnMut(&mut T),
    check: impl FnOnce(T) -> Result<(), String>,
) {
    let mut argv = std::env::args_os().skip(1);
    let dir = PathBuf::from(argv.next().expect("usage: PROGRAM DIR [ARGS...]"));
    let args = Args {
        dir: dir.clone(),
        rest: argv.map(|a| a.to_string_lossy().into_owned()).collect(),
    };
    let verdict = (|| {
        let _ = rustix::process::setsid();
        close_inherited_fds()?;
        let pid = std::process::id();
        let mut state = setup(&args)?;
        write_atomic(&dir.join("ready"), &format!("{pid}\n"))?;
        let go = dir.join("go");
        let start = std::time::Instant::now();
        while !go.exists() {
            if start.elapsed() > GO_TIMEOUT {
                return Err("no go from the harness".to_string());
            }
            tick(&mut state);
            std::thread::sleep(Duration::from_millis(1));
        }
        if std::process::id() != pid {
            return Err(format!(
                "PID {} after restore, was {pid}",
                std::process::id()
            ));
        }
        check(state)
    })();
    let text = match verdict {
        Ok(()) => "PASS\n".to_string(),
        Err(e) => format!("FAIL: {e}\n"),
    };
    let _ = write_atomic(&dir.join("result"), &text);
}

/// Close every fd above stderr: the test runner's fds must not become
/// part of the dumped state.
fn close_inherited_fds() -> Result<(), String> {
    // SAFETY: close_range(3, ~0, 0) only closes fds; this program has
    // opened none of its own yet, so no Rust object owns any of them.
    let ret = unsafe { criu_arch::syscall3(criu_arch::nr::CLOSE_RANGE, 3, u32::MAX as usize, 0) };
    errno(ret, "close_range").map(drop)
}

/// Write `text` to `path` through a temporary file and a rename, so that
/// a reader never sees a partial file.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename {}: {e}", path.display()))
}

/// A raw syscall's return value as a `Result` (negative values are errnos).
pub fn errno(ret: isize, what: &str) -> Result<usize, String> {
    if ret < 0 {
        Err(format!("{what}: errno {}", -ret))
    } else {
        Ok(ret as usize)
    }
}

/// `Err(msg)` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

/// The `/proc/self/maps` line of the mapping that contains `addr`.
pub fn maps_line(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .find(|l| {
            let range = l.split_whitespace().next().unwrap_or("");
            let (s, e) = range.split_once('-').unwrap_or(("0", "0"));
            let s = usize::from_str_radix(s, 16).unwrap_or(0);
            let e = usize::from_str_radix(e, 16).unwrap_or(0);
            (s..e).contains(&addr)
        })
        .map(str::to_string)
}

/// Which of the `n` pages at `addr` are resident (`mincore`).
pub fn resident_pages(addr: usize, n: usize) -> Result<Vec<bool>, String> {
    let mut vec = vec![0u8; n];
    // SAFETY: mincore writes one byte per page of the range into `vec`,
    // which holds `n` bytes.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::MINCORE,
            addr,
            n * 4096,
            vec.as_mut_ptr() as usize,
        )
    };
    errno(ret, "mincore")?;
    Ok(vec.iter().map(|b| b & 1 != 0).collect())
}
