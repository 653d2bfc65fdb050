//! Unix sockets (CRIU's `UNIXSK` kind, `criu/sk-unix.c`, `sk-queue.c`):
//! a `unix_sk_entry` per socket in `files.img` (inode, type, state, name,
//! peer inode, backlog, options, shutdown) and the messages queued for
//! each in `sk-queues.img` (`id_for` = the receiving socket's file id).
//!
//! Dump learns inode, peer, state, name, pending connections and queue
//! lengths from `NETLINK_SOCK_DIAG` and reads queues with `MSG_PEEK` and
//! `SO_PEEK_OFF` from a `pidfd_getfd` copy, one entry per message for
//! datagrams. A client whose connection is not accepted yet has as peer
//! the listener (CRIU does the same). Sockets connected to one outside the
//! dump are refused unless `--ext-unix-sk`, which dumps the outside peer
//! as an entry with `USK_EXTERN` and no fd.
//!
//! Restore builds every socket of the images at once in the tool (see
//! [`build`]): listeners (bind + listen), accepted connections (connect +
//! accept), connections still pending (connect), socketpairs, bound and
//! connected datagram sockets; then the queues are sent from each
//! receiver's peer, then shutdowns and flags are applied.

mod names;
mod restore;

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendFlags,
    Shutdown, SocketAddrUnix, SocketFlags, SocketType, sockopt,
};

use super::{Dumped, FdCtx, FileError, FileImages, restore_fail};
use crate::files::sockets::SockError;
use crate::images::pb;
use crate::proc::unix_diag::{self, TCP_ESTABLISHED, TCP_LISTEN, UnixSock};
use crate::sys::sockopt as so;

const KIND: &str = "a unix socket";
/// `uflags`: the socket is outside the dump (a peer of one inside).
pub const USK_EXTERN: u32 = 1;
const SOCK_STREAM: u32 = linux_raw_sys::net::SOCK_STREAM;
pub(super) const SOCK_DGRAM: u32 = linux_raw_sys::net::SOCK_DGRAM;
const SOCK_SEQPACKET: u32 = linux_raw_sys::net::SOCK_SEQPACKET;
/// Largest datagram read while dumping a queue.
const MAX_MSG: usize = 4 << 20;

/// Unix sockets dumped so far.
#[derive(Debug, Default)]
pub struct UnixDump {
    /// Every unix socket of the namespace, listed on the first one seen.
    diag: Option<HashMap<u32, UnixSock>>,
    /// File id of each socket inode dumped.
    ids: HashMap<u32, u32>,
    /// (inode, task, fd) of each, for [`finish`]'s messages.
    seen: Vec<(u32, i32, i32)>,
    /// The buffer queues are peeked into, kept for the next socket (a
    /// fresh one each time would be zeroed memory for every socket).
    peek_buf: Vec<u8>,
}

/// The messages queued for `sock`, oldest first, read without consuming
/// them. The socket's peek offset is put back as it was.
fn peek_queue(
    sock: &OwnedFd,
    datagrams: bool,
    buf: &mut Vec<u8>,
) -> Result<Vec<Vec<u8>>, SockError> {
    let old = so::get_int(sock, so::SOL_SOCKET, so::SO_PEEK_OFF)
        .map_err(SockError::call("SO_PEEK_OFF"))?;
    so::set_int(sock, so::SOL_SOCKET, so::SO_PEEK_OFF, 0)
        .map_err(SockError::call("SO_PEEK_OFF"))?;
    let out = peek_all(sock, datagrams, buf);
    let reset = so::set_int(sock, so::SOL_SOCKET, so::SO_PEEK_OFF, old);
    let out = out?;
    reset.map_err(SockError::call("resetting SO_PEEK_OFF"))?;
    Ok(out)
}

fn peek_all(sock: &OwnedFd, datagrams: bool, buf: &mut Vec<u8>) -> Result<Vec<Vec<u8>>, SockError> {
    let mut out = Vec::new();
    let want = if datagrams { MAX_MSG } else { 256 * 1024 };
    if buf.len() < want {
        buf.resize(want, 0);
    }
    let buf = &mut buf[..want];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); 512];
    loop {
        let mut cmsg = RecvAncillaryBuffer::new(&mut space);
        let flags = RecvFlags::PEEK | RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC;
        let flags = if datagrams {
            flags | RecvFlags::TRUNC
        } else {
            flags
        };
        let r = rustix::net::recvmsg(sock, &mut [std::io::IoSliceMut::new(buf)], &mut cmsg, flags);
        let msg = match r {
            Ok(m) => m,
            Err(Errno::AGAIN) => return Ok(out),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(SockError::sys("peeking its queue", e)),
        };
        for c in cmsg.drain() {
            if let RecvAncillaryMessage::ScmRights(_) = c {
                return Err(SockError::Refused(
                    "a queued message passes file descriptors (SCM_RIGHTS), which cannot be \
                     dumped yet"
                        .into(),
                ));
            }
        }
        if msg.bytes > buf.len() || msg.flags.contains(ReturnFlags::TRUNC) {
            return Err(SockError::Refused(format!(
                "a queued message of {} bytes is too long",
                msg.bytes
            )));
        }
        if msg.bytes == 0 {
            // End of a stream shut down for reading (an empty datagram
            // would be lost here, as it is by CRIU).
            return Ok(out);
        }
        out.push(buf[..msg.bytes].to_vec());
    }
}

