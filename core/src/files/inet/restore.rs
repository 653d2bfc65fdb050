//! The restore half of [`super`]: every inet socket of the images is
//! made at once in the tool (see [`build`]), the way CRIU's
//! `open_inet_sk` makes each: the socket, `IPV6_V6ONLY`, the bound device,
//! `SO_REUSEPORT` if the image has it, `bind` (with `SO_REUSEADDR` on for
//! a TCP socket, whose port a `TIME_WAIT` of the killed tree may still
//! hold, and for UDP sockets of the images sharing a port), `listen` with
//! the backlog, `connect` for a connected UDP socket; once all are bound,
//! the options of the images (`SO_REUSEADDR` going back to theirs), a UDP
//! socket's shutdown and the status flags. Owners (`fown`) are set later,
//! inside the task. Unlike CRIU, `SO_REUSEPORT` is never turned on for the
//! bind alone: a socket outside the images listening on the port with it
//! would otherwise share the port with the restored one, silently.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::tcp_repair::{self, Connection, Repaired, Stream};
use super::{
    ConnOpts, SOL_IP, SOL_IPV6, SOL_TCP, addr_bytes, ip_of, ip_opts, kind_name, show, state_name,
    tcp_opts,
};
use crate::files::sockets::SockError;
use crate::files::{FileError, FileImages, restore_err, restore_fail, sockopts};
use crate::images::Kind;
use crate::images::pb;
use crate::images::set::files::is_connection;
use crate::sys::kconst::{AF_INET, AF_INET6, IPPROTO_TCP, TCP_CLOSE, TCP_LISTEN};
use crate::sys::sockopt::{self as so, SOL_SOCKET};

use linux_raw_sys::net as raw;

const KIND: &str = "an inet socket";

/// The inet socket entries of the images, by file id.
fn entries(img: &FileImages) -> HashMap<u32, &pb::InetSkEntry> {
    img.entries
        .values()
        .filter_map(|e| e.isk.as_ref().map(|i| (e.id, i)))
        .collect()
}

/// An entry's addresses and ports, checked.
struct Addrs {
    family: u8,
    src: SocketAddr,
    dst: SocketAddr,
}

fn addrs(i: &pb::InetSkEntry) -> Result<Addrs, SockError> {
    let family = match i.family {
        f if f == u32::from(AF_INET) => AF_INET,
        f if f == u32::from(AF_INET6) => AF_INET6,
        f => {
            return Err(SockError::BadEntry(format!(
                "address family {f}, not IPv4 or IPv6"
            )));
        }
    };
    let words = |w: &[u32], what: &str| {
        addr_bytes(i.family, w).ok_or_else(|| {
            SockError::BadEntry(format!(
                "{what} has {} words, wrong for {}",
                w.len(),
                if family == AF_INET6 { "IPv6" } else { "IPv4" }
            ))
        })
    };
    let port = |p: u32, what: &str| {
        u16::try_from(p).map_err(|_| SockError::BadEntry(format!("{what} port {p}")))
    };
    let src = SocketAddr::new(
        ip_of(family, &words(&i.src_addr, "src_addr")?),
        port(i.src_port, "source")?,
    );
    let dst = SocketAddr::new(
        ip_of(family, &words(&i.dst_addr, "dst_addr")?),
        port(i.dst_port, "destination")?,
    );
    Ok(Addrs { family, src, dst })
}

