//! Interval timers: ITIMER_REAL every 20 ms with a counting SIGALRM
//! handler, ITIMER_VIRTUAL and ITIMER_PROF armed with long values. After
//! restore the intervals must be exactly the same, the CPU-time timers'
//! remaining values no larger than the last ones seen before the dump
//! (they do not run while the task does not exist) and not much smaller,
//! and SIGALRM must go on firing about every 20 ms.
#[path = "lib.rs"]
mod zdtm;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criu_arch::{SA_RESTART, nr, sig::SIGALRM, syscall2, syscall3};

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
    /// The last values seen before the dump (updated by every tick).
    virt: Itimer,
    prof: Itimer,
}

fn setup() -> Result<State, String> {
    zdtm::set_sigaction(
        SIGALRM,
        &zdtm::action(on_alarm as *const () as usize, SA_RESTART, 0),
    )?;
    set(ITIMER_VIRTUAL, VIRT.0, VIRT.1)?;
    set(ITIMER_PROF, PROF.0, PROF.1)?;
    set(ITIMER_REAL, REAL_US, REAL_US)?;
    zdtm::sleep_through_signals(Duration::from_millis(100));
    let n = ALARMS.load(Ordering::SeqCst);
    zdtm::ensure((2..=10).contains(&n), || {
        format!("setup: {n} SIGALRMs in 100 ms at a 20 ms interval")
    })?;
    Ok(State {
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
        // and since the restore: a few seconds at the very most.
        zdtm::ensure(
            now.value_us <= before.value_us && now.value_us + 5_000_000 > before.value_us,
            || {
                format!(
                    "ITIMER_{name}: {} us left after restore, {} us before the dump",
                    now.value_us, before.value_us
                )
            },
        )?;
    }
    let n0 = ALARMS.load(Ordering::SeqCst);
    zdtm::sleep_through_signals(Duration::from_millis(200));
    let n = ALARMS.load(Ordering::SeqCst) - n0;
    // About 10; a loaded machine may delay some, but not lose most or
    // invent extra ones.
    zdtm::ensure((4..=12).contains(&n), || {
        format!("{n} SIGALRMs in 200 ms at a 20 ms interval after restore")
    })
}

fn main() {
    zdtm::run(|_| setup(), tick, check);
}
