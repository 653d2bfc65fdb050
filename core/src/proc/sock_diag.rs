//! One `NETLINK_SOCK_DIAG` dump, shared by the per-family listings
//! ([`super::unix_diag`], [`super::inet_diag`]): send a request, read the
//! multipart answer, hand each `SOCK_DIAG_BY_FAMILY` message's payload on.

use std::collections::HashMap;

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, netlink};

use crate::sys::kconst::{
    NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, SOCK_DIAG_BY_FAMILY,
};

pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// A whole `SOCK_DIAG_BY_FAMILY` dump request around `body` (the
/// family's `*_diag_req`).
pub fn request(body: &[u8]) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + body.len()) as u32;
    let mut msg = Vec::with_capacity(len as usize);
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(body);
    msg
}

/// The netlink attributes of `b` from `off` on, as (type, payload); `None`
/// if one runs past the end.
pub fn attrs(b: &[u8], mut off: usize) -> Option<Vec<(u16, &[u8])>> {
    use crate::sys::kconst::NLA_HDRLEN;
    let mut out = Vec::new();
    while off + NLA_HDRLEN <= b.len() {
        let len = usize::from(u16_at(b, off)?);
        let kind = u16_at(b, off + 2)? & 0x3fff;
        if len < NLA_HDRLEN || off + len > b.len() {
            return None;
        }
        out.push((kind, &b[off + NLA_HDRLEN..off + len]));
        off += (len + 3) & !3;
    }
    Some(out)
}

/// Every socket a `request` dump lists, parsed by `parse` (a message it
/// cannot parse is `EPROTO`), by its inode (`ino`).
pub fn collect<T>(
    request: &[u8],
    parse: impl Fn(&[u8]) -> Option<T>,
    ino: impl Fn(&T) -> u32,
) -> Result<HashMap<u32, T>, Errno> {
    let mut out = HashMap::new();
    dump(request, |m| {
        let s = parse(m).ok_or(Errno::PROTO)?;
        out.insert(ino(&s), s);
        Ok(())
    })?;
    Ok(out)
}

/// One netlink attribute as the kernel lays it out (header, payload,
/// padding to 4 bytes), for the parsers' tests.
#[cfg(test)]
pub fn test_attr(kind: u16, data: &[u8]) -> Vec<u8> {
    use crate::sys::kconst::NLA_HDRLEN;
    let mut a = ((NLA_HDRLEN + data.len()) as u16).to_ne_bytes().to_vec();
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(data);
    while !a.len().is_multiple_of(4) {
        a.push(0);
    }
    a
}

/// Sends `request` (a whole netlink message) and calls `each` with the
/// payload of every answer message until `NLMSG_DONE`. A malformed answer
/// is `EPROTO`; a netlink error (or a dump's, in `NLMSG_DONE`) is its
/// errno.
pub fn dump(request: &[u8], mut each: impl FnMut(&[u8]) -> Result<(), Errno>) -> Result<(), Errno> {
    // In the dumped tree's own net namespace, if it has one.
    let sk = super::netns::diag_socket(|| {
        rustix::net::socket(
            AddressFamily::NETLINK,
            SocketType::RAW,
            Some(netlink::SOCK_DIAG),
        )
    })?;
    rustix::net::sendto(
        &sk,
        request,
        SendFlags::empty(),
        &netlink::SocketAddrNetlink::new(0, 0),
    )?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, _) = rustix::net::recv(&sk, &mut buf[..], RecvFlags::empty())?;
        if n == 0 {
            return Err(Errno::PROTO);
        }
        let mut off = 0;
        while off + NLMSG_HDRLEN <= n {
            let len = u32_at(&buf, off).ok_or(Errno::PROTO)? as usize;
            let kind = u16_at(&buf, off + 4).ok_or(Errno::PROTO)?;
            if len < NLMSG_HDRLEN || off + len > n {
                return Err(Errno::PROTO);
            }
            match kind {
                // A dump that failed from the start (no handler for the
                // family or protocol: ENOENT) ends with its error in the
                // DONE message instead of an NLMSG_ERROR.
                NLMSG_DONE => {
                    return match u32_at(&buf, off + NLMSG_HDRLEN).map(|e| e as i32) {
                        Some(err) if err < 0 && len >= NLMSG_HDRLEN + 4 => {
                            Err(Errno::from_raw_os_error(-err))
                        }
                        _ => Ok(()),
                    };
                }
                NLMSG_ERROR => {
                    let err = u32_at(&buf, off + NLMSG_HDRLEN).unwrap_or(0) as i32;
                    return Err(if err < 0 {
                        Errno::from_raw_os_error(-err)
                    } else {
                        Errno::PROTO
                    });
                }
                SOCK_DIAG_BY_FAMILY => each(&buf[off + NLMSG_HDRLEN..off + len])?,
                _ => {}
            }
            off += (len + 3) & !3;
        }
    }
}