/// Dumps the socket `ctx.fd` (inode `ino`): its file id, with the entry to
/// add to `files.img` when it is new (`id` is the id it gets).
pub fn dump(
    ctx: &FdCtx,
    ino: u64,
    st: &mut Dumped,
    id: u32,
) -> Result<(u32, Option<pb::FileEntry>), FileError> {
    let ino = u32::try_from(ino).map_err(|_| ctx.err(KIND, format!("inode {ino}")))?;
    if let Some(&known) = st.unix.ids.get(&ino) {
        return Ok((known, None));
    }
    let copy = ctx.steal("a socket")?;
    let domain = sockopt::socket_domain(&copy)
        .map_err(|e| ctx.err("a socket", format!("SO_DOMAIN: {e}")))?;
    if domain != AddressFamily::UNIX {
        return Err(ctx.err(
            "a socket",
            format!(
                "of address family {}, which cannot be dumped yet",
                domain.as_raw()
            ),
        ));
    }
    if st.unix.diag.is_none() {
        let all = unix_diag::collect().map_err(|e| ctx.err(KIND, format!("sock_diag: {e}")))?;
        st.unix.diag = Some(all);
    }
    let Some(sk) = st.unix.diag.as_ref().and_then(|d| d.get(&ino)).cloned() else {
        return Err(ctx.err(
            KIND,
            format!("socket {ino} is not in sock_diag's list (another network namespace?)"),
        ));
    };
    let kind = u32::from(sk.kind);
    if ![SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET].contains(&kind) {
        return Err(ctx.err(KIND, format!("of type {kind}")));
    }
    if sk.state != TCP_LISTEN && sk.rqueue > 0 {
        let msgs = peek_queue(&copy, kind != SOCK_STREAM, &mut st.unix.peek_buf)
            .map_err(|e| ctx.fail(KIND, e))?;
        for m in msgs {
            st.sk_queues.push((
                pb::SkPacketEntry {
                    id_for: id,
                    length: m.len() as u32,
                    scm: Vec::new(),
                },
                m,
            ));
        }
    }
    let (deleted, file_perms, name_dir) = socket_file(ctx, &sk)?;
    st.unix.ids.insert(ino, id);
    st.unix.seen.push((ino, ctx.pid, ctx.fd));
    let entry = pb::UnixSkEntry {
        id,
        ino,
        r#type: kind,
        state: u32::from(sk.state),
        flags: ctx.flags,
        uflags: 0,
        backlog: sk.wqueue,
        peer: sk.peer,
        fown: pb::FownEntry::default(),
        opts: super::sockopts::dump(&copy, AddressFamily::UNIX).map_err(|e| ctx.fail(KIND, e))?,
        name: sk.name.clone(),
        shutdown: (sk.shutdown != 0).then_some(i32::from(sk.shutdown & 3)),
        deleted: deleted.then_some(true),
        file_perms,
        name_dir,
        ns_id: Some(NET_NS_ID),
        ..Default::default()
    };
    Ok((
        id,
        Some(pb::FileEntry {
            r#type: pb::FdTypes::Unixsk as i32,
            id,
            usk: Some(entry),
            ..Default::default()
        }),
    ))
}

