//! TCP connections taken and rebuilt through `TCP_REPAIR` (what CRIU's
//! libsoccr does, `soccr/soccr.c`, for `criu/sk-tcp.c`).
//!
//! Dump ([`pause`], [`save`]): the socket (a `pidfd_getfd` copy of the
//! frozen task's) is put in repair mode, in which the kernel sends nothing
//! for it: closing it then ends the connection silently, and a peer sees
//! only a pause. Read from it: its state, both queues' sequence numbers
//! (`TCP_REPAIR_QUEUE` + `TCP_QUEUE_SEQ`) and bytes (a `MSG_PEEK` read of
//! each queue in repair mode), the unsent part of the send queue
//! (`SIOCOUTQNSD`), the MSS, window scales, SACK and timestamps
//! (`TCP_INFO`'s options, `TCP_TIMESTAMP`) and the window
//! (`TCP_REPAIR_WINDOW`): a `tcp_stream_entry` and the queue bytes after
//! it, as `tcp-stream-<ino>.img`. Every paused socket is in a [`Paused`]
//! list, which takes them all out of repair mode when it is dropped (a
//! failed dump, `--leave-running`), unless the dump kills the tree
//! ([`Paused::dismiss`]).
//!
//! Restore ([`restore`], then [`finish`] once every socket of the images
//! exists): a new socket in repair mode is bound to the source, given its
//! queues' sequence numbers, connected (no SYN in repair mode), given its
//! options, and its queues are filled (the received bytes into the
//! receive queue, the sent but unacknowledged ones into the send queue as
//! sent); the unsent bytes are written with repair off (so the stack
//! sends them itself later), then the window and, for a half-closed
//! connection, the FINs (ours by `shutdown`, the peer's by a packet made
//! for it, [`super::tcp_fin`]). Repair mode is left by [`Repaired`] only
//! once the restored tree is complete (see `restore::launch`).
//!
//! The parts: [`states`] (which FINs a TCP state has sent and received),
//! [`mode`] (repair mode on and off, and the lists of sockets held in
//! it), [`read`] (reading a paused connection) and [`rebuild`] (making
//! it again).

mod mode;
mod read;
mod rebuild;
mod states;

pub use mode::{Paused, Repaired, pause, repair_off, repair_on};
pub use read::{Saved, save};
pub use rebuild::{Stream, check, finish, restore};
pub use states::repairable;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use crate::files::sockets::SockError;
use crate::sys::kconst::AF_INET6;
use crate::sys::sockopt::{self as so, SOL_TCP};

/// One connection the dump saved or the restore makes, as the network
/// lock needs it: the address family and both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection {
    pub family: u8,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl std::fmt::Display for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.src, self.dst)
    }
}

/// The family of a connection's addresses, for [`Connection`].
pub fn family_of(a: &SocketAddr) -> u8 {
    match a {
        SocketAddr::V4(_) => crate::sys::kconst::AF_INET,
        SocketAddr::V6(_) => AF_INET6,
    }
}

/// Option `name` of the TCP level (`what`: its name, for the error).
fn int(fd: &OwnedFd, name: u32, what: &str) -> Result<i32, SockError> {
    so::get_int(fd, SOL_TCP, name).map_err(|e| SockError::sys(what, e))
}

fn set(fd: &OwnedFd, name: u32, what: &str, v: i32) -> Result<(), SockError> {
    so::set_int(fd, SOL_TCP, name, v)
        .map_err(|e| SockError::sys(format!("setting {what} to {v}"), e))
}
