//! The parasite's side of the unix socket: connect, send/receive the 12-byte
//! control messages, and pass fds with `SCM_RIGHTS`. Plain `#[repr(C)]`
//! copies of the kernel structs (the same on every 64-bit arch we build for).

use criu_blob_rt::sys;

use crate::abi::{CtlMsg, SCM_MAX_FD, SUN_PATH_MAX};

const AF_UNIX: usize = criu_arch::kernel::net::AF_UNIX as usize;
const SOCK_SEQPACKET: usize = criu_arch::kernel::net::SOCK_SEQPACKET as usize;
// `SOCK_CLOEXEC` is defined as `O_CLOEXEC` (linux/net.h).
const SOCK_CLOEXEC: usize = criu_arch::kernel::general::O_CLOEXEC as usize;
const SOL_SOCKET: i32 = criu_arch::kernel::net::SOL_SOCKET as i32;
const SCM_RIGHTS: i32 = criu_arch::kernel::net::SCM_RIGHTS as i32;
/// `sizeof(struct cmsghdr)` on 64-bit.
const CMSG_HDR: usize = 16;
/// Control buffer words: header + the most fds, rounded up.
const CMSG_WORDS: usize = (CMSG_HDR + SCM_MAX_FD * 4).div_ceil(8);

#[repr(C)]
struct SockaddrUn {
    family: u16,
    path: [u8; SUN_PATH_MAX],
}

#[repr(C)]
struct IoVec {
    base: usize,
    len: usize,
}

#[repr(C)]
struct MsgHdr {
    name: usize,
    namelen: u32,
    _pad: u32,
    iov: usize,
    iovlen: usize,
    control: usize,
    controllen: usize,
    flags: i32,
    _pad2: u32,
}

/// A connected socket.
pub struct Sock(pub i32);

impl Sock {
    /// `socket` + `connect` to `path[..len]`. Returns `-errno` on failure.
    pub fn connect(path: &[u8; SUN_PATH_MAX], len: usize) -> Result<Sock, isize> {
        // SAFETY: socket(2) takes no pointers.
        let fd = unsafe { sys::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(fd);
        }
        let addr = SockaddrUn {
            family: AF_UNIX as u16,
            path: *path,
        };
        let len = if len > SUN_PATH_MAX {
            SUN_PATH_MAX
        } else {
            len
        };
        // SAFETY: `addr` is a live sockaddr_un and the length covers at most it.
        let ret =
            unsafe { sys::connect(fd as usize, &addr as *const SockaddrUn as usize, 2 + len) };
        if ret < 0 {
            close(fd as i32);
            return Err(ret);
        }
        Ok(Sock(fd as i32))
    }

    /// Send one control message.
    pub fn send_ctl(&self, msg: &CtlMsg) -> isize {
        let mut iov = IoVec {
            base: msg as *const CtlMsg as usize,
            len: core::mem::size_of::<CtlMsg>(),
        };
        let hdr = msghdr(&mut iov, 0, 0);
        self.sendmsg(&hdr)
    }

    /// Receive one control message; returns the bytes received (0 when the
    /// tool closed its end) or `-errno`.
    pub fn recv_ctl(&self, msg: &mut CtlMsg) -> isize {
        let mut iov = IoVec {
            base: msg as *mut CtlMsg as usize,
            len: core::mem::size_of::<CtlMsg>(),
        };
        let mut hdr = msghdr(&mut iov, 0, 0);
        self.recvmsg(&mut hdr)
    }

    /// Receive one fd sent with `SCM_RIGHTS`.
    pub fn recv_fd(&self) -> Result<i32, isize> {
        let mut byte = 0u8;
        let mut iov = IoVec {
            base: &mut byte as *mut u8 as usize,
            len: 1,
        };
        let mut control = [0u64; 4];
        let mut hdr = msghdr(&mut iov, control.as_mut_ptr() as usize, 32);
        let ret = self.recvmsg(&mut hdr);
        if ret < 0 {
            return Err(ret);
        }
        let [len, kinds, fd_word, _] = control;
        let level = kinds as u32 as i32;
        let kind = (kinds >> 32) as u32 as i32;
        // The second word holds cmsg_level then cmsg_type in memory order.
        let (level, kind) = if cfg!(target_endian = "big") {
            (kind, level)
        } else {
            (level, kind)
        };
        if hdr.controllen < CMSG_HDR + 4 || len < (CMSG_HDR + 4) as u64 {
            return Err(-22);
        }
        if level != SOL_SOCKET || kind != SCM_RIGHTS {
            return Err(-22);
        }
        let fd = if cfg!(target_endian = "big") {
            (fd_word >> 32) as u32 as i32
        } else {
            fd_word as u32 as i32
        };
        Ok(fd)
    }

    /// Send `fds` (at most [`SCM_MAX_FD`]) with a one-byte payload.
    pub fn send_fds(&self, fds: &[i32]) -> isize {
        if fds.is_empty() || fds.len() > SCM_MAX_FD {
            return -22;
        }
        let mut control = [0u64; CMSG_WORDS];
        let data_len = CMSG_HDR + fds.len() * 4;
        {
            let bytes = as_bytes_mut(&mut control);
            put(bytes, 0, &(data_len as u64).to_ne_bytes());
            put(bytes, 8, &SOL_SOCKET.to_ne_bytes());
            put(bytes, 12, &SCM_RIGHTS.to_ne_bytes());
            let mut off = CMSG_HDR;
            for fd in fds {
                put(bytes, off, &fd.to_ne_bytes());
                off += 4;
            }
        }
        let byte = 0u8;
        let mut iov = IoVec {
            base: &byte as *const u8 as usize,
            len: 1,
        };
        let hdr = msghdr(
            &mut iov,
            control.as_mut_ptr() as usize,
            data_len.next_multiple_of(8),
        );
        self.sendmsg(&hdr)
    }

    fn sendmsg(&self, hdr: &MsgHdr) -> isize {
        // SAFETY: `hdr` and what it points to are live for the call.
        unsafe { sys::sendmsg(self.0 as usize, hdr as *const MsgHdr as usize, 0) }
    }

    fn recvmsg(&self, hdr: &mut MsgHdr) -> isize {
        // SAFETY: `hdr`, its iovec and control buffer are live and writable.
        unsafe { sys::recvmsg(self.0 as usize, hdr as *mut MsgHdr as usize, 0) }
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        close(self.0);
    }
}

fn msghdr(iov: &mut IoVec, control: usize, controllen: usize) -> MsgHdr {
    MsgHdr {
        name: 0,
        namelen: 0,
        _pad: 0,
        iov: iov as *mut IoVec as usize,
        iovlen: 1,
        control,
        controllen,
        flags: 0,
        _pad2: 0,
    }
}

/// `close(fd)`, ignoring errors (nothing to do about them in here).
pub fn close(fd: i32) {
    // SAFETY: close(2) takes no pointers.
    unsafe { sys::close(fd as usize) };
}

fn as_bytes_mut(words: &mut [u64; CMSG_WORDS]) -> &mut [u8] {
    // SAFETY: a u64 array is valid as bytes of 8x its length, same lifetime.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), CMSG_WORDS * 8) }
}

fn put(dst: &mut [u8], off: usize, src: &[u8]) {
    for (i, b) in src.iter().enumerate() {
        if let Some(d) = dst.get_mut(off + i) {
            *d = *b;
        }
    }
}
