//! Files of a task for `files.img` and `fdinfo-<id>.img`: regular files,
//! directories and devices opened by path (CRIU's `REG` kind), plus the
//! files its mappings, exe link, cwd and root refer to. Pipes, FIFOs,
//! unix sockets and ptys are handed to their kinds in [`crate::files`]; other fd
//! kinds (other sockets, anon inodes) are refused for now, naming the fd.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::file_ids::Lookup;
use crate::images::pb;
use crate::proc::ProcDir;
use crate::proc::task::FdTarget;

/// `O_CLOEXEC`: per-fd, stored in `fdinfo_entry.flags` as `FD_CLOEXEC`.
const O_CLOEXEC: u32 = linux_raw_sys::general::O_CLOEXEC;
const FD_CLOEXEC: u32 = linux_raw_sys::general::FD_CLOEXEC;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{0}")]
    Proc(#[from] crate::proc::ProcError),
    #[error("fd {fd} of task {pid} is {what}, which cannot be dumped yet")]
    Unsupported { pid: i32, fd: i32, what: String },
    #[error(transparent)]
    Kind(#[from] crate::files::FileError),
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
        source: crate::files::ghost::GhostError,
    },
    #[error("a mapping: {0}")]
    GhostMapping(crate::files::ghost::GhostError),
    #[error(transparent)]
    Locks(#[from] crate::files::locks::LockError),
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
         cannot be dumped yet (CRIU's --link-remap would link it back into place)"
    )]
    UnlinkedWithLinks {
        what: String,
        path: String,
        links: u64,
    },
    #[error(
        "fd {fd} of task {pid} is {path}, a memfd of huge pages (MFD_HUGETLB), which \
         cannot be dumped yet"
    )]
    HugetlbMemfd { pid: i32, fd: i32, path: String },
}

/// Character devices a restore reopens by path with nothing lost (their
/// state is the device's, not the file's): `(major, minor)` of
/// `/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random`, `/dev/urandom`,
/// and the two terminals the tty code leaves to a reopen by path
/// (`/dev/tty`, the task's controlling terminal, which the restore gives
/// back; `/dev/console`), both tested by the zdtm_tty programs.
const PLAIN_DEVICES: [(u32, u32); 7] = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1)];

/// A device held by fd `fd` of `pid` (`meta` is its stat) that restore
/// cannot bring back. Ptys are handled before (by [`crate::files::tty`]);
/// other terminals (virtual consoles, serial lines), block devices and
/// every other character device are refused, naming the device.
fn refuse_device(
    pid: i32,
    fd: i32,
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<(), FilesError> {
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        "character"
    } else if ft.is_block_device() {
        "block"
    } else {
        return Ok(());
    };
    let (major, minor) = crate::files::tty::major_minor(meta.rdev());
    if kind == "character" && PLAIN_DEVICES.contains(&(major, minor)) {
        return Ok(());
    }
    Err(FilesError::Device {
        pid,
        fd,
        kind,
        path: path.display().to_string(),
        major,
        minor,
    })
}

/// An unlinked file (`NAME (deleted)`) that other hard links keep alive:
/// the number of those links. A file whose name really ends in
/// ` (deleted)` is itself at that path and is no such thing.
fn other_links(path: &Path, meta: &std::fs::Metadata) -> Option<u64> {
    crate::files::ghost::deleted_name(path)?;
    if meta.nlink() == 0 {
        return None;
    }
    let same = std::fs::symlink_metadata(path)
        .is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()));
    (!same).then_some(meta.nlink())
}

