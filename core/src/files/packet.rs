//! Packet sockets (CRIU's `PACKETSK` kind, `criu/sk-packet.c`): a
//! `packet_sock_entry` per socket in `files.img` with its type, protocol,
//! the interface it is bound to, its `SOL_PACKET` settings (version,
//! reserve, auxdata, origdev, vnet header, loss, timestamp source, copy
//! threshold), memberships, fanout group and the generic options
//! ([`super::sockopts`]).
//!
//! Dump takes all of that from `NETLINK_SOCK_DIAG`
//! ([`crate::proc::packet_diag`]), which lists every packet socket of the
//! network namespace, and the fanout group with its flags (rollover,
//! defrag, ...) from `PACKET_FANOUT` (CRIU records sock_diag's, without
//! the flags; its restore takes either). A membership added N times is N
//! entries (CRIU refuses one added twice).
//!
//! Refused by name, with the tree left as it was: a socket with a ring
//! (`PACKET_RX_RING`, `PACKET_TX_RING`, which CRIU maps back; not done
//! here yet), packets queued for reading (CRIU drops them) or not sent
//! yet, a fanout group of a BPF program (`PACKET_FANOUT_CBPF`/`EBPF`,
//! whose program cannot be read back), the obsolete `SOCK_PACKET` type,
//! and the options CRIU's image has no place for when they are not the
//! default (`PACKET_QDISC_BYPASS`, `PACKET_IGNORE_OUTGOING`,
//! `PACKET_TX_HAS_OFF`, a vnet header size of other than 10 bytes).
//! The socket's statistics (`PACKET_STATISTICS`, which reading resets)
//! start from zero after a restore, as with CRIU.
//!
//! Restore makes the socket, binds it to its interface, sets the
//! options, adds the memberships, joins the fanout group and sets the
//! generic options.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::table::{FdView, FileTable, FilesError};
use super::{FdCtx, FileError, FileImages, Opener, restore_fail, sockets, sockopts};
use crate::files::sockets::SockError;
use crate::images::pb;
use crate::proc::packet_diag::{self, PacketSock};
use crate::proc::task::FdTarget;
use crate::sys::kconst::{PDI_AUXDATA, PDI_LOSS, PDI_ORIGDEV, PDI_VNETHDR, SOCK_PACKET};
use crate::sys::sockopt::{self as so, SIOCOUTQ};

use linux_raw_sys::{if_packet as pk, net as raw};

const KIND: &str = "a packet socket";
const SOL_PACKET: u32 = raw::SOL_PACKET;
/// `MAX_ADDR_LEN` (linux/netdevice.h): the longest membership address.
const MAX_ADDR_LEN: usize = 32;
/// The vnet header `PACKET_VNET_HDR` turns on (`struct virtio_net_hdr`).
const VNET_HDR_LEN: i32 = 10;

/// Packet sockets dumped so far: sock_diag's list, asked for on the
/// first one.
#[derive(Debug, Default)]
pub struct PacketDump {
    diag: Option<HashMap<u32, PacketSock>>,
}

/// The fanout group of `copy` (`PACKET_FANOUT`: id, type in bits 16-23,
/// flags in 24-31), `None` if it is in none.
fn fanout(copy: &OwnedFd) -> Result<Option<u32>, SockError> {
    let v = so::get_int(copy, SOL_PACKET, pk::PACKET_FANOUT)
        .map_err(SockError::call("PACKET_FANOUT"))? as u32;
    if v == 0 {
        return Ok(None);
    }
    let kind = (v >> 16) & 0xff;
    if kind == pk::PACKET_FANOUT_CBPF || kind == pk::PACKET_FANOUT_EBPF {
        return Err(SockError::Refused(format!(
            "in fanout group {} of a BPF program (PACKET_FANOUT_DATA cannot be read back), \
             which cannot be dumped yet",
            v & 0xffff
        )));
    }
    Ok(Some(v))
}

