//! TCP and UDP sockets over IPv4 and IPv6 that are not connections, one
//! mode per run (first argument after the directory). Ports are chosen by
//! the kernel (bound to port 0) and written to `DIR/ports`.
//! - `tcp4`: a listener on 127.0.0.1 (backlog 5), an unbound TCP socket,
//!   a TCP socket only bound to 127.0.0.1.
//! - `tcp6`: a dual-stack listener on `[::]` (`IPV6_V6ONLY` off) and a
//!   v6-only listener on `[::1]`.
//! - `udp4`: a UDP socket bound to 127.0.0.1, an unbound one.
//! - `udp6`: a UDP socket bound to `[::1]` and one connected to it.
//! - `opts`: a listener with every option CRIU records set (buffers,
//!   timeouts, reuse, mark, priority, linger, bound device, keepalive and
//!   its knobs, nodelay, cork, TOS, TTL, freebind, O_NONBLOCK), a UDP
//!   socket with a BPF filter, pktinfo, broadcast, dontroute and no-check,
//!   a v6-only UDP socket with pktinfo, a connected UDP socket shut down
//!   for reading.
//!
//! After restore each socket checks itself: same addresses, same options
//! (every one read back equal), a listener accepts a connection the
//! program makes to its port and both sides exchange data, a UDP socket
//! receives on its port. The sockets a dump must refuse are
//! `sockets_inet_refused.rs`'s.
#[path = "inet_common.rs"]
mod inet;
#[path = "lib.rs"]
mod zdtm;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use inet::*;
use rustix::fs::OFlags;
use rustix::net::{AddressFamily, SendFlags, Shutdown, SocketType};
use zdtm::{ensure, errno};

use linux_raw_sys::net as raw;

/// Everything the options check compares, by name.
fn options(
    fd: impl AsFd,
    family: AddressFamily,
    tcp: bool,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let fd = fd.as_fd();
    let mut list = vec![
        ("SO_SNDBUF", SOL_SOCKET, raw::SO_SNDBUF),
        ("SO_RCVBUF", SOL_SOCKET, raw::SO_RCVBUF),
        ("SO_BUF_LOCK", SOL_SOCKET, raw::SO_BUF_LOCK),
        ("SO_RCVTIMEO", SOL_SOCKET, raw::SO_RCVTIMEO),
        ("SO_SNDTIMEO", SOL_SOCKET, raw::SO_SNDTIMEO),
        ("SO_REUSEADDR", SOL_SOCKET, raw::SO_REUSEADDR),
        ("SO_REUSEPORT", SOL_SOCKET, raw::SO_REUSEPORT),
        ("SO_PRIORITY", SOL_SOCKET, raw::SO_PRIORITY),
        ("SO_MARK", SOL_SOCKET, raw::SO_MARK),
        ("SO_RCVLOWAT", SOL_SOCKET, raw::SO_RCVLOWAT),
        ("SO_LINGER", SOL_SOCKET, raw::SO_LINGER),
        ("SO_KEEPALIVE", SOL_SOCKET, raw::SO_KEEPALIVE),
        ("SO_BROADCAST", SOL_SOCKET, raw::SO_BROADCAST),
        ("SO_DONTROUTE", SOL_SOCKET, raw::SO_DONTROUTE),
        ("SO_NO_CHECK", SOL_SOCKET, raw::SO_NO_CHECK),
        ("SO_OOBINLINE", SOL_SOCKET, raw::SO_OOBINLINE),
        ("SO_BINDTODEVICE", SOL_SOCKET, raw::SO_BINDTODEVICE),
        ("SO_ACCEPTCONN", SOL_SOCKET, raw::SO_ACCEPTCONN),
        ("SO_TYPE", SOL_SOCKET, raw::SO_TYPE),
        ("SO_PROTOCOL", SOL_SOCKET, raw::SO_PROTOCOL),
        ("IP_FREEBIND", SOL_IP, raw::IP_FREEBIND),
    ];
    if family == AddressFamily::INET6 {
        list.push(("IPV6_V6ONLY", SOL_IPV6, raw::IPV6_V6ONLY));
        list.push(("IPV6_RECVPKTINFO", SOL_IPV6, raw::IPV6_RECVPKTINFO));
    } else {
        list.push(("IP_TOS", SOL_IP, raw::IP_TOS));
        list.push(("IP_TTL", SOL_IP, raw::IP_TTL));
        list.push(("IP_PKTINFO", SOL_IP, raw::IP_PKTINFO));
    }
    if tcp {
        list.push(("TCP_NODELAY", SOL_TCP, raw::TCP_NODELAY));
        list.push(("TCP_CORK", SOL_TCP, raw::TCP_CORK));
        list.push(("TCP_KEEPIDLE", SOL_TCP, raw::TCP_KEEPIDLE));
        list.push(("TCP_KEEPINTVL", SOL_TCP, raw::TCP_KEEPINTVL));
        list.push(("TCP_KEEPCNT", SOL_TCP, raw::TCP_KEEPCNT));
    }
    let mut out = Vec::new();
    for (name, level, opt) in list {
        out.push((name.to_string(), getopt(fd, level, opt)?));
    }
    // The filter: its length (asked with a NULL buffer), then its code.
    let mut len: u32 = 0;
    // SAFETY: a NULL buffer of length 0: the kernel writes only `len`.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::GETSOCKOPT,
            fd.as_raw_fd() as usize,
            SOL_SOCKET as usize,
            raw::SO_GET_FILTER as usize,
            0,
            &mut len as *mut u32 as usize,
        )
    };
    errno(r, "SO_GET_FILTER")?;
    out.push(("filter length".into(), len.to_ne_bytes().to_vec()));
    if len > 0 {
        out.push(("filter".into(), getopt(fd, SOL_SOCKET, raw::SO_GET_FILTER)?));
    }
    let fl = rustix::fs::fcntl_getfl(fd).map_err(e("F_GETFL"))?;
    out.push(("status flags".into(), fl.bits().to_ne_bytes().to_vec()));
    Ok(out)
}

