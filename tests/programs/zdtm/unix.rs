//! Unix sockets, one mode per run (first argument after the directory):
//! - `stream`: a socketpair with data queued both ways, one side
//!   non-blocking, a second pair shut down for writing on one side, and a
//!   socket whose peer was closed after sending it data.
//! - `dgram`: a datagram socketpair with several messages queued each way
//!   (their boundaries must survive), and a bound datagram socket with
//!   messages from an unbound one connected to it, and one with messages
//!   sent to it by `sendto` from an unconnected socket.
//! - `seqpacket`: a seqpacket socketpair with messages queued both ways.
//! - `listen`: a listener bound in the work directory with one accepted
//!   connection (data queued both ways) and one connection not accepted
//!   yet; `abstract`: the same with a listener in the abstract namespace.
//! - `scm`: a socketpair with a file descriptor in flight (the dump must
//!   refuse it, leaving the program running).
//! - `ext PATH`: a stream socket connected to a listener outside the
//!   program (the dump must refuse it, leaving the program running).
//!
//! After restore the program checks the queued data, message boundaries,
//! names, flags, and that every connection still works both ways.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, Shutdown, SocketAddrUnix, SocketFlags, SocketType,
};
use zdtm::ensure;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn pair(kind: SocketType) -> Result<(OwnedFd, OwnedFd), String> {
    rustix::net::socketpair(AddressFamily::UNIX, kind, SocketFlags::empty(), None)
        .map_err(|e| format!("socketpair: {e}"))
}

fn send(fd: impl AsFd, data: &[u8]) -> Result<(), String> {
    let n = rustix::net::send(fd, data, SendFlags::empty()).map_err(|e| format!("send: {e}"))?;
    ensure(n == data.len(), || format!("sent {n} of {}", data.len()))
}

/// One message (or up to `max` bytes of a stream), without blocking.
fn recv(fd: impl AsFd, max: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; max];
    let (n, _) = rustix::net::recv(fd, &mut buf[..], RecvFlags::DONTWAIT)
        .map_err(|e| format!("recv: {e}"))?;
    buf.truncate(n);
    Ok(buf)
}

/// Exactly `len` bytes of a stream, without blocking.
fn recv_stream(fd: impl AsFd, len: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while out.len() < len {
        let chunk = recv(&fd, len - out.len())?;
        if chunk.is_empty() {
            return Err(format!("EOF after {} of {len} bytes", out.len()));
        }
        out.extend(chunk);
    }
    Ok(out)
}