/// The file objects of one dump (`files.img`), with ids from 1.
#[derive(Debug, Default)]
pub struct FileTable {
    pub entries: Vec<pb::FileEntry>,
    /// Mapped files (and the exe) by (dev, inode): one object each.
    by_inode: HashMap<(u64, u64), u32>,
    /// `memfd.img`: one entry per memfd inode, `inode_id` from 1.
    pub memfd_inodes: Vec<pb::MemfdInodeEntry>,
    /// memfd file objects of mappings by shmem inode number.
    memfd_by_ino: HashMap<u64, u32>,
    /// Open memfd fds' objects (inode number, a descriptor to read them
    /// through, size), whose contents are dumped even when not mapped.
    pub memfd_objects: Vec<(u64, std::sync::Arc<std::os::fd::OwnedFd>, u64)>,
    /// Fds already given a file id, over every task of the dump: an fd
    /// sharing one of their open file descriptions (dup, inherited across
    /// fork) gets the same id (kcmp).
    seen_fds: super::file_ids::FileIds,
    /// Pipes, FIFOs, unix sockets: their state and data images.
    pub kinds: crate::files::Dumped,
    /// Unlinked files carried in the images.
    pub ghosts: crate::files::ghost::GhostTable,
    /// File locks held (`filelocks.img`).
    pub locks: crate::files::locks::LockTable,
    /// Owners of files (F_SETOWN/F_SETSIG) by file id, put into their
    /// entries by [`FileTable::finish`] (some entries are only made there).
    fowns: Vec<(u32, pb::FownEntry)>,
    /// Mapped files' objects by the (dev, inode) `map_files/` showed.
    mapped: HashMap<(u64, u64), u32>,
    /// The device of shmem files (probed once per dump).
    shmem_dev: Option<u64>,
}

/// What the options say about files (`--ghost-limit`, `--ghost-fiemap`,
/// `--file-locks`).
#[derive(Clone, Copy, Debug)]
pub struct FdOpts {
    pub ghost: crate::files::ghost::GhostOpts,
    pub file_locks: bool,
    /// `--shell-job`: a terminal from outside the dump is allowed.
    pub shell_job: bool,
}

impl Drop for FileTable {
    fn drop(&mut self) {
        crate::files::forget_stolen();
    }
}

impl FileTable {
    fn next_id(&self) -> u32 {
        self.entries.len() as u32 + 1
    }

    fn push_reg(
        &mut self,
        name: &Path,
        flags: u32,
        pos: u64,
        meta: Option<&std::fs::Metadata>,
    ) -> u32 {
        let id = self.next_id();
        let is_reg = meta.is_some_and(|m| m.file_type().is_file());
        self.entries.push(pb::FileEntry {
            r#type: pb::FdTypes::Reg as i32,
            id,
            reg: Some(pb::RegFileEntry {
                id,
                flags,
                pos,
                fown: pb::FownEntry::default(),
                name: String::from_utf8_lossy(name.as_os_str().as_bytes()).into_owned(),
                size: if is_reg { meta.map(|m| m.size()) } else { None },
                mode: meta.map(|m| m.mode()),
                ..Default::default()
            }),
            ..Default::default()
        });
        id
    }

    /// Once every task's fds are collected: resolves unix socket peers
    /// (refusing ones outside the dump unless `ext_unix_sk`).
    pub fn finish(&mut self, ext_unix_sk: bool) -> Result<(), FilesError> {
        crate::files::unix::finish(&mut self.kinds, &mut self.entries, ext_unix_sk)?;
        crate::files::tty::finish(&mut self.kinds.ttys, self.seen_fds.pids())?;
        crate::files::fown::apply(&mut self.entries, &self.fowns);
        Ok(())
    }

