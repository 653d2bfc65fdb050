//! Netlink sockets (CRIU's `NETLINKSK` kind, `criu/sk-netlink.c`): a
//! `netlink_sk_entry` per socket in `files.img` with its protocol, state,
//! port id, multicast groups, peer (port id and group) and the generic
//! options ([`super::sockopts`]).
//!
//! Dump takes port id, groups, state and peer from `NETLINK_SOCK_DIAG`
//! ([`crate::proc::netlink_diag`]); a socket it does not list was never
//! bound (nor connected, which binds) and is recorded as such, once
//! `SIOCGSKNS` showed it is of our network namespace. The groups are the
//! kernel's bitmap in 32-bit words, lowest first, trailing empty words
//! dropped as CRIU drops its last one (CRIU itself refuses a socket in a
//! group above 32, and restores none; here they come back through
//! `NETLINK_ADD_MEMBERSHIP`). A port id the kernel chose (autobind: the
//! task's PID, or a negative number once that is taken) is recorded as
//! any other and bound explicitly on restore.
//!
//! Refused by name, with the tree left as it was: a socket with messages
//! queued for reading (as CRIU refuses it: "The socket has data to
//! read"), one whose dump request is still being answered, a
//! `SOCK_DGRAM` netlink socket and one with a `SOL_NETLINK` flag on
//! (`NETLINK_PKTINFO`, `NETLINK_EXT_ACK`, ...): CRIU's image has no place
//! for the type or those flags, and CRIU restores every netlink socket as
//! a `SOCK_RAW` one without them.
//!
//! Restore makes the socket, binds it to its port id and the first 32
//! groups, joins the groups above those, connects it to its peer and
//! sets its options. A port id taken since the dump fails the restore by
//! name (CRIU binds another port then, which a program matching its
//! answers' port ids would not see).

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketFlags, SocketType, netlink::SocketAddrNetlink};

use super::table::{FdView, FileTable, FilesError};
use super::{FdCtx, FileError, FileImages, Opener, restore_fail, sockets, sockopts};
use crate::files::sockets::SockError;
use crate::images::pb;
use crate::proc::netlink_diag::{self, NetlinkSock};
use crate::proc::task::FdTarget;
use crate::sys::kconst::NDIAG_FLAG_CB_RUNNING;
use crate::sys::sockopt::{self as so, SOL_SOCKET};

use linux_raw_sys::{net as raw, netlink as nl};

const KIND: &str = "a netlink socket";

/// `NETLINK_CONNECTED` (linux/netlink.h), the state of a connected socket.
const CONNECTED: u32 = nl::NETLINK_CONNECTED as u32;

/// The `SOL_NETLINK` flags a socket may have on, none of which CRIU's
/// image holds.
const FLAGS: [(u32, &str); 7] = [
    (nl::NETLINK_PKTINFO, "NETLINK_PKTINFO"),
    (nl::NETLINK_BROADCAST_ERROR, "NETLINK_BROADCAST_ERROR"),
    (nl::NETLINK_NO_ENOBUFS, "NETLINK_NO_ENOBUFS"),
    (nl::NETLINK_LISTEN_ALL_NSID, "NETLINK_LISTEN_ALL_NSID"),
    (nl::NETLINK_CAP_ACK, "NETLINK_CAP_ACK"),
    (nl::NETLINK_EXT_ACK, "NETLINK_EXT_ACK"),
    (nl::NETLINK_GET_STRICT_CHK, "NETLINK_GET_STRICT_CHK"),
];

/// Netlink sockets dumped so far: sock_diag's list, asked for on the
/// first one.
#[derive(Debug, Default)]
pub struct NetlinkDump {
    diag: Option<HashMap<u32, NetlinkSock>>,
}

/// The image's groups: the kernel's words without the empty ones at the
/// end (CRIU drops one empty word, which leaves `[0]` for a socket that
/// joined groups and left them: so does this).
fn image_groups(mut words: Vec<u32>) -> Vec<u32> {
    if words.last() == Some(&0) {
        words.pop();
    }
    while words.len() > 1 && words.last() == Some(&0) {
        words.pop();
    }
    words
}

