//! Netlink sockets, one mode per run (first argument after the directory).
//! Each socket that may receive anything has a BPF filter that keeps only
//! what this process makes (its PID in the message, or its own address),
//! so that no other test's traffic is ever queued on it.
//! - `all`: a `NETLINK_ROUTE` socket bound (autobind: port id = PID) to
//!   `RTMGRP_LINK | RTMGRP_IPV4_IFADDR` with options set (buffers,
//!   priority, `SO_PASSCRED`, a receive timeout, `O_NONBLOCK`); a
//!   `NETLINK_KOBJECT_UEVENT` socket bound to group 1; a
//!   `NETLINK_USERSOCK` socket bound to a port id of its own and another
//!   connected to it; a `NETLINK_ROUTE` socket never bound.
//! - `above32`: a `NETLINK_ROUTE` socket in group 33 (`RTNLGRP_BRVLAN`)
//!   too, which CRIU cannot dump.
//!
//! After restore each socket checks its name (port id, groups), peer,
//! memberships (`NETLINK_LIST_MEMBERSHIPS`) and options, and works: the
//! route socket hears of an address the program adds to `lo` (and
//! deletes), the uevent socket receives a message sent to its port, the
//! connected socket's message reaches its peer.
//!
//! Modes a dump must refuse (checked unchanged after the refused dump):
//! `queued` (a message waiting on a socket), `pktinfo` (`NETLINK_PKTINFO`
//! on), `dgram` (a `SOCK_DGRAM` netlink socket).
#[path = "inet_common.rs"]
mod inet;
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use inet::*;
use rustix::net::netlink::{self as nl, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use zdtm::ensure;

use linux_raw_sys::{net as raw, netlink as lnl};

const SOL_NETLINK: u32 = raw::SOL_NETLINK;
/// The first bytes of every message this program sends itself.
const MAGIC: u32 = u32::from_be_bytes(*b"crit");

fn pid() -> u32 {
    std::process::id()
}

/// A port id of this process's own, `n` of them (above every PID and
/// below the kernel's negative autobind ids).
fn own_port(n: u32) -> u32 {
    0x4000_0000 + pid() * 16 + n
}

/// A netlink socket of `proto` (`None`: `NETLINK_ROUTE`, protocol 0).
fn netlink(ty: SocketType, proto: Option<rustix::net::Protocol>) -> Result<OwnedFd, String> {
    rustix::net::socket_with(AddressFamily::NETLINK, ty, SocketFlags::CLOEXEC, proto)
        .map_err(e("socket(AF_NETLINK)"))
}

fn route() -> Option<rustix::net::Protocol> {
    None
}

fn name(fd: impl AsFd) -> Result<(u32, u32), String> {
    let a = rustix::net::getsockname(fd).map_err(e("getsockname"))?;
    let a = SocketAddrNetlink::try_from(a).map_err(|x| format!("getsockname: {x}"))?;
    Ok((a.pid(), a.groups()))
}

fn peer_of(fd: impl AsFd) -> Result<(u32, u32), String> {
    let a = rustix::net::getpeername(fd)
        .map_err(e("getpeername"))?
        .ok_or("no peer")?;
    let a = SocketAddrNetlink::try_from(a).map_err(|x| format!("getpeername: {x}"))?;
    Ok((a.pid(), a.groups()))
}

/// The groups joined (`NETLINK_LIST_MEMBERSHIPS`), as words.
fn memberships(fd: impl AsFd) -> Result<Vec<u32>, String> {
    let b = getopt(fd, SOL_NETLINK, lnl::NETLINK_LIST_MEMBERSHIPS)?;
    let mut w: Vec<u32> = b
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    while w.last() == Some(&0) {
        w.pop();
    }
    Ok(w)
}

/// A filter for messages that start with `MAGIC` and this PID.
fn own_messages() -> Vec<Insn> {
    vec![
        ld_w(0),
        jeq(MAGIC, 0, 3),
        ld_w(4),
        jeq(pid(), 0, 1),
        ret(u32::MAX),
        ret(0),
    ]
}

fn own_message(tag: &[u8]) -> Vec<u8> {
    let mut m = MAGIC.to_be_bytes().to_vec();
    m.extend_from_slice(&pid().to_be_bytes());
    m.extend_from_slice(tag);
    m
}

/// This process's address on `lo`: 127.88.x.y from its PID.
fn own_addr() -> [u8; 4] {
    let p = pid();
    [127, 88 + (p >> 16) as u8 % 100, (p >> 8) as u8, p as u8]
}

/// A filter for `RTM_NEWADDR` notifications of [`own_addr`] (its
/// `IFA_ADDRESS`, the first attribute, at byte 28). BPF reads in network
/// order: the message type is compared as its bytes read that way.
fn own_address_news() -> Vec<Insn> {
    let ty = u16::from_be_bytes((lnl::RTM_NEWADDR as u16).to_ne_bytes());
    vec![
        ld_h(4),
        jeq(u32::from(ty), 0, 3),
        ld_w(28),
        jeq(u32::from_be_bytes(own_addr()), 0, 1),
        ret(u32::MAX),
        ret(0),
    ]
}

/// Adds (`RTM_NEWADDR`) or deletes (`RTM_DELADDR`) [`own_addr`]/32 on
/// `lo` through a socket of its own, waiting for the kernel's answer.
fn change_address(new: bool) -> Result<(), String> {
    let sk = netlink(SocketType::RAW, route())?;
    let ty = if new {
        lnl::RTM_NEWADDR as u16
    } else {
        lnl::RTM_DELADDR as u16
    };
    let mut flags = (lnl::NLM_F_REQUEST | lnl::NLM_F_ACK) as u16;
    if new {
        flags |= (lnl::NLM_F_CREATE | lnl::NLM_F_EXCL) as u16;
    }
    let lo = rustix::net::netdevice::name_to_index(&sk, "lo").map_err(e("lo"))?;
    let mut body = vec![
        raw::AF_INET as u8,
        32,
        0,
        lnl::rt_scope_t::RT_SCOPE_HOST as u8,
    ];
    body.extend_from_slice(&lo.to_ne_bytes());
    for attr in [lnl::IFA_LOCAL as u16, lnl::IFA_ADDRESS as u16] {
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&attr.to_ne_bytes());
        body.extend_from_slice(&own_addr());
    }
    let mut msg = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    rustix::net::sendto(&sk, &msg, SendFlags::empty(), &SocketAddrNetlink::new(0, 0))
        .map_err(e("sendto(RTM_NEWADDR)"))?;
    let ack = recv_wait(&sk, "the address change's answer")?;
    let err = ack
        .get(16..20)
        .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
        .ok_or("short answer")?;
    ensure(err == 0, || {
        format!("changing {:?} on lo: error {}", own_addr(), -err)
    })
}

