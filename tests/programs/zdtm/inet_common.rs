//! Helpers of the inet socket programs (`sockets_inet.rs`,
//! `sockets_inet_refused.rs`): sockets, addresses, raw socket options and
//! bounded waits. Included by each with `#[path = "inet_common.rs"]`.
#![allow(dead_code)] // Each program uses a different part of it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};

use super::zdtm::{ensure, errno};

use linux_raw_sys::net as raw;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn e(what: &str) -> impl Fn(rustix::io::Errno) -> String + '_ {
    move |x| format!("{what}: {x}")
}

pub fn socket(family: AddressFamily, ty: SocketType) -> Result<OwnedFd, String> {
    rustix::net::socket(family, ty, None).map_err(e("socket"))
}

pub fn local(fd: impl AsFd) -> Result<SocketAddr, String> {
    let a = rustix::net::getsockname(fd).map_err(e("getsockname"))?;
    SocketAddr::try_from(a).map_err(|x| x.to_string())
}

pub fn peer(fd: impl AsFd) -> Result<SocketAddr, String> {
    let a = rustix::net::getpeername(fd)
        .map_err(e("getpeername"))?
        .ok_or("no peer")?;
    SocketAddr::try_from(a).map_err(|x| x.to_string())
}

pub fn v4(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

pub fn v6(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)
}

/// Raw `getsockopt` into a buffer: the bytes the kernel wrote.
pub fn getopt(fd: impl AsFd, level: u32, name: u32) -> Result<Vec<u8>, String> {
    let mut buf = [0u8; 128];
    let mut len: u32 = buf.len() as u32;
    // SAFETY: the kernel writes at most `len` bytes to `buf` and the
    // length to `len`, both on this stack frame.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::GETSOCKOPT,
            fd.as_fd().as_raw_fd() as usize,
            level as usize,
            name as usize,
            buf.as_mut_ptr() as usize,
            &mut len as *mut u32 as usize,
        )
    };
    errno(r, &format!("getsockopt({level}, {name})"))?;
    Ok(buf[..len as usize].to_vec())
}

/// Raw `setsockopt` of `val`'s bytes.
pub fn setopt(fd: impl AsFd, level: u32, name: u32, val: &[u8]) -> Result<(), String> {
    // SAFETY: the kernel reads `val.len()` bytes from `val`.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::SETSOCKOPT,
            fd.as_fd().as_raw_fd() as usize,
            level as usize,
            name as usize,
            val.as_ptr() as usize,
            val.len(),
        )
    };
    errno(r, &format!("setsockopt({level}, {name})")).map(drop)
}

pub fn set_int(fd: impl AsFd, level: u32, name: u32, v: i32) -> Result<(), String> {
    setopt(fd, level, name, &v.to_ne_bytes())
}

pub fn get_int(fd: impl AsFd, level: u32, name: u32) -> Result<i32, String> {
    let b = getopt(fd, level, name)?;
    let b: [u8; 4] = b.get(..4).ok_or("short option")?.try_into().unwrap();
    Ok(i32::from_ne_bytes(b))
}

pub const SOL_SOCKET: u32 = raw::SOL_SOCKET;
pub const SOL_IP: u32 = raw::SOL_IP;
pub const SOL_IPV6: u32 = raw::SOL_IPV6;
pub const SOL_TCP: u32 = raw::IPPROTO_TCP as u32;

pub fn bound(family: AddressFamily, ty: SocketType, at: SocketAddr) -> Result<OwnedFd, String> {
    let fd = socket(family, ty)?;
    rustix::net::bind(&fd, &at).map_err(|x| format!("bind {at}: {x}"))?;
    Ok(fd)
}

pub fn listener(family: AddressFamily, at: SocketAddr, backlog: i32) -> Result<OwnedFd, String> {
    let fd = bound(family, SocketType::STREAM, at)?;
    rustix::net::listen(&fd, backlog).map_err(e("listen"))?;
    Ok(fd)
}

/// Waits (bounded) for a message on `fd`, non-blocking.
pub fn recv_wait(fd: impl AsFd, what: &str) -> Result<Vec<u8>, String> {
    let end = Instant::now() + WAIT;
    let mut buf = [0u8; 256];
    loop {
        match rustix::net::recv(&fd, &mut buf[..], RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(buf[..n].to_vec()),
            Err(rustix::io::Errno::AGAIN) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(x) => return Err(format!("{what}: recv: {x}")),
        }
    }
}

pub fn send(fd: impl AsFd, data: &[u8], what: &str) -> Result<(), String> {
    let n = rustix::net::send(fd, data, SendFlags::NOSIGNAL)
        .map_err(|x| format!("{what}: send: {x}"))?;
    ensure(n == data.len(), || {
        format!("{what}: sent {n} of {}", data.len())
    })
}

