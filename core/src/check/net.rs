//! Network probes: sock_diag (the netlink interface dump uses to list
//! sockets), IPv6 options, iptables.

use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, netlink};

use super::{CheckResult, KernelFeatures, problem};

use crate::sys::kconst::{
    AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX, IPPROTO_RAW, IPPROTO_TCP, IPPROTO_UDP,
    IPPROTO_UDPLITE, NDIAG_PROTO_ALL, NETNSA_NSID, NETNSA_PID, NLM_F_DUMP, NLM_F_REQUEST,
    NLMSG_HDRLEN, RTM_GETNSID, RTM_NEWNSID, SOCK_DIAG_BY_FAMILY,
};

/// One sock_diag dump request: the family-specific request body.
fn request(body: &[u8]) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + body.len()) as u32;
    let mut msg = Vec::with_capacity(len as usize);
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    msg.extend_from_slice(body);
    msg
}

/// `struct unix_diag_req`, asking for every state and the names.
fn unix_req() -> Vec<u8> {
    let mut b = vec![AF_UNIX, 0, 0, 0];
    b.extend_from_slice(&u32::MAX.to_ne_bytes()); // states
    b.extend_from_slice(&0u32.to_ne_bytes()); // ino
    b.extend_from_slice(&1u32.to_ne_bytes()); // show: UDIAG_SHOW_NAME
    b.extend_from_slice(&[0; 8]); // cookie
    b
}

/// `struct inet_diag_req_v2` for every socket of `family`/`protocol`. For
/// raw sockets the pad byte is `sdiag_raw_protocol`.
fn inet_req(family: u8, protocol: u8) -> Vec<u8> {
    let raw_protocol = if protocol == IPPROTO_RAW {
        IPPROTO_RAW
    } else {
        0
    };
    let mut b = vec![family, protocol, 0, raw_protocol];
    b.extend_from_slice(&u32::MAX.to_ne_bytes()); // states
    b.extend_from_slice(&[0; 48]); // inet_diag_sockid: match anything
    b
}

/// `struct packet_diag_req` / `struct netlink_diag_req` (same shape).
fn simple_req(family: u8, protocol: u8) -> Vec<u8> {
    let mut b = vec![family, protocol, 0, 0];
    b.extend_from_slice(&0u32.to_ne_bytes()); // ino
    b.extend_from_slice(&0u32.to_ne_bytes()); // show
    b.extend_from_slice(&[0; 8]); // cookie
    b
}

fn diag_socket() -> Result<OwnedFd, Errno> {
    rustix::net::socket(
        AddressFamily::NETLINK,
        SocketType::RAW,
        Some(netlink::SOCK_DIAG),
    )
}

/// Runs one dump request and counts the sockets it lists.
fn dump(sk: &OwnedFd, body: &[u8]) -> Result<usize, Errno> {
    crate::sys::netlink::send(sk, &request(body))?;
    let mut count = 0;
    crate::sys::netlink::answers(sk, |_| count += 1)?;
    Ok(count)
}

/// The socket kinds `criu dump` must be able to list, and whether each is
/// required (the others only warn, as CRIU does for raw and UDP-lite).
fn diag_requests(ipv6: bool) -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut reqs = vec![
        ("unix", unix_req(), true),
        ("tcp", inet_req(AF_INET, IPPROTO_TCP), true),
        ("udp", inet_req(AF_INET, IPPROTO_UDP), true),
        ("udplite", inet_req(AF_INET, IPPROTO_UDPLITE), false),
    ];
    if ipv6 {
        reqs.push(("tcp6", inet_req(AF_INET6, IPPROTO_TCP), true));
        reqs.push(("udp6", inet_req(AF_INET6, IPPROTO_UDP), true));
        reqs.push(("udplite6", inet_req(AF_INET6, IPPROTO_UDPLITE), false));
    }
    reqs.push(("packet", simple_req(AF_PACKET, 0), true));
    reqs.push(("netlink", simple_req(AF_NETLINK, NDIAG_PROTO_ALL), true));
    reqs
}

