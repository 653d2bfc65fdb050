//! The file objects of one dump (`files.img`), filled fd by fd by the
//! kinds of [`super::KINDS`], and what a kind sees of one fd
//! ([`FdView`]).

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::file_ids::FileIds;
use crate::images::pb;
use crate::proc::task::FdTarget;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{0}")]
    Proc(#[from] crate::proc::ProcError),
    #[error("fd {fd} of task {pid} is {what}, which cannot be dumped yet")]
    Unsupported { pid: i32, fd: i32, what: String },
    #[error(transparent)]
    Kind(#[from] super::FileError),
    /// An inotify instance of a tree with its own mount namespace, once
    /// its watches are named there (the file id's).
    #[error("inotify instance (file id {id}) of the tree: {source}")]
    Inotify {
        id: u32,
        #[source]
        source: super::inotify::InotifyError,
    },
    #[error("fd {fd} of task {pid} is {what}: {reason}")]
    Refused {
        pid: i32,
        fd: i32,
        what: &'static str,
        reason: String,
    },
    #[error("fd {fd} of task {pid}: {source}")]
    Ghost {
        pid: i32,
        fd: i32,
        source: super::ghost::GhostError,
    },
    #[error("a mapping: {0}")]
    GhostMapping(super::ghost::GhostError),
    #[error(transparent)]
    Locks(#[from] super::locks::LockError),
    #[error("stat of {path}: {source}")]
    Stat {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "fd {fd} of task {pid} is the {kind} device {path} ({major}:{minor}), which cannot \
         be dumped yet (of devices, only /dev/null, /dev/zero, /dev/full, /dev/random, \
         /dev/urandom, /dev/tty, /dev/console and pseudo-terminals are)"
    )]
    Device {
        pid: i32,
        fd: i32,
        kind: &'static str,
        path: String,
        major: u32,
        minor: u32,
    },
    #[error(
        "{what} is {path}, an unlinked file that still has {links} other hard link(s): it \
         is dumped only with --link-remap (which links it back into its directory)"
    )]
    UnlinkedWithLinks {
        what: String,
        path: String,
        links: u64,
    },
    /// CRIU's wording.
    #[error("Can't link remap to {path}: {source}")]
    LinkRemap {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "fd {fd} of task {pid} is {path}, a memfd of huge pages (MFD_HUGETLB), which \
         cannot be dumped yet"
    )]
    HugetlbMemfd { pid: i32, fd: i32, path: String },
    #[error(
        "{what} is a memfd_secret area, which cannot be dumped: its memory is readable by \
         the task alone (not by the kernel on anyone else's behalf)"
    )]
    Secretmem { what: String },
}

/// The file objects of one dump (`files.img`), with ids from 1.
#[derive(Debug, Default)]
pub struct FileTable {
    pub entries: Vec<pb::FileEntry>,
    /// Mapped files (and the exe) by (dev, inode): one object each.
    pub(super) by_inode: HashMap<(u64, u64), u32>,
    /// `memfd.img`: one entry per memfd inode, `inode_id` from 1.
    pub memfd_inodes: Vec<pb::MemfdInodeEntry>,
    /// memfd file objects of mappings by shmem inode number.
    pub(super) memfd_by_ino: HashMap<u64, u32>,
    /// Open memfd fds' objects (inode number, a descriptor to read them
    /// through, size), whose contents are dumped even when not mapped.
    pub memfd_objects: Vec<(u64, std::sync::Arc<std::os::fd::OwnedFd>, u64)>,
    /// Fds already given a file id, over every task of the dump: an fd
    /// sharing one of their open file descriptions (dup, inherited across
    /// fork) gets the same id (kcmp).
    pub(crate) seen_fds: FileIds,
    /// Pipes, FIFOs, unix sockets: their state and data images.
    pub kinds: super::Dumped,
    /// Unlinked files carried in the images.
    pub ghosts: super::ghost::GhostTable,
    /// File locks held (`filelocks.img`).
    pub locks: super::locks::LockTable,
    /// Owners of files (F_SETOWN/F_SETSIG) by file id, put into their
    /// entries by [`FileTable::finish`] (some entries are only made there).
    pub(crate) fowns: Vec<(u32, pb::FownEntry)>,
    /// Mapped files' objects by the (dev, inode) `map_files/` showed.
    pub(super) mapped: HashMap<(u64, u64), u32>,
    /// The device of shmem files (probed once per dump).
    pub(super) shmem_dev: Option<u64>,
    /// Every PID of the dumped tree, sorted: an fd that refers to a
    /// process (a pidfd) must name one of them.
    pub tree_pids: Vec<i32>,
    /// Regular files opened by fds: the (dev, inode) behind each id, to
    /// tell whether their path leads to them in another mount namespace.
    pub reg_inodes: HashMap<u32, (u64, u64)>,
}

