//! Dump: walk a tmpfs from its root directory fd and write what GNU tar
//! `--create --one-file-system --sparse --numeric-owner` writes (see the
//! module doc of [`super`]). Everything is reached with `*at` calls from
//! the directory fds of the walk, never following a symlink.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

use flate2::Compression;
use flate2::write::GzEncoder;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, SeekFrom, Statx, StatxAttributes, StatxFlags};
use rustix::io::Errno;
use tar::{EntryType, GnuExtSparseHeader, Header};

use super::write::{BLOCK, TarWriter, pax_record};
use super::{TmpfsError, TmpfsStats, show, xattr_wanted};

/// Largest list of extended attribute names and largest value the kernel
/// hands out (`XATTR_LIST_MAX`, `XATTR_SIZE_MAX`).
const XATTR_MAX: usize = 64 << 10;
/// File data is copied through a buffer of this size.
const COPY_BUF: usize = 256 << 10;

/// Write the contents of the tmpfs whose root directory is `dir` to `out`
/// as CRIU's `tmpfs-dev-N.tar.gz.img` holds them: a gzip-compressed GNU tar
/// archive that `tar --extract --gzip` (CRIU's restore) and [`super::restore`]
/// both extract. Mounts below the root are not entered; sockets are left
/// out. A file that changes while it is read fails the dump, as GNU tar's
/// "file changed as we read it" fails CRIU's.
pub fn dump<W: Write>(dir: BorrowedFd<'_>, out: &mut W) -> Result<TmpfsStats, TmpfsError> {
    let root = rustix::fs::openat(
        dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys(b"./", "opening the root directory"))?;
    let st = statx_at(root.as_fd(), c"", AtFlags::EMPTY_PATH).map_err(sys(b"./", "statx"))?;
    let mut d = Dumper {
        w: TarWriter::new(GzEncoder::new(out, Compression::default())),
        stats: TmpfsStats::default(),
        links: HashMap::new(),
        dev: (st.stx_dev_major, st.stx_dev_minor),
        mnt_id: StatxFlags::from_bits_retain(st.stx_mask)
            .contains(StatxFlags::MNT_ID)
            .then_some(st.stx_mnt_id),
        buf: vec![0u8; COPY_BUF],
        xbuf: vec![0u8; XATTR_MAX],
        vbuf: vec![0u8; XATTR_MAX],
    };
    d.directory(b"./", &st, root.as_fd())?;
    let mut stack = vec![Level::new(root, b"./".to_vec())?];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.next() else {
            stack.pop();
            continue;
        };
        if let Some(level) = d.one(top.fd.as_fd(), &top.path, &name)? {
            stack.push(level);
        }
    }
    for seen in d.links.values() {
        if seen.found < seen.nlink {
            d.stats.missing_links += 1;
            crate::pr_warn!(
                "tmpfs dump: missing links to {} ({} of {} names are in the tree)",
                show(&seen.path),
                seen.found,
                seen.nlink
            );
        }
    }
    let gz = d.w.finish().map_err(write_err)?;
    gz.finish().map_err(write_err)?;
    Ok(d.stats)
}

/// A directory being walked: its fd, its name in the archive (ending in
/// `/`) and the names in it not archived yet.
struct Level {
    fd: OwnedFd,
    path: Vec<u8>,
    names: std::vec::IntoIter<CString>,
}

impl Level {
    /// Read the names of directory `fd` (in `readdir` order, as GNU tar
    /// archives them) and close the listing.
    fn new(fd: OwnedFd, path: Vec<u8>) -> Result<Level, TmpfsError> {
        let mut names = Vec::new();
        let list = rustix::fs::Dir::read_from(&fd).map_err(sys(&path, "opening the listing"))?;
        for e in list {
            let e = e.map_err(sys(&path, "reading the listing"))?;
            let n = e.file_name();
            if n != c"." && n != c".." {
                names.push(n.to_owned());
            }
        }
        Ok(Level {
            fd,
            path,
            names: names.into_iter(),
        })
    }
}

/// An inode with more than one name, met at `path` first.
struct Seen {
    path: Vec<u8>,
    nlink: u64,
    found: u64,
}

struct Dumper<W: Write> {
    w: TarWriter<W>,
    stats: TmpfsStats,
    /// Inodes with several names, by (device, inode).
    links: HashMap<(u64, u64), Seen>,
    /// The root's device and mount id: what is not on them is another mount.
    dev: (u32, u32),
    mnt_id: Option<u64>,
    buf: Vec<u8>,
    xbuf: Vec<u8>,
    vbuf: Vec<u8>,
}