/// Why socket `copy` (of `name`) cannot be dumped, if it cannot.
fn refusal(copy: &OwnedFd, name: &str, listed: Option<&NetlinkSock>) -> Result<(), SockError> {
    let ty = so::get_int(copy, SOL_SOCKET, raw::SO_TYPE).map_err(SockError::call("SO_TYPE"))?;
    if ty as u32 != raw::SOCK_RAW {
        return Err(SockError::Refused(format!(
            "{name} of type {}, which cannot be dumped yet (CRIU's image has no place for the \
             type: CRIU restores every netlink socket as SOCK_RAW)",
            sockets::type_name(ty as u32)
        )));
    }
    if sockets::has_data(copy)? {
        return Err(SockError::Refused(format!(
            "{name} has messages queued for reading, which cannot be dumped yet (CRIU refuses \
             it too: The socket has data to read)"
        )));
    }
    if listed.is_some_and(|s| s.flags & NDIAG_FLAG_CB_RUNNING != 0) {
        return Err(SockError::Refused(format!(
            "{name} is in the middle of a dump it asked the kernel for (the rest of the answer \
             is not queued yet), which cannot be dumped yet"
        )));
    }
    for (opt, what) in FLAGS {
        match so::get_int(copy, raw::SOL_NETLINK, opt) {
            Ok(0) | Err(rustix::io::Errno::NOPROTOOPT) => {}
            Ok(_) => {
                return Err(SockError::Refused(format!(
                    "{name} has {what} on, which cannot be dumped yet (CRIU's image has no \
                     place for it)"
                )));
            }
            Err(e) => return Err(SockError::sys(what, e)),
        }
    }
    Ok(())
}

/// Dumps `copy` (a copy of `ctx.fd`, inode `ino`) as file `id`.
fn dump(
    ctx: &FdCtx,
    copy: &OwnedFd,
    ino: u64,
    st: &mut super::Dumped,
    id: u32,
) -> Result<pb::FileEntry, FileError> {
    let e = |w: SockError| ctx.fail(KIND, w);
    let ino = u32::try_from(ino).map_err(|_| e(SockError::Unexpected(format!("inode {ino}"))))?;
    let proto = so::get_int(copy, SOL_SOCKET, raw::SO_PROTOCOL)
        .map_err(|x| e(SockError::sys("SO_PROTOCOL", x)))? as u32;
    let name = sockets::netlink_name(proto);
    if st.netlink.diag.is_none() {
        let all = netlink_diag::collect().map_err(|x| {
            e(match x {
                rustix::io::Errno::NOENT => SockError::Refused(
                    "sock_diag does not list netlink sockets here (no netlink_diag module)".into(),
                ),
                x => SockError::sys("sock_diag", x),
            })
        })?;
        st.netlink.diag = Some(all);
    }
    let listed = st.netlink.diag.as_ref().and_then(|d| d.get(&ino)).cloned();
    refusal(copy, &name, listed.as_ref()).map_err(e)?;
    if listed.is_none() && !sockets::in_our_netns(copy).map_err(e)? {
        return Err(e(SockError::Refused(format!(
            "{name} of another network namespace, which cannot be dumped yet"
        ))));
    }
    let opts = sockopts::dump(copy, AddressFamily::NETLINK).map_err(e)?;
    let sk = listed.clone().unwrap_or_default();
    let entry = pb::NetlinkSkEntry {
        id,
        ino,
        protocol: proto,
        state: u32::from(sk.state),
        flags: ctx.flags,
        portid: sk.portid,
        groups: image_groups(sk.groups),
        dst_portid: sk.dst_portid,
        dst_group: sk.dst_group,
        fown: pb::FownEntry::default(),
        opts,
        ns_id: listed.is_some().then_some(super::unix::NET_NS_ID),
    };
    Ok(pb::FileEntry {
        r#type: pb::FdTypes::Netlinksk as i32,
        id,
        nlsk: Some(entry),
        ..Default::default()
    })
}

/// The netlink socket entries of the images, by file id.
fn entries(img: &FileImages) -> impl Iterator<Item = (u32, &pb::NetlinkSkEntry)> {
    img.entries
        .values()
        .filter_map(|e| e.nlsk.as_ref().map(|n| (e.id, n)))
}

/// What can be checked before anything is created: protocol, state, the
/// group it sends to, the number of groups.
pub(super) fn check(img: &FileImages) -> Result<(), FileError> {
    for (id, n) in entries(img) {
        let err = |what: SockError| restore_fail(id, KIND, what);
        if n.protocol >= 32 {
            return Err(err(SockError::BadEntry(format!("protocol {}", n.protocol))));
        }
        if ![0, CONNECTED, u32::from(crate::sys::kconst::TCP_CLOSE)].contains(&n.state) {
            return Err(err(SockError::BadEntry(format!("state {}", n.state))));
        }
        if n.dst_group > 32 {
            return Err(err(SockError::Refused(format!(
                "sends to group {}, above 32",
                n.dst_group
            ))));
        }
        if n.groups.len() > 1024 {
            return Err(err(SockError::Refused(format!(
                "{} words of groups",
                n.groups.len()
            ))));
        }
    }
    Ok(())
}

/// The groups set in `words`, group `n` for bit `(n - 1) % 32` of word
/// `(n - 1) / 32`, from word `from` on.
fn groups_from(words: &[u32], from: usize) -> impl Iterator<Item = u32> + '_ {
    words.iter().enumerate().skip(from).flat_map(|(w, &bits)| {
        (0..32)
            .filter(move |b| bits & (1 << b) != 0)
            .map(move |b| w as u32 * 32 + b + 1)
    })
}

