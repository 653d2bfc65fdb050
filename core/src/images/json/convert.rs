//! Value conversions of crit's pretty mode and of its bytes fields
//! (pycriu `pb2dict.py`): flag names, device numbers, IP addresses, hex,
//! base64 in MIME lines, quoted-printable unix socket names.

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// crit's flag tables, by the name a field's `(criu).flags` option gives.
pub fn flag_map(name: &str) -> Option<&'static [(&'static str, u64)]> {
    Some(match name {
        "mmap.prot" => MMAP_PROT,
        "mmap.flags" => MMAP_FLAGS,
        "mmap.status" => MMAP_STATUS,
        "rfile.flags" => RFILE_FLAGS,
        "pmap.flags" => PMAP_FLAGS,
        "seals.flags" => SEALS_FLAGS,
        _ => return None,
    })
}

const MMAP_PROT: &[(&str, u64)] = &[("PROT_READ", 0x1), ("PROT_WRITE", 0x2), ("PROT_EXEC", 0x4)];

const MMAP_FLAGS: &[(&str, u64)] = &[
    ("MAP_SHARED", 0x1),
    ("MAP_PRIVATE", 0x2),
    ("MAP_DROPPABLE", 0x08),
    ("MAP_ANON", 0x20),
    ("MAP_GROWSDOWN", 0x0100),
];

const MMAP_STATUS: &[(&str, u64)] = &[
    ("VMA_AREA_NONE", 0),
    ("VMA_AREA_REGULAR", 1 << 0),
    ("VMA_AREA_STACK", 1 << 1),
    ("VMA_AREA_VSYSCALL", 1 << 2),
    ("VMA_AREA_VDSO", 1 << 3),
    ("VMA_AREA_HEAP", 1 << 5),
    ("VMA_FILE_PRIVATE", 1 << 6),
    ("VMA_FILE_SHARED", 1 << 7),
    ("VMA_ANON_SHARED", 1 << 8),
    ("VMA_ANON_PRIVATE", 1 << 9),
    ("VMA_AREA_SYSVIPC", 1 << 10),
    ("VMA_AREA_SOCKET", 1 << 11),
    ("VMA_AREA_VVAR", 1 << 12),
    ("VMA_AREA_AIORING", 1 << 13),
    ("VMA_AREA_MEMFD", 1 << 14),
    ("VMA_AREA_SHSTK", 1 << 15),
    ("VMA_AREA_UPROBES", 1 << 17),
    ("VMA_UNSUPP", 1 << 31),
];

const RFILE_FLAGS: &[(&str, u64)] = &[
    ("O_WRONLY", 0o1),
    ("O_RDWR", 0o2),
    ("O_CREAT", 0o100),
    ("O_EXCL", 0o200),
    ("O_NOCTTY", 0o400),
    ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000),
    ("O_NONBLOCK", 0o4000),
    ("O_DSYNC", 0o10000),
    ("FASYNC", 0o20000),
    ("O_DIRECT", 0o40000),
    ("O_LARGEFILE", 0o100000),
    ("O_DIRECTORY", 0o200000),
    ("O_NOFOLLOW", 0o400000),
    ("O_NOATIME", 0o1000000),
    ("O_CLOEXEC", 0o2000000),
];

const SEALS_FLAGS: &[(&str, u64)] = &[
    ("F_SEAL_SEAL", 0x1),
    ("F_SEAL_SHRINK", 0x2),
    ("F_SEAL_GROW", 0x4),
    ("F_SEAL_WRITE", 0x8),
    ("F_SEAL_FUTURE_WRITE", 0x10),
];

const PMAP_FLAGS: &[(&str, u64)] = &[("PE_PARENT", 1), ("PE_LAZY", 2), ("PE_PRESENT", 4)];

