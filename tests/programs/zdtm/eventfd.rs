//! eventfds: a non-blocking counter above 32 bits, a semaphore eventfd
//! with a count of 3, and a dup of it. After restore the counters read
//! back, the semaphore hands out its units one by one, the flags and the
//! sharing of the dup are intact.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::event::{EventfdFlags, eventfd};
use zdtm::ensure;

const BIG: u64 = 0x1_0000_0005;

fn read_u64(fd: impl AsFd) -> Result<u64, rustix::io::Errno> {
    let mut b = [0u8; 8];
    rustix::io::read(fd, &mut b)?;
    Ok(u64::from_ne_bytes(b))
}

fn fdinfo(fd: &OwnedFd) -> String {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap_or_default()
}

fn main() {
    zdtm::run(
        |_| {
            let e = |v, f| eventfd(v, f).map_err(|e| format!("eventfd: {e}"));
            let big = e(0, EventfdFlags::NONBLOCK)?;
            rustix::io::write(&big, &BIG.to_ne_bytes()).map_err(|e| e.to_string())?;
            let sem = e(3, EventfdFlags::SEMAPHORE | EventfdFlags::NONBLOCK)?;
            let dup = rustix::io::dup(&sem).map_err(|e| e.to_string())?;
            // Kernels before 6.5 do not show the semaphore mode in fdinfo,
            // so no dump can keep it (CRIU's neither): the counter and the
            // sharing are checked then.
            let shows_mode = fdinfo(&sem).contains("eventfd-semaphore");
            Ok((big, sem, dup, shows_mode))
        },
        |_| {},
        |(big, sem, dup, shows_mode)| {
            let fl = rustix::fs::fcntl_getfl(&big).map_err(|e| e.to_string())?;
            ensure(fl.contains(rustix::fs::OFlags::NONBLOCK), || {
                format!("big: flags {fl:?} lost O_NONBLOCK")
            })?;
            let v = read_u64(&big).map_err(|e| format!("read big: {e}"))?;
            ensure(v == BIG, || format!("big counter {v:#x}, want {BIG:#x}"))?;
            ensure(read_u64(&big).is_err(), || {
                "big: readable after reading".into()
            })?;
            if !shows_mode {
                let v = read_u64(&sem).map_err(|e| format!("read sem: {e}"))?;
                ensure(v == 3, || format!("sem counter {v}, want 3"))?;
                return ensure(read_u64(&dup).is_err(), || {
                    "sem still readable through its dup (dup not shared?)".into()
                });
            }
            ensure(fdinfo(&sem).contains("eventfd-semaphore: 1"), || {
                format!("sem fdinfo: {}", fdinfo(&sem))
            })?;
            for i in 0..3 {
                let v = read_u64(if i == 1 { &dup } else { &sem })
                    .map_err(|e| format!("read sem #{i}: {e}"))?;
                ensure(v == 1, || format!("semaphore read #{i} gave {v}, want 1"))?;
            }
            ensure(read_u64(&dup).is_err(), || {
                "semaphore still readable after 3 reads (dup not shared?)".into()
            })?;
            rustix::io::write(&sem, &7u64.to_ne_bytes()).map_err(|e| e.to_string())?;
            let v = read_u64(&dup).map_err(|e| format!("read dup: {e}"))?;
            ensure(v == 1, || format!("dup read {v} after write to sem"))
        },
    );
}
