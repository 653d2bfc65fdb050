//! Per-task state CRIU's images have no field for, which a restored task
//! would silently get from the restoring tool instead: the dump must
//! refuse it by name, and leave the program running with it unchanged.
//!
//! Usage: `zdtm_unheld_attrs DIR MODE`, MODE one of
//! - `plain`: a second thread with nice 6 and I/O priority class NONE
//!   set (what it reads when it never set one: its I/O is scheduled by
//!   its nice); must be dumped and restored as it was;
//! - `affinity`: the second thread may run on one CPU only;
//! - `ioprio`: the second thread has I/O priority class IDLE;
//! - `mce-kill`: the second thread's machine-check kill policy is early
//!   (`PR_MCE_KILL`);
//! - `tsc`: the second thread gets SIGSEGV for `rdtsc` (`PR_SET_TSC`,
//!   x86 only);
//! - `mdwe`: the second thread sets memory-deny-write-execute for the
//!   process (`PR_SET_MDWE`, Linux 6.3+);
//! - `coredump-filter`: the process's coredump_filter is 0x23;
//! - `exit-signal`: a child created by `clone` with exit signal SIGUSR1.
//!
//! The check (after the refused dump, or after restore for `plain`) reads
//! everything back as set up.
#[path = "lib.rs"]
mod zdtm;

use std::sync::mpsc;
use std::thread::JoinHandle;

use criu_arch::{nr, syscall2, syscall3};

const IOPRIO_WHO_PROCESS: usize = 1;
const IOPRIO_CLASS_IDLE: usize = 3;
const IOPRIO_CLASS_SHIFT: usize = 13;
const PRIO_PROCESS: usize = 0;
const SIGUSR1: usize = 10;
/// The coredump_filter written (a leading 0 alone would make it octal)
/// and as it reads back.
const FILTER: &str = "0x23";
const FILTER_READ: &str = "00000023";

/// What the second thread reads about itself, on request.
#[derive(Debug, PartialEq, Eq, Clone)]
struct ThreadView {
    cpus: Vec<usize>,
    ioprio: usize,
    nice: i32,
    mce_kill: i32,
    /// 0 where `PR_GET_TSC` does not exist (not x86).
    tsc: i32,
    /// `PR_GET_MDWE` (0 before Linux 6.3).
    mdwe: usize,
}

fn mdwe() -> usize {
    let get = linux_raw_sys::prctl::PR_GET_MDWE as usize;
    // SAFETY: integer arguments only; the flags come back as the result.
    let r = unsafe { criu_arch::syscall5(nr::PRCTL, get, 0, 0, 0, 0) };
    r.max(0) as usize
}

struct State {
    ask: mpsc::Sender<()>,
    answer: mpsc::Receiver<Result<ThreadView, String>>,
    want: ThreadView,
    filter: String,
    _thread: JoinHandle<()>,
    child: i32,
}

fn cpus() -> Result<Vec<usize>, String> {
    let set = rustix::thread::sched_getaffinity(None).map_err(|e| format!("affinity: {e}"))?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect())
}

fn view() -> Result<ThreadView, String> {
    // SAFETY: integer arguments only.
    let ioprio = unsafe { syscall2(nr::IOPRIO_GET, IOPRIO_WHO_PROCESS, 0) };
    Ok(ThreadView {
        cpus: cpus()?,
        ioprio: zdtm::errno(ioprio, "ioprio_get")?,
        nice: rustix::process::getpriority_process(None).map_err(|e| format!("nice: {e}"))?,
        mce_kill: rustix::process::machine_check_memory_corruption_kill_policy()
            .map_err(|e| format!("PR_MCE_KILL_GET: {e}"))? as i32,
        tsc: rustix::process::time_stamp_counter_readability().map_or(0, |t| t as i32),
        mdwe: mdwe(),
    })
}

