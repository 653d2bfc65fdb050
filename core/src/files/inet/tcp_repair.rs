//! TCP connections taken and rebuilt through `TCP_REPAIR` (what CRIU's
//! libsoccr does, `soccr/soccr.c`, for `criu/sk-tcp.c`).
//!
//! Dump ([`pause`], [`save`]): the socket (a `pidfd_getfd` copy of the
//! frozen task's) is put in repair mode, in which the kernel sends nothing
//! for it: closing it then ends the connection silently, and a peer sees
//! only a pause. Read from it: its state, both queues' sequence numbers
//! (`TCP_REPAIR_QUEUE` + `TCP_QUEUE_SEQ`) and bytes (a `MSG_PEEK` read of
//! each queue in repair mode), the unsent part of the send queue
//! (`SIOCOUTQNSD`), the MSS, window scales, SACK and timestamps
//! (`TCP_INFO`'s options, `TCP_TIMESTAMP`) and the window
//! (`TCP_REPAIR_WINDOW`): a `tcp_stream_entry` and the queue bytes after
//! it, as `tcp-stream-<ino>.img`. Every paused socket is in a [`Paused`]
//! list, which takes them all out of repair mode when it is dropped (a
//! failed dump, `--leave-running`), unless the dump kills the tree
//! ([`Paused::dismiss`]).
//!
//! Restore ([`restore`], then [`finish`] once every socket of the images
//! exists): a new socket in repair mode is bound to the source, given its
//! queues' sequence numbers, connected (no SYN in repair mode), given its
//! options, and its queues are filled (the received bytes into the
//! receive queue, the sent but unacknowledged ones into the send queue as
//! sent); the unsent bytes are written with repair off (so the stack
//! sends them itself later), then the window and, for a half-closed
//! connection, the FINs (ours by `shutdown`, the peer's by a packet made
//! for it, [`super::tcp_fin`]). Repair mode is left by [`Repaired`] only
//! once the restored tree is complete (see `restore::launch`).

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

use crate::files::sockets::SockError;
use crate::images::pb;
use crate::sys::kconst::SIOCOUTQNSD;
use crate::sys::kconst::{
    AF_INET6, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1,
    TCP_FIN_WAIT2, TCP_LAST_ACK, TCPOPT_MAXSEG, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_WINDOW,
};
use crate::sys::sockopt::{self as so, SOL_SOCKET, SOL_TCP};

use linux_raw_sys::net as raw;

/// One connection the dump saved or the restore makes, as the network
/// lock needs it: the address family and both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection {
    pub family: u8,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl std::fmt::Display for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.src, self.dst)
    }
}

fn bit(state: u8) -> u32 {
    1u32 << state
}

/// States whose FIN of ours is in the send queue (soccr's
/// `SNDQ_FIRST_FIN | SNDQ_SECOND_FIN`), and those where the peer acked it.
fn our_fin(state: u8) -> bool {
    bit(state)
        & (bit(TCP_FIN_WAIT1)
            | bit(TCP_FIN_WAIT2)
            | bit(TCP_CLOSING)
            | bit(TCP_LAST_ACK)
            | bit(TCP_CLOSE))
        != 0
}
fn our_fin_first(state: u8) -> bool {
    bit(state) & (bit(TCP_FIN_WAIT1) | bit(TCP_FIN_WAIT2) | bit(TCP_CLOSING)) != 0
}
fn our_fin_acked(state: u8) -> bool {
    bit(state) & (bit(TCP_FIN_WAIT2) | bit(TCP_CLOSE)) != 0
}
/// States where the peer's FIN was received (soccr's `RCVQ_*_FIN`).
fn peer_fin(state: u8) -> bool {
    bit(state) & (bit(TCP_CLOSE_WAIT) | bit(TCP_LAST_ACK) | bit(TCP_CLOSE) | bit(TCP_CLOSING)) != 0
}

/// Is `state` one this module dumps and restores?
pub fn repairable(state: u8) -> bool {
    matches!(
        state,
        TCP_ESTABLISHED
            | TCP_FIN_WAIT1
            | TCP_FIN_WAIT2
            | TCP_CLOSE_WAIT
            | TCP_LAST_ACK
            | TCP_CLOSING
    )
}

fn int(fd: &OwnedFd, name: u32, what: &str) -> Result<i32, SockError> {
    so::get_int(fd, SOL_TCP, name).map_err(|e| SockError::sys(what, e))
}

fn set(fd: &OwnedFd, name: u32, what: &str, v: i32) -> Result<(), SockError> {
    so::set_int(fd, SOL_TCP, name, v)
        .map_err(|e| SockError::sys(format!("setting {what} to {v}"), e))
}

