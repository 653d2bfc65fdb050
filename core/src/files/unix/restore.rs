//! The restore half of [`super`]: every socket of the images is
//! created at once, in an order that lets connections be made as they
//! were (see [`build`]).

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use rustix::io::Errno;

use super::names::Names;
use super::{
    SOCK_DGRAM, STATE_ESTABLISHED, STATE_LISTEN, USK_EXTERN, printable, send_flags, shutdown_how,
    socket,
};
use crate::files::sockets::SockError;
use crate::files::{FileError, FileImages, restore_err, restore_fail};
use crate::images::pb;

const KIND: &str = "a unix socket";

/// The socket of file `id`: every unix socket of the images is made on the
/// first call (pairs and listeners need each other), then handed out.
pub(super) fn open(
    o: &mut crate::files::Opener<'_>,
    id: u32,
) -> Result<std::os::fd::OwnedFd, FileError> {
    if o.unix.is_none() {
        o.unix = Some(build(o.img, o.ext_unix_sk)?);
    }
    o.unix
        .as_mut()
        .and_then(|m| m.remove(&id))
        .ok_or_else(|| restore_err(id, KIND, "opened twice, or an outside socket"))
}

/// How one socket comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// bind + listen.
    Listener,
    /// Connected to the listener (inode) and accepted by it; the other
    /// side is `Accepted`.
    Client {
        listener: u32,
        peer_id: u32,
    },
    /// Made by `accept` for a `Client`.
    Accepted,
    /// Connected to the listener (inode), not accepted yet.
    Pending {
        listener: u32,
    },
    /// One side of a socketpair (the other side is `PairB`).
    PairA {
        peer_id: u32,
    },
    PairB,
    /// Bound if named, then connected to the named socket (inode) —
    /// a datagram socket sending to another, or a socket of the dump
    /// connected to one outside it.
    ConnectTo {
        peer: u32,
    },
    /// Bound if named, nothing else.
    Alone,
    /// A connected stream or seqpacket socket whose peer was closed: one
    /// side of a socketpair whose other side sends the queued data and is
    /// closed (reads give the data, then end of file).
    Orphan,
}

fn listener_named<'a>(
    by_ino: &HashMap<u32, &'a pb::UnixSkEntry>,
    u: &pb::UnixSkEntry,
) -> Option<&'a pb::UnixSkEntry> {
    if u.name.is_empty() {
        return None;
    }
    by_ino.values().copied().find(|l| {
        l.uflags & USK_EXTERN == 0
            && l.state == STATE_LISTEN
            && l.r#type == u.r#type
            && l.name == u.name
    })
}

fn roles(img: &FileImages, ext: bool) -> Result<HashMap<u32, Role>, FileError> {
    let by_ino: HashMap<u32, &pb::UnixSkEntry> = img.unix.values().map(|u| (u.ino, u)).collect();
    let mut roles = HashMap::new();
    for (&id, u) in &img.unix {
        if u.uflags & USK_EXTERN != 0 {
            continue;
        }
        let err = |what: SockError| restore_fail(id, KIND, what);
        let peer = by_ino.get(&u.peer).copied();
        let role = if u.state == STATE_LISTEN {
            Role::Listener
        } else if u.peer == 0 {
            if u.state == STATE_ESTABLISHED && u.r#type != SOCK_DGRAM {
                Role::Orphan
            } else {
                Role::Alone
            }
        } else {
            let Some(p) = peer else {
                return Err(err(SockError::Refused(format!(
                    "its peer (socket {}) is in no image; dumped with --ext-unix-sk?",
                    u.peer
                ))));
            };
            if p.uflags & USK_EXTERN != 0 {
                if !ext {
                    return Err(err(SockError::Refused(format!(
                        "connected to socket {} ({}) outside the dump: restore with \
                         --ext-unix-sk",
                        p.ino,
                        printable(&p.name)
                    ))));
                }
                Role::ConnectTo { peer: p.ino }
            } else if p.state == STATE_LISTEN {
                Role::Pending { listener: p.ino }
            } else if p.peer == u.ino && u.state == STATE_ESTABLISHED {
                if listener_named(&by_ino, u).is_some() {
                    // Our name is a listener's: we were accepted by it.
                    Role::Accepted
                } else if let Some(l) = listener_named(&by_ino, p) {
                    Role::Client {
                        listener: l.ino,
                        peer_id: p.id,
                    }
                } else if u.ino < p.ino {
                    Role::PairA { peer_id: p.id }
                } else {
                    Role::PairB
                }
            } else if !p.name.is_empty() {
                Role::ConnectTo { peer: p.ino }
            } else {
                return Err(err(SockError::Refused(format!(
                    "connected to the unnamed socket {}, which cannot be connected to again",
                    p.ino
                ))));
            }
        };
        roles.insert(id, role);
    }
    Ok(roles)
}