/// A new socket as entry `n` describes it.
fn open(n: &pb::NetlinkSkEntry) -> Result<OwnedFd, SockError> {
    let name = sockets::netlink_name(n.protocol);
    let proto = std::num::NonZeroU32::new(n.protocol).map(rustix::net::Protocol::from_raw);
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        proto,
    )
    .map_err(|e| SockError::sys(format!("socket({name})"), e))?;
    let first = n.groups.first().copied().unwrap_or(0);
    let mut joined_from = 0;
    if n.portid != 0 {
        let at = SocketAddrNetlink::new(n.portid, first);
        rustix::net::bind(&fd, &at).map_err(|e| match e {
            rustix::io::Errno::ADDRINUSE => SockError::Refused(format!(
                "port id {} of {name} is taken by another socket since the dump (CRIU would \
                 bind another one)",
                n.portid
            )),
            e => SockError::sys(
                format!("bind to port id {} and groups {first:#x}", n.portid),
                e,
            ),
        })?;
        joined_from = 1;
    }
    for g in groups_from(&n.groups, joined_from) {
        so::set_int(&fd, raw::SOL_NETLINK, nl::NETLINK_ADD_MEMBERSHIP, g as i32)
            .map_err(|e| SockError::sys(format!("NETLINK_ADD_MEMBERSHIP {g}"), e))?;
    }
    if n.state == CONNECTED {
        let mask = match n.dst_group {
            0 => 0,
            g => 1u32 << (g - 1),
        };
        let to = SocketAddrNetlink::new(n.dst_portid, mask);
        rustix::net::connect(&fd, &to).map_err(|e| {
            SockError::sys(
                format!(
                    "connect to port id {} and group {}",
                    n.dst_portid, n.dst_group
                ),
                e,
            )
        })?;
    }
    sockopts::restore(&fd, AddressFamily::NETLINK, &n.opts)?;
    super::set_status_flags(&fd, n.flags)?;
    Ok(fd)
}

/// The `NETLINKSK` kind: `socket:[INO]` fds of address family
/// `AF_NETLINK`.
pub struct Netlink;

impl super::kind::FileKind for Netlink {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Netlinksk
    }

    fn claims(&self, fd: &FdView<'_>) -> bool {
        matches!(fd.target, FdTarget::Socket(_))
            && fd.family == Some(AddressFamily::NETLINK.as_raw())
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
        e.nlsk.as_ref().map(|x| (x.fown, x.flags))
    }

    fn open(&self, _: &mut Opener<'_>, e: &pb::FileEntry) -> Result<OwnedFd, FileError> {
        let n = e
            .nlsk
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, KIND))?;
        open(n).map_err(|w| restore_fail(e.id, KIND, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_criu_s_words() {
        assert_eq!(image_groups(vec![0x11, 0]), [0x11]);
        assert_eq!(image_groups(vec![0, 0]), [0]);
        assert_eq!(image_groups(vec![1, 0, 0, 0]), [1]);
        assert_eq!(image_groups(vec![1, 2, 0, 0]), [1, 2]);
        assert!(image_groups(Vec::new()).is_empty());
    }

    fn checked(n: pb::NetlinkSkEntry) -> Result<(), FileError> {
        let mut img = FileImages::default();
        img.entries.insert(
            n.id,
            pb::FileEntry {
                r#type: pb::FdTypes::Netlinksk as i32,
                id: n.id,
                nlsk: Some(n),
                ..Default::default()
            },
        );
        check(&img)
    }

    #[test]
    fn damaged_entries_are_refused_before_anything_is_made() {
        let good = pb::NetlinkSkEntry {
            id: 3,
            state: CONNECTED,
            portid: 77,
            dst_group: 32,
            groups: vec![0x11],
            ..Default::default()
        };
        checked(good.clone()).unwrap();
        let e = checked(pb::NetlinkSkEntry {
            dst_group: 33,
            ..good.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("sends to group 33, above 32"), "{e}");
        let e = checked(pb::NetlinkSkEntry {
            protocol: 40,
            ..good.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("protocol 40"), "{e}");
        let e = checked(pb::NetlinkSkEntry {
            state: 5,
            ..good.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("state 5"), "{e}");
        let e = checked(pb::NetlinkSkEntry {
            groups: vec![0; 5000],
            ..good
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("5000 words of groups"), "{e}");
    }

    #[test]
    fn group_numbers_come_from_their_bits() {
        let g: Vec<u32> = groups_from(&[0x11, 0x2], 0).collect();
        assert_eq!(g, [1, 5, 34]);
        let above: Vec<u32> = groups_from(&[0x11, 0x2], 1).collect();
        assert_eq!(above, [34]);
    }
}
