//! Regular files, directories and devices opened by path (CRIU's `REG`
//! kind, `criu/files-reg.c`): a `reg_file_entry` with path, flags,
//! position, size and mode. Also the files a task's mappings, exe link,
//! cwd and root refer to, and unlinked files carried in the images
//! ([`super::ghost`]). Character devices whose state is the device's
//! (`/dev/null`, ...) reopen by path; other devices are refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::kind::FileKind;
use super::table::{FdOpts, FdView, FileTable, FilesError};
use super::{FileError, FileImages, Opener};
use crate::images::pb;

/// `O_PATH`: a descriptor that only names a file (no I/O, no owner, no
/// position).
const O_PATH: u32 = linux_raw_sys::general::O_PATH;

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
    let (major, minor) = super::tty::major_minor(meta.rdev());
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
    super::ghost::deleted_name(path)?;
    if meta.nlink() == 0 {
        return None;
    }
    let same = std::fs::symlink_metadata(path)
        .is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()));
    (!same).then_some(meta.nlink())
}

/// A `memfd_secret` area (`/secretmem (deleted)`, on the secretmem
/// filesystem), seen through `link`: its pages are unmapped from the
/// kernel's own address space and readable by no process but the task,
/// so neither the parasite's pipes nor `/proc/PID/mem` can copy them.
/// (Its mappings are refused as VMAs: `proc::vma_kind`.)
fn refuse_secretmem(
    what: impl FnOnce() -> String,
    link: &Path,
    path: &Path,
) -> Result<(), FilesError> {
    if path != Path::new("/secretmem (deleted)") {
        return Ok(());
    }
    let magic = u64::from(linux_raw_sys::general::SECRETMEM_MAGIC);
    match rustix::fs::statfs(link) {
        Ok(st) if st.f_type as u64 == magic => Err(FilesError::Secretmem { what: what() }),
        _ => Ok(()),
    }
}

