//! Integer socket options that rustix has no typed call for
//! (`SO_PEEK_OFF`, `SO_PRIORITY`, `SO_RCVLOWAT`, `SO_PASSSEC`, …): plain
//! `getsockopt`/`setsockopt` of one `int` or a byte buffer.

use std::os::fd::{AsFd, AsRawFd};

use rustix::io::Errno;

// Socket option numbers differ per architecture (ppc64's SO_RCVLOWAT is
// 16, where 18 is SO_RCVTIMEO; others use the generic 18): all come from
// linux-raw-sys, generated from each arch's uapi headers.
use linux_raw_sys::net as raw;

/// `SOL_SOCKET`.
pub const SOL_SOCKET: u32 = raw::SOL_SOCKET;
/// `SO_PEEK_OFF`: where the next `MSG_PEEK` starts (-1: peeking always
/// starts at the head of the queue).
pub const SO_PEEK_OFF: u32 = raw::SO_PEEK_OFF;
pub const SO_PRIORITY: u32 = raw::SO_PRIORITY;
pub const SO_RCVLOWAT: u32 = raw::SO_RCVLOWAT;
pub const SO_PASSSEC: u32 = raw::SO_PASSSEC;
pub const SO_DONTROUTE: u32 = raw::SO_DONTROUTE;
pub const SO_NO_CHECK: u32 = raw::SO_NO_CHECK;
/// `SO_BUF_LOCK` (5.14+): which buffer sizes were set by the user.
pub const SO_BUF_LOCK: u32 = raw::SO_BUF_LOCK;
/// `SO_GET_FILTER` (= `SO_ATTACH_FILTER`): the socket's BPF filter.
pub const SO_GET_FILTER: u32 = raw::SO_GET_FILTER;
pub const SO_BINDTODEVICE: u32 = raw::SO_BINDTODEVICE;
/// `SOL_TCP` (= `IPPROTO_TCP`) and the TCP repair options.
pub const SOL_TCP: u32 = raw::IPPROTO_TCP as u32;
pub const TCP_REPAIR: u32 = raw::TCP_REPAIR;
pub const TCP_TIMESTAMP: u32 = raw::TCP_TIMESTAMP;
pub const TCP_REPAIR_WINDOW: u32 = raw::TCP_REPAIR_WINDOW;
pub const TCP_REPAIR_QUEUE: u32 = raw::TCP_REPAIR_QUEUE;
pub const TCP_QUEUE_SEQ: u32 = raw::TCP_QUEUE_SEQ;
pub const TCP_REPAIR_OPTIONS: u32 = raw::TCP_REPAIR_OPTIONS;
pub const TCP_MAXSEG: u32 = raw::TCP_MAXSEG;
/// `SIOCINQ` and `SIOCOUTQ` of a socket are `FIONREAD` and `TIOCOUTQ`
/// (per arch: ppc64's differ).
pub const SIOCINQ: u32 = linux_raw_sys::ioctl::FIONREAD;
pub const SIOCOUTQ: u32 = linux_raw_sys::ioctl::TIOCOUTQ;

fn ret(r: isize) -> Result<isize, Errno> {
    if r < 0 {
        Err(Errno::from_raw_os_error(-r as i32))
    } else {
        Ok(r)
    }
}

/// `getsockopt(fd, level, name)` of an `int` option.
pub fn get_int(fd: impl AsFd, level: u32, name: u32) -> Result<i32, Errno> {
    let mut val: i32 = 0;
    let mut len: u32 = size_of::<i32>() as u32;
    // SAFETY: the kernel writes at most `len` (4) bytes to `val` and the
    // length back to `len`; both live on this stack frame for the call.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::GETSOCKOPT,
            fd.as_fd().as_raw_fd() as usize,
            level as usize,
            name as usize,
            &mut val as *mut i32 as usize,
            &mut len as *mut u32 as usize,
        )
    };
    ret(r)?;
    Ok(val)
}

/// `setsockopt(fd, level, name, &val, sizeof(int))`.
pub fn set_int(fd: impl AsFd, level: u32, name: u32, val: i32) -> Result<(), Errno> {
    // SAFETY: the kernel reads 4 bytes from `val`, which outlives the call.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::SETSOCKOPT,
            fd.as_fd().as_raw_fd() as usize,
            level as usize,
            name as usize,
            &val as *const i32 as usize,
            size_of::<i32>(),
        )
    };
    ret(r).map(drop)
}

/// `getsockopt(fd, level, name)` into `buf` (`None`: a NULL buffer of
/// length 0, which asks some options only for their size): the length
/// the kernel reports.
pub fn get_bytes(
    fd: impl AsFd,
    level: u32,
    name: u32,
    buf: Option<&mut [u8]>,
) -> Result<usize, Errno> {
    let (ptr, mut len) = match buf {
        Some(b) => (b.as_mut_ptr() as usize, b.len() as u32),
        None => (0, 0u32),
    };
    // SAFETY: the kernel writes at most `len` bytes to `ptr` (our buffer,
    // or nothing for NULL with length 0) and the length back to `len`.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::GETSOCKOPT,
            fd.as_fd().as_raw_fd() as usize,
            level as usize,
            name as usize,
            ptr,
            &mut len as *mut u32 as usize,
        )
    };
    ret(r)?;
    Ok(len as usize)
}

