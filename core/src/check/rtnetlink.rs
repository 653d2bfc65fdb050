//! Probes over rtnetlink (links and network namespace ids), as CRIU's
//! kerndat makes them: `IFLA_NEW_IFINDEX` and `IFLA_LINK_NETNSID`.
//! Messages are built by hand; every number comes from linux-raw-sys.

use std::os::fd::OwnedFd;

use linux_raw_sys::netlink as nl;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType};

use super::procfs::strerror;
use super::{CheckResult, KernelFeatures, problem};

const NLMSG_HDRLEN: usize = size_of::<nl::nlmsghdr>();
const _: () = assert!(NLMSG_HDRLEN == 16);
const IFINFOMSG_LEN: usize = size_of::<nl::ifinfomsg>();
const _: () = assert!(IFINFOMSG_LEN == 16);
use crate::sys::kconst::VETH_INFO_PEER;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// An rtnetlink message being built: header, fixed part, attributes.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u32, flags: u32) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&(kind as u16).to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags as u16).to_ne_bytes());
        buf[8..12].copy_from_slice(&1u32.to_ne_bytes()); // seq
        Msg { buf }
    }

    /// `struct ifinfomsg` with a family and an index.
    fn ifinfo(mut self, family: u8, index: i32) -> Msg {
        let mut ifi = [0u8; IFINFOMSG_LEN];
        ifi[0] = family;
        ifi[4..8].copy_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&ifi);
        self
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// Starts a nested attribute; `end_nest` fixes its length.
    fn nest(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.attr(kind, &[]);
        at
    }

    fn end_nest(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn route_socket() -> Result<OwnedFd, Errno> {
    // NETLINK_ROUTE is protocol 0.
    rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None)
}

/// Sends `msg` and collects the replies up to the ack, error or end of
/// dump: the payloads of the data messages, or the error the kernel
/// answered with.
fn transact(sk: &OwnedFd, msg: Vec<u8>) -> Result<Vec<Vec<u8>>, Errno> {
    crate::sys::netlink::send(sk, &msg)?;
    let mut out = Vec::new();
    crate::sys::netlink::answers(sk, |m| out.push(m[NLMSG_HDRLEN..].to_vec()))?;
    Ok(out)
}

/// CRIU's `newifindex`: `RTM_SETLINK` of a link that does not exist with
/// a negative `IFLA_NEW_IFINDEX`: a kernel that knows the attribute
/// rejects the index (`ERANGE`), one that does not looks the name up
/// (`ENODEV`).
pub(super) fn check_newifindex(_: &KernelFeatures) -> CheckResult {
    let sk = route_socket()
        .map_err(|e| problem!(Error, "Unable to create a netlink socket: {}", strerror(e)))?;
    let mut m = Msg::new(
        nl::RTM_SETLINK as u32,
        nl::NLM_F_REQUEST | nl::NLM_F_ACK | nl::NLM_F_CREATE,
    )
    .ifinfo(linux_raw_sys::net::AF_UNSPEC as u8, 0);
    m.attr(nl::IFLA_NEW_IFINDEX as u16, &(-1i32).to_ne_bytes());
    m.attr(nl::IFLA_IFNAME as u16, b"criu-kdat");
    match transact(&sk, m.finish()) {
        Err(Errno::RANGE) => Ok(()),
        Err(Errno::NODEV) => Err(problem!(Error, "IFLA_NEW_IFINDEX isn't supported")),
        other => {
            let what = match other {
                Err(e) => strerror(e),
                Ok(_) => "no error".into(),
            };
            crate::pr_err!("Unexpected error: {what}");
            Err(problem!(Error, "IFLA_NEW_IFINDEX isn't supported"))
        }
    }
}

