//! Raw sockets over IPv4 and IPv6, one mode per run (first argument after
//! the directory). Each has an ICMP type filter and/or a BPF filter that
//! keeps only this process's packets (its PID as the echo id, or in the
//! payload), so that no other test's traffic is ever queued on them.
//! - `all`: an ICMP socket (`ping`'s kind) with an ICMP filter and a TTL;
//!   a socket of protocol 253 bound to 127.0.0.1 with `IP_HDRINCL` and
//!   `IP_NODEFRAG`; an ICMPv6 socket with an ICMPv6 filter; an IPv6 socket
//!   of protocol 253 bound to `::1` with `IPV6_HDRINCL`.
//! - `connected`: a socket of protocol 253 connected to 127.0.0.1.
//!
//! After restore each socket checks its address, peer and options, and
//! works: the ICMP sockets get the echo reply of 127.0.0.1 and `::1` to
//! a request they send, the protocol-253 sockets receive a packet they
//! send themselves (built whole, header included, where `HDRINCL` is
//! on).
//!
//! Modes a dump must refuse (checked unchanged after the refused dump):
//! `queued` (an echo reply waiting), `checksum` (`IPV6_CHECKSUM` at an
//! offset of its own).
#[path = "inet_common.rs"]
mod inet;
#[path = "lib.rs"]
mod zdtm;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use inet::*;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};
use zdtm::ensure;

use linux_raw_sys::net as raw;

/// `ICMP_FILTER` (linux/icmp.h) and `ICMPV6_FILTER` (linux/icmpv6.h).
const ICMP_FILTER: u32 = 1;
const ICMPV6_FILTER: u32 = 1;
/// An experimental protocol number (RFC 3692).
const EXP: u32 = 253;

fn pid() -> u32 {
    std::process::id()
}

fn echo_id() -> u16 {
    pid() as u16
}

fn raw_socket(family: AddressFamily, proto: u32) -> Result<OwnedFd, String> {
    let p = rustix::net::Protocol::from_raw(std::num::NonZeroU32::new(proto).unwrap());
    rustix::net::socket(family, SocketType::RAW, Some(p)).map_err(e("socket(SOCK_RAW)"))
}

fn lo4() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

fn lo6() -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0)
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request of `ty` (8 for ICMP, 128 for ICMPv6) with this
/// process's id; the ICMP checksum filled in (ICMPv6's is the kernel's).
fn echo_request(ty: u8) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&echo_id().to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(b"criu-rs raw socket");
    if ty == 8 {
        let c = checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    m
}

/// This process's payload: its PID, then `tag`.
fn payload(tag: &[u8]) -> Vec<u8> {
    let mut m = pid().to_be_bytes().to_vec();
    m.extend_from_slice(tag);
    m
}

/// A whole IPv4 packet of protocol 253 from and to 127.0.0.1 (the kernel
/// fills in the length, id and checksum).
fn ipv4_packet(tag: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, EXP as u8, 0, 0];
    h.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
    h.extend(payload(tag));
    h
}

/// A whole IPv6 packet of next header 253 from and to `::1`.
fn ipv6_packet(tag: &[u8]) -> Vec<u8> {
    let body = payload(tag);
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&[EXP as u8, 64]);
    h.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    h.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    h.extend(body);
    h
}