/// Adds a `REG` object for `name` and returns its id.
pub fn push(
    files: &mut FileTable,
    name: &Path,
    flags: u32,
    pos: u64,
    meta: Option<&std::fs::Metadata>,
) -> u32 {
    let id = files.next_id();
    let is_reg = meta.is_some_and(|m| m.file_type().is_file());
    files.entries.push(pb::FileEntry {
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

/// A file opened read-only for its path alone (exe, mappings, cwd,
/// root); mappings of one inode share one object.
/// `link` is the magic link it is read through (`/proc/PID/cwd`, ...):
/// `path` is the task's, which may be another file from criu's root.
pub fn add_path(
    files: &mut FileTable,
    path: &Path,
    link: &Path,
    dedup: bool,
) -> Result<u32, FilesError> {
    let meta = std::fs::metadata(link).map_err(|source| FilesError::Stat {
        path: format!("{} ({})", path.display(), link.display()),
        source,
    })?;
    if dedup && let Some(id) = files.by_inode.get(&(meta.dev(), meta.ino())) {
        return Ok(*id);
    }
    let id = push(files, path, 0, 0, Some(&meta));
    if dedup {
        files.by_inode.insert((meta.dev(), meta.ino()), id);
    }
    Ok(id)
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
    if let Some(m) = meta.as_ref()
        && let Some(links) = other_links(target, m)
    {
        if let Some(id) = files.by_inode.get(&(m.dev(), m.ino())) {
            return Ok(*id);
        }
        if !opts.link_remap {
            return Err(FilesError::UnlinkedWithLinks {
                what: format!("the file behind {}", link.display()),
                path: target.display().to_string(),
                links,
            });
        }
        let name = super::ghost::deleted_name(target).expect("other_links checked it");
        let id = push(files, &name, 0, 0, Some(m));
        files.by_inode.insert((m.dev(), m.ino()), id);
        link_remap(files, id, &name, link, None, m)?;
        return Ok(id);
    }
    let Some(name) = super::ghost::deleted_name(target)
        .filter(|_| meta.as_ref().is_some_and(|m| m.nlink() == 0))
    else {
        return add_path(files, target, link, true);
    };
    let meta = meta.expect("checked above");
    if let Some(id) = files.by_inode.get(&(meta.dev(), meta.ino())) {
        return Ok(*id);
    }
    let own = open_proc(&link.display().to_string())?;
    let id = push(files, &name, 0, 0, Some(&meta));
    files.by_inode.insert((meta.dev(), meta.ino()), id);
    files
        .ghosts
        .add(id, &name, own, opts.ghost)
        .map_err(FilesError::GhostMapping)?;
    Ok(id)
}

/// `--link-remap` for file id `id`, unlinked from `name` (the task's
/// path) but with other links, reached through the magic link `link`
/// (`/proc/PID/fd/N`, `/proc/PID/map_files/...`): a hard link
/// `link_remap.ID` to it in the directory it was in (or the nearest one
/// above that still exists), a file entry for that link, and the remap
/// entry, as CRIU's `create_link_remap` makes them. The path is the
/// task's: criu reaches it below the task's root (`/proc/PID/root`),
/// which `link` names the task of.
fn link_remap(
    files: &mut FileTable,
    id: u32,
    name: &Path,
    link: &Path,
    mnt_id: Option<i32>,
    meta: &std::fs::Metadata,
) -> Result<(), FilesError> {
    // One link per file, whatever opens or maps it.
    if let Some(&lid) = files.ghosts.linked.get(&(meta.dev(), meta.ino())) {
        files.ghosts.add_linked(id, lid, None);
        return Ok(());
    }
    let task_root = link
        .as_os_str()
        .as_bytes()
        .splitn(4, |&b| b == b'/')
        .nth(2)
        .map(|pid| PathBuf::from(format!("/proc/{}/root", String::from_utf8_lossy(pid))))
        .unwrap_or_else(|| PathBuf::from("/"));
    let lid = push(files, Path::new(""), 0, 0, None);
    let mut dir = name.parent();
    let linked = loop {
        let Some(d) = dir else {
            return Err(FilesError::LinkRemap {
                path: name.display().to_string(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        };
        let in_task = d.join(format!("link_remap.{lid}"));
        let rel = in_task.strip_prefix("/").unwrap_or(&in_task);
        let tool = task_root.join(rel);
        match rustix::fs::linkat(
            rustix::fs::CWD,
            link,
            rustix::fs::CWD,
            &tool,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        ) {
            Ok(()) => break (in_task, tool),
            // Its directory is gone too: the one above, as CRIU does.
            Err(rustix::io::Errno::NOENT) => dir = d.parent(),
            Err(e) => {
                return Err(FilesError::LinkRemap {
                    path: name.display().to_string(),
                    source: e.into(),
                });
            }
        }
    };
    let (in_task, tool) = linked;
    crate::pr_info!(
        "link remap: file id {id} ({}) opened through {}",
        name.display(),
        in_task.display()
    );
    if let Some(r) = files.entries.last_mut().and_then(|e| e.reg.as_mut())
        && r.id == lid
    {
        r.name = in_task.display().to_string();
        r.mnt_id = mnt_id;
    }
    files.ghosts.linked.insert((meta.dev(), meta.ino()), lid);
    files.ghosts.add_linked(id, lid, Some(tool));
    Ok(())
}

fn open_proc(path: &str) -> Result<OwnedFd, FilesError> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
        FilesError::Stat {
            path: path.to_string(),
            source: e.into(),
        }
    })
}

/// The `REG` kind: every fd opened by path that an earlier kind of the
/// table (memfd, FIFO, terminal) did not take.
pub struct Reg;

impl FileKind for Reg {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Reg
    }

    fn claims(&self, fd: &FdView<'_>) -> bool {
        fd.path().is_some()
    }

    fn dump(&self, files: &mut FileTable, v: &FdView<'_>) -> Result<u32, FilesError> {
        let (pid, fd) = (v.ctx.pid, v.ctx.fd);
        let path = v.path().unwrap_or(Path::new(""));
        let (flags, pos) = (v.ctx.flags, v.info.pos.max(0) as u64);
        // An O_PATH fd of a device holds no state of the device: it is
        // only reopened by path, like any other O_PATH fd.
        let o_path = flags & O_PATH != 0;
        refuse_secretmem(
            || format!("fd {fd} of task {pid}"),
            Path::new(&format!("/proc/{pid}/fd/{fd}")),
            path,
        )?;
        if let Some(m) = v.meta {
            if !o_path {
                refuse_device(pid, fd, path, m)?;
            }
            if let Some(links) = other_links(path, m) {
                if !v.opts.link_remap {
                    return Err(FilesError::UnlinkedWithLinks {
                        what: format!("fd {fd} of task {pid}"),
                        path: path.display().to_string(),
                        links,
                    });
                }
                let name = super::ghost::deleted_name(path).expect("other_links checked it");
                let id = push(files, &name, flags, pos, v.meta);
                if let Some(r) = files.entries.last_mut().and_then(|e| e.reg.as_mut()) {
                    r.mnt_id = v.info.mnt_id;
                }
                let link = PathBuf::from(format!("/proc/{pid}/fd/{fd}"));
                link_remap(files, id, &name, &link, v.info.mnt_id, m)?;
                return Ok(id);
            }
        }
        if let Some(name) = super::ghost::deleted_name(path)
            && v.meta.is_some_and(|m| m.nlink() == 0)
        {
            let own = open_proc(&format!("/proc/{pid}/fd/{fd}"))?;
            let id = push(files, &name, flags, pos, v.meta);
            // Its mount too: CRIU finds where to make a ghost again by it.
            if let Some(r) = files.entries.last_mut().and_then(|e| e.reg.as_mut()) {
                r.mnt_id = v.info.mnt_id;
            }
            files
                .ghosts
                .add(id, &name, own, v.opts.ghost)
                .map_err(|source| FilesError::Ghost { pid, fd, source })?;
            return Ok(id);
        }
        let id = push(files, path, flags, pos, v.meta);
        // The mount it is on, as CRIU records it (a restore into a mount
        // namespace of the tree's own finds its mount by it).
        if let Some(r) = files.entries.last_mut().and_then(|e| e.reg.as_mut()) {
            r.mnt_id = v.info.mnt_id;
        }
        if let Some(m) = v.meta {
            files.reg_inodes.insert(id, (m.dev(), m.ino()));
        }
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &FileImages) -> Option<(pb::FownEntry, u32)> {
        e.reg.as_ref().map(|r| (r.fown, r.flags))
    }

    fn open(&self, o: &mut Opener<'_>, e: &pb::FileEntry) -> Result<OwnedFd, FileError> {
        let reg = e
            .reg
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, "a regular file"))?;
        // Ghost files are opened by the path they were created at.
        let name = match o.ghost_paths.get(&e.id) {
            Some(p) => std::borrow::Cow::Owned(p.display().to_string()),
            None => std::borrow::Cow::Borrowed(reg.name.as_str()),
        };
        let flags = OFlags::from_bits_retain(
            reg.flags & !(OFlags::CREATE.bits() | OFlags::TRUNC.bits() | OFlags::EXCL.bits()),
        );
        // An error names the image entry too (a damaged image is the
        // likelier cause than a lost file).
        let fd = open_path(&name, flags).map_err(|errno| FileError::Open {
            path: format!("{name} (file id {} of files.img)", reg.id),
            errno,
        })?;
        // An O_PATH fd has no position (lseek fails with EBADF).
        if reg.flags & O_PATH != 0 {
            return Ok(fd);
        }
        // Character devices (a terminal, the console) do not seek.
        match rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(reg.pos)) {
            Ok(_) | Err(rustix::io::Errno::SPIPE) => Ok(fd),
            Err(errno) => Err(FileError::Sys {
                call: "lseek",
                errno,
            }),
        }
    }
}

