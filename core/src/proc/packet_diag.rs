//! Every packet socket (`AF_PACKET`) of the network namespace, as
//! `NETLINK_SOCK_DIAG` lists it (`<linux/packet_diag.h>`): inode, type,
//! protocol, the interface it is bound to, its `SOL_PACKET` settings
//! (version, reserve, copy threshold, timestamp source, auxdata, origdev,
//! vnet header, loss), its memberships, rings and fanout group. Dump
//! reads it once and looks sockets up by inode.
//!
//! rust-netlink's `netlink-packet-sock-diag` knows only the inet and unix
//! families, so the messages are made and read here as for those.

use std::collections::HashMap;

use rustix::io::Errno;

use super::sock_diag::{attrs, u16_at, u32_at};
use crate::sys::kconst::{
    AF_PACKET, PACKET_DIAG_FANOUT, PACKET_DIAG_INFO, PACKET_DIAG_MCLIST, PACKET_DIAG_RX_RING,
    PACKET_DIAG_TX_RING, PACKET_SHOW_FANOUT, PACKET_SHOW_INFO, PACKET_SHOW_MCLIST,
    PACKET_SHOW_RING_CFG,
};

/// Size of `struct packet_diag_msg`: family, type, num (protocol), ino,
/// cookie[2].
const DIAG_MSG_LEN: usize = 16;
/// Size of `struct packet_diag_info`: index, version, reserve,
/// copy_thresh, tstamp, flags.
const INFO_LEN: usize = 24;
/// Size of `struct packet_diag_mclist`: index, count, type, alen and a
/// `MAX_ADDR_LEN` (32) address.
const MCLIST_LEN: usize = 44;
/// Size of `struct packet_diag_ring`: seven `u32`s.
const RING_LEN: usize = 28;

/// One membership (`PACKET_ADD_MEMBERSHIP`), added `count` times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub ifindex: u32,
    pub count: u32,
    /// `PACKET_MR_MULTICAST`, `_PROMISC`, `_ALLMULTI`, `_UNICAST`.
    pub kind: u16,
    pub addr: Vec<u8>,
}

/// A ring (`PACKET_RX_RING`, `PACKET_TX_RING`) as `tpacket_req3` set it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
    pub retire_tmo: u32,
    pub sizeof_priv: u32,
    pub features: u32,
}

/// One packet socket as the kernel describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketSock {
    pub ino: u32,
    /// `SOCK_RAW`, `SOCK_DGRAM` or `SOCK_PACKET`.
    pub kind: u8,
    /// The protocol it receives (an `ETH_P_*` value, host order).
    pub num: u16,
    /// The interface it is bound to (0: every one).
    pub ifindex: u32,
    pub version: u32,
    pub reserve: u32,
    pub copy_thresh: u32,
    pub tstamp: u32,
    /// `PDI_*`.
    pub flags: u32,
    pub mclist: Vec<Membership>,
    pub rx_ring: Option<Ring>,
    pub tx_ring: Option<Ring>,
    /// The fanout group: its id, and its type in bits 16 and up.
    pub fanout: Option<u32>,
}

fn request() -> Vec<u8> {
    let mut body = vec![AF_PACKET, 0, 0, 0];
    body.extend_from_slice(&0u32.to_ne_bytes()); // any inode
    let show = PACKET_SHOW_INFO | PACKET_SHOW_MCLIST | PACKET_SHOW_RING_CFG | PACKET_SHOW_FANOUT;
    body.extend_from_slice(&show.to_ne_bytes());
    body.extend_from_slice(&[0xff; 8]); // no cookie
    super::sock_diag::request(&body)
}

fn ring(d: &[u8]) -> Option<Ring> {
    if d.len() < RING_LEN {
        return None;
    }
    let w = |i: usize| u32_at(d, 4 * i);
    Some(Ring {
        block_size: w(0)?,
        block_nr: w(1)?,
        frame_size: w(2)?,
        frame_nr: w(3)?,
        retire_tmo: w(4)?,
        sizeof_priv: w(5)?,
        features: w(6)?,
    })
}

fn membership(d: &[u8]) -> Option<Membership> {
    let alen = usize::from(u16_at(d, 10)?);
    Some(Membership {
        ifindex: u32_at(d, 0)?,
        count: u32_at(d, 4)?,
        kind: u16_at(d, 8)?,
        addr: d.get(12..12 + alen)?.to_vec(),
    })
}

