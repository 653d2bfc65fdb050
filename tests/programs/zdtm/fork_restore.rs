//! Tasks that fork the moment they run again after a restore: none of
//! their children may inherit the restorer's bootstrap region (a shared
//! read+write+exec mapping, `rwxs` in /proc/PID/maps, which nothing in this
//! program makes).
//!
//! The root forks child C, which starts a second thread T. The root, C and
//! T each sleep in 1 ms steps to an absolute deadline (after a restore the
//! restarted sleep returns at once) and after each step look whether they
//! are a restored process: their count of voluntary context switches
//! (`getrusage(RUSAGE_THREAD)`, pumped to a few hundred at the start and
//! growing by one a step) went down (a restored thread is a new thread,
//! its count starts again), or their process start time differs. (A
//! timer slack of their own no longer tells: the dump refuses it.) If so they fork a
//! checker right away. The checker scans its own maps with raw syscalls only (it may be
//! the fork of a threaded process) and exits 1 if it finds an `rwxs`
//! mapping. C reports to the root through its exit status (its reason in
//! `DIR/fail-PID`).
#[path = "lib.rs"]
mod zdtm;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criu_arch::nr;

const CLOCK_MONOTONIC: usize = 1;
const TIMER_ABSTIME: usize = 1;

fn exit(code: usize) -> ! {
    // SAFETY: ends this process.
    unsafe { criu_arch::syscall1(nr::EXIT_GROUP, code) };
    unreachable!("exit_group returned")
}

/// The checker, in a fresh fork: exit 1 if its maps hold an `rwxs`
/// mapping, 2 if they cannot be read, else 0. No allocation (a fork of a
/// threaded process may find the allocator's lock held).
fn checker() -> ! {
    static PATH: &[u8] = b"/proc/self/maps\0";
    // SAFETY: a NUL-terminated static path; integer flags.
    let fd = unsafe {
        criu_arch::syscall4(nr::OPENAT, -100isize as usize, PATH.as_ptr() as usize, 0, 0)
    };
    if fd < 0 {
        exit(2);
    }
    let mut buf = [0u8; 4096 + 4];
    let mut keep = 0;
    loop {
        // SAFETY: reads into our stack buffer, after the kept bytes.
        let n = unsafe {
            criu_arch::syscall3(
                nr::READ,
                fd as usize,
                buf[keep..].as_mut_ptr() as usize,
                buf.len() - keep,
            )
        };
        if n < 0 {
            exit(2);
        }
        if n == 0 {
            exit(0);
        }
        let end = keep + n as usize;
        if buf[..end].windows(5).any(|w| w == b" rwxs") {
            exit(1);
        }
        // Keep the last 4 bytes: a match may straddle two reads.
        let tail = end.min(4);
        buf.copy_within(end - tail..end, 0);
        keep = tail;
    }
}

/// Field 22 of /proc/self/stat: when this process started (a restored
/// process is a new one).
fn start_time() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    stat.rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().nth(19))
        .unwrap_or("")
        .to_string()
}

const RUSAGE_THREAD: usize = 1;

/// This thread's voluntary context switches (`ru_nvcsw`, the 17th long of
/// `struct rusage` after its two timevals' four).
fn switches() -> i64 {
    let mut ru = [0i64; 18];
    // SAFETY: getrusage writes one struct rusage (18 longs) into `ru`.
    unsafe {
        criu_arch::syscall2(
            linux_raw_sys::general::__NR_getrusage as usize,
            RUSAGE_THREAD,
            ru.as_mut_ptr() as usize,
        )
    };
    ru[16]
}

/// Sleep `ns` nanoseconds (relative: one voluntary switch).
fn nap(ns: i64) {
    let ts = [0i64, ns];
    // SAFETY: reads the timespec `ts`, no remainder is written.
    unsafe {
        criu_arch::syscall4(
            nr::CLOCK_NANOSLEEP,
            CLOCK_MONOTONIC,
            0,
            ts.as_ptr() as usize,
            0,
        )
    };
}

/// One watching thread's state.
struct Watch {
    start: String,
    /// The voluntary switches seen at the last step.
    seen: i64,
    /// Checkers forked and their failures.
    checked: u32,
    fails: Vec<String>,
    /// The start time says restored (checked once `go` came).
    late_check: bool,
}

impl Watch {
    fn new() -> Watch {
        // A count far above what a restored thread's reaches before it
        // runs this code again.
        for _ in 0..500 {
            nap(1_000);
        }
        Watch {
            start: start_time(),
            seen: switches(),
            checked: 0,
            fails: Vec::new(),
            late_check: false,
        }
    }