/// Opens `path` for a task (never as a controlling terminal of the tool:
/// ttys are reopened by path).
pub fn open_path(path: &str, flags: OFlags) -> Result<OwnedFd, rustix::io::Errno> {
    crate::fault::call(&format_args!("opening {path}"), rustix::io::Errno::ACCESS)?;
    rustix::fs::open(
        path,
        flags | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}

/// The regular files of the tree by id (for restore), a ghost file by the
/// path it was created at (looked up per file: the tree's table is
/// shared, never copied per task).
#[derive(Clone, Copy)]
pub struct RegFiles<'a> {
    pub reg: &'a HashMap<u32, pb::RegFileEntry>,
    pub ghosts: &'a super::ghost::Ghosts,
}

impl<'a> RegFiles<'a> {
    pub fn get(&self, id: u32) -> Option<Cow<'a, pb::RegFileEntry>> {
        let reg = self.reg.get(&id)?;
        Some(match self.ghosts.path_of(id) {
            Some(p) => Cow::Owned(pb::RegFileEntry {
                name: p.display().to_string(),
                ..reg.clone()
            }),
            None => Cow::Borrowed(reg),
        })
    }
}

/// Opens the regular file of entry `reg` for a task; an error names the
/// image entry too (a damaged image is the likelier cause than a lost
/// file).
pub fn open_entry(reg: &pb::RegFileEntry, flags: OFlags) -> Result<OwnedFd, FileError> {
    open_path(&reg.name, flags).map_err(|errno| FileError::Open {
        path: format!("{} (file id {} of files.img)", reg.name, reg.id),
        errno,
    })
}
