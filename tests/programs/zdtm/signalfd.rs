//! A non-blocking signalfd for SIGUSR1 and SIGRTMIN+2 (both blocked).
//! After restore its mask is the same and it delivers a signal sent
//! after restore.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use zdtm::ensure;

const SIGUSR1: usize = 10;
const SIGRT2: usize = 34 + 2;
const MASK: u64 = (1 << (SIGUSR1 - 1)) | (1 << (SIGRT2 - 1));
const SFD_NONBLOCK: usize = 0o4000;

fn sigmask_line(fd: &OwnedFd) -> String {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("sigmask:"))
        .unwrap_or("")
        .to_string()
}

fn main() {
    zdtm::run(
        |_| {
            zdtm::sigprocmask(0, Some(MASK))?; // SIG_BLOCK
            let mask = MASK;
            // SAFETY: signalfd4 reads 8 bytes of mask from a live u64.
            let ret = unsafe {
                criu_arch::syscall4(
                    criu_arch::nr::SIGNALFD4,
                    usize::MAX,
                    &mask as *const u64 as usize,
                    8,
                    SFD_NONBLOCK,
                )
            };
            let fd = zdtm::errno(ret, "signalfd4")? as i32;
            // SAFETY: a fresh fd nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let line = sigmask_line(&fd);
            Ok((fd, line))
        },
        |_| {},
        |(fd, line)| {
            ensure(sigmask_line(&fd) == line, || {
                format!("sigmask {:?}, was {line:?}", sigmask_line(&fd))
            })?;
            let mut buf = [0u8; 128];
            ensure(rustix::io::read(&fd, &mut buf).is_err(), || {
                "a signal was readable before any was sent".into()
            })?;
            zdtm::raise(SIGUSR1)?;
            let n = rustix::io::read(&fd, &mut buf).map_err(|e| format!("read: {e}"))?;
            let signo = u32::from_ne_bytes(buf[..4].try_into().unwrap());
            ensure(n == 128 && signo == SIGUSR1 as u32, || {
                format!("read {n} bytes, signal {signo}")
            })?;
            let blocked = zdtm::blocked()?;
            ensure(blocked & MASK == MASK, || {
                format!("blocked mask {blocked:#x}")
            })
        },
    );
}
