//! Children in a job-control stop: child A (three threads) stopped by
//! SIGSTOP, child B stopped by SIGTSTP. After restore both must still be
//! stopped, every thread of them (`/proc/PID/task/*/stat` state `T`, and
//! still so a moment later), the parent must be told that each stopped
//! with its own signal (`waitid(WSTOPPED)`: A by SIGSTOP, B by SIGTSTP, as
//! CRIU's `stop_signo` records), and after SIGCONT each must run on (it
//! answers a byte written to its pipe).
//!
//! Usage: `zdtm_stopped DIR [traced]`: with `traced`, a third child is
//! traced by this program (PTRACE_SEIZE) and sits in a ptrace stop; the
//! dump must refuse it by name (a tracee cannot be seized by the dumper,
//! and its tracer link cannot be restored), and everything must run on.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use criu_arch::sig::{SIGCONT, SIGSTOP};
use criu_arch::{nr, syscall2, syscall4, syscall5};
use rustix::process::{Pid, WaitId, WaitIdOptions};

const SIGTSTP: usize = 20;
const PTRACE_SEIZE: usize = 0x4206;
const PTRACE_INTERRUPT: usize = 0x4207;

/// One child and the pipes to talk to it.
struct Child {
    pid: i32,
    stop_sig: usize,
    to: OwnedFd,
    from: OwnedFd,
}

/// The child's life: optional extra threads that block in `read` too,
/// then answer every byte from `rd` on `wr`.
fn child_body(rd: OwnedFd, wr: OwnedFd, threads: usize) -> ! {
    for _ in 0..threads {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
    }
    let mut b = [0u8; 1];
    loop {
        match rustix::io::read(&rd, &mut b) {
            Ok(1) => {
                let _ = rustix::io::write(&wr, &b);
            }
            Ok(_) => std::process::exit(0),
            Err(_) => {}
        }
    }
}

fn fork_child(threads: usize) -> Result<(i32, OwnedFd, OwnedFd), String> {
    let (to_rd, to_wr) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (from_rd, from_wr) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the child only runs `child_body`, which spawns threads and
    // loops in read/write: nothing that depends on locks held by other
    // threads of the parent (which has none at this point).
    match unsafe { zdtm::raw_fork(0) } {
        0 => {
            // SAFETY: integer arguments only (the parent does the same).
            unsafe { syscall2(nr::SETPGID, 0, 0) };
            drop(to_wr);
            drop(from_rd);
            child_body(to_rd, from_wr, threads)
        }
        pid if pid > 0 => {
            // A group of its own: the program leads its session, so its
            // own group has no parent outside it in the session and is
            // orphaned, and the kernel drops SIGTSTP sent to an orphaned
            // group's member.
            // SAFETY: integer arguments only.
            let ret = unsafe { syscall2(nr::SETPGID, pid as usize, pid as usize) };
            zdtm::errno(ret, "setpgid")?;
            Ok((pid as i32, to_wr, from_rd))
        }
        e => Err(format!("fork: errno {}", -e)),
    }
}

fn kill(pid: i32, sig: usize) -> Result<(), String> {
    // SAFETY: integer arguments only.
    let ret = unsafe { syscall2(nr::KILL, pid as usize, sig) };
    zdtm::errno(ret, &format!("kill({pid}, {sig})")).map(drop)
}

/// The states of every thread of `pid` (`/proc/PID/task/*/stat`).
fn states(pid: i32) -> Result<Vec<char>, String> {
    let dir = format!("/proc/{pid}/task");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
        let p = e.map_err(|e| e.to_string())?.path().join("stat");
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let after = text.rsplit_once(") ").map(|x| x.1).unwrap_or("");
        out.push(after.chars().next().unwrap_or('?'));
    }
    Ok(out)
}

