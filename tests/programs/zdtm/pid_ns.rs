//! The init of a pid namespace with its tree (`PROGRAM DIR`, started as
//! pid 1 of a new pid namespace: `ns_exec pid -- PROGRAM DIR`, or
//! `unshare --pid --fork PROGRAM DIR`).
//!
//! The init (pid 1) forks child A, child B with a grandchild G, and child
//! C whose child O it orphans (C exits and is reaped, so O's parent is
//! the init); then it starts two threads. After restore every task checks
//! that its PID, parent, group and session in the namespace are as they
//! were (the init: pid 1, parent 0), each thread that its TID is, and the
//! init that every child ends well. Each task also writes
//! `DIR/ids-PID` (`pid ppid`, in the namespace) for the harness, which
//! compares them with what it sees from outside (`NSpid:`).
#[path = "lib.rs"]
mod zdtm;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use criu_arch::nr;

const WAIT: Duration = Duration::from_secs(30);

fn sys0(n: usize) -> i32 {
    // SAFETY: integer-only process syscalls without arguments (getpid,
    // getppid, gettid).
    unsafe { criu_arch::syscall0(n) as i32 }
}

fn sys1(n: usize, a: usize) -> i32 {
    // SAFETY: integer-only process syscalls (getpgid, getsid).
    unsafe { criu_arch::syscall1(n, a) as i32 }
}

/// A task's ids in its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ids {
    pid: i32,
    ppid: i32,
    pgid: i32,
    sid: i32,
}

impl Ids {
    fn now() -> Ids {
        Ids {
            pid: sys0(nr::GETPID),
            ppid: sys0(nr::GETPPID),
            pgid: sys1(nr::GETPGID, 0),
            sid: sys1(nr::GETSID, 0),
        }
    }

    /// Note them for the harness.
    fn note(&self, dir: &Path) -> Result<(), String> {
        zdtm::write_atomic(
            &dir.join(format!("ids-{}", self.pid)),
            &format!("{} {}\n", self.pid, self.ppid),
        )
    }

    fn check(&self, who: &str) -> Result<(), String> {
        let now = Ids::now();
        zdtm::ensure(now == *self, || {
            format!("{who}: ids are {now:?} after restore, were {self:?}")
        })
    }
}

/// A task of the tree: note its ids, wait for go, check them.
fn task(dir: &Path, who: &str) -> Result<(), String> {
    let ids = Ids::now();
    ids.note(dir)?;
    zdtm::wait_go(dir)?;
    ids.check(who)
}

/// Child C: fork O, which waits until the init adopts it, then exit.
fn orphaning(dir: &Path) -> Result<(), String> {
    let dir2 = dir.to_path_buf();
    zdtm::child(dir, move || {
        let start = Instant::now();
        while sys0(nr::GETPPID) != 1 {
            zdtm::ensure(start.elapsed() < WAIT, || {
                "O: never adopted by the init".into()
            })?;
            std::thread::sleep(Duration::from_millis(1));
        }
        let ids = Ids::now();
        ids.note(&dir2)?;
        zdtm::write_atomic(&dir2.join("orphan-ready"), &ids.pid.to_string())?;
        zdtm::wait_go(&dir2)?;
        ids.check("O")
    })?;
    Ok(())
}

/// Wait for `what` (a file in `dir`).
fn wait_file(dir: &Path, what: &str) -> Result<(), String> {
    let start = Instant::now();
    while !dir.join(what).exists() {
        zdtm::ensure(start.elapsed() < WAIT, || format!("{what} never appeared"))?;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

struct State {
    dir: std::path::PathBuf,
    ids: Ids,
    children: Vec<(i32, &'static str)>,
    threads: Vec<(i32, std::thread::JoinHandle<Result<(), String>>)>,
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let dir = args.dir.clone();
    let ids = Ids::now();
    zdtm::ensure(ids.pid == 1, || {
        format!("not the init of a pid namespace: pid {}", ids.pid)
    })?;
    zdtm::ensure(ids.ppid == 0, || {
        format!("the init's parent is {}", ids.ppid)
    })?;
    ids.note(&dir)?;
    let d = dir.clone();
    let a = zdtm::child(&dir, move || task(&d, "A"))?;
    let d = dir.clone();
    let b = zdtm::child(&dir, move || {
        let d2 = d.clone();
        let g = zdtm::child(&d, move || task(&d2, "G"))?;
        task(&d, "B")?;
        zdtm::reap_ok(&d, g, "G")
    })?;
    let d = dir.clone();
    let c = zdtm::child(&dir, move || orphaning(&d))?;
    zdtm::reap_ok(&dir, c, "C")?;
    wait_file(&dir, "orphan-ready")?;
    // O: the one child of ours not forked by us.
    let o = std::fs::read_to_string(dir.join("orphan-ready"))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .ok_or("the orphan did not say its PID")?;
    // The threads, once every fork is done.
    let mut threads = Vec::new();
    for _ in 0..2 {
        let d = dir.clone();
        let tid = Arc::new(AtomicI32::new(0));
        let t2 = Arc::clone(&tid);
        let h = std::thread::spawn(move || {
            let me = sys0(nr::GETTID);
            t2.store(me, Ordering::Release);
            zdtm::wait_go(&d)?;
            let now = sys0(nr::GETTID);
            zdtm::ensure(now == me, || {
                format!("a thread's TID is {now} after restore, was {me}")
            })
        });
        let start = Instant::now();
        while tid.load(Ordering::Acquire) == 0 {
            zdtm::ensure(start.elapsed() < WAIT, || "a thread never started".into())?;
            std::thread::sleep(Duration::from_millis(1));
        }
        threads.push((tid.load(Ordering::Acquire), h));
    }
    zdtm::write_atomic(
        &dir.join("threads"),
        &threads
            .iter()
            .map(|(t, _)| t.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    )?;
    Ok(State {
        dir,
        ids,
        children: vec![(a, "A"), (b, "B"), (o, "O")],
        threads,
    })
}

fn check(s: State) -> Result<(), String> {
    s.ids.check("the init")?;
    for (tid, h) in s.threads {
        h.join().map_err(|_| format!("thread {tid} panicked"))??;
    }
    for (pid, who) in s.children {
        zdtm::reap_ok(&s.dir, pid, who)?;
    }
    Ok(())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
