//! Typed calls of the parasite's dump commands over a running [`Daemon`].

use std::os::fd::OwnedFd;

use crate::blob::parasite_abi::{
    self as abi, ItimersArgs, MiscArgs, PosixTimer, SigactsArgs, ThreadArgs,
};
use crate::infect::{Daemon, InfectError};
use crate::sys::plain::{Plain, read_plain};

fn result<T: Plain>(d: &Daemon<'_, '_>, at: usize, what: &str) -> Result<T, InfectError> {
    d.args()
        .get(at..)
        .and_then(read_plain::<T>)
        .ok_or_else(|| InfectError::Layout(format!("{what} does not fit the argument area")))
}

/// `DUMP_MISC`: brk, ids, umask, dumpable, THP, subreaper.
pub fn misc(d: &mut Daemon<'_, '_>) -> Result<MiscArgs, InfectError> {
    d.call(abi::CMD_DUMP_MISC)?;
    result(d, 0, "DUMP_MISC results")
}

/// `DUMP_THREAD`: tid address, altstack, pdeath signal, comm, creds.
pub fn thread(d: &mut Daemon<'_, '_>) -> Result<ThreadArgs, InfectError> {
    d.call(abi::CMD_DUMP_THREAD)?;
    result(d, 0, "DUMP_THREAD results")
}

/// `DUMP_THREAD` in another thread of the process (trap mode).
pub fn thread_in(
    d: &mut Daemon<'_, '_>,
    th: &mut crate::infect::SeizedThread,
) -> Result<ThreadArgs, InfectError> {
    let n = size_of::<ThreadArgs>();
    d.args_mut()[..n].fill(0);
    let ret = d.call_in_thread(th, abi::CMD_TRAP_DUMP_THREAD)?;
    if ret < 0 {
        return Err(InfectError::Command {
            pid: th.tid(),
            cmd: abi::CMD_TRAP_DUMP_THREAD as u32,
            errno: rustix::io::Errno::from_raw_os_error(-ret as i32),
        });
    }
    result(d, 0, "DUMP_THREAD results")
}

/// `DUMP_SIGACTS`: every signal's action.
pub fn sigacts(d: &mut Daemon<'_, '_>) -> Result<SigactsArgs, InfectError> {
    d.call(abi::CMD_DUMP_SIGACTS)?;
    result(d, 0, "DUMP_SIGACTS results")
}

/// `DUMP_ITIMERS`: REAL, VIRTUAL, PROF.
pub fn itimers(d: &mut Daemon<'_, '_>) -> Result<ItimersArgs, InfectError> {
    d.call(abi::CMD_DUMP_ITIMERS)?;
    result(d, 0, "DUMP_ITIMERS results")
}

/// `DUMP_POSIX_TIMERS` for the timer ids in `ids`.
pub fn posix_timers(d: &mut Daemon<'_, '_>, ids: &[i32]) -> Result<Vec<PosixTimer>, InfectError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let hdr = size_of::<abi::PosixTimersArgs>();
    let each = size_of::<PosixTimer>();
    let args = d.args_mut();
    if hdr + ids.len() * each > args.len() {
        return Err(InfectError::Layout(format!(
            "{} POSIX timers do not fit the argument area",
            ids.len()
        )));
    }
    args[..8].copy_from_slice(&(ids.len() as u64).to_ne_bytes());
    for (i, id) in ids.iter().enumerate() {
        let at = hdr + i * each;
        args[at..at + each].fill(0);
        args[at..at + 4].copy_from_slice(&id.to_ne_bytes());
    }
    d.call(abi::CMD_DUMP_POSIX_TIMERS)?;
    (0..ids.len())
        .map(|i| result(d, hdr + i * each, "DUMP_POSIX_TIMERS results"))
        .collect()
}

/// One temporary protection change: `[start, start + len)` gets `prot`,
/// and `orig` back when undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtChange {
    pub start: u64,
    pub len: u64,
    pub prot: u64,
    pub orig: u64,
}

/// `MPROTECT_VMAS`: apply `changes` (the parasite remembers them and undoes
/// them at FINI at the latest).
pub fn mprotect(d: &mut Daemon<'_, '_>, changes: &[ProtChange]) -> Result<(), InfectError> {
    if changes.is_empty() {
        return Ok(());
    }
    if changes.len() > abi::MPROTECT_MAX {
        return Err(InfectError::Layout(format!(
            "{} non-readable VMAs, at most {} supported",
            changes.len(),
            abi::MPROTECT_MAX
        )));
    }
    let args = d.args_mut();
    let need = 8 + changes.len() * 32;
    if need > args.len() {
        return Err(InfectError::Layout("mprotect list too long".into()));
    }
    args[..4].copy_from_slice(&(changes.len() as u32).to_ne_bytes());
    args[4..8].copy_from_slice(&0u32.to_ne_bytes());
    for (i, c) in changes.iter().enumerate() {
        let at = 8 + i * 32;
        for (k, v) in [c.start, c.len, c.prot, c.orig].into_iter().enumerate() {
            args[at + 8 * k..at + 8 * k + 8].copy_from_slice(&v.to_ne_bytes());
        }
    }
    d.call(abi::CMD_MPROTECT_VMAS)
}

/// `MPROTECT_VMAS` with undo: put every changed protection back.
pub fn mprotect_undo(d: &mut Daemon<'_, '_>) -> Result<(), InfectError> {
    let args = d.args_mut();
    args[..4].copy_from_slice(&0u32.to_ne_bytes());
    args[4..8].copy_from_slice(&1u32.to_ne_bytes());
    d.call(abi::CMD_MPROTECT_VMAS)
}

/// `DRAIN_FDS`: the task's `fds`, as our own descriptors, with their
/// `F_GETFD` flags.
pub fn drain_fds(d: &mut Daemon<'_, '_>, fds: &[i32]) -> Result<Vec<(OwnedFd, i32)>, InfectError> {
    if fds.is_empty() {
        return Ok(Vec::new());
    }
    let hdr = size_of::<abi::DrainFdsArgs>();
    let args = d.args_mut();
    if hdr + fds.len() * 4 > args.len() {
        return Err(InfectError::Layout(
            "fd list does not fit the argument area".into(),
        ));
    }
    args[..8].copy_from_slice(&(fds.len() as u64).to_ne_bytes());
    for (i, fd) in fds.iter().enumerate() {
        args[hdr + 4 * i..hdr + 4 * i + 4].copy_from_slice(&fd.to_ne_bytes());
    }
    let got = d.call_recv_fds(abi::CMD_DRAIN_FDS, fds.len())?;
    let args = d.args();
    Ok(got
        .into_iter()
        .enumerate()
        .map(|(i, fd)| {
            let at = hdr + 4 * i;
            let flags = i32::from_ne_bytes(args[at..at + 4].try_into().unwrap_or([0; 4]));
            (fd, flags)
        })
        .collect())
}