/// What the options say about files (`--ghost-limit`, `--ghost-fiemap`,
/// `--file-locks`).
#[derive(Clone, Copy, Debug)]
pub struct FdOpts {
    pub ghost: super::ghost::GhostOpts,
    pub file_locks: bool,
    /// `--shell-job`: a terminal from outside the dump is allowed.
    pub shell_job: bool,
    /// RPC `orphan_pts_master`: one pts whose master is outside the dump
    /// is allowed (its session must be dumped).
    pub orphan_pts_master: bool,
    /// `--ext-unix-sk`: sockets connected outside the dump are allowed.
    pub ext_unix_sk: bool,
    /// `--skip-in-flight`: connections a listener has not accepted yet
    /// are left out (with a warning) instead of refused.
    pub skip_in_flight: bool,
    /// `--tcp-established`: TCP connections are dumped.
    pub tcp_established: bool,
    /// `--tcp-close`: TCP connections are recorded to come back closed.
    pub tcp_close: bool,
    /// `--link-remap`: an unlinked file with other links is linked back
    /// as `link_remap.ID` in its directory for the restore to open.
    pub link_remap: bool,
    /// `--force-irmap`: every inotify watch is dumped with a path (or
    /// refused), not only with its inode's file handle.
    pub force_irmap: bool,
}

impl Drop for FileTable {
    fn drop(&mut self) {
        super::forget_stolen();
    }
}

impl FileTable {
    /// The id the next object added gets (ids are given in order from 1).
    pub fn next_id(&self) -> u32 {
        self.entries.len() as u32 + 1
    }

    /// The object of a mapped file `map_files/` showed as (dev, ino), if
    /// [`FileTable::note_mapped_file`] recorded one.
    pub fn mapped_file(&self, dev: u64, ino: u64) -> Option<u32> {
        self.mapped.get(&(dev, ino)).copied()
    }

    pub fn note_mapped_file(&mut self, dev: u64, ino: u64, id: u32) {
        self.mapped.insert((dev, ino), id);
    }

    /// The device shmem (and memfd) files live on, probed once.
    pub fn shmem_dev(&mut self) -> Result<u64, rustix::io::Errno> {
        if let Some(d) = self.shmem_dev {
            return Ok(d);
        }
        let d = crate::proc::vma_kind::probe_shmem_dev()?;
        self.shmem_dev = Some(d);
        Ok(d)
    }

    /// The `fd_types` value of file object `id`. Ids are given in order
    /// (entry `id - 1` has id `id`), so this is a look-up, not a search.
    pub fn file_kind(&self, id: u32) -> i32 {
        let at = (id as usize).wrapping_sub(1);
        self.entries
            .get(at)
            .filter(|e| e.id == id)
            .or_else(|| self.entries.iter().find(|e| e.id == id))
            .map_or(pb::FdTypes::Reg as i32, |e| e.r#type)
    }
}

/// What dump knows about one fd when it hands it to a kind.
pub struct FdView<'a> {
    /// Task, fd number and status flags (`O_*` without `O_CLOEXEC`).
    pub ctx: super::FdCtx,
    /// What `/proc/PID/fd/N` points to.
    pub target: &'a FdTarget,
    pub info: &'a crate::proc::fdinfo::FdInfo,
    /// Its file's metadata, for one opened by path.
    pub meta: Option<&'a std::fs::Metadata>,
    /// A socket's address family (`SO_DOMAIN`), for a socket.
    pub family: Option<u16>,
    /// Every fd number of the task (an epoll's targets are among them).
    pub task_fds: &'a [i32],
    pub opts: FdOpts,
}

impl FdView<'_> {
    /// The path of an fd opened by path.
    pub fn path(&self) -> Option<&Path> {
        match self.target {
            FdTarget::Path(p) => Some(p),
            _ => None,
        }
    }

    /// The name of an `anon_inode:NAME` fd.
    pub fn anon_name(&self) -> Option<&str> {
        match self.target {
            FdTarget::AnonInode(n) => Some(n),
            _ => None,
        }
    }

    /// The refusal of an fd no kind claims, naming what it is.
    pub fn unsupported(&self) -> FilesError {
        let (pid, fd) = (self.ctx.pid, self.ctx.fd);
        match self.target {
            FdTarget::Socket(_) => FilesError::Unsupported {
                pid,
                fd,
                what: super::sockets::describe(&self.ctx, self.family),
            },
            FdTarget::AnonInode(name) => FilesError::Unsupported {
                pid,
                fd,
                what: format!("anon_inode:{name}"),
            },
            FdTarget::Other(l) => FilesError::Unsupported {
                pid,
                fd,
                what: String::from_utf8_lossy(l).into_owned(),
            },
            FdTarget::Path(p) => FilesError::Unsupported {
                pid,
                fd,
                what: format!("{} (of an unknown kind)", p.display()),
            },
            FdTarget::Pipe(_) => FilesError::Unsupported {
                pid,
                fd,
                what: "a pipe of an unknown kind".into(),
            },
        }
    }

    /// The path's bytes as the image keeps them (lossy UTF-8).
    pub fn path_string(&self) -> String {
        String::from_utf8_lossy(
            self.path()
                .map(|p| p.as_os_str().as_bytes())
                .unwrap_or_default(),
        )
        .into_owned()
    }

    /// The file's mode, for one opened by path.
    pub fn mode(&self) -> Option<u32> {
        self.meta.map(|m| m.mode())
    }
}

impl FdView<'_> {
    /// The refusal of an fd of kind `what` (`an eventfd`) for `reason`.
    pub fn refused(&self, what: &'static str, reason: impl Into<String>) -> FilesError {
        FilesError::Refused {
            pid: self.ctx.pid,
            fd: self.ctx.fd,
            what,
            reason: reason.into(),
        }
    }

    /// The refusal of an anon-inode fd whose fdinfo lacks what its kind
    /// needs.
    pub fn fdinfo_lacks(&self, what: &'static str) -> FilesError {
        self.refused(what, "its fdinfo lacks the fields to dump it")
    }
}
