//! Sockets of the families no kind dumps yet (CRIU's `dump_socket` in
//! `criu/sockets.c` knows them by family): their refusal names what each
//! is (a vsock, a Bluetooth socket, ...) rather than a family number.
//! Unix sockets are [`super::unix`]'s, TCP, UDP and raw sockets over IPv4
//! and IPv6 [`super::inet`]'s, netlink sockets [`super::netlink`]'s and
//! packet sockets [`super::packet`]'s; the few checks those share are
//! here too.

use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::AddressFamily;

use super::FdCtx;
use crate::sys::sockopt::{self as so, SOL_SOCKET};

use linux_raw_sys::{net as raw, netlink as nl};

/// What went wrong with a socket (of any family: unix, inet, netlink,
/// packet, and the options they share), for [`super::FileError`] to name
/// the fd or file id it happened to.
#[derive(Debug, thiserror::Error)]
pub enum SockError {
    /// A call on the socket, or an option read or set, that failed: what
    /// it was (the call and its arguments), and the kernel's answer.
    #[error("{what}: {source}")]
    Sys { what: String, source: Errno },
    /// A file of the tool (its network namespace, a socket's directory)
    /// that could not be read or made.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A socket in a state, or with options, that cannot be dumped or
    /// restored (yet); the message says which and why.
    #[error("{0}")]
    Refused(String),
    /// An image entry that does not describe a socket that can exist.
    #[error("{0}")]
    BadEntry(String),
    /// The kernel answered something this tool does not understand.
    #[error("{0}")]
    Unexpected(String),
    /// `TCP_REPAIR` refused: the tool lacks `CAP_NET_ADMIN`.
    #[error("TCP_REPAIR: not permitted (CAP_NET_ADMIN is needed)")]
    RepairNotPermitted(#[source] Errno),
    /// The tool's own list of sockets (`/proc/self/net/*`) that could not
    /// be read.
    #[error(transparent)]
    Listing(#[from] crate::proc::net_raw::NetRawError),
    /// Locking the network of a connection about to be paused.
    #[error(transparent)]
    NetLock(#[from] crate::netlock::NetLockError),
    /// Setting the status flags of a restored socket.
    #[error(transparent)]
    Status(#[from] super::SysFail),
    /// A step of a larger one that failed (`what` names the larger one).
    #[error("{what}: {source}")]
    In {
        what: String,
        source: Box<SockError>,
    },
}

impl SockError {
    /// A failed call or option (`what`: which, with its arguments).
    pub fn sys(what: impl Into<String>, source: Errno) -> Self {
        Self::Sys {
            what: what.into(),
            source,
        }
    }

    /// For `map_err`: a failed call or option named `what`.
    pub fn call(what: &str) -> impl FnOnce(Errno) -> Self + '_ {
        move |source| Self::sys(what, source)
    }

    /// A failed file operation (`what`: which, on what path).
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    /// This error as the cause of a failed `what`.
    pub fn within(self, what: impl Into<String>) -> Self {
        Self::In {
            what: what.into(),
            source: Box::new(self),
        }
    }
}

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

/// Whether socket `fd` has something to read (CRIU's `fd_has_data`: a
/// `poll` that does not wait).
pub(super) fn has_data(fd: &OwnedFd) -> Result<bool, SockError> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let n = rustix::event::poll(&mut fds, Some(&now)).map_err(SockError::call("poll"))?;
    Ok(n > 0 && fds[0].revents().contains(PollFlags::IN))
}

/// Whether socket `fd` is in the network namespace of the dump (the
/// tool's: sock_diag lists that one only), `SIOCGSKNS`.
pub(super) fn in_our_netns(fd: &OwnedFd) -> Result<bool, SockError> {
    use std::os::unix::fs::MetadataExt;
    let ns = crate::sys::probe::socket_netns(fd).map_err(SockError::call("SIOCGSKNS"))?;
    let theirs = rustix::fs::fstat(&ns).map_err(SockError::call("fstat of its netns"))?;
    let ours = std::fs::metadata("/proc/self/ns/net").map_err(|source| SockError::Io {
        what: "/proc/self/ns/net".into(),
        source,
    })?;
    #[allow(clippy::useless_conversion)] // st_dev is not a u64 on every target
    Ok(u64::from(theirs.st_ino) == ours.ino() && u64::from(theirs.st_dev) == ours.dev())
}

/// The name of netlink protocol `proto` (`NETLINK_ROUTE`, ...).
pub(super) fn netlink_name(proto: u32) -> String {
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
    let ty_text = ty.map_or_else(|e| format!("type unknown: {e}"), type_name);
    match f {
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
