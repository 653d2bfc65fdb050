//! `/proc/PID/map_files/START-END`: the file behind a VMA, opened through
//! the task rather than by path, so unlinked and unreachable files, memfds
//! and shared anonymous memory are reached exactly.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;

use linux_raw_sys::general::{O_RDONLY, O_RDWR, O_WRONLY, S_IFMT, S_IFSOCK};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::ProcDir;
use super::error::ProcError;
use super::maps::{Vma, VmaName};

/// Identity of a mapped file, from `fstat` of the opened link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// `st_dev` (userspace `dev_t` encoding).
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub rdev: u64,
    pub nlink: u64,
    pub size: i64,
}

impl FileId {
    // `struct stat` field widths differ between arches; widen them all.
    #[allow(clippy::useless_conversion)]
    fn from_stat(st: &rustix::fs::Stat) -> FileId {
        FileId {
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            mode: u32::from(st.st_mode),
            rdev: u64::from(st.st_rdev),
            nlink: u64::from(st.st_nlink),
            size: i64::from(st.st_size),
        }
    }
}

/// What `map_files/` says about one VMA.
#[derive(Clone, Debug)]
pub enum MapFile {
    /// No link: the VMA maps no file (anonymous private memory, `[heap]`,
    /// `[stack]`, `[vdso]`, …).
    NoFile,
    /// The mapped file. The descriptor is `O_PATH`, or `O_RDONLY` for files
    /// on devices with major 0 (so special files can say `ENXIO`); it is
    /// shared (`Arc`) with neighbouring VMAs of the same file, as CRIU
    /// "borrows" it, to keep the number of open descriptors down.
    File { fd: Arc<OwnedFd>, id: FileId },
    /// A socket mapping (packet sockets' rings); `ino` is the socket inode.
    Socket { ino: u64 },
    /// An AIO ring (`/[aio]`).
    AioRing,
    /// A `memfd_secret` area: no process but the task can read it.
    Secretmem,
}

/// The open `map_files/` directory of a task.
#[derive(Debug)]
pub struct MapFilesDir {
    fd: OwnedFd,
    path: String,
}

impl ProcDir {
    /// Open `map_files/` (root, or `CAP_CHECKPOINT_RESTORE`, is needed to
    /// open its entries).
    pub fn map_files(&self) -> Result<MapFilesDir, ProcError> {
        let fd = self.open_with("map_files", OFlags::RDONLY | OFlags::DIRECTORY)?;
        Ok(MapFilesDir {
            fd,
            path: self.path_of("map_files"),
        })
    }
}

impl MapFilesDir {
    fn entry_path(&self, vma: &Vma) -> String {
        format!("{}/{}", self.path, vma.map_files_name())
    }

    /// Open the file behind `vma`.
    pub fn open(&self, vma: &Vma) -> Result<MapFile, ProcError> {
        let name = vma.map_files_name();
        let flags = if vma.dev_major == 0 {
            OFlags::RDONLY
        } else {
            OFlags::PATH
        };
        match rustix::fs::openat(
            &self.fd,
            name.as_str(),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                let st =
                    rustix::fs::fstat(&fd).map_err(|e| ProcError::io(self.entry_path(vma), e))?;
                Ok(MapFile::File {
                    id: FileId::from_stat(&st),
                    fd: Arc::new(fd),
                })
            }
            Err(Errno::NOENT) => Ok(MapFile::NoFile),
            Err(Errno::NXIO) => {
                // Sockets and AIO rings cannot be opened; stat says which.
                let st = rustix::fs::statat(&self.fd, name.as_str(), AtFlags::empty())
                    .map_err(|e| ProcError::io(self.entry_path(vma), e))?;
                if st.st_mode & S_IFMT == S_IFSOCK {
                    return Ok(MapFile::Socket { ino: st.st_ino });
                }
                let aio = matches!(&vma.name, VmaName::File { path, .. }
                    if path.as_os_str().as_encoded_bytes().starts_with(b"/[aio]"));
                if st.st_mode & S_IFMT == 0 && aio {
                    return Ok(MapFile::AioRing);
                }
                // statfs does not open the file, so it works where open
                // did not.
                let secretmem = u64::from(linux_raw_sys::general::SECRETMEM_MAGIC);
                if rustix::fs::statfs(self.entry_path(vma).as_str())
                    .is_ok_and(|fs| fs.f_type as u64 == secretmem)
                {
                    return Ok(MapFile::Secretmem);
                }
                Err(ProcError::io(self.entry_path(vma), Errno::NXIO))
            }
            Err(e) => Err(ProcError::io(self.entry_path(vma), e)),
        }
    }

    /// The access mode the task's mapping holds the file with, from the
    /// link's permission bits (`O_RDONLY`, `O_WRONLY` or `O_RDWR`), as CRIU
    /// stores in `vma_entry.fdflags`; `None` when there is no link.
    pub fn fdflags(&self, vma: &Vma) -> Result<Option<u32>, ProcError> {
        let name = vma.map_files_name();
        match rustix::fs::statat(&self.fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(match st.st_mode & 0o600 {
                0o200 => O_WRONLY,
                0o600 => O_RDWR,
                _ => O_RDONLY,
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(ProcError::io(self.entry_path(vma), e)),
        }
    }

    /// Where the link points (the path as the task's mount namespace sees
    /// it, ` (deleted)` included when unlinked).
    pub fn readlink(&self, vma: &Vma) -> Result<PathBuf, ProcError> {
        let name = vma.map_files_name();
        rustix::fs::readlinkat(&self.fd, name.as_str(), Vec::new())
            .map(|c| PathBuf::from(OsString::from_vec(c.into_bytes())))
            .map_err(|e| ProcError::io(self.entry_path(vma), e))
    }
}
