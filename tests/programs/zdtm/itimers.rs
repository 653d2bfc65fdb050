//! Interval timers: ITIMER_REAL every 20 ms with a counting SIGALRM
//! handler, ITIMER_VIRTUAL and ITIMER_PROF armed with long values. After
//! restore the intervals must be exactly the same, the CPU-time timers'
//! remaining values no larger than the last ones seen before the dump
//! (they do not run while the task does not exist) and not much smaller,
//! and SIGALRM must go on firing about every 20 ms.
//!
//! With the argument `blocked`, SIGALRM is blocked across the dump: the
//! real timer has expired and waits for its pending signal to be taken
//! (the kernel re-arms it only then), so it reads as 0 left. After
//! restore the signal must be pending and, once unblocked, the timer must
//! go on firing.
#[path = "lib.rs"]
mod zdtm;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criu_arch::{SA_RESTART, nr, sig::SIGALRM, sigmask_bit as bit, syscall2, syscall3};

const ITIMER_REAL: usize = 0;
const ITIMER_VIRTUAL: usize = 1;
const ITIMER_PROF: usize = 2;

static ALARMS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_alarm(_sig: i32) {
    ALARMS.fetch_add(1, Ordering::SeqCst);
}

/// `struct itimerval` in microseconds: (interval, value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Itimer {
    interval_us: u64,
    value_us: u64,
}

fn set(which: usize, interval_us: u64, value_us: u64) -> Result<(), String> {
    let v: [u64; 4] = [
        interval_us / 1_000_000,
        interval_us % 1_000_000,
        value_us / 1_000_000,
        value_us % 1_000_000,
    ];
    // SAFETY: `v` is a live struct itimerval; no old value is wanted.
    let ret = unsafe { syscall3(nr::SETITIMER, which, v.as_ptr() as usize, 0) };
    zdtm::errno(ret, &format!("setitimer({which})")).map(drop)
}

fn pending() -> Result<u64, String> {
    let mut set: u64 = 0;
    // SAFETY: the kernel writes 8 bytes to `set`.
    let ret = unsafe { syscall2(nr::RT_SIGPENDING, &mut set as *mut u64 as usize, 8) };
    zdtm::errno(ret, "rt_sigpending").map(|_| set)
}

fn get(which: usize) -> Result<Itimer, String> {
    let mut v = [0u64; 4];
    // SAFETY: the kernel writes one struct itimerval into `v`.
    let ret = unsafe { syscall2(nr::GETITIMER, which, v.as_mut_ptr() as usize) };
    zdtm::errno(ret, &format!("getitimer({which})"))?;
    Ok(Itimer {
        interval_us: v[0] * 1_000_000 + v[1],
        value_us: v[2] * 1_000_000 + v[3],
    })
}

const REAL_US: u64 = 20_000;
const VIRT: (u64, u64) = (50_000_000, 100_000_000);
const PROF: (u64, u64) = (70_000_000, 150_000_000);

struct State {
    /// SIGALRM is blocked across the dump.
    blocked: bool,
    /// The last values seen before the dump (updated by every tick).
    virt: Itimer,
    prof: Itimer,
}

fn setup(blocked: bool) -> Result<State, String> {
    zdtm::set_sigaction(
        SIGALRM,
        &zdtm::action(on_alarm as *const () as usize, SA_RESTART, 0),
    )?;
    set(ITIMER_VIRTUAL, VIRT.0, VIRT.1)?;
    set(ITIMER_PROF, PROF.0, PROF.1)?;
    set(ITIMER_REAL, REAL_US, REAL_US)?;
    let slept = std::time::Instant::now();
    zdtm::sleep_through_signals(Duration::from_millis(100));
    let n = ALARMS.load(Ordering::SeqCst);
    let ms = slept.elapsed().as_millis() as u64;
    zdtm::ensure(n >= 2 && n <= ms / 20 + 5, || {
        format!("setup: {n} SIGALRMs in {ms} ms at a 20 ms interval")
    })?;
    if blocked {
        zdtm::sigprocmask(criu_arch::SIG_BLOCK, Some(bit(SIGALRM)))?;
        zdtm::sleep_through_signals(Duration::from_millis(3 * REAL_US / 1000));
        let real = get(ITIMER_REAL)?;
        zdtm::ensure(real.value_us == 0 && pending()? & bit(SIGALRM) != 0, || {
            format!("setup: blocked SIGALRM not pending, or the timer runs on: {real:?}")
        })?;
    }
    Ok(State {
        blocked,
        virt: get(ITIMER_VIRTUAL)?,
        prof: get(ITIMER_PROF)?,
    })
}