/// An ICMP(v6) type filter that drops every type but `keep`.
fn icmp_filter(words: usize, keep: u32) -> Vec<u8> {
    let mut w = vec![u32::MAX; words];
    w[(keep / 32) as usize] &= !(1 << (keep % 32));
    w.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// One socket and what must hold of it after restore.
struct Rs {
    what: &'static str,
    fd: OwnedFd,
    local: SocketAddr,
    peer: Option<SocketAddr>,
    opts: Vec<(String, Vec<u8>)>,
}

fn opt_list(v6: bool, proto: u32) -> Vec<(&'static str, u32, u32)> {
    let mut l = GENERIC_OPTS.to_vec();
    if v6 {
        l.push(("IPV6_HDRINCL", SOL_IPV6, raw::IPV6_HDRINCL));
        l.push(("IPV6_CHECKSUM", SOL_IPV6, raw::IPV6_CHECKSUM));
        l.push(("IPV6_V6ONLY", SOL_IPV6, raw::IPV6_V6ONLY));
        if proto == raw::IPPROTO_ICMPV6 {
            l.push(("ICMPV6_FILTER", raw::SOL_ICMPV6, ICMPV6_FILTER));
        }
    } else {
        l.push(("IP_HDRINCL", SOL_IP, raw::IP_HDRINCL));
        l.push(("IP_NODEFRAG", SOL_IP, raw::IP_NODEFRAG));
        l.push(("IP_TTL", SOL_IP, raw::IP_TTL));
        if proto == raw::IPPROTO_ICMP as u32 {
            l.push(("ICMP_FILTER", raw::SOL_RAW, ICMP_FILTER));
        }
    }
    l
}

fn record(what: &'static str, fd: OwnedFd, v6: bool, proto: u32) -> Result<Rs, String> {
    let peer = match rustix::net::getpeername(&fd) {
        Ok(Some(p)) => Some(SocketAddr::try_from(p).map_err(|x| x.to_string())?),
        _ => None,
    };
    Ok(Rs {
        what,
        local: local(&fd)?,
        peer,
        opts: options_of(&fd, &opt_list(v6, proto))?,
        fd,
    })
}

fn drain(fd: impl AsFd) {
    let mut b = [0u8; 2048];
    while rustix::net::recv(&fd, &mut b[..], RecvFlags::DONTWAIT).is_ok() {}
}

fn setup_all() -> Result<Vec<Rs>, String> {
    let mut out = Vec::new();
    let icmp = raw_socket(INET, raw::IPPROTO_ICMP as u32)?;
    setopt(&icmp, raw::SOL_RAW, ICMP_FILTER, &icmp_filter(1, 0))?;
    // The echo id: 4 bytes into the ICMP header, after 20 of IP header.
    attach_filter(
        &icmp,
        &[
            ld_h(24),
            jeq(u32::from(echo_id()), 0, 1),
            ret(u32::MAX),
            ret(0),
        ],
    )?;
    set_int(&icmp, SOL_IP, raw::IP_TTL, 33)?;
    drain(&icmp);
    out.push(record("icmp", icmp, false, raw::IPPROTO_ICMP as u32)?);
    let v4 = raw_socket(INET, EXP)?;
    attach_filter(&v4, &only_word(20, pid()))?;
    rustix::net::bind(&v4, &lo4()).map_err(e("bind 127.0.0.1"))?;
    set_int(&v4, SOL_IP, raw::IP_HDRINCL, 1)?;
    set_int(&v4, SOL_IP, raw::IP_NODEFRAG, 1)?;
    drain(&v4);
    out.push(record("raw4 hdrincl", v4, false, EXP)?);
    let icmp6 = raw_socket(INET6, raw::IPPROTO_ICMPV6)?;
    setopt(&icmp6, raw::SOL_ICMPV6, ICMPV6_FILTER, &icmp_filter(8, 129))?;
    attach_filter(
        &icmp6,
        &[
            ld_h(4),
            jeq(u32::from(echo_id()), 0, 1),
            ret(u32::MAX),
            ret(0),
        ],
    )?;
    drain(&icmp6);
    out.push(record("icmp6", icmp6, true, raw::IPPROTO_ICMPV6)?);
    let v6 = raw_socket(INET6, EXP)?;
    attach_filter(&v6, &only_word(0, pid()))?;
    rustix::net::bind(&v6, &lo6()).map_err(e("bind ::1"))?;
    set_int(&v6, SOL_IPV6, raw::IPV6_HDRINCL, 1)?;
    drain(&v6);
    out.push(record("raw6 hdrincl", v6, true, EXP)?);
    Ok(out)
}

fn heard(fd: impl AsFd, what: &str) -> Result<Vec<u8>, String> {
    let end = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    loop {
        match rustix::net::recv(&fd, &mut buf[..], RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(buf[..n].to_vec()),
            Err(rustix::io::Errno::AGAIN) if Instant::now() < end => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(x) => return Err(format!("{what}: recv: {x}")),
        }
    }
}

/// Waits (bounded) until `fd` has a packet queued, leaving it there.
fn queued(fd: impl AsFd) -> Result<(), String> {
    let end = Instant::now() + WAIT;
    let mut b = [0u8; 64];
    while Instant::now() < end {
        if rustix::net::recv(&fd, &mut b[..], RecvFlags::DONTWAIT | RecvFlags::PEEK).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Err("nothing came".into())
}

struct State {
    socks: Vec<Rs>,
    mode: String,
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let mode = args.rest.first().cloned().unwrap_or_else(|| "all".into());
    let socks = match mode.as_str() {
        "all" => setup_all()?,
        "connected" => {
            let c = raw_socket(INET, EXP)?;
            attach_filter(&c, &only_word(20, pid()))?;
            rustix::net::connect(&c, &lo4()).map_err(e("connect 127.0.0.1"))?;
            drain(&c);
            vec![record("connected", c, false, EXP)?]
        }
        "queued" => {
            let icmp = raw_socket(INET, raw::IPPROTO_ICMP as u32)?;
            setopt(&icmp, raw::SOL_RAW, ICMP_FILTER, &icmp_filter(1, 0))?;
            attach_filter(
                &icmp,
                &[
                    ld_h(24),
                    jeq(u32::from(echo_id()), 0, 1),
                    ret(u32::MAX),
                    ret(0),
                ],
            )?;
            drain(&icmp);
            rustix::net::sendto(&icmp, &echo_request(8), SendFlags::empty(), &lo4())
                .map_err(e("send an echo request"))?;
            queued(&icmp)?;
            vec![record("queued", icmp, false, raw::IPPROTO_ICMP as u32)?]
        }
        "checksum" => {
            let s = raw_socket(INET6, EXP)?;
            set_int(&s, SOL_IPV6, raw::IPV6_CHECKSUM, 4)?;
            vec![record("checksum", s, true, EXP)?]
        }
        other => return Err(format!("unknown mode {other}")),
    };
    let fds: Vec<String> = socks
        .iter()
        .map(|s| format!("{} {}", s.what, s.fd.as_raw_fd()))
        .collect();
    zdtm::write_atomic(&args.dir.join("fds"), &(fds.join("\n") + "\n"))?;
    Ok(State { socks, mode })
}

fn works(s: &Rs) -> Result<(), String> {
    let w = s.what;
    let (send, to, at): (Vec<u8>, SocketAddr, usize) = match w {
        "icmp" => (echo_request(8), lo4(), 20),
        "icmp6" => (echo_request(128), lo6(), 0),
        "raw4 hdrincl" => (ipv4_packet(b"hdrincl"), lo4(), 20),
        "raw6 hdrincl" => (ipv6_packet(b"hdrincl"), lo6(), 0),
        "connected" => {
            rustix::net::send(&s.fd, &payload(b"connected"), SendFlags::empty())
                .map_err(e("send on the connected socket"))?;
            let got = heard(&s.fd, w)?;
            return ensure(got.get(24..33) == Some(b"connected"), || {
                format!("{w}: got {got:?}")
            });
        }
        _ => return Ok(()),
    };
    rustix::net::sendto(&s.fd, &send, SendFlags::empty(), &to).map_err(e("sendto"))?;
    let got = heard(&s.fd, w)?;
    let body = got.get(at..).unwrap_or_default();
    let ok = if w.starts_with("icmp") {
        // An echo reply (0, 129) with our id and data.
        body.first() == Some(&if w == "icmp" { 0 } else { 129 }) && body.get(8..) == send.get(8..)
    } else {
        body == payload(b"hdrincl")
    };
    ensure(ok, || format!("{w}: got {got:?}"))
}

fn check(st: State) -> Result<(), String> {
    for s in &st.socks {
        let w = s.what;
        let l = local(&s.fd)?;
        ensure(l == s.local, || {
            format!("{w}: address {l}, was {}", s.local)
        })?;
        let p = match rustix::net::getpeername(&s.fd) {
            Ok(Some(p)) => Some(SocketAddr::try_from(p).map_err(|x| x.to_string())?),
            _ => None,
        };
        ensure(p == s.peer, || format!("{w}: peer {p:?}, was {:?}", s.peer))?;
        let proto = get_int(&s.fd, SOL_SOCKET, raw::SO_PROTOCOL)? as u32;
        let v6 = matches!(l, SocketAddr::V6(_));
        options_differ(w, &options_of(&s.fd, &opt_list(v6, proto))?, &s.opts)?;
    }
    match st.mode.as_str() {
        "all" | "connected" => st.socks.iter().try_for_each(works),
        "queued" => {
            let got = heard(&st.socks[0].fd, "queued")?;
            ensure(got.get(20) == Some(&0), || format!("queued: {got:?}"))
        }
        _ => Ok(()),
    }
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
