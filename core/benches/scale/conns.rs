//! The `conns` sweep: the workload's root holds N established TCP
//! connections over loopback to a peer outside the dumped tree (a thread
//! of the benchmark, [`peer`]), as a server holds its clients' (dumped
//! and restored with `--tcp-established`).
//!
//! Each connection carries three words, named after the workload end's
//! port (so neither side depends on the order of accepts): `BEFORE`, sent
//! by the peer before the dump and left unread in the workload's receive
//! queue (the dump saves it in the connection's `tcp-stream` image);
//! `AFTER`, sent by the peer once the restored workload is told to go;
//! `ANSWER`, the workload's reply once it has read both. A connection
//! that lost or changed a byte, or does not work after the restore, fails
//! the run.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::workload::pattern;

const BEFORE: usize = 1;
const AFTER: usize = 2;
const ANSWER: usize = 3;

/// The word `tag` of the connection whose workload end has `port`.
fn word(tag: usize, port: u16) -> [u8; 8] {
    pattern(1 << 20 | tag, usize::from(port)).to_le_bytes()
}

fn read_word(s: &mut impl Read, what: &str) -> Result<[u8; 8], String> {
    let mut b = [0u8; 8];
    s.read_exact(&mut b).map_err(|e| format!("{what}: {e}"))?;
    Ok(b)
}

/// The workload's side: N connections to the peer on `port`.
#[derive(Default)]
pub struct Conns {
    list: Vec<TcpStream>,
}

impl Conns {
    /// Connects `n` times to `port` and waits (up to `bound`) until the
    /// peer's first word is in every receive queue.
    pub fn open(port: u16, n: usize, bound: Duration) -> Result<Conns, String> {
        let mut list = Vec::with_capacity(n);
        for i in 0..n {
            let s = TcpStream::connect(("127.0.0.1", port))
                .map_err(|e| format!("connection {i} to port {port}: {e}"))?;
            list.push(s);
        }
        let end = Instant::now() + bound;
        for (i, s) in list.iter().enumerate() {
            while rustix::io::ioctl_fionread(s).unwrap_or(0) < 8 {
                if Instant::now() > end {
                    return Err(format!("connection {i}: the peer's word did not come"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(Conns { list })
    }

    /// After the restore: both words of the peer on every connection, and
    /// an answer on each.
    pub fn check(&self) -> Result<(), String> {
        for (i, s) in self.list.iter().enumerate() {
            let port = s.local_addr().map_err(|e| e.to_string())?.port();
            s.set_read_timeout(Some(Duration::from_secs(60)))
                .map_err(|e| e.to_string())?;
            let mut s: &TcpStream = s;
            for (tag, what) in [
                (BEFORE, "the word queued at the dump"),
                (AFTER, "the word after"),
            ] {
                if read_word(&mut s, what)? != word(tag, port) {
                    return Err(format!("connection {i} (port {port}): {what} differs"));
                }
            }
            s.write_all(&word(ANSWER, port))
                .map_err(|e| format!("connection {i} (port {port}): answer: {e}"))?;
        }
        Ok(())
    }
}

/// The peer (a thread of the benchmark, outside the tree): accepts `n`
/// connections on `listener`, sends each its `BEFORE` word, waits for
/// `DIR/go` (the restored workload runs), sends `AFTER` and checks each
/// `ANSWER`. Gives up (an error) when `dir` disappears (the run failed
/// and was cleaned up) or after `bound`.
pub fn peer(listener: TcpListener, n: usize, dir: &Path, bound: Duration) -> Result<(), String> {
    let end = Instant::now() + bound;
    let gone = || !dir.exists() || Instant::now() > end;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("peer: {e}"))?;
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        match listener.accept() {
            Ok((mut s, from)) => {
                s.set_nonblocking(false)
                    .and_then(|()| s.write_all(&word(BEFORE, from.port())))
                    .map_err(|e| format!("peer: connection from {from}: {e}"))?;
                conns.push((s, from.port()));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if gone() {
                    return Err(format!("peer: {} of {n} connections came", conns.len()));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("peer: accept: {e}")),
        }
    }
    while !dir.join("go").exists() {
        if gone() {
            return Err("peer: the workload was never told to go".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for (s, port) in &mut conns {
        s.write_all(&word(AFTER, *port))
            .map_err(|e| format!("peer: connection from port {port} after the restore: {e}"))?;
    }
    for (s, port) in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let what = format!("peer: the answer on the connection from port {port}");
        if read_word(s, &what)? != word(ANSWER, *port) {
            return Err(format!("{what} differs"));
        }
    }
    Ok(())
}
