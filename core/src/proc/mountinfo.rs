//! `/proc/PID/mountinfo` (`show_mountinfo`):
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue
//! ```
//!
//! Paths and the source are mangled: space, tab, newline and backslash
//! become `\ooo`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use linux_raw_sys::general::{
    MS_DIRSYNC, MS_MANDLOCK, MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_RDONLY,
    MS_RELATIME, MS_STRICTATIME, MS_SYNCHRONOUS,
};

use super::error::{ParseError, ProcError, TextError};
use super::text::{LineReader, dec_i32, dec_u32, fields, unescape_octal};
use super::{MAX_ENTRIES, ProcDir};

/// A propagation tag (the optional fields before `-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// `shared:N`: member of peer group N.
    Shared(u32),
    /// `master:N`: slave of peer group N.
    Master(u32),
    /// `propagate_from:N`.
    PropagateFrom(u32),
    Unbindable,
    /// Anything a newer kernel adds, as printed.
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    pub mnt_id: i32,
    pub parent_id: i32,
    /// Device of the superblock (`st_dev` of files on it).
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within its filesystem; a ` (deleted)` or
    /// `//deleted` suffix is removed and reported in `root_deleted`.
    pub root: PathBuf,
    pub root_deleted: bool,
    pub mount_point: PathBuf,
    /// Per-mount options as printed (`rw,nosuid,relatime`).
    pub mount_options: String,
    pub propagation: Vec<Propagation>,
    /// Filesystem type, subtype included (`fuse.sshfs`).
    pub fstype: String,
    /// Mount source (`/dev/sda1`, `tmpfs`, `none`, or empty).
    pub source: Vec<u8>,
    /// Superblock options as printed.
    pub super_options: String,
}

impl MountInfo {
    /// `MS_*` flags of the per-mount options, as CRIU computes them
    /// (`parse_mnt_flags`: `MS_STRICTATIME` when neither `relatime` nor
    /// `noatime` is set). Unknown options are ignored.
    pub fn mount_flags(&self) -> u32 {
        let mut flags = 0;
        for o in self.mount_options.split(',') {
            flags |= match o {
                "ro" => MS_RDONLY,
                "nosuid" => MS_NOSUID,
                "nodev" => MS_NODEV,
                "noexec" => MS_NOEXEC,
                "noatime" => MS_NOATIME,
                "nodiratime" => MS_NODIRATIME,
                "relatime" => MS_RELATIME,
                _ => 0,
            };
        }
        if flags & (MS_RELATIME | MS_NOATIME) == 0 {
            flags |= MS_STRICTATIME;
        }
        flags
    }

    /// Superblock `MS_*` flags (`ro`, `sync`, `dirsync`, `mand`) and the
    /// remaining options joined by `,` (what CRIU keeps as `options`).
    pub fn super_flags(&self) -> (u32, String) {
        let mut flags = 0;
        let mut rest: Vec<&str> = Vec::new();
        for o in self.super_options.split(',').filter(|o| !o.is_empty()) {
            match o {
                "rw" => {}
                "ro" => flags |= MS_RDONLY,
                "sync" => flags |= MS_SYNCHRONOUS,
                "dirsync" => flags |= MS_DIRSYNC,
                "mand" => flags |= MS_MANDLOCK,
                other => rest.push(other),
            }
        }
        (flags, rest.join(","))
    }

    /// The peer group this mount shares, if any.
    pub fn shared_id(&self) -> Option<u32> {
        self.propagation.iter().find_map(|p| match p {
            Propagation::Shared(n) => Some(*n),
            _ => None,
        })
    }

    /// The peer group this mount is a slave of, if any.
    pub fn master_id(&self) -> Option<u32> {
        self.propagation.iter().find_map(|p| match p {
            Propagation::Master(n) => Some(*n),
            _ => None,
        })
    }
}

fn path(raw: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape_octal(raw)))
}

fn text(raw: &[u8]) -> String {
    String::from_utf8_lossy(&unescape_octal(raw)).into_owned()
}

