//! File locks held by a task (`--file-locks`): flock, POSIX (`F_SETLK`
//! ranges) and OFD locks, from the `lock:` lines of fdinfo, written to
//! `filelocks.img` as CRIU's `file_lock_entry` (flag `FL_POSIX` 1,
//! `FL_FLOCK` 2, `FL_OFD` 4; type `F_RDLCK` 0 / `F_WRLCK` 1; `len` 0 for
//! "to end of file"). The restored task takes them again itself: POSIX
//! locks belong to the process, and any close of the file by it drops
//! them, so the restorer does it after it closed the tool's descriptors
//! (see [`LockCall`]).

use crate::images::pb;
use crate::proc::flock::{FileLock, LockKind, LockType};

pub const FL_POSIX: u32 = 1;
pub const FL_FLOCK: u32 = 2;
pub const FL_OFD: u32 = 4;
const F_RDLCK: u32 = linux_raw_sys::general::F_RDLCK;
const F_WRLCK: u32 = linux_raw_sys::general::F_WRLCK;
const F_SETLK: u64 = linux_raw_sys::general::F_SETLK as u64;
const F_OFD_SETLK: u64 = linux_raw_sys::general::F_OFD_SETLK as u64;
const LOCK_SH: u64 = linux_raw_sys::general::LOCK_SH as u64;
const LOCK_EX: u64 = linux_raw_sys::general::LOCK_EX as u64;
const SEEK_SET: i16 = linux_raw_sys::general::SEEK_SET as i16;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// CRIU's wording, for a task holding a lock without `--file-locks`
    /// (then which fd holds what).
    #[error(
        "Some file locks are hold by dumping tasks! You can try --file-locks to dump them. \
         (fd {fd} of task {pid} holds a {kind} lock)"
    )]
    NotEnabled {
        pid: i32,
        fd: i32,
        kind: &'static str,
    },
    #[error("fd {fd} of task {pid} holds a {what}, which cannot be dumped yet")]
    Unsupported { pid: i32, fd: i32, what: String },
    /// Restore: a lock of a type (`F_RDLCK`, `F_WRLCK`) the images should
    /// not hold.
    #[error("lock type {ty} on fd {fd}")]
    BadType { ty: u32, fd: i32 },
    /// Restore: a lock of a kind (`FL_FLOCK`, `FL_POSIX`, `FL_OFD`) the
    /// images should not hold.
    #[error("lock flag {flag} on fd {fd}")]
    BadFlag { flag: u32, fd: i32 },
}

/// The locks of one dump.
#[derive(Debug, Default)]
pub struct LockTable {
    pub entries: Vec<pb::FileLockEntry>,
    /// What identifies a lock already recorded: POSIX locks by their
    /// inode (each fd of the file shows them), others by file id.
    seen: Vec<(u32, u64, u64, pb::FileLockEntry)>,
}

impl LockTable {
    /// Notes the locks fdinfo shows for fd `fd` (file id `file_id`, inode
    /// `ino`) of task `pid`. Without `enabled` (`--file-locks`) any lock
    /// held is refused as CRIU refuses it; leases are refused always.
    pub fn note(
        &mut self,
        pid: i32,
        fd: i32,
        file_id: u32,
        ino: u64,
        locks: &[FileLock],
        enabled: bool,
    ) -> Result<(), LockError> {
        // A lock being waited for is not held (the task sleeps in the
        // call, which is restarted).
        for l in locks.iter().filter(|l| !l.blocked) {
            if !enabled {
                let kind = match l.kind {
                    LockKind::Posix => "POSIX",
                    LockKind::Flock => "flock",
                    LockKind::Ofd => "OFD",
                    LockKind::Lease => "lease",
                    LockKind::Other(_) => "file",
                };
                return Err(LockError::NotEnabled { pid, fd, kind });
            }
            let unsupported = |what: &str| LockError::Unsupported {
                pid,
                fd,
                what: what.to_string(),
            };
            let flag = match &l.kind {
                LockKind::Posix => {
                    // fdinfo shows POSIX locks of other processes too.
                    if l.pid != pid {
                        continue;
                    }
                    FL_POSIX
                }
                LockKind::Flock => FL_FLOCK,
                LockKind::Ofd => FL_OFD,
                LockKind::Lease => return Err(unsupported("lease")),
                LockKind::Other(k) => return Err(unsupported(&format!("{k} lock"))),
            };
            let r#type = match &l.lock_type {
                LockType::Read => F_RDLCK,
                LockType::Write => F_WRLCK,
                LockType::Unlock => continue,
                LockType::Other(t) => return Err(unsupported(&format!("{t} lock"))),
            };
            let e = pb::FileLockEntry {
                flag,
                r#type,
                pid,
                fd,
                start: l.start,
                len: l.end.map_or(0, |end| end + 1 - l.start),
            };
            let key = if flag == FL_POSIX {
                (flag, ino, 0)
            } else {
                (flag, 0, u64::from(file_id))
            };
            let same = |(f, i, id, o): &(u32, u64, u64, pb::FileLockEntry)| {
                (*f, *i, *id) == key && o.start == e.start && o.len == e.len && o.r#type == e.r#type
            };
            if self.seen.iter().any(same) {
                continue;
            }
            self.seen.push((key.0, key.1, key.2, e));
            self.entries.push(e);
        }
        Ok(())
    }
}