/// Why `copy` (listed as `sk`) cannot be dumped, if it cannot: the parts
/// CRIU's image does not hold, queued packets.
fn refusal(copy: &OwnedFd, sk: &PacketSock) -> Result<(), SockError> {
    if u32::from(sk.kind) == SOCK_PACKET {
        return Err(SockError::Refused(
            "of the obsolete type SOCK_PACKET, which cannot be dumped yet".into(),
        ));
    }
    if sockets::has_data(copy)? {
        return Err(SockError::Refused(
            "it has packets queued for reading, which cannot be dumped yet (CRIU would drop \
             them)"
                .into(),
        ));
    }
    let unsent = so::ioctl_int(copy, SIOCOUTQ).map_err(SockError::call("SIOCOUTQ"))?;
    if unsent > 0 {
        return Err(SockError::Refused(format!(
            "it has {unsent} bytes not sent yet, which cannot be dumped yet"
        )));
    }
    for (opt, what) in [
        (pk::PACKET_QDISC_BYPASS, "PACKET_QDISC_BYPASS"),
        (pk::PACKET_IGNORE_OUTGOING, "PACKET_IGNORE_OUTGOING"),
        (pk::PACKET_TX_HAS_OFF, "PACKET_TX_HAS_OFF"),
    ] {
        match so::get_int(copy, SOL_PACKET, opt) {
            Ok(0) | Err(rustix::io::Errno::NOPROTOOPT) => {}
            Ok(_) => {
                return Err(SockError::Refused(format!(
                    "it has {what} on, which cannot be dumped yet (CRIU's image has no place \
                     for it)"
                )));
            }
            Err(e) => return Err(SockError::sys(what, e)),
        }
    }
    if sk.flags & PDI_VNETHDR != 0 {
        match so::get_int(copy, SOL_PACKET, pk::PACKET_VNET_HDR_SZ) {
            Ok(VNET_HDR_LEN) | Err(rustix::io::Errno::NOPROTOOPT) => {}
            Ok(n) => {
                return Err(SockError::Refused(format!(
                    "its vnet header is {n} bytes (PACKET_VNET_HDR_SZ), which cannot be dumped \
                     yet (CRIU's image holds only PACKET_VNET_HDR)"
                )));
            }
            Err(e) => return Err(SockError::sys("PACKET_VNET_HDR_SZ", e)),
        }
    }
    Ok(())
}

/// The image's memberships: one entry per time one was added, the
/// address only for those that have one (as CRIU writes them).
fn mclist(sk: &PacketSock) -> Result<Vec<pb::PacketMclist>, SockError> {
    let mut out = Vec::new();
    for m in &sk.mclist {
        let addr = match u32::from(m.kind) {
            pk::PACKET_MR_MULTICAST | pk::PACKET_MR_UNICAST => m.addr.clone(),
            pk::PACKET_MR_PROMISC | pk::PACKET_MR_ALLMULTI => Vec::new(),
            other => {
                return Err(SockError::Refused(format!(
                    "a membership of unknown type {other}"
                )));
            }
        };
        for _ in 0..m.count {
            out.push(pb::PacketMclist {
                index: m.ifindex,
                r#type: u32::from(m.kind),
                addr: addr.clone(),
            });
        }
    }
    Ok(out)
}

/// Dumps `copy` (a copy of `ctx.fd`, inode `ino`) as file `id`.
fn dump(
    ctx: &FdCtx,
    copy: &OwnedFd,
    ino: u64,
    st: &mut super::Dumped,
    id: u32,
) -> Result<pb::FileEntry, FilesError> {
    let e = |w: SockError| ctx.fail(KIND, w);
    let ino = u32::try_from(ino).map_err(|_| e(SockError::Unexpected(format!("inode {ino}"))))?;
    if st.packet.diag.is_none() {
        let all = packet_diag::collect().map_err(|x| {
            e(match x {
                rustix::io::Errno::NOENT => SockError::Refused(
                    "sock_diag does not list packet sockets here (no af_packet_diag module)".into(),
                ),
                x => SockError::sys("sock_diag", x),
            })
        })?;
        st.packet.diag = Some(all);
    }
    let Some(sk) = st.packet.diag.as_ref().and_then(|d| d.get(&ino)).cloned() else {
        return Err(e(SockError::Refused(
            "not in sock_diag's list (in another network namespace?)".into(),
        ))
        .into());
    };
    for (ring, name) in [(sk.rx_ring, "an RX ring"), (sk.tx_ring, "a TX ring")] {
        if ring.is_some() {
            return Err(FilesError::Unsupported {
                pid: ctx.pid,
                fd: ctx.fd,
                what: format!("a packet socket with {name}"),
            });
        }
    }
    refusal(copy, &sk).map_err(e)?;
    let fanout = fanout(copy).map_err(e)?;
    let entry = pb::PacketSockEntry {
        id,
        r#type: u32::from(sk.kind),
        // socket(2)'s protocol argument: the ETH_P_* value in network
        // order, read as a number (CRIU's `htons(pdiag_num)`).
        protocol: u32::from(sk.num.to_be()),
        flags: ctx.flags,
        ifindex: sk.ifindex,
        fown: pb::FownEntry::default(),
        opts: sockopts::dump(copy, AddressFamily::PACKET).map_err(e)?,
        version: sk.version,
        reserve: sk.reserve,
        aux_data: sk.flags & PDI_AUXDATA != 0,
        orig_dev: sk.flags & PDI_ORIGDEV != 0,
        vnet_hdr: sk.flags & PDI_VNETHDR != 0,
        loss: sk.flags & PDI_LOSS != 0,
        timestamp: sk.tstamp,
        copy_thresh: sk.copy_thresh,
        mclist: mclist(&sk).map_err(e)?,
        fanout,
        rx_ring: None,
        tx_ring: None,
        ns_id: Some(super::unix::NET_NS_ID),
    };
    Ok(pb::FileEntry {
        r#type: pb::FdTypes::Packetsk as i32,
        id,
        psk: Some(entry),
        ..Default::default()
    })
}