fn nothing_more(fd: impl AsFd, what: &str) -> Result<(), String> {
    let mut b = [0u8; 1];
    match rustix::net::recv(fd, &mut b[..], RecvFlags::DONTWAIT) {
        Err(rustix::io::Errno::AGAIN) => Ok(()),
        Ok((n, _)) => Err(format!("{what}: {n} more bytes queued")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Both directions still work between `a` and `b`.
fn ping(a: &OwnedFd, b: &OwnedFd, what: &str, stream: bool) -> Result<(), String> {
    for (from, to, dir) in [(a, b, "a→b"), (b, a, "b→a")] {
        send(from, b"ping")?;
        let got = if stream {
            recv_stream(to, 4)?
        } else {
            recv(to, 64)?
        };
        ensure(got == b"ping", || format!("{what} {dir}: got {got:?}"))?;
    }
    Ok(())
}

struct Sock {
    fd: OwnedFd,
    flags: OFlags,
}

fn sock(fd: OwnedFd) -> Sock {
    let flags = rustix::fs::fcntl_getfl(&fd).unwrap_or(OFlags::empty());
    Sock { fd, flags }
}

fn check_flags(s: &Sock, what: &str) -> Result<(), String> {
    let now = rustix::fs::fcntl_getfl(&s.fd).map_err(|e| e.to_string())?;
    ensure(now == s.flags, || {
        format!("{what}: flags {now:?}, were {:?}", s.flags)
    })
}

fn addr_of(fd: impl AsFd, peer: bool) -> Result<SocketAddrUnix, String> {
    let a = if peer {
        rustix::net::getpeername(fd)
            .map_err(|e| e.to_string())?
            .ok_or("no peer")?
    } else {
        rustix::net::getsockname(fd).map_err(|e| e.to_string())?
    };
    SocketAddrUnix::try_from(a).map_err(|e| e.to_string())
}

fn name_of(fd: impl AsFd, peer: bool) -> Result<Option<PathBuf>, String> {
    let a = if peer {
        rustix::net::getpeername(fd)
            .map_err(|e| e.to_string())?
            .ok_or("no peer")?
    } else {
        rustix::net::getsockname(fd).map_err(|e| e.to_string())?
    };
    let a = SocketAddrUnix::try_from(a).map_err(|e| e.to_string())?;
    Ok(a.path()
        .map(|p| PathBuf::from(p.to_string_lossy().into_owned())))
}

enum State {
    Stream {
        a: Sock,
        b: Sock,
        c: Sock,
        d: Sock,
        e: Sock,
    },
    Messages {
        a: Sock,
        b: Sock,
        server: Option<(Sock, Sock)>,
        server2: Option<(Sock, Sock)>,
        stream: bool,
    },
    Listen {
        addr: SocketAddrUnix,
        l: Sock,
        c1: Sock,
        s1: Sock,
        c2: Sock,
    },
    Scm {
        a: Sock,
        b: Sock,
    },
    Ext {
        s: Sock,
    },
}

fn setup(dir: &Path, mode: &str, arg: Option<&str>) -> Result<State, String> {
    match mode {
        "stream" => {
            let (a, b) = pair(SocketType::STREAM)?;
            send(&a, &pattern(1, 3000))?;
            send(&b, &pattern(2, 1000))?;
            send(&b, &pattern(3, 500))?;
            rustix::fs::fcntl_setfl(&a, OFlags::NONBLOCK).map_err(|e| e.to_string())?;
            let (c, d) = pair(SocketType::STREAM)?;
            send(&c, b"bye")?;
            rustix::net::shutdown(&c, Shutdown::Write).map_err(|e| e.to_string())?;
            let (e, f) = pair(SocketType::STREAM)?;
            send(&f, b"orphaned data")?;
            drop(f);
            Ok(State::Stream {
                a: sock(a),
                b: sock(b),
                c: sock(c),
                d: sock(d),
                e: sock(e),
            })
        }
        "dgram" | "seqpacket" => {
            let kind = if mode == "dgram" {
                SocketType::DGRAM
            } else {
                SocketType::SEQPACKET
            };
            let (a, b) = pair(kind)?;
            for i in 0..3 {
                send(&a, &pattern(i, 100 + usize::from(i)))?;
            }
            for i in 0..2 {
                send(&b, &pattern(10 + i, 50 + usize::from(i)))?;
            }
            let server = if mode == "dgram" {
                let path = dir.join("dgram.sock");
                let s = rustix::net::socket(AddressFamily::UNIX, SocketType::DGRAM, None)
                    .map_err(|e| e.to_string())?;
                let addr = SocketAddrUnix::new(&path).map_err(|e| e.to_string())?;
                rustix::net::bind(&s, &addr).map_err(|e| format!("bind: {e}"))?;
                let c = rustix::net::socket(AddressFamily::UNIX, SocketType::DGRAM, None)
                    .map_err(|e| e.to_string())?;
                rustix::net::connect(&c, &addr).map_err(|e| format!("connect: {e}"))?;
                send(&c, b"first")?;
                send(&c, b"second!")?;
                Some((sock(s), sock(c)))
            } else {
                None
            };
            let server2 = if mode == "dgram" {
                let path = dir.join("dgram2.sock");
                let s = rustix::net::socket(AddressFamily::UNIX, SocketType::DGRAM, None)
                    .map_err(|e| e.to_string())?;
                let addr = SocketAddrUnix::new(&path).map_err(|e| e.to_string())?;
                rustix::net::bind(&s, &addr).map_err(|e| format!("bind: {e}"))?;
                let u = rustix::net::socket(AddressFamily::UNIX, SocketType::DGRAM, None)
                    .map_err(|e| e.to_string())?;
                for m in [&b"x1"[..], b"x22"] {
                    rustix::net::sendto(&u, m, SendFlags::empty(), &addr)
                        .map_err(|e| format!("sendto: {e}"))?;
                }
                Some((sock(s), sock(u)))
            } else {
                None
            };
            Ok(State::Messages {
                a: sock(a),
                b: sock(b),
                server,
                server2,
                stream: false,
            })
        }
        "listen" | "abstract" => {
            let addr = if mode == "listen" {
                SocketAddrUnix::new(dir.join("listen.sock")).map_err(|e| e.to_string())?
            } else {
                let name = format!("zdtm-unix-{}", std::process::id());
                SocketAddrUnix::new_abstract_name(name.as_bytes()).map_err(|e| e.to_string())?
            };
            let l = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)
                .map_err(|e| e.to_string())?;
            rustix::net::bind(&l, &addr).map_err(|e| format!("bind: {e}"))?;
            rustix::net::listen(&l, 7).map_err(|e| format!("listen: {e}"))?;
            let c1 = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)
                .map_err(|e| e.to_string())?;
            rustix::net::connect(&c1, &addr).map_err(|e| format!("connect: {e}"))?;
            let s1 = rustix::net::accept(&l).map_err(|e| format!("accept: {e}"))?;
            send(&c1, b"from the client")?;
            send(&s1, b"from the server")?;
            let c2 = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)
                .map_err(|e| e.to_string())?;
            rustix::net::connect(&c2, &addr).map_err(|e| format!("connect 2: {e}"))?;
            rustix::fs::fcntl_setfl(&l, OFlags::NONBLOCK).map_err(|e| e.to_string())?;
            Ok(State::Listen {
                addr,
                l: sock(l),
                c1: sock(c1),
                s1: sock(s1),
                c2: sock(c2),
            })
        }
        "scm" => {
            let (a, b) = pair(SocketType::STREAM)?;
            let passed = rustix::fs::open("/", OFlags::RDONLY, rustix::fs::Mode::empty())
                .map_err(|e| e.to_string())?;
            let fds = [passed.as_fd()];
            let mut space = [std::mem::MaybeUninit::<u8>::uninit(); 64];
            let mut cmsg = rustix::net::SendAncillaryBuffer::new(&mut space);
            cmsg.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
            rustix::net::sendmsg(
                &a,
                &[std::io::IoSlice::new(b"fd")],
                &mut cmsg,
                SendFlags::empty(),
            )
            .map_err(|e| format!("sendmsg: {e}"))?;
            Ok(State::Scm {
                a: sock(a),
                b: sock(b),
            })
        }
        "ext" => {
            let path = arg.ok_or("ext needs a socket path")?;
            let s = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)
                .map_err(|e| e.to_string())?;
            let addr = SocketAddrUnix::new(path).map_err(|e| e.to_string())?;
            rustix::net::connect(&s, &addr).map_err(|e| format!("connect: {e}"))?;
            Ok(State::Ext { s: sock(s) })
        }
        other => Err(format!("unknown mode {other}")),
    }
}

