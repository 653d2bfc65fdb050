//! SysV IPC system calls (rustix has none): shared memory segments,
//! semaphore sets and message queues, as the IPC namespace of the calling
//! thread holds them.
//!
//! The `*_STAT`/`IPC_SET` structures are handled as raw bytes: only the
//! leading `ipc64_perm` (the same 48 bytes on every 64-bit architecture)
//! and `msg_qbytes` are read or patched ([`PERM_UID`], [`MSG_QBYTES`]).
//! The split system calls of x86_64, aarch64, ppc64 and s390x always use
//! those 64-bit layouts (only the old multiplexed ones want `IPC_64`).

use rustix::io::Errno;

use super::ret;

use super::kconst::{GETALL, IPC_NOWAIT, IPC_SET, IPC_STAT, MSG_COPY, SETALL, SHM_RDONLY};

/// Byte offsets in `struct ipc64_perm` (linux/ipcbuf.h, 64-bit).
pub const PERM_UID: usize = 4;
pub const PERM_GID: usize = 8;
/// Byte offset of `msg_qbytes` in a 64-bit `struct msqid64_ds`: after
/// the 48-byte `ipc64_perm`, three times and `msg_cbytes`, `msg_qnum`.
pub const MSG_QBYTES: usize = 88;
/// Room for any `*id64_ds` (the largest, `shmid64_ds`, is 112 bytes).
pub const DS_LEN: usize = 256;

/// `shmget(key, size, flags)`: the segment's id.
pub fn shmget(key: u32, size: u64, flags: u32) -> Result<i32, Errno> {
    // SAFETY: integer arguments only.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::SHMGET,
            key as i32 as isize as usize,
            size as usize,
            flags as usize,
        )
    };
    ret(r).map(|id| id as i32)
}

/// A segment attached to the calling process, detached on drop.
pub struct ShmAttach {
    addr: usize,
    len: usize,
}

impl ShmAttach {
    /// Attach segment `id` of `len` bytes (its size), read-only or not,
    /// where the kernel chooses.
    pub fn new(id: i32, len: u64, read_only: bool) -> Result<ShmAttach, Errno> {
        let flags = if read_only { SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel pick a free place; no
        // memory of ours is touched.
        let r =
            unsafe { criu_arch::syscall3(criu_arch::nr::SHMAT, id as usize, 0, flags as usize) };
        let addr = ret(r)?;
        Ok(ShmAttach {
            addr,
            len: len as usize,
        })
    }

    /// The segment's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the segment is mapped at `addr` for at least `len`
        // bytes (its size) until `self` is dropped.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }

    /// The segment's bytes, writable (attached with `read_only` false).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and this attachment is writable and
        // borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) }
    }
}

impl Drop for ShmAttach {
    fn drop(&mut self) {
        // SAFETY: `addr` is this attachment's, detached once here.
        unsafe { criu_arch::syscall1(criu_arch::nr::SHMDT, self.addr) };
    }
}

/// `shmctl`, `semctl` or `msgctl` `IPC_STAT` into raw bytes.
fn stat_raw(nr: usize, id: i32, sem: bool) -> Result<[u8; DS_LEN], Errno> {
    let mut ds = [0u8; DS_LEN];
    let cmd = IPC_STAT as usize;
    let p = ds.as_mut_ptr() as usize;
    // SAFETY: the kernel writes one `*id64_ds` (at most 112 bytes) into
    // `ds`, which has `DS_LEN` bytes.
    let r = unsafe {
        if sem {
            criu_arch::syscall4(nr, id as usize, 0, cmd, p)
        } else {
            criu_arch::syscall3(nr, id as usize, cmd, p)
        }
    };
    ret(r).map(|_| ds)
}

/// `IPC_SET` from raw bytes (as [`stat_raw`] read them, patched).
fn set_raw(nr: usize, id: i32, sem: bool, ds: &[u8; DS_LEN]) -> Result<(), Errno> {
    let cmd = IPC_SET as usize;
    let p = ds.as_ptr() as usize;
    // SAFETY: the kernel reads one `*id64_ds` from `ds`.
    let r = unsafe {
        if sem {
            criu_arch::syscall4(nr, id as usize, 0, cmd, p)
        } else {
            criu_arch::syscall3(nr, id as usize, cmd, p)
        }
    };
    ret(r).map(|_| ())
}

/// Which kind of object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcKind {
    Shm,
    Sem,
    Msg,
}

