//! Scheduling state per thread: the main thread runs SCHED_FIFO at
//! priority 3 with SCHED_RESET_ON_FORK and a nice value of -3 kept under
//! it (the kernel keeps the nice of a real-time task for when it goes
//! back to a normal policy); thread 1 SCHED_RR at priority 2; thread 2
//! SCHED_IDLE; thread 3 SCHED_BATCH with nice 11 and SCHED_RESET_ON_FORK;
//! thread 4 SCHED_OTHER with nice 6. After restore each thread must read
//! back its own policy (with the reset-on-fork flag), priority and nice.
//!
//! Usage: `zdtm_sched DIR [deadline|slack]`: with `deadline`, thread 1
//! runs SCHED_DEADLINE instead; with `slack`, thread 4 has a timer slack
//! of 123456 ns (`PR_SET_TIMERSLACK`). CRIU's images can describe
//! neither: the dump must refuse them by name.
#[path = "lib.rs"]
mod zdtm;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use criu_arch::{nr, syscall0, syscall2, syscall3};

const SCHED_OTHER: usize = 0;
const SCHED_FIFO: usize = 1;
const SCHED_RR: usize = 2;
const SCHED_BATCH: usize = 3;
const SCHED_IDLE: usize = 5;
const SCHED_DEADLINE: u32 = 6;
const RESET_ON_FORK: usize = 0x4000_0000;
const PRIO_PROCESS: usize = 0;

/// What one thread is given and must keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sched {
    /// As `sched_getscheduler` returns it (with SCHED_RESET_ON_FORK).
    policy: usize,
    prio: i32,
    nice: i32,
}

const WANT: [Sched; 5] = [
    Sched {
        policy: SCHED_FIFO | RESET_ON_FORK,
        prio: 3,
        nice: -3,
    },
    Sched {
        policy: SCHED_RR,
        prio: 2,
        nice: 0,
    },
    Sched {
        policy: SCHED_IDLE,
        prio: 0,
        nice: 0,
    },
    Sched {
        policy: SCHED_BATCH | RESET_ON_FORK,
        prio: 0,
        nice: 11,
    },
    Sched {
        policy: SCHED_OTHER,
        prio: 0,
        nice: 6,
    },
];

fn gettid() -> usize {
    // SAFETY: no arguments.
    unsafe { syscall0(nr::GETTID) as usize }
}

/// Thread `tid`'s scheduling, read from the kernel.
fn read(tid: usize) -> Result<Sched, String> {
    let mut prio: i32 = -1;
    // SAFETY: integer arguments, and `prio` is a live struct sched_param.
    let (policy, param, nice) = unsafe {
        (
            syscall2(nr::SCHED_GETSCHEDULER, tid, 0),
            syscall2(nr::SCHED_GETPARAM, tid, &mut prio as *mut i32 as usize),
            syscall2(nr::GETPRIORITY, PRIO_PROCESS, tid),
        )
    };
    zdtm::errno(param, "sched_getparam")?;
    Ok(Sched {
        policy: zdtm::errno(policy, "sched_getscheduler")?,
        prio,
        // The raw syscall returns 20 - nice.
        nice: 20 - zdtm::errno(nice, "getpriority")? as i32,
    })
}

/// Give the calling thread `s`: the nice value first (a real-time
/// policy keeps it).
fn set(s: Sched) -> Result<(), String> {
    // SAFETY: integer arguments only.
    let ret = unsafe { syscall3(nr::SETPRIORITY, PRIO_PROCESS, 0, s.nice as usize) };
    zdtm::errno(ret, "setpriority")?;
    let param: i32 = s.prio;
    // SAFETY: `param` is a live struct sched_param.
    let ret = unsafe {
        syscall3(
            nr::SCHED_SETSCHEDULER,
            0,
            s.policy,
            &param as *const i32 as usize,
        )
    };
    zdtm::errno(ret, &format!("sched_setscheduler({:#x})", s.policy)).map(drop)
}

