//! The dump half: an inet socket's state from sock_diag (or the socket
//! itself when sock_diag does not list it), refused with the reason when
//! it cannot be dumped, else its `files.img` entry; a connection is
//! paused and saved through [`super::tcp_repair`].

use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::AddressFamily;

use super::names::{
    ip_of, kind_name, needs_scope, other_inet, show, sockaddr_parts, state_name, words,
};
use super::opts::{int, ip_opts, tcp_opts};
use super::{ConnOpts, SOL_IPV6, SOL_TCP, raw_ip, tcp_repair};
use crate::files::sockets::SockError;
use crate::files::table::FilesError;
use crate::files::{Dumped, FdCtx, sockopts};
use crate::images::pb;
use crate::proc::inet_diag::{self, InetSock};
use crate::sys::kconst::{
    AF_INET6, IPPROTO_TCP, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1,
    TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT,
};
use crate::sys::sockopt::{self as so, SOL_SOCKET};

use linux_raw_sys::net as raw;

/// A socket sock_diag does not list (unbound, or a TCP socket that is
/// only bound), read from the socket itself: it must be closed (a
/// listener or connection missing from the list is in another network
/// namespace, which this dump does not see).
pub(super) fn unlisted(
    copy: &OwnedFd,
    family: u8,
    ino: u32,
    tcp: bool,
) -> Result<InetSock, SockError> {
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
pub(super) fn tcp_info(copy: &OwnedFd) -> Result<(u8, u64), SockError> {
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
pub(super) fn refusal(sk: &InetSock, tcp: bool, o: ConnOpts) -> Option<String> {
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
pub(super) fn entry(
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
        ns_id: in_diag.then_some(crate::files::unix::NET_NS_ID),
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
pub(super) fn connection(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::kconst::AF_INET;

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
}
