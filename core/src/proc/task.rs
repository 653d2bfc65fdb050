//! Per-task odds and ends: threads, children, the `exe`/`cwd`/`root` links,
//! the fd table, namespace ids, and the one-number files (`loginuid`,
//! `oom_score_adj`, `personality`).

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use rustix::fs::{AtFlags, Dir, OFlags};
use rustix::io::Errno;

use super::error::{ParseError, ProcError, TextError};
use super::text::{dec_i32, dec_u32, dec_u64, fields, hex_u32, trim};
use super::{MAX_ENTRIES, ProcDir};

/// What an fd's `/proc/PID/fd/N` link says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdTarget {
    /// A path (a file, directory, device; ` (deleted)` kept as printed).
    Path(PathBuf),
    /// `pipe:[INO]`.
    Pipe(u64),
    /// `socket:[INO]`.
    Socket(u64),
    /// `anon_inode:NAME` (`[eventfd]`, `[eventpoll]`, `[timerfd]`,
    /// `[signalfd]`, `inotify`, `[fanotify]`, `[pidfd]`, `[io_uring]`, …),
    /// with the name as printed.
    AnonInode(String),
    /// Something else (`net:[…]` style links of nsfs, unknown kinds).
    Other(Vec<u8>),
}

impl FdTarget {
    /// Classify the text of an fd link.
    pub fn parse(link: &[u8]) -> FdTarget {
        let bracketed = |prefix: &[u8]| {
            link.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(b"]"))
                .and_then(|n| dec_u64("inode", n).ok())
        };
        if let Some(ino) = bracketed(b"pipe:[") {
            return FdTarget::Pipe(ino);
        }
        if let Some(ino) = bracketed(b"socket:[") {
            return FdTarget::Socket(ino);
        }
        if let Some(name) = link.strip_prefix(b"anon_inode:") {
            return FdTarget::AnonInode(String::from_utf8_lossy(name).into_owned());
        }
        if link.first() == Some(&b'/') {
            return FdTarget::Path(PathBuf::from(OsString::from_vec(link.to_vec())));
        }
        FdTarget::Other(link.to_vec())
    }
}

/// Inode numbers of the task's namespaces (`None`: the kernel lacks it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsIds {
    pub cgroup: Option<u64>,
    pub ipc: Option<u64>,
    pub mnt: Option<u64>,
    pub net: Option<u64>,
    pub pid: Option<u64>,
    pub pid_for_children: Option<u64>,
    pub time: Option<u64>,
    pub time_for_children: Option<u64>,
    pub user: Option<u64>,
    pub uts: Option<u64>,
}

/// `loginuid` value meaning "not set".
pub const INVALID_UID: u32 = u32::MAX;

/// Parse a list of whitespace-separated numbers (the `children` file).
pub fn parse_pid_list(text: &[u8]) -> Result<Vec<i32>, TextError> {
    let mut out = Vec::new();
    for t in fields(text) {
        if out.len() >= MAX_ENTRIES {
            return Err(TextError::new(1, ParseError::TooMany(MAX_ENTRIES)));
        }
        out.push(dec_i32("pid", t).map_err(|e| TextError::new(1, e))?);
    }
    Ok(out)
}

