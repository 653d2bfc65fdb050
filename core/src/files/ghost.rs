//! Ghost files: a file still open (or mapped) after it was unlinked (its
//! link reads `PATH (deleted)`). Up to `--ghost-limit` its contents are
//! carried in `ghost-file-ID.img` (a `ghost_file_entry`, then the raw
//! bytes), and `remap-fpath.img` maps the regular file's id to the ghost
//! id, as CRIU does. Restore creates the file again (at its old path when
//! that is free, else at CRIU's `PATH.cr.ID.ghost` in the same directory),
//! every user opens it by that path, and it is unlinked once all have.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::images::pb;
use crate::images::typed::ImageDir;
use crate::images::{ImageError, Kind};

/// `S_IFMT` and `S_IFREG`.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;

#[derive(Debug, thiserror::Error)]
pub enum GhostError {
    /// CRIU's wording.
    #[error("Can't dump ghost file {path} of {size} size, increase limit")]
    TooBig { path: String, size: u64 },
    #[error("{path}: an unlinked file that is not a regular file (mode {mode:o})")]
    NotRegular { path: String, mode: u32 },
    #[error("{path}: an unlinked file with {nlink} other links (use --link-remap)")]
    StillLinked { path: String, nlink: u64 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("remap-fpath.img: {0}")]
    Remap(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GhostError + '_ {
    move |source| GhostError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The kernel's encoding of a device number (what CRIU stores).
fn kdev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    ((major << 20) | (minor & 0xf_ffff)) as u32
}

/// Files at least this big are dumped as chunks of data, their holes
/// left out (CRIU's `GHOST_CHUNKS_THRESH`); smaller ones whole.
const CHUNKS_FROM: u64 = 3 * 4096;

/// How ghosts are dumped: `--ghost-limit` (bytes of data, holes not
/// counted, as CRIU counts `st_blocks`) and `--ghost-fiemap` (find the
/// data with `FS_IOC_FIEMAP`, falling back to `SEEK_DATA`/`SEEK_HOLE`
/// where the filesystem has no FIEMAP).
#[derive(Clone, Copy, Debug)]
pub struct GhostOpts {
    pub limit: u64,
    pub fiemap: bool,
}

/// One ghost to write: its entry and a descriptor to read it through.
#[derive(Debug)]
struct Dumped {
    id: u32,
    dev: u64,
    ino: u64,
    entry: pb::GhostFileEntry,
    file: std::fs::File,
    size: u64,
    fiemap: bool,
}

/// The ghosts of a dump and the remap entries naming them, and the
/// `link_remap.ID` links `--link-remap` made (unlinked again when this is
/// dropped, unless the dump kept them for a restore: CRIU keeps them only
/// when the dump succeeded and the tree is gone).
#[derive(Debug, Default)]
pub struct GhostTable {
    ghosts: Vec<Dumped>,
    pub remaps: Vec<pb::RemapFilePathEntry>,
    links: Vec<PathBuf>,
    keep_links: bool,
    /// The link file id made for each (dev, ino): one link per file.
    pub linked: HashMap<(u64, u64), u32>,
}

impl Drop for GhostTable {
    fn drop(&mut self) {
        if self.keep_links {
            return;
        }
        for p in &self.links {
            if let Err(e) = std::fs::remove_file(p) {
                crate::pr_warn!("cannot unlink link remap {}: {e}", p.display());
            }
        }
    }
}

/// `path` without the ` (deleted)` the kernel appends to an unlinked
/// file's name, if it has it.
pub fn deleted_name(path: &Path) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let b = path.as_os_str().as_bytes();
    b.strip_suffix(b" (deleted)")
        .map(|n| PathBuf::from(std::ffi::OsStr::from_bytes(n)))
}

