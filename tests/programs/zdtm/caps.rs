//! Credentials that only a careful restore gets back, per thread:
//!
//! - main thread: supplementary groups {1000, 27}, gids 1000/1001/1002,
//!   uids 1000/1001/1002 (fs ids follow the effective ones; changed from root with SECBIT_KEEP_CAPS, so the
//!   permitted set survives), securebits KEEP_CAPS | NOROOT |
//!   NOROOT_LOCKED, CAP_SYS_BOOT and CAP_MKNOD dropped from the bounding
//!   set, effective {CHOWN, DAC_OVERRIDE, FOWNER, SETPCAP, PERFMON},
//!   permitted that plus {KILL, NET_ADMIN, NET_RAW, SYS_NICE, BPF},
//!   inheritable {NET_RAW, SYS_NICE, BPF}, ambient {NET_RAW, BPF};
//! - a second thread (capabilities are per thread): CAP_SYS_TIME also
//!   dropped from its bounding set, SECBIT_NO_CAP_AMBIENT_RAISE added,
//!   effective {DAC_OVERRIDE}, permitted {CHOWN, DAC_OVERRIDE, NET_RAW,
//!   BPF}, inheritable {NET_RAW}, so ambient {NET_RAW}.
//!
//! Capabilities above 31 (PERFMON 38, BPF 39) are in the second word of
//! every set. After restore each thread must read back exactly what it
//! had (`/proc/thread-self/status` and `PR_GET_SECUREBITS`).
#[path = "lib.rs"]
mod zdtm;

use std::sync::mpsc;
use std::time::Duration;

use criu_arch::{nr, syscall2, syscall3, syscall5};

const CAP_CHOWN: u32 = 0;
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_FOWNER: u32 = 3;
const CAP_KILL: u32 = 5;
const CAP_SETPCAP: u32 = 8;
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_BOOT: u32 = 22;
const CAP_SYS_NICE: u32 = 23;
const CAP_SYS_TIME: u32 = 25;
const CAP_MKNOD: u32 = 27;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

const PR_CAPBSET_DROP: usize = 24;
const PR_GET_SECUREBITS: usize = 27;
const PR_SET_SECUREBITS: usize = 28;
const PR_CAP_AMBIENT: usize = 47;
const PR_CAP_AMBIENT_RAISE: usize = 2;
const SECBIT_NOROOT: usize = 1 << 0;
const SECBIT_NOROOT_LOCKED: usize = 1 << 1;
const SECBIT_KEEP_CAPS: usize = 1 << 4;
const SECBIT_NO_CAP_AMBIENT_RAISE: usize = 1 << 6;
const CAP_V3: u32 = 0x2008_0522;

fn set(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |s, &c| s | 1 << c)
}

fn prctl(op: usize, a: usize, b: usize, what: &str) -> Result<usize, String> {
    // SAFETY: integer arguments only.
    let ret = unsafe { syscall5(nr::PRCTL, op, a, b, 0, 0) };
    zdtm::errno(ret, what)
}

/// `capset` of the calling thread.
fn capset(eff: u64, prm: u64, inh: u64) -> Result<(), String> {
    let header: [u32; 2] = [CAP_V3, 0];
    let lo = |v: u64| v as u32;
    let hi = |v: u64| (v >> 32) as u32;
    let data: [u32; 6] = [lo(eff), lo(prm), lo(inh), hi(eff), hi(prm), hi(inh)];
    // SAFETY: a live cap_user_header and two cap_user_data structs.
    let ret = unsafe { syscall2(nr::CAPSET, header.as_ptr() as usize, data.as_ptr() as usize) };
    zdtm::errno(ret, "capset").map(drop)
}

fn ambient_raise(cap: u32) -> Result<(), String> {
    prctl(
        PR_CAP_AMBIENT,
        PR_CAP_AMBIENT_RAISE,
        cap as usize,
        "PR_CAP_AMBIENT_RAISE",
    )
    .map(drop)
}

/// The calling thread's credentials as the kernel shows them.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Creds {
    /// The Uid, Gid, Groups, Cap* and NoNewPrivs lines of its status.
    status: Vec<String>,
    secbits: usize,
}

fn creds() -> Result<Creds, String> {
    let text = std::fs::read_to_string("/proc/thread-self/status")
        .map_err(|e| format!("read /proc/thread-self/status: {e}"))?;
    let keep = ["Uid:", "Gid:", "Groups:", "Cap", "NoNewPrivs:"];
    let status = text
        .lines()
        .filter(|l| keep.iter().any(|k| l.starts_with(k)))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let secbits = prctl(PR_GET_SECUREBITS, 0, 0, "PR_GET_SECUREBITS")?;
    Ok(Creds { status, secbits })
}

/// The status line starting with `key`, e.g. "CapAmb:".
fn line<'a>(c: &'a Creds, key: &str) -> &'a str {
    c.status
        .iter()
        .find(|l| l.starts_with(key))
        .map_or("", |l| l.as_str())
}

/// Check that `c` shows the capability `sets` (CapInh, CapPrm, CapEff,
/// CapAmb) and `secbits` the set-up asked for.
fn expect(c: &Creds, who: &str, sets: [(&str, u64); 4], secbits: usize) -> Result<(), String> {
    for (key, v) in sets {
        let want = format!("{key} {v:016x}");
        zdtm::ensure(line(c, key) == want, || {
            format!("{who}: {}, want {want}", line(c, key))
        })?;
    }
    zdtm::ensure(c.secbits == secbits, || {
        format!("{who}: securebits {:#x}, want {secbits:#x}", c.secbits)
    })
}

