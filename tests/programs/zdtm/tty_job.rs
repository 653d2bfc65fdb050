//! A job of a shell on a terminal, for `--shell-job` (two modes):
//!
//! - `tty_job shell SLAVE STATUS CMD ARGS...`: a tiny shell. It makes its
//!   own session with `SLAVE` (a `/dev/pts/N` path) as its controlling
//!   terminal and stdio, runs `CMD ARGS...` as a job in a process group of
//!   its own, writes the job's exit code to `STATUS`, then stays (keeping
//!   the session and its terminal) until killed.
//! - `tty_job DIR`: the job (the ZDTM protocol). Its stdio is the shell's
//!   terminal, which is its controlling terminal; it leads its process
//!   group (so the library's `setsid` fails and it stays in the shell's
//!   session). After restore its stdio must be a terminal again (criu's),
//!   still its controlling one, in the session of the shell that ran the
//!   restore, and it still leads its group; it then writes a line to it.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;

use zdtm::ensure;

/// `TIOCGSID`.
const TIOCGSID: usize = linux_raw_sys::ioctl::TIOCGSID as usize;
/// `TCGETS` (0x5401 on x86_64, arm64 and s390x; ppc64 encodes it with
/// the termios size).
const TCGETS: usize = linux_raw_sys::ioctl::TCGETS as usize;

fn shell(args: &[String]) -> Result<(), String> {
    let [slave, status, cmd, rest @ ..] = args else {
        return Err("usage: tty_job shell SLAVE STATUS CMD ARGS...".into());
    };
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    // A session leader without a terminal opening one gets it.
    let fd = rustix::fs::open(
        slave.as_str(),
        rustix::fs::OFlags::RDWR,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("open {slave}: {e}"))?;
    for target in 0..3 {
        // SAFETY: integer arguments; replaces our stdio with the terminal.
        let r =
            unsafe { criu_arch::syscall3(criu_arch::nr::DUP3, fd.as_raw_fd() as usize, target, 0) };
        zdtm::errno(r, "dup3")?;
    }
    drop(fd);
    let code = std::process::Command::new(cmd)
        .args(rest)
        .process_group(0)
        .status()
        .map_err(|e| format!("run {cmd}: {e}"))?
        .code()
        .unwrap_or(-1);
    std::fs::write(status, format!("{code}\n")).map_err(|e| e.to_string())?;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn tty_ioctl_int(fd: i32, req: usize) -> Result<i32, String> {
    let mut v: i32 = 0;
    // SAFETY: the kernel writes one int to `v`.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd as usize,
            req,
            &mut v as *mut i32 as usize,
        )
    };
    zdtm::errno(r, "ioctl")?;
    Ok(v)
}

fn is_tty(fd: i32) -> bool {
    let mut t = [0u8; 64];
    // SAFETY: TCGETS writes a kernel termios (36..44 bytes) into `t`.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd as usize,
            TCGETS,
            t.as_mut_ptr() as usize,
        )
    };
    r == 0
}

/// What the job checks: its stdio, terminal and groups.
fn state() -> Result<(), String> {
    for fd in 0..3 {
        ensure(is_tty(fd), || format!("fd {fd} is not a terminal"))?;
    }
    // SAFETY: fd 0 is open for the life of the process.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let rdev = rustix::fs::fstat(stdin).map_err(|e| e.to_string())?.st_rdev;
    let s = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    let f: Vec<i64> = s[s.rfind(')').ok_or("stat")? + 2..]
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(-1))
        .collect();
    let (pgrp, session, tty_nr) = (f[1], f[2], f[3]);
    let me = i64::from(std::process::id());
    ensure(tty_nr as u64 == rdev, || {
        format!("tty_nr {tty_nr:#x}, stdin is {rdev:#x}")
    })?;
    ensure(pgrp == me, || format!("process group {pgrp}, want {me}"))?;
    ensure(session != me, || "a session leader, not a job".into())?;
    let sid = tty_ioctl_int(0, TIOCGSID)?;
    ensure(i64::from(sid) == session, || {
        format!("the terminal's session is {sid}, ours {session}")
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("shell") {
        if let Err(e) = shell(&args[1..]) {
            eprintln!("tty_job shell: {e}");
            std::process::exit(1);
        }
        return;
    }
    zdtm::run(
        |_| {
            state()?;
            // Our controlling terminal by its generic name: a character
            // device reopened by path (criu's own terminal after restore).
            rustix::fs::open(
                "/dev/tty",
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| format!("open /dev/tty: {e}"))
        },
        |_| {},
        |tty| {
            state()?;
            let link = std::fs::read_link(format!("/proc/self/fd/{}", tty.as_raw_fd()))
                .map_err(|e| e.to_string())?;
            ensure(link.to_str() == Some("/dev/tty"), || {
                format!("the /dev/tty fd is {}", link.display())
            })?;
            let msg = b"hello from the job\n";
            rustix::io::write(std::io::stdout(), msg).map_err(|e| format!("write: {e}"))?;
            rustix::io::write(&tty, b"hello through /dev/tty\n")
                .map_err(|e| format!("write /dev/tty: {e}"))?;
            Ok(())
        },
    );
}