/// A socket and what must be true of it after restore.
struct Sk {
    what: &'static str,
    fd: OwnedFd,
    family: AddressFamily,
    tcp: bool,
    local: SocketAddr,
    peer: Option<SocketAddr>,
    opts: Vec<(String, Vec<u8>)>,
    /// Check it works: accept (listener), receive (UDP), ...
    role: Role,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Listener,
    /// Unbound TCP: connects to the listener of the same run.
    Unbound,
    /// Bound TCP: listens on its port, then takes a connection.
    Bound,
    /// UDP bound: receives on its port.
    Receiver,
    /// UDP connected to the receiver of the same run: they talk.
    Connected,
    /// UDP shut down for reading: a receive gives 0 at once.
    ShutRead,
    /// Nothing beyond the options.
    Plain,
}

fn sk(
    what: &'static str,
    fd: OwnedFd,
    family: AddressFamily,
    tcp: bool,
    role: Role,
) -> Result<Sk, String> {
    let local = local(&fd)?;
    let peer = if role == Role::Connected || role == Role::ShutRead {
        Some(peer(&fd)?)
    } else {
        None
    };
    let opts = options(&fd, family, tcp)?;
    Ok(Sk {
        what,
        fd,
        family,
        tcp,
        local,
        peer,
        opts,
        role,
    })
}

/// `fd` (a listener) takes a connection from a new client to `to` and
/// both sides exchange data.
fn takes_a_connection(
    l: impl AsFd,
    to: SocketAddr,
    client: Option<OwnedFd>,
    what: &str,
) -> Result<(), String> {
    let family = if to.is_ipv6() {
        AddressFamily::INET6
    } else {
        AddressFamily::INET
    };
    let c = match client {
        Some(c) => c,
        None => socket(family, SocketType::STREAM)?,
    };
    rustix::net::connect(&c, &to).map_err(|x| format!("{what}: connect to {to}: {x}"))?;
    let s = rustix::net::accept(&l).map_err(|x| format!("{what}: accept: {x}"))?;
    // A dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d.
    let (p, me) = (peer(&s)?, local(&c)?);
    ensure(
        p.port() == me.port() && p.ip().to_canonical() == me.ip(),
        || format!("{what}: accepted {p}, not {me}"),
    )?;
    send(&c, b"ping", what)?;
    ensure(recv_wait(&s, what)? == b"ping", || {
        format!("{what}: ping lost")
    })?;
    send(&s, b"pong", what)?;
    ensure(recv_wait(&c, what)? == b"pong", || {
        format!("{what}: pong lost")
    })
}