/// What can be checked before anything is created: families, types,
/// protocols, states, address lengths; a TCP connection is refused.
pub(crate) fn check(img: &FileImages) -> Result<(), FileError> {
    for (id, i) in entries(img) {
        let err = |what: SockError| restore_fail(id, KIND, what);
        let a = addrs(i).map_err(err)?;
        if kind_name(i.r#type, i.proto).is_none() {
            return Err(err(SockError::Refused(format!(
                "socket type {} of protocol {}: only TCP and UDP sockets are restored",
                i.r#type, i.proto
            ))));
        }
        let tcp = i.proto == u32::from(IPPROTO_TCP);
        let show_src = || show(a.family, &octets(a.src), a.src.port());
        if is_connection(i) {
            let state = u8::try_from(i.state).unwrap_or(u8::MAX);
            let what = || format!("the TCP connection {} -> {}", a.src, a.dst);
            match img.tcp_streams.get(&i.ino) {
                Some((e, _)) => tcp_repair::check(e, state).map_err(|w| err(w.within(what())))?,
                // Only the state of a --tcp-close dump: it comes back closed.
                None if tcp_repair::repairable(state) => {}
                None => {
                    return Err(err(SockError::Refused(format!(
                        "{} in {}, which cannot be restored yet",
                        what(),
                        state_name(state)
                    ))));
                }
            }
            continue;
        }
        if tcp && i.state != u32::from(TCP_LISTEN) && i.state != u32::from(TCP_CLOSE) {
            return Err(err(SockError::Refused(format!(
                "a TCP socket {} in {}",
                show_src(),
                state_name(i.state as u8)
            ))));
        }
        if !tcp && i.state == u32::from(TCP_LISTEN) {
            return Err(err(SockError::Refused("a listening UDP socket".into())));
        }
        if i.ifname.as_ref().is_some_and(|n| n.len() >= 16) {
            return Err(err(SockError::Refused(
                "an interface name longer than IFNAMSIZ".into(),
            )));
        }
    }
    Ok(())
}

fn octets(a: SocketAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match a {
        SocketAddr::V4(v) => b[..4].copy_from_slice(&v.ip().octets()),
        SocketAddr::V6(v) => b.copy_from_slice(&v.ip().octets()),
    }
    b
}

/// The socket of file `id`: every inet socket of the images is made on
/// the first call (sockets sharing a port bind together), then handed out.
pub(super) fn open(o: &mut crate::files::Opener<'_>, id: u32) -> Result<OwnedFd, FileError> {
    if o.inet.is_none() {
        let (fds, repaired) = build(o.img, o.tcp)?;
        o.inet = Some(fds);
        o.tcp_repaired = repaired;
    }
    o.inet
        .as_mut()
        .and_then(|m| m.remove(&id))
        .ok_or_else(|| restore_err(id, KIND, "opened twice"))
}

fn set(fd: &OwnedFd, level: u32, name: u32, what: &str, v: i32) -> Result<(), SockError> {
    so::set_int(fd, level, name, v).map_err(|e| SockError::sys(format!("setting {what} to {v}"), e))
}

/// Creates every inet socket of `img`, by file id, TCP connections as
/// `tcp` says (with `--tcp-established`, in repair mode: the second value,
/// to leave it once the tree is complete).
pub fn build(
    img: &FileImages,
    tcp: ConnOpts,
) -> Result<(HashMap<u32, OwnedFd>, Repaired), FileError> {
    let all = entries(img);
    let mut ids: Vec<u32> = all.keys().copied().collect();
    ids.sort_unstable();
    let mut fds = HashMap::new();
    let mut streams = Vec::new();
    for &id in &ids {
        let i = all[&id];
        let e = |w: SockError| restore_fail(id, KIND, w);
        if is_connection(i) && !tcp.tcp_close {
            let s = stream(img, i, tcp).map_err(e)?;
            let fd = new_socket(i, &addrs(i).map_err(e)?).map_err(e)?;
            tcp_repair::restore(&fd, &s, i.ifname.as_deref()).map_err(e)?;
            streams.push((id, s));
            fds.insert(id, fd);
            continue;
        }
        let shared = all.values().any(|o| {
            o.id != i.id && o.src_port == i.src_port && o.proto == i.proto && i.src_port != 0
        });
        let fd = create(i, shared, tcp.tcp_close).map_err(e)?;
        fds.insert(id, fd);
    }
    // Every socket exists: what may send a packet to a peer that is one
    // of them.
    let mut repaired = Repaired::default();
    for (id, s) in &streams {
        let e = |w: SockError| restore_fail(*id, KIND, w);
        tcp_repair::finish(&fds[id], s).map_err(e)?;
        let conn = Connection {
            family: tcp_repair::family_of(&s.src),
            src: s.src,
            dst: s.dst,
        };
        repaired
            .add(&fds[id], all[id].opts.reuseaddr == Some(true), conn)
            .map_err(e)?;
    }
    for &id in &ids {
        finish(&fds[&id], all[&id]).map_err(|w| restore_fail(id, KIND, w))?;
    }
    Ok((fds, repaired))
}