impl ProcDir {
    /// Numeric entries of directory `name` (`task`, `fd`), sorted.
    fn numeric_entries(&self, name: &str) -> Result<Vec<i32>, ProcError> {
        let path = self.path_of(name);
        let fd = self.open_with(name, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let dir = Dir::new(fd).map_err(|e| ProcError::io(path.clone(), e))?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| ProcError::io(path.clone(), e))?;
            let name = entry.file_name().to_bytes();
            if name.first() == Some(&b'.') {
                continue;
            }
            let n = dec_i32("entry", name).map_err(|e| ProcError::parse(path.clone(), 0, e))?;
            if out.len() >= MAX_ENTRIES {
                return Err(ProcError::parse(path, 0, ParseError::TooMany(MAX_ENTRIES)));
            }
            out.push(n);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Thread ids from `task/`, sorted (the leader is among them).
    pub fn threads(&self) -> Result<Vec<i32>, ProcError> {
        self.numeric_entries("task")
    }

    /// Children of thread `tid` from `task/TID/children` (needs
    /// CONFIG_PROC_CHILDREN). A process's children are the union over its
    /// threads.
    pub fn children(&self, tid: i32) -> Result<Vec<i32>, ProcError> {
        let name = format!("task/{tid}/children");
        let text = self.read_small(&name)?;
        parse_pid_list(&text).map_err(|e| e.in_file(self.path_of(&name)))
    }

    /// Children of the whole process: the union of every thread's
    /// `children`, sorted. Threads that exit meanwhile are skipped.
    pub fn process_children(&self) -> Result<Vec<i32>, ProcError> {
        let mut out = Vec::new();
        for tid in self.threads()? {
            match self.children(tid) {
                Ok(c) => out.extend(c),
                Err(e) if e.is_gone() => continue,
                Err(e) => return Err(e),
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Open fd numbers from `fd/`, sorted.
    pub fn fds(&self) -> Result<Vec<i32>, ProcError> {
        self.numeric_entries("fd")
    }

    /// Read a link under this directory as raw bytes.
    pub fn readlink(&self, name: &str) -> Result<Vec<u8>, ProcError> {
        rustix::fs::readlinkat(self.fd(), name, Vec::new())
            .map(|c| c.into_bytes())
            .map_err(|e| ProcError::io(self.path_of(name), e))
    }

    fn readlink_path(&self, name: &str) -> Result<PathBuf, ProcError> {
        self.readlink(name)
            .map(|b| PathBuf::from(OsString::from_vec(b)))
    }

    /// Where `fd/N` points.
    pub fn fd_target(&self, fd: i32) -> Result<FdTarget, ProcError> {
        self.readlink(&format!("fd/{fd}"))
            .map(|l| FdTarget::parse(&l))
    }

    /// The `exe` link (the executable's path as the task sees it).
    pub fn exe(&self) -> Result<PathBuf, ProcError> {
        self.readlink_path("exe")
    }

    /// The `cwd` link.
    pub fn cwd(&self) -> Result<PathBuf, ProcError> {
        self.readlink_path("cwd")
    }

    /// The `root` link.
    pub fn root(&self) -> Result<PathBuf, ProcError> {
        self.readlink_path("root")
    }

    /// Open `exe`, `cwd` or `root` itself (an `O_PATH` descriptor of the
    /// object, reached through the magic link even if its path is gone).
    pub fn open_link(&self, name: &str) -> Result<OwnedFd, ProcError> {
        self.open_with(name, OFlags::PATH)
    }

    /// Namespace inode numbers from `ns/*`.
    pub fn ns_ids(&self) -> Result<NsIds, ProcError> {
        let ino = |name: &str| -> Result<Option<u64>, ProcError> {
            let rel = format!("ns/{name}");
            match rustix::fs::statat(self.fd(), rel.as_str(), AtFlags::empty()) {
                #[allow(clippy::useless_conversion)] // st_ino's width varies by arch
                Ok(st) => Ok(Some(u64::from(st.st_ino))),
                Err(Errno::NOENT) => Ok(None),
                Err(e) => Err(ProcError::io(self.path_of(&rel), e)),
            }
        };
        Ok(NsIds {
            cgroup: ino("cgroup")?,
            ipc: ino("ipc")?,
            mnt: ino("mnt")?,
            net: ino("net")?,
            pid: ino("pid")?,
            pid_for_children: ino("pid_for_children")?,
            time: ino("time")?,
            time_for_children: ino("time_for_children")?,
            user: ino("user")?,
            uts: ino("uts")?,
        })
    }

    fn one_value<T>(
        &self,
        name: &str,
        f: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<T, ProcError> {
        let text = self.read_capped(name, 64)?;
        f(trim(&text)).map_err(|e| ProcError::parse(self.path_of(name), 1, e))
    }

    /// `loginuid` (`INVALID_UID` when unset).
    pub fn loginuid(&self) -> Result<u32, ProcError> {
        self.one_value("loginuid", |t| dec_u32("loginuid", t))
    }

    /// `oom_score_adj` (-1000..=1000).
    pub fn oom_score_adj(&self) -> Result<i32, ProcError> {
        self.one_value("oom_score_adj", |t| dec_i32("oom_score_adj", t))
    }

    /// `personality` (hex; reading it needs ptrace access to the task).
    pub fn personality(&self) -> Result<u32, ProcError> {
        self.one_value("personality", |t| hex_u32("personality", t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_targets() {
        assert_eq!(FdTarget::parse(b"pipe:[1234]"), FdTarget::Pipe(1234));
        assert_eq!(FdTarget::parse(b"socket:[99]"), FdTarget::Socket(99));
        assert_eq!(
            FdTarget::parse(b"anon_inode:[eventfd]"),
            FdTarget::AnonInode("[eventfd]".into())
        );
        assert_eq!(
            FdTarget::parse(b"/tmp/x (deleted)"),
            FdTarget::Path(PathBuf::from("/tmp/x (deleted)"))
        );
        assert_eq!(
            FdTarget::parse(b"pipe:[x]"),
            FdTarget::Other(b"pipe:[x]".to_vec())
        );
        assert_eq!(
            FdTarget::parse(b"net:[4026531833]"),
            FdTarget::Other(b"net:[4026531833]".to_vec())
        );
        assert_eq!(FdTarget::parse(b""), FdTarget::Other(Vec::new()));
    }

    #[test]
    fn pid_lists() {
        assert_eq!(parse_pid_list(b"12 34 \n").unwrap(), [12, 34]);
        assert_eq!(parse_pid_list(b"").unwrap(), Vec::<i32>::new());
        assert!(parse_pid_list(b"12 x").is_err());
        assert!(parse_pid_list(b"99999999999").is_err());
    }
}
