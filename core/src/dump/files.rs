//! Files of a task for `files.img` and `fdinfo-<id>.img`: regular files,
//! directories and devices opened by path (CRIU's `REG` kind), plus the
//! files its mappings, exe link, cwd and root refer to. Pipes, FIFOs and
//! unix sockets are handed to their kinds in [`crate::files`]; other fd
//! kinds (other sockets, anon inodes) are refused for now, naming the fd.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::process::Pid;

use crate::images::pb;
use crate::proc::ProcDir;
use crate::proc::task::FdTarget;
use crate::sys::kcmp::{KcmpOrder, KcmpType, kcmp};

/// `O_CLOEXEC`: per-fd, stored in `fdinfo_entry.flags` as `FD_CLOEXEC`.
const O_CLOEXEC: u32 = 0o2_000_000;
const FD_CLOEXEC: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{0}")]
    Proc(#[from] crate::proc::ProcError),
    #[error("fd {fd} of task {pid} is {what}, which cannot be dumped yet")]
    Unsupported { pid: i32, fd: i32, what: String },
    #[error(transparent)]
    Kind(#[from] crate::files::FileError),
    #[error("stat of {path}: {source}")]
    Stat {
        path: String,
        source: std::io::Error,
    },
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
    /// Fds already given a file id, over every task of the dump: (pid,
    /// fd, id). An fd of another task sharing one of their open file
    /// descriptions (inherited across fork) gets the same id (kcmp).
    seen_fds: Vec<(i32, i32, u32)>,
    /// Pipes, FIFOs, unix sockets: their state and data images.
    pub kinds: crate::files::Dumped,
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
) -> Result<Vec<pb::FdinfoEntry>, FilesError> {
    let pid = proc.pid();
    let mut out: Vec<pb::FdinfoEntry> = Vec::new();
    let task = Pid::from_raw(pid);
    for fd in proc.fds()? {
        let target = proc.fd_target(fd)?;
        if matches!(target, FdTarget::Pipe(_) | FdTarget::Socket(_)) {
            let info = proc.fdinfo(fd)?;
            let id = match find_shared(task, &files.seen_fds, fd) {
                Some(id) => (id, kind_of(&target)),
                None => {
                    let ctx = crate::files::FdCtx {
                        pid,
                        fd,
                        flags: info.flags & !O_CLOEXEC,
                    };
                    files.add_kind(&ctx, &target, None, None)?
                }
            };
            files.seen_fds.push((pid, fd, id.0));
            out.push(fdinfo(fd, id.0, id.1, info.flags));
            continue;
        }
        let path = match target {
            FdTarget::Path(p) => p,
            FdTarget::Pipe(_) | FdTarget::Socket(_) => continue,
            FdTarget::AnonInode(name) => {
                return Err(unsupported(pid, fd, &format!("anon_inode:{name}")));
            }
            FdTarget::Other(l) => {
                return Err(unsupported(pid, fd, &String::from_utf8_lossy(&l)));
            }
        };
        let info = proc.fdinfo(fd)?;
        let is_memfd = path.as_os_str().as_bytes().starts_with(b"/memfd:");
        let shared = find_shared(task, &files.seen_fds, fd);
        if is_memfd {
            let id = match shared {
                Some(id) => id,
                None => {
                    let inode_id = memfd_fd(files, pid, fd, &path)?;
                    files.push_memfd(info.flags & !O_CLOEXEC, info.pos.max(0) as u64, inode_id)
                }
            };
            files.seen_fds.push((pid, fd, id));
            out.push(pb::FdinfoEntry {
                id,
                flags: if info.flags & O_CLOEXEC != 0 {
                    FD_CLOEXEC
                } else {
                    0
                },
                r#type: pb::FdTypes::Memfd as i32,
                fd: fd as u32,
                ..Default::default()
            });
            continue;
        }
        if path.as_os_str().as_bytes().ends_with(b" (deleted)") {
            return Err(unsupported(pid, fd, "an unlinked file"));
        }
        let meta = std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).ok();
        if meta.as_ref().is_some_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        }) {
            let id = match shared {
                Some(id) => id,
                None => {
                    let ctx = crate::files::FdCtx {
                        pid,
                        fd,
                        flags: info.flags & !O_CLOEXEC,
                    };
                    files
                        .add_kind(
                            &ctx,
                            &FdTarget::Path(path.clone()),
                            Some(&path),
                            meta.as_ref(),
                        )?
                        .0
                }
            };
            files.seen_fds.push((pid, fd, id));
            out.push(fdinfo(fd, id, pb::FdTypes::Fifo, info.flags));
            continue;
        }
        let id = match shared {
            Some(id) => id,
            None => files.push_reg(
                &path,
                info.flags & !O_CLOEXEC,
                info.pos.max(0) as u64,
                meta.as_ref(),
            ),
        };
        files.seen_fds.push((pid, fd, id));
        out.push(pb::FdinfoEntry {
            id,
            flags: if info.flags & O_CLOEXEC != 0 {
                FD_CLOEXEC
            } else {
                0
            },
            r#type: pb::FdTypes::Reg as i32,
            fd: fd as u32,
            ..Default::default()
        });
    }
    Ok(out)
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

/// An earlier fd of the task with the same open file, if any: its id.
fn find_shared(task: Option<Pid>, seen: &[(i32, i32, u32)], fd: i32) -> Option<u32> {
    let t = task?;
    seen.iter()
        .find(|(opid, ofd, _)| {
            Pid::from_raw(*opid).is_some_and(|o| {
                matches!(
                    kcmp(t, o, KcmpType::File, fd as u32, *ofd as u32),
                    Ok(KcmpOrder::Equal)
                )
            })
        })
        .map(|&(_, _, id)| id)
}

fn kind_of(target: &FdTarget) -> pb::FdTypes {
    match target {
        FdTarget::Pipe(_) => pb::FdTypes::Pipe,
        _ => pb::FdTypes::Unixsk,
    }
}

fn fdinfo(fd: i32, id: u32, ty: pb::FdTypes, flags: u32) -> pb::FdinfoEntry {
    pb::FdinfoEntry {
        id,
        flags: if flags & O_CLOEXEC != 0 {
            FD_CLOEXEC
        } else {
            0
        },
        r#type: ty as i32,
        fd: fd as u32,
        ..Default::default()
    }
}

fn unsupported(pid: i32, fd: i32, what: &str) -> FilesError {
    FilesError::Unsupported {
        pid,
        fd,
        what: what.to_string(),
    }
}