    /// A pipe end, FIFO or unix socket: its file id and fd type.
    fn add_kind(
        &mut self,
        ctx: &crate::files::FdCtx,
        target: &FdTarget,
        path: Option<&Path>,
        meta: Option<&std::fs::Metadata>,
    ) -> Result<(u32, pb::FdTypes), FilesError> {
        let id = self.next_id();
        let (id, entry, ty) = match (target, meta) {
            (FdTarget::Pipe(ino), _) => {
                let (id, e) = crate::files::pipe::dump(ctx, *ino, &mut self.kinds, id)?;
                (id, e, pb::FdTypes::Pipe)
            }
            (FdTarget::Socket(ino), _) => {
                let (id, e) = crate::files::unix::dump(ctx, *ino, &mut self.kinds, id)?;
                (id, e, pb::FdTypes::Unixsk)
            }
            (_, Some(m)) => {
                let reg = pb::RegFileEntry {
                    flags: ctx.flags,
                    name: String::from_utf8_lossy(
                        path.map(|p| p.as_os_str().as_bytes()).unwrap_or_default(),
                    )
                    .into_owned(),
                    mode: Some(m.mode()),
                    ..Default::default()
                };
                let [fifo, regf] =
                    crate::files::fifo::dump(ctx, m.ino(), &mut self.kinds, id, reg)?;
                self.entries.push(fifo);
                self.entries.push(regf);
                return Ok((id, pb::FdTypes::Fifo));
            }
            _ => return Err(unsupported(ctx.pid, ctx.fd, "of an unknown kind")),
        };
        if let Some(e) = entry {
            self.entries.push(e);
        }
        Ok((id, ty))
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

    /// The file object of memfd mappings of shmem inode `ino`, if any yet.
    pub fn memfd_mapping(&self, ino: u64) -> Option<u32> {
        self.memfd_by_ino.get(&ino).copied()
    }

    /// A memfd file object (`FD_TYPES MEMFD`) for mappings of shmem inode
    /// `ino` opened with `flags`; `inode` is its `memfd.img` entry (used
    /// when the inode is new), whose `inode_id` is assigned here.
    pub fn add_memfd_mapping(&mut self, ino: u64, flags: u32, inode: pb::MemfdInodeEntry) -> u32 {
        if let Some(id) = self.memfd_by_ino.get(&ino) {
            return *id;
        }
        let inode_id = self.add_memfd_inode(ino, inode);
        let id = self.push_memfd(flags, 0, inode_id);
        self.memfd_by_ino.insert(ino, id);
        id
    }

    /// The `inode_id` of shmem inode `ino`, adding its entry if new.
    fn add_memfd_inode(&mut self, ino: u64, mut inode: pb::MemfdInodeEntry) -> u32 {
        if let Some(i) = self.memfd_inodes.iter().find(|i| u64::from(i.shmid) == ino) {
            return i.inode_id as u32;
        }
        inode.inode_id = self.memfd_inodes.len() as u64 + 1;
        self.memfd_inodes.push(inode);
        self.memfd_inodes.len() as u32
    }

    fn push_memfd(&mut self, flags: u32, pos: u64, inode_id: u32) -> u32 {
        let id = self.next_id();
        self.entries.push(pb::FileEntry {
            r#type: pb::FdTypes::Memfd as i32,
            id,
            memfd: Some(pb::MemfdFileEntry {
                id,
                flags,
                pos,
                fown: pb::FownEntry::default(),
                inode_id,
            }),
            ..Default::default()
        });
        id
    }

    /// A file opened read-only for its path alone (exe, mappings, cwd,
    /// root); mappings of one inode share one object.
    pub fn add_path(&mut self, path: &Path, dedup: bool) -> Result<u32, FilesError> {
        let meta = std::fs::metadata(path).map_err(|source| FilesError::Stat {
            path: path.display().to_string(),
            source,
        })?;
        if dedup && let Some(id) = self.by_inode.get(&(meta.dev(), meta.ino())) {
            return Ok(*id);
        }
        let id = self.push_reg(path, 0, 0, Some(&meta));
        if dedup {
            self.by_inode.insert((meta.dev(), meta.ino()), id);
        }
        Ok(id)
    }
}

/// The task's fds as `fdinfo` entries, their file objects added to `files`.
/// Fds sharing one open file description (dup, inherited) share its id.
pub fn collect_fds(
    proc: &ProcDir,
    files: &mut FileTable,
    opts: FdOpts,
) -> Result<Vec<pb::FdinfoEntry>, FilesError> {
    let pid = proc.pid();
    let mut out: Vec<pb::FdinfoEntry> = Vec::new();
    let fds = proc.fds()?;
    for r in read_fds(proc, &fds)? {
        let FdRead {
            fd,
            target,
            info,
            meta,
            fown,
        } = r;
        // What a description shows alike in all its fds groups candidates;
        // kcmp tells the open files apart.
        let ino = super::file_ids::FdKey {
            ino: info.ino.unwrap_or(0),
            pos: info.pos,
            flags: info.flags & !O_CLOEXEC,
        };
        let (shared, slot) = match files.seen_fds.find(pid, fd, ino) {
            Lookup::Shared(id) => (Some(id), None),
            Lookup::New(slot) => (None, Some(slot)),
        };
        let fd_flags = if info.flags & O_CLOEXEC != 0 {
            FD_CLOEXEC
        } else {
            0
        };
        let file_flags = info.flags & !O_CLOEXEC;
        let new_file = shared.is_none();
        let (id, kind) = match target {
            FdTarget::Path(path) => {
                let (id, kind) = match shared {
                    Some(id) => (id, file_kind(files, id)),
                    None => path_fd(files, (pid, fd), &path, &info, meta, opts)?,
                };
                (id, kind)
            }
            FdTarget::AnonInode(name) => match shared {
                Some(id) => (id, file_kind(files, id)),
                None => {
                    let id = files.next_id();
                    let entry = anon_fd(pid, fd, id, file_flags, &name, &info, &fds)?;
                    let kind = entry.r#type;
                    files.entries.push(entry);
                    (id, kind)
                }
            },
            FdTarget::Pipe(_) | FdTarget::Socket(_) => match shared {
                Some(id) => (id, kind_of(&target) as i32),
                None => {
                    let ctx = crate::files::FdCtx {
                        pid,
                        fd,
                        flags: file_flags,
                    };
                    let (id, kind) = files.add_kind(&ctx, &target, None, None)?;
                    (id, kind as i32)
                }
            },
            FdTarget::Other(l) => {
                return Err(unsupported(pid, fd, &String::from_utf8_lossy(&l)));
            }
        };
        if new_file && let Some(fown) = fown? {
            files.fowns.push((id, fown));
        }
        files.locks.note(
            pid,
            fd,
            id,
            info.ino.unwrap_or(0),
            &info.locks,
            opts.file_locks,
        )?;
        files.seen_fds.insert(pid, fd, ino, id, slot);
        out.push(pb::FdinfoEntry {
            id,
            flags: fd_flags,
            r#type: kind,
            fd: fd as u32,
            ..Default::default()
        });
    }
    Ok(out)
}

/// What is read about one fd before it goes into the file table.
struct FdRead {
    fd: i32,
    target: FdTarget,
    info: crate::proc::fdinfo::FdInfo,
    /// Its file's metadata (through `/proc/PID/fd/N`), for one opened by
    /// path.
    meta: Option<std::fs::Metadata>,
    /// Its owner (`F_SETOWN`/`F_SETSIG`), if any: used when it is a new
    /// open file (its error too, only then).
    fown: Result<Option<pb::FownEntry>, FilesError>,
}

fn read_fd(proc: &ProcDir, fd: i32) -> Result<FdRead, FilesError> {
    let pid = proc.pid();
    let target = proc.fd_target(fd)?;
    let info = proc.fdinfo(fd)?;
    let ctx = crate::files::FdCtx {
        pid,
        fd,
        flags: info.flags & !O_CLOEXEC,
    };
    // One copy of the file serves its owner and its metadata (an fstat of
    // it costs less than a stat through /proc/PID/fd/N).
    let (meta, fown) = match ctx.steal("file") {
        Ok(copy) => {
            let fown = crate::files::fown::dump_from(&ctx, &copy).map_err(FilesError::from);
            let meta = match &target {
                FdTarget::Path(_) => std::fs::File::from(copy).metadata().ok(),
                _ => None,
            };
            (meta, fown)
        }
        Err(e) => (None, Err(e.into())),
    };
    Ok(FdRead {
        fd,
        target,
        info,
        meta,
        fown,
    })
}

/// Fds per thread below which one thread reads them all.
const FDS_PER_THREAD: usize = 256;

/// [`read_fd`] of every fd of `fds`, in order: a task with many fds is
/// read by several threads at once (the reads only look at /proc and at
/// copies of the fds; the file table is filled in order afterwards).
fn read_fds(proc: &ProcDir, fds: &[i32]) -> Result<Vec<FdRead>, FilesError> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Two per CPU: each waits for the kernel as much as it computes.
    let threads = fds.len().div_ceil(FDS_PER_THREAD).min(2 * cpus).max(1);
    if threads == 1 {
        return fds.iter().map(|&fd| read_fd(proc, fd)).collect();
    }
    let chunk = fds.len().div_ceil(threads);
    let parts: Vec<Result<Vec<FdRead>, FilesError>> = std::thread::scope(|s| {
        let handles: Vec<_> = fds
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|&fd| read_fd(proc, fd)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::with_capacity(fds.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// The `fd_types` value of file object `id`. Ids are given in order
/// (entry `id - 1` has id `id`), so this is a look-up, not a search.
fn file_kind(files: &FileTable, id: u32) -> i32 {
    let at = (id as usize).wrapping_sub(1);
    files
        .entries
        .get(at)
        .filter(|e| e.id == id)
        .or_else(|| files.entries.iter().find(|e| e.id == id))
        .map_or(pb::FdTypes::Reg as i32, |e| e.r#type)
}

/// A new file object for fd `fd` opened by path: a memfd, a regular
/// file, directory or device, or an unlinked file (a ghost).
fn path_fd(
    files: &mut FileTable,
    (pid, fd): (i32, i32),
    path: &Path,
    info: &crate::proc::fdinfo::FdInfo,
    meta: Option<std::fs::Metadata>,
    opts: FdOpts,
) -> Result<(u32, i32), FilesError> {
    let flags = info.flags & !O_CLOEXEC;
    let pos = info.pos.max(0) as u64;
    if path.as_os_str().as_bytes().starts_with(b"/memfd:") {
        refuse_hugetlb_memfd(pid, fd, path)?;
        let inode_id = memfd_fd(files, pid, fd, path)?;
        let id = files.push_memfd(flags, pos, inode_id);
        return Ok((id, pb::FdTypes::Memfd as i32));
    }
    let proc_path = format!("/proc/{pid}/fd/{fd}");
    if meta.as_ref().is_some_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_fifo()
    }) {
        let ctx = crate::files::FdCtx { pid, fd, flags };
        let target = FdTarget::Path(path.to_path_buf());
        let (id, kind) = files.add_kind(&ctx, &target, Some(path), meta.as_ref())?;
        return Ok((id, kind as i32));
    }
    if let Some(m) = meta.as_ref().filter(|m| crate::files::tty::is_tty(m)) {
        let ctx = crate::files::FdCtx { pid, fd, flags };
        let id = files.next_id();
        let reg = pb::RegFileEntry {
            flags,
            name: String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned(),
            mode: Some(m.mode()),
            ..Default::default()
        };
        files.kinds.ttys.shell_job = opts.shell_job;
        let entries = crate::files::tty::dump(&ctx, m, &mut files.kinds.ttys, id, reg)?;
        files.entries.extend(entries);
        return Ok((id, pb::FdTypes::Tty as i32));
    }
    if let Some(m) = &meta {
        refuse_device(pid, fd, path, m)?;
        if let Some(links) = other_links(path, m) {
            return Err(FilesError::UnlinkedWithLinks {
                what: format!("fd {fd} of task {pid}"),
                path: path.display().to_string(),
                links,
            });
        }
    }
    if let Some(name) = crate::files::ghost::deleted_name(path)
        && meta.as_ref().is_some_and(|m| m.nlink() == 0)
    {
        let own = open_proc(&proc_path)?;
        let id = files.push_reg(&name, flags, pos, meta.as_ref());
        files
            .ghosts
            .add(id, &name, own, opts.ghost)
            .map_err(|source| FilesError::Ghost { pid, fd, source })?;
        return Ok((id, pb::FdTypes::Reg as i32));
    }
    let id = files.push_reg(path, flags, pos, meta.as_ref());
    Ok((id, pb::FdTypes::Reg as i32))
}

fn open_proc(path: &str) -> Result<std::os::fd::OwnedFd, FilesError> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| FilesError::Stat {
        path: path.to_string(),
        source: e.into(),
    })
}

/// The file object of anon-inode fd `fd` (`anon_inode:NAME`) with id `id`.
fn anon_fd(
    pid: i32,
    fd: i32,
    id: u32,
    flags: u32,
    name: &str,
    info: &crate::proc::fdinfo::FdInfo,
    fds: &[i32],
) -> Result<pb::FileEntry, FilesError> {
    use crate::files::{eventfd, eventpoll, inotify, signalfd, timerfd};
    let missing = |what: &'static str| FilesError::Refused {
        pid,
        fd,
        what,
        reason: "its fdinfo lacks the fields to dump it".into(),
    };
    let refused = |what: &'static str| {
        move |reason: String| FilesError::Refused {
            pid,
            fd,
            what,
            reason,
        }
    };
    match name {
        "[eventfd]" => eventfd::dump(id, flags, info).ok_or_else(|| missing("an eventfd")),
        "[signalfd]" => signalfd::dump(id, flags, info).ok_or_else(|| missing("a signalfd")),
        "[timerfd]" => timerfd::dump(id, flags, info).ok_or_else(|| missing("a timerfd")),
        "[eventpoll]" => {
            eventpoll::dump(pid, fd, id, flags, info, fds).map_err(refused("an epoll instance"))
        }
        "inotify" => inotify::dump(id, flags, info).map_err(refused("an inotify instance")),
        other => Err(unsupported(pid, fd, &format!("anon_inode:{other}"))),
    }
}