/// Wait until every thread of `pid` shows `state`.
fn wait_state(pid: i32, state: char, what: &str) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let s = states(pid)?;
        if s.iter().all(|&c| c == state) {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!("{what}: thread states {s:?}, want all {state}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Write one byte to the child and read its answer.
fn ping(c: &Child) -> Result<(), String> {
    rustix::io::write(&c.to, b"x").map_err(|e| format!("write to {}: {e}", c.pid))?;
    let mut b = [0u8; 1];
    let end = Instant::now() + Duration::from_secs(10);
    rustix::fs::fcntl_setfl(c.from.as_fd(), rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| e.to_string())?;
    loop {
        match rustix::io::read(&c.from, &mut b) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(format!("child {} closed its pipe", c.pid)),
            Err(rustix::io::Errno::AGAIN) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(format!("no answer from child {}: {e}", c.pid)),
        }
    }
}

struct State {
    children: Vec<Child>,
    traced: Option<i32>,
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let mut children = Vec::new();
    for (threads, stop_sig) in [(2, SIGSTOP), (0, SIGTSTP)] {
        let (pid, to, from) = fork_child(threads)?;
        let c = Child {
            pid,
            stop_sig,
            to,
            from,
        };
        ping(&c)?;
        kill(pid, stop_sig)?;
        wait_state(pid, 'T', "setup")?;
        // The parent is told of the stop (not consumed here: after a
        // restore the news must be there again, with the same signal).
        let st = rustix::process::waitid(
            WaitId::Pid(Pid::from_raw(pid).unwrap()),
            WaitIdOptions::STOPPED | WaitIdOptions::NOWAIT,
        )
        .map_err(|e| format!("waitid: {e}"))?;
        zdtm::ensure(st.is_some_and(|s| s.stopped()), || "no stop report".into())?;
        children.push(c);
    }
    let traced = if args.rest.iter().any(|a| a == "traced") {
        let (pid, to, from) = fork_child(0)?;
        // SAFETY: integer arguments only.
        let ret = unsafe { syscall4(nr::PTRACE, PTRACE_SEIZE, pid as usize, 0, 0) };
        zdtm::errno(ret, "PTRACE_SEIZE")?;
        // SAFETY: integer arguments only.
        let ret = unsafe { syscall4(nr::PTRACE, PTRACE_INTERRUPT, pid as usize, 0, 0) };
        zdtm::errno(ret, "PTRACE_INTERRUPT")?;
        wait_state(pid, 't', "tracee")?;
        // Keep the pipes (and so the child) alive.
        std::mem::forget((to, from));
        Some(pid)
    } else {
        None
    };
    Ok(State { children, traced })
}

fn check(s: State) -> Result<(), String> {
    for c in &s.children {
        let what = format!("child {} (stopped by {})", c.pid, c.stop_sig);
        wait_state(c.pid, 'T', &what)?;
        std::thread::sleep(Duration::from_millis(50));
        let st = states(c.pid)?;
        zdtm::ensure(st.iter().all(|&x| x == 'T'), || {
            format!("{what}: thread states {st:?} a moment later")
        })?;
        let mut info = std::mem::MaybeUninit::<[u8; 128]>::zeroed();
        const P_PID: usize = 1;
        const WSTOPPED: usize = 2;
        const WNOHANG: usize = 1;
        // SAFETY: waitid writes one siginfo (128 bytes) into `info`.
        let ret = unsafe {
            syscall5(
                nr::WAITID,
                P_PID,
                c.pid as usize,
                info.as_mut_ptr() as usize,
                WSTOPPED | WNOHANG,
                0,
            )
        };
        zdtm::errno(ret, "waitid(WSTOPPED)")?;
        // SAFETY: zero-initialised, and the kernel may have filled it.
        let info = unsafe { info.assume_init() };
        let word = |at: usize| i32::from_ne_bytes(info[at..at + 4].try_into().unwrap());
        // si_pid at 16, si_status at 24.
        zdtm::ensure(word(16) == c.pid && word(24) == c.stop_sig as i32, || {
            format!(
                "{what}: the parent is told pid {} status {}, want pid {} status {}",
                word(16),
                word(24),
                c.pid,
                c.stop_sig
            )
        })?;
        kill(c.pid, SIGCONT)?;
        ping(c).map_err(|e| format!("{what} after SIGCONT: {e}"))?;
    }
    if let Some(pid) = s.traced {
        // Still ours to trace, still stopped.
        wait_state(pid, 't', "tracee")?;
    }
    for pid in s.children.iter().map(|c| c.pid).chain(s.traced) {
        let _ = kill(pid, 9);
    }
    Ok(())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