/// `"A | B | 0x40"`: names of the set bits, then the unnamed rest in hex.
/// Zero gives the empty string, as crit prints it.
pub fn map_flags(value: u64, map: &[(&str, u64)]) -> String {
    let mut parts: Vec<String> = map
        .iter()
        .filter(|(_, bit)| value & bit != 0)
        .map(|(name, _)| (*name).to_string())
        .collect();
    let rest = value & !map.iter().fold(0, |acc, (_, bit)| acc | bit);
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join(" | ")
}

/// Why a field's text could not be turned back into its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("invalid integer literal {0:?}")]
    Int(String),
    #[error("flag sum overflows")]
    FlagOverflow,
    #[error("device {0:?} is not MAJOR:MINOR")]
    Dev(String),
    #[error("bad device number part {0:?}")]
    DevPart(String),
    #[error("{0:?} is not an IP address")]
    Ip(String),
    #[error("incorrect base64 padding")]
    Base64Padding,
    #[error("invalid base64: one data character too many")]
    Base64Length,
    #[error("invalid base64: {0}")]
    Base64(#[source] base64::DecodeError),
}

/// The inverse of [`map_flags`]: each `|`-separated part is a flag name or
/// a Python integer literal; the parts are added up.
pub fn unmap_flags(text: &str, map: &[(&str, u64)]) -> Result<i128, ConvertError> {
    if text.is_empty() {
        return Ok(0);
    }
    let mut sum: i128 = 0;
    for part in text.split('|').map(str::trim) {
        let v = match map.iter().find(|(name, _)| *name == part) {
            Some((_, bit)) => i128::from(*bit),
            None => parse_py_int(part)?,
        };
        sum = sum.checked_add(v).ok_or(ConvertError::FlagOverflow)?;
    }
    Ok(sum)
}

/// crit's value dictionaries (`(criu).dict`), by dictionary and field name.
pub fn dict_map(dict: &str, field: &str) -> Option<&'static [(i64, &'static str)]> {
    Some(match (dict, field) {
        ("gen", "task_state") => &[(1, "Alive"), (2, "Dead"), (3, "Stopped"), (6, "Zombie")],
        ("sk", "family") => &[
            (1, "UNIX"),
            (2, "INET"),
            (10, "INET6"),
            (16, "NETLINK"),
            (17, "PACKET"),
        ],
        ("sk", "type") => &[
            (1, "STREAM"),
            (2, "DGRAM"),
            (3, "RAW"),
            (5, "SEQPACKET"),
            (10, "PACKET"),
        ],
        ("sk", "state") => &[
            (1, "ESTABLISHED"),
            (2, "SYN_SENT"),
            (3, "SYN_RECV"),
            (4, "FIN_WAIT1"),
            (5, "FIN_WAIT2"),
            (6, "TIME_WAIT"),
            (7, "CLOSE"),
            (8, "CLOSE_WAIT"),
            (9, "LAST_ACK"),
            (10, "LISTEN"),
        ],
        ("sk", "proto") => &[(0, "IP"), (6, "TCP"), (17, "UDP"), (136, "UDPLITE")],
        _ => return None,
    })
}

/// Bits of the kernel's dev_t encoding used by `(criu).dev`.
const KERN_MINORBITS: u32 = 20;

/// `"maj:min"` of a device number: the kernel's packing, or glibc's
/// `major()`/`minor()` for `(criu).odev` fields.
pub fn decode_dev(value: u64, old: bool) -> String {
    if old {
        let major = ((value >> 8) & 0xfff) | ((value >> 32) & !0xfff);
        let minor = (value & 0xff) | ((value >> 12) & !0xff);
        format!("{major}:{minor}")
    } else {
        format!(
            "{}:{}",
            value >> KERN_MINORBITS,
            value & ((1 << KERN_MINORBITS) - 1)
        )
    }
}