impl GhostTable {
    /// Records file id `reg_id`, an unlinked file called `name`, opened
    /// by the tool as `fd`, as a ghost (one per inode), refusing what
    /// cannot be carried: more than `limit` bytes of storage (CRIU counts
    /// allocated blocks), not a regular file, or other links left.
    pub fn add(
        &mut self,
        reg_id: u32,
        name: &Path,
        fd: OwnedFd,
        opts: GhostOpts,
    ) -> Result<(), GhostError> {
        let file = std::fs::File::from(fd);
        let m = file.metadata().map_err(io(name))?;
        let path = name.display().to_string();
        if m.mode() & S_IFMT != S_IFREG {
            return Err(GhostError::NotRegular {
                path,
                mode: m.mode(),
            });
        }
        if m.nlink() != 0 {
            return Err(GhostError::StillLinked {
                path,
                nlink: m.nlink(),
            });
        }
        let used = m.blocks() * 512;
        if used > opts.limit {
            return Err(GhostError::TooBig { path, size: used });
        }
        let id = match self
            .ghosts
            .iter()
            .find(|g| g.dev == m.dev() && g.ino == m.ino())
        {
            Some(g) => g.id,
            None => {
                let id = self.ghosts.len() as u32 + 1;
                let tv = |sec: i64, nsec: i64| pb::Timeval {
                    tv_sec: sec as u64,
                    tv_usec: (nsec / 1000) as u64,
                };
                self.ghosts.push(Dumped {
                    id,
                    dev: m.dev(),
                    ino: m.ino(),
                    entry: pb::GhostFileEntry {
                        uid: m.uid(),
                        gid: m.gid(),
                        mode: m.mode(),
                        dev: Some(kdev(m.dev())),
                        ino: Some(m.ino()),
                        atim: Some(tv(m.atime(), m.atime_nsec())),
                        mtim: Some(tv(m.mtime(), m.mtime_nsec())),
                        chunks: (m.size() >= CHUNKS_FROM).then_some(true),
                        size: (m.size() >= CHUNKS_FROM).then_some(m.size()),
                        ..Default::default()
                    },
                    file,
                    size: m.size(),
                    fiemap: opts.fiemap,
                });
                id
            }
        };
        self.remaps.push(pb::RemapFilePathEntry {
            orig_id: reg_id,
            remap_id: id,
            remap_type: Some(pb::RemapType::Ghost as i32),
        });
        Ok(())
    }

    /// `--link-remap`: file id `reg_id`, unlinked but with other links,
    /// is opened at restore through file id `link_id`, the hard link
    /// `tool_path` (as criu reaches it) just made to it (`None`: made for
    /// another file id of the same file).
    pub fn add_linked(&mut self, reg_id: u32, link_id: u32, tool_path: Option<PathBuf>) {
        self.links.extend(tool_path);
        self.remaps.push(pb::RemapFilePathEntry {
            orig_id: reg_id,
            remap_id: link_id,
            remap_type: Some(pb::RemapType::Linked as i32),
        });
    }

    /// The dump is over and the tree gone: its link remaps stay for the
    /// restore (which removes them).
    pub fn keep_links(&mut self) {
        self.keep_links = true;
    }

    /// Writes `remap-fpath.img` and each `ghost-file-ID.img` (the entry,
    /// then the contents: whole, or as `ghost_chunk_entry` headers each
    /// followed by its run of data, holes left out), if there are any.
    pub fn write(&self, dir: &ImageDir) -> Result<(), GhostError> {
        if self.remaps.is_empty() {
            return Ok(());
        }
        dir.write_all(Kind::RemapFpath, 0, &self.remaps)?;
        let mut buf = vec![0u8; 1 << 16];
        for g in &self.ghosts {
            let mut w = dir.writer(Kind::GhostFile, u64::from(g.id))?;
            w.write_message(&g.entry)?;
            if g.entry.chunks == Some(true) {
                for (off, len) in data_runs(&g.file, g.size, g.fiemap)? {
                    w.write_message(&pb::GhostChunkEntry { len, off })?;
                    copy_run(&g.file, off, len, &mut buf, &mut w)?;
                }
            } else {
                copy_run(&g.file, 0, g.size, &mut buf, &mut w)?;
            }
            w.finish()?;
        }
        Ok(())
    }
}

