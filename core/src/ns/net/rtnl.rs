//! Minimal rtnetlink for a net namespace's links, addresses, routes and
//! rules: dumps that keep every answer message whole (CRIU's `ifaddr`,
//! `route` and `rule` images are those messages as `ip ... save` writes
//! them), requests that want an ack, and a message builder. Numbers come
//! from linux-raw-sys; the socket is made by the calling thread, so in its
//! net namespace.

use std::os::fd::OwnedFd;

use linux_raw_sys::netlink as nl;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType};

use crate::sys::kconst::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN};
use crate::sys::netlink::send;

pub fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// An rtnetlink socket (NETLINK_ROUTE is protocol 0) of the calling
/// thread's net namespace.
pub fn socket() -> Result<OwnedFd, Errno> {
    rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
}

/// A message being built: header, fixed part, attributes.
pub struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    pub fn new(kind: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        buf[8..12].copy_from_slice(&1u32.to_ne_bytes());
        Msg { buf }
    }

    /// The fixed part (`ifinfomsg`, `rtgenmsg`, ...).
    pub fn fixed(mut self, bytes: &[u8]) -> Msg {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// Raw bytes (the fixed part of a nested message), 4-byte aligned.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    pub fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// Starts a nested attribute; [`Msg::end_nest`] fixes its length.
    pub fn nest(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.attr(kind, &[]);
        at
    }

    pub fn end_nest(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    pub fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// Every answer message whole (header included) until the dump ends or
/// the ack comes.
fn answers(sk: &OwnedFd) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    match crate::sys::netlink::answers(sk, |m| out.push(m.to_vec()))? {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Dump request `kind` with fixed part `fixed`: every answer message.
pub fn dump(sk: &OwnedFd, kind: u16, fixed: &[u8]) -> Result<Vec<Vec<u8>>, Errno> {
    send(
        sk,
        &Msg::new(kind, NLM_F_REQUEST | NLM_F_DUMP)
            .fixed(fixed)
            .finish(),
    )?;
    answers(sk)
}

/// Send `msg` (a whole message) asking for an ack; the kernel's answer.
pub fn request(sk: &OwnedFd, msg: &[u8]) -> Result<(), Errno> {
    let mut msg = msg.to_vec();
    let flags = u16::from_ne_bytes([msg[6], msg[7]]) | NLM_F_REQUEST | NLM_F_ACK;
    msg[6..8].copy_from_slice(&flags.to_ne_bytes());
    send(sk, &msg)?;
    answers(sk).map(drop)
}

/// The attributes of a whole message whose fixed part is `fixed` bytes.
pub fn attrs(msg: &[u8], fixed: usize) -> Vec<(u16, &[u8])> {
    crate::proc::sock_diag::attrs(msg, NLMSG_HDRLEN + align4(fixed)).unwrap_or_default()
}

/// The first attribute `kind` of `attrs`.
pub fn get<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

/// The message types and attributes used here, from linux-raw-sys.
pub mod k {
    use super::nl;
    pub const RTM_NEWLINK: u16 = nl::RTM_NEWLINK as u16;
    pub const RTM_SETLINK: u16 = nl::RTM_SETLINK as u16;
    pub const RTM_GETLINK: u16 = nl::RTM_GETLINK as u16;
    pub const RTM_GETADDR: u16 = nl::RTM_GETADDR as u16;
    pub const RTM_GETROUTE: u16 = nl::RTM_GETROUTE as u16;
    pub const RTM_GETRULE: u16 = nl::RTM_GETRULE as u16;
    pub const IFLA_ADDRESS: u16 = nl::IFLA_ADDRESS as u16;
    pub const IFLA_IFNAME: u16 = nl::IFLA_IFNAME as u16;
    pub const IFLA_MTU: u16 = nl::IFLA_MTU as u16;
    pub const IFLA_LINK: u16 = nl::IFLA_LINK as u16;
    pub const IFLA_MASTER: u16 = nl::IFLA_MASTER as u16;
    pub const IFLA_LINKINFO: u16 = nl::IFLA_LINKINFO as u16;
    pub const IFLA_NET_NS_FD: u16 = nl::IFLA_NET_NS_FD as u16;
    pub const IFLA_LINK_NETNSID: u16 = nl::IFLA_LINK_NETNSID as u16;
    pub const IFLA_INFO_KIND: u16 = nl::IFLA_INFO_KIND as u16;
    pub const IFLA_INFO_DATA: u16 = nl::IFLA_INFO_DATA as u16;
    pub const RTA_TABLE: u16 = nl::rtattr_type_t::RTA_TABLE as u16;
    pub const RTA_GATEWAY: u16 = nl::rtattr_type_t::RTA_GATEWAY as u16;
    pub const RTA_PREFSRC: u16 = nl::rtattr_type_t::RTA_PREFSRC as u16;
    pub const RT_TABLE_MAIN: u32 = nl::rt_class_t::RT_TABLE_MAIN as u32;
    pub const RTM_F_CLONED: u32 = nl::RTM_F_CLONED;
}
