//! Restore: extract a tmpfs archive into a fresh tmpfs as GNU tar
//! `--extract` does as root (owners, modes with set-id and sticky bits,
//! modification times, directories' modes and times after their
//! contents), treating the archive as hostile (see the module doc of
//! [`super`]).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, ResolveFlags, StatxFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;

use super::read::{Entry, Kind, TarReader};
use super::{TmpfsError, TmpfsStats, show};

/// File data is copied through a buffer of this size.
const COPY_BUF: usize = 256 << 10;

/// How every path of the archive is resolved: below the root, through no
/// symlink and no other mount.
fn resolve() -> ResolveFlags {
    ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV
}

/// The root's mount, which `RESOLVE_NO_XDEV` keeps to.
#[derive(Clone, Copy)]
struct Mount {
    dev: (u32, u32),
    mnt_id: Option<u64>,
    /// The root of a mount (which the root itself is, and nothing below
    /// it on the same mount).
    root: bool,
}

fn mount_of(fd: BorrowedFd<'_>) -> Result<Mount, Errno> {
    let st = rustix::fs::statx(
        fd,
        c"",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    )?;
    Ok(Mount {
        dev: (st.stx_dev_major, st.stx_dev_minor),
        mnt_id: StatxFlags::from_bits_retain(st.stx_mask)
            .contains(StatxFlags::MNT_ID)
            .then_some(st.stx_mnt_id),
        root: super::dump::mount_root(&st),
    })
}

/// Open `name` of directory `at`, a single component (never `..`: see
/// [`components`]), without following a symlink or leaving the root's
/// mount. Where `openat2` is missing (kernels before 5.6, qemu-user
/// before 9.0) the same holds with `openat`: one component opened with
/// `O_NOFOLLOW` follows no symlink, and the mount is compared after.
fn open_below(
    at: BorrowedFd<'_>,
    name: &CStr,
    flags: OFlags,
    root: Mount,
) -> Result<OwnedFd, Errno> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat2(at, name, flags, Mode::empty(), resolve()) {
        Err(Errno::NOSYS) => {
            let fd = rustix::fs::openat(at, name, flags, Mode::empty())?;
            let m = mount_of(fd.as_fd())?;
            let other_id = matches!((m.mnt_id, root.mnt_id), (Some(a), Some(b)) if a != b);
            if m.dev != root.dev || other_id || (m.root && name != c".") {
                return Err(Errno::XDEV);
            }
            Ok(fd)
        }
        r => r,
    }
}

/// Extract the gzip-compressed tar archive `input` (a `tmpfs-dev-N.tar.gz.img`
/// that CRIU's GNU tar or [`super::dump`] wrote) into the tmpfs whose root
/// directory is `dir`, as CRIU's `tar --extract --gzip` does, the root's
/// own owner, mode and time included. Nothing is created outside `dir`
/// whatever the archive holds; a malformed or hostile archive stops the
/// restore with an error that names the entry (what was extracted before
/// it stays).
pub fn restore<R: Read>(dir: BorrowedFd<'_>, input: R) -> Result<TmpfsStats, TmpfsError> {
    let root_err = |what| {
        move |source| TmpfsError::Restore {
            entry: "./".into(),
            what,
            source,
        }
    };
    let root = rustix::fs::openat(
        dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(root_err("opening the root directory"))?;
    let mount = mount_of(root.as_fd()).map_err(root_err("statx of the root directory"))?;
    let mut x = Extractor {
        root: Rc::new(root),
        mount,
        cache: None,
        deferred: Vec::new(),
        stats: TmpfsStats::default(),
        buf: vec![0u8; COPY_BUF],
    };
    let mut r = TarReader::new(MultiGzDecoder::new(input));
    while let Some(e) = r.next()? {
        let name = r.current().to_string();
        x.entry(&mut r, e, &name)?;
    }
    r.finish()?;
    x.finish()?;
    Ok(x.stats)
}

/// The components of an archive name below the root (none for the root
/// itself); why it is refused otherwise.
fn components(name: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if name.is_empty() {
        return Err("an empty name");
    }
    if name.starts_with(b"/") {
        return Err("an absolute name");
    }
    let mut v = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("a name with a `..` component"),
            c => v.push(c),
        }
    }
    Ok(v)
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

/// A directory whose mode and modification time are set at the end.
struct Deferred {
    path: Vec<u8>,
    entry: String,
    mode: u32,
    mtime: (i64, u32),
}

struct Extractor {
    root: Rc<OwnedFd>,
    mount: Mount,
    /// The last parent directory resolved, by its path.
    cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
    deferred: Vec<Deferred>,
    stats: TmpfsStats,
    buf: Vec<u8>,
}

fn err<'a>(entry: &'a str, what: &'static str) -> impl FnOnce(Errno) -> TmpfsError + 'a {
    move |source| TmpfsError::Restore {
        entry: entry.to_string(),
        what,
        source,
    }
}

