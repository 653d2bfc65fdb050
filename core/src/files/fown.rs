//! A file's owner for SIGIO/SIGURG (`fown_entry` of every kind of file:
//! `F_SETOWN_EX` target, `F_SETSIG` signal, the uids recorded with them),
//! and `O_ASYNC`, which only `F_SETFL` turns on (`open` ignores it).
//!
//! Dump reads them from a `pidfd_getfd` copy (the owner belongs to the
//! open file description). Restore sets them from inside the task at
//! `STAGE_FD_STATE`, once every task of the tree exists (`F_SETOWN_EX`
//! refuses a PID that does not), as the tool's uid: the recorded uids
//! are not restored.

use crate::images::pb;

use super::{FdCtx, FileError};

/// `O_ASYNC`.
pub const O_ASYNC: u32 = linux_raw_sys::general::FASYNC;

/// The owner of `ctx`'s file, if it has one or a signal set.
pub fn dump(ctx: &FdCtx) -> Result<Option<pb::FownEntry>, FileError> {
    dump_from(ctx, &ctx.steal("file")?)
}

/// [`dump`] from `fd`, a copy of `ctx`'s file the caller stole already.
pub fn dump_from(
    ctx: &FdCtx,
    fd: &std::os::fd::OwnedFd,
) -> Result<Option<pb::FownEntry>, FileError> {
    let o = crate::sys::fown::owner(fd).map_err(|e| ctx.err("file", format!("fcntl: {e}")))?;
    if o.owner.pid == 0 && o.signum == 0 {
        return Ok(None);
    }
    Ok(Some(pb::FownEntry {
        uid: o.uids[0],
        euid: o.uids[1],
        signum: o.signum,
        pid_type: o.owner.kind as u32,
        pid: o.owner.pid as u32,
    }))
}

/// The `fown` of file object `e` (a FIFO's is its `regf` entry's).
pub fn of_mut(e: &mut pb::FileEntry) -> Option<&mut pb::FownEntry> {
    if let Some(x) = &mut e.reg {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.pipe {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.usk {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.isk {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.nlsk {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.psk {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.tty {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.memfd {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.efd {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.epfd {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.sgfd {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.tfd {
        return Some(&mut x.fown);
    }
    if let Some(x) = &mut e.ify {
        return Some(&mut x.fown);
    }
    None
}

/// Puts the owners found (file id, owner) into the file objects.
pub fn apply(entries: &mut [pb::FileEntry], owners: &[(u32, pb::FownEntry)]) {
    if owners.is_empty() {
        return;
    }
    let at: std::collections::HashMap<u32, usize> =
        entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    for &(id, fown) in owners {
        // A FIFO's owner goes to its REG entry.
        let id = at
            .get(&id)
            .and_then(|&i| entries[i].fifo.as_ref())
            .and_then(|f| f.regf_id)
            .unwrap_or(id);
        if let Some(slot) = at.get(&id).and_then(|&i| of_mut(&mut entries[i])) {
            *slot = fown;
        }
    }
}

/// The restorer's calls giving fd `fd` its owner back: the signal, the
/// owner (its `f_owner_ex` at `owner_ex`, an address in the task;
/// `F_SETOWN_EX` checks that the PID exists: every task of the tree does
/// by then), and `O_ASYNC`, which `F_SETFL` only turns on when it was off.
pub fn restore_calls(
    fd: u32,
    fown: &pb::FownEntry,
    flags: u32,
    owner_ex: u64,
) -> Vec<crate::blob::restorer_abi::RawSyscall> {
    use crate::blob::restorer_abi::RawSyscall;
    use linux_raw_sys::general::{F_SETFL, F_SETOWN_EX, F_SETSIG};
    let fcntl = criu_arch::nr::FCNTL as u64;
    let fd = u64::from(fd);
    let mut out = Vec::new();
    if fown.signum != 0 {
        out.push(RawSyscall {
            nr: fcntl,
            args: [fd, u64::from(F_SETSIG), u64::from(fown.signum), 0, 0, 0],
        });
    }
    if fown.pid != 0 {
        out.push(RawSyscall {
            nr: fcntl,
            args: [fd, u64::from(F_SETOWN_EX), owner_ex, 0, 0, 0],
        });
    }
    if flags & O_ASYNC != 0 {
        for f in [flags & !O_ASYNC, flags] {
            out.push(RawSyscall {
                nr: fcntl,
                args: [fd, u64::from(F_SETFL), u64::from(f), 0, 0, 0],
            });
        }
    }
    out
}