/// Copies `len` bytes at `off` of `file` into the image. The file cannot
/// be shorter than its runs while the tasks are frozen; if it is anyway
/// (someone outside truncated it), the image would lie: an error.
fn copy_run(
    file: &std::fs::File,
    mut off: u64,
    len: u64,
    buf: &mut [u8],
    w: &mut crate::images::writer::ImageWriter<impl std::io::Write>,
) -> Result<(), GhostError> {
    let end = off + len;
    while off < end {
        let want = buf.len().min((end - off) as usize);
        let n = file
            .read_at(&mut buf[..want], off)
            .map_err(io(Path::new("ghost file")))?;
        if n == 0 {
            return Err(io(Path::new("ghost file"))(std::io::Error::other(format!(
                "ended at {off} while dumped, {end} expected (truncated meanwhile?)"
            ))));
        }
        w.write_payload(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

/// The runs of data (offset, length) in the first `size` bytes of `file`,
/// in order: from FIEMAP when `fiemap` and the filesystem has it, else
/// from `SEEK_DATA`/`SEEK_HOLE`, else (neither) the whole file as one run.
fn data_runs(file: &std::fs::File, size: u64, fiemap: bool) -> Result<Vec<(u64, u64)>, GhostError> {
    if fiemap {
        match fiemap_runs(file, size)? {
            Some(runs) => {
                crate::pr_debug!("ghost file: {} runs of data found with FIEMAP", runs.len());
                return Ok(runs);
            }
            None => crate::pr_debug!("ghost file: the filesystem has no FIEMAP, SEEK_DATA instead"),
        }
    }
    use rustix::fs::SeekFrom;
    let err = |e: rustix::io::Errno| io(Path::new("ghost file"))(e.into());
    let mut runs = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(d) => d,
            // No data after `pos`.
            Err(rustix::io::Errno::NXIO) => break,
            // No SEEK_DATA here: all of it is data.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) if pos == 0 => {
                runs.push((0, size));
                break;
            }
            Err(e) => return Err(err(e)),
        };
        if data >= size {
            break;
        }
        let hole = rustix::fs::seek(file, SeekFrom::Hole(data))
            .map_err(err)?
            .min(size);
        runs.push((data, hole - data));
        pos = hole;
    }
    crate::pr_debug!(
        "ghost file: {} runs of data found with SEEK_DATA",
        runs.len()
    );
    Ok(runs)
}

/// [`data_runs`] from FIEMAP; `None` when the filesystem has no FIEMAP.
fn fiemap_runs(file: &std::fs::File, size: u64) -> Result<Option<Vec<(u64, u64)>>, GhostError> {
    use crate::sys::fiemap::{EXTENT_LAST, Extent, extents};
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut batch = [Extent::default(); 64];
    let mut start = 0u64;
    while start < size {
        let n = match extents(file, start, size - start, &mut batch) {
            Ok(n) => n,
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOTTY) if start == 0 => {
                return Ok(None);
            }
            Err(e) => return Err(io(Path::new("ghost file (FIEMAP)"))(e.into())),
        };
        if n == 0 {
            break;
        }
        for e in &batch[..n] {
            // Extents may begin before `start` or run past the end.
            let (s, end) = (e.logical.max(start), (e.logical + e.length).min(size));
            if end <= s {
                continue;
            }
            match runs.last_mut() {
                Some(last) if last.0 + last.1 == s => last.1 += end - s,
                _ => runs.push((s, end - s)),
            }
        }
        let last = batch[n - 1];
        if last.flags & EXTENT_LAST != 0 {
            break;
        }
        start = start.max(last.logical + last.length);
    }
    Ok(Some(runs))
}