/// The inverse of [`decode_dev`].
pub fn encode_dev(text: &str, old: bool) -> Result<i128, ConvertError> {
    let mut it = text.split(':');
    let (Some(maj), Some(min), None) = (it.next(), it.next(), it.next()) else {
        return Err(ConvertError::Dev(text.to_string()));
    };
    let num = |s: &str| -> Result<i128, ConvertError> {
        s.trim()
            .parse::<u32>()
            .map(i128::from)
            .map_err(|_| ConvertError::DevPart(s.to_string()))
    };
    let (maj, min) = (num(maj)?, num(min)?);
    Ok(if old {
        ((maj & 0xffff_f000) << 32)
            | ((maj & 0xfff) << 8)
            | ((min & 0xffff_ff00) << 12)
            | (min & 0xff)
    } else {
        (maj << KERN_MINORBITS) | min
    })
}

/// `"0x1f"`, or `"-0x1f"` for negative values, as Python's `"0x%x"`.
pub fn hex(value: i128) -> String {
    if value < 0 {
        format!("-{:#x}", value.unsigned_abs())
    } else {
        format!("{value:#x}")
    }
}

/// Python's `int(text, 0)`: optional sign, `0x`/`0o`/`0b` prefixes, `_`
/// between digits, no leading zeros on decimals.
pub fn parse_py_int(text: &str) -> Result<i128, ConvertError> {
    let bad = || ConvertError::Int(text.to_string());
    let t = text.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = t.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else {
        if lower.len() > 1
            && lower.starts_with('0')
            && lower.bytes().any(|b| b != b'0' && b != b'_')
        {
            return Err(bad());
        }
        (10, lower.as_str())
    };
    let digits = digits
        .strip_prefix('_')
        .filter(|_| radix != 10)
        .unwrap_or(digits);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return Err(bad());
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    let v = i128::from_str_radix(&clean, radix).map_err(|_| bad())?;
    Ok(if neg { -v } else { v })
}

/// crit's text for an `(criu).ipadd` field: dotted IPv4 for one word,
/// compressed IPv6 for four. The words hold the address in network order.
pub fn ip_to_string(words: &[u32]) -> Option<String> {
    match words {
        [a] => Some(Ipv4Addr::from(u32::from_be(*a)).to_string()),
        [a, b, c, d] => {
            let v = [*a, *b, *c, *d].map(u32::from_be);
            let mut groups = [0u16; 8];
            for (i, w) in v.iter().enumerate() {
                groups[2 * i] = (w >> 16) as u16;
                groups[2 * i + 1] = *w as u16;
            }
            Some(ipv6_compressed(&groups))
        }
        _ => None,
    }
}

/// RFC 5952 text as Python's `IPv6Address.compressed`: the longest run of
/// two or more zero groups (the first of equals) becomes `::`; an
/// IPv4-mapped address ends in dotted form.
fn ipv6_compressed(g: &[u16; 8]) -> String {
    if g[..5].iter().all(|&x| x == 0) && g[5] == 0xffff {
        let v4 = Ipv4Addr::new((g[6] >> 8) as u8, g[6] as u8, (g[7] >> 8) as u8, g[7] as u8);
        return format!("::ffff:{v4}");
    }
    let (mut best, mut best_len, mut cur, mut cur_len) = (0, 0, 0, 0);
    for (i, &x) in g.iter().enumerate() {
        if x == 0 {
            if cur_len == 0 {
                cur = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                best = cur;
                best_len = cur_len;
            }
        } else {
            cur_len = 0;
        }
    }
    let join = |s: &[u16]| {
        s.iter()
            .map(|x| format!("{x:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len < 2 {
        return join(g);
    }
    format!("{}::{}", join(&g[..best]), join(&g[best + best_len..]))
}

/// The words of an `(criu).ipadd` field from its text.
pub fn ip_from_string(text: &str) -> Result<Vec<u32>, ConvertError> {
    let addr: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| ConvertError::Ip(text.to_string()))?;
    Ok(match addr {
        IpAddr::V4(a) => vec![u32::from(a).to_be()],
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (0..4)
                .rev()
                .map(|i| ((v >> (32 * i)) as u32).to_be())
                .collect()
        }
    })
}

