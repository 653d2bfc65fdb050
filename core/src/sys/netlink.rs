//! Reading a netlink socket's answers to one request: the loop every
//! netlink user here shares (rtnetlink dumps and requests, `criu check`'s
//! probes).

use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, netlink};

use super::kconst::{NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN};

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// Sends `msg` (a whole message) to the kernel.
pub fn send(sk: &OwnedFd, msg: &[u8]) -> Result<(), Errno> {
    rustix::net::sendto(
        sk,
        msg,
        SendFlags::empty(),
        &netlink::SocketAddrNetlink::new(0, 0),
    )
    .map(drop)
}

/// Reads answers until a dump ends (`NLMSG_DONE`) or the ack or error
/// comes (`NLMSG_ERROR`), calling `each` with every other message whole
/// (header included). A malformed answer is `EPROTO`; a netlink error is
/// its errno. A dump that failed from the start ends with its error in
/// the `NLMSG_DONE` instead (no handler for a family: `ENOENT`): that is
/// `Ok(Some(errno))`, for the caller to judge (CRIU's `check` counts such
/// a dump as answered).
pub fn answers(sk: &OwnedFd, mut each: impl FnMut(&[u8])) -> Result<Option<Errno>, Errno> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, _) = rustix::net::recv(sk, &mut buf[..], RecvFlags::empty())?;
        if n == 0 {
            return Err(Errno::PROTO);
        }
        let mut off = 0;
        while off + NLMSG_HDRLEN <= n {
            let len = u32_at(&buf, off).ok_or(Errno::PROTO)? as usize;
            let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            if len < NLMSG_HDRLEN || off + len > n {
                return Err(Errno::PROTO);
            }
            if kind == NLMSG_DONE || kind == NLMSG_ERROR {
                let err = match len >= NLMSG_HDRLEN + 4 {
                    true => u32_at(&buf, off + NLMSG_HDRLEN).unwrap_or(0) as i32,
                    false => 0,
                };
                let errno = (err < 0).then(|| Errno::from_raw_os_error(-err));
                return match (kind == NLMSG_DONE, errno) {
                    (true, e) => Ok(e),
                    (false, Some(e)) => Err(e),
                    (false, None) => Ok(None),
                };
            }
            each(&buf[off..off + len]);
            off += (len + 3) & !3;
        }
    }
}
