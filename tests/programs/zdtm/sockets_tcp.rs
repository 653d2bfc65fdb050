//! TCP connections with both ends in the program (`PROGRAM DIR MODE`),
//! dumped with `--tcp-established`:
//! - `tcp4`, `tcp6`: a connection over loopback with bytes in flight both
//!   ways at the dump: the client wrote `CLIENT_BYTES` the server has not
//!   read (the server's receive queue), the server wrote until its send
//!   buffer was full to a client that reads nothing and has a small
//!   receive buffer (the client's receive queue, and a send queue whose
//!   tail was never sent). The check: no end in repair mode, every byte
//!   arrives exactly once, in order, then the connection works both ways.
//! - `half4`, `half6`: the client wrote a request and shut its writing
//!   side (`FIN_WAIT2`), the server has not read it (`CLOSE_WAIT`). The
//!   check: both states back, the server reads the request then the end
//!   of the stream, answers and closes, the client reads the answer then
//!   the end.
//!
//! With `DIR/expect` holding `closed` (the harness writes it for a
//! `--tcp-close` restore), the check is instead that both fds are TCP
//! sockets with no peer.
#[path = "inet_common.rs"]
mod inet;
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use inet::*;
use rustix::net::{RecvFlags, SendFlags, SocketType};
use zdtm::ensure;

use linux_raw_sys::net as raw;

const CLIENT_BYTES: usize = 3000;
const TCP_FIN_WAIT2: u8 = 5;
const TCP_CLOSE_WAIT: u8 = 8;
const TCP_ESTABLISHED: u8 = 1;

struct Conn {
    c: OwnedFd,
    s: OwnedFd,
    _l: OwnedFd,
    /// Bytes the server wrote (`tcp*`), 0 for `half*`.
    sent: usize,
    half: bool,
    dir: std::path::PathBuf,
}

/// The byte at `i` of a stream seeded `seed`.
fn byte(seed: u8, i: usize) -> u8 {
    ((i * 7 + usize::from(seed)) % 251) as u8
}

fn state(fd: impl AsFd) -> Result<u8, String> {
    getopt(fd, SOL_TCP, raw::TCP_INFO)?
        .first()
        .copied()
        .ok_or_else(|| "no TCP_INFO".into())
}

/// `ioctl(fd, req, &int)` of a socket (`SIOCOUTQNSD`: unsent bytes).
fn ioctl_int(fd: impl AsFd, req: u32) -> Result<i32, String> {
    let mut v: i32 = 0;
    // SAFETY: the request writes one int to `v`, on this stack frame.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_fd().as_raw_fd() as usize,
            req as usize,
            &mut v as *mut i32 as usize,
        )
    };
    zdtm::errno(r, "ioctl")?;
    Ok(v)
}

/// `SIOCOUTQNSD` (linux/sockios.h, generic).
const SIOCOUTQNSD: u32 = 0x894b;

fn wait_state(fd: impl AsFd, want: u8, who: &str) -> Result<(), String> {
    let end = Instant::now() + WAIT;
    while state(&fd)? != want {
        ensure(Instant::now() < end, || {
            format!("{who} never reached state {want}")
        })?;
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn setup(args: &zdtm::Args) -> Result<Conn, String> {
    let mode = args.rest.first().map(String::as_str).unwrap_or("");
    let (family, at) = match mode {
        "tcp4" | "half4" => (INET, v4(0)),
        "tcp6" | "half6" => (INET6, v6(0)),
        other => return Err(format!("unknown mode {other}")),
    };
    let l = listener(family, at, 1)?;
    let c = socket(family, SocketType::STREAM)?;
    // A small receive buffer: the server fills it, and its own send
    // queue, quickly.
    set_int(&c, SOL_SOCKET, raw::SO_RCVBUF, 4096)?;
    rustix::net::connect(&c, &local(&l)?).map_err(e("connect"))?;
    let s = rustix::net::accept(&l).map_err(e("accept"))?;
    let half = mode.starts_with("half");
    let mut sent = 0;
    if half {
        send(&c, b"request", "client")?;
        rustix::net::shutdown(&c, rustix::net::Shutdown::Write).map_err(e("shutdown"))?;
        wait_state(&c, TCP_FIN_WAIT2, "the client")?;
        wait_state(&s, TCP_CLOSE_WAIT, "the server")?;
    } else {
        let data: Vec<u8> = (0..CLIENT_BYTES).map(|i| byte(1, i)).collect();
        send(&c, &data, "client")?;
        let chunk: Vec<u8> = (0..65536).map(|i| byte(2, i)).collect();
        let end = Instant::now() + WAIT;
        loop {
            // The stream goes on where the last write stopped.
            let buf: Vec<u8> = (sent..sent + chunk.len()).map(|i| byte(2, i)).collect();
            match rustix::net::send(&s, &buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
                Ok(n) => sent += n,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(x) => return Err(format!("server send: {x}")),
            }
            ensure(Instant::now() < end, || {
                "the send buffer never filled".into()
            })?;
        }
        // Let the stack settle: the unsent tail stays unsent.
        std::thread::sleep(Duration::from_millis(50));
        let unsent = ioctl_int(&s, SIOCOUTQNSD)?;
        ensure(unsent > 0, || {
            "no unsent bytes in the server's send queue".into()
        })?;
    }
    Ok(Conn {
        c,
        s,
        _l: l,
        sent,
        half,
        dir: args.dir.clone(),
    })
}

/// Reads exactly `n` bytes (bounded wait), then checks nothing more is
/// there yet.
fn read_exactly(fd: impl AsFd, n: usize, who: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(n);
    let mut buf = vec![0u8; 65536];
    let end = Instant::now() + WAIT;
    while out.len() < n {
        let want = (n - out.len()).min(buf.len());
        match rustix::net::recv(&fd, &mut buf[..want], RecvFlags::DONTWAIT) {
            Ok((0, _)) => return Err(format!("{who}: end of stream after {} of {n}", out.len())),
            Ok((k, _)) => out.extend_from_slice(&buf[..k]),
            Err(rustix::io::Errno::AGAIN) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(x) => return Err(format!("{who}: recv after {} of {n}: {x}", out.len())),
        }
    }
    Ok(out)
}

fn nothing_more(fd: impl AsFd, who: &str) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(50));
    let mut b = [0u8; 16];
    let r = rustix::net::recv(&fd, &mut b, RecvFlags::DONTWAIT);
    ensure(r == Err(rustix::io::Errno::AGAIN), || {
        format!("{who}: more after the stream: {r:?}")
    })
}

