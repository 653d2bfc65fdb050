//! Sockets of the families no kind dumps yet (CRIU's `dump_socket` in
//! `criu/sockets.c` knows them by family): their refusal names what each
//! is (a netlink socket and its protocol, a packet socket, a vsock, ...)
//! rather than a family number. Unix sockets are [`super::unix`]'s, TCP
//! and UDP over IPv4 and IPv6 [`super::inet`]'s.

use std::os::fd::OwnedFd;

use rustix::net::AddressFamily;

use super::FdCtx;
use crate::sys::sockopt::{self as so, SOL_SOCKET};

use linux_raw_sys::{net as raw, netlink as nl};

/// A socket type's name (`SOCK_STREAM`, ...), for messages.
pub(super) fn type_name(ty: u32) -> String {
    match ty {
        raw::SOCK_STREAM => "SOCK_STREAM".into(),
        raw::SOCK_DGRAM => "SOCK_DGRAM".into(),
        raw::SOCK_RAW => "SOCK_RAW".into(),
        raw::SOCK_SEQPACKET => "SOCK_SEQPACKET".into(),
        raw::SOCK_RDM => "SOCK_RDM".into(),
        other => format!("type {other}"),
    }
}

fn netlink_name(proto: u32) -> String {
    let name = match proto {
        nl::NETLINK_ROUTE => "NETLINK_ROUTE",
        nl::NETLINK_USERSOCK => "NETLINK_USERSOCK",
        nl::NETLINK_FIREWALL => "NETLINK_FIREWALL",
        nl::NETLINK_SOCK_DIAG => "NETLINK_SOCK_DIAG",
        nl::NETLINK_NFLOG => "NETLINK_NFLOG",
        nl::NETLINK_XFRM => "NETLINK_XFRM",
        nl::NETLINK_SELINUX => "NETLINK_SELINUX",
        nl::NETLINK_ISCSI => "NETLINK_ISCSI",
        nl::NETLINK_AUDIT => "NETLINK_AUDIT",
        nl::NETLINK_FIB_LOOKUP => "NETLINK_FIB_LOOKUP",
        nl::NETLINK_CONNECTOR => "NETLINK_CONNECTOR",
        nl::NETLINK_NETFILTER => "NETLINK_NETFILTER",
        nl::NETLINK_IP6_FW => "NETLINK_IP6_FW",
        nl::NETLINK_DNRTMSG => "NETLINK_DNRTMSG",
        nl::NETLINK_KOBJECT_UEVENT => "NETLINK_KOBJECT_UEVENT",
        nl::NETLINK_GENERIC => "NETLINK_GENERIC",
        nl::NETLINK_SCSITRANSPORT => "NETLINK_SCSITRANSPORT",
        nl::NETLINK_ECRYPTFS => "NETLINK_ECRYPTFS",
        nl::NETLINK_RDMA => "NETLINK_RDMA",
        nl::NETLINK_CRYPTO => "NETLINK_CRYPTO",
        nl::NETLINK_SMC => "NETLINK_SMC",
        other => return format!("protocol {other}"),
    };
    name.into()
}

/// What socket `ctx.fd` (of address family `family`, `SO_DOMAIN`) is,
/// for the refusal of a family not dumped yet.
pub fn describe(ctx: &FdCtx, family: Option<u16>) -> String {
    let Some(family) = family else {
        return "a socket of an unknown address family".into();
    };
    match ctx.steal("a socket") {
        Ok(copy) => describe_copy(&copy, AddressFamily::from_raw(family)),
        Err(e) => format!("a socket of address family {family} ({e})"),
    }
}

fn describe_copy(copy: &OwnedFd, family: AddressFamily) -> String {
    let f = u32::from(family.as_raw());
    let ty = so::get_int(copy, SOL_SOCKET, raw::SO_TYPE).map(|t| t as u32);
    let proto = so::get_int(copy, SOL_SOCKET, raw::SO_PROTOCOL).map(|p| p as u32);
    let ty_text = ty.map_or_else(|e| format!("type unknown: {e}"), type_name);
    match f {
        raw::AF_NETLINK => match proto {
            Ok(p) => format!("a netlink socket ({})", netlink_name(p)),
            Err(e) => format!("a netlink socket (SO_PROTOCOL: {e})"),
        },
        raw::AF_PACKET => format!("a packet socket ({ty_text})"),
        raw::AF_VSOCK => format!("a vsock socket ({ty_text})"),
        raw::AF_ALG => "an AF_ALG (kernel crypto) socket".into(),
        raw::AF_BLUETOOTH => format!("a Bluetooth socket ({ty_text})"),
        raw::AF_CAN => format!("a CAN socket ({ty_text})"),
        raw::AF_XDP => "an AF_XDP socket".into(),
        raw::AF_TIPC => format!("a TIPC socket ({ty_text})"),
        raw::AF_KEY => "a PF_KEY socket".into(),
        raw::AF_RDS => "an RDS socket".into(),
        raw::AF_PPPOX => "a PPPoX socket".into(),
        raw::AF_QIPCRTR => "a Qualcomm IPC router socket".into(),
        raw::AF_SMC => "an SMC socket".into(),
        raw::AF_MCTP => "an MCTP socket".into(),
        other => format!("a socket of address family {other} ({ty_text})"),
    }
}
