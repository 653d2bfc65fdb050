//! How inet sockets are named: the kind of a (type, protocol) and of
//! other inet protocols in refusals, TCP states, `address:port` for
//! messages, and addresses as the images' words and back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{SOCK_DGRAM, SOCK_STREAM};
use crate::sys::kconst::{
    AF_INET6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING,
    TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_LISTEN, TCP_NEW_SYN_RECV,
    TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT,
};

use linux_raw_sys::net as raw;

/// What a socket of (type, protocol) is called in messages, if it is one
/// this module dumps.
pub(super) fn kind_name(ty: u32, proto: u32) -> Option<&'static str> {
    match (ty, proto as u8) {
        (SOCK_STREAM, IPPROTO_TCP) => Some("a TCP socket"),
        (SOCK_DGRAM, IPPROTO_UDP) => Some("a UDP socket"),
        (SOCK_DGRAM, IPPROTO_UDPLITE) => Some("a UDP-Lite socket"),
        (raw::SOCK_RAW, _) => Some("a raw socket"),
        _ => None,
    }
}

/// An IPv4 or IPv6 socket that is neither TCP nor UDP, for messages.
pub(super) fn other_inet(ip: &str, ty: u32, proto: u32) -> String {
    let p = match proto {
        x if x == raw::IPPROTO_SCTP as u32 => Some("an SCTP"),
        x if x == raw::IPPROTO_MPTCP as u32 => Some("an MPTCP"),
        x if x == raw::IPPROTO_DCCP as u32 => Some("a DCCP"),
        _ => None,
    };
    match (p, ty) {
        (Some(p), _) => format!("{p} socket over {ip}"),
        (None, raw::SOCK_RAW) => format!("a raw {ip} socket (protocol {proto})"),
        (None, _) if proto == raw::IPPROTO_ICMP as u32 || proto == raw::IPPROTO_ICMPV6 => {
            format!("an {ip} ping socket")
        }
        (None, ty) => format!(
            "an {ip} socket of {} and protocol {proto}",
            crate::files::sockets::type_name(ty)
        ),
    }
}

/// The name of a TCP state (`TCP_ESTABLISHED` ...), as `ss` shows it.
pub fn state_name(state: u8) -> String {
    let s = match state {
        TCP_ESTABLISHED => "ESTABLISHED",
        TCP_SYN_SENT => "SYN_SENT",
        TCP_SYN_RECV => "SYN_RECV",
        TCP_FIN_WAIT1 => "FIN_WAIT1",
        TCP_FIN_WAIT2 => "FIN_WAIT2",
        TCP_TIME_WAIT => "TIME_WAIT",
        TCP_CLOSE => "CLOSE",
        TCP_CLOSE_WAIT => "CLOSE_WAIT",
        TCP_LAST_ACK => "LAST_ACK",
        TCP_LISTEN => "LISTEN",
        TCP_CLOSING => "CLOSING",
        TCP_NEW_SYN_RECV => "NEW_SYN_RECV",
        other => return format!("state {other}"),
    };
    s.to_string()
}

/// An address and port as text: `127.0.0.1:80`, `[::1]:80`.
pub fn show(family: u8, addr: &[u8; 16], port: u16) -> String {
    match ip_of(family, addr) {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

pub(super) fn ip_of(family: u8, addr: &[u8; 16]) -> IpAddr {
    if family == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(*addr))
    } else {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    }
}

/// The address words of an image (`repeated uint32`, network order as in
/// memory: CRIU copies the bytes): one for IPv4, four for IPv6.
pub(super) fn words(family: u8, addr: &[u8; 16]) -> Vec<u32> {
    let n = if family == AF_INET6 { 4 } else { 1 };
    addr.chunks_exact(4)
        .take(n)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The bytes of an image's address words (`None`: too few for `family`).
pub(super) fn addr_bytes(family: u32, w: &[u32]) -> Option<[u8; 16]> {
    let n = if family == u32::from(AF_INET6) { 4 } else { 1 };
    if w.len() < n || (n == 4 && w.len() != 4) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, x) in w.iter().take(n).enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_ne_bytes());
    }
    Some(out)
}

pub(super) fn sockaddr_parts(a: std::net::SocketAddr) -> ([u8; 16], u16) {
    let mut b = [0u8; 16];
    match a {
        std::net::SocketAddr::V4(v) => b[..4].copy_from_slice(&v.ip().octets()),
        std::net::SocketAddr::V6(v) => b.copy_from_slice(&v.ip().octets()),
    }
    (b, a.port())
}

/// IPv6 addresses that need a scope (an interface) to be bound: link-local
/// unicast, and multicast of node- or link-local scope.
pub(super) fn needs_scope(addr: &[u8; 16]) -> bool {
    let link_local = addr[0] == 0xfe && addr[1] & 0xc0 == 0x80;
    let small_multicast = addr[0] == 0xff && matches!(addr[1] & 0x0f, 1 | 2);
    link_local || small_multicast
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::kconst::AF_INET;

    #[test]
    fn addresses_go_to_image_words_and_back() {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[127, 0, 0, 1]);
        let w = words(AF_INET, &a);
        assert_eq!(w.len(), 1);
        assert_eq!(addr_bytes(u32::from(AF_INET), &w), Some(a));
        let v6: [u8; 16] = Ipv6Addr::LOCALHOST.octets();
        let w6 = words(AF_INET6, &v6);
        assert_eq!(w6.len(), 4);
        assert_eq!(addr_bytes(u32::from(AF_INET6), &w6), Some(v6));
        // An IPv6 entry with an IPv4-sized address is refused.
        assert_eq!(addr_bytes(u32::from(AF_INET6), &w), None);
        assert_eq!(show(AF_INET6, &v6, 80), "[::1]:80");
        assert_eq!(show(AF_INET, &a, 8000), "127.0.0.1:8000");
    }

    #[test]
    fn link_local_and_small_scope_multicast_need_an_interface() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let mc: Ipv6Addr = "ff02::1".parse().unwrap();
        let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert!(needs_scope(&ll.octets()));
        assert!(needs_scope(&mc.octets()));
        assert!(!needs_scope(&global.octets()));
    }
}
