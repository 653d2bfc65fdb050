//! Byte-level helpers shared by the /proc parsers: number fields, field
//! splitting, octal unescaping, and a bounded line reader over a file
//! descriptor.
//!
//! /proc text is bytes, not UTF-8 (paths and task names can hold anything
//! but NUL), so every parser works on `&[u8]`.

use std::os::fd::OwnedFd;

use rustix::io::Errno;

use super::error::{ParseError, ProcError};

/// Longest line [`LineReader`] accepts: a `PATH_MAX` path whose every byte
/// the kernel escaped as `\ooo`, plus the fixed fields, fits easily.
pub const MAX_LINE: usize = 20 * 1024;

/// Unsigned decimal.
pub(crate) fn dec_u64(what: &'static str, s: &[u8]) -> Result<u64, ParseError> {
    radix_u64(what, s, 10)
}

/// Unsigned decimal that must fit in 32 bits.
pub(crate) fn dec_u32(what: &'static str, s: &[u8]) -> Result<u32, ParseError> {
    u32::try_from(dec_u64(what, s)?).map_err(|_| ParseError::bad(what, s))
}

/// Signed decimal (an optional leading `-`).
pub(crate) fn dec_i64(what: &'static str, s: &[u8]) -> Result<i64, ParseError> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let v = radix_u64(what, digits, 10)?;
    if neg {
        // -(2^63) is the only magnitude above i64::MAX that fits.
        0i64.checked_sub_unsigned(v)
            .ok_or_else(|| ParseError::bad(what, s))
    } else {
        i64::try_from(v).map_err(|_| ParseError::bad(what, s))
    }
}

/// Signed decimal that must fit in 32 bits.
pub(crate) fn dec_i32(what: &'static str, s: &[u8]) -> Result<i32, ParseError> {
    i32::try_from(dec_i64(what, s)?).map_err(|_| ParseError::bad(what, s))
}

/// Hexadecimal, with or without a `0x` prefix.
pub(crate) fn hex_u64(what: &'static str, s: &[u8]) -> Result<u64, ParseError> {
    let digits = s
        .strip_prefix(b"0x")
        .or_else(|| s.strip_prefix(b"0X"))
        .unwrap_or(s);
    radix_u64(what, digits, 16)
}

/// Hexadecimal that must fit in 32 bits.
pub(crate) fn hex_u32(what: &'static str, s: &[u8]) -> Result<u32, ParseError> {
    u32::try_from(hex_u64(what, s)?).map_err(|_| ParseError::bad(what, s))
}

/// Octal (the kernel prints file flags as `0%o`).
pub(crate) fn oct_u32(what: &'static str, s: &[u8]) -> Result<u32, ParseError> {
    u32::try_from(radix_u64(what, s, 8)?).map_err(|_| ParseError::bad(what, s))
}

fn radix_u64(what: &'static str, s: &[u8], radix: u32) -> Result<u64, ParseError> {
    if s.is_empty() {
        return Err(ParseError::Missing(what));
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = (b as char)
            .to_digit(radix)
            .ok_or_else(|| ParseError::bad(what, s))?;
        v = v
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or_else(|| ParseError::bad(what, s))?;
    }
    Ok(v)
}

/// Fields separated by runs of ASCII whitespace.
pub(crate) fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
}

/// `line` without leading and trailing ASCII whitespace.
pub(crate) fn trim(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

/// Split `key: value` at the first `:`; the value is trimmed.
pub(crate) fn key_value(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    Some((&line[..colon], trim(&line[colon + 1..])))
}

/// Replace every `\ooo` (three octal digits) with the byte it encodes; the
/// kernel mangles spaces, tabs, newlines and backslashes in paths this way
/// (`seq_escape`, `mangle_path`). A backslash not followed by three octal
/// digits is kept as is.
pub(crate) fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 3 < s.len() && is_octal_triple(&s[i + 1..i + 4]) {
            let v = s[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, &d| acc * 8 + u32::from(d - b'0'));
            // Three octal digits can exceed a byte (\777); keep such text.
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn is_octal_triple(s: &[u8]) -> bool {
    s.len() == 3 && s.iter().all(|b| (b'0'..=b'7').contains(b))
}

/// Reads a file line by line through a fixed buffer, so memory stays
/// bounded by [`MAX_LINE`] whatever the file's size. Lines are returned
/// without their `\n`; a last line without one is returned too.
pub struct LineReader {
    fd: OwnedFd,
    path: String,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    line: usize,
}

impl LineReader {
    /// A reader over `fd`, which was opened from `path` (used in errors).
    pub fn new(fd: OwnedFd, path: String) -> LineReader {
        LineReader {
            fd,
            path,
            buf: vec![0u8; MAX_LINE].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            line: 0,
        }
    }

    /// The path given at creation.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// 1-based number of the line last returned (0 before the first).
    pub fn line_no(&self) -> usize {
        self.line
    }

    /// A `Parse` error for the line last returned.
    pub fn error(&self, error: ParseError) -> ProcError {
        ProcError::parse(self.path.clone(), self.line, error)
    }

    /// The next line, `None` at end of file.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, ProcError> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                let s = self.start;
                self.start += nl + 1;
                self.line += 1;
                return Ok(Some(&self.buf[s..s + nl]));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let (s, e) = (self.start, self.end);
                self.start = self.end;
                self.line += 1;
                return Ok(Some(&self.buf[s..e]));
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                return Err(ProcError::LineTooLong {
                    path: self.path.clone(),
                    line: self.line + 1,
                    limit: self.buf.len(),
                });
            }
            let n = read_retry(&self.fd, &mut self.buf[self.end..])
                .map_err(|e| ProcError::io(self.path.clone(), e))?;
            if n == 0 {
                self.eof = true;
            } else {
                self.end += n;
            }
        }
    }
}