/// `struct flock` (64-bit `off_t` on every arch we build for).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelFlock {
    pub l_type: i16,
    pub l_whence: i16,
    /// The padding the C layout has before `l_start`, named so that every
    /// byte of the struct is initialised (it is copied into the restorer's
    /// arguments as bytes).
    pub _pad0: i32,
    pub l_start: i64,
    pub l_len: i64,
    pub l_pid: i32,
    /// The C layout's tail padding, likewise.
    pub _pad1: i32,
}

const _: () = assert!(size_of::<KernelFlock>() == 32);
const _: () = assert!(std::mem::offset_of!(KernelFlock, l_start) == 8);
const _: () = assert!(std::mem::offset_of!(KernelFlock, l_pid) == 24);
const _: () = assert!(core::mem::offset_of!(KernelFlock, l_start) == 8);
const _: () = assert!(core::mem::offset_of!(KernelFlock, l_pid) == 24);

/// How the task takes one lock again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockCall {
    /// `flock(fd, op)`.
    Flock { fd: u64, op: u64 },
    /// `fcntl(fd, cmd, &flock)` (`F_SETLK` or `F_OFD_SETLK`).
    Fcntl {
        fd: u64,
        cmd: u64,
        flock: KernelFlock,
    },
}

/// The call that takes lock `e` again, or why it cannot.
pub fn restore_call(e: &pb::FileLockEntry) -> Result<LockCall, LockError> {
    let kind = match e.r#type {
        F_RDLCK => 0,
        F_WRLCK => 1,
        ty => return Err(LockError::BadType { ty, fd: e.fd }),
    };
    let fd = u64::from(e.fd as u32);
    let flock = KernelFlock {
        l_type: kind as i16,
        l_whence: SEEK_SET,
        l_start: e.start,
        l_len: e.len,
        l_pid: 0,
        _pad0: 0,
        _pad1: 0,
    };
    Ok(match e.flag {
        FL_FLOCK => LockCall::Flock {
            fd,
            op: if kind == 0 { LOCK_SH } else { LOCK_EX },
        },
        FL_POSIX => LockCall::Fcntl {
            fd,
            cmd: F_SETLK,
            flock,
        },
        FL_OFD => LockCall::Fcntl {
            fd,
            cmd: F_OFD_SETLK,
            flock,
        },
        flag => return Err(LockError::BadFlag { flag, fd: e.fd }),
    })
}

impl LockCall {
    /// The `flock` struct the call points to, if it takes one.
    pub fn flock(&self) -> Option<KernelFlock> {
        match *self {
            LockCall::Fcntl { flock, .. } => Some(flock),
            LockCall::Flock { .. } => None,
        }
    }
}

/// The restorer's calls taking `calls` again, the `flock` structs of
/// those that take one laid out one after the other from `flocks` (an
/// address in the task).
pub fn syscalls(calls: &[LockCall], flocks: u64) -> Vec<crate::blob::restorer_abi::RawSyscall> {
    use crate::blob::restorer_abi::RawSyscall;
    let mut k = 0;
    calls
        .iter()
        .map(|call| match *call {
            LockCall::Flock { fd, op } => RawSyscall {
                nr: criu_arch::nr::FLOCK as u64,
                args: [fd, op, 0, 0, 0, 0],
            },
            LockCall::Fcntl { fd, cmd, .. } => {
                let at = flocks + (k * size_of::<KernelFlock>()) as u64;
                k += 1;
                RawSyscall {
                    nr: criu_arch::nr::FCNTL as u64,
                    args: [fd, cmd, at, 0, 0, 0],
                }
            }
        })
        .collect()
}
