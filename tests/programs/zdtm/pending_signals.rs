//! Pending signals: blocked standard signals pending process-wide (`kill`,
//! `rt_sigqueueinfo`) and for the thread (`tgkill`, `rt_tgsigqueueinfo`),
//! and real-time signals queued several times each, on both queues, with
//! distinct values. After restore the pending set must be the same, and
//! collecting the signals with `rt_sigtimedwait` must give exactly the
//! same siginfos (signo, code, pid, uid, value) in the kernel's order:
//! the thread's queue first, then the process's, each by signal number,
//! real-time ones in the order they were queued. With the argument
//! `many`, one more real-time signal is queued 70 times process-wide and
//! 40 times for the thread (more than one batch of PTRACE_PEEKSIGINFO).
#[path = "lib.rs"]
mod zdtm;

use std::sync::atomic::{AtomicBool, Ordering};

use criu_arch::sig::*;
use criu_arch::{SI_TKILL, SI_USER, nr, sigmask_bit as bit, syscall2, syscall3, syscall4};
use zdtm::RawSiginfo;

const RT_A: usize = SIGRTMIN + 2;
const RT_B: usize = SIGRTMIN + 5;
const RT_C: usize = 63;
const RT_D: usize = SIGRTMIN + 10;

/// The `many` argument was given.
static MANY: AtomicBool = AtomicBool::new(false);

/// Where a signal is sent.
#[derive(Clone, Copy)]
enum To {
    Process,
    Thread,
}

/// How: plain kill/tgkill, or queued with a value.
#[derive(Clone, Copy)]
enum How {
    Kill,
    Queue(u64),
}

fn sends() -> Vec<(usize, To, How)> {
    use How::*;
    use To::*;
    let mut v = vec![
        (SIGUSR1, Process, Kill),
        (SIGUSR2, Thread, Kill),
        (SIGHUP, Process, Queue(0x1111)),
        (SIGWINCH, Thread, Queue(0x2222)),
    ];
    for i in 0..3 {
        v.push((RT_A, Process, Queue(100 + i)));
    }
    for i in 0..2 {
        v.push((RT_B, Process, Queue(200 + i)));
        v.push((RT_B, Thread, Queue(300 + i)));
    }
    // A plain kill of a real-time signal is queued too.
    v.push((RT_B, Thread, Kill));
    for i in 0..4 {
        v.push((RT_C, Thread, Queue(0xdead_0000_0000 + i)));
    }
    if MANY.load(Ordering::Relaxed) {
        for i in 0..70 {
            v.push((RT_D, Process, Queue(0x7000 + i)));
        }
        for i in 0..40 {
            v.push((RT_D, Thread, Queue(0x4000 + i)));
        }
    }
    v
}

fn send(sig: usize, to: To, how: How) -> Result<(), String> {
    let pid = std::process::id() as usize;
    let tid = zdtm::gettid() as usize;
    // SAFETY: integer arguments, or a live 128-byte siginfo.
    let ret = unsafe {
        match (to, how) {
            (To::Process, How::Kill) => syscall2(nr::KILL, pid, sig),
            (To::Thread, How::Kill) => syscall3(nr::TGKILL, pid, tid, sig),
            (To::Process, How::Queue(v)) => {
                let info = RawSiginfo::queued(sig as i32, v);
                syscall3(nr::RT_SIGQUEUEINFO, pid, sig, info.0.as_ptr() as usize)
            }
            (To::Thread, How::Queue(v)) => {
                let info = RawSiginfo::queued(sig as i32, v);
                syscall4(
                    nr::RT_TGSIGQUEUEINFO,
                    pid,
                    tid,
                    sig,
                    info.0.as_ptr() as usize,
                )
            }
        }
    };
    zdtm::errno(ret, &format!("sending signal {sig}")).map(drop)
}

/// The fields compared: signo, code, pid, uid, and the value of queued
/// signals.
type Key = (i32, i32, i32, i32, u64);