/// Python's `base64.encodebytes`: lines of 76 characters, each ending in
/// a newline; empty input gives the empty string.
pub fn base64_lines(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() / 57 * 77 + 80);
    for chunk in data.chunks(57) {
        out.push_str(&STANDARD.encode(chunk));
        out.push('\n');
    }
    out
}

/// Python's `base64.decodebytes`: characters outside the alphabet are
/// skipped, data stops at completed padding, padding must be right.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, ConvertError> {
    let mut data = String::with_capacity(text.len());
    let mut pads = 0;
    for c in text.chars() {
        if c == '=' {
            if data.len() % 4 >= 2 {
                pads += 1;
                if data.len() % 4 + pads >= 4 {
                    break;
                }
            }
        } else if c.is_ascii_alphanumeric() || c == '+' || c == '/' {
            if pads > 0 {
                // Padding started but was cut short: the quad is broken.
                return Err(ConvertError::Base64Padding);
            }
            data.push(c);
        }
    }
    match data.len() % 4 {
        0 => {}
        1 => return Err(ConvertError::Base64Length),
        r if r + pads < 4 => return Err(ConvertError::Base64Padding),
        _ => {}
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(data.as_bytes())
        .or_else(|_| {
            base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_allow_trailing_bits(true)
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
            )
            .decode(data.as_bytes())
        })
        .map_err(ConvertError::Base64)
}

const QP_LINE: usize = 76;

/// Python's `quopri.encodestring` (binascii `b2a_qp`, text mode, tabs kept):
/// how crit prints unix socket names.
pub fn qp_encode(data: &[u8]) -> String {
    let crlf = data
        .iter()
        .position(|&b| b == b'\n')
        .is_some_and(|p| p > 0 && data[p - 1] == b'\r');
    let mut out: Vec<u8> = Vec::with_capacity(data.len() * 3);
    let soft_break = |out: &mut Vec<u8>| {
        out.push(b'=');
        if crlf {
            out.push(b'\r');
        }
        out.push(b'\n');
    };
    let (mut i, mut linelen) = (0, 0);
    while i < data.len() {
        let c = data[i];
        let last = i + 1 == data.len();
        let next = data.get(i + 1).copied();
        let quote = c > 126
            || c == b'='
            || (c == b'.' && linelen == 0 && (last || matches!(next, Some(b'\n' | b'\r' | 0))))
            || ((c == b'\t' || c == b' ') && last)
            || (c < 33 && c != b'\r' && c != b'\n' && c != b'\t' && c != b' ');
        if quote {
            if linelen + 3 >= QP_LINE {
                soft_break(&mut out);
                linelen = 0;
            }
            out.extend_from_slice(format!("={c:02X}").as_bytes());
            i += 1;
            linelen += 3;
        } else if c == b'\n' || (c == b'\r' && next == Some(b'\n')) {
            linelen = 0;
            if let Some(&ws @ (b' ' | b'\t')) = out.last() {
                out.pop();
                out.extend_from_slice(format!("={ws:02X}").as_bytes());
            }
            if crlf {
                out.push(b'\r');
            }
            out.push(b'\n');
            i += if c == b'\r' { 2 } else { 1 };
        } else {
            if !last && next != Some(b'\n') && linelen + 1 >= QP_LINE {
                soft_break(&mut out);
                linelen = 0;
            }
            linelen += 1;
            out.push(c);
            i += 1;
        }
    }
    // Every byte pushed is printable ASCII or a line end.
    String::from_utf8_lossy(&out).into_owned()
}

