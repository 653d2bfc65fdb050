//! A task that closed its stdin and stdout (daemons do): after restore
//! fds 0 and 1 must still be closed, not reopened on `/dev/null` or
//! anything else. (stderr stays: the harness reads it.)
//!
//! Usage: `zdtm_closed_stdio DIR [all]`: with `all`, stderr is closed
//! too, and the task has no fd at all.
#[path = "lib.rs"]
mod zdtm;

/// `fcntl(fd, F_GETFD)`: `Ok(flags)` for an open fd, the errno otherwise.
fn getfd(fd: usize) -> Result<usize, isize> {
    const F_GETFD: usize = 1;
    // SAFETY: integer arguments only.
    let ret = unsafe { criu_arch::syscall2(criu_arch::nr::FCNTL, fd, F_GETFD) };
    if ret < 0 { Err(-ret) } else { Ok(ret as usize) }
}

/// What fd `fd` is, for messages.
fn what(fd: usize) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| e.to_string())
}

fn closed(when: &str, fds: &[usize]) -> Result<(), String> {
    const EBADF: isize = 9;
    for &fd in fds {
        match getfd(fd) {
            Err(EBADF) => {}
            other => {
                return Err(format!(
                    "{when}: fd {fd} is {other:?} ({}), want closed",
                    what(fd)
                ));
            }
        }
    }
    Ok(())
}

fn setup(args: &zdtm::Args) -> Result<Vec<usize>, String> {
    let fds = if args.rest.iter().any(|a| a == "all") {
        vec![0, 1, 2]
    } else {
        vec![0, 1]
    };
    for &fd in &fds {
        // SAFETY: closes stdio fds, which no Rust object owns here
        // (nothing of this program prints to them once set up).
        let ret = unsafe { criu_arch::syscall1(criu_arch::nr::CLOSE, fd) };
        zdtm::errno(ret, "close")?;
    }
    closed("setup", &fds)?;
    Ok(fds)
}

fn check(fds: Vec<usize>) -> Result<(), String> {
    closed("after restore", &fds)
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