/// Ghost files created for a restore, unlinked when this is dropped
/// (once every user has opened them, or when the restore fails).
#[derive(Debug, Default)]
pub struct Ghosts {
    /// The path each regular file id is to be opened by.
    paths: HashMap<u32, PathBuf>,
    created: Vec<PathBuf>,
    /// The dump's `link_remap.ID` links, removed once the restore is
    /// done ([`Ghosts::link_remaps`]).
    link_remaps: Vec<PathBuf>,
}

impl Ghosts {
    /// The path to open file id `id` by, if it is a ghost.
    /// The path of every regular file id opened through its ghost copy.
    pub fn paths(&self) -> &HashMap<u32, PathBuf> {
        &self.paths
    }

    /// The `link_remap.ID` files the dump made, for the restore to
    /// remove once it succeeded (a failed one leaves them, to try again).
    pub fn link_remaps(&self) -> Vec<PathBuf> {
        self.link_remaps.clone()
    }

    pub fn path_of(&self, id: u32) -> Option<&Path> {
        self.paths.get(&id).map(PathBuf::as_path)
    }

    /// Creates every ghost file `remaps` names (regular files in
    /// `reg_files` by id), with its contents, owner, mode and times.
    pub fn create(
        dir: &ImageDir,
        remaps: &[pb::RemapFilePathEntry],
        reg_files: &HashMap<u32, pb::RegFileEntry>,
    ) -> Result<Ghosts, GhostError> {
        let mut out = Ghosts::default();
        let mut by_ghost: HashMap<u32, PathBuf> = HashMap::new();
        let mut by_link: HashMap<(u64, u64), PathBuf> = HashMap::new();
        let reg_of = |id: u32| {
            reg_files
                .get(&id)
                .ok_or_else(|| GhostError::Remap(format!("file id {id} is not in files.img")))
        };
        for r in remaps {
            // An old image without a type: linked unless the id has
            // CRIU's old ghost bit (its reading).
            let linked = match r.remap_type {
                Some(t) => t == pb::RemapType::Linked as i32,
                None => r.remap_id & 0x8000_0000 == 0,
            };
            if linked {
                // Files of one file (an fd and a mapping) share its name,
                // through one link or (CRIU makes one per file id) several.
                let (reg, link) = (reg_of(r.orig_id)?, reg_of(r.remap_id)?);
                let lpath = Path::new(&link.name);
                let md = std::fs::metadata(lpath).map_err(io(lpath))?;
                if !out.link_remaps.iter().any(|p| p == lpath) {
                    out.link_remaps.push(lpath.to_path_buf());
                }
                let path = match by_link.get(&(md.dev(), md.ino())) {
                    Some(p) => p.clone(),
                    None => {
                        let p = link_back(lpath, Path::new(&reg.name))?;
                        out.created.push(p.clone());
                        by_link.insert((md.dev(), md.ino()), p.clone());
                        p
                    }
                };
                out.paths.insert(r.orig_id, path);
                continue;
            }
            if r.remap_type != Some(pb::RemapType::Ghost as i32) {
                return Err(GhostError::Remap(format!(
                    "file id {}: remap type {:?} is not restored (only ghost files and \
                     linked remaps)",
                    r.orig_id, r.remap_type
                )));
            }
            let reg = reg_of(r.orig_id)?;
            let path = match by_ghost.get(&r.remap_id) {
                Some(p) => p.clone(),
                None => {
                    let p = create_one(dir, r.remap_id, Path::new(&reg.name))?;
                    out.created.push(p.clone());
                    by_ghost.insert(r.remap_id, p.clone());
                    p
                }
            };
            out.paths.insert(r.orig_id, path);
        }
        Ok(out)
    }
}

impl Drop for Ghosts {
    fn drop(&mut self) {
        for p in &self.created {
            if let Err(e) = std::fs::remove_file(p) {
                crate::pr_warn!("cannot unlink ghost file {}: {e}", p.display());
            }
        }
    }
}

