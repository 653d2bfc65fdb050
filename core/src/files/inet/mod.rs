//! TCP and UDP (and UDP-Lite) sockets over IPv4 and IPv6 that are not
//! connections, and raw sockets ([`raw_ip`]) (CRIU's `INETSK` kind,
//! `criu/sk-inet.c`): an
//! `inet_sk_entry` per socket in `files.img` with family, type, protocol,
//! state, ports, addresses, backlog, `v6only`, the generic options
//! ([`super::sockopts`]), the IP level's (`ip_opts`: freebind, pktinfo,
//! TOS and TTL) and the TCP level's (`tcp_opts`: nodelay, cork, keepalive
//! knobs), and a UDP socket's shutdown.
//!
//! Dump takes state, ports and addresses from `NETLINK_SOCK_DIAG`
//! ([`crate::proc::inet_diag`]); a socket the kernel lists nowhere
//! (unbound, or a TCP socket only bound) is read from a `pidfd_getfd`
//! copy with `getsockname`. A connection (established or half-closed)
//! is dumped with `--tcp-established` through [`tcp_repair`] (its
//! `tcp-stream-<ino>.img`), recorded without its state with `--tcp-close`
//! (it comes back closed), refused without either (CRIU's message).
//! Refused, by name, with the tree left as it was: a connection not
//! established yet (`SYN_SENT`, `SYN_RECV`), one with urgent data not
//! read, a listener with connections waiting to be accepted
//! (unless `--skip-in-flight`, which leaves them out with a warning, as
//! CRIU does), a UDP socket with datagrams queued either way (CRIU drops
//! received ones; we lose nothing silently), a TCP socket closed after a
//! connection (its reads would not give its end again), and other
//! protocols (SCTP, DCCP, MPTCP, ping sockets).
//!
//! Restore: [`restore`].

pub mod raw_ip;
pub mod restore;
pub mod tcp_fin;
pub mod tcp_repair;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::AddressFamily;

use super::table::{FdView, FileTable, FilesError};
use super::{Dumped, FdCtx, FileError, FileImages, sockopts};
use crate::files::sockets::SockError;
use crate::images::pb;
use crate::proc::inet_diag::{self, InetSock};
use crate::proc::task::FdTarget;
use crate::sys::kconst::{
    AF_INET6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING,
    TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_LISTEN, TCP_NEW_SYN_RECV,
    TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT,
};
use crate::sys::sockopt::{self as so, SOL_SOCKET};

use linux_raw_sys::net as raw;

pub(super) const SOCK_STREAM: u32 = raw::SOCK_STREAM;
pub(super) const SOCK_DGRAM: u32 = raw::SOCK_DGRAM;
pub(super) const SOL_IP: u32 = raw::SOL_IP;
pub(super) const SOL_IPV6: u32 = raw::SOL_IPV6;
pub(super) const SOL_TCP: u32 = raw::IPPROTO_TCP as u32;

/// Inet sockets dumped so far.
#[derive(Debug, Default)]
pub struct InetDump {
    /// sock_diag's list per (family, protocol), asked for on the first
    /// socket of that kind.
    diag: HashMap<(u8, u8), HashMap<u32, InetSock>>,
    /// `--skip-in-flight`: a listener's connections not accepted yet are
    /// left out, with a warning naming them, instead of refused.
    pub skip_in_flight: bool,
    /// `--tcp-established`: connections are dumped (through TCP_REPAIR).
    pub tcp_established: bool,
    /// `--tcp-close`: connections are recorded without their state, to
    /// come back closed.
    pub tcp_close: bool,
    /// The connections put in repair mode (out of it again if the dump
    /// fails or the tree runs on).
    pub repair: tcp_repair::Paused,
    /// The network lock of the connections (`--tcp-established`), which
    /// each joins before it goes into repair mode. Declared after
    /// `repair`: dropped (released, on a failed dump) only once the
    /// connections are out of repair mode.
    pub lock: Option<crate::netlock::Lock>,
    /// `tcp-stream-<ino>.img` of each connection: inode, entry, queues.
    pub streams: Vec<(u32, pb::TcpStreamEntry, Vec<u8>)>,
    /// The families whose raw sockets sock_diag does not list (no
    /// raw_diag): those are read from the sockets themselves.
    raw_diag_missing: std::collections::HashSet<u8>,
}

