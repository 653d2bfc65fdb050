//! Restore: a connection made again on a new socket in repair mode
//! ([`restore`]), then, once every socket of the images exists, its
//! unsent bytes, window and FINs ([`finish`]); and what can be checked of
//! its image before ([`check`]).

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::SendFlags;

use super::mode::{repair_off, repair_on};
use super::set;
use super::states::{bit, our_fin, our_fin_acked, our_fin_first, peer_fin, repairable};
use crate::files::inet::{state_name, tcp_fin};
use crate::files::sockets::SockError;
use crate::images::pb;
use crate::sys::kconst::{
    TCP_CLOSE, TCPOPT_MAXSEG, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_WINDOW,
};
use crate::sys::sockopt::{self as so, SOL_TCP};

use linux_raw_sys::net as raw;

/// What can be checked of a `tcp_stream_entry` (for a connection in
/// `state`, with `payload` bytes after it) before anything is made.
pub fn check(e: &pb::TcpStreamEntry, state: u8) -> Result<(), SockError> {
    if !repairable(state) {
        return Err(SockError::Refused(format!(
            "a TCP connection in {}, which cannot be restored yet",
            state_name(state)
        )));
    }
    let unsq = e
        .unsq_len
        .ok_or_else(|| SockError::BadEntry("no unsq_len in its tcp-stream image".into()))?;
    if unsq > e.outq_len {
        return Err(SockError::BadEntry(format!(
            "{unsq} unsent bytes in a send queue of {}",
            e.outq_len
        )));
    }
    if e.opt_mask & raw::TCPI_OPT_WSCALE != 0 {
        let rcv = e
            .rcv_wscale
            .ok_or_else(|| SockError::BadEntry("no rcv_wscale in its tcp-stream image".into()))?;
        // TCP_MAX_WSCALE (RFC 7323).
        if e.snd_wscale > 14 || rcv > 14 {
            return Err(SockError::BadEntry(format!(
                "window scales {} and {rcv}",
                e.snd_wscale
            )));
        }
    }
    if e.opt_mask & raw::TCPI_OPT_TIMESTAMPS != 0 && e.timestamp.is_none() {
        return Err(SockError::BadEntry(
            "no timestamp in its tcp-stream image".into(),
        ));
    }
    if let (Some(wup), Some(wnd), Some(wl1)) = (e.rcv_wup, e.rcv_wnd, e.snd_wl1) {
        // What the kernel's TCP_REPAIR_WINDOW refuses: rcv_wup after
        // rcv_nxt, snd_wl1 after rcv_nxt + rcv_wnd (sequence arithmetic;
        // the peer's FIN, taken out of all three by [`finish`], changes
        // neither comparison).
        let rcv_nxt = e.inq_seq;
        let after = |a: u32, b: u32| (b.wrapping_sub(a) as i32) < 0;
        if after(wup, rcv_nxt) || after(wl1, rcv_nxt.wrapping_add(wnd)) {
            return Err(SockError::BadEntry(format!(
                "a window the kernel refuses (rcv_wup {wup}, snd_wl1 {wl1}, rcv_wnd {wnd}, \
                 receive sequence {rcv_nxt})"
            )));
        }
    }
    Ok(())
}

/// What [`restore`] needs of one connection.
pub struct Stream<'a> {
    pub entry: &'a pb::TcpStreamEntry,
    pub state: u8,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The receive queue's bytes, then the send queue's.
    pub queues: &'a [u8],
    /// The buffer sizes of the image (0: not recorded).
    pub sndbuf: u32,
    pub rcvbuf: u32,
}

impl Stream<'_> {
    /// Sequence numbers without the FINs' (soccr's adjustment).
    fn seqs(&self) -> (u32, u32) {
        let e = self.entry;
        (
            e.inq_seq.wrapping_sub(u32::from(peer_fin(self.state))),
            e.outq_seq.wrapping_sub(u32::from(our_fin(self.state))),
        )
    }

    fn inq(&self) -> &[u8] {
        &self.queues[..self.entry.inq_len as usize]
    }

    fn outq(&self) -> &[u8] {
        &self.queues[self.entry.inq_len as usize..]
    }

    fn unsent(&self) -> usize {
        self.entry.unsq_len.unwrap_or(0) as usize
    }
}