/// `struct sched_attr` (version 1, 56 bytes).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// SCHED_DEADLINE: 1 ms of every 100 ms, with nice 0 under it (the nice
/// a thread inherited stays under SCHED_DEADLINE: a suite run under
/// `nice` would otherwise start the thread at another value).
fn set_deadline() -> Result<(), String> {
    // SAFETY: integer arguments only.
    let ret = unsafe { syscall3(nr::SETPRIORITY, PRIO_PROCESS, 0, 0) };
    zdtm::errno(ret, "setpriority")?;
    let attr = SchedAttr {
        size: size_of::<SchedAttr>() as u32,
        policy: SCHED_DEADLINE,
        runtime: 1_000_000,
        deadline: 100_000_000,
        period: 100_000_000,
        ..Default::default()
    };
    // SAFETY: `attr` is a live struct sched_attr of the size it says.
    let ret = unsafe { syscall3(nr::SCHED_SETATTR, 0, &attr as *const SchedAttr as usize, 0) };
    zdtm::errno(ret, "sched_setattr(SCHED_DEADLINE)").map(drop)
}

struct State {
    tids: Vec<usize>,
    want: Vec<Sched>,
    threads: Vec<JoinHandle<()>>,
}

static STOP: AtomicBool = AtomicBool::new(false);
/// Thread 4 (with `slack`) found its timer slack unchanged at the end.
static SLACK_KEPT: AtomicBool = AtomicBool::new(true);

/// Thread 4's timer slack with `slack`.
const SLACK: usize = 123_456;

fn timer_slack() -> Result<usize, String> {
    const PR_GET_TIMERSLACK: usize = 30;
    // SAFETY: integer arguments only.
    zdtm::errno(
        unsafe { criu_arch::syscall5(nr::PRCTL, PR_GET_TIMERSLACK, 0, 0, 0, 0) },
        "PR_GET_TIMERSLACK",
    )
}

fn set_timer_slack() -> Result<(), String> {
    const PR_SET_TIMERSLACK: usize = 29;
    // SAFETY: integer arguments only.
    let ret = unsafe { criu_arch::syscall5(nr::PRCTL, PR_SET_TIMERSLACK, SLACK, 0, 0, 0) };
    zdtm::errno(ret, "PR_SET_TIMERSLACK")?;
    let got = timer_slack()?;
    zdtm::ensure(got == SLACK, || format!("timer slack {got}, want {SLACK}"))
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let deadline = args.rest.iter().any(|a| a == "deadline");
    let slack = args.rest.iter().any(|a| a == "slack");
    let mut want = WANT.to_vec();
    if deadline {
        want[1] = Sched {
            policy: SCHED_DEADLINE as usize,
            prio: 0,
            nice: 0,
        };
    }
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for (i, &s) in want.iter().enumerate().skip(1) {
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            let r = if deadline && i == 1 {
                set_deadline()
            } else if slack && i == 4 {
                set(s).and_then(|()| set_timer_slack())
            } else {
                set(s)
            };
            let _ = tx.send((i, r.map(|()| gettid())));
            while !STOP.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
            }
            if slack && i == 4 {
                SLACK_KEPT.store(timer_slack() == Ok(SLACK), Ordering::Relaxed);
            }
        }));
    }
    let mut tids = vec![gettid(); want.len()];
    for _ in 1..want.len() {
        let (i, r) = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| format!("thread set-up: {e}"))?;
        tids[i] = r.map_err(|e| format!("thread {i}: {e}"))?;
    }
    set(want[0])?;
    for (i, (&tid, &w)) in tids.iter().zip(&want).enumerate() {
        let got = read(tid)?;
        zdtm::ensure(got == w, || {
            format!("setup: thread {i} has {got:?}, want {w:?}")
        })?;
    }
    Ok(State {
        tids,
        want,
        threads,
    })
}

fn check(s: State) -> Result<(), String> {
    let mut errors = Vec::new();
    for (i, (&tid, &w)) in s.tids.iter().zip(&s.want).enumerate() {
        let got = read(tid)?;
        if got != w {
            errors.push(format!("thread {i}: {got:?}, want {w:?}"));
        }
    }
    STOP.store(true, Ordering::Relaxed);
    for t in s.threads {
        t.join().map_err(|_| "a thread panicked".to_string())?;
    }
    if !SLACK_KEPT.load(Ordering::Relaxed) {
        errors.push(format!("thread 4: timer slack not {SLACK} at the end"));
    }
    zdtm::ensure(errors.is_empty(), || errors.join("; "))
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
