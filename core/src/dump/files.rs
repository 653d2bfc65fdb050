//! Files of a task for `files.img` and `fdinfo-<id>.img`: regular files,
//! directories and devices opened by path (CRIU's `REG` kind), plus the
//! files its mappings, exe link, cwd and root refer to. Other fd kinds
//! (pipes, sockets, anon inodes) are refused for now, naming the fd.

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

    /// The file object of memfd mappings of shmem inode `ino`, if any yet.
    pub fn memfd_mapping(&self, ino: u64) -> Option<u32> {
        self.memfd_by_ino.get(&ino).copied()
    }

    /// A memfd file object (`FD_TYPES MEMFD`) for mappings of shmem inode
    /// `ino` opened with `flags`; `inode` is its `memfd.img` entry, whose
    /// `inode_id` is assigned here.
    pub fn add_memfd_mapping(
        &mut self,
        ino: u64,
        flags: u32,
        mut inode: pb::MemfdInodeEntry,
    ) -> u32 {
        if let Some(id) = self.memfd_by_ino.get(&ino) {
            return *id;
        }
        let inode_id = self.memfd_inodes.len() as u64 + 1;
        inode.inode_id = inode_id;
        self.memfd_inodes.push(inode);
        let id = self.next_id();
        self.entries.push(pb::FileEntry {
            r#type: pb::FdTypes::Memfd as i32,
            id,
            memfd: Some(pb::MemfdFileEntry {
                id,
                flags,
                pos: 0,
                fown: pb::FownEntry::default(),
                inode_id: inode_id as u32,
            }),
            ..Default::default()
        });
        self.memfd_by_ino.insert(ino, id);
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
    let mut seen: Vec<(i32, u32)> = Vec::new();
    let task = Pid::from_raw(pid);
    for fd in proc.fds()? {
        let path = match proc.fd_target(fd)? {
            FdTarget::Path(p) => p,
            FdTarget::Pipe(_) => return Err(unsupported(pid, fd, "a pipe")),
            FdTarget::Socket(_) => return Err(unsupported(pid, fd, "a socket")),
            FdTarget::AnonInode(name) => {
                return Err(unsupported(pid, fd, &format!("anon_inode:{name}")));
            }
            FdTarget::Other(l) => {
                return Err(unsupported(pid, fd, &String::from_utf8_lossy(&l)));
            }
        };
        if path.as_os_str().as_bytes().starts_with(b"/memfd:") {
            // The mappings of a memfd are dumped, an open memfd fd not yet.
            return Err(unsupported(pid, fd, "an open memfd"));
        }
        if path.as_os_str().as_bytes().ends_with(b" (deleted)") {
            return Err(unsupported(pid, fd, "an unlinked file"));
        }
        let meta = std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).ok();
        if meta.as_ref().is_some_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        }) {
            return Err(unsupported(pid, fd, "a FIFO"));
        }
        let info = proc.fdinfo(fd)?;
        let shared = task.and_then(|t| {
            seen.iter().find(|(other, _)| {
                matches!(
                    kcmp(t, t, KcmpType::File, fd as u32, *other as u32),
                    Ok(KcmpOrder::Equal)
                )
            })
        });
        let id = match shared {
            Some((_, id)) => *id,
            None => files.push_reg(
                &path,
                info.flags & !O_CLOEXEC,
                info.pos.max(0) as u64,
                meta.as_ref(),
            ),
        };
        seen.push((fd, id));
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

fn unsupported(pid: i32, fd: i32, what: &str) -> FilesError {
    FilesError::Unsupported {
        pid,
        fd,
        what: what.to_string(),
    }
}