fn check(state: State) -> Result<(), String> {
    match state {
        State::Stream { a, b, c, d, e } => {
            check_flags(&a, "a")?;
            check_flags(&b, "b")?;
            let got = recv_stream(&b.fd, 3000)?;
            ensure(got == pattern(1, 3000), || "a→b data differs".into())?;
            let got = recv_stream(&a.fd, 1500)?;
            let mut want = pattern(2, 1000);
            want.extend(pattern(3, 500));
            ensure(got == want, || "b→a data differs".into())?;
            nothing_more(&a.fd, "a")?;
            nothing_more(&b.fd, "b")?;
            ping(&a.fd, &b.fd, "pair", true)?;
            // The shut-down pair: the data, then EOF; d can still write to c.
            let got = recv_stream(&d.fd, 3)?;
            ensure(got == b"bye", || format!("d got {got:?}"))?;
            let eof = recv(&d.fd, 8)?;
            ensure(eof.is_empty(), || "no EOF after shutdown".into())?;
            send(&d.fd, b"back")?;
            let got = recv_stream(&c.fd, 4)?;
            ensure(got == b"back", || format!("c got {got:?}"))?;
            // The orphan: its data, then EOF.
            let got = recv_stream(&e.fd, 13)?;
            ensure(got == b"orphaned data", || format!("e got {got:?}"))?;
            let eof = recv(&e.fd, 8)?;
            ensure(eof.is_empty(), || "no EOF after the orphan's data".into())
        }
        State::Messages {
            a,
            b,
            server,
            server2,
            stream,
        } => {
            for i in 0..3u8 {
                let got = recv(&b.fd, 4096)?;
                ensure(got == pattern(i, 100 + usize::from(i)), || {
                    format!("message {i} a→b: {} bytes, differs", got.len())
                })?;
            }
            for i in 0..2u8 {
                let got = recv(&a.fd, 4096)?;
                ensure(got == pattern(10 + i, 50 + usize::from(i)), || {
                    format!("message {i} b→a: {} bytes, differs", got.len())
                })?;
            }
            nothing_more(&a.fd, "a")?;
            nothing_more(&b.fd, "b")?;
            ping(&a.fd, &b.fd, "pair", stream)?;
            if let Some((s, c)) = server {
                for want in [&b"first"[..], b"second!"] {
                    let got = recv(&s.fd, 64)?;
                    ensure(got == want, || format!("server got {got:?}"))?;
                }
                nothing_more(&s.fd, "server")?;
                send(&c.fd, b"again")?;
                let got = recv(&s.fd, 64)?;
                ensure(got == b"again", || format!("server got {got:?}"))?;
                check_flags(&s, "server")?;
            }
            if let Some((s, u)) = server2 {
                for want in [&b"x1"[..], b"x22"] {
                    let got = recv(&s.fd, 64)?;
                    ensure(got == want, || format!("server2 got {got:?}"))?;
                }
                nothing_more(&s.fd, "server2")?;
                let addr = addr_of(&s.fd, false)?;
                rustix::net::sendto(&u.fd, b"x3", SendFlags::empty(), &addr)
                    .map_err(|e| format!("sendto: {e}"))?;
                let got = recv(&s.fd, 64)?;
                ensure(got == b"x3", || format!("server2 got {got:?}"))?;
            }
            Ok(())
        }
        State::Listen {
            addr,
            l,
            c1,
            s1,
            c2,
        } => {
            check_flags(&l, "listener")?;
            ensure(
                rustix::net::sockopt::socket_acceptconn(&l.fd).map_err(|e| e.to_string())?,
                || "the listener is not listening".into(),
            )?;
            ensure(addr_of(&l.fd, false)? == addr, || {
                "listener name differs".into()
            })?;
            ensure(addr_of(&s1.fd, false)? == addr, || {
                "accepted socket's name differs".into()
            })?;
            ensure(addr_of(&c1.fd, true)? == addr, || {
                "client's peer name differs".into()
            })?;
            ensure(name_of(&c2.fd, false)?.is_none(), || {
                "pending client got a name".into()
            })?;
            let got = recv_stream(&s1.fd, 15)?;
            ensure(got == b"from the client", || format!("s1 got {got:?}"))?;
            let got = recv_stream(&c1.fd, 15)?;
            ensure(got == b"from the server", || format!("c1 got {got:?}"))?;
            ping(&c1.fd, &s1.fd, "accepted", true)?;
            // The pending connection is c2's, and the only one.
            let s2 = rustix::net::accept(&l.fd).map_err(|e| format!("accept pending: {e}"))?;
            ping(&c2.fd, &s2, "pending", true)?;
            match rustix::net::accept(&l.fd) {
                Err(rustix::io::Errno::AGAIN) => {}
                Ok(_) => return Err("a second pending connection".into()),
                Err(e) => return Err(format!("accept: {e}")),
            }
            // New clients still get in.
            let c3 = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)
                .map_err(|e| e.to_string())?;
            rustix::net::connect(&c3, &addr).map_err(|e| format!("connect: {e}"))?;
            let s3 = rustix::net::accept(&l.fd).map_err(|e| format!("accept new: {e}"))?;
            ping(&c3, &s3, "new", true)
        }
        State::Scm { a, b } => {
            let got = recv(&b.fd, 8)?;
            ensure(got == b"fd", || format!("b got {got:?}"))?;
            ping(&a.fd, &b.fd, "scm pair", true)
        }
        State::Ext { s } => {
            // Never dumped: still connected.
            send(&s.fd, b"still here")
        }
    }
}

fn main() {
    zdtm::run(
        |args| {
            let mode = args.rest.first().map(String::as_str).unwrap_or("stream");
            setup(&args.dir, mode, args.rest.get(1).map(String::as_str))
        },
        |_| {},
        check,
    );
}
