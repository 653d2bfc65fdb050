//! The RPC transport: one protobuf message per `SOCK_SEQPACKET` datagram,
//! no length prefix (CRIU's `recv_criu_msg` / `send_criu_msg`).
//!
//! A datagram's size is learnt by peeking with `MSG_PEEK | MSG_TRUNC` (the
//! kernel then returns the full length without consuming it), so the
//! receive buffer fits the message exactly; anything above [`MAX_MSG`] is
//! consumed and refused instead of allocated.

use std::os::fd::BorrowedFd;

use prost::Message;
use prost::bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

use crate::images::pb::rpc::{CriuReq, CriuResp};

/// Largest request accepted. Real requests are a few hundred bytes; a
/// megabyte leaves room for long `external` lists without letting a client
/// make us allocate without bound.
pub const MAX_MSG: usize = 1 << 20;

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("can't receive a request: {0}")]
    Recv(Errno),
    #[error("can't send the response: {0}")]
    Send(Errno),
    #[error("request of {0} bytes is larger than the {MAX_MSG} bytes allowed")]
    TooBig(usize),
    #[error("can't decode the request: {0}")]
    Decode(String),
    #[error("the request lacks the required field {0}")]
    MissingField(&'static str),
}

/// Receives one request; `Ok(None)` when the peer closed the connection.
pub fn recv_req(sk: BorrowedFd<'_>) -> Result<Option<CriuReq>, WireError> {
    let Some(bytes) = recv_datagram(sk)? else {
        return Ok(None);
    };
    decode_req(&bytes).map(Some)
}

/// Receives one datagram whole; `Ok(None)` on end of connection (a
/// zero-length datagram is no valid request either: `type` is required).
pub fn recv_datagram(sk: BorrowedFd<'_>) -> Result<Option<Vec<u8>>, WireError> {
    let len = loop {
        let mut empty: [u8; 0] = [];
        match rustix::net::recv(sk, &mut empty[..], RecvFlags::PEEK | RecvFlags::TRUNC) {
            Ok((_, len)) => break len,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(WireError::Recv(e)),
        }
    };
    if len == 0 {
        // Consume the empty datagram, if that is what it was.
        let mut empty: [u8; 0] = [];
        let _ = rustix::net::recv(sk, &mut empty[..], RecvFlags::DONTWAIT);
        return Ok(None);
    }
    if len > MAX_MSG {
        // Drop it from the queue so the connection stays usable.
        let mut small = [0u8; 1];
        let _ = rustix::net::recv(sk, &mut small[..], RecvFlags::TRUNC);
        return Err(WireError::TooBig(len));
    }
    let mut buf = vec![0u8; len];
    loop {
        match rustix::net::recv(sk, &mut buf[..], RecvFlags::TRUNC) {
            Ok((_, got)) if got == len => return Ok(Some(buf)),
            Ok((_, got)) => {
                return Err(WireError::Decode(format!(
                    "datagram changed size between peek ({len}) and receive ({got})"
                )));
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(WireError::Recv(e)),
        }
    }
}

/// Decodes a request, refusing one that lacks a `required` field (prost
/// itself fills those with defaults; protobuf-c, which CRIU uses, rejects
/// the message).
pub fn decode_req(bytes: &[u8]) -> Result<CriuReq, WireError> {
    check_required(bytes)?;
    CriuReq::decode(bytes).map_err(|e| WireError::Decode(e.to_string()))
}

/// Sends one response as one datagram (no SIGPIPE if the client is gone).
pub fn send_resp(sk: BorrowedFd<'_>, resp: &CriuResp) -> Result<(), WireError> {
    let bytes = resp.encode_to_vec();
    loop {
        match rustix::net::send(sk, &bytes, SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(WireError::Send(e)),
        }
    }
}

/// Sends one response with `fd` attached (SCM_RIGHTS).
pub fn send_resp_fd(
    sk: BorrowedFd<'_>,
    resp: &CriuResp,
    fd: BorrowedFd<'_>,
) -> Result<(), WireError> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, sendmsg};
    let bytes = resp.encode_to_vec();
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    loop {
        let mut anc = SendAncillaryBuffer::new(&mut space);
        anc.push(SendAncillaryMessage::ScmRights(&fds));
        match sendmsg(
            sk,
            &[std::io::IoSlice::new(&bytes)],
            &mut anc,
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(WireError::Send(e)),
        }
    }
}

/// The top-level field numbers present in `msg`, and the bytes of the last
/// length-delimited field numbered `want` (if any).
fn scan(mut msg: &[u8], want: u32) -> Result<(Vec<u32>, Option<&[u8]>), WireError> {
    let bad = |e: prost::DecodeError| WireError::Decode(e.to_string());
    let mut tags = Vec::new();
    let mut wanted = None;
    while msg.has_remaining() {
        let (tag, wire) = decode_key(&mut msg).map_err(bad)?;
        tags.push(tag);
        if tag == want && wire == WireType::LengthDelimited {
            let len = decode_varint(&mut msg).map_err(bad)?;
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= msg.len())
                .ok_or_else(|| WireError::Decode("field length past the end".into()))?;
            wanted = Some(&msg[..len]);
            msg = &msg[len..];
        } else {
            skip_field(wire, tag, &mut msg, DecodeContext::default()).map_err(bad)?;
        }
    }
    Ok((tags, wanted))
}

/// `criu_req.type` (1) and, when `opts` (2) is present, its
/// `images_dir_fd` (1) must be there.
fn check_required(bytes: &[u8]) -> Result<(), WireError> {
    let (tags, opts) = scan(bytes, 2)?;
    if !tags.contains(&1) {
        return Err(WireError::MissingField("criu_req.type"));
    }
    if let Some(opts) = opts {
        let (tags, _) = scan(opts, 0)?;
        if !tags.contains(&1) {
            return Err(WireError::MissingField("criu_opts.images_dir_fd"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::pb::rpc::{CriuOpts, CriuReqType};

    #[test]
    fn required_fields() {
        let req = CriuReq {
            r#type: CriuReqType::Dump as i32,
            opts: Some(CriuOpts {
                images_dir_fd: 5,
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = req.encode_to_vec();
        assert_eq!(decode_req(&bytes).unwrap(), req);
        // type = DUMP, opts = {} (no images_dir_fd)
        assert!(matches!(
            decode_req(&[0x08, 0x01, 0x12, 0x00]),
            Err(WireError::MissingField("criu_opts.images_dir_fd"))
        ));
        // keep_open only, no type
        assert!(matches!(
            decode_req(&[0x20, 0x01]),
            Err(WireError::MissingField("criu_req.type"))
        ));
        assert!(decode_req(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode_req(b"\x12\x7fgarbage").is_err());
    }
}