/// Whether a link dump of this thread's network namespace shows a link
/// with `IFLA_LINK_NETNSID` (a veth whose peer is in another namespace).
fn links_show_netnsid(sk: &OwnedFd) -> Result<bool, Errno> {
    let mut m = Msg::new(nl::RTM_GETLINK as u32, nl::NLM_F_REQUEST | nl::NLM_F_DUMP);
    m.buf
        .extend_from_slice(&[linux_raw_sys::net::AF_PACKET as u8, 0, 0, 0]); // rtgenmsg
    for body in transact(sk, m.finish())? {
        let mut off = IFINFOMSG_LEN;
        while off + 4 <= body.len() {
            let len = u16::from_ne_bytes([body[off], body[off + 1]]) as usize;
            let kind = u16::from_ne_bytes([body[off + 2], body[off + 3]]);
            if kind & !(nl::NLA_F_NESTED as u16) == nl::IFLA_LINK_NETNSID as u16 {
                return Ok(true);
            }
            if len < 4 {
                break;
            }
            off += align4(len);
        }
    }
    Ok(false)
}

/// The link_nsid probe proper, on a thread of its own: two fresh network
/// namespaces, a veth pair across them, and a look at what the link dump
/// reports. The namespaces die with the thread.
fn link_nsid_in_new_netns() -> Result<bool, (String, Errno)> {
    use crate::sys::probe::unshare_this_thread;
    let newnet = linux_raw_sys::general::CLONE_NEWNET;
    unshare_this_thread(newnet).map_err(|e| ("Unable create a network namespace".into(), e))?;
    let peer_ns = rustix::fs::open(
        "/proc/thread-self/ns/net",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| ("Can't open ns/net".into(), e))?;
    unshare_this_thread(newnet).map_err(|e| ("Unable create a network namespace".into(), e))?;
    let sk = route_socket().map_err(|e| ("Unable to create a netlink socket".into(), e))?;
    let mut m = Msg::new(
        nl::RTM_NEWLINK as u32,
        nl::NLM_F_REQUEST | nl::NLM_F_ACK | nl::NLM_F_CREATE | nl::NLM_F_EXCL,
    )
    .ifinfo(linux_raw_sys::net::AF_UNSPEC as u8, 10);
    m.attr(nl::IFLA_IFNAME as u16, b"veth\0");
    m.attr(nl::IFLA_MTU as u16, &1500u32.to_ne_bytes());
    let info = m.nest(nl::IFLA_LINKINFO as u16);
    m.attr(nl::IFLA_INFO_KIND as u16, b"veth");
    let data = m.nest(nl::IFLA_INFO_DATA as u16);
    let peer = m.nest(VETH_INFO_PEER);
    let mut ifi = [0u8; IFINFOMSG_LEN];
    ifi[4..8].copy_from_slice(&11i32.to_ne_bytes());
    m.buf.extend_from_slice(&ifi);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&peer_ns) as u32;
    m.attr(nl::IFLA_NET_NS_FD as u16, &fd.to_ne_bytes());
    m.end_nest(peer);
    m.end_nest(data);
    m.end_nest(info);
    transact(&sk, m.finish()).map_err(|e| ("Unable to create a veth pair".into(), e))?;
    links_show_netnsid(&sk).map_err(|e| ("Unable to dump links".into(), e))
}

/// CRIU's `link_nsid`: a veth whose peer lives in another network
/// namespace is reported with that namespace's id (`IFLA_LINK_NETNSID`).
pub(super) fn check_link_nsid(_: &KernelFeatures) -> CheckResult {
    let res = std::thread::spawn(link_nsid_in_new_netns)
        .join()
        .map_err(|_| problem!(Error, "the link_nsid probe thread panicked"))?;
    match res {
        Ok(true) => Ok(()),
        Ok(false) => Err(problem!(Warn, "NSID isn't supported")),
        Err((what, e)) => {
            crate::pr_err!("{what}: {}", strerror(e));
            crate::pr_warn!("NSID isn't reported for network links");
            Err(problem!(Warn, "NSID isn't supported"))
        }
    }
}