/// The second thread: sets itself up as `mode` says, then answers each
/// request with what it reads about itself.
fn thread_setup(mode: &str) -> Result<(), String> {
    // SAFETY: integer arguments only (0: this thread).
    let ret = unsafe { syscall3(nr::SETPRIORITY, PRIO_PROCESS, 0, 6) };
    zdtm::errno(ret, "setpriority")?;
    // Class NONE set explicitly gives the thread an I/O context with the
    // default priority in it.
    // SAFETY: integer arguments only.
    let ret = unsafe { syscall3(nr::IOPRIO_SET, IOPRIO_WHO_PROCESS, 0, 0) };
    zdtm::errno(ret, "ioprio_set(NONE)")?;
    match mode {
        "affinity" => {
            let all = cpus()?;
            zdtm::ensure(all.len() > 1, || format!("one CPU only: {all:?}"))?;
            let mut one = rustix::thread::CpuSet::new();
            one.set(all[all.len() - 1]);
            rustix::thread::sched_setaffinity(None, &one)
                .map_err(|e| format!("sched_setaffinity: {e}"))?;
        }
        "ioprio" => {
            let prio = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT;
            // SAFETY: integer arguments only.
            let ret = unsafe { syscall3(nr::IOPRIO_SET, IOPRIO_WHO_PROCESS, 0, prio) };
            zdtm::errno(ret, "ioprio_set")?;
        }
        "mce-kill" => {
            use rustix::process::MachineCheckMemoryCorruptionKillPolicy as Policy;
            rustix::process::set_machine_check_memory_corruption_kill_policy(Some(Policy::Early))
                .map_err(|e| format!("PR_MCE_KILL: {e}"))?;
        }
        // From here on this thread must not read the TSC (no clock reads:
        // the vDSO may use rdtsc); it only waits on a channel.
        "tsc" => {
            use rustix::process::TimeStampCounterReadability as Tsc;
            rustix::process::set_time_stamp_counter_readability(Tsc::RaiseSIGSEGV)
                .map_err(|e| format!("PR_SET_TSC: {e}"))?;
        }
        "mdwe" => {
            let set = linux_raw_sys::prctl::PR_SET_MDWE as usize;
            let refuse_exec_gain = linux_raw_sys::prctl::PR_MDWE_REFUSE_EXEC_GAIN as usize;
            // SAFETY: integer arguments only.
            let r = unsafe { criu_arch::syscall5(nr::PRCTL, set, refuse_exec_gain, 0, 0, 0) };
            zdtm::errno(r, "PR_SET_MDWE")?;
        }
        _ => {}
    }
    Ok(())
}

/// A child created by a fork-like `clone3` whose exit signal is SIGUSR1;
/// it sleeps until killed.
fn clone_child() -> Result<i32, String> {
    let args = linux_raw_sys::general::clone_args {
        flags: 0,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: SIGUSR1 as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    };
    // SAFETY: no CLONE_VM: the child gets a copy of this process, as with
    // fork; it only sleeps (nanosleep) until it is killed.
    let ret = unsafe {
        syscall2(
            nr::CLONE3,
            &args as *const _ as usize,
            size_of::<linux_raw_sys::general::clone_args>(),
        )
    };
    let pid = zdtm::errno(ret, "clone3")?;
    if pid == 0 {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    Ok(pid as i32)
}

/// `/proc/PID/stat` field 38 (the exit signal).
fn exit_signal(pid: i32) -> Result<i32, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("stat of {pid}: {e}"))?;
    let after = stat.rsplit_once(')').ok_or("bad stat")?.1;
    // Field 3 is the first after the name: 38 is its 36th.
    after
        .split_whitespace()
        .nth(35)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no exit_signal in {stat}"))
}

fn coredump_filter() -> Result<String, String> {
    std::fs::read_to_string("/proc/self/coredump_filter")
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("coredump_filter: {e}"))
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let mode = args.rest.first().cloned().unwrap_or_else(|| "plain".into());
    let (ask, asked) = mpsc::channel::<()>();
    let (tell, answer) = mpsc::channel();
    let m = mode.clone();
    let thread = std::thread::spawn(move || {
        if let Err(e) = thread_setup(&m) {
            let _ = tell.send(Err(e));
            return;
        }
        while asked.recv().is_ok() {
            if tell.send(view()).is_err() {
                return;
            }
        }
    });
    ask.send(()).map_err(|_| "the thread is gone")?;
    let want = answer.recv().map_err(|_| "the thread is gone")??;
    if mode == "coredump-filter" {
        std::fs::write("/proc/self/coredump_filter", FILTER)
            .map_err(|e| format!("write coredump_filter: {e}"))?;
    }
    let filter = coredump_filter()?;
    if mode == "coredump-filter" {
        zdtm::ensure(filter == FILTER_READ, || {
            format!("setup: coredump_filter {filter}, want {FILTER_READ}")
        })?;
    }
    let child = match mode.as_str() {
        "exit-signal" => clone_child()?,
        _ => 0,
    };
    Ok(State {
        ask,
        answer,
        want,
        filter,
        _thread: thread,
        child,
    })
}

fn check(s: State) -> Result<(), String> {
    s.ask.send(()).map_err(|_| "the thread is gone")?;
    let now = s.answer.recv().map_err(|_| "the thread is gone")??;
    zdtm::ensure(now == s.want, || {
        format!("second thread: {now:?}, was {:?}", s.want)
    })?;
    let filter = coredump_filter()?;
    zdtm::ensure(filter == s.filter, || {
        format!("coredump_filter {filter}, was {}", s.filter)
    })?;
    if s.child != 0 {
        let sig = exit_signal(s.child)?;
        zdtm::ensure(sig == SIGUSR1 as i32, || {
            format!("the child's exit signal is {sig}, want {SIGUSR1}")
        })?;
    }
    Ok(())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