fn connect(fd: &OwnedFd, to: &pb::UnixSkEntry, names: &Names) -> Result<(), SockError> {
    let a = names.addr_of(to).map_err(SockError::call("peer name"))?;
    rustix::net::connect(fd, &a)
        .map_err(|e| SockError::sys(format!("connect to {}", printable(&to.name)), e))
}

/// Creates every socket of `img` and returns them by file id.
pub fn build(img: &FileImages, ext: bool) -> Result<HashMap<u32, OwnedFd>, FileError> {
    let roles = roles(img, ext)?;
    let by_ino: HashMap<u32, &pb::UnixSkEntry> = img.unix.values().map(|u| (u.ino, u)).collect();
    let mut fds: HashMap<u32, OwnedFd> = HashMap::new();
    let mut ids: Vec<u32> = roles.keys().copied().collect();
    ids.sort_unstable();
    let entry = |id: u32| &img.unix[&id];
    let mut names = Names::default();
    let new_bound = |id: u32, names: &mut Names| -> Result<OwnedFd, FileError> {
        let u = entry(id);
        let e = |w: SockError| restore_fail(id, KIND, w);
        let fd = socket(u.r#type).map_err(|x| e(SockError::Refused(format!("socket: {x}"))))?;
        names.bind(&fd, u).map_err(e)?;
        Ok(fd)
    };

    // 1. Listeners and sockets that are only bound.
    for &id in &ids {
        match roles[&id] {
            Role::Listener => {
                let fd = new_bound(id, &mut names)?;
                let backlog = i32::try_from(entry(id).backlog).unwrap_or(i32::MAX);
                rustix::net::listen(&fd, backlog)
                    .map_err(|x| restore_err(id, KIND, format!("listen: {x}")))?;
                fds.insert(id, fd);
            }
            Role::Alone | Role::ConnectTo { .. } => {
                fds.insert(id, new_bound(id, &mut names)?);
            }
            _ => {}
        }
    }
    // 2. Accepted connections, in id order, before the pending ones: the
    // listener's queue hands connections out oldest first.
    for &id in &ids {
        let Role::Client { listener, peer_id } = roles[&id] else {
            continue;
        };
        let fd = new_bound(id, &mut names)?;
        let l = by_ino[&listener];
        connect(&fd, l, &names).map_err(|w| restore_fail(id, KIND, w))?;
        let lfd = fds
            .get(&l.id)
            .ok_or_else(|| restore_err(id, KIND, format!("listener {listener} was not created")))?;
        let acc = rustix::net::accept_with(lfd, rustix::net::SocketFlags::CLOEXEC)
            .map_err(|x| restore_err(peer_id, KIND, format!("accept: {x}")))?;
        fds.insert(id, fd);
        fds.insert(peer_id, acc);
    }
    // 3. Socketpairs, and orphans' throwaway peers.
    let orphan_peers = pairs(img, &roles, &ids, &mut names, &mut fds)?;
    // 4. Connections not accepted yet, and connected datagram sockets.
    for &id in &ids {
        match roles[&id] {
            Role::Pending { listener } => {
                let fd = new_bound(id, &mut names)?;
                connect(&fd, by_ino[&listener], &names).map_err(|w| restore_fail(id, KIND, w))?;
                fds.insert(id, fd);
            }
            Role::ConnectTo { peer } => {
                let fd = &fds[&id];
                connect(fd, by_ino[&peer], &names).map_err(|w| restore_fail(id, KIND, w))?;
            }
            _ => {}
        }
    }
    // 5. Buffer sizes before the queues go back in, then shutdowns and
    // status flags.
    for (&id, fd) in &fds {
        super::super::sockopts::restore(fd, rustix::net::AddressFamily::UNIX, &entry(id).opts)
            .map_err(|x| restore_err(id, KIND, format!("socket options: {x}")))?;
    }
    queues(img, &by_ino, &fds, &orphan_peers, &names)?;
    drop(orphan_peers);
    shutdowns_and_flags(img, &fds)?;
    Ok(fds)
}

/// Socketpairs (both sides at once), and for each orphan (a socket whose
/// peer is not in the dump) a pair whose other side only sends the
/// orphan's queue: those other sides are returned by file id.
fn pairs(
    img: &FileImages,
    roles: &HashMap<u32, Role>,
    ids: &[u32],
    names: &mut Names,
    fds: &mut HashMap<u32, OwnedFd>,
) -> Result<HashMap<u32, OwnedFd>, FileError> {
    let entry = |id: u32| &img.unix[&id];
    for &id in ids {
        let Role::PairA { peer_id } = roles[&id] else {
            continue;
        };
        let u = &img.unix[&id];
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::from_raw(u.r#type),
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|x| restore_err(id, KIND, format!("socketpair: {x}")))?;
        for (side, fd) in [(id, &a), (peer_id, &b)] {
            // Only datagram pairs bind names of their own (a stream
            // side's name is its listener's, and that one is gone).
            if entry(side).r#type == SOCK_DGRAM {
                names
                    .bind(fd, entry(side))
                    .map_err(|w| restore_fail(side, KIND, w))?;
            } else if !entry(side).name.is_empty() {
                crate::pr_warn!(
                    "unix socket {} (file id {side}): its name is not restored \
                     (its listener is not in the dump)",
                    entry(side).ino
                );
            }
        }
        fds.insert(id, a);
        fds.insert(peer_id, b);
    }
    // Orphans: the other side only sends the queue, then goes.
    let mut orphan_peers: HashMap<u32, OwnedFd> = HashMap::new();
    for &id in ids {
        if roles[&id] != Role::Orphan {
            continue;
        }
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::from_raw(entry(id).r#type),
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|x| restore_err(id, KIND, format!("socketpair: {x}")))?;
        fds.insert(id, a);
        orphan_peers.insert(id, b);
    }
    Ok(orphan_peers)
}

