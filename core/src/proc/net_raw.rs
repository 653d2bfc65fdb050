//! The raw sockets of the network namespace as `/proc/self/net/raw` and
//! `raw6` show them: where the kernel has no raw_diag
//! (`CONFIG_INET_RAW_DIAG`), the only place a raw socket's peer shows
//! (`getpeername` of a connected raw socket fails with `ENOTCONN`: its
//! peer has no port). Each line gives the local and remote address, the
//! state, the memory queued each way and the inode.

use std::collections::HashMap;

use super::inet_diag::InetSock;
use crate::sys::kconst::{AF_INET, AF_INET6};

/// The most this reads of one table (a namespace with this many raw
/// sockets is refused rather than read in part).
const MAX_BYTES: u64 = 16 << 20;

/// `ADDR:PORT` as the table prints them: the address as the kernel's
/// 32-bit words (of network-order bytes) in hex, the port in hex.
fn addr_port(s: &str, v6: bool) -> Option<([u8; 16], u16)> {
    let (a, p) = s.split_once(':')?;
    let words = if v6 { 4 } else { 1 };
    if a.len() != 8 * words {
        return None;
    }
    let mut out = [0u8; 16];
    for i in 0..words {
        let w = u32::from_str_radix(a.get(8 * i..8 * i + 8)?, 16).ok()?;
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    Some((out, u16::from_str_radix(p, 16).ok()?))
}

/// Parses one line of the table (not the header).
pub fn parse_line(line: &str, family: u8) -> Option<InetSock> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let v6 = family == AF_INET6;
    let (src, src_port) = addr_port(f.get(1)?, v6)?;
    let (dst, dst_port) = addr_port(f.get(2)?, v6)?;
    let (tx, rx) = f.get(4)?.split_once(':')?;
    Some(InetSock {
        ino: f.get(9)?.parse().ok()?,
        family,
        state: u8::from_str_radix(f.get(3)?, 16).ok()?,
        src_port,
        dst_port,
        src,
        dst,
        rqueue: u32::from_str_radix(rx, 16).ok()?,
        wqueue: u32::from_str_radix(tx, 16).ok()?,
        shutdown: 0,
    })
}

/// Why the raw sockets of a family cannot be listed from /proc.
#[derive(Debug, thiserror::Error)]
pub enum NetRawError {
    #[error("{path}: {source}")]
    Read {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: {line:?}")]
    Line { path: &'static str, line: String },
}

/// Every raw socket of `family` (`AF_INET`, `AF_INET6`) of our network
/// namespace, by inode.
pub fn collect(family: u8) -> Result<HashMap<u32, InetSock>, NetRawError> {
    use std::io::Read;
    let path = if family == AF_INET {
        "/proc/self/net/raw"
    } else {
        "/proc/self/net/raw6"
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BYTES).read_to_string(&mut text))
        .map_err(|source| NetRawError::Read { path, source })?;
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let s = parse_line(line, family).ok_or_else(|| NetRawError::Line {
            path,
            line: line.to_string(),
        })?;
        out.insert(s.ino, s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_connected_v4_and_a_bound_v6_socket() {
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        let line = format!(
            "   1: {lo:08X}:00FD {lo:08X}:0000 01 00000000:00000300 00:00000000 00000000     \
             0        0 4242 2 0000000000000000 0"
        );
        let s = parse_line(&line, AF_INET).unwrap();
        assert_eq!((s.ino, s.state, s.src_port, s.dst_port), (4242, 1, 253, 0));
        assert_eq!(s.dst[..4], [127, 0, 0, 1]);
        assert_eq!((s.rqueue, s.wqueue), (0x300, 0));
        let one = u32::from_ne_bytes([0, 0, 0, 1]);
        let line = format!(
            "  12: 00000000000000000000000{one:08X}:003A 00000000000000000000000000000000:0000 07 \
             00000000:00000000 00:00000000 00000000     0        0 77 2 0000000000000000 0"
        );
        // One zero too few in the first address: refused.
        assert_eq!(parse_line(&line, AF_INET6), None);
        let line = line.replacen("00000000000000000000000", "000000000000000000000000", 1);
        let s = parse_line(&line, AF_INET6).unwrap();
        assert_eq!((s.ino, s.state, s.src_port), (77, 7, 58));
        assert_eq!(s.src[15], 1);
    }
}