/// A linked remap: the file `link` names gets its old name `name` back
/// for the tasks to open it by (or, if that is taken, CRIU's
/// `NAME.cr_link`); the name made, unlinked again once they have.
fn link_back(link: &Path, name: &Path) -> Result<PathBuf, GhostError> {
    let other = PathBuf::from(format!("{}.cr_link", name.display()));
    for p in [name.to_path_buf(), other] {
        match std::fs::hard_link(link, &p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(link)(e)),
        }
    }
    Err(io(name)(std::io::Error::other(
        "neither the name nor NAME.cr_link is free for the linked remap",
    )))
}

/// A free name for ghost `id` of `name`: the old path itself, else CRIU's
/// `NAME.cr.ID.ghost` (with a counter if that is taken too); created
/// exclusively.
fn create_free(name: &Path, id: u32) -> Result<(PathBuf, std::fs::File), GhostError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut candidates = vec![name.to_path_buf()];
    let base = name.display().to_string();
    candidates.push(PathBuf::from(format!("{base}.cr.{id:x}.ghost")));
    candidates.extend((1..100).map(|n| PathBuf::from(format!("{base}.cr.{id:x}.{n}.ghost"))));
    for p in candidates {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::CLOEXEC.bits() as i32)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(&p)(e)),
        }
    }
    Err(io(name)(std::io::Error::other(
        "no free name for the ghost file",
    )))
}

/// Creates ghost `id` (read from its image) for the file once called
/// `name`; its path.
fn create_one(dir: &ImageDir, id: u32, name: &Path) -> Result<PathBuf, GhostError> {
    let mut r = dir.reader(Kind::GhostFile, u64::from(id))?;
    let file_name = Kind::GhostFile.file_name(u64::from(id));
    let e: pb::GhostFileEntry = r
        .next_message()?
        .ok_or_else(|| GhostError::Remap(format!("{file_name} holds no entry")))?;
    if e.mode & S_IFMT != S_IFREG {
        return Err(GhostError::NotRegular {
            path: name.display().to_string(),
            mode: e.mode,
        });
    }
    let (path, file) = create_free(name, id)?;
    let filled = (|| -> Result<(), GhostError> {
        let err = io(&path);
        // Sized first, then only the runs of data written: holes stay holes.
        if let Some(size) = e.size {
            file.set_len(size).map_err(io(&path))?;
        }
        let mut out = &file;
        if e.chunks == Some(true) {
            while let Some(c) = r.next_message::<pb::GhostChunkEntry>()? {
                out.seek(std::io::SeekFrom::Start(c.off))
                    .map_err(io(&path))?;
                r.copy_payload(c.len, &mut out)?;
            }
        } else if let Some(left) = r.remaining() {
            r.copy_payload(left, &mut out)?;
        } else {
            out.write_all(&r.rest()?).map_err(io(&path))?;
        }
        let fd = std::os::fd::AsFd::as_fd(&file);
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(e.uid)),
            Some(rustix::fs::Gid::from_raw(e.gid)),
        )
        .map_err(|x| err(x.into()))?;
        rustix::fs::fchmod(fd, rustix::fs::Mode::from_raw_mode(e.mode & 0o7777))
            .map_err(|x| io(&path)(x.into()))?;
        let ts = |t: &Option<pb::Timeval>| match t {
            Some(t) => rustix::fs::Timespec {
                tv_sec: t.tv_sec as i64,
                tv_nsec: (t.tv_usec * 1000) as _,
            },
            None => rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT as _,
            },
        };
        let times = rustix::fs::Timestamps {
            last_access: ts(&e.atim),
            last_modification: ts(&e.mtim),
        };
        rustix::fs::futimens(fd, &times).map_err(|x| io(&path)(x.into()))?;
        Ok(())
    })();
    if let Err(err) = filled {
        let _ = std::fs::remove_file(&path);
        return Err(err);
    }
    crate::pr_debug!("ghost file {id} created at {}", path.display());
    Ok(path)
}
