//! The options of the IP level (`ip_opts`) and the TCP level
//! (`tcp_opts`) that an inet socket's entry records, read from a socket
//! (by dump, and by restore to set only what differs).

use std::os::fd::OwnedFd;

use super::{SOL_IP, SOL_IPV6, SOL_TCP};
use crate::files::sockets::SockError;
use crate::images::pb;
use crate::sys::kconst::AF_INET6;
use crate::sys::sockopt::{self as so, SOL_SOCKET};

use linux_raw_sys::net as raw;

pub(super) fn int(fd: &OwnedFd, level: u32, name: u32, what: &str) -> Result<i32, SockError> {
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
