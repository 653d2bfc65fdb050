//! A process tree (`PROGRAM DIR MODE`). The root is the session leader;
//! every task checks after restore that its PID, parent, process group
//! and session are as they were, and reports to the root through its exit
//! status (a failing task writes its reason to `DIR/fail-PID`).
//!
//! Modes:
//! - `tree`: three levels. Child A (the root's group) has a grandchild G
//!   leading its own group; child B leads another group. A shared
//!   anonymous page made before the forks carries a handshake root → A →
//!   G → root after restore, and a file opened before the forks (so one
//!   open file description) is written by A: the root sees its offset
//!   move. B has a second thread, and shares a file mapping with the root
//!   (a handshake through it after restore).
//! - `zombie`: two children that ended before the dump, one with
//!   `exit(7)`, one killed by SIGUSR1; the root reaps them only after
//!   restore and checks their statuses.
//! - `sessions`: child A forks G (a group of its own) and then calls
//!   `setsid`, so G stays in the root's session while its parent leads
//!   another; child B calls `setsid` and then forks C (in B's session
//!   and group).
//! - `orphan-pgid`: child M sits in the process group of child L, which
//!   has exited and been reaped: the group has no leader any more (the
//!   restore needs a helper task to create it).
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criu_arch::nr;
use zdtm::{MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, page};

const SIGUSR1: usize = 10;
const WAIT: Duration = Duration::from_secs(30);

fn sys(n: usize, a: usize, b: usize) -> isize {
    // SAFETY: integer-only process syscalls (getpgid, getsid, setpgid, ...).
    unsafe { criu_arch::syscall2(n, a, b) }
}

/// What a task expects of itself after restore.
#[derive(Clone, Copy)]
struct Ids {
    pid: i32,
    ppid: i32,
    pgid: i32,
    sid: i32,
}

impl Ids {
    fn now() -> Ids {
        Ids {
            pid: std::process::id() as i32,
            ppid: sys(nr::GETPPID, 0, 0) as i32,
            pgid: sys(nr::GETPGID, 0, 0) as i32,
            sid: sys(nr::GETSID, 0, 0) as i32,
        }
    }

    fn check(&self, who: &str) -> Result<(), String> {
        let now = Ids::now();
        for (what, want, got) in [
            ("pid", self.pid, now.pid),
            ("ppid", self.ppid, now.ppid),
            ("pgid", self.pgid, now.pgid),
            ("sid", self.sid, now.sid),
        ] {
            zdtm::ensure(want == got, || {
                format!("{who}: {what} is {got}, was {want}")
            })?;
        }
        Ok(())
    }
}

/// The shared page's words.
#[derive(Clone, Copy)]
struct Shared(usize);

impl Shared {
    fn word(&self, i: usize) -> &AtomicU64 {
        // SAFETY: the page is mapped shared for the whole life of the
        // program, 8-byte aligned, and only accessed atomically.
        unsafe { &*((self.0 + i * 8) as *const AtomicU64) }
    }