/// `setsockopt(fd, level, name, buf, len(buf))`: an option given as bytes
/// (an interface name for `SO_BINDTODEVICE`).
pub fn set_bytes(fd: impl AsFd, level: u32, name: u32, buf: &[u8]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `buf.len()` bytes from `buf`, which
    // outlives the call.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::SETSOCKOPT,
            fd.as_fd().as_raw_fd() as usize,
            level as usize,
            name as usize,
            buf.as_ptr() as usize,
            buf.len(),
        )
    };
    ret(r).map(drop)
}

/// `ioctl(fd, request, &int)` of a request that answers one `int`
/// (`SIOCINQ`, `SIOCOUTQ`, `SIOCOUTQNSD`).
pub fn ioctl_int(fd: impl AsFd, request: u32) -> Result<i32, Errno> {
    let mut val: i32 = 0;
    // SAFETY: the requests this is used for write one int to the pointer,
    // which points at `val` on this stack frame for the call.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_fd().as_raw_fd() as usize,
            request as usize,
            &mut val as *mut i32 as usize,
        )
    };
    ret(r)?;
    Ok(val)
}

/// One classic BPF instruction (`struct sock_filter`).
pub type SockFilter = linux_raw_sys::ptrace::sock_filter;
const _: () = assert!(size_of::<SockFilter>() == 8);

/// The classic BPF program attached to `fd` (`SO_GET_FILTER`), empty if
/// none.
pub fn get_filter(fd: impl AsFd) -> Result<Vec<SockFilter>, Errno> {
    let fd = fd.as_fd();
    // With a NULL buffer the kernel reports the number of instructions
    // (not bytes) in the length.
    let n = get_bytes(fd, SOL_SOCKET, SO_GET_FILTER, None)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let zero = SockFilter {
        code: 0,
        jt: 0,
        jf: 0,
        k: 0,
    };
    let mut prog = vec![zero; n];
    let mut len = n as u32;
    // SAFETY: the kernel writes at most `len` instructions (8 bytes each,
    // its unit for this option) to `prog`, which holds `n` of them.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::GETSOCKOPT,
            fd.as_raw_fd() as usize,
            SOL_SOCKET as usize,
            SO_GET_FILTER as usize,
            prog.as_mut_ptr() as usize,
            &mut len as *mut u32 as usize,
        )
    };
    ret(r)?;
    prog.truncate(len as usize);
    Ok(prog)
}

/// Attaches the classic BPF program `prog` to `fd` (`SO_ATTACH_FILTER`).
pub fn attach_filter(fd: impl AsFd, prog: &[SockFilter]) -> Result<(), Errno> {
    let len = u16::try_from(prog.len()).map_err(|_| Errno::INVAL)?;
    let fprog = linux_raw_sys::ptrace::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel reads the `sock_fprog` and the `len` instructions
    // it points at, both alive for the call.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::SETSOCKOPT,
            fd.as_fd().as_raw_fd() as usize,
            SOL_SOCKET as usize,
            raw::SO_ATTACH_FILTER as usize,
            &fprog as *const linux_raw_sys::ptrace::sock_fprog as usize,
            size_of::<linux_raw_sys::ptrace::sock_fprog>(),
        )
    };
    ret(r).map(drop)
}

/// `bind` of packet socket `fd` to interface `ifindex` (0: every one) and
/// protocol `protocol` (an `ETH_P_*` value in network order, as
/// `socket(2)` takes it; 0 keeps the socket's own).
pub fn bind_packet(fd: impl AsFd, protocol: u16, ifindex: i32) -> Result<(), Errno> {
    use linux_raw_sys::if_packet::sockaddr_ll;
    let addr = sockaddr_ll {
        sll_family: raw::AF_PACKET as u16,
        sll_protocol: protocol,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: the kernel reads `size_of::<sockaddr_ll>()` bytes of `addr`,
    // which lives on this stack frame for the call.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::BIND,
            fd.as_fd().as_raw_fd() as usize,
            &addr as *const sockaddr_ll as usize,
            size_of::<sockaddr_ll>(),
        )
    };
    ret(r).map(drop)
}

/// A `struct packet_mreq` of `PACKET_ADD_MEMBERSHIP` as bytes, with room
/// for an address longer than its 8 bytes (the kernel takes up to
/// `MAX_ADDR_LEN`, 32).
pub fn packet_mreq(ifindex: i32, kind: u16, addr: &[u8]) -> Vec<u8> {
    use linux_raw_sys::if_packet::packet_mreq;
    const _: () = assert!(std::mem::offset_of!(packet_mreq, mr_type) == 4);
    const _: () = assert!(std::mem::offset_of!(packet_mreq, mr_alen) == 6);
    const _: () = assert!(std::mem::offset_of!(packet_mreq, mr_address) == 8);
    let mut b = Vec::with_capacity(size_of::<packet_mreq>().max(8 + addr.len()));
    b.extend_from_slice(&ifindex.to_ne_bytes());
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(&(addr.len() as u16).to_ne_bytes());
    b.extend_from_slice(addr);
    b.resize(size_of::<packet_mreq>().max(b.len()), 0);
    b
}
