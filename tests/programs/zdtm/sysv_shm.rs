//! SysV shared memory attached in the tasks of a tree with its own IPC
//! namespace (it unshares it first, as `unshare -i`): segment A (private,
//! three pages and a bit) attached twice read-write, segment B (keyed,
//! two pages) attached read-only; a worker forked after that inherits
//! the four attachments and attaches A once more itself.
//!
//! After restore: each attachment is at its address with its
//! permissions; A holds its pattern through all of them; a write through
//! one attachment of the program shows through the other, through the
//! worker's inherited one and its own (and the worker's write the other
//! way); B holds its pattern; `shm_nattch` (`/proc/sysvipc/shm`) is what
//! it was.
//!
//! Arguments select a tree the dump must refuse instead: `host` (stay in
//! the harness's IPC namespace), `rmid` (A removed with `IPC_RMID` while
//! attached), `partial` (the last page of one attachment of A unmapped).
//! Segments are removed at the end (and `host` removes A at once, so
//! that nothing outlives the program in the harness's namespace).
#[path = "lib.rs"]
mod zdtm;

use std::path::{Path, PathBuf};
use std::time::Duration;

use zdtm::ensure;

const KEY_B: usize = 0x5a17_0b0b;
const IPC_PRIVATE: usize = 0;
const IPC_CREAT: usize = 0o1000;
const IPC_RMID: usize = 0;
const SHM_RDONLY: usize = 0o10000;
const SEED_A: u64 = 0xa;
const SEED_B: u64 = 0xb;

fn sys(nr: usize, a: [usize; 3], what: &str) -> Result<usize, String> {
    // SAFETY: SysV calls with integers, and addresses the callers own.
    let ret = unsafe { criu_arch::syscall3(nr, a[0], a[1], a[2]) };
    zdtm::errno(ret, what)
}

fn shmat(id: usize, flags: usize) -> Result<usize, String> {
    sys(criu_arch::nr::SHMAT, [id, 0, flags], "shmat")
}

fn len_a() -> usize {
    3 * zdtm::page() + 100
}

fn len_b() -> usize {
    2 * zdtm::page()
}

/// `len` bytes at `addr`, attached.
fn bytes(addr: usize, len: usize) -> &'static mut [u8] {
    // SAFETY: the callers pass an attachment of at least `len` bytes,
    // which stays attached for the program's life.
    unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) }
}

/// `shm_nattch` of segment `id` (`/proc/sysvipc/shm` column 7).
fn nattch(id: usize) -> Result<String, String> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").map_err(|e| e.to_string())?;
    text.lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|r| r.get(1) == Some(&id.to_string().as_str()))
        .and_then(|r| r.get(6).map(|s| s.to_string()))
        .ok_or_else(|| format!("shm id {id} is not in /proc/sysvipc/shm:\n{text}"))
}