/// Parse one mountinfo line.
pub fn parse_line(line: &[u8]) -> Result<MountInfo, ParseError> {
    let mut f = fields(line);
    let mut next = |what| f.next().ok_or(ParseError::Missing(what));
    let mnt_id = dec_i32("mount id", next("mount id")?)?;
    let parent_id = dec_i32("parent id", next("parent id")?)?;
    let dev = next("major:minor")?;
    let colon = dev
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| ParseError::bad("major:minor", dev))?;
    let major = dec_u32("major", &dev[..colon])?;
    let minor = dec_u32("minor", &dev[colon + 1..])?;
    let root_raw = unescape_octal(next("root")?);
    let (root, root_deleted) = match root_raw
        .strip_suffix(b" (deleted)")
        .or_else(|| root_raw.strip_suffix(b"//deleted"))
    {
        Some(r) => (r.to_vec(), true),
        None => (root_raw, false),
    };
    let mount_point = path(next("mount point")?);
    let mount_options = text(next("mount options")?);
    let mut propagation = Vec::new();
    loop {
        let tag = next("'-' separator")?;
        if tag == b"-" {
            break;
        }
        if propagation.len() >= 64 {
            return Err(ParseError::TooMany(64));
        }
        let num = |p: &[u8]| dec_u32("peer group", p);
        propagation.push(if let Some(n) = tag.strip_prefix(b"shared:") {
            Propagation::Shared(num(n)?)
        } else if let Some(n) = tag.strip_prefix(b"master:") {
            Propagation::Master(num(n)?)
        } else if let Some(n) = tag.strip_prefix(b"propagate_from:") {
            Propagation::PropagateFrom(num(n)?)
        } else if tag == b"unbindable" {
            Propagation::Unbindable
        } else {
            Propagation::Other(text(tag))
        });
    }
    let fstype = text(next("filesystem type")?);
    let a = next("source")?;
    // An empty source leaves two fields (CRIU handles the same case).
    let (source, super_options) = match f.next() {
        Some(opts) => (unescape_octal(a), text(opts)),
        None => (Vec::new(), text(a)),
    };
    Ok(MountInfo {
        mnt_id,
        parent_id,
        major,
        minor,
        root: PathBuf::from(OsString::from_vec(root)),
        root_deleted,
        mount_point,
        mount_options,
        propagation,
        fstype,
        source,
        super_options,
    })
}

/// Parse mountinfo text held in memory.
pub fn parse(text: &[u8]) -> Result<Vec<MountInfo>, TextError> {
    let mut out = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        if out.len() >= MAX_ENTRIES {
            return Err(TextError::new(i + 1, ParseError::TooMany(MAX_ENTRIES)));
        }
        out.push(parse_line(line).map_err(|e| TextError::new(i + 1, e))?);
    }
    Ok(out)
}

fn parse_stream(mut r: LineReader) -> Result<Vec<MountInfo>, ProcError> {
    let mut out = Vec::new();
    while let Some(line) = r.next_line()? {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let m = match parse_line(line) {
            Ok(m) => m,
            Err(e) => return Err(r.error(e)),
        };
        if out.len() >= MAX_ENTRIES {
            return Err(r.error(ParseError::TooMany(MAX_ENTRIES)));
        }
        out.push(m);
    }
    Ok(out)
}

impl ProcDir {
    /// The mounts of the task's mount namespace, as its root sees them.
    pub fn mountinfo(&self) -> Result<Vec<MountInfo>, ProcError> {
        parse_stream(self.lines("mountinfo")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample() {
        let m = parse_line(b"36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue").unwrap();
        assert_eq!((m.mnt_id, m.parent_id, m.major, m.minor), (36, 35, 98, 0));
        assert_eq!(m.root, PathBuf::from("/mnt1"));
        assert_eq!(m.mount_point, PathBuf::from("/mnt 2"));
        assert_eq!(
            m.propagation,
            [Propagation::Master(1), Propagation::Shared(2)]
        );
        assert_eq!((m.shared_id(), m.master_id()), (Some(2), Some(1)));
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.source, b"/dev/root");
        assert_eq!(m.mount_flags(), MS_NOATIME);
        assert_eq!(m.super_flags(), (0, "errors=continue".to_string()));

        let m =
            parse_line(b"22 27 0:21 /x//deleted /proc ro,nosuid,relatime - proc  ro,sync").unwrap();
        assert!(m.root_deleted);
        assert_eq!(m.root, PathBuf::from("/x"));
        assert_eq!(m.source, b"");
        assert_eq!(m.mount_flags(), MS_RDONLY | MS_NOSUID | MS_RELATIME);
        assert_eq!(m.super_flags(), (MS_RDONLY | MS_SYNCHRONOUS, String::new()));

        let m = parse_line(
            b"1 0 0:1 / / rw unbindable propagate_from:7 future:tag - tmpfs my\\040src rw",
        )
        .unwrap();
        assert_eq!(m.mount_flags(), MS_STRICTATIME);
        assert_eq!(m.source, b"my src");
        assert_eq!(
            m.propagation,
            [
                Propagation::Unbindable,
                Propagation::PropagateFrom(7),
                Propagation::Other("future:tag".into())
            ]
        );
    }

    #[test]
    fn bad() {
        for t in [
            &b""[..],
            b"36 35 98:0 / / rw",
            b"36 35 98:0 / / rw shared:1",
            b"36 35 98:0 / / rw shared:x - ext4 a b",
            b"36 35 980 / / rw - ext4 a b",
            b"x 35 98:0 / / rw - ext4 a b",
            b"36 35 98:0 / / rw -",
            b"36 35 98:0 / / rw - ext4",
        ] {
            assert!(parse_line(t).is_err(), "{:?}", String::from_utf8_lossy(t));
        }
        let e = parse(b"1 0 0:1 / / rw - tmpfs a rw\n\nbad\n").unwrap_err();
        assert_eq!(e.line, 3);
    }
}
