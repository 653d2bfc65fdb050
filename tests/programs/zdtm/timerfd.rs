//! timerfds: a periodic 50 ms monotonic timer (never read before the
//! dump), a one-shot 1 ms timer that expired before the dump and was
//! not read (1 tick pending), a one-shot 60 s boottime timer and an
//! absolute realtime timer 100 s ahead. After restore the pending tick
//! is still there, the periodic timer fires at its interval, and the
//! long timers have their time left (minus what passed) and no interval.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_gettime, timerfd_settime,
};
use zdtm::ensure;

fn ts(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as _,
    }
}

fn dur(t: Timespec) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn timer(
    clock: TimerfdClockId,
    flags: TimerfdTimerFlags,
    value: Timespec,
    interval: Duration,
) -> Result<OwnedFd, String> {
    let fd = timerfd_create(clock, TimerfdFlags::NONBLOCK).map_err(|e| e.to_string())?;
    let spec = Itimerspec {
        it_interval: ts(interval),
        it_value: value,
    };
    timerfd_settime(&fd, flags, &spec).map_err(|e| format!("timerfd_settime: {e}"))?;
    Ok(fd)
}

fn ticks(fd: impl AsFd) -> Result<u64, rustix::io::Errno> {
    let mut b = [0u8; 8];
    rustix::io::read(fd, &mut b)?;
    Ok(u64::from_ne_bytes(b))
}

struct Timers {
    periodic: OwnedFd,
    pending: OwnedFd,
    long: OwnedFd,
    abs: OwnedFd,
    started: Instant,
}

fn main() {
    zdtm::run(
        |_| {
            let none = TimerfdTimerFlags::empty();
            let ms = Duration::from_millis;
            let periodic = timer(TimerfdClockId::Monotonic, none, ts(ms(50)), ms(50))?;
            let pending = timer(TimerfdClockId::Monotonic, none, ts(ms(1)), ms(0))?;
            let long = timer(TimerfdClockId::Boottime, none, ts(ms(60_000)), ms(0))?;
            let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
            let at = Timespec {
                tv_sec: now.tv_sec + 100,
                tv_nsec: now.tv_nsec,
            };
            let abs = timer(
                TimerfdClockId::Realtime,
                TimerfdTimerFlags::ABSTIME,
                at,
                ms(0),
            )?;
            std::thread::sleep(ms(5));
            Ok(Timers {
                periodic,
                pending,
                long,
                abs,
                started: Instant::now(),
            })
        },
        |_| {},
        |t| {
            let n = ticks(&t.pending).map_err(|e| format!("pending timer: no tick ({e})"))?;
            ensure(n == 1, || format!("pending timer: {n} ticks, want 1"))?;
            let g = timerfd_gettime(&t.pending).map_err(|e| e.to_string())?;
            ensure(dur(g.it_value).is_zero(), || {
                "pending timer re-armed".into()
            })?;

            let g = timerfd_gettime(&t.periodic).map_err(|e| e.to_string())?;
            ensure(dur(g.it_interval) == Duration::from_millis(50), || {
                format!("periodic interval {:?}", dur(g.it_interval))
            })?;
            // It has been running all along: at least one tick by now.
            let _ = ticks(&t.periodic);
            // Then it keeps its pace: about 5 ticks in 250 ms.
            let start = Instant::now();
            std::thread::sleep(Duration::from_millis(250));
            let n = ticks(&t.periodic).map_err(|e| format!("periodic: {e}"))?;
            let want = start.elapsed().as_millis() as u64 / 50;
            ensure(n + 1 >= want && n <= want + 1, || {
                format!("periodic timer: {n} ticks in {:?}", start.elapsed())
            })?;

            let elapsed = t.started.elapsed();
            for (what, fd, total) in [("boottime", &t.long, 60), ("absolute", &t.abs, 100)] {
                let g = timerfd_gettime(fd).map_err(|e| e.to_string())?;
                let left = dur(g.it_value);
                let total = Duration::from_secs(total);
                ensure(
                    left <= total && left + elapsed + Duration::from_secs(2) >= total,
                    || format!("{what} timer: {left:?} left after {elapsed:?}"),
                )?;
                ensure(dur(g.it_interval).is_zero(), || format!("{what}: interval"))?;
            }
            let fl = rustix::fs::fcntl_getfl(&t.long).map_err(|e| e.to_string())?;
            ensure(fl.contains(rustix::fs::OFlags::NONBLOCK), || {
                "long timer lost O_NONBLOCK".into()
            })
        },
    );
}