fn key(s: &RawSiginfo) -> Key {
    let value = if s.code() < 0 && s.code() != SI_TKILL {
        s.value()
    } else {
        0
    };
    (s.signo(), s.code(), s.pid(), s.uid(), value)
}

/// What `rt_sigtimedwait` must return, in order.
fn expected() -> Vec<Key> {
    let pid = std::process::id() as i32;
    let uid = rustix::process::getuid().as_raw() as i32;
    let one = |&(sig, to, how): &(usize, To, How)| match how {
        How::Kill => {
            let code = match to {
                To::Process => SI_USER,
                To::Thread => SI_TKILL,
            };
            (sig as i32, code, pid, uid, 0)
        }
        How::Queue(v) => (sig as i32, -1, pid, uid, v),
    };
    let mut thread: Vec<_> = sends()
        .into_iter()
        .filter(|s| matches!(s.1, To::Thread))
        .collect();
    let mut process: Vec<_> = sends()
        .into_iter()
        .filter(|s| matches!(s.1, To::Process))
        .collect();
    // Stable sorts: per signal, queue order is kept.
    thread.sort_by_key(|s| s.0);
    process.sort_by_key(|s| s.0);
    thread.iter().chain(&process).map(one).collect()
}

fn wait_set() -> u64 {
    sends().iter().fold(0, |m, s| m | bit(s.0))
}

fn pending() -> Result<u64, String> {
    let mut set: u64 = 0;
    // SAFETY: the kernel writes 8 bytes to `set`.
    let ret = unsafe { syscall2(nr::RT_SIGPENDING, &mut set as *mut u64 as usize, 8) };
    zdtm::errno(ret, "rt_sigpending").map(|_| set)
}

fn setup(many: bool) -> Result<u64, String> {
    MANY.store(many, Ordering::Relaxed);
    let set = wait_set();
    zdtm::sigprocmask(criu_arch::SIG_BLOCK, Some(set))?;
    for (sig, to, how) in sends() {
        send(sig, to, how)?;
    }
    let p = pending()?;
    zdtm::ensure(p == set, || format!("setup: pending {p:#x}, want {set:#x}"))?;
    zdtm::blocked()
}

fn check(blocked: u64) -> Result<(), String> {
    let now = zdtm::blocked()?;
    zdtm::ensure(now == blocked, || {
        format!("blocked mask {now:#x} after restore, {blocked:#x} before")
    })?;
    let set = wait_set();
    let p = pending()?;
    zdtm::ensure(p == set, || {
        format!("pending set {p:#x} after restore, want {set:#x}")
    })?;
    let mut got = Vec::new();
    loop {
        let mut info = RawSiginfo::zeroed();
        let zero: [u64; 2] = [0, 0];
        // SAFETY: the kernel reads the 8-byte set and the timespec and
        // writes one siginfo.
        let ret = unsafe {
            syscall4(
                nr::RT_SIGTIMEDWAIT,
                &set as *const u64 as usize,
                info.0.as_mut_ptr() as usize,
                zero.as_ptr() as usize,
                8,
            )
        };
        if ret == -11 {
            break; // EAGAIN: nothing left
        }
        zdtm::errno(ret, "rt_sigtimedwait")?;
        got.push(info);
        if got.len() > 1000 {
            return Err("more than 1000 pending signals".into());
        }
    }
    let want = expected();
    let keys: Vec<Key> = got.iter().map(key).collect();
    if keys != want {
        let at = keys
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(keys.len().min(want.len()));
        return Err(format!(
            "{} signals collected, want {}; first difference at #{at}: got {:?}, want {:?}",
            keys.len(),
            want.len(),
            got.get(at),
            want.get(at)
        ));
    }
    Ok(())
}

fn main() {
    zdtm::run(
        |args| setup(args.rest.iter().any(|a| a == "many")),
        |_| {},
        check,
    );
}
