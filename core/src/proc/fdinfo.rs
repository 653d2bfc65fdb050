//! `/proc/PID/fdinfo/N`: position, flags and mount of an open file, plus the
//! lines particular to its kind (eventfd, epoll, signalfd, timerfd, inotify,
//! fanotify) and the locks it holds (`seq_show` and the `show_fdinfo`
//! methods in the kernel). A file shows only its own kind's lines, so the
//! parser collects whatever is there; the caller knows the kind from the fd
//! link (`ProcDir::fd_target`).

use super::error::{ParseError, ProcError, TextError};
use super::flock::{FileLock, parse_lock};
use super::text::{
    LineReader, dec_i32, dec_i64, dec_u32, dec_u64, fields, hex_u32, hex_u64, key_value, oct_u32,
};
use super::{MAX_ENTRIES, ProcDir};

/// Everything `fdinfo/N` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FdInfo {
    pub pos: i64,
    /// `O_*` flags of the open file (octal in the file).
    pub flags: u32,
    pub mnt_id: Option<i32>,
    /// Inode number (Linux 5.14+).
    pub ino: Option<u64>,
    pub eventfd: Option<EventfdInfo>,
    /// `tfd:` lines of an epoll instance.
    pub epoll_targets: Vec<EpollTarget>,
    /// `sigmask:` of a signalfd.
    pub signalfd_sigmask: Option<u64>,
    pub timerfd: Option<TimerfdInfo>,
    pub inotify_watches: Vec<InotifyWatch>,
    pub fanotify: Option<FanotifyInfo>,
    pub fanotify_marks: Vec<FanotifyMark>,
    /// `lock:` lines (POSIX, flock, OFD locks and leases on this file).
    pub locks: Vec<FileLock>,
    /// `Pid:`/`NSpid:` of a pidfd.
    pub pidfd: Option<PidfdInfo>,
}