fn udp_receives(r: impl AsFd, at: SocketAddr, what: &str) -> Result<(), String> {
    let family = if at.is_ipv6() {
        AddressFamily::INET6
    } else {
        AddressFamily::INET
    };
    let s = socket(family, SocketType::DGRAM)?;
    rustix::net::sendto(&s, b"datagram", SendFlags::empty(), &at).map_err(e("sendto"))?;
    let got = recv_wait(&r, what)?;
    ensure(got == b"datagram", || format!("{what}: received {got:?}"))
}

fn check_one(s: &Sk, all: &[Sk]) -> Result<(), String> {
    let w = s.what;
    let now = local(&s.fd)?;
    ensure(now == s.local, || {
        format!("{w}: bound to {now}, was {}", s.local)
    })?;
    if let Some(p) = s.peer {
        let now = peer(&s.fd)?;
        ensure(now == p, || format!("{w}: connected to {now}, was {p}"))?;
    }
    let opts = options(&s.fd, s.family, s.tcp)?;
    for ((name, was), (_, is)) in s.opts.iter().zip(&opts) {
        ensure(was == is, || format!("{w}: {name} is {is:?}, was {was:?}"))?;
    }
    // Non-blocking sockets are made blocking for the checks below.
    rustix::fs::fcntl_setfl(&s.fd, OFlags::empty()).map_err(e("F_SETFL"))?;
    let listener_port = || {
        all.iter()
            .find(|o| o.role == Role::Listener && o.family == s.family)
            .map(|o| o.local)
            .ok_or_else(|| format!("{w}: no listener to connect to"))
    };
    match s.role {
        Role::Listener => {
            let at = if s.local.ip().is_unspecified() {
                v6(s.local.port())
            } else {
                s.local
            };
            takes_a_connection(&s.fd, at, None, w)?;
            // A dual-stack listener takes IPv4 too.
            if s.family == AddressFamily::INET6 && get_int(&s.fd, SOL_IPV6, raw::IPV6_V6ONLY)? == 0
            {
                takes_a_connection(&s.fd, v4(s.local.port()), None, w)?;
            }
            Ok(())
        }
        Role::Unbound => {
            let to = listener_port()?;
            let l = all.iter().find(|o| o.local == to).unwrap();
            takes_a_connection(
                &l.fd,
                to,
                Some(s.fd.try_clone().map_err(|x| x.to_string())?),
                w,
            )
        }
        Role::Bound => {
            rustix::net::listen(&s.fd, 1).map_err(e("listen"))?;
            takes_a_connection(&s.fd, s.local, None, w)
        }
        Role::Receiver => udp_receives(&s.fd, s.local, w),
        Role::Connected => {
            let r = all
                .iter()
                .find(|o| Some(o.local) == s.peer)
                .ok_or_else(|| format!("{w}: its peer is gone"))?;
            send(&s.fd, b"to peer", w)?;
            ensure(recv_wait(&r.fd, w)? == b"to peer", || {
                format!("{w}: peer got nothing")
            })?;
            rustix::net::sendto(&r.fd, b"back", SendFlags::empty(), &s.local)
                .map_err(e("sendto"))?;
            ensure(recv_wait(&s.fd, w)? == b"back", || {
                format!("{w}: got nothing back")
            })
        }
        Role::ShutRead => {
            // Shut down for reading, a UDP socket polls as hung up.
            let mut p = [rustix::event::PollFd::new(
                &s.fd,
                rustix::event::PollFlags::RDHUP,
            )];
            let n =
                rustix::event::poll(&mut p, None::<&rustix::time::Timespec>).map_err(e("poll"))?;
            let got = p[0].revents();
            ensure(
                n == 1 && got.contains(rustix::event::PollFlags::RDHUP),
                || format!("{w}: polls {got:?}, not shut down for reading"),
            )
        }
        Role::Plain => Ok(()),
    }
}