/// A mapped file (or the exe) whose link is `target`, read through the
/// magic link `link` (`/proc/PID/map_files/...`, `/proc/PID/exe`): an
/// unlinked one becomes a ghost, anything else a path (one object per
/// inode).
pub fn add_mapped(
    files: &mut FileTable,
    link: &Path,
    target: &Path,
    opts: FdOpts,
) -> Result<u32, FilesError> {
    let meta = std::fs::metadata(link).ok();
    if let Some(links) = meta.as_ref().and_then(|m| other_links(target, m)) {
        return Err(FilesError::UnlinkedWithLinks {
            what: format!("the file behind {}", link.display()),
            path: target.display().to_string(),
            links,
        });
    }
    let Some(name) = crate::files::ghost::deleted_name(target)
        .filter(|_| meta.as_ref().is_some_and(|m| m.nlink() == 0))
    else {
        return files.add_path(target, true);
    };
    let meta = meta.expect("checked above");
    if let Some(id) = files.by_inode.get(&(meta.dev(), meta.ino())) {
        return Ok(*id);
    }
    let own = open_proc(&link.display().to_string())?;
    let id = files.push_reg(&name, 0, 0, Some(&meta));
    files.by_inode.insert((meta.dev(), meta.ino()), id);
    files
        .ghosts
        .add(id, &name, own, opts.ghost)
        .map_err(FilesError::GhostMapping)?;
    Ok(id)
}

