//! The TCP, UDP and UDP-Lite sockets over IPv4 or IPv6 of the network
//! namespace, as `NETLINK_SOCK_DIAG` lists them (`<linux/inet_diag.h>`):
//! inode, state, ports, addresses, queue lengths and shutdown state. Dump
//! asks once per (family, protocol) and looks sockets up by inode.
//!
//! The kernel lists only sockets it has hashed: listeners, connections
//! and bound UDP sockets. An unbound socket, or a TCP socket that is only
//! bound, is in no list (dump reads those from the socket itself).

use std::collections::HashMap;

use rustix::io::Errno;

use super::sock_diag::{u16_at, u32_at};

use crate::sys::kconst::{
    INET_DIAG_SHUTDOWN, NLA_HDRLEN, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN, SOCK_DIAG_BY_FAMILY,
};

/// Size of `struct inet_diag_req_v2` (family, protocol, ext, pad, states,
/// `inet_diag_sockid`).
const REQ_V2_LEN: usize = 56;
/// Size of `struct inet_diag_msg`: family, state, timer, retrans, the
/// 48-byte `inet_diag_sockid`, then expires, rqueue, wqueue, uid, inode.
const DIAG_MSG_LEN: usize = 72;

/// One socket as the kernel describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InetSock {
    pub ino: u32,
    pub family: u8,
    /// A TCP state (`TCP_LISTEN`, ...); bound UDP sockets are `TCP_CLOSE`,
    /// connected ones `TCP_ESTABLISHED`.
    pub state: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// The addresses as the kernel keeps them (network order, in memory
    /// order): IPv4 in the first 4 bytes.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Listeners: connections waiting to be accepted. TCP: bytes not read
    /// yet. UDP: bytes of queued datagrams.
    pub rqueue: u32,
    /// Listeners: the backlog. TCP: bytes not acknowledged yet. UDP:
    /// bytes waiting to be sent (a corked socket).
    pub wqueue: u32,
    /// `RCV_SHUTDOWN` 1 | `SEND_SHUTDOWN` 2.
    pub shutdown: u8,
}

fn request(family: u8, protocol: u8, states: u32) -> Vec<u8> {
    let mut body = vec![family, protocol, 0, 0];
    body.extend_from_slice(&states.to_ne_bytes());
    body.resize(REQ_V2_LEN, 0); // any socket (the id is all zeros)
    let len = (NLMSG_HDRLEN + body.len()) as u32;
    let mut msg = Vec::with_capacity(len as usize);
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

fn be16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Parses the body of one `inet_diag_msg` (after the netlink header).
pub fn parse_msg(b: &[u8]) -> Option<InetSock> {
    if b.len() < DIAG_MSG_LEN {
        return None;
    }
    let mut s = InetSock {
        family: b[0],
        state: b[1],
        src_port: be16_at(b, 4)?,
        dst_port: be16_at(b, 6)?,
        rqueue: u32_at(b, 56)?,
        wqueue: u32_at(b, 60)?,
        ino: u32_at(b, 68)?,
        ..InetSock::default()
    };
    s.src.copy_from_slice(&b[8..24]);
    s.dst.copy_from_slice(&b[24..40]);
    let mut off = DIAG_MSG_LEN;
    while off + NLA_HDRLEN <= b.len() {
        let len = usize::from(u16_at(b, off)?);
        let kind = u16_at(b, off + 2)? & 0x3fff;
        if len < NLA_HDRLEN || off + len > b.len() {
            return None;
        }
        if kind == INET_DIAG_SHUTDOWN {
            s.shutdown = *b.get(off + NLA_HDRLEN)?;
        }
        off += (len + 3) & !3;
    }
    Some(s)
}

/// The states CRIU asks about for TCP: listeners and connections. A TCP
/// socket that is only bound (`TCP_CLOSE`, which the kernel would list
/// from its bind table) is read from the socket itself, as CRIU does, so
/// that both tools' images of it are alike.
pub fn tcp_states() -> u32 {
    use crate::sys::kconst::{
        TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK,
        TCP_LISTEN, TCP_SYN_SENT,
    };
    [
        TCP_LISTEN,
        TCP_ESTABLISHED,
        TCP_FIN_WAIT1,
        TCP_FIN_WAIT2,
        TCP_CLOSE_WAIT,
        TCP_LAST_ACK,
        TCP_CLOSING,
        TCP_SYN_SENT,
    ]
    .iter()
    .fold(0, |m, s| m | 1 << s)
}

/// Lists the sockets of `family` (`AF_INET`, `AF_INET6`) and `protocol`
/// (`IPPROTO_TCP`, `IPPROTO_UDP`, `IPPROTO_UDPLITE`) of our network
/// namespace in `states` (a mask of `1 << state`), by inode. Sockets
/// without an inode (TIME_WAIT and request minisockets) are left out: no
/// fd can hold them.
pub fn collect(family: u8, protocol: u8, states: u32) -> Result<HashMap<u32, InetSock>, Errno> {
    let mut out = HashMap::new();
    super::sock_diag::dump(&request(family, protocol, states), |m| {
        let s = parse_msg(m).ok_or(Errno::PROTO)?;
        if s.ino != 0 {
            out.insert(s.ino, s);
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::kconst::{AF_INET6, TCP_LISTEN};

    #[test]
    fn parses_a_listener_and_its_shutdown_attribute() {
        let mut m = vec![AF_INET6, TCP_LISTEN, 0, 0];
        m.extend_from_slice(&8080u16.to_be_bytes());
        m.extend_from_slice(&0u16.to_be_bytes());
        let mut src = [0u8; 16];
        src[15] = 1; // ::1
        m.extend_from_slice(&src);
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&[0; 12]); // if, cookie
        m.extend_from_slice(&0u32.to_ne_bytes()); // expires
        m.extend_from_slice(&2u32.to_ne_bytes()); // rqueue
        m.extend_from_slice(&128u32.to_ne_bytes()); // wqueue
        m.extend_from_slice(&0u32.to_ne_bytes()); // uid
        m.extend_from_slice(&4242u32.to_ne_bytes()); // inode
        assert_eq!(m.len(), DIAG_MSG_LEN);
        m.extend_from_slice(&5u16.to_ne_bytes());
        m.extend_from_slice(&INET_DIAG_SHUTDOWN.to_ne_bytes());
        m.extend_from_slice(&[3, 0, 0, 0]);
        let s = parse_msg(&m).unwrap();
        assert_eq!((s.ino, s.family, s.state), (4242, AF_INET6, TCP_LISTEN));
        assert_eq!((s.src_port, s.dst_port), (8080, 0));
        assert_eq!(s.src, src);
        assert_eq!((s.rqueue, s.wqueue, s.shutdown), (2, 128, 3));
    }

    #[test]
    fn rejects_short_and_truncated_messages() {
        assert_eq!(parse_msg(&[0; DIAG_MSG_LEN - 1]), None);
        let mut m = vec![0u8; DIAG_MSG_LEN];
        m.extend_from_slice(&[40, 0, 8, 0, 1, 0, 0, 0]);
        assert_eq!(parse_msg(&m), None);
    }
}
