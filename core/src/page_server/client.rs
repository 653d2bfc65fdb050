//! The sending side (`criu dump --page-server`): one connection for the
//! whole dump, each pagemap opened in turn, its runs sent as
//! `PS_IOV_ADD_F` followed by their pages, and `PS_IOV_FLUSH` at the end,
//! whose answer says the server has written everything.
//!
//! As CRIU does, the socket is corked (headers and pages leave in full
//! segments) and switched to `TCP_NODELAY` before waiting for an answer,
//! which pushes out whatever is queued.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::wire::{Iov, Target, cmd};
use crate::pr_info;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--page-server needs --address and --port of the page server")]
    NoAddress,
    #[error("can't resolve the page server address {addr}:{port}: {source}")]
    Resolve {
        addr: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("can't connect to the page server at {addr}:{port}: {source}")]
    Connect {
        addr: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("can't use --ps-socket {fd}: {errno}")]
    Socket { fd: i32, errno: rustix::io::Errno },
    #[error("sending {what} to the page server: {source}")]
    Send {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the page server doesn't answer {what}: {source}")]
    Answer {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the page server connection is still in use by a tracer thread")]
    Busy,
    #[error("the page server failed to write the pages (status {0})")]
    Status(i32),
}

/// A connection to a page server.
#[derive(Debug)]
pub struct Connection {
    sk: TcpStream,
    /// The socket came from `--ps-socket`: someone else may hold it open,
    /// so the server is told to stop with `PS_IOV_FLUSH_N_CLOSE`.
    inherited: bool,
}

impl Connection {
    /// Connect to `addr:port` (a name or a numeric IPv4/IPv6 address).
    pub fn connect(addr: &str, port: u16) -> Result<Connection, ClientError> {
        pr_info!("Connecting to server {addr}:{port}");
        let addrs: Vec<_> = (addr, port)
            .to_socket_addrs()
            .map_err(|source| ClientError::Resolve {
                addr: addr.to_owned(),
                port,
                source,
            })?
            .collect();
        let sk = TcpStream::connect(&addrs[..]).map_err(|source| ClientError::Connect {
            addr: addr.to_owned(),
            port,
            source,
        })?;
        Ok(Connection::ready(sk, false))
    }

    /// Use the connected socket inherited as fd `raw` (`--ps-socket`).
    pub fn adopt(raw: i32) -> Result<Connection, ClientError> {
        let fd: OwnedFd =
            crate::sys::fds::adopt(raw).map_err(|errno| ClientError::Socket { fd: raw, errno })?;
        pr_info!("Re-using ps socket {raw}");
        Ok(Connection::ready(TcpStream::from(fd), true))
    }

    fn ready(sk: TcpStream, inherited: bool) -> Connection {
        // Best effort, as in CRIU: only the segment sizes depend on it.
        let _ = rustix::net::sockopt::set_tcp_cork(&sk, true);
        Connection { sk, inherited }
    }

    /// The stream, for writing pages after a header.
    pub fn stream(&self) -> &TcpStream {
        &self.sk
    }

    /// The socket, for splicing pages into it after a header.
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.sk.as_fd()
    }

    /// Send one message.
    pub fn send(&self, iov: Iov, what: &'static str) -> Result<(), ClientError> {
        (&self.sk)
            .write_all(&iov.to_bytes())
            .map_err(|source| ClientError::Send { what, source })
    }

    /// Send raw page bytes (after a `PS_IOV_ADD_F` with `PE_PRESENT`).
    pub fn send_pages(&self, data: &[u8]) -> Result<(), ClientError> {
        (&self.sk)
            .write_all(data)
            .map_err(|source| ClientError::Send {
                what: "pages",
                source,
            })
    }

    fn answer<const N: usize>(&self, what: &'static str) -> Result<[u8; N], ClientError> {
        let _ = rustix::net::sockopt::set_tcp_nodelay(&self.sk, true);
        let mut b = [0u8; N];
        (&self.sk)
            .read_exact(&mut b)
            .map_err(|source| ClientError::Answer { what, source })?;
        Ok(b)
    }

    /// `PS_IOV_OPEN2`: start the pagemap of `target`. Whether the server
    /// has a parent image of it.
    pub fn open(&self, target: Target) -> Result<bool, ClientError> {
        self.send(Iov::new(cmd::OPEN2, 0, 0, target.dst_id()), "OPEN2")?;
        let [has_parent] = self.answer::<1>("OPEN2")?;
        Ok(has_parent != 0)
    }

    /// `PS_IOV_PARENT`: whether the server has a parent image of `target`.
    pub fn has_parent(&self, target: Target) -> Result<bool, ClientError> {
        self.send(Iov::new(cmd::PARENT, 0, 0, target.dst_id()), "PARENT")?;
        Ok(i32::from_ne_bytes(self.answer::<4>("PARENT")?) != 0)
    }

    /// End the transfer: `PS_IOV_FLUSH` (or `PS_IOV_FLUSH_N_CLOSE` on an
    /// inherited socket) and the server's answer that all is written.
    pub fn finish(self) -> Result<(), ClientError> {
        let (c, what) = if self.inherited {
            (cmd::FLUSH_N_CLOSE, "FLUSH_N_CLOSE")
        } else {
            (cmd::FLUSH, "FLUSH")
        };
        self.send(Iov::new(c, 0, 0, 0), what)?;
        let status = i32::from_ne_bytes(self.answer::<4>(what)?);
        if status != 0 {
            return Err(ClientError::Status(status));
        }
        pr_info!("Disconnected from the page server");
        Ok(())
    }
}
