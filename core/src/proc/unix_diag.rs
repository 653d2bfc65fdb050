//! Every AF_UNIX socket of the network namespace, as `NETLINK_SOCK_DIAG`
//! lists it (`<linux/unix_diag.h>`): inode, type, state, name, peer inode,
//! pending connections of listeners, queue lengths and shutdown state.
//! Dump reads it once and looks sockets up by inode.

use std::collections::HashMap;

use rustix::io::Errno;

use super::sock_diag::{u16_at, u32_at};

use crate::sys::kconst::{
    AF_UNIX, NLA_HDRLEN, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN, SOCK_DIAG_BY_FAMILY,
    UDIAG_SHOW_ICONS, UDIAG_SHOW_NAME, UDIAG_SHOW_PEER, UDIAG_SHOW_RQLEN, UDIAG_SHOW_VFS,
    UNIX_DIAG_ICONS, UNIX_DIAG_NAME, UNIX_DIAG_PEER, UNIX_DIAG_RQLEN, UNIX_DIAG_SHUTDOWN,
    UNIX_DIAG_VFS,
};

/// Size of `struct unix_diag_msg` (family, type, state, pad, ino, cookie[2]).
const UNIX_DIAG_MSG_LEN: usize = 16;

/// One unix socket as the kernel describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnixSock {
    pub ino: u32,
    /// `SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_SEQPACKET` 5.
    pub kind: u8,
    /// `TCP_ESTABLISHED` 1, `TCP_CLOSE` 7, `TCP_LISTEN` 10.
    pub state: u8,
    /// The bound name: a path, or `\0` + an abstract name; empty if unbound.
    pub name: Vec<u8>,
    /// Device and inode of the socket file of a path name.
    pub vfs: Option<(u32, u32)>,
    /// Inode of the peer (0: none).
    pub peer: u32,
    /// Listeners: inodes of the connections not yet accepted (each one's
    /// peer is the connecting socket).
    pub icons: Vec<u32>,
    /// Receive queue: bytes queued (listeners: connections pending).
    pub rqueue: u32,
    /// Send side: bytes in flight (listeners: the backlog).
    pub wqueue: u32,
    /// `RCV_SHUTDOWN` 1 | `SEND_SHUTDOWN` 2.
    pub shutdown: u8,
}

pub use crate::sys::kconst::{TCP_ESTABLISHED, TCP_LISTEN};

fn request() -> Vec<u8> {
    let mut body = vec![AF_UNIX, 0, 0, 0];
    body.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    body.extend_from_slice(&0u32.to_ne_bytes()); // any inode
    let show =
        UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
    body.extend_from_slice(&show.to_ne_bytes());
    body.extend_from_slice(&[0xff; 8]); // cookie: none (INET_DIAG_NOCOOKIE)
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

/// Parses the body of one `unix_diag_msg` (after the netlink header).
pub fn parse_msg(b: &[u8]) -> Option<UnixSock> {
    if b.len() < UNIX_DIAG_MSG_LEN || b[0] != AF_UNIX {
        return None;
    }
    let mut s = UnixSock {
        kind: b[1],
        state: b[2],
        ino: u32_at(b, 4)?,
        ..UnixSock::default()
    };
    let mut off = UNIX_DIAG_MSG_LEN;
    while off + NLA_HDRLEN <= b.len() {
        let len = usize::from(u16_at(b, off)?);
        let kind = u16_at(b, off + 2)? & 0x3fff;
        if len < NLA_HDRLEN || off + len > b.len() {
            return None;
        }
        let data = &b[off + NLA_HDRLEN..off + len];
        match kind {
            UNIX_DIAG_NAME => s.name = data.to_vec(),
            UNIX_DIAG_VFS => s.vfs = Some((u32_at(data, 0)?, u32_at(data, 4)?)),
            UNIX_DIAG_PEER => s.peer = u32_at(data, 0)?,
            UNIX_DIAG_ICONS => {
                s.icons = data
                    .chunks_exact(4)
                    .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
            }
            UNIX_DIAG_RQLEN => {
                s.rqueue = u32_at(data, 0)?;
                s.wqueue = u32_at(data, 4)?;
            }
            UNIX_DIAG_SHUTDOWN => s.shutdown = *data.first()?,
            _ => {}
        }
        off += (len + 3) & !3;
    }
    Some(s)
}

/// Lists every unix socket of our network namespace, by inode.
pub fn collect() -> Result<HashMap<u32, UnixSock>, Errno> {
    super::sock_diag::collect(&request(), parse_msg, |s| s.ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::sock_diag::test_attr as attr;

    #[test]
    fn parses_a_listener_with_pending_connections() {
        let mut m = vec![AF_UNIX, 1, TCP_LISTEN, 0];
        m.extend_from_slice(&77u32.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend(attr(UNIX_DIAG_NAME, b"/tmp/sock"));
        let icons: Vec<u8> = [5u32, 6].iter().flat_map(|i| i.to_ne_bytes()).collect();
        m.extend(attr(UNIX_DIAG_ICONS, &icons));
        let mut rq = 2u32.to_ne_bytes().to_vec();
        rq.extend_from_slice(&128u32.to_ne_bytes());
        m.extend(attr(UNIX_DIAG_RQLEN, &rq));
        m.extend(attr(UNIX_DIAG_SHUTDOWN, &[2]));
        let s = parse_msg(&m).unwrap();
        assert_eq!(s.ino, 77);
        assert_eq!(s.name, b"/tmp/sock");
        assert_eq!(s.icons, [5, 6]);
        assert_eq!((s.rqueue, s.wqueue, s.shutdown), (2, 128, 2));
    }

    #[test]
    fn rejects_truncated_attributes() {
        let mut m = vec![AF_UNIX, 1, 1, 0];
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&[40, 0, 2, 0, 1, 0, 0, 0]);
        assert_eq!(parse_msg(&m), None);
    }
}