/// What a pidfd's fdinfo says of its process (`pidfd_show_fdinfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PidfdInfo {
    /// Its PID in the reader's PID namespace: -1 once the process has
    /// been reaped, 0 when it is outside the reader's namespace.
    pub pid: i32,
    /// Its PID in its own (innermost) namespace, the last `NSpid:` field.
    pub nspid: Option<i32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventfdInfo {
    pub count: u64,
    pub id: Option<i32>,
    pub semaphore: Option<bool>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollTarget {
    pub tfd: i32,
    pub events: u32,
    pub data: u64,
    /// Position, inode and device (`sdev`, kernel encoding) of the target
    /// file, printed by Linux 4.12+ so kcmp-free matching is possible.
    pub pos: Option<i64>,
    pub ino: Option<u64>,
    pub sdev: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerfdInfo {
    pub clockid: i32,
    pub ticks: u64,
    /// `TFD_TIMER_*` flags given to the last `timerfd_settime`.
    pub settime_flags: u32,
    /// Time to the next expiry: (seconds, nanoseconds).
    pub it_value: (u64, u64),
    pub it_interval: (u64, u64),
}

/// The `f_handle` of a watched inode, to reopen it with
/// `open_by_handle_at`; absent when the filesystem cannot export handles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileHandle {
    pub bytes: u32,
    pub handle_type: i32,
    pub handle: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InotifyWatch {
    pub wd: i32,
    pub ino: u64,
    /// Device of the watched inode (kernel `s_dev` encoding).
    pub sdev: u32,
    pub mask: u32,
    pub ignored_mask: u32,
    pub fhandle: Option<FileHandle>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FanotifyInfo {
    pub flags: u32,
    pub event_flags: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FanotifyTarget {
    Inode {
        ino: u64,
        sdev: u32,
        fhandle: Option<FileHandle>,
    },
    Mount {
        mnt_id: i32,
    },
    Filesystem {
        sdev: u32,
        fhandle: Option<FileHandle>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FanotifyMark {
    pub target: FanotifyTarget,
    pub mflags: u32,
    pub mask: u32,
    pub ignored_mask: u32,
}

/// `key:value` / `key: value` pairs of one line (`tfd:  5 events: 19 …`).
fn tagged(line: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    let mut it = fields(line);
    while let Some(tok) = it.next() {
        let Some(c) = tok.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = if c + 1 < tok.len() {
            &tok[c + 1..]
        } else {
            it.next().unwrap_or(b"")
        };
        out.push((&tok[..c], value));
    }
    out
}

fn get<'a>(tags: &[(&[u8], &'a [u8])], key: &'static str) -> Result<&'a [u8], ParseError> {
    tags.iter()
        .find(|(k, _)| *k == key.as_bytes())
        .map(|(_, v)| *v)
        .ok_or(ParseError::Missing(key))
}

fn opt<'a>(tags: &[(&[u8], &'a [u8])], key: &'static str) -> Option<&'a [u8]> {
    get(tags, key).ok()
}

fn fhandle(tags: &[(&[u8], &[u8])]) -> Result<Option<FileHandle>, ParseError> {
    let Some(bytes) = opt(tags, "fhandle-bytes") else {
        return Ok(None);
    };
    let hex = get(tags, "f_handle")?;
    if !hex.len().is_multiple_of(2) {
        return Err(ParseError::bad("f_handle", hex));
    }
    let handle = hex
        .chunks_exact(2)
        .map(|p| hex_u64("f_handle", p).map(|v| v as u8))
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(Some(FileHandle {
        bytes: hex_u32("fhandle-bytes", bytes)?,
        handle_type: hex_u32("fhandle-type", get(tags, "fhandle-type")?)? as i32,
        handle,
    }))
}

fn pair(what: &'static str, v: &[u8]) -> Result<(u64, u64), ParseError> {
    // "(SEC, NSEC)"
    let inner = v
        .strip_prefix(b"(")
        .and_then(|r| r.strip_suffix(b")"))
        .ok_or_else(|| ParseError::bad(what, v))?;
    let comma = inner
        .iter()
        .position(|&b| b == b',')
        .ok_or_else(|| ParseError::bad(what, v))?;
    Ok((
        dec_u64(what, inner[..comma].trim_ascii())?,
        dec_u64(what, inner[comma + 1..].trim_ascii())?,
    ))
}

/// Incremental fdinfo parser.
#[derive(Debug, Default)]
pub struct FdInfoParser {
    info: FdInfo,
    seen_pos: bool,
    seen_flags: bool,
}

impl FdInfoParser {
    pub fn new() -> FdInfoParser {
        FdInfoParser::default()
    }

    fn timerfd(&mut self) -> Result<&mut TimerfdInfo, ParseError> {
        self.info
            .timerfd
            .as_mut()
            .ok_or(ParseError::Unexpected("timerfd field before clockid"))
    }

    fn check_room(n: usize) -> Result<(), ParseError> {
        if n >= MAX_ENTRIES {
            return Err(ParseError::TooMany(MAX_ENTRIES));
        }
        Ok(())
    }

    /// Take one line.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        let Some((key, v)) = key_value(line) else {
            return Ok(());
        };
        match key {
            b"pos" => {
                self.info.pos = dec_i64("pos", v)?;
                self.seen_pos = true;
            }
            b"flags" => {
                self.info.flags = oct_u32("flags", v)?;
                self.seen_flags = true;
            }
            b"mnt_id" => self.info.mnt_id = Some(dec_i32("mnt_id", v)?),
            b"ino" => self.info.ino = Some(dec_u64("ino", v)?),
            b"lock" => {
                Self::check_room(self.info.locks.len())?;
                self.info.locks.push(parse_lock(v)?);
            }
            b"eventfd-count" => {
                self.info.eventfd.get_or_insert_with(Default::default).count =
                    hex_u64("eventfd-count", v)?
            }
            b"eventfd-id" => {
                self.info.eventfd.get_or_insert_with(Default::default).id =
                    Some(dec_i32("eventfd-id", v)?)
            }
            b"eventfd-semaphore" => {
                self.info
                    .eventfd
                    .get_or_insert_with(Default::default)
                    .semaphore = Some(dec_u32("eventfd-semaphore", v)? != 0)
            }
            b"tfd" => {
                Self::check_room(self.info.epoll_targets.len())?;
                let t = tagged(line);
                self.info.epoll_targets.push(EpollTarget {
                    tfd: dec_i32("tfd", get(&t, "tfd")?)?,
                    events: hex_u32("events", get(&t, "events")?)?,
                    data: hex_u64("data", get(&t, "data")?)?,
                    pos: opt(&t, "pos").map(|v| dec_i64("pos", v)).transpose()?,
                    ino: opt(&t, "ino").map(|v| hex_u64("ino", v)).transpose()?,
                    sdev: opt(&t, "sdev").map(|v| hex_u32("sdev", v)).transpose()?,
                });
            }
            b"sigmask" => self.info.signalfd_sigmask = Some(hex_u64("sigmask", v)?),
            b"Pid" => self.info.pidfd.get_or_insert_with(Default::default).pid = dec_i32("Pid", v)?,
            b"NSpid" => {
                let last = fields(v).last().ok_or(ParseError::Missing("NSpid"))?;
                self.info.pidfd.get_or_insert_with(Default::default).nspid =
                    Some(dec_i32("NSpid", last)?);
            }
            b"clockid" => {
                self.info.timerfd = Some(TimerfdInfo {
                    clockid: dec_i32("clockid", v)?,
                    ..Default::default()
                })
            }
            b"ticks" => self.timerfd()?.ticks = dec_u64("ticks", v)?,
            b"settime flags" => self.timerfd()?.settime_flags = oct_u32("settime flags", v)?,
            b"it_value" => self.timerfd()?.it_value = pair("it_value", v)?,
            b"it_interval" => self.timerfd()?.it_interval = pair("it_interval", v)?,
            b"inotify wd" => {
                Self::check_room(self.info.inotify_watches.len())?;
                let t = tagged(line);
                self.info.inotify_watches.push(InotifyWatch {
                    wd: hex_u32("wd", get(&t, "wd")?)? as i32,
                    ino: hex_u64("ino", get(&t, "ino")?)?,
                    sdev: hex_u32("sdev", get(&t, "sdev")?)?,
                    mask: hex_u32("mask", get(&t, "mask")?)?,
                    ignored_mask: hex_u32("ignored_mask", get(&t, "ignored_mask")?)?,
                    fhandle: fhandle(&t)?,
                });
            }
            b"fanotify flags" => {
                let t = tagged(line);
                self.info.fanotify = Some(FanotifyInfo {
                    flags: hex_u32("flags", get(&t, "flags")?)?,
                    event_flags: hex_u32("event-flags", get(&t, "event-flags")?)?,
                });
            }
            b"fanotify ino" | b"fanotify mnt_id" | b"fanotify sdev" => {
                Self::check_room(self.info.fanotify_marks.len())?;
                let t = tagged(line);
                let target = match key {
                    b"fanotify ino" => FanotifyTarget::Inode {
                        ino: hex_u64("ino", get(&t, "ino")?)?,
                        sdev: hex_u32("sdev", get(&t, "sdev")?)?,
                        fhandle: fhandle(&t)?,
                    },
                    b"fanotify mnt_id" => FanotifyTarget::Mount {
                        mnt_id: hex_u32("mnt_id", get(&t, "mnt_id")?)? as i32,
                    },
                    _ => FanotifyTarget::Filesystem {
                        sdev: hex_u32("sdev", get(&t, "sdev")?)?,
                        fhandle: fhandle(&t)?,
                    },
                };
                self.info.fanotify_marks.push(FanotifyMark {
                    target,
                    mflags: hex_u32("mflags", get(&t, "mflags")?)?,
                    mask: hex_u32("mask", get(&t, "mask")?)?,
                    ignored_mask: hex_u32("ignored_mask", get(&t, "ignored_mask")?)?,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// The result; `pos` and `flags` are always printed, so they must have
    /// been seen.
    pub fn finish(self) -> Result<FdInfo, ParseError> {
        if !self.seen_pos {
            return Err(ParseError::Missing("pos"));
        }
        if !self.seen_flags {
            return Err(ParseError::Missing("flags"));
        }
        Ok(self.info)
    }
}

/// Parse fdinfo text held in memory.
pub fn parse(text: &[u8]) -> Result<FdInfo, TextError> {
    let mut p = FdInfoParser::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        p.push_line(line).map_err(|e| TextError::new(i + 1, e))?;
    }
    p.finish().map_err(|e| TextError::new(0, e))
}

fn parse_stream(mut r: LineReader) -> Result<FdInfo, ProcError> {
    let mut p = FdInfoParser::new();
    while let Some(line) = r.next_line()? {
        if let Err(e) = p.push_line(line) {
            return Err(r.error(e));
        }
    }
    p.finish()
        .map_err(|e| ProcError::parse(r.path().to_owned(), 0, e))
}

impl ProcDir {
    /// Read and parse `fdinfo/FD`.
    pub fn fdinfo(&self, fd: i32) -> Result<FdInfo, ProcError> {
        parse_stream(self.lines(&format!("fdinfo/{fd}"))?)
    }
}

/// The mount id of one of our own descriptors (CRIU's `get_fd_mntid`),
/// through `/proc/self/fdinfo`.
pub fn own_fd_mnt_id(fd: std::os::fd::BorrowedFd<'_>) -> Result<Option<i32>, ProcError> {
    use std::os::fd::AsRawFd;
    let me = ProcDir::open_self()?;
    Ok(me.fdinfo(fd.as_raw_fd())?.mnt_id)
}

#[cfg(test)]
mod tests;
