//! Dump: the state of a paused connection (in repair mode, see
//! [`super::pause`]) read into its `tcp_stream_entry` and queue bytes.

use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::RecvFlags;

use super::states::{our_fin, repairable};
use super::{int, set};
use crate::files::inet::state_name;
use crate::files::sockets::SockError;
use crate::images::pb;
use crate::sys::kconst::SIOCOUTQNSD;
use crate::sys::sockopt::{self as so, SOL_TCP};

use linux_raw_sys::net as raw;

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
            state_name(ti.state)
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