pub const INET: AddressFamily = AddressFamily::INET;
pub const INET6: AddressFamily = AddressFamily::INET6;

/// One classic BPF instruction: code, jt, jf, k.
pub type Insn = (u16, u8, u8, u32);

/// `SO_ATTACH_FILTER` of `prog`.
pub fn attach_filter(fd: impl AsFd, prog: &[Insn]) -> Result<(), String> {
    let insns: Vec<linux_raw_sys::ptrace::sock_filter> = prog
        .iter()
        .map(|&(code, jt, jf, k)| linux_raw_sys::ptrace::sock_filter { code, jt, jf, k })
        .collect();
    let fprog = linux_raw_sys::ptrace::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel reads the `sock_fprog` and the instructions it
    // points at, both alive for the call.
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
    errno(r, "SO_ATTACH_FILTER").map(drop)
}

/// The attached filter's instructions as bytes (`SO_GET_FILTER`, whose
/// length is counted in instructions).
pub fn filter_bytes(fd: impl AsFd) -> Result<Vec<u8>, String> {
    let mut buf = [0u8; 64 * 8];
    let mut len: u32 = 64;
    // SAFETY: the kernel writes at most `len` instructions (8 bytes each)
    // to `buf`, which holds 64, and the count to `len`.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::GETSOCKOPT,
            fd.as_fd().as_raw_fd() as usize,
            SOL_SOCKET as usize,
            raw::SO_GET_FILTER as usize,
            buf.as_mut_ptr() as usize,
            &mut len as *mut u32 as usize,
        )
    };
    errno(r, "SO_GET_FILTER")?;
    Ok(buf[..(len as usize * 8).min(buf.len())].to_vec())
}

/// BPF: `ld [k]`, `ldh [k]`, `jeq #k, jt, jf`, `ret #k` (linux/filter.h,
/// generic: BPF_LD|BPF_W|BPF_ABS, BPF_LD|BPF_H|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K,
/// BPF_RET|BPF_K).
pub fn ld_w(k: u32) -> Insn {
    (0x20, 0, 0, k)
}
pub fn ld_h(k: u32) -> Insn {
    (0x28, 0, 0, k)
}
pub fn jeq(k: u32, jt: u8, jf: u8) -> Insn {
    (0x15, jt, jf, k)
}
pub fn ret(k: u32) -> Insn {
    (0x06, 0, 0, k)
}

/// A filter that keeps only packets whose 32-bit word at `at` (network
/// order) is `want`: what each program's sockets take, so that nothing
/// else (another test's traffic) is ever queued on them.
pub fn only_word(at: u32, want: u32) -> Vec<Insn> {
    vec![ld_w(at), jeq(want, 0, 1), ret(u32::MAX), ret(0)]
}

/// Every option in `list` as raw bytes, by name, for a before/after
/// comparison.
pub fn options_of(
    fd: impl AsFd,
    list: &[(&str, u32, u32)],
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let fd = fd.as_fd();
    let mut out = Vec::new();
    for &(name, level, opt) in list {
        out.push((name.to_string(), getopt(fd, level, opt)?));
    }
    out.push(("filter".into(), filter_bytes(fd)?));
    let fl = rustix::fs::fcntl_getfl(fd).map_err(e("F_GETFL"))?;
    out.push(("status flags".into(), fl.bits().to_ne_bytes().to_vec()));
    Ok(out)
}

/// The options every socket kind has, for [`options_of`].
pub const GENERIC_OPTS: &[(&str, u32, u32)] = &[
    ("SO_TYPE", SOL_SOCKET, raw::SO_TYPE),
    ("SO_PROTOCOL", SOL_SOCKET, raw::SO_PROTOCOL),
    ("SO_SNDBUF", SOL_SOCKET, raw::SO_SNDBUF),
    ("SO_RCVBUF", SOL_SOCKET, raw::SO_RCVBUF),
    ("SO_PRIORITY", SOL_SOCKET, raw::SO_PRIORITY),
    ("SO_MARK", SOL_SOCKET, raw::SO_MARK),
    ("SO_RCVLOWAT", SOL_SOCKET, raw::SO_RCVLOWAT),
    ("SO_RCVTIMEO", SOL_SOCKET, raw::SO_RCVTIMEO),
];

/// Where `got` and `want` (from [`options_of`]) differ, as text.
pub fn options_differ(
    what: &str,
    got: &[(String, Vec<u8>)],
    want: &[(String, Vec<u8>)],
) -> Result<(), String> {
    for ((name, now), (_, was)) in got.iter().zip(want) {
        ensure(now == was, || {
            format!("{what}: {name} is {now:?}, was {was:?}")
        })?;
    }
    Ok(())
}