/// Python's `quopri.decodestring` (binascii `a2b_qp`).
pub fn qp_decode(text: &str) -> Vec<u8> {
    let d = text.as_bytes();
    let mut out = Vec::with_capacity(d.len());
    let mut i = 0;
    while i < d.len() {
        if d[i] != b'=' {
            out.push(d[i]);
            i += 1;
            continue;
        }
        i += 1;
        if i >= d.len() {
            break;
        }
        if d[i] == b'\n' || d[i] == b'\r' {
            while i < d.len() && d[i] != b'\n' {
                i += 1;
            }
            if i < d.len() {
                i += 1;
            }
        } else if d[i] == b'=' {
            out.push(b'=');
            i += 1;
        } else if i + 1 < d.len() && d[i].is_ascii_hexdigit() && d[i + 1].is_ascii_hexdigit() {
            let hexval = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hexval(d[i]) << 4 | hexval(d[i + 1]));
            i += 2;
        } else {
            out.push(b'=');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip() {
        let s = map_flags(0x1 | 0x2 | 0x40, MMAP_PROT);
        assert_eq!(s, "PROT_READ | PROT_WRITE | 0x40");
        assert_eq!(unmap_flags(&s, MMAP_PROT), Ok(0x43));
        assert_eq!(map_flags(0, MMAP_STATUS), "");
        assert_eq!(unmap_flags("", MMAP_STATUS), Ok(0));
    }

    #[test]
    fn py_ints() {
        assert_eq!(parse_py_int("0x1F"), Ok(31));
        assert_eq!(parse_py_int(" -12 "), Ok(-12));
        assert_eq!(parse_py_int("0o17"), Ok(15));
        assert_eq!(parse_py_int("1_000"), Ok(1000));
        assert!(parse_py_int("010").is_err());
        assert_eq!(parse_py_int("00"), Ok(0));
        assert!(parse_py_int("").is_err());
        assert!(parse_py_int("0x").is_err());
    }

    #[test]
    fn devices() {
        assert_eq!(decode_dev((8 << 20) | 1, false), "8:1");
        assert_eq!(encode_dev("8:1", false), Ok((8 << 20) | 1));
        assert_eq!(decode_dev(0x0801, true), "8:1");
        assert_eq!(encode_dev("8:1", true), Ok(0x0801));
        assert_eq!(
            decode_dev(encode_dev("259:65537", true).unwrap() as u64, true),
            "259:65537"
        );
    }

    #[test]
    fn ips() {
        let w = ip_from_string("127.0.0.1").unwrap();
        assert_eq!(ip_to_string(&w).unwrap(), "127.0.0.1");
        for s in [
            "::1",
            "fe80::1:2",
            "2001:db8::",
            "::",
            "1:0:0:2::3",
            "1::2:0:0:3",
            "1:2:3:4:5:6:7:8",
            "::ffff:1.2.3.4",
            "1:0:2:3:4:5:6:7",
        ] {
            let w = ip_from_string(s).unwrap();
            assert_eq!(ip_to_string(&w).unwrap(), s);
        }
    }

    #[test]
    fn base64_like_python() {
        assert_eq!(base64_lines(b""), "");
        assert_eq!(base64_lines(b"ab"), "YWI=\n");
        let long = vec![0u8; 60];
        let s = base64_lines(&long);
        assert_eq!(s.lines().next().unwrap().len(), 76);
        assert_eq!(base64_decode(&s).unwrap(), long);
        assert_eq!(base64_decode("YW\nI=").unwrap(), b"ab");
        assert!(base64_decode("YWI").is_err());
        assert!(base64_decode("Y").is_err());
    }

    #[test]
    fn quoted_printable() {
        assert_eq!(qp_encode(b"\0abc=d"), "=00abc=3Dd");
        assert_eq!(qp_encode(b"a b "), "a b=20");
        assert_eq!(qp_decode("=00abc=3Dd"), b"\0abc=d");
        let long = vec![b'x'; 100];
        assert_eq!(qp_decode(&qp_encode(&long)), long);
        assert_eq!(qp_decode(&qp_encode(b"a \nb")), b"a \nb");
    }
}
