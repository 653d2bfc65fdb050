//! POSIX timers: a periodic CLOCK_MONOTONIC timer signalling with a value,
//! a one-shot CLOCK_REALTIME timer far in the future, a SIGEV_NONE timer,
//! and a periodic SIGEV_THREAD_ID timer aimed at this thread. After
//! restore each timer has its old id (timer_gettime works on it and gives
//! the same interval; no other id exists), the remaining times are no
//! larger than before the dump, the periodic timers go on firing with
//! their values and ids in the siginfo, and the overrun counts are sane.
//! With the argument `gap`, a timer deleted before the last one leaves a
//! hole in the ids, which must stay a hole. With `blocked`, the periodic
//! timer's signal is blocked across the dump, so its siginfo is pending:
//! after restore it must still be, and be delivered with the timer's
//! value, code and id once unblocked.
#[path = "lib.rs"]
mod zdtm;

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use criu_arch::{
    SA_RESTART, SA_SIGINFO, Siginfo, nr, sig::*, sigmask_bit as bit, syscall1, syscall2, syscall3,
    syscall4,
};

const CLOCK_REALTIME: usize = 0;
const CLOCK_MONOTONIC: usize = 1;
const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD_ID: i32 = 4;
const SI_TIMER: i32 = -2;

const SIG_PERIODIC: usize = SIGRTMIN + 3;
const SIG_THREAD: usize = SIGRTMIN + 4;

/// What the handlers saw: count, last si_value, si_code and si_tid (the
/// timer id), per signal (index 0: SIG_PERIODIC, 1: SIG_THREAD).
static FIRED: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static VALUE: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static CODE: [AtomicI32; 2] = [const { AtomicI32::new(0) }; 2];
static TIMER: [AtomicI32; 2] = [const { AtomicI32::new(-1) }; 2];

extern "C" fn on_timer(sig: i32, info: *const Siginfo, _uc: usize) {
    let i = usize::from(sig as usize == SIG_THREAD);
    // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers;
    // RawSiginfo has its size and alignment.
    let raw = unsafe { &*(info as *const zdtm::RawSiginfo) };
    VALUE[i].store(raw.value(), Ordering::SeqCst);
    CODE[i].store(raw.code(), Ordering::SeqCst);
    TIMER[i].store(raw.pid(), Ordering::SeqCst);
    FIRED[i].fetch_add(1, Ordering::SeqCst);
}

/// One timer as created: clock, notification, signal, value, and the
/// times it was armed with (ns).
#[derive(Clone, Copy, Debug)]
struct Spec {
    clock: usize,
    notify: i32,
    signo: usize,
    value: u64,
    interval_ns: u64,
    first_ns: u64,
}

fn specs() -> [Spec; 4] {
    [
        Spec {
            clock: CLOCK_MONOTONIC,
            notify: SIGEV_SIGNAL,
            signo: SIG_PERIODIC,
            value: 0xabc0_0001,
            interval_ns: 10_000_000,
            first_ns: 10_000_000,
        },
        Spec {
            clock: CLOCK_REALTIME,
            notify: SIGEV_SIGNAL,
            signo: SIGUSR1,
            value: 0x1111,
            interval_ns: 0,
            first_ns: 1_000_000 * 1_000_000_000,
        },
        Spec {
            clock: CLOCK_MONOTONIC,
            notify: SIGEV_NONE,
            signo: 0,
            value: 0,
            interval_ns: 5_000_000_000,
            first_ns: 100_000_000_000,
        },
        Spec {
            clock: CLOCK_MONOTONIC,
            notify: SIGEV_THREAD_ID,
            signo: SIG_THREAD,
            value: 0x3333_0000_0003,
            interval_ns: 30_000_000,
            first_ns: 30_000_000,
        },
    ]
}

/// `struct sigevent`: value, signo, notify, thread id, padding.
#[repr(C)]
struct Sigevent {
    value: u64,
    signo: i32,
    notify: i32,
    tid: i32,
    _pad: [i32; 11],
}

const NS: u64 = 1_000_000_000;

