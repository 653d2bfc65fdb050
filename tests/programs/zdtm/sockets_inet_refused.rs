//! TCP and UDP sockets a dump must refuse, naming them, with the program
//! running on unchanged (`PROGRAM DIR MODE`); after the refused dump the
//! program checks nothing was lost:
//! - `established`: a TCP connection within the program (its ports in
//!   `DIR/conn` as `FD LOCAL_PORT PEER_PORT`); both ends still talk.
//! - `inflight`: a listener (its port in `DIR/port`) that the harness
//!   connects to and leaves unaccepted; the check accepts the connection
//!   and reads `hello` from it.
//! - `udpqueue`: a bound UDP socket (port in `DIR/port`) with two
//!   datagrams queued; the check reads them.
//! - `reset`: a TCP client whose connection its peer reset (its fd in
//!   `DIR/fd`): state `TCP_CLOSE`, but a read gives the reset, then the
//!   end of the stream.
//!
//! (Raw and packet sockets, refused here before they were dumped, are
//! `sockets_raw.rs`'s and `sockets_packet.rs`'s.)
#[path = "inet_common.rs"]
mod inet;
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use inet::*;
use rustix::net::{RecvFlags, SendFlags, SocketType};
use zdtm::ensure;

use linux_raw_sys::net as raw;

/// What the refusal modes hold, for their checks after the refused dump.
enum Refused {
    Established {
        c: OwnedFd,
        s: OwnedFd,
        _l: OwnedFd,
    },
    Inflight {
        l: OwnedFd,
    },
    UdpQueue {
        r: OwnedFd,
        _s: OwnedFd,
    },
    /// A client whose connection was reset by its peer (`reset`).
    Reset {
        c: OwnedFd,
        _l: OwnedFd,
    },
}

fn setup_refused(dir: &std::path::Path, mode: &str) -> Result<Refused, String> {
    match mode {
        "established" => {
            let l = listener(INET, v4(0), 1)?;
            let c = socket(INET, SocketType::STREAM)?;
            rustix::net::connect(&c, &local(&l)?).map_err(e("connect"))?;
            let s = rustix::net::accept(&l).map_err(e("accept"))?;
            let line = format!(
                "{} {} {}\n",
                c.as_raw_fd(),
                local(&c)?.port(),
                local(&l)?.port()
            );
            zdtm::write_atomic(&dir.join("conn"), &line)?;
            Ok(Refused::Established { c, s, _l: l })
        }
        "inflight" => {
            let l = listener(INET, v4(0), 4)?;
            zdtm::write_atomic(&dir.join("port"), &format!("{}\n", local(&l)?.port()))?;
            Ok(Refused::Inflight { l })
        }
        "udpqueue" => {
            let r = bound(INET, SocketType::DGRAM, v4(0))?;
            let s = socket(INET, SocketType::DGRAM)?;
            for m in [&b"first"[..], b"second"] {
                rustix::net::sendto(&s, m, SendFlags::empty(), &local(&r)?).map_err(e("sendto"))?;
            }
            zdtm::write_atomic(&dir.join("port"), &format!("{}\n", local(&r)?.port()))?;
            Ok(Refused::UdpQueue { r, _s: s })
        }
        "reset" => {
            let l = listener(INET, v4(0), 1)?;
            let c = socket(INET, SocketType::STREAM)?;
            rustix::net::connect(&c, &local(&l)?).map_err(e("connect"))?;
            let s = rustix::net::accept(&l).map_err(e("accept"))?;
            // Closed with a zero linger: the client gets a reset.
            rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO))
                .map_err(e("SO_LINGER"))?;
            drop(s);
            let end = Instant::now() + WAIT;
            // tcp_info starts with the state; 7 is TCP_CLOSE.
            while getopt(&c, SOL_TCP, raw::TCP_INFO)?.first() != Some(&7) {
                ensure(Instant::now() < end, || "the client was never reset".into())?;
                std::thread::sleep(Duration::from_millis(5));
            }
            zdtm::write_atomic(&dir.join("fd"), &format!("{}\n", c.as_raw_fd()))?;
            Ok(Refused::Reset { c, _l: l })
        }
        other => Err(format!("unknown mode {other}")),
    }
}

fn check_refused(r: Refused) -> Result<(), String> {
    match r {
        Refused::Established { c, s, .. } => {
            send(&c, b"still", "client")?;
            ensure(recv_wait(&s, "server")? == b"still", || {
                "connection lost".into()
            })?;
            send(&s, b"here", "server")?;
            ensure(recv_wait(&c, "client")? == b"here", || {
                "connection lost back".into()
            })
        }
        Refused::Inflight { l } => {
            let s = rustix::net::accept(&l).map_err(e("accept the waiting connection"))?;
            let got = recv_wait(&s, "waiting connection")?;
            ensure(got == b"hello", || {
                format!("the waiting connection sent {got:?}")
            })
        }
        Refused::UdpQueue { r, .. } => {
            for want in [&b"first"[..], b"second"] {
                let got = recv_wait(&r, "queued datagram")?;
                ensure(got == want, || {
                    format!("queued datagram {got:?}, want {want:?}")
                })?;
            }
            Ok(())
        }
        Refused::Reset { c, .. } => {
            // The reset comes first, then the end of the stream.
            let mut b = [0u8; 8];
            let first = rustix::net::recv(&c, &mut b[..], RecvFlags::DONTWAIT);
            ensure(first == Err(rustix::io::Errno::CONNRESET), || {
                format!("first read of the reset client: {first:?}")
            })?;
            let then = rustix::net::recv(&c, &mut b[..], RecvFlags::DONTWAIT).map(|r| r.0);
            ensure(then == Ok(0), || format!("then: {then:?}"))
        }
    }
}

fn main() {
    zdtm::run(
        |args| {
            setup_refused(
                &args.dir,
                args.rest.first().map(String::as_str).unwrap_or(""),
            )
        },
        |_| {},
        check_refused,
    );
}
