//! `/proc/PID/timers`: the task's POSIX timers, four lines each
//! (`show_timer` in fs/proc/base.c):
//!
//! ```text
//! ID: 0
//! signal: 14/0000000000000000
//! notify: signal/pid.1234
//! ClockID: 0
//! ```

use super::error::{ParseError, ProcError, TextError};
use super::text::{LineReader, dec_i32, hex_u64, key_value};
use super::{MAX_ENTRIES, ProcDir};

/// `sigev_notify` values (include/uapi/asm-generic/siginfo.h).
pub const SIGEV_SIGNAL: i32 = linux_raw_sys::general::SIGEV_SIGNAL as i32;
pub const SIGEV_NONE: i32 = linux_raw_sys::general::SIGEV_NONE as i32;
pub const SIGEV_THREAD: i32 = linux_raw_sys::general::SIGEV_THREAD as i32;
pub const SIGEV_THREAD_ID: i32 = linux_raw_sys::general::SIGEV_THREAD_ID as i32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PosixTimer {
    pub id: i32,
    pub signo: i32,
    /// `sigev_value.sival_ptr` (0 when the kernel printed `(null)`).
    pub sival_ptr: u64,
    /// `SIGEV_SIGNAL`, `SIGEV_NONE`, `SIGEV_THREAD` or `SIGEV_THREAD_ID`
    /// (which the kernel shows as `signal/tid`).
    pub sigev_notify: i32,
    /// The process or thread notified, as numbered in the reader's PID
    /// namespace.
    pub notify_pid: i32,
    pub clock_id: i32,
}

#[derive(Debug, Default)]
struct Partial {
    id: Option<i32>,
    signal: Option<(i32, u64)>,
    notify: Option<(i32, i32)>,
}

/// Incremental parser.
#[derive(Debug, Default)]
pub struct TimersParser {
    cur: Partial,
    out: Vec<PosixTimer>,
}

impl TimersParser {
    pub fn new() -> TimersParser {
        TimersParser::default()
    }

    pub fn push_line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        let Some((key, v)) = key_value(line) else {
            if line.trim_ascii().is_empty() {
                return Ok(());
            }
            return Err(ParseError::Unexpected("line is not `key: value`"));
        };
        match key {
            b"ID" => {
                if self.cur.id.is_some() {
                    return Err(ParseError::Unexpected("ID before the previous timer ended"));
                }
                self.cur.id = Some(dec_i32("ID", v)?);
            }
            b"signal" => {
                self.need_id()?;
                let slash = v
                    .iter()
                    .position(|&b| b == b'/')
                    .ok_or_else(|| ParseError::bad("signal", v))?;
                let signo = dec_i32("signal", &v[..slash])?;
                let ptr = &v[slash + 1..];
                let ptr = if ptr == b"(null)" {
                    0
                } else {
                    hex_u64("sival_ptr", ptr)?
                };
                self.cur.signal = Some((signo, ptr));
            }
            b"notify" => {
                self.need_id()?;
                self.cur.notify = Some(parse_notify(v)?);
            }
            b"ClockID" => {
                let id = self.need_id()?;
                let (signo, sival_ptr) = self.cur.signal.ok_or(ParseError::Missing("signal"))?;
                let (sigev_notify, notify_pid) =
                    self.cur.notify.ok_or(ParseError::Missing("notify"))?;
                if self.out.len() >= MAX_ENTRIES {
                    return Err(ParseError::TooMany(MAX_ENTRIES));
                }
                self.out.push(PosixTimer {
                    id,
                    signo,
                    sival_ptr,
                    sigev_notify,
                    notify_pid,
                    clock_id: dec_i32("ClockID", v)?,
                });
                self.cur = Partial::default();
            }
            _ => return Err(ParseError::bad("timer field", key)),
        }
        Ok(())
    }

    fn need_id(&self) -> Result<i32, ParseError> {
        self.cur.id.ok_or(ParseError::Missing("ID"))
    }

    pub fn finish(self) -> Result<Vec<PosixTimer>, ParseError> {
        if self.cur.id.is_some() {
            return Err(ParseError::Missing("ClockID"));
        }
        Ok(self.out)
    }
}