fn wait_file(p: &Path) -> Result<(), String> {
    let start = std::time::Instant::now();
    while !p.exists() {
        if zdtm::waited_too_long(start) {
            return Err(format!("no {}", p.display()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

struct State {
    a: usize,
    b: usize,
    a1: usize,
    a2: usize,
    b1: usize,
    nattch: (String, String),
    worker: i32,
    dir: PathBuf,
    /// `host`, `rmid` or `partial` (a tree the dump refuses), or empty.
    refused: String,
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let has = |a: &str| args.rest.iter().any(|x| x == a);
    if !has("host") {
        // SAFETY: one thread, nothing shared with anyone.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWIPC) }
            .map_err(|e| format!("unshare(CLONE_NEWIPC): {e}"))?;
    }
    let shmget = |key: usize, len: usize, mode: usize| {
        sys(
            criu_arch::nr::SHMGET,
            [key, len, IPC_CREAT | mode],
            "shmget",
        )
    };
    let a = shmget(IPC_PRIVATE, len_a(), 0o600)?;
    let b = shmget(KEY_B, len_b(), 0o640)?;
    let a1 = shmat(a, 0)?;
    let a2 = shmat(a, 0)?;
    zdtm::fill_pattern(bytes(a1, len_a()), SEED_A);
    let w = shmat(b, 0)?;
    zdtm::fill_pattern(bytes(w, len_b()), SEED_B);
    sys(criu_arch::nr::SHMDT, [w, 0, 0], "shmdt")?;
    let b1 = shmat(b, SHM_RDONLY)?;
    if has("host") || has("rmid") {
        sys(criu_arch::nr::SHMCTL, [a, IPC_RMID, 0], "shmctl(IPC_RMID)")?;
    }
    if has("partial") {
        let page = zdtm::page();
        zdtm::munmap(a2 + 3 * page, page)?;
    }
    let dir = args.dir.clone();
    let worker = zdtm::child(&args.dir, {
        let dir = dir.clone();
        move || worker(&dir, a, a1, a2)
    })?;
    wait_file(&dir.join("worker-ready"))?;
    Ok(State {
        a,
        b,
        a1,
        a2,
        b1,
        nattch: (nattch(a)?, nattch(b)?),
        worker,
        dir,
        refused: ["host", "rmid", "partial"]
            .into_iter()
            .find(|m| has(m))
            .unwrap_or_default()
            .to_string(),
    })
}

/// The worker: attaches A itself, then after the go checks the pattern
/// through its own and its inherited attachments, waits for the
/// program's write, sees it, and writes its own.
fn worker(dir: &Path, a: usize, a1: usize, a2: usize) -> Result<(), String> {
    let mine = shmat(a, 0)?;
    zdtm::write_atomic(&dir.join("worker-ready"), "")?;
    zdtm::wait_go(dir)?;
    for (what, at) in [("inherited", a1), ("inherited second", a2), ("own", mine)] {
        zdtm::check_pattern(
            &format!("worker: A through its {what} attachment"),
            &bytes(at, len_a())[..zdtm::page()],
            SEED_A,
        )?;
    }
    wait_file(&dir.join("program-wrote"))?;
    for at in [a1, mine] {
        ensure(bytes(at, len_a())[len_a() - 2] == 0x77, || {
            format!("worker: the program's write is not seen at {at:#x}")
        })?;
    }
    bytes(mine, len_a())[len_a() - 1] = 0x99;
    zdtm::write_atomic(&dir.join("worker-wrote"), "")
}

fn check(s: State) -> Result<(), String> {
    let page = zdtm::page();
    let whole_a = len_a().next_multiple_of(page);
    ensure((nattch(s.a)?, nattch(s.b)?) == s.nattch, || {
        format!(
            "shm_nattch (A, B) {:?}, was {:?}",
            (nattch(s.a), nattch(s.b)),
            s.nattch
        )
    })?;
    zdtm::expect_vma("A first", s.a1, whole_a, "rw-s")?;
    if s.refused != "partial" {
        zdtm::expect_vma("A second", s.a2, whole_a, "rw-s")?;
    }
    zdtm::expect_vma("B", s.b1, len_b(), "r--s")?;
    zdtm::check_pattern("A", bytes(s.a1, len_a()), SEED_A)?;
    zdtm::check_pattern("B", bytes(s.b1, len_b()), SEED_B)?;
    // (The second attachment lacks its last page in `partial`.)
    let second = if s.refused == "partial" { s.a1 } else { s.a2 };
    bytes(second, len_a())[len_a() - 2] = 0x77;
    ensure(bytes(s.a1, len_a())[len_a() - 2] == 0x77, || {
        "a write through A's second attachment is not seen through the first".into()
    })?;
    zdtm::write_atomic(&s.dir.join("program-wrote"), "")?;
    wait_file(&s.dir.join("worker-wrote"))?;
    ensure(bytes(s.a1, len_a())[len_a() - 1] == 0x99, || {
        "the worker's write is not seen by the program".into()
    })?;
    zdtm::reap_ok(&s.dir, s.worker, "the worker")?;
    if s.refused.is_empty() || s.refused == "partial" {
        sys(
            criu_arch::nr::SHMCTL,
            [s.a, IPC_RMID, 0],
            "shmctl(IPC_RMID)",
        )?;
    }
    sys(
        criu_arch::nr::SHMCTL,
        [s.b, IPC_RMID, 0],
        "shmctl(IPC_RMID)",
    )?;
    Ok(())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