/// One socket and what must hold of it after restore.
struct Nl {
    what: &'static str,
    fd: OwnedFd,
    name: (u32, u32),
    peer: Option<(u32, u32)>,
    groups: Vec<u32>,
    opts: Vec<(String, Vec<u8>)>,
}

const NL_OPTS: &[(&str, u32, u32)] = &[("SO_PASSCRED", raw::SOL_SOCKET, raw::SO_PASSCRED)];

fn record(what: &'static str, fd: OwnedFd, connected: bool) -> Result<Nl, String> {
    let mut opts = options_of(&fd, GENERIC_OPTS)?;
    opts.extend(options_of(&fd, NL_OPTS)?);
    Ok(Nl {
        what,
        name: name(&fd)?,
        peer: if connected { Some(peer_of(&fd)?) } else { None },
        groups: memberships(&fd)?,
        opts,
        fd,
    })
}

struct State {
    socks: Vec<Nl>,
    mode: String,
}

fn setup_all(above32: bool) -> Result<Vec<Nl>, String> {
    let mut out = Vec::new();
    // The route socket: filter first, then bind (nothing can queue
    // before the filter is on).
    let r = netlink(SocketType::RAW, route())?;
    attach_filter(&r, &own_address_news())?;
    let groups = lnl::RTMGRP_LINK | lnl::RTMGRP_IPV4_IFADDR;
    rustix::net::bind(&r, &SocketAddrNetlink::new(0, groups)).map_err(e("bind route"))?;
    set_int(&r, raw::SOL_SOCKET, raw::SO_RCVBUF, 65536)?;
    set_int(&r, raw::SOL_SOCKET, raw::SO_PRIORITY, 3)?;
    set_int(&r, raw::SOL_SOCKET, raw::SO_PASSCRED, 1)?;
    rustix::net::sockopt::set_socket_timeout(
        &r,
        rustix::net::sockopt::Timeout::Recv,
        Some(std::time::Duration::from_millis(2500)),
    )
    .map_err(e("SO_RCVTIMEO"))?;
    if above32 {
        set_int(&r, SOL_NETLINK, lnl::NETLINK_ADD_MEMBERSHIP, 33)?;
    }
    rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK).map_err(e("F_SETFL"))?;
    out.push(record("route", r, false)?);
    if above32 {
        return Ok(out);
    }
    let u = netlink(SocketType::RAW, Some(nl::KOBJECT_UEVENT))?;
    attach_filter(&u, &own_messages())?;
    rustix::net::bind(&u, &SocketAddrNetlink::new(0, 1)).map_err(e("bind uevent"))?;
    out.push(record("uevent", u, false)?);
    let server = netlink(SocketType::RAW, Some(nl::USERSOCK))?;
    attach_filter(&server, &own_messages())?;
    rustix::net::bind(&server, &SocketAddrNetlink::new(own_port(1), 0))
        .map_err(e("bind usersock"))?;
    let client = netlink(SocketType::RAW, Some(nl::USERSOCK))?;
    attach_filter(&client, &own_messages())?;
    rustix::net::connect(&client, &SocketAddrNetlink::new(own_port(1), 0))
        .map_err(e("connect usersock"))?;
    out.push(record("usersock server", server, false)?);
    out.push(record("usersock client", client, true)?);
    out.push(record(
        "unbound",
        netlink(SocketType::RAW, route())?,
        false,
    )?);
    Ok(out)
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let mode = args.rest.first().cloned().unwrap_or_else(|| "all".into());
    let socks = match mode.as_str() {
        "all" => setup_all(false)?,
        "above32" => setup_all(true)?,
        "queued" => {
            let s = netlink(SocketType::RAW, Some(nl::USERSOCK))?;
            attach_filter(&s, &own_messages())?;
            let me = SocketAddrNetlink::new(own_port(2), 0);
            rustix::net::bind(&s, &me).map_err(e("bind"))?;
            rustix::net::sendto(&s, &own_message(b"queued"), SendFlags::empty(), &me)
                .map_err(e("sendto"))?;
            vec![record("queued", s, false)?]
        }
        "pktinfo" => {
            let s = netlink(SocketType::RAW, route())?;
            set_int(&s, SOL_NETLINK, lnl::NETLINK_PKTINFO, 1)?;
            vec![record("pktinfo", s, false)?]
        }
        "dgram" => vec![record(
            "dgram",
            netlink(SocketType::DGRAM, route())?,
            false,
        )?],
        other => return Err(format!("unknown mode {other}")),
    };
    let fds: Vec<String> = socks
        .iter()
        .map(|s| format!("{} {}", s.what, std::os::fd::AsRawFd::as_raw_fd(&s.fd)))
        .collect();
    zdtm::write_atomic(&args.dir.join("fds"), &(fds.join("\n") + "\n"))?;
    Ok(State { socks, mode })
}