/// Root's set-up of the whole process (before any thread exists): groups,
/// bounding set, securebits, then the ids.
fn process_setup() -> Result<(), String> {
    let groups: [u32; 2] = [1000, 27];
    // SAFETY: `groups` holds two live gids.
    let ret = unsafe { syscall2(nr::SETGROUPS, 2, groups.as_ptr() as usize) };
    zdtm::errno(ret, "setgroups")?;
    for cap in [CAP_SYS_BOOT, CAP_MKNOD] {
        prctl(PR_CAPBSET_DROP, cap as usize, 0, "PR_CAPBSET_DROP")?;
    }
    let bits = SECBIT_KEEP_CAPS | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED;
    prctl(PR_SET_SECUREBITS, bits, 0, "PR_SET_SECUREBITS")?;
    // SAFETY: integer arguments only (raw calls: this thread alone, and
    // there is no other yet).
    unsafe {
        zdtm::errno(syscall3(nr::SETRESGID, 1000, 1001, 1002), "setresgid")?;
        zdtm::errno(syscall3(nr::SETRESUID, 1000, 1001, 1002), "setresuid")?;
    }
    Ok(())
}

const MAIN_EFF: &[u32] = &[
    CAP_CHOWN,
    CAP_DAC_OVERRIDE,
    CAP_FOWNER,
    CAP_SETPCAP,
    CAP_PERFMON,
];
const MAIN_EXTRA: &[u32] = &[CAP_KILL, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_NICE, CAP_BPF];
const MAIN_INH: &[u32] = &[CAP_NET_RAW, CAP_SYS_NICE, CAP_BPF];
const MAIN_AMB: &[u32] = &[CAP_NET_RAW, CAP_BPF];
const MAIN_SECBITS: usize = SECBIT_KEEP_CAPS | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED;

const THREAD_EFF: &[u32] = &[CAP_DAC_OVERRIDE];
const THREAD_PRM: &[u32] = &[CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_NET_RAW, CAP_BPF];
const THREAD_INH: &[u32] = &[CAP_NET_RAW];
const THREAD_SECBITS: usize = MAIN_SECBITS | SECBIT_NO_CAP_AMBIENT_RAISE;

fn main_sets() -> [(&'static str, u64); 4] {
    let eff = set(MAIN_EFF);
    [
        ("CapInh:", set(MAIN_INH)),
        ("CapPrm:", eff | set(MAIN_EXTRA)),
        ("CapEff:", eff),
        ("CapAmb:", set(MAIN_AMB)),
    ]
}

fn thread_sets() -> [(&'static str, u64); 4] {
    [
        ("CapInh:", set(THREAD_INH)),
        ("CapPrm:", set(THREAD_PRM)),
        ("CapEff:", set(THREAD_EFF)),
        ("CapAmb:", set(THREAD_INH)),
    ]
}

/// The second thread: its own bounding set, securebits and capabilities,
/// then its credentials whenever asked.
fn thread_body(ready: mpsc::Sender<Result<Creds, String>>, ask: mpsc::Receiver<()>) {
    let setup = || -> Result<Creds, String> {
        prctl(PR_CAPBSET_DROP, CAP_SYS_TIME as usize, 0, "PR_CAPBSET_DROP")?;
        prctl(PR_SET_SECUREBITS, THREAD_SECBITS, 0, "PR_SET_SECUREBITS")?;
        capset(set(THREAD_EFF), set(THREAD_PRM), set(THREAD_INH))?;
        let c = creds()?;
        expect(&c, "thread", thread_sets(), THREAD_SECBITS)?;
        Ok(c)
    };
    let _ = ready.send(setup());
    while ask.recv().is_ok() {
        let _ = ready.send(creds());
    }
}

struct State {
    main: Creds,
    thread: Creds,
    ask: mpsc::Sender<()>,
    answers: mpsc::Receiver<Result<Creds, String>>,
}

fn setup(_: &zdtm::Args) -> Result<State, String> {
    process_setup()?;
    let eff = set(MAIN_EFF);
    capset(eff, eff | set(MAIN_EXTRA), set(MAIN_INH))?;
    for &cap in MAIN_AMB {
        ambient_raise(cap)?;
    }
    let main = creds()?;
    expect(&main, "main thread", main_sets(), MAIN_SECBITS)?;
    for (key, want) in [
        ("Uid:", "Uid: 1000 1001 1002 1001"),
        ("Gid:", "Gid: 1000 1001 1002 1001"),
        ("Groups:", "Groups: 27 1000"),
    ] {
        zdtm::ensure(line(&main, key) == want, || {
            format!("setup: {}, want {want}", line(&main, key))
        })?;
    }
    let (ready, answers) = mpsc::channel();
    let (ask, asked) = mpsc::channel();
    std::thread::spawn(move || thread_body(ready, asked));
    let thread = answers
        .recv_timeout(Duration::from_secs(10))
        .map_err(|e| format!("thread set-up: {e}"))??;
    Ok(State {
        main,
        thread,
        ask,
        answers,
    })
}

fn check(s: State) -> Result<(), String> {
    let main = creds()?;
    s.ask.send(()).map_err(|e| format!("ask the thread: {e}"))?;
    let thread = s
        .answers
        .recv_timeout(Duration::from_secs(10))
        .map_err(|e| format!("thread answer: {e}"))??;
    let mut errors = Vec::new();
    for (who, before, now) in [
        ("main thread", &s.main, &main),
        ("thread", &s.thread, &thread),
    ] {
        if before != now {
            errors.push(format!("{who}: {now:?} after restore, was {before:?}"));
        }
    }
    zdtm::ensure(errors.is_empty(), || errors.join("; "))
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