fn unsafe_name(entry: &str, why: impl Into<String>) -> TmpfsError {
    TmpfsError::Unsafe {
        entry: entry.to_string(),
        why: why.into(),
    }
}

fn cstring(entry: &str, bytes: &[u8]) -> Result<CString, TmpfsError> {
    CString::new(bytes).map_err(|_| TmpfsError::Malformed {
        entry: entry.to_string(),
        what: "a name with a NUL byte".into(),
    })
}

fn times(mtime: (i64, u32)) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1.into(),
        },
    }
}

/// `/proc/self/fd/PARENT/NAME`: a path to `name` of directory `parent`
/// for the `l*xattr` calls, which do not follow its last component.
fn proc_path(parent: BorrowedFd<'_>, name: &CString) -> CString {
    let mut p = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.as_bytes());
    CString::new(p).unwrap_or_default()
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

impl Extractor {
    /// An `O_PATH` fd of directory `comps` below the root, made (mode
    /// 0755) where missing if `create`.
    fn walk(&self, comps: &[&[u8]], create: bool, entry: &str) -> Result<OwnedFd, TmpfsError> {
        let mut cur: Option<OwnedFd> = None;
        for c in comps {
            let name = cstring(entry, c)?;
            let at = cur.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            let open = || open_below(at, &name, OFlags::PATH | OFlags::DIRECTORY, self.mount);
            let fd = match open() {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(at, name.as_c_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(err(entry, "making a missing directory")(e)),
                    }
                    open()
                }
                r => r,
            };
            let fd = fd.map_err(|e| match e {
                Errno::NOTDIR | Errno::LOOP => unsafe_name(
                    entry,
                    format!("{:?} on its path is not a directory", show(c)),
                ),
                Errno::XDEV => {
                    unsafe_name(entry, format!("{:?} on its path is another mount", show(c)))
                }
                e => err(entry, "opening a directory on its path")(e),
            })?;
            cur = Some(fd);
        }
        match cur {
            Some(fd) => Ok(fd),
            None => open_below(
                self.root.as_fd(),
                c".",
                OFlags::PATH | OFlags::DIRECTORY,
                self.mount,
            )
            .map_err(err(entry, "opening the root")),
        }
    }

    /// The parent directory `comps`, from the cache if it was the last one.
    fn parent(&mut self, comps: &[&[u8]], entry: &str) -> Result<Rc<OwnedFd>, TmpfsError> {
        if comps.is_empty() {
            return Ok(Rc::clone(&self.root));
        }
        let key = join(comps);
        if let Some((k, fd)) = &self.cache
            && *k == key
        {
            return Ok(Rc::clone(fd));
        }
        let fd = Rc::new(self.walk(comps, true, entry)?);
        self.cache = Some((key, Rc::clone(&fd)));
        Ok(fd)
    }

    /// Remove what is at `name` of `parent` so that an entry can take its
    /// place (GNU tar replaces what an earlier entry made); a directory
    /// only if empty.
    fn remove(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CString,
        entry: &str,
    ) -> Result<(), TmpfsError> {
        let st = rustix::fs::statat(parent, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(err(entry, "stat of what is in its place"))?;
        let flags = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            self.cache = None;
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(parent, name.as_c_str(), flags)
            .map_err(err(entry, "removing what is in its place"))
    }

    /// Make `name` in `parent` with `make`; once more after removing what
    /// is there if it exists.
    fn create<T>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CString,
        entry: &str,
        what: &'static str,
        make: impl Fn() -> Result<T, Errno>,
    ) -> Result<T, TmpfsError> {
        match make() {
            Err(Errno::EXIST) => {
                self.remove(parent, name, entry)?;
                make().map_err(err(entry, what))
            }
            r => r.map_err(err(entry, what)),
        }
    }

    fn entry<R: Read>(
        &mut self,
        r: &mut TarReader<R>,
        e: Entry,
        entry: &str,
    ) -> Result<(), TmpfsError> {
        let comps = components(&e.name).map_err(|why| unsafe_name(entry, why))?;
        let Some((leaf, dirs)) = comps.split_last() else {
            if e.kind != Kind::Dir {
                return Err(TmpfsError::Malformed {
                    entry: entry.to_string(),
                    what: "the archive's root is not a directory".into(),
                });
            }
            let root = Rc::clone(&self.root);
            return self.directory(&root, Vec::new(), &e, entry);
        };
        let parent = self.parent(dirs, entry)?;
        let parent = parent.as_fd();
        let name = cstring(entry, leaf)?;
        match e.kind {
            Kind::Dir => {
                match rustix::fs::mkdirat(parent, name.as_c_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let st =
                            rustix::fs::statat(parent, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
                                .map_err(err(entry, "stat of what is in its place"))?;
                        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                            self.remove(parent, &name, entry)?;
                            rustix::fs::mkdirat(
                                parent,
                                name.as_c_str(),
                                Mode::from_raw_mode(0o700),
                            )
                            .map_err(err(entry, "mkdir"))?;
                        }
                    }
                    Err(e) => return Err(err(entry, "mkdir")(e)),
                }
                let fd = open_below(
                    parent,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY,
                    self.mount,
                )
                .map_err(err(entry, "opening the directory made"))?;
                self.directory(&fd, join(&comps), &e, entry)
            }
            Kind::File => self.file(r, parent, &name, &e, entry),
            Kind::HardLink => {
                let target = components(&e.link)
                    .map_err(|why| unsafe_name(entry, format!("its hard link target is {why}")))?;
                let Some((tleaf, tdirs)) = target.split_last() else {
                    return Err(unsafe_name(entry, "a hard link to the root"));
                };
                let tparent = self.walk(tdirs, false, entry)?;
                let tname = cstring(entry, tleaf)?;
                self.create(parent, &name, entry, "link", || {
                    rustix::fs::linkat(
                        tparent.as_fd(),
                        tname.as_c_str(),
                        parent,
                        name.as_c_str(),
                        AtFlags::empty(),
                    )
                })?;
                self.stats.hard_links += 1;
                Ok(())
            }
            Kind::Symlink => {
                let target = cstring(entry, &e.link)?;
                self.create(parent, &name, entry, "symlink", || {
                    rustix::fs::symlinkat(target.as_c_str(), parent, name.as_c_str())
                })?;
                self.stats.symlinks += 1;
                self.node_attrs(parent, &name, &e, entry, false)
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let (ftype, dev) = match e.kind {
                    Kind::Char => (
                        FileType::CharacterDevice,
                        rustix::fs::makedev(e.rdev.0, e.rdev.1),
                    ),
                    Kind::Block => (
                        FileType::BlockDevice,
                        rustix::fs::makedev(e.rdev.0, e.rdev.1),
                    ),
                    _ => (FileType::Fifo, 0),
                };
                self.create(parent, &name, entry, "mknod", || {
                    rustix::fs::mknodat(
                        parent,
                        name.as_c_str(),
                        ftype,
                        Mode::from_raw_mode(0o600),
                        dev,
                    )
                })?;
                if ftype == FileType::Fifo {
                    self.stats.fifos += 1;
                } else {
                    self.stats.devices += 1;
                }
                self.node_attrs(parent, &name, &e, entry, true)
            }
        }
    }

    /// Owner, extended attributes and (later, after its contents) mode
    /// and time of directory `fd` at `path`.
    fn directory(
        &mut self,
        fd: &OwnedFd,
        path: Vec<u8>,
        e: &Entry,
        entry: &str,
    ) -> Result<(), TmpfsError> {
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(e.uid)),
            Some(rustix::fs::Gid::from_raw(e.gid)),
        )
        .map_err(err(entry, "chown"))?;
        for (k, v) in &e.xattrs {
            let k = cstring(entry, k)?;
            set_xattr(
                rustix::fs::fsetxattr(fd, k.as_c_str(), v, XattrFlags::empty()),
                entry,
            )?;
            self.stats.xattrs += 1;
        }
        self.deferred.push(Deferred {
            path,
            entry: entry.to_string(),
            mode: e.mode,
            mtime: e.mtime,
        });
        self.stats.dirs += 1;
        Ok(())
    }

    /// Owner, mode (`chmod`: not for symlinks), extended attributes and
    /// time of the symlink or special file `name` of `parent`, just made.
    fn node_attrs(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CString,
        e: &Entry,
        entry: &str,
        chmod: bool,
    ) -> Result<(), TmpfsError> {
        rustix::fs::chownat(
            parent,
            name.as_c_str(),
            Some(rustix::fs::Uid::from_raw(e.uid)),
            Some(rustix::fs::Gid::from_raw(e.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(err(entry, "chown"))?;
        if chmod {
            // Not a symlink: it was made by mknodat just now.
            rustix::fs::chmodat(
                parent,
                name.as_c_str(),
                Mode::from_raw_mode(e.mode),
                AtFlags::empty(),
            )
            .map_err(err(entry, "chmod"))?;
        }
        if !e.xattrs.is_empty() {
            let path = proc_path(parent, name);
            for (k, v) in &e.xattrs {
                let k = cstring(entry, k)?;
                set_xattr(
                    rustix::fs::lsetxattr(path.as_c_str(), k.as_c_str(), v, XattrFlags::empty()),
                    entry,
                )?;
                self.stats.xattrs += 1;
            }
        }
        rustix::fs::utimensat(
            parent,
            name.as_c_str(),
            &times(e.mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(err(entry, "setting its time"))
    }

    /// A regular file with its data (holes of sparse entries kept), then
    /// owner, mode, extended attributes and time.
    fn file<R: Read>(
        &mut self,
        r: &mut TarReader<R>,
        parent: BorrowedFd<'_>,
        name: &CString,
        e: &Entry,
        entry: &str,
    ) -> Result<(), TmpfsError> {
        let fd = self.create(parent, name, entry, "creating the file", || {
            rustix::fs::openat(
                parent,
                name.as_c_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        })?;
        let file = File::from(fd);
        match &e.sparse {
            Some(sparse) => {
                for &(off, len) in &sparse.segments {
                    self.copy(r, &file, off, Some(len), entry)?;
                }
                rustix::fs::ftruncate(&file, sparse.real_size)
                    .map_err(err(entry, "setting its size"))?;
                self.stats.sparse_files += 1;
            }
            None => self.copy(r, &file, 0, None, entry)?,
        }
        rustix::fs::fchown(
            &file,
            Some(rustix::fs::Uid::from_raw(e.uid)),
            Some(rustix::fs::Gid::from_raw(e.gid)),
        )
        .map_err(err(entry, "chown"))?;
        // After chown, which clears the set-id bits.
        rustix::fs::fchmod(&file, Mode::from_raw_mode(e.mode)).map_err(err(entry, "chmod"))?;
        // After chown, which clears security.capability.
        for (k, v) in &e.xattrs {
            let k = cstring(entry, k)?;
            set_xattr(
                rustix::fs::fsetxattr(&file, k.as_c_str(), v, XattrFlags::empty()),
                entry,
            )?;
            self.stats.xattrs += 1;
        }
        rustix::fs::futimens(&file, &times(e.mtime)).map_err(err(entry, "setting its time"))?;
        self.stats.files += 1;
        Ok(())
    }

    /// Data of the current entry into `file` from `off`: `len` bytes, or
    /// all of it.
    fn copy<R: Read>(
        &mut self,
        r: &mut TarReader<R>,
        file: &File,
        mut off: u64,
        len: Option<u64>,
        entry: &str,
    ) -> Result<(), TmpfsError> {
        let mut left = len;
        loop {
            let want = left.map_or(self.buf.len(), |l| l.min(self.buf.len() as u64) as usize);
            if want == 0 {
                return Ok(());
            }
            let n = if left.is_some() {
                r.read_data_exact(&mut self.buf[..want])?;
                want
            } else {
                r.read_data(&mut self.buf[..want])?
            };
            if n == 0 {
                return Ok(());
            }
            file.write_all_at(&self.buf[..n], off)
                .map_err(|e| err(entry, "writing its data")(errno_of(&e)))?;
            off += n as u64;
            self.stats.data_bytes += n as u64;
            if let Some(l) = &mut left {
                *l -= n as u64;
            }
        }
    }

    /// Modes and times of the directories, the deepest and last first.
    fn finish(&mut self) -> Result<(), TmpfsError> {
        self.cache = None;
        while let Some(d) = self.deferred.pop() {
            let comps: Vec<&[u8]> = if d.path.is_empty() {
                Vec::new()
            } else {
                d.path.split(|&b| b == b'/').collect()
            };
            let at = self.walk(&comps, false, &d.entry)?;
            let fd = open_below(
                at.as_fd(),
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY,
                self.mount,
            )
            .map_err(err(&d.entry, "opening the directory"))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode)).map_err(err(&d.entry, "chmod"))?;
            rustix::fs::futimens(&fd, &times(d.mtime))
                .map_err(err(&d.entry, "setting its time"))?;
        }
        Ok(())
    }
}

/// An extended attribute set, or left out with a warning where the
/// kernel's tmpfs has no such attributes.
fn set_xattr(r: Result<(), Errno>, entry: &str) -> Result<(), TmpfsError> {
    match r {
        Ok(()) => Ok(()),
        Err(Errno::NOTSUP) => {
            crate::pr_warn!(
                "tmpfs restore: {entry}: extended attribute not supported here, left out"
            );
            Ok(())
        }
        Err(e) => Err(err(entry, "setting an extended attribute")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_below_the_root_only() {
        assert_eq!(components(b"./").unwrap(), Vec::<&[u8]>::new());
        assert_eq!(components(b".").unwrap(), Vec::<&[u8]>::new());
        assert_eq!(components(b"./a/b/").unwrap(), vec![&b"a"[..], b"b"]);
        assert_eq!(components(b"a//./b").unwrap(), vec![&b"a"[..], b"b"]);
        assert!(components(b"").is_err());
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"../x").is_err());
        assert!(components(b"./a/../../x").is_err());
        assert!(components(b"a/..").is_err());
        assert_eq!(components(b"a/..b").unwrap(), vec![&b"a"[..], b"..b"]);
    }
}