fn sys<'a>(path: &'a [u8], what: &'static str) -> impl FnOnce(Errno) -> TmpfsError + 'a {
    move |source| TmpfsError::Dump {
        path: show(path),
        what,
        source,
    }
}

fn write_err(source: std::io::Error) -> TmpfsError {
    TmpfsError::Write { source }
}

fn statx_at(dir: BorrowedFd<'_>, name: &CStr, flags: AtFlags) -> Result<Statx, Errno> {
    rustix::fs::statx(
        dir,
        name,
        flags | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    )
}

/// A GNU header with the fields every entry has, from `st`.
fn header(st: &Statx, kind: EntryType, path: &[u8]) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(u32::from(st.stx_mode) & 0o7777);
    h.set_uid(u64::from(st.stx_uid));
    h.set_gid(u64::from(st.stx_gid));
    let mtime = st.stx_mtime.tv_sec;
    if mtime < 0 {
        crate::pr_warn!(
            "tmpfs dump: {}: modification time {mtime} before 1970 archived as 0",
            show(path)
        );
    }
    h.set_mtime(mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// Where extended attributes are read from: an open file or directory, or
/// (for symlinks and special files, which are not opened) a path through
/// the parent directory's fd that does not follow the last component.
enum XattrOf<'a> {
    Fd(BorrowedFd<'a>),
    Path(CString),
}

fn proc_path(parent: BorrowedFd<'_>, name: &CStr) -> CString {
    let mut p = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    CString::new(p).unwrap_or_default()
}

impl<W: Write> Dumper<W> {
    /// Whether `st` (of a name below the root) is on another mount: on
    /// another device (GNU tar's --one-file-system test), or the root of a
    /// mount (a bind mount of the same tmpfs), by its mount id or by
    /// `STATX_ATTR_MOUNT_ROOT` (qemu-user passes the attributes on but not
    /// the mount id).
    fn other_mount(&self, st: &Statx) -> bool {
        let has_mnt_id = StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::MNT_ID);
        (st.stx_dev_major, st.stx_dev_minor) != self.dev
            || (has_mnt_id && self.mnt_id.is_some_and(|m| m != st.stx_mnt_id))
            || mount_root(st)
    }

    /// Archive `name` of directory `parent` (archive name `dir` + `name`);
    /// a directory to walk next, if it is one.
    fn one(
        &mut self,
        parent: BorrowedFd<'_>,
        dir: &[u8],
        name: &CStr,
    ) -> Result<Option<Level>, TmpfsError> {
        let mut path = dir.to_vec();
        path.extend_from_slice(name.to_bytes());
        let st = match statx_at(parent, name, AtFlags::empty()) {
            Ok(st) => st,
            Err(Errno::NOENT) => {
                return Err(TmpfsError::Changed {
                    path: show(&path),
                    what: "removed while the tree was being dumped".into(),
                });
            }
            Err(e) => return Err(sys(&path, "statx")(e)),
        };
        let other = self.other_mount(&st);
        let ftype = FileType::from_raw_mode(st.stx_mode.into());
        if ftype == FileType::Directory {
            let fd = rustix::fs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys(&path, "opening the directory"))?;
            self.same_inode(&fd, &st, &path)?;
            path.push(b'/');
            if other {
                // GNU tar --one-file-system archives the mount point and
                // does not enter it.
                self.stats.other_mounts += 1;
                crate::pr_info!("tmpfs dump: {}: another mount, not entered", show(&path));
                self.directory(&path, &st, fd.as_fd())?;
                return Ok(None);
            }
            self.directory(&path, &st, fd.as_fd())?;
            return Ok(Some(Level::new(fd, path)?));
        }
        if ftype == FileType::Socket {
            self.stats.sockets_skipped += 1;
            crate::pr_warn!("tmpfs dump: {}: socket ignored", show(&path));
            return Ok(None);
        }
        if other {
            // A file bind-mounted here from elsewhere: its mount point, as
            // an empty entry of its kind.
            self.stats.other_mounts += 1;
            crate::pr_info!("tmpfs dump: {}: another mount, archived empty", show(&path));
            return self.node(parent, name, &path, &st, false).map(|()| None);
        }
        if st.stx_nlink > 1 {
            let key = (
                rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
                st.stx_ino,
            );
            if let Some(seen) = self.links.get_mut(&key) {
                seen.found += 1;
                let mut h = header(&st, EntryType::Link, &path);
                let target = seen.path.clone();
                self.w
                    .header(&mut h, &path, Some(&target), &[])
                    .map_err(write_err)?;
                self.stats.hard_links += 1;
                return Ok(None);
            }
            self.links.insert(
                key,
                Seen {
                    path: path.clone(),
                    nlink: u64::from(st.stx_nlink),
                    found: 1,
                },
            );
        }
        self.node(parent, name, &path, &st, true).map(|()| None)
    }

    /// Check that `fd` (just opened) is the inode `st` described.
    fn same_inode(&self, fd: &OwnedFd, st: &Statx, path: &[u8]) -> Result<Statx, TmpfsError> {
        let now = statx_at(fd.as_fd(), c"", AtFlags::EMPTY_PATH).map_err(sys(path, "statx"))?;
        if now.stx_ino != st.stx_ino
            || (now.stx_dev_major, now.stx_dev_minor) != (st.stx_dev_major, st.stx_dev_minor)
        {
            return Err(TmpfsError::Changed {
                path: show(path),
                what: "replaced while the tree was being dumped".into(),
            });
        }
        Ok(now)
    }

    /// A directory's own entry (`path` ends in `/`).
    fn directory(&mut self, path: &[u8], st: &Statx, fd: BorrowedFd<'_>) -> Result<(), TmpfsError> {
        let pax = self.xattrs(XattrOf::Fd(fd), path)?;
        self.w
            .header(
                &mut header(st, EntryType::Directory, path),
                path,
                None,
                &pax,
            )
            .map_err(write_err)?;
        self.stats.dirs += 1;
        Ok(())
    }

    /// Any entry but a directory or a hard link; with `contents` false (a
    /// mount point) without data or extended attributes.
    fn node(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        st: &Statx,
        contents: bool,
    ) -> Result<(), TmpfsError> {
        let ftype = FileType::from_raw_mode(st.stx_mode.into());
        let kind = match ftype {
            FileType::RegularFile if contents => return self.file(parent, name, path, st),
            FileType::RegularFile => {
                self.stats.files += 1;
                EntryType::Regular
            }
            FileType::Symlink => EntryType::Symlink,
            FileType::Fifo => EntryType::Fifo,
            FileType::CharacterDevice => EntryType::Char,
            FileType::BlockDevice => EntryType::Block,
            _ => {
                crate::pr_warn!("tmpfs dump: {}: unknown file type, ignored", show(path));
                return Ok(());
            }
        };
        let mut h = header(st, kind, path);
        let mut link = None;
        match kind {
            EntryType::Symlink => {
                let target = rustix::fs::readlinkat(parent, name, Vec::new())
                    .map_err(sys(path, "readlink"))?;
                link = Some(target.into_bytes());
                self.stats.symlinks += 1;
            }
            EntryType::Char | EntryType::Block => {
                h.set_device_major(st.stx_rdev_major)
                    .and_then(|()| h.set_device_minor(st.stx_rdev_minor))
                    .map_err(write_err)?;
                self.stats.devices += 1;
            }
            EntryType::Fifo => self.stats.fifos += 1,
            _ => {}
        }
        let pax = if contents {
            self.xattrs(XattrOf::Path(proc_path(parent, name)), path)?
        } else {
            Vec::new()
        };
        self.w
            .header(&mut h, path, link.as_deref(), &pax)
            .map_err(write_err)
    }

    /// A regular file with its data: a GNU sparse entry if it has holes.
    fn file(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        st: &Statx,
    ) -> Result<(), TmpfsError> {
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys(path, "opening the file"))?;
        let st = self.same_inode(&fd, st, path)?;
        let size = st.stx_size;
        let data = data_segments(fd.as_fd(), size).map_err(sys(path, "finding its holes"))?;
        let sparse = !(size == 0 || data == [(0, size)]);
        let pax = self.xattrs(XattrOf::Fd(fd.as_fd()), path)?;
        let mut h = header(&st, EntryType::Regular, path);
        let stored: u64 = data.iter().map(|&(_, len)| len).sum();
        let mut map = data.clone();
        if sparse {
            // GNU tar ends every map with an empty segment at the end.
            map.push((size, 0));
            h.set_entry_type(EntryType::GNUSparse);
            h.set_size(stored);
            if let Some(g) = h.as_gnu_mut() {
                g.set_real_size(size);
                for (slot, &(off, len)) in g.sparse.iter_mut().zip(&map) {
                    slot.set_offset(off);
                    slot.set_length(len);
                }
                g.set_is_extended(map.len() > g.sparse.len());
            }
            self.stats.sparse_files += 1;
        } else {
            h.set_size(size);
        }
        self.w.header(&mut h, path, None, &pax).map_err(write_err)?;
        if sparse {
            let rest = map.get(4..).unwrap_or_default();
            let blocks: Vec<_> = rest.chunks(21).collect();
            for (i, chunk) in blocks.iter().enumerate() {
                let mut ext = GnuExtSparseHeader::new();
                for (slot, &(off, len)) in ext.sparse_mut().iter_mut().zip(chunk.iter()) {
                    slot.set_offset(off);
                    slot.set_length(len);
                }
                ext.set_is_extended(i + 1 < blocks.len());
                let bytes: &[u8; BLOCK] = ext.as_bytes();
                self.w.block(bytes).map_err(write_err)?;
            }
        }
        let file = File::from(fd);
        for &(off, len) in &data {
            self.copy(&file, off, len, path)?;
        }
        self.w.pad().map_err(write_err)?;
        let after = statx_at(file.as_fd(), c"", AtFlags::EMPTY_PATH).map_err(sys(path, "statx"))?;
        if after.stx_size != st.stx_size
            || (after.stx_mtime.tv_sec, after.stx_mtime.tv_nsec)
                != (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec)
        {
            return Err(TmpfsError::Changed {
                path: show(path),
                what: "file changed as it was read".into(),
            });
        }
        self.stats.files += 1;
        self.stats.data_bytes += stored;
        Ok(())
    }

    /// `len` bytes of `file` from `off` into the archive.
    fn copy(&mut self, file: &File, mut off: u64, len: u64, path: &[u8]) -> Result<(), TmpfsError> {
        let end = off + len;
        while off < end {
            let want = (end - off).min(self.buf.len() as u64) as usize;
            let n = match file.read_at(&mut self.buf[..want], off) {
                Ok(0) => {
                    return Err(TmpfsError::Changed {
                        path: show(path),
                        what: "file shrank as it was read".into(),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let errno = Errno::from_io_error(&e).unwrap_or(Errno::IO);
                    return Err(sys(path, "reading the file")(errno));
                }
            };
            self.w.data(&self.buf[..n]).map_err(write_err)?;
            off += n as u64;
        }
        Ok(())
    }

    /// The PAX records of the extended attributes of `of` that are
    /// archived (see [`xattr_wanted`]).
    fn xattrs(&mut self, of: XattrOf<'_>, path: &[u8]) -> Result<Vec<u8>, TmpfsError> {
        let listed = match &of {
            XattrOf::Fd(fd) => rustix::fs::flistxattr(fd, &mut self.xbuf[..]),
            XattrOf::Path(p) => rustix::fs::llistxattr(p.as_c_str(), &mut self.xbuf[..]),
        };
        let n = match listed {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(sys(path, "listing extended attributes")(e)),
        };
        let mut records = Vec::new();
        let names: Vec<Vec<u8>> = self.xbuf[..n]
            .split(|&b| b == 0)
            .filter(|n| xattr_wanted(n))
            .map(<[u8]>::to_vec)
            .collect();
        for name in names {
            let Ok(cname) = CString::new(name.clone()) else {
                continue;
            };
            let got = match &of {
                XattrOf::Fd(fd) => rustix::fs::fgetxattr(fd, cname.as_c_str(), &mut self.vbuf[..]),
                XattrOf::Path(p) => {
                    rustix::fs::lgetxattr(p.as_c_str(), cname.as_c_str(), &mut self.vbuf[..])
                }
            };
            let len = match got {
                Ok(len) => len,
                // Removed since it was listed.
                Err(Errno::NODATA) => continue,
                Err(e) => return Err(sys(path, "reading an extended attribute")(e)),
            };
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(&name);
            records.extend_from_slice(&pax_record(&key, &self.vbuf[..len]));
            self.stats.xattrs += 1;
        }
        Ok(records)
    }
}

/// Whether statx says `st` is the root of a mount (Linux 5.8 on).
pub(super) fn mount_root(st: &Statx) -> bool {
    st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
        && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
}

/// The data segments `(offset, length)` of a file of `size` bytes, by
/// `SEEK_DATA`/`SEEK_HOLE` (the whole file where those are not supported).
fn data_segments(fd: BorrowedFd<'_>, size: u64) -> Result<Vec<(u64, u64)>, Errno> {
    let mut segs = Vec::new();
    let mut pos = 0;
    while pos < size {
        let data = match rustix::fs::seek(fd, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(Errno::NXIO) => break,
            Err(Errno::INVAL) if pos == 0 => return Ok(vec![(0, size)]),
            Err(e) => return Err(e),
        };
        if data >= size {
            break;
        }
        let hole = match rustix::fs::seek(fd, SeekFrom::Hole(data)) {
            Ok(h) => h.min(size),
            Err(Errno::NXIO) => size,
            Err(e) => return Err(e),
        };
        if hole <= data {
            return Err(Errno::IO);
        }
        segs.push((data, hole - data));
        pos = hole;
    }
    Ok(segs)
}