fn write_ports(dir: &std::path::Path, socks: &[Sk]) -> Result<(), String> {
    let text: String = socks
        .iter()
        .map(|s| format!("{} {}\n", s.what, s.local))
        .collect();
    zdtm::write_atomic(&dir.join("ports"), &text)
}

fn setup_opts() -> Result<Vec<Sk>, String> {
    let t = socket(INET, SocketType::STREAM)?;
    let int = |level, name, v| set_int(&t, level, name, v);
    int(SOL_SOCKET, raw::SO_REUSEADDR, 1)?;
    int(SOL_SOCKET, raw::SO_REUSEPORT, 1)?;
    int(SOL_SOCKET, raw::SO_KEEPALIVE, 1)?;
    int(SOL_SOCKET, raw::SO_PRIORITY, 5)?;
    int(SOL_SOCKET, raw::SO_MARK, 7)?;
    int(SOL_SOCKET, raw::SO_RCVLOWAT, 2)?;
    int(SOL_SOCKET, raw::SO_OOBINLINE, 1)?;
    int(SOL_SOCKET, raw::SO_SNDBUF, 60000)?;
    int(SOL_SOCKET, raw::SO_RCVBUF, 80000)?;
    rustix::net::sockopt::set_socket_linger(&t, Some(Duration::from_secs(3)))
        .map_err(e("SO_LINGER"))?;
    rustix::net::sockopt::set_socket_timeout(
        &t,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_millis(2500)),
    )
    .map_err(e("SO_RCVTIMEO"))?;
    rustix::net::sockopt::set_socket_timeout(
        &t,
        rustix::net::sockopt::Timeout::Send,
        Some(Duration::from_secs(1)),
    )
    .map_err(e("SO_SNDTIMEO"))?;
    setopt(&t, SOL_SOCKET, raw::SO_BINDTODEVICE, b"lo")?;
    int(SOL_TCP, raw::TCP_NODELAY, 1)?;
    int(SOL_TCP, raw::TCP_CORK, 1)?;
    int(SOL_TCP, raw::TCP_KEEPIDLE, 77)?;
    int(SOL_TCP, raw::TCP_KEEPINTVL, 11)?;
    int(SOL_TCP, raw::TCP_KEEPCNT, 4)?;
    int(SOL_IP, raw::IP_TOS, 0x10)?;
    int(SOL_IP, raw::IP_TTL, 42)?;
    int(SOL_IP, raw::IP_FREEBIND, 1)?;
    rustix::net::bind(&t, &v4(0)).map_err(e("bind"))?;
    rustix::net::listen(&t, 4).map_err(e("listen"))?;
    rustix::fs::fcntl_setfl(&t, OFlags::NONBLOCK).map_err(e("F_SETFL"))?;

    let u = bound(INET, SocketType::DGRAM, v4(0))?;
    // BPF_RET | BPF_K, 0xffff: accept (up to 64 KiB of) every packet;
    // struct sock_filter is code (u16), jt, jf (u8), k (u32).
    let mut insn = [0u8; 8];
    insn[..2].copy_from_slice(&0x06u16.to_ne_bytes());
    insn[4..].copy_from_slice(&0xffffu32.to_ne_bytes());
    // struct sock_fprog: len (u16), padding, the instructions' address.
    let mut bytes = vec![0u8; 16];
    bytes[..2].copy_from_slice(&1u16.to_ne_bytes());
    bytes[8..].copy_from_slice(&(insn.as_ptr() as usize).to_ne_bytes());
    setopt(&u, SOL_SOCKET, raw::SO_ATTACH_FILTER, &bytes)?;
    set_int(&u, SOL_IP, raw::IP_PKTINFO, 1)?;
    set_int(&u, SOL_SOCKET, raw::SO_BROADCAST, 1)?;
    set_int(&u, SOL_SOCKET, raw::SO_DONTROUTE, 1)?;
    set_int(&u, SOL_SOCKET, raw::SO_NO_CHECK, 1)?;

    let u6 = socket(INET6, SocketType::DGRAM)?;
    set_int(&u6, SOL_IPV6, raw::IPV6_V6ONLY, 1)?;
    set_int(&u6, SOL_IPV6, raw::IPV6_RECVPKTINFO, 1)?;
    rustix::net::bind(&u6, &v6(0)).map_err(e("bind"))?;

    let r = bound(INET, SocketType::DGRAM, v4(0))?;
    let shut = socket(INET, SocketType::DGRAM)?;
    rustix::net::connect(&shut, &local(&r)?).map_err(e("connect"))?;
    rustix::net::shutdown(&shut, Shutdown::Read).map_err(e("shutdown"))?;
    Ok(vec![
        sk("listener with options", t, INET, true, Role::Listener)?,
        sk("UDP with a filter", u, INET, false, Role::Receiver)?,
        sk("v6-only UDP with pktinfo", u6, INET6, false, Role::Receiver)?,
        sk("UDP receiver", r, INET, false, Role::Plain)?,
        sk(
            "UDP shut down for reading",
            shut,
            INET,
            false,
            Role::ShutRead,
        )?,
    ])
}