fn set_queue_seq(fd: &OwnedFd, queue: u32, seq: u32) -> Result<(), SockError> {
    set(fd, raw::TCP_REPAIR_QUEUE, "TCP_REPAIR_QUEUE", queue as i32)?;
    set(fd, raw::TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ", seq as i32)
}

/// Writes `data` (into the queue chosen, in repair mode), in smaller
/// pieces when the kernel cannot take it at once (in repair mode it
/// makes one linear buffer of what it is given, which can fail for a
/// large one).
fn send_all(fd: &OwnedFd, mut data: &[u8], what: &str) -> Result<(), SockError> {
    let mut chunk = data.len();
    while !data.is_empty() {
        let n = chunk.min(data.len());
        // Never blocking: a queue that does not fit is an error, not a
        // wait (the send buffer was made large enough, see
        // [`set_buffers`]).
        match rustix::net::send(fd, &data[..n], SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(0) | Err(Errno::NOMEM | Errno::AGAIN) if chunk > 1024 => chunk /= 2,
            Ok(0) => return Err(SockError::Unexpected(format!("{what}: no byte taken"))),
            Ok(k) => data = &data[k..],
            Err(e) => {
                return Err(SockError::sys(
                    format!("{what} ({} bytes left)", data.len()),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// The buffer sizes of the image (`so_sndbuf`, `so_rcvbuf` as the dump
/// read them, 0: not recorded), set before the connect: the kernel
/// derives the window it offers from the receive buffer there, as it did
/// for the dumped socket, whose program sized its buffers before it
/// connected. The send buffer is made big enough for the send queue
/// about to be written into it (a new socket's is small, the dumped one's
/// had grown): twice the queue, the kernel's own overhead counted.
fn set_buffers(fd: &OwnedFd, outq: u32, sndbuf: u32, rcvbuf: u32) -> Result<(), SockError> {
    if rcvbuf != 0 {
        crate::files::sockopts::set_buf(fd, false, rcvbuf)?;
    }
    let need = u32::try_from(u64::from(outq) * 2 + (1 << 16)).unwrap_or(u32::MAX / 2);
    let want = sndbuf.max(if outq == 0 { 0 } else { need });
    if want != 0 {
        crate::files::sockopts::set_buf(fd, true, want)?;
    }
    Ok(())
}

/// The options `TCP_REPAIR_OPTIONS` takes (`struct tcp_repair_opt`s).
fn repair_options(e: &pb::TcpStreamEntry) -> Vec<u8> {
    let mut opts: Vec<(u32, u32)> = Vec::new();
    if e.opt_mask & raw::TCPI_OPT_SACK != 0 {
        opts.push((TCPOPT_SACK_PERM, 0));
    }
    if e.opt_mask & raw::TCPI_OPT_WSCALE != 0 {
        opts.push((
            TCPOPT_WINDOW,
            e.snd_wscale + (e.rcv_wscale.unwrap_or(0) << 16),
        ));
    }
    if e.opt_mask & raw::TCPI_OPT_TIMESTAMPS != 0 {
        opts.push((TCPOPT_TIMESTAMP, 0));
    }
    opts.push((TCPOPT_MAXSEG, e.mss_clamp));
    const _: () = assert!(size_of::<raw::tcp_repair_opt>() == 8);
    opts.iter()
        .flat_map(|(c, v)| c.to_ne_bytes().into_iter().chain(v.to_ne_bytes()))
        .collect()
}

/// `bind` for a connection: the exact source address (and its
/// interface's scope for a link-local IPv6 one).
fn bind_source(fd: &OwnedFd, src: SocketAddr, ifname: Option<&str>) -> Result<(), SockError> {
    let mut src = src;
    if let (SocketAddr::V6(v), Some(name)) = (&mut src, ifname) {
        let index = rustix::net::netdevice::name_to_index(fd, name)
            .map_err(|e| SockError::sys(format!("interface {name:?}"), e))?;
        v.set_scope_id(index);
    }
    rustix::net::bind(fd, &src).map_err(|e| SockError::sys(format!("bind to {src}"), e))
}

/// Rebuilds connection `s` on `fd` (a new TCP socket of its family, with
/// `SO_REUSEADDR` on): repair mode on, bound, sequence numbers, connected,
/// options, the receive queue and the sent part of the send queue. The
/// rest is [`finish`]'s, once every socket of the images exists (it may
/// send packets to the peer, which may be one of them).
pub fn restore(fd: &OwnedFd, s: &Stream<'_>, ifname: Option<&str>) -> Result<(), SockError> {
    let e = s.entry;
    repair_on(fd)?;
    set_buffers(fd, e.outq_len, s.sndbuf, s.rcvbuf)?;
    bind_source(fd, s.src, ifname)?;
    let (inq_seq, outq_seq) = s.seqs();
    set_queue_seq(
        fd,
        raw::TCP_RECV_QUEUE as u32,
        inq_seq.wrapping_sub(e.inq_len),
    )?;
    set_queue_seq(
        fd,
        raw::TCP_SEND_QUEUE as u32,
        outq_seq.wrapping_sub(e.outq_len),
    )?;
    rustix::net::connect(fd, &s.dst)
        .map_err(|x| SockError::sys(format!("connect to {}", s.dst), x))?;
    so::set_bytes(fd, SOL_TCP, raw::TCP_REPAIR_OPTIONS, &repair_options(e))
        .map_err(SockError::call("TCP_REPAIR_OPTIONS"))?;
    if let Some(ts) = e
        .timestamp
        .filter(|_| e.opt_mask & raw::TCPI_OPT_TIMESTAMPS != 0)
    {
        set(fd, raw::TCP_TIMESTAMP, "TCP_TIMESTAMP", ts as i32)?;
    }
    if !s.inq().is_empty() {
        set(
            fd,
            raw::TCP_REPAIR_QUEUE,
            "TCP_REPAIR_QUEUE",
            raw::TCP_RECV_QUEUE as i32,
        )?;
        send_all(fd, s.inq(), "the receive queue")?;
    }
    let sent = &s.outq()[..s.outq().len() - s.unsent()];
    if !sent.is_empty() {
        set(
            fd,
            raw::TCP_REPAIR_QUEUE,
            "TCP_REPAIR_QUEUE",
            raw::TCP_SEND_QUEUE as i32,
        )?;
        send_all(fd, sent, "the send queue")?;
    }
    set(
        fd,
        raw::TCP_REPAIR_QUEUE,
        "TCP_REPAIR_QUEUE",
        raw::TCP_NO_QUEUE as i32,
    )
}

/// `shutdown(SHUT_WR)` in repair mode: our FIN, as sent (`acked`: into
/// the send queue as sent data, whose ack comes after) or to be sent.
fn fin_into_send_queue(fd: &OwnedFd, acked: bool) -> Result<(), SockError> {
    if acked {
        set(
            fd,
            raw::TCP_REPAIR_QUEUE,
            "TCP_REPAIR_QUEUE",
            raw::TCP_SEND_QUEUE as i32,
        )?;
    }
    rustix::net::shutdown(fd, rustix::net::Shutdown::Write)
        .map_err(SockError::call("shutdown(SHUT_WR)"))?;
    if acked {
        set(
            fd,
            raw::TCP_REPAIR_QUEUE,
            "TCP_REPAIR_QUEUE",
            raw::TCP_NO_QUEUE as i32,
        )?;
    }
    Ok(())
}

/// The rest of [`restore`], once every socket of the images exists: the
/// unsent bytes (written with repair off: they were never sent, the stack
/// sends them when it may), the window, and the FINs of a half-closed
/// connection (soccr's order).
pub fn finish(fd: &OwnedFd, s: &Stream<'_>) -> Result<(), SockError> {
    let e = s.entry;
    let unsent = &s.outq()[s.outq().len() - s.unsent()..];
    if !unsent.is_empty() {
        repair_off(fd)?;
        let r = send_all(fd, unsent, "the unsent part of the send queue");
        repair_on(fd)?;
        r?;
    }
    if let (Some(wl1), Some(wnd), Some(max), Some(rwnd), Some(wup)) =
        (e.snd_wl1, e.snd_wnd, e.max_window, e.rcv_wnd, e.rcv_wup)
    {
        // The peer's FIN is not in the receive sequence yet.
        let fin = u32::from(peer_fin(s.state));
        let w = [wl1, wnd, max, rwnd.wrapping_add(fin), wup.wrapping_sub(fin)];
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_ne_bytes()).collect();
        so::set_bytes(fd, SOL_TCP, raw::TCP_REPAIR_WINDOW, &bytes)
            .map_err(SockError::call("TCP_REPAIR_WINDOW"))?;
    }
    let (mut inq_seq, mut outq_seq) = s.seqs();
    let state = s.state;
    if our_fin_first(state) {
        fin_into_send_queue(fd, our_fin_acked(state))?;
    }
    let packet = |flags: u8, seq: u32, ack: u32| tcp_fin::Packet {
        from: s.dst,
        to: s.src,
        seq,
        ack,
        flags,
        window: e.rcv_wnd.unwrap_or(0).min(u32::from(u16::MAX)) as u16,
    };
    if peer_fin(state) {
        let p = packet(
            tcp_fin::FIN | tcp_fin::ACK,
            inq_seq,
            outq_seq.wrapping_sub(e.outq_len),
        );
        tcp_fin::send(&p).map_err(|x| x.within("the peer's FIN"))?;
    }
    if our_fin(state) && !our_fin_first(state) {
        fin_into_send_queue(fd, our_fin_acked(state))?;
    }
    if bit(state) & bit(TCP_CLOSE) != 0 {
        inq_seq = inq_seq.wrapping_add(1);
    }
    if our_fin_acked(state) {
        outq_seq = outq_seq.wrapping_add(1);
        let p = packet(tcp_fin::ACK, inq_seq, outq_seq.wrapping_sub(e.outq_len));
        tcp_fin::send(&p).map_err(|x| x.within("the ack of our FIN"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::kconst::TCP_ESTABLISHED;

    fn entry() -> pb::TcpStreamEntry {
        pb::TcpStreamEntry {
            inq_len: 3,
            inq_seq: 1000,
            outq_len: 5,
            outq_seq: 2000,
            opt_mask: raw::TCPI_OPT_WSCALE | raw::TCPI_OPT_TIMESTAMPS | raw::TCPI_OPT_SACK,
            snd_wscale: 7,
            mss_clamp: 65483,
            rcv_wscale: Some(7),
            timestamp: Some(12345),
            unsq_len: Some(2),
            snd_wl1: Some(990),
            snd_wnd: Some(65536),
            max_window: Some(65536),
            rcv_wnd: Some(65536),
            rcv_wup: Some(1000),
            ..Default::default()
        }
    }

    #[test]
    fn damaged_stream_entries_are_refused() {
        assert!(check(&entry(), TCP_ESTABLISHED).is_ok());
        let mut e = entry();
        e.unsq_len = Some(6);
        assert!(
            check(&e, TCP_ESTABLISHED)
                .unwrap_err()
                .to_string()
                .contains("6 unsent bytes")
        );
        let mut e = entry();
        e.rcv_wscale = None;
        assert!(
            check(&e, TCP_ESTABLISHED)
                .unwrap_err()
                .to_string()
                .contains("rcv_wscale")
        );
        let mut e = entry();
        e.rcv_wup = Some(1500);
        assert!(
            check(&e, TCP_ESTABLISHED)
                .unwrap_err()
                .to_string()
                .contains("window the kernel refuses")
        );
        assert!(
            check(&entry(), TCP_CLOSE)
                .unwrap_err()
                .to_string()
                .contains("CLOSE")
        );
    }

    #[test]
    fn repair_options_are_soccrs() {
        let b = repair_options(&entry());
        let words: Vec<u32> = b
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(
            words,
            [4, 0, 3, 7 + (7 << 16), 8, 0, 2, 65483],
            "SACK, window scales, timestamps, MSS"
        );
    }
}