impl IpcKind {
    fn ctl(self) -> usize {
        match self {
            IpcKind::Shm => criu_arch::nr::SHMCTL,
            IpcKind::Sem => criu_arch::nr::SEMCTL,
            IpcKind::Msg => criu_arch::nr::MSGCTL,
        }
    }
}

/// `IPC_STAT` of object `id` as raw bytes.
pub fn stat(kind: IpcKind, id: i32) -> Result<[u8; DS_LEN], Errno> {
    stat_raw(kind.ctl(), id, kind == IpcKind::Sem)
}

/// `IPC_SET` of object `id` from raw bytes.
pub fn set(kind: IpcKind, id: i32, ds: &[u8; DS_LEN]) -> Result<(), Errno> {
    set_raw(kind.ctl(), id, kind == IpcKind::Sem, ds)
}

/// `IPC_RMID` of object `id`.
pub fn remove(kind: IpcKind, id: i32) -> Result<(), Errno> {
    let rmid = super::kconst::IPC_RMID as usize;
    // SAFETY: integer arguments only (the buffer argument is null).
    let r = unsafe {
        match kind {
            IpcKind::Sem => criu_arch::syscall4(kind.ctl(), id as usize, 0, rmid, 0),
            _ => criu_arch::syscall3(kind.ctl(), id as usize, rmid, 0),
        }
    };
    ret(r).map(|_| ())
}

/// `semget(key, nsems, flags)`.
pub fn semget(key: u32, nsems: u32, flags: u32) -> Result<i32, Errno> {
    // SAFETY: integer arguments only.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::SEMGET,
            key as i32 as isize as usize,
            nsems as usize,
            flags as usize,
        )
    };
    ret(r).map(|id| id as i32)
}

/// The values of semaphore set `id` (`GETALL`); `values` has its
/// `nsems` slots.
pub fn sem_getall(id: i32, values: &mut [u16]) -> Result<(), Errno> {
    // SAFETY: the kernel writes `nsems` u16 values, the length of
    // `values` (the caller sized it from the set's stat).
    let r = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::SEMCTL,
            id as usize,
            0,
            GETALL as usize,
            values.as_mut_ptr() as usize,
        )
    };
    ret(r).map(|_| ())
}

/// Set every value of semaphore set `id` (`SETALL`).
pub fn sem_setall(id: i32, values: &[u16]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `nsems` u16 values from `values`, which
    // has that many.
    let r = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::SEMCTL,
            id as usize,
            0,
            SETALL as usize,
            values.as_ptr() as usize,
        )
    };
    ret(r).map(|_| ())
}

/// `msgget(key, flags)`.
pub fn msgget(key: u32, flags: u32) -> Result<i32, Errno> {
    // SAFETY: integer arguments only.
    let r = unsafe {
        criu_arch::syscall2(
            criu_arch::nr::MSGGET,
            key as i32 as isize as usize,
            flags as usize,
        )
    };
    ret(r).map(|id| id as i32)
}

/// Message number `n` (from 0) of queue `id`, copied, not taken off
/// (`MSG_COPY`): its type and text. `max` bounds the text (`msgmax`).
pub fn msg_copy(id: i32, n: u32, max: usize) -> Result<(i64, Vec<u8>), Errno> {
    let mut buf = vec![0u8; 8 + max];
    // SAFETY: the kernel writes a `long` type and at most `max` bytes of
    // text into `buf`, which has 8 + `max` bytes.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::MSGRCV,
            id as usize,
            buf.as_mut_ptr() as usize,
            max,
            n as usize,
            (IPC_NOWAIT | MSG_COPY) as usize,
        )
    };
    let len = ret(r)?;
    let mtype = i64::from_ne_bytes(buf[..8].try_into().unwrap_or_default());
    buf.drain(..8);
    buf.truncate(len);
    Ok((mtype, buf))
}

/// Send a message of type `mtype` to queue `id` without blocking.
pub fn msgsnd(id: i32, mtype: i64, text: &[u8]) -> Result<(), Errno> {
    let mut buf = Vec::with_capacity(8 + text.len());
    buf.extend_from_slice(&mtype.to_ne_bytes());
    buf.extend_from_slice(text);
    // SAFETY: the kernel reads a `long` and `text.len()` bytes from `buf`.
    let r = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::MSGSND,
            id as usize,
            buf.as_ptr() as usize,
            text.len(),
            IPC_NOWAIT as usize,
        )
    };
    ret(r).map(|_| ())
}