/// `signal/pid.1234`, `thread/pid.1`, `none/pid.1`, `signal/tid.1235`.
fn parse_notify(v: &[u8]) -> Result<(i32, i32), ParseError> {
    let bad = || ParseError::bad("notify", v);
    let slash = v.iter().position(|&b| b == b'/').ok_or_else(bad)?;
    let (how, rest) = (&v[..slash], &v[slash + 1..]);
    let dot = rest.iter().position(|&b| b == b'.').ok_or_else(bad)?;
    let (who, pid) = (&rest[..dot], dec_i32("notify pid", &rest[dot + 1..])?);
    let notify = match (how, who) {
        (_, b"tid") => SIGEV_THREAD_ID,
        (b"signal", b"pid") => SIGEV_SIGNAL,
        (b"thread", b"pid") => SIGEV_THREAD,
        (b"none", b"pid") => SIGEV_NONE,
        _ => return Err(bad()),
    };
    Ok((notify, pid))
}

/// Parse timers text held in memory.
pub fn parse(text: &[u8]) -> Result<Vec<PosixTimer>, TextError> {
    let mut p = TimersParser::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        p.push_line(line).map_err(|e| TextError::new(i + 1, e))?;
    }
    p.finish().map_err(|e| TextError::new(0, e))
}

fn parse_stream(mut r: LineReader) -> Result<Vec<PosixTimer>, ProcError> {
    let mut p = TimersParser::new();
    while let Some(line) = r.next_line()? {
        if let Err(e) = p.push_line(line) {
            return Err(r.error(e));
        }
    }
    p.finish()
        .map_err(|e| ProcError::parse(r.path().to_owned(), 0, e))
}

impl ProcDir {
    /// The POSIX timers of the process.
    pub fn timers(&self) -> Result<Vec<PosixTimer>, ProcError> {
        parse_stream(self.lines("timers")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample() {
        let t = parse(b"ID: 0\nsignal: 14/0000000000000000\nnotify: signal/pid.1234\nClockID: 0\nID: 1\nsignal: 10/00000000deadbeef\nnotify: signal/tid.1235\nClockID: 1\nID: 2\nsignal: 0/(null)\nnotify: none/pid.1234\nClockID: 7\n").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[0],
            PosixTimer {
                id: 0,
                signo: 14,
                sival_ptr: 0,
                sigev_notify: SIGEV_SIGNAL,
                notify_pid: 1234,
                clock_id: 0
            }
        );
        assert_eq!(
            (t[1].sival_ptr, t[1].sigev_notify, t[1].notify_pid),
            (0xdeadbeef, SIGEV_THREAD_ID, 1235)
        );
        assert_eq!((t[2].sigev_notify, t[2].clock_id), (SIGEV_NONE, 7));
        assert_eq!(parse(b"").unwrap(), []);
    }

    #[test]
    fn bad() {
        for t in [
            &b"ID: 0\n"[..],
            b"signal: 1/0\n",
            b"ID: 0\nsignal: 1/0\nClockID: 0\n",
            b"ID: 0\nsignal: 1\nnotify: signal/pid.1\nClockID: 0\n",
            b"ID: 0\nsignal: 1/0\nnotify: bogus/pid.1\nClockID: 0\n",
            b"ID: 0\nsignal: 1/0\nnotify: signal/pid\nClockID: 0\n",
            b"ID: 0\nID: 1\n",
            b"ID: 0\nsignal: 1/0\nnotify: signal/pid.1\nClockID: x\n",
            b"Unknown: 1\n",
            b"garbage\n",
        ] {
            assert!(parse(t).is_err(), "{:?}", String::from_utf8_lossy(t));
        }
    }
}
