//! The netlink sockets of the network namespace that are bound, connected
//! or members of a multicast group, as `NETLINK_SOCK_DIAG` lists them
//! (`<linux/netlink_diag.h>`): inode, protocol, state, port id, peer, the
//! multicast groups joined and the socket's flags. A socket that is none
//! of those (never bound) is in no list. Dump reads it once and looks
//! sockets up by inode.
//!
//! rust-netlink's `netlink-packet-sock-diag` knows only the inet and unix
//! families, so the messages are made and read here as for those.

use std::collections::HashMap;

use rustix::io::Errno;

use super::sock_diag::{attrs, u32_at};
use crate::sys::kconst::{
    AF_NETLINK, NDIAG_PROTO_ALL, NDIAG_SHOW_FLAGS, NDIAG_SHOW_GROUPS, NETLINK_DIAG_FLAGS,
    NETLINK_DIAG_GROUPS,
};

/// Size of `struct netlink_diag_msg`: family, type, protocol, state,
/// portid, dst_portid, dst_group, ino, cookie[2].
const DIAG_MSG_LEN: usize = 28;

/// One netlink socket as the kernel describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetlinkSock {
    pub ino: u32,
    /// `SOCK_RAW` or `SOCK_DGRAM`.
    pub kind: u8,
    pub protocol: u8,
    /// `sk_state`: 7 (`TCP_CLOSE`, as the socket was made), 1
    /// (`NETLINK_CONNECTED`) or 0 (disconnected again).
    pub state: u8,
    /// The port id it is bound to (0: none; the kernel's autobind gives
    /// the task's PID, or a negative number once that is taken).
    pub portid: u32,
    pub dst_portid: u32,
    /// The group it sends to (a group number, not a mask; 0: none).
    pub dst_group: u32,
    /// The multicast groups joined, 32 to a word, group `n` at bit
    /// `(n - 1) % 32` of word `(n - 1) / 32`; empty when it never joined
    /// one.
    pub groups: Vec<u32>,
    /// `NDIAG_FLAG_*` (0 where the kernel does not report them).
    pub flags: u32,
}

fn request() -> Vec<u8> {
    let mut body = vec![AF_NETLINK, NDIAG_PROTO_ALL, 0, 0];
    body.extend_from_slice(&0u32.to_ne_bytes()); // any inode
    body.extend_from_slice(&(NDIAG_SHOW_GROUPS | NDIAG_SHOW_FLAGS).to_ne_bytes());
    body.extend_from_slice(&[0xff; 8]); // no cookie
    super::sock_diag::request(&body)
}

/// The group bitmap (an array of the kernel's `unsigned long`) as 32-bit
/// words, lowest groups first, whatever the byte order.
fn group_words(data: &[u8]) -> Option<Vec<u32>> {
    const LONG: usize = size_of::<std::ffi::c_ulong>();
    if !data.len().is_multiple_of(LONG) {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() / 4);
    for c in data.chunks_exact(LONG) {
        let mut v: u64 = 0;
        for (i, b) in c.iter().enumerate() {
            let shift = if cfg!(target_endian = "little") {
                8 * i
            } else {
                8 * (LONG - 1 - i)
            };
            v |= u64::from(*b) << shift;
        }
        out.push(v as u32);
        if LONG == 8 {
            out.push((v >> 32) as u32);
        }
    }
    Some(out)
}

/// Parses the body of one `netlink_diag_msg` (after the netlink header).
pub fn parse_msg(b: &[u8]) -> Option<NetlinkSock> {
    if b.len() < DIAG_MSG_LEN || b[0] != AF_NETLINK {
        return None;
    }
    let mut s = NetlinkSock {
        kind: b[1],
        protocol: b[2],
        state: b[3],
        portid: u32_at(b, 4)?,
        dst_portid: u32_at(b, 8)?,
        dst_group: u32_at(b, 12)?,
        ino: u32_at(b, 16)?,
        ..NetlinkSock::default()
    };
    for (kind, data) in attrs(b, DIAG_MSG_LEN)? {
        match kind {
            NETLINK_DIAG_GROUPS => s.groups = group_words(data)?,
            NETLINK_DIAG_FLAGS => s.flags = u32_at(data, 0)?,
            _ => {}
        }
    }
    Some(s)
}

/// Lists the netlink sockets of our network namespace that the kernel
/// has in its tables (bound or in a group), by inode. `ENOENT`: the
/// kernel has no netlink_diag (`CONFIG_NETLINK_DIAG`, module
/// `netlink_diag`).
pub fn collect() -> Result<HashMap<u32, NetlinkSock>, Errno> {
    super::sock_diag::collect(&request(), parse_msg, |s| s.ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::sock_diag::test_attr as attr;

    #[test]
    fn parses_a_bound_socket_with_groups_above_32() {
        let mut m = vec![AF_NETLINK, 3, 0, 7];
        for v in [1234u32, 0, 0, 99, 0, 0] {
            m.extend_from_slice(&v.to_ne_bytes());
        }
        // Groups 1, 5 and 34: bits 0 and 4 of the first long, bit 33.
        let mut longs = Vec::new();
        let bits: u64 = 1 | (1 << 4) | (1 << 33);
        if size_of::<std::ffi::c_ulong>() == 8 {
            longs.extend_from_slice(&bits.to_ne_bytes());
        } else {
            longs.extend_from_slice(&(bits as u32).to_ne_bytes());
            longs.extend_from_slice(&((bits >> 32) as u32).to_ne_bytes());
        }
        m.extend(attr(NETLINK_DIAG_GROUPS, &longs));
        m.extend(attr(NETLINK_DIAG_FLAGS, &1u32.to_ne_bytes()));
        let s = parse_msg(&m).unwrap();
        assert_eq!((s.ino, s.protocol, s.state, s.portid), (99, 0, 7, 1234));
        assert_eq!(s.groups, [0x11, 0x2]);
        assert_eq!(s.flags, 1);
    }

    #[test]
    fn rejects_short_messages_and_odd_group_bitmaps() {
        assert_eq!(parse_msg(&[AF_NETLINK; DIAG_MSG_LEN - 1]), None);
        let mut m = vec![AF_NETLINK, 3, 0, 7];
        m.extend_from_slice(&[0; 24]);
        m.extend(attr(NETLINK_DIAG_GROUPS, &[1, 2, 3]));
        assert_eq!(parse_msg(&m), None);
    }
}
