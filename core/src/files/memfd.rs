//! memfds (CRIU's `MEMFD` kind, `criu/memfd.c`): a `memfd_file_entry` per
//! open file (flags, position) pointing at a `memfd_inode_entry` of
//! `memfd.img` (name, size, seals, owner); the contents are the inode's,
//! dumped and restored as a shared memory object by the memory code,
//! which hands the created memfds to the [`Opener`] ([`Opener::note_memfd`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::kind::FileKind;
use super::table::{FdView, FileTable, FilesError};
use super::{FileError, FileImages, Opener};
use crate::images::pb;

const KIND: &str = "a memfd";

impl FileTable {
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
}

/// The `memfd_inode_entry` of the memfd open as `fd` (inode `shmid`),
/// whose link is `link` (`/memfd:NAME (deleted)`); its `inode_id` is left
/// for the file table to assign. An error names the call that failed.
pub fn memfd_inode(
    fd: &OwnedFd,
    shmid: u64,
    link: &Path,
) -> Result<pb::MemfdInodeEntry, (&'static str, Errno)> {
    let st = rustix::fs::fstat(fd).map_err(|e| ("fstat", e))?;
    let seals = rustix::fs::fcntl_get_seals(fd).map_err(|e| ("F_GET_SEALS", e))?;
    Ok(pb::MemfdInodeEntry {
        name: memfd_name(link.as_os_str().as_bytes()),
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size.max(0) as u64,
        shmid: shmid as u32,
        seals: seals.bits(),
        inode_id: 0,
        hugetlb_flag: None,
        mode: Some(st.st_mode),
    })
}

/// The name given to `memfd_create`, from a link `/memfd:NAME (deleted)`
/// (CRIU strips the prefix and the suffix; other links are kept whole).
pub fn memfd_name(link: &[u8]) -> String {
    let s = link.strip_suffix(b" (deleted)").unwrap_or(link);
    let s = s.strip_prefix(b"/memfd:").unwrap_or(s);
    String::from_utf8_lossy(s).into_owned()
}

/// A memfd of huge pages: restore would make an ordinary one (losing its
/// page size and its seals' meaning), so it is refused.
fn refuse_hugetlb(pid: i32, fd: i32, path: &Path) -> Result<(), FilesError> {
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
fn inode_of_fd(files: &mut FileTable, pid: i32, fd: i32, path: &Path) -> Result<u32, FilesError> {
    let proc_path = format!("/proc/{pid}/fd/{fd}");
    let stat_err = |e: Errno| FilesError::Stat {
        path: proc_path.clone(),
        source: e.into(),
    };
    let own = rustix::fs::open(
        proc_path.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(stat_err)?;
    let st = rustix::fs::fstat(&own).map_err(stat_err)?;
    let ino = st.st_ino;
    let inode = memfd_inode(&own, ino, path).map_err(|(call, e)| FilesError::Stat {
        path: format!("{proc_path} ({call})"),
        source: e.into(),
    })?;
    let inode_id = files.add_memfd_inode(ino, inode);
    if !files.memfd_objects.iter().any(|(i, _, _)| *i == ino) {
        files
            .memfd_objects
            .push((ino, std::sync::Arc::new(own), st.st_size.max(0) as u64));
    }
    Ok(inode_id)
}

/// The `MEMFD` kind: fds whose path is `/memfd:NAME`.
pub struct Memfd;

impl FileKind for Memfd {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Memfd
    }

    fn claims(&self, fd: &FdView<'_>) -> bool {
        fd.path()
            .is_some_and(|p| p.as_os_str().as_bytes().starts_with(b"/memfd:"))
    }

    fn dump(&self, files: &mut FileTable, v: &FdView<'_>) -> Result<u32, FilesError> {
        let (pid, fd) = (v.ctx.pid, v.ctx.fd);
        let path = v.path().unwrap_or(Path::new(""));
        refuse_hugetlb(pid, fd, path)?;
        let inode_id = inode_of_fd(files, pid, fd, path)?;
        Ok(files.push_memfd(v.ctx.flags, v.info.pos.max(0) as u64, inode_id))
    }

    fn owner(&self, e: &pb::FileEntry, _: &FileImages) -> Option<(pb::FownEntry, u32)> {
        e.memfd.as_ref().map(|m| (m.fown, m.flags))
    }

    /// The first read-write fd of each memfd in the tree is the created
    /// description itself, which counts as no writer of the inode (one
    /// reopened read-write through /proc does, and `execveat` of the
    /// memfd then fails with ETXTBSY, as it would have for the original
    /// only if it had such a second description); others are reopened
    /// through /proc, as CRIU does.
    fn open(&self, o: &mut Opener<'_>, e: &pb::FileEntry) -> Result<OwnedFd, FileError> {
        let m = e
            .memfd
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, KIND))?;
        let sys = |call: &'static str| move |errno| FileError::Sys { call, errno };
        let Some((shmid, created)) = o.memfds.get(&u64::from(m.inode_id)) else {
            return Err(super::restore_err(
                e.id,
                KIND,
                format!("memfd inode {} is not in memfd.img", m.inode_id),
            ));
        };
        let flags = OFlags::from_bits_retain(
            m.flags & !(OFlags::CREATE.bits() | OFlags::TRUNC.bits() | OFlags::EXCL.bits()),
        );
        let fd = if flags & OFlags::ACCMODE == OFlags::RDWR && o.memfd_claimed.insert(*shmid) {
            // Another descriptor of the same description.
            let fd = rustix::io::fcntl_dupfd_cloexec(created, 0)
                .map_err(sys("fcntl(F_DUPFD) (memfd)"))?;
            // The status flags F_SETFL sets (O_ASYNC is the owner's, see
            // files::fown); the access mode and O_LARGEFILE are the
            // created description's already.
            let settable = OFlags::APPEND | OFlags::NONBLOCK | OFlags::DIRECT | OFlags::NOATIME;
            rustix::fs::fcntl_setfl(&fd, flags & settable)
                .map_err(sys("fcntl(F_SETFL) (memfd)"))?;
            fd
        } else {
            reopen(created.as_raw_fd(), flags)?
        };
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(m.pos)).map_err(sys("lseek (memfd)"))?;
        Ok(fd)
    }
}

/// A new description of the memfd the tool holds as `created`, opened
/// through /proc with `flags` (as CRIU reopens memfds).
pub fn reopen(created: i32, flags: OFlags) -> Result<OwnedFd, FileError> {
    let path = format!("/proc/self/fd/{created}");
    rustix::fs::open(path.as_str(), flags | OFlags::CLOEXEC, Mode::empty())
        .map_err(|errno| FileError::Open { path, errno })
}

#[cfg(test)]
mod tests {
    use super::memfd_name;

    #[test]
    fn memfd_names_lose_prefix_and_deleted() {
        assert_eq!(memfd_name(b"/memfd:pattern (deleted)"), "pattern");
        assert_eq!(memfd_name(b"/memfd:a b"), "a b");
        assert_eq!(memfd_name(b"/dev/zero (deleted)"), "/dev/zero");
    }
}