/// How connections are taken (the options that say it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnOpts {
    pub skip_in_flight: bool,
    pub tcp_established: bool,
    pub tcp_close: bool,
}

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
fn other_inet(ip: &str, ty: u32, proto: u32) -> String {
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
            super::sockets::type_name(ty)
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
fn words(family: u8, addr: &[u8; 16]) -> Vec<u32> {
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

fn sockaddr_parts(a: std::net::SocketAddr) -> ([u8; 16], u16) {
    let mut b = [0u8; 16];
    match a {
        std::net::SocketAddr::V4(v) => b[..4].copy_from_slice(&v.ip().octets()),
        std::net::SocketAddr::V6(v) => b.copy_from_slice(&v.ip().octets()),
    }
    (b, a.port())
}

/// A socket sock_diag does not list (unbound, or a TCP socket that is
/// only bound), read from the socket itself: it must be closed (a
/// listener or connection missing from the list is in another network
/// namespace, which this dump does not see).
fn unlisted(copy: &OwnedFd, family: u8, ino: u32, tcp: bool) -> Result<InetSock, SockError> {
    let mut sk = InetSock {
        ino,
        family,
        state: TCP_CLOSE,
        ..InetSock::default()
    };
    let name = rustix::net::getsockname(copy).map_err(SockError::call("getsockname"))?;
    if let Ok(a) = std::net::SocketAddr::try_from(name) {
        (sk.src, sk.src_port) = sockaddr_parts(a);
    }
    match rustix::net::getpeername(copy) {
        Ok(Some(peer)) => {
            if let Ok(a) = std::net::SocketAddr::try_from(peer) {
                (sk.dst, sk.dst_port) = sockaddr_parts(a);
            }
        }
        Ok(None) | Err(Errno::NOTCONN) => {}
        Err(e) => return Err(SockError::sys("getpeername", e)),
    }
    let other_ns = || {
        SockError::Refused(format!(
            "{} is not in sock_diag's list (in another network namespace?)",
            show(family, &sk.src, sk.src_port)
        ))
    };
    if tcp {
        let (state, segs) = tcp_info(copy)?;
        if state != TCP_CLOSE {
            return Err(SockError::Refused(format!(
                "{} ({})",
                other_ns(),
                state_name(state)
            )));
        }
        if segs != 0 {
            // Reset, or closed after a connection: reads give its end (an
            // error, then end of file), which a new socket would not.
            return Err(SockError::Refused(format!(
                "{}, closed after a connection ({segs} segments went), which cannot be \
                 dumped yet",
                show(family, &sk.src, sk.src_port)
            )));
        }
    } else if sk.src_port != 0 {
        // A bound UDP socket is always listed.
        return Err(other_ns());
    }
    Ok(sk)
}

/// A TCP socket's state and the segments it sent and received
/// (`TCP_INFO`).
fn tcp_info(copy: &OwnedFd) -> Result<(u8, u64), SockError> {
    use linux_raw_sys::net::tcp_info;
    let mut info = [0u8; size_of::<tcp_info>()];
    let n = so::get_bytes(copy, SOL_TCP, raw::TCP_INFO, Some(&mut info))
        .map_err(SockError::call("TCP_INFO"))?;
    let word = |at: usize| {
        info.get(at..at + 4)
            .filter(|_| at + 4 <= n)
            .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let segs = u64::from(word(std::mem::offset_of!(tcp_info, tcpi_segs_out)))
        + u64::from(word(std::mem::offset_of!(tcp_info, tcpi_segs_in)));
    Ok((info[0], segs))
}

/// Why socket `sk` (of `kind`) cannot be dumped, if it cannot.
fn refusal(sk: &InetSock, tcp: bool, o: ConnOpts) -> Option<String> {
    let me = show(sk.family, &sk.src, sk.src_port);
    if !tcp {
        if sk.rqueue > 0 {
            return Some(format!(
                "{me} has datagrams queued for reading ({} bytes of its receive buffer), \
                 which cannot be dumped yet (CRIU would drop them)",
                sk.rqueue
            ));
        }
        if sk.wqueue > 0 {
            return Some(format!(
                "{me} has {} bytes waiting in its send queue (corked), which cannot be \
                 dumped yet",
                sk.wqueue
            ));
        }
        return None;
    }
    match sk.state {
        TCP_CLOSE => None,
        TCP_LISTEN if sk.rqueue > 0 && !o.skip_in_flight => Some(format!(
            "listening on {me} with {} connection(s) not accepted yet (in flight), which \
             cannot be dumped yet (--skip-in-flight leaves them out)",
            sk.rqueue
        )),
        TCP_LISTEN => None,
        TCP_SYN_SENT | TCP_SYN_RECV => Some(format!(
            "the connection {me} -> {} ({}), not established yet (a connect in progress, \
             or TCP Fast Open), which cannot be dumped yet",
            show(sk.family, &sk.dst, sk.dst_port),
            state_name(sk.state)
        )),
        TCP_ESTABLISHED | TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_CLOSE_WAIT | TCP_LAST_ACK
        | TCP_CLOSING
            if !o.tcp_established && !o.tcp_close =>
        {
            Some(format!(
                "the connection {me} -> {} ({}): Connected TCP socket, consider using \
                 --tcp-established option.",
                show(sk.family, &sk.dst, sk.dst_port),
                state_name(sk.state)
            ))
        }
        TCP_ESTABLISHED | TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_CLOSE_WAIT | TCP_LAST_ACK
        | TCP_CLOSING => None,
        other => Some(format!("{me} in {}", state_name(other))),
    }
}

/// IPv6 addresses that need a scope (an interface) to be bound: link-local
/// unicast, and multicast of node- or link-local scope.
fn needs_scope(addr: &[u8; 16]) -> bool {
    let link_local = addr[0] == 0xfe && addr[1] & 0xc0 == 0x80;
    let small_multicast = addr[0] == 0xff && matches!(addr[1] & 0x0f, 1 | 2);
    link_local || small_multicast
}

fn int(fd: &OwnedFd, level: u32, name: u32, what: &str) -> Result<i32, SockError> {
    so::get_int(fd, level, name).map_err(|e| SockError::sys(what, e))
}

/// Where socket `fd`'s `IP_FREEBIND` is: at `SOL_IP` (IPv6 TCP and UDP
/// sockets take it there too), except for a raw IPv6 socket, which has
/// only `IPV6_FREEBIND` (the same flag).
pub(super) fn freebind_opt(
    fd: &OwnedFd,
    family: u8,
) -> Result<(u32, u32, &'static str), SockError> {
    if family == AF_INET6 && int(fd, SOL_SOCKET, raw::SO_TYPE, "SO_TYPE")? as u32 == raw::SOCK_RAW {
        return Ok((SOL_IPV6, raw::IPV6_FREEBIND, "IPV6_FREEBIND"));
    }
    Ok((SOL_IP, raw::IP_FREEBIND, "IP_FREEBIND"))
}

/// The IP level's options (as CRIU records them: freebind and pktinfo
/// when on; an IPv4 socket's TOS when set and its TTL).
pub(super) fn ip_opts(fd: &OwnedFd, family: u8) -> Result<pb::IpOptsEntry, SockError> {
    let on = |level, name, what| int(fd, level, name, what).map(|v| (v != 0).then_some(true));
    let v6 = family == AF_INET6;
    let pktinfo = if v6 {
        on(SOL_IPV6, raw::IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO")?
    } else {
        on(SOL_IP, raw::IP_PKTINFO, "IP_PKTINFO")?
    };
    let (tos, ttl) = if v6 {
        (None, None)
    } else {
        let tos = int(fd, SOL_IP, raw::IP_TOS, "IP_TOS")? as u32;
        let ttl = int(fd, SOL_IP, raw::IP_TTL, "IP_TTL")? as u32;
        ((tos != 0).then_some(tos), Some(ttl))
    };
    Ok(pb::IpOptsEntry {
        freebind: {
            let (level, name, what) = freebind_opt(fd, family)?;
            on(level, name, what)?
        },
        pktinfo,
        tos,
        ttl,
        ..Default::default()
    })
}

/// The TCP level's options (nodelay and cork when on, the keepalive
/// knobs always); an empty entry for UDP, as CRIU writes it.
pub(super) fn tcp_opts(fd: &OwnedFd, tcp: bool) -> Result<pb::TcpOptsEntry, SockError> {
    if !tcp {
        return Ok(pb::TcpOptsEntry::default());
    }
    let on = |name, what| int(fd, SOL_TCP, name, what).map(|v| (v != 0).then_some(true));
    let val = |name, what| int(fd, SOL_TCP, name, what).map(|v| Some(v as u32));
    Ok(pb::TcpOptsEntry {
        cork: on(raw::TCP_CORK, "TCP_CORK")?,
        nodelay: on(raw::TCP_NODELAY, "TCP_NODELAY")?,
        keepcnt: val(raw::TCP_KEEPCNT, "TCP_KEEPCNT")?,
        keepidle: val(raw::TCP_KEEPIDLE, "TCP_KEEPIDLE")?,
        keepintvl: val(raw::TCP_KEEPINTVL, "TCP_KEEPINTVL")?,
    })
}

/// Dumps `copy` (a copy of `ctx.fd`, a socket of `family`, inode `ino`):
/// its file id and `files.img` entry (`id` is the id it gets).
pub fn dump(
    ctx: &FdCtx,
    copy: &OwnedFd,
    family: AddressFamily,
    ino: u64,
    st: &mut Dumped,
    id: u32,
) -> Result<(u32, pb::FileEntry), FilesError> {
    let fam = family.as_raw() as u8;
    let ip = if fam == AF_INET6 { "IPv6" } else { "IPv4" };
    let get = |name, what| {
        so::get_int(copy, SOL_SOCKET, name).map_err(|e| ctx.err("a socket", format!("{what}: {e}")))
    };
    let ty = get(raw::SO_TYPE, "SO_TYPE")? as u32;
    let proto = get(raw::SO_PROTOCOL, "SO_PROTOCOL")? as u32;
    let Some(kind) = kind_name(ty, proto) else {
        return Err(FilesError::Unsupported {
            pid: ctx.pid,
            fd: ctx.fd,
            what: other_inet(ip, ty, proto),
        });
    };
    let tcp = proto == u32::from(IPPROTO_TCP);
    let ino = u32::try_from(ino).map_err(|_| ctx.err(kind, format!("inode {ino}")))?;
    if ty == raw::SOCK_RAW {
        let (sk, in_diag) =
            raw_ip::sock(copy, fam, ino, &mut st.inet).map_err(|e| ctx.fail(kind, e))?;
        return entry(ctx, copy, family, &sk, (ty, proto), in_diag, st, id);
    }
    let diag = match st.inet.diag.entry((fam, proto as u8)) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let states = if tcp {
                inet_diag::tcp_states()
            } else {
                u32::MAX
            };
            let all = inet_diag::collect(fam, proto as u8, states)
                .map_err(|e| ctx.err(kind, format!("sock_diag: {e}")))?;
            v.insert(all)
        }
    };
    let listed = diag.get(&ino).cloned();
    let in_diag = listed.is_some();
    let sk = match listed {
        Some(sk) => sk,
        None => unlisted(copy, fam, ino, tcp).map_err(|e| ctx.fail(kind, e))?,
    };
    let conn_opts = ConnOpts {
        skip_in_flight: st.inet.skip_in_flight,
        tcp_established: st.inet.tcp_established,
        tcp_close: st.inet.tcp_close,
    };
    if let Some(why) = refusal(&sk, tcp, conn_opts) {
        return Err(ctx.err(kind, why).into());
    }
    if tcp && sk.state == TCP_LISTEN && sk.rqueue > 0 {
        crate::pr_warn!(
            "fd {} of task {}: {} connection(s) not accepted yet by the listener on {} are \
             left out (--skip-in-flight)",
            ctx.fd,
            ctx.pid,
            sk.rqueue,
            show(fam, &sk.src, sk.src_port)
        );
    }
    entry(ctx, copy, family, &sk, (ty, proto), in_diag, st, id)
}

/// The `files.img` entry of socket `sk` (`copy` of `ctx.fd`, of `family`,
/// type and protocol `kind`, listed by sock_diag or not), file `id`; a
/// connection's state is saved on the way (see [`connection`]).
#[allow(clippy::too_many_arguments)]
fn entry(
    ctx: &FdCtx,
    copy: &OwnedFd,
    family: AddressFamily,
    sk: &InetSock,
    (ty, proto): (u32, u32),
    in_diag: bool,
    st: &mut Dumped,
    id: u32,
) -> Result<(u32, pb::FileEntry), FilesError> {
    let fam = family.as_raw() as u8;
    let kind = kind_name(ty, proto).unwrap_or("an inet socket");
    let tcp = proto == u32::from(IPPROTO_TCP);
    let ino = sk.ino;
    let conn_opts = ConnOpts {
        skip_in_flight: st.inet.skip_in_flight,
        tcp_established: st.inet.tcp_established,
        tcp_close: st.inet.tcp_close,
    };
    let e = |w: SockError| ctx.fail(kind, w);
    let v6 = fam == AF_INET6;
    let v6only = if v6 {
        Some(int(copy, SOL_IPV6, raw::IPV6_V6ONLY, "IPV6_V6ONLY").map_err(e)? != 0)
    } else {
        None
    };
    let opts = sockopts::dump(copy, family).map_err(e)?;
    let ifname = if v6 && sk.src_port != 0 && needs_scope(&sk.src) {
        // A link-local bind is bound to its interface.
        Some(opts.so_bound_dev.clone().ok_or_else(|| {
            e(SockError::Refused(format!(
                "bound to the link-local {} without an interface",
                show(fam, &sk.src, sk.src_port)
            )))
        })?)
    } else {
        None
    };
    let tcp_opts = tcp_opts(copy, tcp).map_err(e)?;
    let mut state = sk.state;
    if tcp && tcp_repair::repairable(state) && !conn_opts.tcp_close {
        state = connection(copy, sk, opts.reuseaddr == Some(true), ino, st).map_err(e)?;
    }
    let mut ip_opts = ip_opts(copy, fam).map_err(e)?;
    if ty == raw::SOCK_RAW {
        ip_opts.raw = Some(raw_ip::opts(copy, fam, proto).map_err(e)?);
    }
    let entry = pb::InetSkEntry {
        id,
        ino,
        family: u32::from(fam),
        r#type: ty,
        proto,
        state: u32::from(state),
        src_port: u32::from(sk.src_port),
        dst_port: u32::from(sk.dst_port),
        flags: ctx.flags,
        backlog: if sk.state == TCP_LISTEN { sk.wqueue } else { 0 },
        src_addr: words(fam, &sk.src),
        dst_addr: words(fam, &sk.dst),
        fown: pb::FownEntry::default(),
        opts,
        v6only,
        ip_opts: Some(ip_opts),
        ifname,
        ns_id: in_diag.then_some(super::unix::NET_NS_ID),
        shutdown: (!tcp && ty != raw::SOCK_RAW && sk.shutdown & 3 != 0)
            .then_some(i32::from(sk.shutdown & 3)),
        tcp_opts: Some(tcp_opts),
    };
    Ok((
        id,
        pb::FileEntry {
            r#type: pb::FdTypes::Inetsk as i32,
            id,
            isk: Some(entry),
            ..Default::default()
        },
    ))
}

/// A connection (`--tcp-established`): put in repair mode (out of it
/// again if anything fails later, see [`tcp_repair::Paused`]) and its
/// state read into its `tcp-stream` image; the state it is in.
fn connection(
    copy: &OwnedFd,
    sk: &InetSock,
    reuseaddr: bool,
    ino: u32,
    st: &mut Dumped,
) -> Result<u8, SockError> {
    let conn = tcp_repair::Connection {
        family: sk.family,
        src: std::net::SocketAddr::new(ip_of(sk.family, &sk.src), sk.src_port),
        dst: std::net::SocketAddr::new(ip_of(sk.family, &sk.dst), sk.dst_port),
    };
    // Locked before it goes into repair mode, as CRIU's
    // tcp_repair_establised does: from here on no packet of its peer
    // reaches it. In repair mode the kernel still takes in (and acks)
    // what arrives, so a peer that keeps sending would otherwise have
    // bytes acked after the queues were read, lost with the tree.
    if let Some(lock) = st.inet.lock.as_mut() {
        lock.add(&crate::netlock::Conn::new(conn.src, conn.dst))?;
    }
    tcp_repair::pause(&mut st.inet.repair, copy, reuseaddr, conn)?;
    let saved = tcp_repair::save(copy)?;
    crate::pr_info!(
        "Dumped the TCP connection {conn} ({}): {} bytes to read, {} to send ({} unsent)",
        state_name(saved.state),
        saved.entry.inq_len,
        saved.entry.outq_len,
        saved.entry.unsq_len.unwrap_or(0)
    );
    st.inet.streams.push((ino, saved.entry, saved.queues));
    Ok(saved.state)
}

const KIND: &str = "an inet socket";

/// The `INETSK` kind: `socket:[INO]` fds of address family `AF_INET` or
/// `AF_INET6`.
pub struct Inet;

impl super::kind::FileKind for Inet {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Inetsk
    }

    fn claims(&self, fd: &FdView<'_>) -> bool {
        matches!(fd.target, FdTarget::Socket(_))
            && (fd.family == Some(AddressFamily::INET.as_raw())
                || fd.family == Some(AddressFamily::INET6.as_raw()))
    }

    fn dump(&self, files: &mut FileTable, v: &FdView<'_>) -> Result<u32, FilesError> {
        let (FdTarget::Socket(ino), Some(family)) = (v.target, v.family) else {
            return Err(v.unsupported());
        };
        let copy = v.ctx.steal("a socket")?;
        files.kinds.inet.skip_in_flight = v.opts.skip_in_flight;
        files.kinds.inet.tcp_established = v.opts.tcp_established;
        files.kinds.inet.tcp_close = v.opts.tcp_close;
        let next = files.next_id();
        let family = AddressFamily::from_raw(family);
        let (id, entry) = dump(&v.ctx, &copy, family, *ino, &mut files.kinds, next)?;
        files.entries.push(entry);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &FileImages) -> Option<(pb::FownEntry, u32)> {
        e.isk.as_ref().map(|x| (x.fown, x.flags))
    }

    fn open(&self, o: &mut super::Opener<'_>, e: &pb::FileEntry) -> Result<OwnedFd, FileError> {
        if e.isk.is_none() {
            return Err(super::kind::no_body(e, KIND));
        }
        restore::open(o, e.id)
    }
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
    fn connections_and_in_flight_connections_are_refused_by_name() {
        let mut sk = InetSock {
            family: AF_INET,
            state: TCP_ESTABLISHED,
            src_port: 40000,
            dst_port: 8000,
            ..InetSock::default()
        };
        sk.src[..4].copy_from_slice(&[127, 0, 0, 1]);
        sk.dst[..4].copy_from_slice(&[127, 0, 0, 2]);
        let none = ConnOpts::default();
        let why = refusal(&sk, true, none).unwrap();
        assert!(
            why.contains("127.0.0.1:40000 -> 127.0.0.2:8000 (ESTABLISHED)")
                && why.contains("Connected TCP socket, consider using --tcp-established option."),
            "{why}"
        );
        let est = ConnOpts {
            tcp_established: true,
            ..none
        };
        assert_eq!(refusal(&sk, true, est), None);
        sk.state = TCP_SYN_SENT;
        assert!(
            refusal(&sk, true, est)
                .unwrap()
                .contains("not established yet")
        );
        sk.state = TCP_LISTEN;
        sk.rqueue = 2;
        assert!(
            refusal(&sk, true, none)
                .unwrap()
                .contains("2 connection(s) not accepted")
        );
        let skip = ConnOpts {
            skip_in_flight: true,
            ..none
        };
        assert_eq!(refusal(&sk, true, skip), None, "--skip-in-flight");
        sk.rqueue = 0;
        assert_eq!(refusal(&sk, true, none), None);
        sk.state = TCP_CLOSE;
        sk.rqueue = 300;
        assert!(
            refusal(&sk, false, none)
                .unwrap()
                .contains("has datagrams queued for reading (300 bytes")
        );
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
