//! The `NETLINK_NETFILTER` socket: sends a batch, reads one acknowledgement
//! per message (or the error of the message that failed), and lists
//! tables. Every wait for the kernel is bounded by [`ANSWER_TIMEOUT`].

use std::os::fd::OwnedFd;
use std::time::Duration;

use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::NetfilterMessage;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, netlink};

use super::NetLockError;
use super::nft::{self, Batch};
use crate::sys::kconst::NLMSG_HDRLEN;

/// How long the kernel may take to answer one batch.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Receive buffer: an error echoes the failed message (a `NEWSETELEM` of
/// up to ~27 KiB), several may come in one read.
const RECV_BUF: usize = 256 * 1024;

pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    pub fn open() -> Result<Socket, NetLockError> {
        let fd = rustix::net::socket(
            AddressFamily::NETLINK,
            SocketType::RAW,
            Some(netlink::NETFILTER),
        )
        .map_err(NetLockError::Socket)?;
        // Sequence numbers only need to tell this socket's answers apart;
        // starting from the pid keeps two sockets' numbers distinct in logs.
        let seq = rustix::process::getpid().as_raw_nonzero().get() as u32;
        Ok(Socket { fd, seq })
    }

    /// A new batch numbered after the previous one.
    pub fn batch(&mut self) -> Batch {
        let b = Batch::new(self.seq);
        // Begin, end, and at most a few hundred messages in between.
        self.seq = self.seq.wrapping_add(1 << 16);
        b
    }

    /// Sends `batch` and waits for every message's acknowledgement. The
    /// kernel applies a batch whole or not at all; on failure the error is
    /// that of the first message that failed.
    pub fn run(&mut self, batch: Batch) -> Result<(), NetLockError> {
        let (bytes, begin, mut pending) = batch.finish();
        let whats = pending.clone();
        let first = pending.first().map_or_else(String::new, |p| p.1.clone());
        crate::fault::call(&format_args!("nf_tables batch: {first}"), Errno::NOBUFS).map_err(
            |errno| NetLockError::Kernel {
                what: first.clone(),
                errno,
            },
        )?;
        rustix::net::sendto(
            &self.fd,
            &bytes,
            SendFlags::empty(),
            &netlink::SocketAddrNetlink::new(0, 0),
        )
        .map_err(|errno| NetLockError::Kernel {
            what: first.clone(),
            errno,
        })?;
        // (seq, errno) of every failed message.
        let mut failed: Vec<(u32, Errno)> = Vec::new();
        let mut buf = vec![0u8; RECV_BUF];
        while !pending.is_empty() {
            let n = self.recv(&mut buf, &first)?;
            for msg in messages(&buf[..n])? {
                let seq = msg.header.sequence_number;
                let NetlinkPayload::Error(e) = msg.payload else {
                    continue;
                };
                if let Some(code) = e.code {
                    failed.push((seq, Errno::from_raw_os_error(-code.get())));
                }
                if seq == begin {
                    // About the batch as a whole: nothing else will come.
                    pending.clear();
                }
                pending.retain(|p| p.0 != seq);
            }
        }
        let Some(&(seq, errno)) = failed.iter().min_by_key(|f| f.0) else {
            return Ok(());
        };
        let what = whats
            .into_iter()
            .find(|w| w.0 == seq)
            .map_or_else(|| format!("{first} (the whole batch)"), |w| w.1);
        Err(NetLockError::Kernel { what, errno })
    }

    /// The names of the tables of every family, with their family.
    pub fn tables(&mut self) -> Result<Vec<(u8, String)>, NetLockError> {
        let what = "listing tables".to_owned();
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        rustix::net::sendto(
            &self.fd,
            &nft::get_tables(seq),
            SendFlags::empty(),
            &netlink::SocketAddrNetlink::new(0, 0),
        )
        .map_err(|errno| NetLockError::Kernel {
            what: what.clone(),
            errno,
        })?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let n = self.recv(&mut buf, &what)?;
            for msg in messages(&buf[..n])? {
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        if let Some(code) = e.code {
                            let errno = Errno::from_raw_os_error(-code.get());
                            return Err(NetLockError::Kernel { what, errno });
                        }
                    }
                    NetlinkPayload::InnerMessage(m) => out.extend(nft::table_of(&m)),
                    _ => {}
                }
            }
        }
    }

    /// One read, after waiting at most [`ANSWER_TIMEOUT`] for it.
    fn recv(&self, buf: &mut [u8], what: &str) -> Result<usize, NetLockError> {
        let timeout = Timespec::try_from(ANSWER_TIMEOUT).expect("a small constant");
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        loop {
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) => {
                    return Err(NetLockError::Timeout {
                        what: what.to_owned(),
                        waited: ANSWER_TIMEOUT,
                    });
                }
                Ok(_) => break,
                Err(Errno::INTR) => continue,
                Err(errno) => {
                    return Err(NetLockError::Kernel {
                        what: what.to_owned(),
                        errno,
                    });
                }
            }
        }
        let (n, _) = rustix::net::recv(&self.fd, buf, RecvFlags::empty()).map_err(|errno| {
            NetLockError::Kernel {
                what: what.to_owned(),
                errno,
            }
        })?;
        Ok(n)
    }
}

/// The netlink messages of one read (or of a batch).
fn messages(mut bytes: &[u8]) -> Result<Vec<NetlinkMessage<NetfilterMessage>>, NetLockError> {
    let mut out = Vec::new();
    while bytes.len() >= NLMSG_HDRLEN {
        let len = NetlinkBuffer::new_checked(bytes)
            .map_err(|e| NetLockError::Protocol(e.to_string()))?
            .length() as usize;
        let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&bytes[..len])
            .map_err(|e| NetLockError::Protocol(e.to_string()))?;
        out.push(msg);
        let aligned = len.next_multiple_of(4);
        bytes = bytes.get(aligned..).unwrap_or_default();
    }
    Ok(out)
}