/// Parses the body of one `packet_diag_msg` (after the netlink header).
/// The info attribute must be there (it was asked for).
pub fn parse_msg(b: &[u8]) -> Option<PacketSock> {
    if b.len() < DIAG_MSG_LEN || b[0] != AF_PACKET {
        return None;
    }
    let mut s = PacketSock {
        kind: b[1],
        num: u16_at(b, 2)?,
        ino: u32_at(b, 4)?,
        ..PacketSock::default()
    };
    let mut info = false;
    for (kind, d) in attrs(b, DIAG_MSG_LEN)? {
        match kind {
            PACKET_DIAG_INFO if d.len() >= INFO_LEN => {
                info = true;
                s.ifindex = u32_at(d, 0)?;
                s.version = u32_at(d, 4)?;
                s.reserve = u32_at(d, 8)?;
                s.copy_thresh = u32_at(d, 12)?;
                s.tstamp = u32_at(d, 16)?;
                s.flags = u32_at(d, 20)?;
            }
            PACKET_DIAG_MCLIST if d.len().is_multiple_of(MCLIST_LEN) => {
                s.mclist = d
                    .chunks_exact(MCLIST_LEN)
                    .map(membership)
                    .collect::<Option<_>>()?;
            }
            PACKET_DIAG_RX_RING => s.rx_ring = Some(ring(d)?),
            PACKET_DIAG_TX_RING => s.tx_ring = Some(ring(d)?),
            PACKET_DIAG_FANOUT => s.fanout = Some(u32_at(d, 0)?),
            PACKET_DIAG_INFO | PACKET_DIAG_MCLIST => return None,
            _ => {}
        }
    }
    info.then_some(s)
}

/// Lists every packet socket of our network namespace, by inode.
/// `ENOENT`: the kernel has no packet_diag (`CONFIG_PACKET_DIAG`, module
/// `af_packet_diag`).
pub fn collect() -> Result<HashMap<u32, PacketSock>, Errno> {
    super::sock_diag::collect(&request(), parse_msg, |s| s.ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::sock_diag::test_attr as attr;

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }

    fn head() -> Vec<u8> {
        let mut m = vec![AF_PACKET, 3];
        m.extend_from_slice(&0x88b5u16.to_ne_bytes());
        m.extend_from_slice(&4321u32.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m
    }

    #[test]
    fn parses_info_memberships_rings_and_fanout() {
        let mut m = head();
        m.extend(attr(PACKET_DIAG_INFO, &words(&[1, 1, 64, 0, 0, 0x2])));
        let mut mc = words(&[1, 2]);
        mc.extend_from_slice(&0u16.to_ne_bytes());
        mc.extend_from_slice(&6u16.to_ne_bytes());
        mc.extend_from_slice(&[1, 0, 0x5e, 0, 0, 1]);
        mc.resize(MCLIST_LEN, 0);
        m.extend(attr(PACKET_DIAG_MCLIST, &mc));
        m.extend(attr(
            PACKET_DIAG_RX_RING,
            &words(&[4096, 4, 2048, 8, 0, 0, 0]),
        ));
        m.extend(attr(PACKET_DIAG_FANOUT, &words(&[7 | 3 << 16])));
        let s = parse_msg(&m).unwrap();
        assert_eq!((s.ino, s.kind, s.num, s.ifindex), (4321, 3, 0x88b5, 1));
        assert_eq!((s.version, s.reserve, s.flags), (1, 64, 2));
        assert_eq!(
            s.mclist,
            [Membership {
                ifindex: 1,
                count: 2,
                kind: 0,
                addr: vec![1, 0, 0x5e, 0, 0, 1]
            }]
        );
        assert_eq!(s.rx_ring.map(|r| (r.block_nr, r.frame_nr)), Some((4, 8)));
        assert_eq!(s.tx_ring, None);
        assert_eq!(s.fanout, Some(7 | 3 << 16));
    }

    #[test]
    fn rejects_a_message_without_info_or_with_a_bad_mclist() {
        assert_eq!(parse_msg(&head()), None);
        let mut m = head();
        m.extend(attr(PACKET_DIAG_INFO, &words(&[1, 0, 0, 0, 0, 0])));
        m.extend(attr(PACKET_DIAG_MCLIST, &[0; MCLIST_LEN - 4]));
        assert_eq!(parse_msg(&m), None);
        let mut m = head();
        let mut mc = words(&[1, 1]);
        mc.extend_from_slice(&0u16.to_ne_bytes());
        mc.extend_from_slice(&40u16.to_ne_bytes()); // alen beyond the address
        mc.resize(MCLIST_LEN, 0);
        m.extend(attr(PACKET_DIAG_INFO, &words(&[1, 0, 0, 0, 0, 0])));
        m.extend(attr(PACKET_DIAG_MCLIST, &mc));
        assert_eq!(parse_msg(&m), None);
    }
}