/// Shutdowns and status flags, once the queues are back.
fn shutdowns_and_flags(img: &FileImages, fds: &HashMap<u32, OwnedFd>) -> Result<(), FileError> {
    for (&id, fd) in fds {
        let u = &img.unix[&id];
        let e = |w: SockError| restore_fail(id, KIND, w);
        if let Some(how) = u.shutdown.and_then(shutdown_how) {
            match rustix::net::shutdown(fd, how) {
                Ok(()) | Err(Errno::NOTCONN) => {}
                Err(x) => return Err(e(SockError::Refused(format!("shutdown: {x}")))),
            }
        }
        crate::files::pipe::set_status_flags(fd, u.flags)
            .map_err(|x| e(SockError::Refused(format!("F_SETFL: {x}"))))?;
    }
    Ok(())
}

/// Puts the queued messages back: each is sent to its receiver by a
/// socket of the dump connected to it, or (for a named datagram socket
/// with no such sender) by a throwaway socket.
fn queues(
    img: &FileImages,
    by_ino: &HashMap<u32, &pb::UnixSkEntry>,
    fds: &HashMap<u32, OwnedFd>,
    orphan_peers: &HashMap<u32, OwnedFd>,
    names: &Names,
) -> Result<(), FileError> {
    let mut temp: Option<OwnedFd> = None;
    for (pe, data) in &img.sk_queues {
        let rid = pe.id_for;
        let e = |w: SockError| restore_fail(rid, KIND, w);
        let recv = &img.unix[&rid];
        let sender = by_ino
            .values()
            .find(|s| s.peer == recv.ino && s.uflags & USK_EXTERN == 0)
            .and_then(|s| fds.get(&s.id))
            .or_else(|| orphan_peers.get(&rid));
        let sent = match sender {
            Some(s) => rustix::net::send(s, data, send_flags()),
            None if recv.r#type == SOCK_DGRAM && !recv.name.is_empty() => {
                if temp.is_none() {
                    temp = Some(
                        socket(SOCK_DGRAM)
                            .map_err(|x| e(SockError::Refused(format!("socket: {x}"))))?,
                    );
                }
                let a = names
                    .addr_of(recv)
                    .map_err(|x| e(SockError::Refused(format!("name: {x}"))))?;
                let t = temp
                    .as_ref()
                    .ok_or_else(|| e(SockError::Refused("no socket".into())))?;
                rustix::net::sendto(t, data, send_flags(), &a)
            }
            None => {
                return Err(e(SockError::Refused(format!(
                    "{} queued bytes with no socket in the dump to send them",
                    data.len()
                ))));
            }
        };
        match sent {
            Ok(n) if n == data.len() => {}
            Ok(n) => {
                return Err(e(SockError::Refused(format!(
                    "sent {n} of {} queued bytes",
                    data.len()
                ))));
            }
            Err(x) => {
                return Err(e(SockError::Refused(format!(
                    "sending {} queued bytes back: {x}",
                    data.len()
                ))));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sk(id: u32, ino: u32, kind: u32, state: u32, peer: u32, name: &[u8]) -> pb::UnixSkEntry {
        pb::UnixSkEntry {
            id,
            ino,
            r#type: kind,
            state,
            peer,
            name: name.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn roles_of_a_listener_with_accepted_and_pending_clients_and_pairs() {
        let mut img = FileImages::default();
        let l = b"/run/l.sock\0";
        for e in [
            sk(1, 100, 1, STATE_LISTEN, 0, l),
            sk(2, 101, 1, STATE_ESTABLISHED, 102, b""), // client
            sk(3, 102, 1, STATE_ESTABLISHED, 101, l),   // accepted
            sk(4, 103, 1, STATE_ESTABLISHED, 100, b""), // pending
            sk(5, 104, 2, STATE_ESTABLISHED, 105, b""), // dgram pair
            sk(6, 105, 2, STATE_ESTABLISHED, 104, b""),
            sk(7, 106, 2, 7, 0, b"/run/d.sock\0"), // bound dgram
            sk(8, 107, 2, STATE_ESTABLISHED, 106, b""), // sends to it
        ] {
            img.unix.insert(e.id, e);
        }
        let r = roles(&img, false).unwrap();
        assert_eq!(r[&1], Role::Listener);
        assert_eq!(
            r[&2],
            Role::Client {
                listener: 100,
                peer_id: 3
            }
        );
        assert_eq!(r[&3], Role::Accepted);
        assert_eq!(r[&4], Role::Pending { listener: 100 });
        assert_eq!(r[&5], Role::PairA { peer_id: 6 });
        assert_eq!(r[&6], Role::PairB);
        assert_eq!(r[&7], Role::Alone);
        assert_eq!(r[&8], Role::ConnectTo { peer: 106 });
    }

    #[test]
    fn outside_peers_need_ext_unix_sk() {
        let mut img = FileImages::default();
        let mut ext = sk(2, 200, 2, 7, 0, b"/dev/log\0");
        ext.uflags = USK_EXTERN;
        img.unix
            .insert(1, sk(1, 100, 2, STATE_ESTABLISHED, 200, b""));
        img.unix.insert(2, ext);
        let e = roles(&img, false).unwrap_err().to_string();
        assert!(e.contains("/dev/log") && e.contains("--ext-unix-sk"), "{e}");
        assert_eq!(
            roles(&img, true).unwrap()[&1],
            Role::ConnectTo { peer: 200 }
        );
        // A peer in no image at all.
        img.unix.remove(&2);
        assert!(roles(&img, true).is_err());
    }
}