/// The socket file of a socket bound to a path: whether it was removed
/// (gone, or another file at its path: `deleted`), else its mode and owner
/// (`file_perms`); for a name relative to the directory it was bound in,
/// that directory, found as CRIU does (the task's cwd, then its root,
/// holding the socket's file): `name_dir`.
#[allow(clippy::type_complexity)]
fn socket_file(
    ctx: &FdCtx,
    sk: &UnixSock,
) -> Result<(bool, Option<pb::FilePermsEntry>, Option<String>), FileError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let (Some(&first), Some((vfs_ino, _))) = (sk.name.first(), sk.vfs) else {
        return Ok((false, None, None));
    };
    if first == 0 {
        return Ok((false, None, None));
    }
    let name = std::path::Path::new(std::ffi::OsStr::from_bytes(path_bytes(&sk.name)));
    let perms = |m: &std::fs::Metadata| pb::FilePermsEntry {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
    };
    if first == b'/' {
        return Ok(match std::fs::symlink_metadata(name) {
            Ok(m) if m.ino() == u64::from(vfs_ino) => (false, Some(perms(&m)), None),
            _ => (true, None, None),
        });
    }
    for link in ["cwd", "root"] {
        let Ok(dir) = std::fs::read_link(format!("/proc/{}/{link}", ctx.pid)) else {
            continue;
        };
        if let Ok(m) = std::fs::symlink_metadata(dir.join(name))
            && m.ino() == u64::from(vfs_ino)
        {
            let dir = String::from_utf8_lossy(dir.as_os_str().as_bytes()).into_owned();
            return Ok((false, Some(perms(&m)), Some(dir)));
        }
    }
    Err(ctx.err(
        KIND,
        format!(
            "bound to the relative name {:?}, whose file is in neither its cwd nor its root \
             (removed, or bound in another directory)",
            printable(&sk.name)
        ),
    ))
}