/// The stream of connection `i` (`--tcp-established`), or why it cannot
/// be restored.
fn stream<'a>(
    img: &'a FileImages,
    i: &'a pb::InetSkEntry,
    tcp: ConnOpts,
) -> Result<Stream<'a>, SockError> {
    let a = addrs(i)?;
    let what = format!("the TCP connection {} -> {}", a.src, a.dst);
    if !tcp.tcp_established {
        return Err(SockError::Refused(format!(
            "{what}: Connected TCP socket in image (restore it with --tcp-established, or \
             closed with --tcp-close)"
        )));
    }
    let Some((entry, queues)) = img.tcp_streams.get(&i.ino) else {
        return Err(SockError::Refused(format!(
            "{what}: no {} (dumped with --tcp-close?)",
            Kind::TcpStream.file_name(u64::from(i.ino))
        )));
    };
    Ok(Stream {
        entry,
        state: u8::try_from(i.state)
            .map_err(|_| SockError::BadEntry(format!("state {}", i.state)))?,
        src: a.src,
        dst: a.dst,
        queues,
        sndbuf: i.opts.so_sndbuf,
        rcvbuf: i.opts.so_rcvbuf,
    })
}

fn family_of(a: &Addrs) -> AddressFamily {
    if a.family == AF_INET6 {
        AddressFamily::INET6
    } else {
        AddressFamily::INET
    }
}

/// A new socket of `i`'s family, type and protocol, `IPV6_V6ONLY` as the
/// image has it.
fn new_socket(i: &pb::InetSkEntry, a: &Addrs) -> Result<OwnedFd, SockError> {
    let family = family_of(a);
    let ty = SocketType::from_raw(i.r#type);
    let proto = rustix::net::Protocol::from_raw(
        std::num::NonZeroU32::new(i.proto)
            .ok_or_else(|| SockError::BadEntry("protocol 0".into()))?,
    );
    let fd = rustix::net::socket_with(family, ty, SocketFlags::CLOEXEC, Some(proto))
        .map_err(SockError::call("socket"))?;
    let v6 = a.family == AF_INET6;
    if v6 {
        let want = i.v6only.unwrap_or(false);
        if (so::get_int(&fd, SOL_IPV6, raw::IPV6_V6ONLY).map_err(SockError::call("IPV6_V6ONLY"))?
            != 0)
            != want
        {
            set(
                &fd,
                SOL_IPV6,
                raw::IPV6_V6ONLY,
                "IPV6_V6ONLY",
                i32::from(want),
            )?;
        }
    }
    if is_connection(i) {
        set(&fd, SOL_SOCKET, raw::SO_REUSEADDR, "SO_REUSEADDR", 1)?;
        if let Some(dev) = &i.opts.so_bound_dev {
            sockopts::bind_to_device(&fd, dev)?;
        }
    }
    Ok(fd)
}

/// The socket of `i`, bound, listening or connected, `SO_REUSEADDR` still
/// on where it was turned on for the bind (`shared`: another socket of the
/// images has its port). A TCP connection with `--tcp-close` is a new
/// socket, neither bound nor connected (CRIU's: its connection is gone).
fn create(i: &pb::InetSkEntry, shared: bool, tcp_close: bool) -> Result<OwnedFd, SockError> {
    let a = addrs(i)?;
    let fd = new_socket(i, &a)?;
    if is_connection(i) && tcp_close {
        return Ok(fd);
    }
    if i.proto == u32::from(IPPROTO_TCP) || shared || i.opts.reuseaddr == Some(true) {
        set(&fd, SOL_SOCKET, raw::SO_REUSEADDR, "SO_REUSEADDR", 1)?;
    }
    if i.opts.so_reuseport == Some(true) {
        set(&fd, SOL_SOCKET, raw::SO_REUSEPORT, "SO_REUSEPORT", 1)?;
    }
    if let Some(dev) = &i.opts.so_bound_dev {
        sockopts::bind_to_device(&fd, dev)?;
    }
    if i.r#type == raw::SOCK_RAW {
        raw_addrs(&fd, i, &a)?;
        return Ok(fd);
    }
    if i.src_port != 0 {
        bind(&fd, i, &a)?;
    }
    if i.state == u32::from(TCP_LISTEN) {
        let backlog = i32::try_from(i.backlog).unwrap_or(i32::MAX);
        rustix::net::listen(&fd, backlog)
            .map_err(|e| SockError::sys(format!("listen({backlog})"), e))?;
    }
    if i.dst_port != 0 {
        rustix::net::connect(&fd, &a.dst)
            .map_err(|e| SockError::sys(format!("connect to {}", a.dst), e))?;
    }
    Ok(fd)
}