fn check_one(s: &Nl) -> Result<(), String> {
    let w = s.what;
    let now = name(&s.fd)?;
    ensure(now == s.name, || {
        format!("{w}: name {now:?}, was {:?}", s.name)
    })?;
    if let Some(p) = s.peer {
        let now = peer_of(&s.fd)?;
        ensure(now == p, || format!("{w}: peer {now:?}, was {p:?}"))?;
    }
    let g = memberships(&s.fd)?;
    ensure(g == s.groups, || {
        format!("{w}: groups {g:?}, were {:?}", s.groups)
    })?;
    let mut opts = options_of(&s.fd, GENERIC_OPTS)?;
    opts.extend(options_of(&s.fd, NL_OPTS)?);
    options_differ(w, &opts, &s.opts)
}

/// Waits (bounded) for a message on `fd` that the filter let through.
fn heard(fd: impl AsFd, what: &str) -> Result<Vec<u8>, String> {
    let end = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    loop {
        match rustix::net::recv(&fd, &mut buf[..], RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(buf[..n].to_vec()),
            Err(rustix::io::Errno::AGAIN) if Instant::now() < end => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(x) => return Err(format!("{what}: recv: {x}")),
        }
    }
}

fn works(socks: &[Nl]) -> Result<(), String> {
    let by = |w: &str| socks.iter().find(|s| s.what == w).ok_or(format!("no {w}"));
    let r = by("route")?;
    change_address(true)?;
    let news = heard(&r.fd, "route socket");
    let _ = change_address(false);
    let news = news?;
    ensure(news.get(28..32) == Some(&own_addr()[..]), || {
        format!("route socket heard {news:?}")
    })?;
    if socks.len() == 1 {
        return Ok(());
    }
    let u = by("uevent")?;
    let helper = netlink(SocketType::RAW, Some(nl::KOBJECT_UEVENT))?;
    let to = SocketAddrNetlink::new(u.name.0, 0);
    rustix::net::sendto(&helper, &own_message(b"uevent"), SendFlags::empty(), &to)
        .map_err(e("sendto uevent"))?;
    let got = heard(&u.fd, "uevent socket")?;
    ensure(got == own_message(b"uevent"), || {
        format!("uevent got {got:?}")
    })?;
    let c = by("usersock client")?;
    rustix::net::send(&c.fd, &own_message(b"hello"), SendFlags::empty())
        .map_err(e("send on the connected socket"))?;
    let got = heard(&by("usersock server")?.fd, "usersock server")?;
    ensure(got == own_message(b"hello"), || {
        format!("server got {got:?}")
    })
}

fn check(st: State) -> Result<(), String> {
    for s in &st.socks {
        check_one(s)?;
    }
    match st.mode.as_str() {
        "all" | "above32" => works(&st.socks),
        "queued" => {
            let got = heard(&st.socks[0].fd, "queued message")?;
            ensure(got == own_message(b"queued"), || format!("queued {got:?}"))
        }
        _ => Ok(()),
    }
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