/// The packet socket entries of the images, by file id.
fn entries(img: &FileImages) -> impl Iterator<Item = (u32, &pb::PacketSockEntry)> {
    img.entries
        .values()
        .filter_map(|e| e.psk.as_ref().map(|p| (e.id, p)))
}

/// What can be checked before anything is created: type, protocol,
/// interface, memberships; rings are refused.
pub(super) fn check(img: &FileImages) -> Result<(), FileError> {
    for (id, p) in entries(img) {
        let err = |what: SockError| restore_fail(id, KIND, what);
        if p.r#type != raw::SOCK_RAW && p.r#type != raw::SOCK_DGRAM {
            return Err(err(SockError::Refused(format!(
                "of {}, which cannot be restored yet",
                sockets::type_name(p.r#type)
            ))));
        }
        if p.protocol > 0xffff {
            return Err(err(SockError::Refused(format!(
                "protocol {:#x}",
                p.protocol
            ))));
        }
        if i32::try_from(p.ifindex).is_err() {
            return Err(err(SockError::Refused(format!(
                "interface index {}",
                p.ifindex
            ))));
        }
        for (ring, name) in [(&p.rx_ring, "an RX ring"), (&p.tx_ring, "a TX ring")] {
            if ring.is_some() {
                return Err(err(SockError::Refused(format!(
                    "with {name}, which cannot be restored yet"
                ))));
            }
        }
        if let Some(m) = p.mclist.iter().find(|m| m.addr.len() > MAX_ADDR_LEN) {
            return Err(err(SockError::Refused(format!(
                "a membership address of {} bytes",
                m.addr.len()
            ))));
        }
        if p.mclist.len() > 4096 {
            return Err(err(SockError::Refused(format!(
                "{} memberships",
                p.mclist.len()
            ))));
        }
    }
    Ok(())
}

fn set(fd: &OwnedFd, name: u32, what: &str, v: u32) -> Result<(), SockError> {
    so::set_int(fd, SOL_PACKET, name, v as i32)
        .map_err(|e| SockError::sys(format!("setting {what} to {v}"), e))
}