pub fn repair_on(fd: &OwnedFd) -> Result<(), SockError> {
    so::set_int(fd, SOL_TCP, raw::TCP_REPAIR, raw::TCP_REPAIR_ON as i32).map_err(|e| match e {
        Errno::PERM => SockError::RepairNotPermitted(e),
        e => SockError::sys("turning TCP_REPAIR on", e),
    })
}

pub fn repair_off(fd: &OwnedFd) -> Result<(), SockError> {
    set(
        fd,
        raw::TCP_REPAIR,
        "TCP_REPAIR",
        raw::TCP_REPAIR_OFF as i32,
    )
}

/// Leaving repair mode resets `SO_REUSEADDR` (the kernel's repair mode
/// forces reuse and turns it off after): it goes back to `reuseaddr`.
fn leave_repair(fd: &OwnedFd, reuseaddr: bool) -> Result<(), SockError> {
    repair_off(fd)?;
    so::set_int(fd, SOL_SOCKET, raw::SO_REUSEADDR, i32::from(reuseaddr))
        .map_err(SockError::call("setting SO_REUSEADDR back"))
}

/// Sockets a dump put in repair mode. Dropped, it takes each out of it
/// again (a failed dump, `--leave-running`): the tasks go on with their
/// connections as they were.
#[derive(Debug, Default)]
pub struct Paused {
    socks: Vec<(OwnedFd, bool, Connection)>,
}

impl Paused {
    /// The connections paused so far (for the network lock).
    pub fn connections(&self) -> Vec<Connection> {
        self.socks.iter().map(|s| s.2).collect()
    }

    /// The dump kills the tree: the sockets stay in repair mode, so that
    /// closing them sends nothing (the peer sees a pause, then the
    /// restored connection).
    pub fn dismiss(&mut self) {
        self.socks.clear();
    }

