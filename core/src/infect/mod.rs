//! ptrace injection (the compel part): take hold of a running task, run
//! syscalls and the parasite blob inside it, and let it go exactly as it was.
//!
//! The steps, each in its own file:
//! - [`seize`]: `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, wait for the stop
//!   (delivering signals that come first), save registers, FP state and the
//!   signal mask ([`Seized`]).
//! - [`syscall`]: inject one syscall through a `syscall; int3` stub swapped
//!   into the first executable mapping ([`Seized::remote_syscall`]).
//! - [`area`]: the exchange area, a memfd mapped in the task and in us
//!   ([`SharedArea`]).
//! - [`parasite`]: the parasite blob relocated into that area (code
//!   read+execute, data and stack read+write in the task) and called like a
//!   function that returns to a trap ([`Parasite`]).
//! - [`cure`]: put everything back and detach ([`Seized::release`]).
//!
//! The rule everything here follows: whatever fails, the task is left as it
//! was. Each step undoes its own changes before returning an error, and the
//! handles ([`Seized`], [`Parasite`]) undo theirs when dropped, so early
//! returns with `?` are safe.

pub mod area;
pub mod cure;
pub mod daemon;
mod daemon_stop;
pub mod error;
pub mod parasite;
pub mod seize;
pub mod syscall;
pub mod task_info;
pub mod threads;

pub use area::SharedArea;
pub use daemon::Daemon;
pub use error::InfectError;
pub use parasite::Parasite;
pub use seize::{ExtRegs, SeizeOpts, Seized, TaskState};
pub use threads::{SeizedThread, seize_process, seize_process_with};

use linux_raw_sys::general as sig;

const SIGTRAP: i32 = sig::SIGTRAP as i32;

/// Signals whose default action is a group stop.
fn is_stop_signal(s: i32) -> bool {
    [sig::SIGSTOP, sig::SIGTSTP, sig::SIGTTIN, sig::SIGTTOU]
        .iter()
        .any(|&x| x as i32 == s)
}

/// Synchronous fault signals: raised by the injected code itself.
fn is_fault_signal(s: i32) -> bool {
    [
        sig::SIGSEGV,
        sig::SIGBUS,
        sig::SIGILL,
        sig::SIGFPE,
        sig::SIGSYS,
    ]
    .iter()
    .any(|&x| x as i32 == s)
}

/// Seize task `pid`, run parasite command `cmd` once with `args` as its
/// argument block, cure and release the task. Returns the command's return
/// value and the argument block as the parasite left it (its results).
pub fn run_parasite_once(
    pid: i32,
    blob: &crate::blob::Blob,
    cmd: usize,
    args: &[u8],
) -> Result<(i64, Vec<u8>), InfectError> {
    let mut task = Seized::seize(pid)?;
    let mut parasite = Parasite::infect(&mut task, blob, args.len())?;
    parasite.args_mut()[..args.len()].copy_from_slice(args);
    let ret = parasite.call(cmd)?;
    let out = parasite.args()[..args.len()].to_vec();
    parasite.cure()?;
    task.release()?;
    Ok((ret, out))
}
