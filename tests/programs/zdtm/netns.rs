//! A program in a net namespace of its own (started by `ns_exec net`, as
//! `unshare -n` would), with sockets that belong to it: a TCP listener and
//! a UDP socket on the wildcard address (ports chosen by the kernel,
//! written to `DIR/ports` as `TCP UDP`), and a listener at an abstract
//! unix name, which exists in one net namespace only.
//!
//! Arguments after the directory, checked after restore:
//! - `lo=up` / `lo=down`: the loopback device's state in its namespace;
//! - `connect=IP`: the listener accepts a connection made to IP and both
//!   ends exchange data; the UDP socket receives a datagram sent to IP;
//! - `established`: brings lo up itself and holds a TCP connection over
//!   it (`--tcp-established` in its own namespace): after the restore
//!   the connection carries data both ways.
//!
//! Always: the restored task is in a net namespace other than the one
//! `DIR/host-netns` names (the harness's), and a connection to the
//! abstract name reaches the listener (so the sockets were made in the
//! namespace the task is in).
#[path = "lib.rs"]
mod zdtm;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::time::Duration;

use zdtm::ensure;

struct State {
    dir: std::path::PathBuf,
    tcp: TcpListener,
    udp: UdpSocket,
    unix: UnixListener,
    name: Vec<u8>,
    lo: Option<bool>,
    connect: Option<IpAddr>,
    conn: Option<(TcpStream, TcpStream)>,
}

const IFF_UP: u16 = 1;

/// `ioctl(sock, req, ifreq of interface name)`: the ifreq after it.
/// struct ifreq: the name (16 bytes), then a union whose first member here
/// is the short flags.
fn ifreq(sock: &impl AsRawFd, req: u32, name: &str, flags: u16) -> Result<[u8; 40], String> {
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the 40-byte ifreq
    // they are given, which lives until the call returns.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            sock.as_raw_fd() as usize,
            req as usize,
            ifr.as_mut_ptr() as usize,
        )
    };
    zdtm::errno(ret, "ioctl(SIOC*IFFLAGS)")?;
    Ok(ifr)
}

/// Whether interface `name` is up in the calling task's net namespace
/// (SIOCGIFFLAGS on any socket of the namespace).
fn is_up(sock: &impl AsRawFd, name: &str) -> Result<bool, String> {
    let ifr = ifreq(sock, linux_raw_sys::ioctl::SIOCGIFFLAGS, name, 0)?;
    Ok(u16::from_ne_bytes([ifr[16], ifr[17]]) & IFF_UP != 0)
}

fn setup(a: &zdtm::Args) -> Result<State, String> {
    let mut lo = None;
    let mut connect = None;
    let mut established = false;
    for arg in &a.rest {
        if arg == "established" {
            established = true;
            continue;
        }
        match arg.split_once('=') {
            Some(("lo", v)) => lo = Some(v == "up"),
            Some(("connect", ip)) => {
                connect = Some(ip.parse().map_err(|e| format!("connect={ip}: {e}"))?)
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let tcp = TcpListener::bind("0.0.0.0:0").map_err(|e| format!("tcp bind: {e}"))?;
    let udp = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("udp bind: {e}"))?;
    let name = format!("zdtm-netns-{}", std::process::id()).into_bytes();
    let addr = <UnixAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(&name)
        .map_err(|e| format!("abstract name: {e}"))?;
    let unix = UnixListener::bind_addr(&addr).map_err(|e| format!("unix bind: {e}"))?;
    let ports = format!(
        "{} {}\n",
        tcp.local_addr().map_err(|e| e.to_string())?.port(),
        udp.local_addr().map_err(|e| e.to_string())?.port()
    );
    zdtm::write_atomic(&a.dir.join("ports"), &ports)?;
    let conn = if established {
        let flags = ifreq(&udp, linux_raw_sys::ioctl::SIOCGIFFLAGS, "lo", 0)?;
        let flags = u16::from_ne_bytes([flags[16], flags[17]]) | IFF_UP;
        ifreq(&udp, linux_raw_sys::ioctl::SIOCSIFFLAGS, "lo", flags)?;
        let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
        let c = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        let (p, _) = tcp.accept().map_err(|e| format!("accept: {e}"))?;
        Some((c, p))
    } else {
        None
    };
    Ok(State {
        dir: a.dir.clone(),
        tcp,
        udp,
        unix,
        name,
        lo,
        connect,
        conn,
    })
}

fn check(s: State) -> Result<(), String> {
    let ours = std::fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
    let host = std::fs::read_to_string(s.dir.join("host-netns")).unwrap_or_default();
    ensure(ours.display().to_string() != host.trim(), || {
        format!("in the harness's net namespace {host}")
    })?;
    if let Some(want) = s.lo {
        let up = is_up(&s.udp, "lo")?;
        ensure(up == want, || format!("lo up {up}, want {want}"))?;
    }
    // The abstract name is reachable from here: the listener is in our
    // namespace.
    let addr = <UnixAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(&s.name)
        .map_err(|e| e.to_string())?;
    let mut c = UnixStream::connect_addr(&addr).map_err(|e| format!("unix connect: {e}"))?;
    let (mut p, _) = s.unix.accept().map_err(|e| format!("unix accept: {e}"))?;
    c.write_all(b"u").map_err(|e| e.to_string())?;
    let mut b = [0u8; 1];
    p.read_exact(&mut b).map_err(|e| e.to_string())?;
    ensure(b == *b"u", || "unix data".into())?;
    if let Some((c, p)) = &s.conn {
        for (mut from, mut to, what) in [(c, p, b"kept"), (p, c, b"back")] {
            from.write_all(what)
                .map_err(|e| format!("established send: {e}"))?;
            to.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            let mut b = [0u8; 4];
            to.read_exact(&mut b)
                .map_err(|e| format!("established recv: {e}"))?;
            ensure(&b == what, || format!("established data {b:?}"))?;
        }
    }
    ensure(
        s.tcp
            .local_addr()
            .map_err(|e| e.to_string())?
            .ip()
            .is_unspecified(),
        || "tcp listener address changed".into(),
    )?;
    let Some(ip) = s.connect else {
        return Ok(());
    };
    let port = s.tcp.local_addr().map_err(|e| e.to_string())?.port();
    let mut c = TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(5))
        .map_err(|e| format!("tcp connect to {ip}:{port}: {e}"))?;
    let (mut p, _) = s.tcp.accept().map_err(|e| format!("tcp accept: {e}"))?;
    c.write_all(b"ping").map_err(|e| e.to_string())?;
    let mut b = [0u8; 4];
    p.read_exact(&mut b).map_err(|e| e.to_string())?;
    ensure(&b == b"ping", || "tcp data".into())?;
    let uport = s.udp.local_addr().map_err(|e| e.to_string())?.port();
    let out = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    out.send_to(b"dgram", SocketAddr::new(ip, uport))
        .map_err(|e| format!("udp send to {ip}:{uport}: {e}"))?;
    s.udp
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut b = [0u8; 8];
    let (n, _) = s
        .udp
        .recv_from(&mut b)
        .map_err(|e| format!("udp recv: {e}"))?;
    ensure(&b[..n] == b"dgram", || "udp data".into())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