fn create(s: &Spec) -> Result<i32, String> {
    let sev = Sigevent {
        value: s.value,
        signo: s.signo as i32,
        notify: s.notify,
        tid: if s.notify == SIGEV_THREAD_ID {
            zdtm::gettid()
        } else {
            0
        },
        _pad: [0; 11],
    };
    let mut id: i32 = 0;
    // SAFETY: `sev` and `id` are live for the call.
    let ret = unsafe {
        syscall3(
            nr::TIMER_CREATE,
            s.clock,
            &sev as *const Sigevent as usize,
            &mut id as *mut i32 as usize,
        )
    };
    zdtm::errno(ret, "timer_create")?;
    let spec: [u64; 4] = [
        s.interval_ns / NS,
        s.interval_ns % NS,
        s.first_ns / NS,
        s.first_ns % NS,
    ];
    // SAFETY: `spec` is a live struct itimerspec; no old value is wanted.
    let ret = unsafe { syscall4(nr::TIMER_SETTIME, id as usize, 0, spec.as_ptr() as usize, 0) };
    zdtm::errno(ret, "timer_settime")?;
    Ok(id)
}

/// `timer_gettime`: (interval, remaining) in ns, or the errno.
fn gettime(id: i32) -> Result<(u64, u64), isize> {
    let mut v = [0u64; 4];
    // SAFETY: the kernel writes one struct itimerspec into `v`.
    let ret = unsafe { syscall3(nr::TIMER_GETTIME, id as usize, v.as_mut_ptr() as usize, 0) };
    if ret < 0 {
        return Err(-ret);
    }
    Ok((v[0] * NS + v[1], v[2] * NS + v[3]))
}

fn pending() -> Result<u64, String> {
    let mut set: u64 = 0;
    // SAFETY: the kernel writes 8 bytes to `set`.
    let ret = unsafe { syscall2(nr::RT_SIGPENDING, &mut set as *mut u64 as usize, 8) };
    zdtm::errno(ret, "rt_sigpending").map(|_| set)
}

fn overrun(id: i32) -> Result<usize, String> {
    // SAFETY: integer argument only.
    let ret = unsafe { syscall1(nr::TIMER_GETOVERRUN, id as usize) };
    zdtm::errno(ret, &format!("timer_getoverrun({id})"))
}

struct State {
    ids: Vec<i32>,
    /// Remaining ns of each timer, last seen before the dump.
    left: Vec<u64>,
    /// The id deleted to leave a hole (argument `gap`).
    deleted: Option<i32>,
    /// SIG_PERIODIC is blocked across the dump.
    blocked: bool,
}

fn setup(gap: bool, blocked: bool) -> Result<State, String> {
    for sig in [SIG_PERIODIC, SIG_THREAD] {
        let act = zdtm::action(on_timer as *const () as usize, SA_SIGINFO | SA_RESTART, 0);
        zdtm::set_sigaction(sig, &act)?;
    }
    let mut ids = Vec::new();
    let mut deleted = None;
    for (i, sp) in specs().iter().enumerate() {
        if i == 3 && gap {
            // A hole in the id range: restoring it needs the kernel's
            // PR_TIMER_CREATE_RESTORE_IDS or CRIU's create-and-delete.
            let id = create(&specs()[2])?;
            // SAFETY: integer argument only.
            let ret = unsafe { syscall1(nr::TIMER_DELETE, id as usize) };
            zdtm::errno(ret, "timer_delete")?;
            deleted = Some(id);
        }
        ids.push(create(sp)?);
    }
    zdtm::sleep_through_signals(Duration::from_millis(100));
    zdtm::ensure(FIRED.iter().all(|f| f.load(Ordering::SeqCst) > 0), || {
        format!("setup: the periodic timers did not fire: {FIRED:?}")
    })?;
    if blocked {
        zdtm::sigprocmask(criu_arch::SIG_BLOCK, Some(bit(SIG_PERIODIC)))?;
        zdtm::sleep_through_signals(Duration::from_millis(30));
        zdtm::ensure(pending()? & bit(SIG_PERIODIC) != 0, || {
            "setup: the blocked timer signal is not pending".into()
        })?;
    }
    let mut s = State {
        left: vec![0; ids.len()],
        ids,
        deleted,
        blocked,
    };
    tick(&mut s);
    Ok(s)
}

fn tick(s: &mut State) {
    for (i, id) in s.ids.iter().enumerate() {
        if let Ok((_, left)) = gettime(*id) {
            s.left[i] = left;
        }
    }
}