fn setup(dir: &std::path::Path, mode: &str) -> Result<Vec<Sk>, String> {
    let socks = match mode {
        "tcp4" => vec![
            sk(
                "TCP listener",
                listener(INET, v4(0), 5)?,
                INET,
                true,
                Role::Listener,
            )?,
            sk(
                "unbound TCP",
                socket(INET, SocketType::STREAM)?,
                INET,
                true,
                Role::Unbound,
            )?,
            sk(
                "bound TCP",
                bound(INET, SocketType::STREAM, v4(0))?,
                INET,
                true,
                Role::Bound,
            )?,
        ],
        "tcp6" => {
            let dual = socket(INET6, SocketType::STREAM)?;
            set_int(&dual, SOL_IPV6, raw::IPV6_V6ONLY, 0)?;
            rustix::net::bind(
                &dual,
                &SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            )
            .map_err(e("bind"))?;
            rustix::net::listen(&dual, 3).map_err(e("listen"))?;
            let only = socket(INET6, SocketType::STREAM)?;
            set_int(&only, SOL_IPV6, raw::IPV6_V6ONLY, 1)?;
            rustix::net::bind(&only, &v6(0)).map_err(e("bind"))?;
            rustix::net::listen(&only, 2).map_err(e("listen"))?;
            vec![
                sk("dual-stack TCP listener", dual, INET6, true, Role::Listener)?,
                sk("v6-only TCP listener", only, INET6, true, Role::Listener)?,
            ]
        }
        "udp4" => vec![
            sk(
                "bound UDP",
                bound(INET, SocketType::DGRAM, v4(0))?,
                INET,
                false,
                Role::Receiver,
            )?,
            sk(
                "unbound UDP",
                socket(INET, SocketType::DGRAM)?,
                INET,
                false,
                Role::Plain,
            )?,
        ],
        "udp6" => {
            let r = bound(INET6, SocketType::DGRAM, v6(0))?;
            let c = socket(INET6, SocketType::DGRAM)?;
            rustix::net::connect(&c, &local(&r)?).map_err(e("connect"))?;
            vec![
                sk("bound UDP6", r, INET6, false, Role::Plain)?,
                sk("connected UDP6", c, INET6, false, Role::Connected)?,
            ]
        }
        "opts" => setup_opts()?,
        other => return Err(format!("unknown mode {other}")),
    };
    write_ports(dir, &socks)?;
    Ok(socks)
}

fn main() {
    zdtm::run(
        |args| {
            setup(
                &args.dir,
                args.rest.first().map(String::as_str).unwrap_or("tcp4"),
            )
        },
        |_| {},
        |socks| socks.iter().try_for_each(|s| check_one(s, &socks)),
    );
}