    fn wait_for(&self, i: usize, v: u64, what: &str) -> Result<(), String> {
        let start = Instant::now();
        while self.word(i).load(Ordering::Acquire) != v {
            if start.elapsed() > WAIT {
                return Err(format!("timed out waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

struct Tree {
    dir: std::path::PathBuf,
    mode: String,
    root: Ids,
    shared: Shared,
    file: Option<std::fs::File>,
    fmap: Option<Shared>,
    kids: Vec<(i32, &'static str)>,
    zombies: Vec<(i32, i32)>,
}

fn setup(args: &zdtm::Args) -> Result<Tree, String> {
    let dir = args.dir.clone();
    let mode = args.rest.first().cloned().unwrap_or_else(|| "tree".into());
    let addr = zdtm::mmap(
        0,
        page(),
        PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_ANONYMOUS,
        -1,
        0,
    )?;
    let shared = Shared(addr);
    let mut t = Tree {
        dir: dir.clone(),
        mode: mode.clone(),
        root: Ids::now(),
        shared,
        file: None,
        fmap: None,
        kids: Vec::new(),
        zombies: Vec::new(),
    };
    let sh = Shared(addr);
    match mode.as_str() {
        "tree" => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.join("shared-file"))
                .map_err(|e| format!("open: {e}"))?;
            f.write_all(b"0123456789")
                .map_err(|e| format!("write: {e}"))?;
            let fd = f.as_raw_fd();
            // A shared mapping of another file, inherited by B.
            let mapped = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.join("mapped-file"))
                .map_err(|e| format!("open: {e}"))?;
            mapped
                .set_len(page() as u64)
                .map_err(|e| format!("ftruncate: {e}"))?;
            let fmap = Shared(zdtm::mmap(
                0,
                page(),
                PROT_READ | PROT_WRITE,
                MAP_SHARED,
                mapped.as_raw_fd(),
                0,
            )?);
            drop(mapped);
            t.fmap = Some(fmap);
            let d = dir.clone();
            let a = zdtm::child(&dir, move || {
                let me = Ids::now();
                // G: a group of its own, below A.
                let g = zdtm::child(&d, || {
                    sys(nr::SETPGID, 0, 0);
                    let me = Ids::now();
                    sh.word(1).store(1, Ordering::Release);
                    zdtm::wait_go(&d)?;
                    me.check("grandchild G")?;
                    sh.wait_for(11, 0x2222, "A's word")?;
                    sh.word(12).store(0x3333, Ordering::Release);
                    Ok(())
                })?;
                sh.word(0).store(1, Ordering::Release);
                zdtm::wait_go(&d)?;
                me.check("child A")?;
                sh.wait_for(10, 0x1111, "the root's word")?;
                // Through the inherited descriptor: moves the shared offset.
                // SAFETY: writes 5 bytes from a static buffer to our fd.
                let n = unsafe {
                    criu_arch::syscall3(nr::WRITE, fd as usize, b"AAAAA".as_ptr() as usize, 5)
                };
                zdtm::ensure(n == 5, || format!("write through the shared fd: {n}"))?;
                sh.word(11).store(0x2222, Ordering::Release);
                zdtm::reap_ok(&d, g, "grandchild G")
            })?;
            let d = dir.clone();
            let b = zdtm::child(&dir, move || {
                sys(nr::SETPGID, 0, 0);
                let me = Ids::now();
                // A second thread: B is a multi-threaded task of the tree.
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(zdtm::gettid());
                    loop {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                });
                let tid = rx.recv().map_err(|e| format!("thread: {e}"))?;
                sh.word(2).store(1, Ordering::Release);
                zdtm::wait_go(&d)?;
                me.check("child B")?;
                let path = format!("/proc/self/task/{tid}");
                zdtm::ensure(Path::new(&path).exists(), || {
                    format!("child B: thread {tid} is gone after restore")
                })?;
                fmap.wait_for(0, 0x4444, "the root's word in the shared file mapping")?;
                fmap.word(1).store(0x5555, Ordering::Release);
                Ok(())
            })?;
            for i in 0..3 {
                t.shared.wait_for(i, 1, "the children to set up")?;
            }
            t.kids = vec![(a, "child A"), (b, "child B")];
            t.file = Some(f);
        }
        "zombie" => {
            let z1 = zdtm::child(&dir, || Err("exit 7".into()))?;
            // A child that exits 7: code 1 is zdtm::child()'s failure; use raw exit.
            // SAFETY: single-threaded; the child only exits.
            let z7 = unsafe { zdtm::fork(0) }?;
            if z7 == 0 {
                // SAFETY: ends this forked process.
                unsafe { criu_arch::syscall1(nr::EXIT_GROUP, 7) };
            }
            // SAFETY: single-threaded; the child only signals itself and exits.
            let zs = unsafe { zdtm::fork(0) }?;
            if zs == 0 {
                // SAFETY: SIGUSR1 to ourselves, default action: terminate.
                unsafe { criu_arch::syscall2(nr::KILL, std::process::id() as usize, SIGUSR1) };
                std::thread::sleep(WAIT);
                // SAFETY: ends this forked process.
                unsafe { criu_arch::syscall1(nr::EXIT_GROUP, 99) };
            }
            // Wait until all three are zombies (not reaped: we do not wait).
            for z in [z1, z7, zs] {
                let start = Instant::now();
                loop {
                    let stat = std::fs::read_to_string(format!("/proc/{z}/stat"))
                        .map_err(|e| format!("stat of {z}: {e}"))?;
                    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                    if state.starts_with('Z') {
                        break;
                    }
                    if start.elapsed() > WAIT {
                        return Err(format!("{z} did not become a zombie"));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            t.zombies = vec![(z1, 1 << 8), (z7, 7 << 8), (zs, SIGUSR1 as i32)];
        }
        "sessions" => {
            let d = dir.clone();
            let a = zdtm::child(&dir, move || {
                let d2 = d.clone();
                let g = zdtm::child(&d, move || {
                    sys(nr::SETPGID, 0, 0);
                    let me = Ids::now();
                    sh.word(1).store(1, Ordering::Release);
                    zdtm::wait_go(&d2)?;
                    me.check("grandchild G (root's session)")
                })?;
                sh.wait_for(1, 1, "G's group")?;
                zdtm::errno(sys(nr::SETSID, 0, 0), "setsid in A")?;
                let me = Ids::now();
                sh.word(0).store(1, Ordering::Release);
                zdtm::wait_go(&d)?;
                me.check("child A (after setsid)")?;
                zdtm::reap_ok(&d, g, "grandchild G")
            })?;
            let d = dir.clone();
            let b = zdtm::child(&dir, move || {
                zdtm::errno(sys(nr::SETSID, 0, 0), "setsid in B")?;
                let d2 = d.clone();
                let c = zdtm::child(&d, move || {
                    let me = Ids::now();
                    sh.word(3).store(1, Ordering::Release);
                    zdtm::wait_go(&d2)?;
                    me.check("grandchild C (B's session)")
                })?;
                let me = Ids::now();
                sh.word(2).store(1, Ordering::Release);
                zdtm::wait_go(&d)?;
                me.check("child B")?;
                zdtm::reap_ok(&d, c, "grandchild C")
            })?;
            for i in 0..4 {
                t.shared.wait_for(i, 1, "the children to set up")?;
            }
            t.kids = vec![(a, "child A"), (b, "child B")];
        }
        "orphan-pgid" => {
            let d = dir.clone();
            let l = zdtm::child(&dir, move || {
                sys(nr::SETPGID, 0, 0);
                sh.word(0).store(1, Ordering::Release);
                sh.wait_for(1, 1, "M to join")?;
                Ok(())
            })?;
            t.shared.wait_for(0, 1, "L's group")?;
            let m = zdtm::child(&dir, move || {
                let r = sys(nr::SETPGID, 0, l as usize);
                zdtm::errno(r, "setpgid(0, L)")?;
                let me = Ids::now();
                sh.word(1).store(1, Ordering::Release);
                zdtm::wait_go(&d)?;
                me.check("child M")
            })?;
            zdtm::reap_ok(&dir, l, "child L")?;
            zdtm::write_atomic(&dir.join("leader"), &l.to_string())?;
            t.kids = vec![(m, "child M")];
        }
        other => return Err(format!("unknown mode {other}")),
    }
    Ok(t)
}

fn check(t: Tree) -> Result<(), String> {
    t.root.check("root")?;
    match t.mode.as_str() {
        "tree" => {
            t.shared.word(10).store(0x1111, Ordering::Release);
            t.shared.wait_for(12, 0x3333, "G's word (shared memory)")?;
            if let Some(m) = &t.fmap {
                m.word(0).store(0x4444, Ordering::Release);
                m.wait_for(1, 0x5555, "B's word in the shared file mapping")?;
            }
        }
        "zombie" => {
            for (z, want) in &t.zombies {
                let got = zdtm::wait_status(*z, 0)?;
                zdtm::ensure(got == *want, || {
                    format!("zombie {z}: wait status {got:#x}, want {want:#x}")
                })?;
            }
        }
        _ => {}
    }
    for (pid, who) in &t.kids {
        zdtm::reap_ok(&t.dir, *pid, who)?;
    }
    if let Some(f) = &t.file {
        // SAFETY: lseek on our own fd.
        let pos = unsafe { criu_arch::syscall3(nr::LSEEK, f.as_raw_fd() as usize, 0, 1) };
        zdtm::ensure(pos == 15, || {
            format!("shared file offset is {pos}, want 15 (10 + A's 5)")
        })?;
    }
    Ok(())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