fn check(s: State) -> Result<(), String> {
    for (i, (sp, &id)) in specs().iter().zip(&s.ids).enumerate() {
        let (interval, left) =
            gettime(id).map_err(|e| format!("timer {id}: timer_gettime: errno {e}"))?;
        zdtm::ensure(interval == sp.interval_ns, || {
            format!(
                "timer {id}: interval {interval} ns, want {}",
                sp.interval_ns
            )
        })?;
        if sp.interval_ns == 0 || sp.interval_ns > NS {
            // One-shot far away, or a long period: it only counts down.
            let before = s.left[i];
            zdtm::ensure(left <= before && left + 60 * NS > before, || {
                format!("timer {id}: {left} ns left after restore, {before} ns before the dump")
            })?;
        } else {
            zdtm::ensure(left <= sp.interval_ns, || {
                format!(
                    "timer {id}: {left} ns left of a {} ns period",
                    sp.interval_ns
                )
            })?;
        }
        let o = overrun(id)?;
        zdtm::ensure(o < 100_000, || format!("timer {id}: overrun {o}"))?;
    }
    // No timer beyond the ones created, none in the hole.
    let max = *s.ids.iter().max().unwrap_or(&0);
    for extra in [max + 1, max + 2].into_iter().chain(s.deleted) {
        zdtm::ensure(gettime(extra) == Err(22), || {
            format!("timer id {extra} exists after restore, it did not before")
        })?;
    }

    if s.blocked {
        zdtm::ensure(pending()? & bit(SIG_PERIODIC) != 0, || {
            "the pending timer signal is gone after restore".into()
        })?;
        let n = FIRED[0].load(Ordering::SeqCst);
        VALUE[0].store(0, Ordering::SeqCst);
        zdtm::sigprocmask(criu_arch::SIG_UNBLOCK, Some(bit(SIG_PERIODIC)))?;
        let (m, v, c, t) = (
            FIRED[0].load(Ordering::SeqCst),
            VALUE[0].load(Ordering::SeqCst),
            CODE[0].load(Ordering::SeqCst),
            TIMER[0].load(Ordering::SeqCst),
        );
        let (want, id) = (specs()[0].value, s.ids[0]);
        zdtm::ensure(m > n && v == want && c == SI_TIMER && t == id, || {
            format!(
                "unblocking the timer signal: {} deliveries, si_value {v:#x}, si_code {c}, \
                 timer {t}; want some, {want:#x}, {SI_TIMER}, {id}",
                m - n
            )
        })?;
    }
    let before: Vec<u64> = FIRED.iter().map(|f| f.load(Ordering::SeqCst)).collect();
    let slept = std::time::Instant::now();
    zdtm::sleep_through_signals(Duration::from_millis(300));
    // A loaded machine (or an emulated one) wakes the sleeper late: the
    // bound is on the time that really passed, counted until after the
    // signals are read.
    for (i, (sig, period_ms, spec)) in
        [(SIG_PERIODIC, 10, specs()[0]), (SIG_THREAD, 30, specs()[3])]
            .into_iter()
            .enumerate()
    {
        let n = FIRED[i].load(Ordering::SeqCst) - before[i];
        let ms = slept.elapsed().as_millis() as u64;
        // Overruns fold several expiries into one signal: only require
        // that it keeps firing, and not faster than its period.
        zdtm::ensure(n >= 2 && n <= ms / period_ms + 2, || {
            format!("signal {sig}: {n} timer signals in {ms} ms at a {period_ms} ms period")
        })?;
        let (v, c, t) = (
            VALUE[i].load(Ordering::SeqCst),
            CODE[i].load(Ordering::SeqCst),
            TIMER[i].load(Ordering::SeqCst),
        );
        let id = s.ids[if i == 0 { 0 } else { 3 }];
        zdtm::ensure(v == spec.value && c == SI_TIMER && t == id, || {
            format!(
                "signal {sig}: si_value {v:#x}, si_code {c}, timer {t}; want {:#x}, {SI_TIMER}, {id}",
                spec.value
            )
        })?;
    }
    Ok(())
}

fn main() {
    zdtm::run(
        |args| {
            let has = |w: &str| args.rest.iter().any(|a| a == w);
            setup(has("gap"), has("blocked"))
        },
        tick,
        check,
    );
}
