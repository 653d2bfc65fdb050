//! Reading what dump needs from /proc: typed, bounded parsers for a task's
//! files, all opened relative to one `/proc/PID` directory descriptor.
//!
//! Holding the directory open pins the task it was opened for: if that task
//! exits and its PID is reused mid-dump, lookups through the old descriptor
//! fail (`ESRCH`/`ENOENT`) instead of silently reading the new process.
//!
//! Each file kind has its module (`maps`, `stat`, `status`, `fdinfo`, …) with
//! a parser over bytes (unit-testable on odd input; never panics) and an
//! `impl ProcDir` method that reads the live file. Nothing here allocates in
//! proportion to a file's size beyond the entries it returns: big files are
//! streamed through [`text::LineReader`], small ones are read with a cap.

pub mod auxv;
pub mod cgroup;
pub mod error;
pub mod fdinfo;
pub mod flock;
pub mod inet_diag;
pub mod lsm;
pub mod map_files;
pub mod maps;
pub mod mountinfo;
pub mod net_raw;
pub mod netlink_diag;
pub mod netns;
pub mod packet_diag;
pub mod sock_diag;
pub mod stat;
pub mod status;
pub mod task;
pub mod text;
pub mod timers;
pub mod unix_diag;
pub mod vm_flags;
pub mod vma_kind;
pub mod vmas;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};

pub use error::{ParseError, ProcError, TextError};
use text::LineReader;

/// Cap for files read whole (`stat`, `status`, `cgroup`, …): far above any
/// real size, small enough that a hostile or broken file cannot exhaust us.
pub const SMALL_FILE_MAX: usize = 256 * 1024;

/// Cap on the entries one parser returns (VMAs, mounts, fds, epoll targets):
/// above the kernel's own limits (`vm.max_map_count` is 65530 by default).
pub const MAX_ENTRIES: usize = 1 << 20;

/// The page size of this machine, asked from the kernel (auxv `AT_PAGESZ`),
/// never assumed: 4 KiB on x86_64 and s390x, often 64 KiB on ppc64le, 4/16/64
/// KiB on aarch64.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// An open `/proc/PID` (or `/proc/PID/task/TID`) directory.
#[derive(Debug)]
pub struct ProcDir {
    fd: OwnedFd,
    pid: i32,
    path: String,
}

impl ProcDir {
    /// Open `/proc/PID` in the `/proc` mounted at `/proc`.
    pub fn open(pid: i32) -> Result<ProcDir, ProcError> {
        let path = format!("/proc/{pid}");
        let fd = rustix::fs::open(path.as_str(), dir_flags(), Mode::empty())
            .map_err(|e| ProcError::io(path.clone(), e))?;
        Ok(ProcDir { fd, pid, path })
    }

    /// Open our own `/proc/PID` (by number, not through the `self` link, so
    /// the directory stays ours whoever reads through it).
    pub fn open_self() -> Result<ProcDir, ProcError> {
        ProcDir::open(rustix::process::getpid().as_raw_nonzero().get())
    }

    /// Open `PID` under another proc mount (e.g. one of a task's PID
    /// namespace), given an open descriptor of its root and the path to
    /// name it by in messages.
    pub fn open_in(
        proc_root: BorrowedFd<'_>,
        root_path: &str,
        pid: i32,
    ) -> Result<ProcDir, ProcError> {
        let path = format!("{root_path}/{pid}");
        let fd = rustix::fs::openat(proc_root, pid.to_string(), dir_flags(), Mode::empty())
            .map_err(|e| ProcError::io(path.clone(), e))?;
        Ok(ProcDir { fd, pid, path })
    }

    /// `task/TID` of this process, as its own directory.
    pub fn task(&self, tid: i32) -> Result<ProcDir, ProcError> {
        let rel = format!("task/{tid}");
        let path = self.path_of(&rel);
        let fd = rustix::fs::openat(&self.fd, rel.as_str(), dir_flags(), Mode::empty())
            .map_err(|e| ProcError::io(path.clone(), e))?;
        Ok(ProcDir { fd, pid: tid, path })
    }

    /// The PID (or TID) this directory was opened for, as numbered in the
    /// proc mount it came from.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The directory descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `PATH/name`, for messages.
    pub fn path_of(&self, name: &str) -> String {
        format!("{}/{name}", self.path)
    }

    /// Open `name` (relative to this directory) read-only.
    pub fn open_file(&self, name: &str) -> Result<OwnedFd, ProcError> {
        self.open_with(name, OFlags::RDONLY | OFlags::CLOEXEC)
    }

    /// Open `name` with `flags` (`O_CLOEXEC` is always added).
    pub fn open_with(&self, name: &str, flags: OFlags) -> Result<OwnedFd, ProcError> {
        rustix::fs::openat(&self.fd, name, flags | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| ProcError::io(self.path_of(name), e))
    }

    /// Read `name` whole, failing past [`SMALL_FILE_MAX`] bytes.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>, ProcError> {
        self.read_capped(name, SMALL_FILE_MAX)
    }

    /// Read `name` whole, failing past `limit` bytes.
    pub fn read_capped(&self, name: &str, limit: usize) -> Result<Vec<u8>, ProcError> {
        let fd = self.open_file(name)?;
        text::read_all(&fd, &self.path_of(name), limit)
    }

    /// A line reader over `name`.
    pub fn lines(&self, name: &str) -> Result<LineReader, ProcError> {
        let fd = self.open_file(name)?;
        Ok(LineReader::new(fd, self.path_of(name)))
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}