    /// Every socket out of repair mode (each tried; failures logged).
    pub fn resume_all(&mut self) {
        for (fd, reuse, c) in self.socks.drain(..) {
            if let Err(e) = leave_repair(&fd, reuse) {
                crate::pr_err!("The TCP connection {c} could not leave repair mode: {e}");
            }
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.resume_all();
    }
}

/// Puts `fd` (a copy of a task's socket, `reuseaddr` its `SO_REUSEADDR`)
/// in repair mode and adds it to `paused`; if anything after this fails,
/// `paused` takes it out again.
pub fn pause(
    paused: &mut Paused,
    fd: &OwnedFd,
    reuseaddr: bool,
    conn: Connection,
) -> Result<(), SockError> {
    let copy = fd.try_clone().map_err(|source| SockError::Io {
        what: "dup".into(),
        source,
    })?;
    repair_on(&copy)?;
    paused.socks.push((copy, reuseaddr, conn));
    Ok(())
}

/// The first bytes of `TCP_INFO` that libsoccr reads: state, options and
/// the two window scales (a 4-bit field each).
struct Info {
    state: u8,
    options: u8,
    snd_wscale: u8,
    rcv_wscale: u8,
}

fn tcp_info(fd: &OwnedFd) -> Result<Info, SockError> {
    let mut b = [0u8; size_of::<raw::tcp_info>()];
    let n = so::get_bytes(fd, SOL_TCP, raw::TCP_INFO, Some(&mut b))
        .map_err(SockError::call("TCP_INFO"))?;
    if n < 7 {
        return Err(SockError::Unexpected(format!("TCP_INFO: {n} bytes")));
    }
    // `tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4`: C bit fields, the first
    // in the low bits on little-endian targets and in the high ones on
    // big-endian ones (s390x).
    let (snd, rcv) = if cfg!(target_endian = "little") {
        (b[6] & 0xf, b[6] >> 4)
    } else {
        (b[6] >> 4, b[6] & 0xf)
    };
    Ok(Info {
        state: b[0],
        options: b[5],
        snd_wscale: snd,
        rcv_wscale: rcv,
    })
}

fn ioctl(fd: &OwnedFd, req: u32, what: &str) -> Result<u32, SockError> {
    so::ioctl_int(fd, req)
        .map(|v| v.max(0) as u32)
        .map_err(|e| SockError::sys(what, e))
}

/// One queue's sequence number (`TCP_QUEUE_SEQ`) and its `len` bytes,
/// peeked in repair mode (one byte more is asked for, to see there are
/// exactly `len`).
fn get_queue(fd: &OwnedFd, queue: u32, len: u32) -> Result<(u32, Vec<u8>), SockError> {
    set(fd, raw::TCP_REPAIR_QUEUE, "TCP_REPAIR_QUEUE", queue as i32)?;
    let seq = int(fd, raw::TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ")? as u32;
    let mut buf = vec![0u8; len as usize + 1];
    let got = if len == 0 {
        0
    } else {
        rustix::net::recv(fd, &mut buf, RecvFlags::PEEK | RecvFlags::DONTWAIT)
            .map(|(n, _)| n)
            .map_err(|e| SockError::sys(format!("reading queue {queue} ({len} bytes)"), e))?
    };
    if got != len as usize {
        return Err(SockError::Unexpected(format!(
            "queue {queue}: {got} bytes read, {len} expected"
        )));
    }
    buf.truncate(len as usize);
    Ok((seq, buf))
}

/// A paused connection's state: its `tcp_stream_entry`, its state and
/// its queues' bytes (receive queue, then send queue, as the image holds
/// them after the entry).
pub struct Saved {
    pub entry: pb::TcpStreamEntry,
    pub state: u8,
    pub queues: Vec<u8>,
}

/// Reads the state of `fd`, in repair mode ([`pause`]).
pub fn save(fd: &OwnedFd) -> Result<Saved, SockError> {
    let ti = tcp_info(fd)?;
    if !repairable(ti.state) {
        return Err(SockError::Refused(format!(
            "in {}, which cannot be dumped yet",
            super::state_name(ti.state)
        )));
    }
    let mut outq = ioctl(fd, so::SIOCOUTQ, "SIOCOUTQ")?;
    let mut unsq = ioctl(fd, SIOCOUTQNSD, "SIOCOUTQNSD")?;
    // Our FIN holds a sequence number but no data.
    if our_fin(ti.state) {
        outq = outq.saturating_sub(1);
        unsq = unsq.saturating_sub(1);
    }
    let inq = ioctl(fd, so::SIOCINQ, "SIOCINQ")?;
    let urgent = {
        let mut b = [0u8; 1];
        rustix::net::recv(
            fd,
            &mut b,
            RecvFlags::OOB | RecvFlags::PEEK | RecvFlags::DONTWAIT,
        )
    };
    if !matches!(urgent, Err(Errno::INVAL)) {
        return Err(SockError::Refused(
            "has urgent (out-of-band) data not read yet, which cannot be dumped yet".into(),
        ));
    }
    let mss = int(fd, raw::TCP_MAXSEG, "TCP_MAXSEG")? as u32;
    let opts = u32::from(ti.options);
    let wscale = opts & raw::TCPI_OPT_WSCALE != 0;
    let timestamp = if opts & raw::TCPI_OPT_TIMESTAMPS != 0 {
        Some(int(fd, raw::TCP_TIMESTAMP, "TCP_TIMESTAMP")? as u32)
    } else {
        None
    };
    let mut win = [0u8; size_of::<raw::tcp_repair_window>()];
    let window = match so::get_bytes(fd, SOL_TCP, raw::TCP_REPAIR_WINDOW, Some(&mut win)) {
        Ok(n) if n == win.len() => {
            let w = |i: usize| u32::from_ne_bytes([win[i], win[i + 1], win[i + 2], win[i + 3]]);
            Some([w(0), w(4), w(8), w(12), w(16)])
        }
        Ok(n) => {
            return Err(SockError::Unexpected(format!(
                "TCP_REPAIR_WINDOW: {n} bytes"
            )));
        }
        Err(Errno::NOPROTOOPT) => None,
        Err(e) => return Err(SockError::sys("TCP_REPAIR_WINDOW", e)),
    };
    let (inq_seq, mut queues) = get_queue(fd, raw::TCP_RECV_QUEUE as u32, inq)?;
    let (outq_seq, out) = get_queue(fd, raw::TCP_SEND_QUEUE as u32, outq)?;
    set(
        fd,
        raw::TCP_REPAIR_QUEUE,
        "TCP_REPAIR_QUEUE",
        raw::TCP_NO_QUEUE as i32,
    )?;
    queues.extend_from_slice(&out);
    let on = |v: i32| (v != 0).then_some(true);
    let entry = pb::TcpStreamEntry {
        inq_len: inq,
        inq_seq,
        outq_len: outq,
        outq_seq,
        opt_mask: opts,
        snd_wscale: if wscale { u32::from(ti.snd_wscale) } else { 0 },
        mss_clamp: mss,
        rcv_wscale: wscale.then_some(u32::from(ti.rcv_wscale)),
        timestamp,
        cork: on(int(fd, raw::TCP_CORK, "TCP_CORK")?),
        nodelay: on(int(fd, raw::TCP_NODELAY, "TCP_NODELAY")?),
        unsq_len: Some(unsq),
        snd_wl1: window.map(|w| w[0]),
        snd_wnd: window.map(|w| w[1]),
        max_window: window.map(|w| w[2]),
        rcv_wnd: window.map(|w| w[3]),
        rcv_wup: window.map(|w| w[4]),
    };
    Ok(Saved {
        entry,
        state: ti.state,
        queues,
    })
}

/// What can be checked of a `tcp_stream_entry` (for a connection in
/// `state`, with `payload` bytes after it) before anything is made.
pub fn check(e: &pb::TcpStreamEntry, state: u8) -> Result<(), SockError> {
    if !repairable(state) {
        return Err(SockError::Refused(format!(
            "a TCP connection in {}, which cannot be restored yet",
            super::state_name(state)
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
        super::super::sockopts::set_buf(fd, false, rcvbuf)?;
    }
    let need = u32::try_from(u64::from(outq) * 2 + (1 << 16)).unwrap_or(u32::MAX / 2);
    let want = sndbuf.max(if outq == 0 { 0 } else { need });
    if want != 0 {
        super::super::sockopts::set_buf(fd, true, want)?;
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
    let packet = |flags: u8, seq: u32, ack: u32| super::tcp_fin::Packet {
        from: s.dst,
        to: s.src,
        seq,
        ack,
        flags,
        window: e.rcv_wnd.unwrap_or(0).min(u32::from(u16::MAX)) as u16,
    };
    if peer_fin(state) {
        let p = packet(
            super::tcp_fin::FIN | super::tcp_fin::ACK,
            inq_seq,
            outq_seq.wrapping_sub(e.outq_len),
        );
        super::tcp_fin::send(&p).map_err(|x| x.within("the peer's FIN"))?;
    }
    if our_fin(state) && !our_fin_first(state) {
        fin_into_send_queue(fd, our_fin_acked(state))?;
    }
    if bit(state) & bit(TCP_CLOSE) != 0 {
        inq_seq = inq_seq.wrapping_add(1);
    }
    if our_fin_acked(state) {
        outq_seq = outq_seq.wrapping_add(1);
        let p = packet(
            super::tcp_fin::ACK,
            inq_seq,
            outq_seq.wrapping_sub(e.outq_len),
        );
        super::tcp_fin::send(&p).map_err(|x| x.within("the ack of our FIN"))?;
    }
    Ok(())
}

/// Restored connections still in repair mode, taken out of it by
/// [`Repaired::release`] once the restored tree is complete. Dropped
/// before that (a failed restore), they stay in repair mode: the tasks
/// are killed and the sockets close without a packet.
#[derive(Debug, Default)]
pub struct Repaired {
    socks: Vec<(OwnedFd, bool, Connection)>,
}

impl Repaired {
    pub fn add(
        &mut self,
        fd: &OwnedFd,
        reuseaddr: bool,
        conn: Connection,
    ) -> Result<(), SockError> {
        let copy = fd.try_clone().map_err(|source| SockError::Io {
            what: "dup".into(),
            source,
        })?;
        self.socks.push((copy, reuseaddr, conn));
        Ok(())
    }

    /// The connections restored (for the network lock).
    pub fn connections(&self) -> Vec<Connection> {
        self.socks.iter().map(|s| s.2).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }

    /// Every connection out of repair mode, `SO_REUSEADDR` back to the
    /// image's: the first failure is the error.
    pub fn release(&mut self) -> Result<(), SockError> {
        let mut first = Ok(());
        for (fd, reuse, c) in self.socks.drain(..) {
            if let Err(e) = leave_repair(&fd, reuse)
                && first.is_ok()
            {
                first = Err(e.within(format!("the TCP connection {c}")));
            }
        }
        first
    }
}

/// The family of a connection's addresses, for [`Connection`].
pub fn family_of(a: &SocketAddr) -> u8 {
    match a {
        SocketAddr::V4(_) => crate::sys::kconst::AF_INET,
        SocketAddr::V6(_) => AF_INET6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fin_states_follow_soccr() {
        // Established: no FIN either way.
        assert!(!our_fin(TCP_ESTABLISHED) && !peer_fin(TCP_ESTABLISHED));
        // shutdown(SHUT_WR) acked by the peer: FIN_WAIT2 on our side,
        // CLOSE_WAIT on the peer's.
        assert!(our_fin(TCP_FIN_WAIT2) && our_fin_first(TCP_FIN_WAIT2));
        assert!(our_fin_acked(TCP_FIN_WAIT2) && !peer_fin(TCP_FIN_WAIT2));
        assert!(peer_fin(TCP_CLOSE_WAIT) && !our_fin(TCP_CLOSE_WAIT));
        // LAST_ACK: the peer's FIN first, then ours (not acked).
        assert!(peer_fin(TCP_LAST_ACK) && our_fin(TCP_LAST_ACK));
        assert!(!our_fin_first(TCP_LAST_ACK) && !our_fin_acked(TCP_LAST_ACK));
        assert!(our_fin_first(TCP_CLOSING) && peer_fin(TCP_CLOSING));
        assert!(!repairable(TCP_CLOSE) && !repairable(crate::sys::kconst::TCP_SYN_SENT));
    }

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