/// A raw socket's `bind` and `connect`: to the addresses alone (its
/// "port" is its protocol, which the kernel ignores here), each if the
/// image has one (CRIU's images of a connected raw socket have its peer
/// but not always the state).
fn raw_addrs(fd: &OwnedFd, i: &pb::InetSkEntry, a: &Addrs) -> Result<(), SockError> {
    let mut src = a.src;
    src.set_port(0);
    if !src.ip().is_unspecified() {
        if let (SocketAddr::V6(v), Some(name)) = (&mut src, &i.ifname) {
            let index = rustix::net::netdevice::name_to_index(fd, name)
                .map_err(|e| SockError::sys(format!("interface {name:?}"), e))?;
            v.set_scope_id(index);
        }
        rustix::net::bind(fd, &src)
            .map_err(|e| SockError::sys(format!("bind to {}", src.ip()), e))?;
    }
    if !a.dst.ip().is_unspecified() {
        let mut dst = a.dst;
        dst.set_port(0);
        rustix::net::connect(fd, &dst)
            .map_err(|e| SockError::sys(format!("connect to {}", dst.ip()), e))?;
    }
    Ok(())
}

/// `bind` to the entry's source, on its interface if it names one. An
/// IPv6 address may still be tentative (just added, in duplicate address
/// detection): bound with `IP_FREEBIND` on, as CRIU does.
fn bind(fd: &OwnedFd, i: &pb::InetSkEntry, a: &Addrs) -> Result<(), SockError> {
    let mut src = a.src;
    if let SocketAddr::V6(v) = &mut src
        && i.v6only != Some(true)
        && !v.ip().is_unspecified()
        && v.ip().to_ipv4_mapped().is_none()
    {
        // A bind to an IPv6 address turns IPV6_V6ONLY on, for good: a
        // dual-stack socket with an address got it from `connect` (UDP),
        // which gives it again. Bound to the port alone.
        v.set_ip(std::net::Ipv6Addr::UNSPECIFIED);
    }
    if let (SocketAddr::V6(v), Some(name)) = (&mut src, &i.ifname) {
        let index = rustix::net::netdevice::name_to_index(fd, name)
            .map_err(|e| SockError::sys(format!("interface {name:?}"), e))?;
        v.set_scope_id(index);
    }
    let v6 = a.family == AF_INET6;
    if v6 {
        set(fd, SOL_IP, raw::IP_FREEBIND, "IP_FREEBIND", 1)?;
    }
    rustix::net::bind(fd, &src).map_err(|e| SockError::sys(format!("bind to {src}"), e))?;
    if v6 && i.ip_opts.as_ref().and_then(|o| o.freebind) != Some(true) {
        set(fd, SOL_IP, raw::IP_FREEBIND, "IP_FREEBIND", 0)?;
    }
    Ok(())
}