/// A memfd of huge pages: restore would make an ordinary one (losing its
/// page size and its seals' meaning), so it is refused.
fn refuse_hugetlb_memfd(pid: i32, fd: i32, path: &Path) -> Result<(), FilesError> {
    let proc_path = format!("/proc/{pid}/fd/{fd}");
    let st = rustix::fs::statfs(proc_path.as_str()).map_err(|e| FilesError::Stat {
        path: proc_path.clone(),
        source: e.into(),
    })?;
    #[allow(clippy::useless_conversion)] // f_type's type differs between arches
    let hugetlb = i64::from(st.f_type) == i64::from(linux_raw_sys::general::HUGETLBFS_MAGIC);
    if hugetlb {
        return Err(FilesError::HugetlbMemfd {
            pid,
            fd,
            path: path.display().to_string(),
        });
    }
    Ok(())
}

/// The memfd behind fd `fd` of task `pid` (link `path`): its inode entry
/// in the table (new or known) and its object for the contents dump.
fn memfd_fd(files: &mut FileTable, pid: i32, fd: i32, path: &Path) -> Result<u32, FilesError> {
    let proc_path = format!("/proc/{pid}/fd/{fd}");
    let stat_err = |e: rustix::io::Errno| FilesError::Stat {
        path: proc_path.clone(),
        source: e.into(),
    };
    let own = rustix::fs::open(
        proc_path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(stat_err)?;
    let st = rustix::fs::fstat(&own).map_err(stat_err)?;
    let ino = st.st_ino;
    let inode = super::shmem::memfd_inode(&own, ino, path).map_err(|e| FilesError::Stat {
        path: proc_path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let inode_id = files.add_memfd_inode(ino, inode);
    if !files.memfd_objects.iter().any(|(i, _, _)| *i == ino) {
        files
            .memfd_objects
            .push((ino, std::sync::Arc::new(own), st.st_size.max(0) as u64));
    }
    Ok(inode_id)
}

fn kind_of(target: &FdTarget) -> pb::FdTypes {
    match target {
        FdTarget::Pipe(_) => pb::FdTypes::Pipe,
        _ => pb::FdTypes::Unixsk,
    }
}

fn unsupported(pid: i32, fd: i32, what: &str) -> FilesError {
    FilesError::Unsupported {
        pid,
        fd,
        what: what.to_string(),
    }
}