/// A new socket as entry `p` describes it.
fn open(p: &pb::PacketSockEntry) -> Result<OwnedFd, SockError> {
    let proto = std::num::NonZeroU32::new(p.protocol).map(rustix::net::Protocol::from_raw);
    let fd = rustix::net::socket_with(
        AddressFamily::PACKET,
        SocketType::from_raw(p.r#type),
        SocketFlags::CLOEXEC,
        proto,
    )
    .map_err(SockError::call("socket"))?;
    so::bind_packet(&fd, 0, p.ifindex as i32)
        .map_err(|e| SockError::sys(format!("bind to interface {}", p.ifindex), e))?;
    if p.version != 0 {
        set(&fd, pk::PACKET_VERSION, "PACKET_VERSION", p.version)?;
    }
    if p.reserve != 0 {
        set(&fd, pk::PACKET_RESERVE, "PACKET_RESERVE", p.reserve)?;
    }
    if p.timestamp != 0 {
        set(&fd, pk::PACKET_TIMESTAMP, "PACKET_TIMESTAMP", p.timestamp)?;
    }
    if p.copy_thresh != 0 {
        set(
            &fd,
            pk::PACKET_COPY_THRESH,
            "PACKET_COPY_THRESH",
            p.copy_thresh,
        )?;
    }
    for (on, name, what) in [
        (p.aux_data, pk::PACKET_AUXDATA, "PACKET_AUXDATA"),
        (p.orig_dev, pk::PACKET_ORIGDEV, "PACKET_ORIGDEV"),
        (p.vnet_hdr, pk::PACKET_VNET_HDR, "PACKET_VNET_HDR"),
        (p.loss, pk::PACKET_LOSS, "PACKET_LOSS"),
    ] {
        if on {
            set(&fd, name, what, 1)?;
        }
    }
    // The kernel lists the newest membership first: added oldest first,
    // they come back in the order they were.
    for m in p.mclist.iter().rev() {
        let kind = u16::try_from(m.r#type)
            .map_err(|_| SockError::BadEntry(format!("membership type {}", m.r#type)))?;
        let mreq = so::packet_mreq(m.index as i32, kind, &m.addr);
        so::set_bytes(&fd, SOL_PACKET, pk::PACKET_ADD_MEMBERSHIP, &mreq).map_err(|e| {
            SockError::sys(
                format!(
                    "PACKET_ADD_MEMBERSHIP of type {} on interface {}",
                    m.r#type, m.index
                ),
                e,
            )
        })?;
    }
    if let Some(f) = p.fanout.filter(|&f| f != u32::MAX) {
        set(&fd, pk::PACKET_FANOUT, "PACKET_FANOUT", f)?;
    }
    sockopts::restore(&fd, AddressFamily::PACKET, &p.opts)?;
    super::set_status_flags(&fd, p.flags)?;
    Ok(fd)
}

/// The `PACKETSK` kind: `socket:[INO]` fds of address family `AF_PACKET`.
pub struct Packet;

impl super::kind::FileKind for Packet {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Packetsk
    }

    fn claims(&self, fd: &FdView<'_>) -> bool {
        matches!(fd.target, FdTarget::Socket(_))
            && fd.family == Some(AddressFamily::PACKET.as_raw())
    }

    fn dump(&self, files: &mut FileTable, v: &FdView<'_>) -> Result<u32, FilesError> {
        let FdTarget::Socket(ino) = v.target else {
            return Err(v.unsupported());
        };
        let copy = v.ctx.steal("a socket")?;
        let id = files.next_id();
        let entry = dump(&v.ctx, &copy, *ino, &mut files.kinds, id)?;
        files.entries.push(entry);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &FileImages) -> Option<(pb::FownEntry, u32)> {
        e.psk.as_ref().map(|x| (x.fown, x.flags))
    }

    fn open(&self, _: &mut Opener<'_>, e: &pb::FileEntry) -> Result<OwnedFd, FileError> {
        let p = e
            .psk
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, KIND))?;
        open(p).map_err(|w| restore_fail(e.id, KIND, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::packet_diag::Membership;

    fn checked(p: pb::PacketSockEntry) -> Result<(), FileError> {
        let mut img = FileImages::default();
        img.entries.insert(
            p.id,
            pb::FileEntry {
                r#type: pb::FdTypes::Packetsk as i32,
                id: p.id,
                psk: Some(p),
                ..Default::default()
            },
        );
        check(&img)
    }

    #[test]
    fn rings_and_damaged_entries_are_refused_before_anything_is_made() {
        let good = pb::PacketSockEntry {
            id: 4,
            r#type: raw::SOCK_RAW,
            protocol: 0x0008,
            ifindex: 1,
            ..Default::default()
        };
        checked(good.clone()).unwrap();
        let ring = pb::PacketRing::default();
        let e = checked(pb::PacketSockEntry {
            rx_ring: Some(ring),
            ..good.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("with an RX ring, which cannot be restored yet"),
            "{e}"
        );
        let e = checked(pb::PacketSockEntry {
            r#type: SOCK_PACKET,
            ..good.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("of type 10, which cannot be restored yet"),
            "{e}"
        );
        let e = checked(pb::PacketSockEntry {
            protocol: 0x10000,
            ..good.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("protocol 0x10000"), "{e}");
        let big = pb::PacketMclist {
            index: 1,
            r#type: 0,
            addr: vec![0; 33],
        };
        let e = checked(pb::PacketSockEntry {
            mclist: vec![big],
            ..good
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("a membership address of 33 bytes"), "{e}");
    }

    #[test]
    fn memberships_repeat_by_count_and_keep_addresses_criu_s_way() {
        let sk = PacketSock {
            mclist: vec![
                Membership {
                    ifindex: 1,
                    count: 2,
                    kind: pk::PACKET_MR_MULTICAST as u16,
                    addr: vec![1, 0, 0x5e, 0, 0, 1],
                },
                Membership {
                    ifindex: 1,
                    count: 1,
                    kind: pk::PACKET_MR_PROMISC as u16,
                    addr: vec![0; 6],
                },
            ],
            ..PacketSock::default()
        };
        let l = mclist(&sk).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].addr, [1, 0, 0x5e, 0, 0, 1]);
        assert!(
            l[2].addr.is_empty(),
            "a promiscuous membership has no address"
        );
        let bad = PacketSock {
            mclist: vec![Membership {
                kind: 9,
                count: 1,
                ..Membership::default()
            }],
            ..PacketSock::default()
        };
        assert!(
            mclist(&bad)
                .unwrap_err()
                .to_string()
                .contains("unknown type 9")
        );
    }
}