/// Once every socket is bound: the options of the images, a UDP socket's
/// shutdown, the status flags.
fn finish(fd: &OwnedFd, i: &pb::InetSkEntry) -> Result<(), SockError> {
    let a = addrs(i)?;
    let tcp = i.proto == u32::from(IPPROTO_TCP);
    if let Some(want) = &i.ip_opts {
        let now = ip_opts(fd, a.family)?;
        let flag = |o: Option<bool>| i32::from(o == Some(true));
        if flag(want.freebind) != flag(now.freebind) {
            let (level, name, what) = super::freebind_opt(fd, a.family)?;
            set(fd, level, name, what, flag(want.freebind))?;
        }
        if flag(want.pktinfo) != flag(now.pktinfo) {
            let (level, name, what) = if a.family == AF_INET6 {
                (SOL_IPV6, raw::IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO")
            } else {
                (SOL_IP, raw::IP_PKTINFO, "IP_PKTINFO")
            };
            set(fd, level, name, what, flag(want.pktinfo))?;
        }
        if a.family == AF_INET {
            if want.tos.unwrap_or(0) != now.tos.unwrap_or(0) {
                set(
                    fd,
                    SOL_IP,
                    raw::IP_TOS,
                    "IP_TOS",
                    want.tos.unwrap_or(0) as i32,
                )?;
            }
            if let Some(ttl) = want.ttl
                && Some(ttl) != now.ttl
            {
                set(fd, SOL_IP, raw::IP_TTL, "IP_TTL", ttl as i32)?;
            }
        }
        if let Some(r) = &want.raw
            && i.r#type == raw::SOCK_RAW
        {
            super::raw_ip::restore_opts(fd, a.family, i.proto, r)?;
        }
    }
    if tcp {
        let t = i.tcp_opts.unwrap_or_default();
        let now = tcp_opts(fd, true)?;
        let flag = |o: Option<bool>| i32::from(o == Some(true));
        for (w, n, name, what) in [
            (t.nodelay, now.nodelay, raw::TCP_NODELAY, "TCP_NODELAY"),
            (t.cork, now.cork, raw::TCP_CORK, "TCP_CORK"),
        ] {
            if flag(w) != flag(n) {
                set(fd, SOL_TCP, name, what, flag(w))?;
            }
        }
        // Older images kept the keepalive knobs in sk_opts.
        let o = &i.opts;
        for (w, n, name, what) in [
            (
                t.keepcnt.or(o.tcp_keepcnt),
                now.keepcnt,
                raw::TCP_KEEPCNT,
                "TCP_KEEPCNT",
            ),
            (
                t.keepidle.or(o.tcp_keepidle),
                now.keepidle,
                raw::TCP_KEEPIDLE,
                "TCP_KEEPIDLE",
            ),
            (
                t.keepintvl.or(o.tcp_keepintvl),
                now.keepintvl,
                raw::TCP_KEEPINTVL,
                "TCP_KEEPINTVL",
            ),
        ] {
            if let Some(v) = w
                && Some(v) != n
            {
                set(fd, SOL_TCP, name, what, v as i32)?;
            }
        }
    }
    // SO_REUSEADDR goes back to the image's here.
    sockopts::restore(fd, family_of(&a), &i.opts)?;
    if !tcp && let Some(how) = i.shutdown.and_then(crate::files::unix::shutdown_how) {
        rustix::net::shutdown(fd, how).map_err(SockError::call("shutdown"))?;
    }
    crate::files::set_status_flags(fd, i.flags)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::kconst::TCP_ESTABLISHED;

    fn entry(family: u8, proto: u8, state: u8, src: Vec<u32>) -> pb::InetSkEntry {
        let stream = proto == IPPROTO_TCP;
        pb::InetSkEntry {
            id: 1,
            family: u32::from(family),
            r#type: if stream {
                linux_raw_sys::net::SOCK_STREAM
            } else {
                linux_raw_sys::net::SOCK_DGRAM
            },
            proto: u32::from(proto),
            state: u32::from(state),
            src_port: 8000,
            dst_addr: vec![0; src.len()],
            src_addr: src,
            ..Default::default()
        }
    }

    fn checked(e: pb::InetSkEntry, stream: Option<pb::TcpStreamEntry>) -> Result<(), FileError> {
        let mut img = FileImages::default();
        if let Some(s) = stream {
            img.tcp_streams.insert(e.ino, (s, Vec::new()));
        }
        img.entries.insert(
            e.id,
            pb::FileEntry {
                r#type: pb::FdTypes::Inetsk as i32,
                id: e.id,
                isk: Some(e),
                ..Default::default()
            },
        );
        check(&img)
    }

    #[test]
    fn damaged_or_unsupported_entries_are_refused_before_anything_is_made() {
        use crate::sys::kconst::IPPROTO_UDP;
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        checked(entry(AF_INET, IPPROTO_TCP, TCP_LISTEN, vec![lo]), None).unwrap();
        // An IPv6 entry with an IPv4-sized address.
        let e = checked(entry(AF_INET6, IPPROTO_TCP, TCP_LISTEN, vec![lo]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("src_addr has 1 words, wrong for IPv6"), "{e}");
        // A family that is not IP.
        let e = checked(entry(1, IPPROTO_TCP, TCP_LISTEN, vec![lo]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("address family 1"), "{e}");
        // A port beyond 16 bits.
        let mut big = entry(AF_INET, IPPROTO_UDP, TCP_CLOSE, vec![lo]);
        big.src_port = 70000;
        assert!(
            checked(big, None)
                .unwrap_err()
                .to_string()
                .contains("source port 70000")
        );
        // A TCP connection without its stream (a --tcp-close dump) is
        // fine; one in a state not restored, or whose stream is damaged,
        // or with an address of the wrong family, is not.
        let mut conn = entry(AF_INET, IPPROTO_TCP, TCP_ESTABLISHED, vec![lo]);
        conn.dst_port = 80;
        conn.dst_addr = vec![lo];
        conn.ino = 77;
        checked(conn.clone(), None).unwrap();
        let mut syn = conn.clone();
        syn.state = u32::from(crate::sys::kconst::TCP_SYN_SENT);
        let e = checked(syn, None).unwrap_err().to_string();
        assert!(
            e.contains("the TCP connection 127.0.0.1:8000 -> 127.0.0.1:80 in SYN_SENT"),
            "{e}"
        );
        let bad = pb::TcpStreamEntry {
            inq_len: 0,
            outq_len: 4,
            unsq_len: Some(9),
            ..Default::default()
        };
        let e = checked(conn.clone(), Some(bad)).unwrap_err().to_string();
        assert!(e.contains("9 unsent bytes in a send queue of 4"), "{e}");
        let mut v6 = conn;
        v6.family = u32::from(AF_INET6);
        v6.src_addr = vec![0, 0, 0, lo];
        let e = checked(v6, None).unwrap_err().to_string();
        assert!(e.contains("dst_addr has 1 words, wrong for IPv6"), "{e}");
        // A listening UDP socket cannot exist.
        let e = checked(entry(AF_INET, IPPROTO_UDP, TCP_LISTEN, vec![lo]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a listening UDP socket"), "{e}");
    }
}