fn end_of_stream(fd: impl AsFd, who: &str) -> Result<(), String> {
    let end = Instant::now() + WAIT;
    let mut b = [0u8; 16];
    loop {
        match rustix::net::recv(&fd, &mut b, RecvFlags::DONTWAIT) {
            Ok((0, _)) => return Ok(()),
            Ok((k, _)) => return Err(format!("{who}: {k} bytes where the end was due")),
            Err(rustix::io::Errno::AGAIN) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(x) => return Err(format!("{who}: waiting for the end: {x}")),
        }
    }
}

fn check_stream(got: &[u8], seed: u8, who: &str) -> Result<(), String> {
    match got.iter().enumerate().find(|(i, b)| **b != byte(seed, *i)) {
        Some((i, b)) => Err(format!("{who}: byte {i} is {b}, want {}", byte(seed, i))),
        None => Ok(()),
    }
}

fn check(k: Conn) -> Result<(), String> {
    let expect = std::fs::read_to_string(k.dir.join("expect")).unwrap_or_default();
    if expect.trim() == "closed" {
        for (fd, who) in [(&k.c, "client"), (&k.s, "server")] {
            let ty = get_int(fd, SOL_SOCKET, raw::SO_TYPE)?;
            ensure(ty == raw::SOCK_STREAM as i32, || {
                format!("{who}: type {ty}")
            })?;
            let p = rustix::net::getpeername(fd);
            ensure(p == Err(rustix::io::Errno::NOTCONN), || {
                format!("{who}: a peer after --tcp-close: {p:?}")
            })?;
        }
        return Ok(());
    }
    for (fd, who) in [(&k.c, "client"), (&k.s, "server")] {
        let repair = get_int(fd, SOL_TCP, raw::TCP_REPAIR)?;
        ensure(repair == 0, || {
            format!("{who} left in repair mode ({repair})")
        })?;
    }
    if k.half {
        let (sc, ss) = (state(&k.c)?, state(&k.s)?);
        ensure(sc == TCP_FIN_WAIT2 && ss == TCP_CLOSE_WAIT, || {
            format!("states client {sc} server {ss}, want {TCP_FIN_WAIT2} {TCP_CLOSE_WAIT}")
        })?;
        let req = read_exactly(&k.s, 7, "server")?;
        ensure(req == b"request", || format!("server read {req:?}"))?;
        end_of_stream(&k.s, "server")?;
        send(&k.s, b"response", "server")?;
        rustix::net::shutdown(&k.s, rustix::net::Shutdown::Write).map_err(e("shutdown"))?;
        let resp = read_exactly(&k.c, 8, "client")?;
        ensure(resp == b"response", || format!("client read {resp:?}"))?;
        return end_of_stream(&k.c, "client");
    }
    let (sc, ss) = (state(&k.c)?, state(&k.s)?);
    ensure(sc == TCP_ESTABLISHED && ss == TCP_ESTABLISHED, || {
        format!("states client {sc} server {ss}")
    })?;
    let got = read_exactly(&k.s, CLIENT_BYTES, "server")?;
    check_stream(&got, 1, "server")?;
    nothing_more(&k.s, "server")?;
    let got = read_exactly(&k.c, k.sent, "client")?;
    check_stream(&got, 2, "client")?;
    nothing_more(&k.c, "client")?;
    // And on, both ways.
    send(&k.c, b"ping", "client")?;
    ensure(read_exactly(&k.s, 4, "server")? == b"ping", || {
        "no ping".into()
    })?;
    send(&k.s, b"pong", "server")?;
    ensure(read_exactly(&k.c, 4, "client")? == b"pong", || {
        "no pong".into()
    })
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
