//! Tasks that fork the moment they run again after a restore: none of
//! their children may inherit the restorer's bootstrap region (a shared
//! read+write+exec mapping, `rwxs` in /proc/PID/maps, which nothing in this
//! program makes).
//!
//! The root forks child C, which starts a second thread T. The root, C and
//! T each sleep in 1 ms steps to an absolute deadline (after a restore the
//! restarted sleep returns at once) and after each step look whether they
//! are a restored process: their timer slack (set to an odd value at the
//! start; the restore does not bring it back, a restored thread has its
//! creator's) or their process start time differs. If so they fork a
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

const SIGCHLD: usize = 17;
const CLOCK_MONOTONIC: usize = 1;
const TIMER_ABSTIME: usize = 1;

/// fork(2) through clone (no CLONE_VM: the child runs on a copy).
fn fork() -> Result<i32, String> {
    let (a, b) = if cfg!(target_arch = "s390x") {
        (0, SIGCHLD)
    } else {
        (SIGCHLD, 0)
    };
    // SAFETY: a plain fork; the child only makes raw syscalls and exits.
    let ret = unsafe { criu_arch::syscall5(nr::CLONE, a, b, 0, 0, 0) };
    zdtm::errno(ret, "fork").map(|p| p as i32)
}

/// Raw wait status of child `pid`.
fn wait(pid: i32) -> Result<i32, String> {
    let mut status: i32 = 0;
    // SAFETY: wait4 writes one int into `status`, live for the call.
    let ret = unsafe {
        criu_arch::syscall4(
            nr::WAIT4,
            pid as usize,
            std::ptr::from_mut(&mut status) as usize,
            0x4000_0000, // __WALL
            0,
        )
    };
    zdtm::errno(ret, &format!("wait4({pid})"))?;
    Ok(status)
}

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

const PR_SET_TIMERSLACK: usize = 29;
const PR_GET_TIMERSLACK: usize = 30;
/// The odd timer slack (ns) every watching thread sets.
const SLACK: usize = 12_345;

fn timer_slack() -> isize {
    // SAFETY: integer arguments only.
    unsafe { criu_arch::syscall2(nr::PRCTL, PR_GET_TIMERSLACK, 0) }
}

/// One watching thread's state.
struct Watch {
    start: String,
    /// Checkers forked and their failures.
    checked: u32,
    fails: Vec<String>,
    /// The start time says restored (checked once `go` came).
    late_check: bool,
}

impl Watch {
    fn new() -> Watch {
        // SAFETY: integer arguments only.
        unsafe { criu_arch::syscall2(nr::PRCTL, PR_SET_TIMERSLACK, SLACK) };
        Watch {
            start: start_time(),
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
        // Only the timer slack is looked at here: reading /proc/self/stat
        // holds an fd on a /proc path, which no restore could reopen were
        // the dump to come at that moment. (The start time is compared in
        // `verdict`, after `go`, when no dump comes any more.)
        if self.checked == 0 && (timer_slack() != SLACK as isize || self.late_check) {
            self.checked += 1;
            match fork() {
                Ok(0) => checker(),
                Ok(pid) => match wait(pid) {
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

/// Written by C once it and its thread watch: the root says ready only
/// then (a dump before would find C not yet watching, and C would take
/// its first look after the restore for the state before it).
const CHILD_WATCHING: &str = "child-watching";

/// Child C: a second thread watching too, both until `go`.
fn child_main(dir: &Path) -> Result<(), String> {
    static STOP: AtomicU32 = AtomicU32::new(0);
    static THREAD_WATCHING: AtomicU32 = AtomicU32::new(0);
    let t = std::thread::spawn(|| {
        let mut w = Watch::new();
        THREAD_WATCHING.store(1, Ordering::Release);
        while STOP.load(Ordering::Acquire) == 0 {
            w.step();
        }
        w.verdict("thread of C")
    });
    let mut w = Watch::new();
    let start = Instant::now();
    while THREAD_WATCHING.load(Ordering::Acquire) == 0 {
        zdtm::ensure(start.elapsed() < Duration::from_secs(30), || {
            "C's thread never started watching".into()
        })?;
        std::thread::sleep(Duration::from_millis(1));
    }
    zdtm::write_atomic(&dir.join(CHILD_WATCHING), "")?;
    let go = dir.join("go");
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
            let child = fork()?;
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
            let start = Instant::now();
            while !dir.join(CHILD_WATCHING).exists() {
                zdtm::ensure(start.elapsed() < Duration::from_secs(30), || {
                    "C never started watching".into()
                })?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(State {
                dir,
                child,
                watch: Watch::new(),
            })
        },
        |s| {
            for _ in 0..10 {
                s.watch.step();
            }
        },
        |mut s| {
            let st = wait(s.child)?;
            if st != 0 {
                let why = std::fs::read_to_string(s.dir.join(format!("fail-{}", s.child)))
                    .unwrap_or_else(|_| format!("wait status {st:#x}"));
                return Err(format!("child {}: {why}", s.child));
            }
            s.watch.verdict("root")
        },
    );
}
