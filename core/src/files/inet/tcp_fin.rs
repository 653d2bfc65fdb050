//! The one packet a TCP restore has to make itself: the peer's FIN (or
//! the peer's ack of ours) for a half-closed connection, which only the
//! peer could have sent (soccr's `send_fin`, there through libnet). It is
//! written whole, IP header included, on a raw socket (`IPPROTO_RAW`:
//! `IP_HDRINCL`/`IPV6_HDRINCL`), from the peer's address to the restored
//! socket's, with the connection's sequence numbers, and marked with
//! soccr's `SO_MARK` so that a network lock lets it through.

use std::net::{IpAddr, SocketAddr};

use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};

use crate::files::sockets::SockError;
use crate::sys::kconst::IPPROTO_TCP;
use crate::sys::sockopt::{self as so, SOL_SOCKET};

pub const FIN: u8 = 0x01;
pub const ACK: u8 = 0x10;

/// A TCP segment without data, from `from` to `to`.
#[derive(Clone, Copy, Debug)]
pub struct Packet {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

/// An address as IPv4 if it is one (or an IPv4-mapped IPv6 one).
fn v4(a: IpAddr) -> Option<[u8; 4]> {
    match a {
        IpAddr::V4(x) => Some(x.octets()),
        IpAddr::V6(x) => x.to_ipv4_mapped().map(|m| m.octets()),
    }
}

/// The ones' complement sum of `data` (16-bit words, big-endian).
fn sum(mut acc: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        acc += u32::from(w);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The 20-byte TCP header of `p`, its checksum over `pseudo` (the IP
/// pseudo-header's addresses) included.
fn tcp_header(p: &Packet, pseudo: &[u8]) -> [u8; 20] {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&p.from.port().to_be_bytes());
    t[2..4].copy_from_slice(&p.to.port().to_be_bytes());
    t[4..8].copy_from_slice(&p.seq.to_be_bytes());
    t[8..12].copy_from_slice(&p.ack.to_be_bytes());
    t[12] = 5 << 4; // data offset: 5 words, no options
    t[13] = p.flags;
    t[14..16].copy_from_slice(&p.window.to_be_bytes());
    // The pseudo-header: both addresses, protocol, TCP length.
    let mut acc = sum(0, pseudo);
    acc += u32::from(IPPROTO_TCP) + t.len() as u32;
    acc = sum(acc, &t);
    t[16..18].copy_from_slice(&fold(acc).to_be_bytes());
    t
}

/// The whole IP packet of `p`, and the address to send it to.
fn build(p: &Packet) -> (Vec<u8>, SocketAddr, AddressFamily) {
    if let (Some(src), Some(dst)) = (v4(p.from.ip()), v4(p.to.ip())) {
        let pseudo: Vec<u8> = src.iter().chain(dst.iter()).copied().collect();
        let tcp = tcp_header(p, &pseudo);
        let mut ip = [0u8; 20];
        ip[0] = 0x45; // version 4, 5 words
        let total = (20 + tcp.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = 64; // TTL
        ip[9] = IPPROTO_TCP;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let c = fold(sum(0, &ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let to = SocketAddr::new(IpAddr::from(dst), 0);
        return ([&ip[..], &tcp[..]].concat(), to, AddressFamily::INET);
    }
    let six = |a: IpAddr| match a {
        IpAddr::V6(x) => x.octets(),
        IpAddr::V4(x) => x.to_ipv6_mapped().octets(),
    };
    let (src, dst) = (six(p.from.ip()), six(p.to.ip()));
    let pseudo: Vec<u8> = src.iter().chain(dst.iter()).copied().collect();
    let tcp = tcp_header(p, &pseudo);
    let mut ip = [0u8; 40];
    ip[0] = 0x60; // version 6
    ip[4..6].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
    ip[6] = IPPROTO_TCP;
    ip[7] = 64; // hop limit
    ip[8..24].copy_from_slice(&src);
    ip[24..40].copy_from_slice(&dst);
    let to = SocketAddr::new(IpAddr::from(dst), 0);
    ([&ip[..], &tcp[..]].concat(), to, AddressFamily::INET6)
}

/// Sends `p` on a raw socket of its own.
pub fn send(p: &Packet) -> Result<(), SockError> {
    let (bytes, to, family) = build(p);
    let proto = rustix::net::Protocol::from_raw(
        std::num::NonZeroU32::new(u32::from(crate::sys::kconst::IPPROTO_RAW))
            .ok_or_else(|| SockError::Unexpected("IPPROTO_RAW is 0".into()))?,
    );
    let sk = rustix::net::socket_with(family, SocketType::RAW, SocketFlags::CLOEXEC, Some(proto))
        .map_err(SockError::call("a raw socket"))?;
    // The network lock's rules let packets with libsoccr's mark through.
    let mark = crate::netlock::nft::SOCCR_MARK as i32;
    so::set_int(&sk, SOL_SOCKET, linux_raw_sys::net::SO_MARK, mark)
        .map_err(SockError::call("SO_MARK"))?;
    let n = rustix::net::sendto(&sk, &bytes, SendFlags::empty(), &to)
        .map_err(|e| SockError::sys(format!("sending {} bytes to {}", bytes.len(), to.ip()), e))?;
    if n != bytes.len() {
        return Err(SockError::Unexpected(format!(
            "{n} of {} bytes sent",
            bytes.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let p = Packet {
            from: "127.0.0.1:5000".parse().unwrap(),
            to: "127.0.0.2:6000".parse().unwrap(),
            seq: 0x01020304,
            ack: 0xa0b0c0d0,
            flags: FIN | ACK,
            window: 512,
        };
        let (b, to, fam) = build(&p);
        assert_eq!((b.len(), fam), (40, AddressFamily::INET));
        assert_eq!(to, "127.0.0.2:0".parse().unwrap());
        // A header with its checksum in sums to all ones.
        assert_eq!(fold(sum(0, &b[..20])), 0);
        let mut acc = sum(0, &b[12..20]) + u32::from(IPPROTO_TCP) + 20;
        acc = sum(acc, &b[20..]);
        assert_eq!(fold(acc), 0);
        let p6 = Packet {
            from: "[::1]:5000".parse().unwrap(),
            to: "[::1]:6000".parse().unwrap(),
            ..p
        };
        let (b, _, fam) = build(&p6);
        assert_eq!((b.len(), fam), (60, AddressFamily::INET6));
        let mut acc = sum(0, &b[8..40]) + u32::from(IPPROTO_TCP) + 20;
        acc = sum(acc, &b[40..]);
        assert_eq!(fold(acc), 0);
        // An IPv4-mapped pair goes out as IPv4.
        let pm = Packet {
            from: "[::ffff:127.0.0.1]:5000".parse().unwrap(),
            to: "[::ffff:127.0.0.1]:6000".parse().unwrap(),
            ..p
        };
        assert_eq!(build(&pm).2, AddressFamily::INET);
    }
}