pub(super) fn check_sock_diag(k: &KernelFeatures) -> CheckResult {
    let sk = diag_socket().map_err(|e| {
        problem!(
            Error,
            "Can't make diag socket for check: {}",
            super::procfs::strerror(e)
        )
    })?;
    let mut failed = false;
    for (name, body, required) in diag_requests(k.ipv6) {
        match dump(&sk, &body) {
            Ok(n) => crate::pr_debug!("sock_diag: {n} {name} sockets"),
            Err(e) if required => {
                crate::pr_err!(
                    "Can't collect {name} sockets: {}",
                    super::procfs::strerror(e)
                );
                failed = true;
            }
            Err(e) => crate::pr_warn!("The current kernel doesn't support {name}_diag: {e}"),
        }
    }
    if failed {
        return Err(problem!(
            Msg,
            "The sock diag infrastructure is incomplete.\nMake sure you have:\n \
             1. *_DIAG kernel config options turned on;\n \
             2. *_diag.ko modules loaded (if compiled as modules)."
        ));
    }
    Ok(())
}

pub(super) fn check_net_diag_raw(k: &KernelFeatures) -> CheckResult {
    let sk = diag_socket().map_err(|e| problem!(Error, "Can't make diag socket: {e}"))?;
    let v4 = dump(&sk, &inet_req(AF_INET, IPPROTO_RAW));
    let v6 = if k.ipv6 {
        dump(&sk, &inet_req(AF_INET6, IPPROTO_RAW))
    } else {
        Ok(0)
    };
    match (v4, v6) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(e), _) | (_, Err(e)) => Err(problem!(
            Warn,
            "The current kernel doesn't support raw_diag: {e}"
        )),
    }
}

/// Asks rtnetlink for the id of our own network namespace as seen from
/// itself (`RTM_GETNSID` with `NETNSA_PID`): a reply with `NETNSA_NSID`
/// (even -1, "not assigned") means the kernel has namespace ids.
pub(super) fn probe_nsid() -> bool {
    let Ok(sk) = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None) else {
        return false;
    };
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    let mut msg = Vec::new();
    msg.extend_from_slice(&28u32.to_ne_bytes()); // header + rtgenmsg + attr
    msg.extend_from_slice(&RTM_GETNSID.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0]); // rtgenmsg { AF_UNSPEC }, padded
    msg.extend_from_slice(&8u16.to_ne_bytes());
    msg.extend_from_slice(&NETNSA_PID.to_ne_bytes());
    msg.extend_from_slice(&pid.to_ne_bytes());
    let addr = netlink::SocketAddrNetlink::new(0, 0);
    if rustix::net::sendto(&sk, &msg, SendFlags::empty(), &addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    let Ok((n, _)) = rustix::net::recv(&sk, &mut buf[..], RecvFlags::empty()) else {
        return false;
    };
    if n < NLMSG_HDRLEN + 4 || u16::from_ne_bytes([buf[4], buf[5]]) != RTM_NEWNSID {
        return false;
    }
    // Attributes follow the header and the 4-byte rtgenmsg.
    let mut off = NLMSG_HDRLEN + 4;
    while off + 4 <= n {
        let len = u16::from_ne_bytes([buf[off], buf[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([buf[off + 2], buf[off + 3]]);
        if kind == NETNSA_NSID {
            return true;
        }
        if len < 4 {
            break;
        }
        off += (len + 3) & !3;
    }
    false
}

pub(super) fn check_nsid(k: &KernelFeatures) -> CheckResult {
    if !k.nsid {
        return Err(problem!(Warn, "NSID isn't supported"));
    }
    Ok(())
}

pub(super) fn probe_ipv6() -> bool {
    super::procfs::exists("/proc/sys/net/ipv6")
}

pub(super) fn probe_ipv6_freebind() -> bool {
    let Ok(sk) = rustix::net::socket(AddressFamily::INET6, SocketType::DGRAM, None) else {
        return false;
    };
    rustix::net::sockopt::set_ipv6_freebind(&sk, true).is_ok()
}

pub(super) fn check_ipv6_freebind(k: &KernelFeatures) -> CheckResult {
    if !k.ipv6_freebind {
        return Err(problem!(Info, "IPV6_FREEBIND isn't supported"));
    }
    Ok(())
}

/// Whether an executable `name` is on `$PATH`.
fn in_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p).any(|dir| {
                std::fs::metadata(dir.join(name))
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

pub(super) fn check_ipt_legacy(k: &KernelFeatures) -> CheckResult {
    if !in_path("iptables-legacy") {
        return Err(problem!(
            Warn,
            "Couldn't find iptables version which is using iptables legacy API"
        ));
    }
    if k.ipv6 && !in_path("ip6tables-legacy") {
        return Err(problem!(
            Warn,
            "Couldn't find ip6tables version which is using iptables legacy API"
        ));
    }
    Ok(())
}
