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
//!
//! The parts: `dump` (the dump half), `names` (how sockets, states and
//! addresses are spelled, in messages and in the images), `opts` (the IP
//! and TCP levels' options, read by both halves), [`raw_ip`],
//! [`tcp_repair`] (connections) and [`tcp_fin`] (the peer's FIN a restore
//! sends).

mod dump;
mod names;
mod opts;
pub mod raw_ip;
pub mod restore;
pub mod tcp_fin;
pub mod tcp_repair;

pub use dump::dump;
use names::{addr_bytes, ip_of, kind_name};
pub use names::{show, state_name};
use opts::{freebind_opt, ip_opts, tcp_opts};

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use rustix::net::AddressFamily;

use super::table::{FdView, FileTable, FilesError};
use super::{FileError, FileImages};
use crate::images::pb;
use crate::proc::inet_diag::InetSock;
use crate::proc::task::FdTarget;

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