/// Once every fd is dumped: resolves peers. A client whose connection a
/// listener has not accepted yet has no peer in sock_diag; it is found in
/// the listener's pending connections and gets the listener as peer (as
/// in CRIU's images). A peer outside the dump is refused (naming the fd
/// and the peer) unless `ext_unix_sk`, which adds an `USK_EXTERN` entry
/// for it (appended to `entries`, with the next ids).
pub fn finish(
    st: &mut Dumped,
    entries: &mut Vec<pb::FileEntry>,
    ext_unix_sk: bool,
) -> Result<(), FileError> {
    let Some(diag) = st.unix.diag.as_ref() else {
        return Ok(());
    };
    let mut externs: Vec<u32> = Vec::new();
    for e in entries.iter_mut() {
        let Some(u) = e.usk.as_mut() else { continue };
        if u.uflags & USK_EXTERN != 0 || st.unix.ids.contains_key(&u.peer) {
            continue;
        }
        let (_, pid, fd) = st
            .unix
            .seen
            .iter()
            .find(|s| s.0 == u.ino)
            .copied()
            .unwrap_or((u.ino, 0, -1));
        let err = |what: String| FileError::Dump {
            pid,
            fd,
            kind: KIND,
            what,
        };
        let mut peer = u.peer;
        // A stream connection to the outside can only be made again to a
        // listener (the connection was not accepted yet), by connecting.
        let mut to_listener = false;
        if peer == 0 {
            if u.state != u32::from(TCP_ESTABLISHED) || u.r#type == SOCK_DGRAM {
                continue;
            }
            // Pending on a listener?
            let Some(l) = diag
                .values()
                .find(|l| l.state == TCP_LISTEN && l.icons.contains(&u.ino))
            else {
                continue;
            };
            if diag.get(&u.ino).is_some_and(|me| me.wqueue > 0) {
                return Err(err(format!(
                    "it sent data on a connection listener {} has not accepted yet, \
                     which cannot be dumped yet",
                    l.ino
                )));
            }
            if st.unix.ids.contains_key(&l.ino) {
                u.peer = l.ino;
                continue;
            }
            peer = l.ino;
            to_listener = true;
        }
        let p = diag.get(&peer);
        let pname = p
            .map(|p| printable(&p.name))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "unnamed".into());
        if !ext_unix_sk {
            return Err(err(format!(
                "connected to socket {peer} ({pname}) outside the dump (use --ext-unix-sk)"
            )));
        }
        if u.r#type != SOCK_DGRAM && !to_listener {
            return Err(err(format!(
                "its stream connection to socket {peer} ({pname}) outside the dump \
                 cannot be restored (only datagram peers and listeners can be \
                 connected to again)"
            )));
        }
        if p.is_none_or(|p| p.name.is_empty()) {
            return Err(err(format!(
                "connected to the unnamed socket {peer} outside the dump, \
                 which cannot be connected to again"
            )));
        }
        u.peer = peer;
        if !externs.contains(&peer) {
            externs.push(peer);
        }
    }
    for ino in externs {
        let Some(p) = diag.get(&ino) else { continue };
        let id = entries.len() as u32 + 1;
        entries.push(pb::FileEntry {
            r#type: pb::FdTypes::Unixsk as i32,
            id,
            usk: Some(pb::UnixSkEntry {
                id,
                ino,
                r#type: u32::from(p.kind),
                state: u32::from(p.state),
                uflags: USK_EXTERN,
                peer: p.peer,
                name: p.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
        st.unix.ids.insert(ino, id);
    }
    Ok(())
}

/// The id of the dumping tool's network namespace (which the tasks share)
/// as CRIU numbers namespaces in a dump (`ids-PID.img`'s `net_ns_id`):
/// CRIU records it in every unix socket entry (`ns_id`).
pub const NET_NS_ID: u32 = 2;

/// A socket name for messages (abstract names start with `@`).
pub fn printable(name: &[u8]) -> String {
    let name = path_bytes(name);
    String::from_utf8_lossy(name)
        .replacen('\0', "@", 1)
        .replace('\0', "")
}

/// A dumped name without the NUL the kernel keeps after a path name.
pub fn path_bytes(name: &[u8]) -> &[u8] {
    if name.first() == Some(&0) {
        return name;
    }
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    &name[..end]
}

/// Checks the unix entries before anything is created.
pub fn check(img: &FileImages) -> Result<(), FileError> {
    for (id, u) in &img.unix {
        let err = |what: SockError| restore_fail(*id, KIND, what);
        if ![SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET].contains(&u.r#type) {
            return Err(err(SockError::BadEntry(format!(
                "socket type {}",
                u.r#type
            ))));
        }
        if u.uflags & USK_EXTERN != 0 {
            continue;
        }
        if u.state == u32::from(TCP_LISTEN) && u.name.is_empty() {
            return Err(err(SockError::Refused("a listener without a name".into())));
        }
        if u.name.first().is_some_and(|&c| c != b'/' && c != 0) && u.name_dir.is_none() {
            return Err(err(SockError::Refused(format!(
                "relative name {:?} without the directory it was bound in (name_dir)",
                printable(&u.name)
            ))));
        }
        if path_bytes(&u.name).len() > 107 {
            return Err(err(SockError::Refused("name longer than sun_path".into())));
        }
    }
    for (pe, _) in &img.sk_queues {
        if !img.unix.contains_key(&pe.id_for) {
            return Err(FileError::Image {
                file: "sk-queues.img".into(),
                what: format!(
                    "messages for file id {}, which is no unix socket",
                    pe.id_for
                ),
            });
        }
    }
    Ok(())
}

/// The address of a dumped name (path, or `\0` + abstract name).
pub(super) fn addr(name: &[u8]) -> Result<SocketAddrUnix, Errno> {
    match name.split_first() {
        Some((0, rest)) => SocketAddrUnix::new_abstract_name(rest),
        _ => SocketAddrUnix::new(path_bytes(name)),
    }
}

pub(super) fn socket(kind: u32) -> Result<OwnedFd, Errno> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::from_raw(kind),
        SocketFlags::CLOEXEC,
        None,
    )
}

pub(super) fn shutdown_how(v: i32) -> Option<Shutdown> {
    match v {
        1 => Some(Shutdown::Read),
        2 => Some(Shutdown::Write),
        3 => Some(Shutdown::Both),
        _ => None,
    }
}

pub(super) fn send_flags() -> SendFlags {
    SendFlags::DONTWAIT | SendFlags::NOSIGNAL
}

pub(super) const STATE_ESTABLISHED: u32 = TCP_ESTABLISHED as u32;
pub(super) const STATE_LISTEN: u32 = TCP_LISTEN as u32;

/// The `UNIXSK` kind: `socket:[INO]` fds of address family `AF_UNIX`.
pub struct Unix;

impl super::kind::FileKind for Unix {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Unixsk
    }

    fn claims(&self, fd: &super::table::FdView<'_>) -> bool {
        matches!(fd.target, crate::proc::task::FdTarget::Socket(_))
            && fd.family == Some(AddressFamily::UNIX.as_raw())
    }

    fn dump(
        &self,
        files: &mut super::table::FileTable,
        v: &super::table::FdView<'_>,
    ) -> Result<u32, super::table::FilesError> {
        let crate::proc::task::FdTarget::Socket(ino) = v.target else {
            return Err(v.unsupported());
        };
        let next = files.next_id();
        let (id, entry) = dump(&v.ctx, *ino, &mut files.kinds, next)?;
        files.entries.extend(entry);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &FileImages) -> Option<(pb::FownEntry, u32)> {
        e.usk.as_ref().map(|x| (x.fown, x.flags))
    }

    fn finish(
        &self,
        files: &mut super::table::FileTable,
        opts: &super::table::FdOpts,
    ) -> Result<(), super::table::FilesError> {
        Ok(finish(
            &mut files.kinds,
            &mut files.entries,
            opts.ext_unix_sk,
        )?)
    }

    fn open(&self, o: &mut super::Opener<'_>, e: &pb::FileEntry) -> Result<OwnedFd, FileError> {
        if e.usk.is_none() {
            return Err(super::kind::no_body(e, KIND));
        }
        restore::open(o, e.id)
    }
}
