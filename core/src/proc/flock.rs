//! File lock lines, as in `/proc/locks` and the `lock:` lines of fdinfo
//! (`lock_get_status` in fs/locks.c):
//! `ID: KIND MODE TYPE PID MAJ:MIN:INO START END`, e.g.
//! `1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF`.

use super::error::ParseError;
use super::text::{dec_i32, dec_i64, dec_u64, fields, hex_u32};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockKind {
    Posix,
    Flock,
    /// Open-file-description lock (`F_OFD_SETLK`).
    Ofd,
    Lease,
    /// `DELEG` and anything newer, as printed.
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockType {
    Read,
    Write,
    Unlock,
    /// Lease states (`BREAKING`, …) and anything newer, as printed.
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLock {
    pub id: i64,
    /// The lock waits for another (`->` in `/proc/locks`).
    pub blocked: bool,
    pub kind: LockKind,
    /// `ADVISORY`, `MANDATORY`, `ACTIVE`, `BREAKING`, …
    pub mode: String,
    pub lock_type: LockType,
    /// Owner PID as the reader's namespace sees it (-1 for OFD locks).
    pub pid: i32,
    /// `(major, minor, inode)`; `None` when the kernel printed `<none>`.
    pub inode: Option<(u32, u32, u64)>,
    pub start: i64,
    /// `None` for `EOF` (to the end of the file).
    pub end: Option<i64>,
}

fn word(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

/// Parse one lock line (the text after `lock:` in fdinfo, or a whole
/// `/proc/locks` line).
pub fn parse_lock(line: &[u8]) -> Result<FileLock, ParseError> {
    let mut it = fields(line).peekable();
    let id_tok = it.next().ok_or(ParseError::Missing("lock id"))?;
    let id = dec_i64("lock id", id_tok.strip_suffix(b":").unwrap_or(id_tok))?;
    let blocked = it.next_if(|t| *t == b"->").is_some();
    let mut next = |what| it.next().ok_or(ParseError::Missing(what));
    let kind = match next("lock kind")? {
        b"POSIX" => LockKind::Posix,
        b"FLOCK" => LockKind::Flock,
        b"OFDLCK" => LockKind::Ofd,
        b"LEASE" => LockKind::Lease,
        other => LockKind::Other(word(other)),
    };
    let mode = word(next("lock mode")?);
    let lock_type = match next("lock type")? {
        b"READ" => LockType::Read,
        b"WRITE" => LockType::Write,
        b"UNLCK" => LockType::Unlock,
        other => LockType::Other(word(other)),
    };
    let pid = dec_i32("lock pid", next("lock pid")?)?;
    let dev = next("lock inode")?;
    let inode = if dev.starts_with(b"<none>") {
        None
    } else {
        let mut parts = dev.split(|&b| b == b':');
        let (Some(maj), Some(min), Some(ino), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::bad("lock inode", dev));
        };
        Some((
            hex_u32("lock major", maj)?,
            hex_u32("lock minor", min)?,
            dec_u64("lock inode", ino)?,
        ))
    };
    let start = dec_i64("lock start", next("lock start")?)?;
    let end = match next("lock end")? {
        b"EOF" => None,
        e => Some(dec_i64("lock end", e)?),
    };
    Ok(FileLock {
        id,
        blocked,
        kind,
        mode,
        lock_type,
        pid,
        inode,
        start,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_lines() {
        let l = parse_lock(b"1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF").unwrap();
        assert_eq!(l.id, 1);
        assert_eq!((l.kind, l.lock_type), (LockKind::Posix, LockType::Write));
        assert_eq!(
            (l.pid, l.inode, l.start, l.end),
            (1234, Some((8, 1, 5678)), 0, None)
        );
        let l = parse_lock(b"7: -> FLOCK  ADVISORY  READ 55 fd:00:9 10 20").unwrap();
        assert!(l.blocked);
        assert_eq!(
            (l.kind, l.inode, l.end),
            (LockKind::Flock, Some((0xfd, 0, 9)), Some(20))
        );
        let l = parse_lock(b"3: OFDLCK ADVISORY UNLCK -1 <none>:0 0 EOF").unwrap();
        assert_eq!(
            (l.kind, l.lock_type, l.pid, l.inode),
            (LockKind::Ofd, LockType::Unlock, -1, None)
        );
        let l = parse_lock(b"4: LEASE ACTIVE BREAKING 9 00:1a:3 0 EOF").unwrap();
        assert_eq!(l.lock_type, LockType::Other("BREAKING".into()));
    }

    #[test]
    fn bad_lock_lines() {
        for t in [
            &b""[..],
            b"x: POSIX ADVISORY WRITE 1 0:0:0 0 EOF",
            b"1: POSIX ADVISORY WRITE 1 0:0 0 EOF",
            b"1: POSIX ADVISORY WRITE 1 0:0:0:0 0 EOF",
            b"1: POSIX ADVISORY WRITE x 0:0:0 0 EOF",
            b"1: POSIX ADVISORY WRITE 1 0:0:0 0",
            b"1: POSIX ADVISORY WRITE 1 0:0:0 0 NEVER",
            b"1: ->",
        ] {
            assert!(parse_lock(t).is_err(), "{:?}", String::from_utf8_lossy(t));
        }
    }
}