/// `read(2)`, retried on `EINTR`.
pub(crate) fn read_retry(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// Read all of `fd` (opened from `path`) into memory, failing with
/// `TooLarge` past `limit` bytes.
pub(crate) fn read_all(fd: &OwnedFd, path: &str, limit: usize) -> Result<Vec<u8>, ProcError> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = read_retry(fd, &mut chunk).map_err(|e| ProcError::io(path, e))?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > limit {
            return Err(ProcError::TooLarge {
                path: path.to_owned(),
                limit,
            });
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(dec_u64("x", b"18446744073709551615"), Ok(u64::MAX));
        assert!(dec_u64("x", b"18446744073709551616").is_err());
        assert!(dec_u64("x", b"").is_err());
        assert!(dec_u64("x", b"12a").is_err());
        assert_eq!(dec_i64("x", b"-9223372036854775808"), Ok(i64::MIN));
        assert!(dec_i64("x", b"-9223372036854775809").is_err());
        assert!(dec_i64("x", b"-").is_err());
        assert_eq!(dec_i32("x", b"-1"), Ok(-1));
        assert!(dec_i32("x", b"4294967295").is_err());
        assert_eq!(hex_u64("x", b"0xff"), Ok(255));
        assert_eq!(hex_u64("x", b"FFffFFffFFffFFff"), Ok(u64::MAX));
        assert!(hex_u64("x", b"1ffffffffffffffff").is_err());
        assert_eq!(oct_u32("x", b"0100002"), Ok(0o100002));
        assert!(oct_u32("x", b"8").is_err());
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_octal(b"a\\040b"), b"a b");
        assert_eq!(unescape_octal(b"a\\012"), b"a\n");
        assert_eq!(unescape_octal(b"\\134\\011"), b"\\\t");
        assert_eq!(unescape_octal(b"tail\\04"), b"tail\\04");
        assert_eq!(unescape_octal(b"\\777x"), b"\\777x");
        assert_eq!(unescape_octal(b"\\"), b"\\");
    }

    fn reader_over(content: &[u8]) -> LineReader {
        let fd =
            rustix::fs::memfd_create("line-reader-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::io::write(&fd, content).unwrap();
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0)).unwrap();
        LineReader::new(fd, "test".into())
    }

    #[test]
    fn line_reader_streams_across_refills() {
        // Many lines whose boundaries fall everywhere relative to the buffer.
        let mut content = Vec::new();
        for i in 0..5000 {
            content.extend_from_slice(format!("line {i} {}\n", "x".repeat(i % 97)).as_bytes());
        }
        content.extend_from_slice(b"no newline at end");
        let mut r = reader_over(&content);
        let mut n = 0;
        while let Some(line) = r.next_line().unwrap() {
            if n < 5000 {
                assert!(line.starts_with(format!("line {n} ").as_bytes()));
                assert_eq!(line.len(), format!("line {n} ").len() + n % 97);
            } else {
                assert_eq!(line, b"no newline at end");
            }
            n += 1;
            assert_eq!(r.line_no(), n);
        }
        assert_eq!(n, 5001);
        assert!(r.next_line().unwrap().is_none());
    }

    #[test]
    fn line_reader_rejects_overlong_lines() {
        let mut content = b"short\n".to_vec();
        content.extend(std::iter::repeat_n(b'a', MAX_LINE + 1));
        let mut r = reader_over(&content);
        assert_eq!(r.next_line().unwrap(), Some(&b"short"[..]));
        match r.next_line() {
            Err(ProcError::LineTooLong { line: 2, limit, .. }) => assert_eq!(limit, MAX_LINE),
            other => panic!("{other:?}"),
        }
        // Exactly MAX_LINE - 1 bytes plus the newline fits.
        let mut content = vec![b'b'; MAX_LINE - 1];
        content.push(b'\n');
        let mut r = reader_over(&content);
        assert_eq!(r.next_line().unwrap().map(<[u8]>::len), Some(MAX_LINE - 1));
        assert!(r.next_line().unwrap().is_none());
    }

    #[test]
    fn read_all_caps() {
        let r = reader_over(&[7u8; 10000]);
        assert_eq!(read_all(&r.fd, "t", 10000).unwrap().len(), 10000);
        let r = reader_over(&[7u8; 10001]);
        assert!(matches!(
            read_all(&r.fd, "t", 10000),
            Err(ProcError::TooLarge { .. })
        ));
    }

    #[test]
    fn key_values() {
        assert_eq!(key_value(b"Name:\tcat "), Some((&b"Name"[..], &b"cat"[..])));
        assert_eq!(key_value(b"no colon"), None);
    }
}