    /// Sleep 1 ms (to an absolute deadline); if restored, fork a checker
    /// at once (once).
    fn step(&mut self) {
        let mut ts = [0i64; 2];
        // SAFETY: clock_gettime writes one timespec into `ts`.
        unsafe {
            criu_arch::syscall2(nr::CLOCK_GETTIME, CLOCK_MONOTONIC, ts.as_mut_ptr() as usize)
        };
        ts[1] += 1_000_000;
        if ts[1] >= 1_000_000_000 {
            ts[0] += 1;
            ts[1] -= 1_000_000_000;
        }
        // SAFETY: reads the timespec `ts`, no remainder is written.
        unsafe {
            criu_arch::syscall4(
                nr::CLOCK_NANOSLEEP,
                CLOCK_MONOTONIC,
                TIMER_ABSTIME,
                ts.as_ptr() as usize,
                0,
            )
        };
        // Only the switch count is looked at here: reading /proc/self/stat
        // holds an fd on a /proc path, which no restore could reopen were
        // the dump to come at that moment. (The start time is compared in
        // `verdict`, after `go`, when no dump comes any more.)
        let now = switches();
        let restored = now < self.seen;
        self.seen = now;
        if self.checked == 0 && (restored || self.late_check) {
            self.checked += 1;
            // SAFETY: the checker (forked from a task with two threads)
            // only makes raw syscalls and exits.
            match unsafe { zdtm::fork(0) } {
                Ok(0) => checker(),
                Ok(pid) => match zdtm::wait_status(pid, linux_raw_sys::general::__WALL as usize) {
                    Ok(0) => {}
                    Ok(st) => self.fails.push(format!(
                        "checker {pid} of {} ended with {st:#x} (1 = the restorer's region was inherited)",
                        std::process::id()
                    )),
                    Err(e) => self.fails.push(e),
                },
                Err(e) => self.fails.push(e),
            }
        }
    }

    fn verdict(&mut self, who: &str) -> Result<(), String> {
        // `go` may come before a step ran since the restore (the task was
        // dumped outside its steps): one more, which forks the checker.
        if self.checked == 0 {
            self.late_check = start_time() != self.start;
            self.step();
        }
        if !self.fails.is_empty() {
            return Err(format!("{who}: {}", self.fails.join("; ")));
        }
        zdtm::ensure(self.checked == 1, || {
            format!("{who}: never saw itself restored")
        })
    }
}

/// Child C: a second thread watching too, both until `go`.
fn child_main(dir: &Path) -> Result<(), String> {
    static STOP: AtomicU32 = AtomicU32::new(0);
    let t_dir = dir.to_path_buf();
    let t = std::thread::spawn(move || {
        let mut w = Watch::new();
        zdtm::write_atomic(&t_dir.join("watching-t"), "")?;
        while STOP.load(Ordering::Acquire) == 0 {
            w.step();
        }
        w.verdict("thread of C")
    });
    let mut w = Watch::new();
    zdtm::write_atomic(&dir.join("watching-c"), "")?;
    let go = dir.join("go");
    let start = Instant::now();
    while !go.exists() {
        if zdtm::waited_too_long(start) {
            return Err("no go".into());
        }
        for _ in 0..10 {
            w.step();
        }
    }
    STOP.store(1, Ordering::Release);
    let thread = t.join().map_err(|_| "thread panicked".to_string())?;
    w.verdict("C").and(thread)
}

struct State {
    dir: PathBuf,
    child: i32,
    watch: Watch,
}

fn main() {
    zdtm::run(
        |args| {
            let dir = args.dir.clone();
            // SAFETY: single-threaded yet: the child may do anything.
            let child = unsafe { zdtm::fork(0) }?;
            if child == 0 {
                let code = match child_main(&dir) {
                    Ok(()) => 0,
                    Err(e) => {
                        let me = std::process::id();
                        let _ = zdtm::write_atomic(&dir.join(format!("fail-{me}")), &e);
                        1
                    }
                };
                exit(code);
            }
            let watch = Watch::new();
            // Ready only once C and its thread watch too: a dump while
            // one still pumps its switch count would go unseen by it.
            let start = Instant::now();
            while !(dir.join("watching-c").exists() && dir.join("watching-t").exists()) {
                if zdtm::waited_too_long(start) {
                    return Err("C and its thread never said they watch".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(State { dir, child, watch })
        },
        |s| {
            for _ in 0..10 {
                s.watch.step();
            }
        },
        |mut s| {
            let st = zdtm::wait_status(s.child, linux_raw_sys::general::__WALL as usize)?;
            if st != 0 {
                let why = std::fs::read_to_string(s.dir.join(format!("fail-{}", s.child)))
                    .unwrap_or_else(|_| format!("wait status {st:#x}"));
                return Err(format!("child {}: {why}", s.child));
            }
            s.watch.verdict("root")
        },
    );
}