fn tick(s: &mut State) {
    if let (Ok(v), Ok(p)) = (get(ITIMER_VIRTUAL), get(ITIMER_PROF)) {
        s.virt = v;
        s.prof = p;
    }
}

fn check(s: State) -> Result<(), String> {
    let real = get(ITIMER_REAL)?;
    zdtm::ensure(real.interval_us == REAL_US, || {
        format!(
            "ITIMER_REAL interval {} us, want {REAL_US}",
            real.interval_us
        )
    })?;
    zdtm::ensure(real.value_us <= REAL_US, || {
        format!(
            "ITIMER_REAL has {} us left of a {REAL_US} us period",
            real.value_us
        )
    })?;
    for (name, which, before, interval) in [
        ("VIRTUAL", ITIMER_VIRTUAL, s.virt, VIRT.0),
        ("PROF", ITIMER_PROF, s.prof, PROF.0),
    ] {
        let now = get(which)?;
        zdtm::ensure(now.interval_us == interval, || {
            format!(
                "ITIMER_{name} interval {} us, want {interval}",
                now.interval_us
            )
        })?;
        // A little CPU time passes between the last tick and the dump,
        // and since the restore: a few seconds at the very most. Arming a
        // CPU-time itimer adds one scheduler tick (set_cpu_itimer), which
        // the restore's setitimer does again: allow that much (1/HZ, at
        // most 10 ms).
        const TICK_US: u64 = 10_000;
        zdtm::ensure(
            now.value_us <= before.value_us + TICK_US && now.value_us + 5_000_000 > before.value_us,
            || {
                format!(
                    "ITIMER_{name}: {} us left after restore, {} us before the dump",
                    now.value_us, before.value_us
                )
            },
        )?;
    }
    if s.blocked {
        zdtm::ensure(pending()? & bit(SIGALRM) != 0, || {
            "the pending SIGALRM is gone after restore".into()
        })?;
        let n = ALARMS.load(Ordering::SeqCst);
        let unblocked = std::time::Instant::now();
        zdtm::sigprocmask(criu_arch::SIG_UNBLOCK, Some(bit(SIGALRM)))?;
        let m = ALARMS.load(Ordering::SeqCst);
        // Taking the pending signal re-arms the timer by whole periods
        // from its old expiry (hrtimer_forward), so its next expiry can
        // be any time up to one period away: on a slow machine it may
        // fire again before sigprocmask returns. More than that, or none,
        // would be a signal invented or lost.
        let ms = unblocked.elapsed().as_millis() as u64;
        zdtm::ensure(m > n && m - n <= 2 + ms / 20, || {
            format!(
                "unblocking SIGALRM ran its handler {} times in {ms} ms, want once (plus one per 20 ms period passed)",
                m - n
            )
        })?;
    }
    let n0 = ALARMS.load(Ordering::SeqCst);
    let slept = std::time::Instant::now();
    zdtm::sleep_through_signals(Duration::from_millis(200));
    let n = ALARMS.load(Ordering::SeqCst) - n0;
    // About 10; a loaded machine may delay some, but not lose most or
    // invent extra ones. It may also wake the sleeper late: the upper
    // bound is on the time that really passed.
    let ms = slept.elapsed().as_millis() as u64;
    zdtm::ensure(n >= 4 && n <= ms / 20 + 2, || {
        format!("{n} SIGALRMs in {ms} ms at a 20 ms interval after restore")
    })
}

fn main() {
    zdtm::run(
        |args| setup(args.rest.iter().any(|a| a == "blocked")),
        tick,
        check,
    );
}
