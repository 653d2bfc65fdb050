//! inotify instances (`anon_inode:inotify`) and their watches, from fdinfo
//! `inotify wd: ino: sdev: mask: ignored_mask: fhandle-bytes: fhandle-type:
//! f_handle:` lines.
//!
//! A watch names its inode by a file handle; restore opens the inode with
//! `open_by_handle_at` (needs `CAP_DAC_READ_SEARCH`) and watches it through
//! `/proc/self/fd/N`. Watch descriptors must come back with their numbers:
//! the kernel hands them out in increasing order (cyclically), so a watch
//! that gets too low a number is removed and added again until it has its
//! own, as CRIU does. The `IN_IGNORED` events that leaves behind are read
//! away before the task gets the instance.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::inotify;

use super::{SysFail, fail, set_status_flags};
use crate::images::pb;
use crate::proc::fdinfo::{FdInfo, InotifyWatch};

/// Handles take at least this many 64-bit words in `fh_entry.handle`.
const FH_MIN_WORDS: usize = 16;
/// `IN_MASK_ADD` and `IN_MASK_CREATE`: requests, not watch state.
const IN_MASK_REQUESTS: u32 =
    linux_raw_sys::general::IN_MASK_ADD | linux_raw_sys::general::IN_MASK_CREATE;
/// Most add/remove rounds spent to reach a watch's number.
const MAX_WD_ROUNDS: i32 = 1 << 20;
const O_PATH: u32 = linux_raw_sys::general::O_PATH;
const O_CLOEXEC: u32 = linux_raw_sys::general::O_CLOEXEC;

#[derive(Debug, thiserror::Error)]
pub enum InotifyError {
    #[error(transparent)]
    Sys(#[from] SysFail),
    #[error("watch {wd}: no mount of device {major}:{minor} to open its file handle on")]
    NoMount { wd: u32, major: u32, minor: u32 },
    #[error("watch {wd}: cannot find the watched inode {ino} ({reason})")]
    Inode { wd: u32, ino: u64, reason: String },
    #[error("watch {wd}: the kernel gave watch descriptor {got}, past it; cannot restore it")]
    WdPassed { wd: u32, got: i32 },
    /// Dump: a watch whose inode cannot be found again at restore.
    #[error("its watch {wd} (inode {ino}) has no file handle (the filesystem cannot export one)")]
    NoHandle { wd: i32, ino: u64 },
    /// Dump with `--force-irmap`: the images must name every watched
    /// inode by path, and this one's handle leads to none.
    #[error(
        "its watch {wd} (inode {ino}) has no path criu can find (its file handle does not \
         open: {why}), and --force-irmap asks for a path for every watch"
    )]
    NoPath { wd: i32, ino: u64, why: String },
}

/// The kernel's `s_dev` encoding: (major, minor).
fn kdev(sdev: u32) -> (u32, u32) {
    (sdev >> 20, sdev & 0xf_ffff)
}

/// Mount-point fds by device, to open file handles on.
#[derive(Default)]
pub struct MountFds {
    fds: HashMap<u32, OwnedFd>,
}

impl MountFds {
    fn get(&mut self, sdev: u32, wd: u32) -> Result<&OwnedFd, InotifyError> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.fds.entry(sdev) {
            let (major, minor) = kdev(sdev);
            let no_mount = || InotifyError::NoMount { wd, major, minor };
            let mounts = crate::proc::ProcDir::open_self()
                .and_then(|p| p.mountinfo())
                .map_err(|_| no_mount())?;
            let m = mounts
                .iter()
                .find(|m| m.major == major && m.minor == minor)
                .ok_or_else(no_mount)?;
            // Not O_PATH: open_by_handle_at takes a real open file.
            let fd = rustix::fs::open(
                &m.mount_point,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|_| no_mount())?;
            slot.insert(fd);
        }
        Ok(&self.fds[&sdev])
    }

    /// Opens (`O_PATH`) the inode file handle `fh` names on device `sdev`.
    fn open(&mut self, sdev: u32, fh: &pb::FhEntry, wd: u32) -> Result<OwnedFd, InotifyError> {
        let mount = self.get(sdev, wd)?;
        let bytes: Vec<u8> = fh.handle.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let len = (fh.bytes as usize).min(bytes.len());
        crate::sys::anonfd::open_by_handle_at(
            mount,
            fh.r#type as i32,
            &bytes[..len],
            O_PATH | O_CLOEXEC,
        )
        .map_err(|e| InotifyError::Inode {
            wd,
            ino: 0,
            reason: format!("open_by_handle_at: {e}"),
        })
    }
}

/// The watch's handle, with the path it opens to where it opens (else
/// why not).
fn fh_entry(w: &InotifyWatch, mounts: &mut MountFds) -> Option<(pb::FhEntry, Option<String>)> {
    let h = w.fhandle.as_ref()?;
    let mut words: Vec<u64> = h
        .handle
        .chunks(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            u64::from_ne_bytes(b)
        })
        .collect();
    words.resize(words.len().max(FH_MIN_WORDS), 0);
    let mut fh = pb::FhEntry {
        bytes: h.bytes,
        r#type: h.handle_type as u32,
        handle: words,
        path: None,
        mnt_id: None,
    };
    // The path too, when it can be found: a fallback for a restore where
    // the handle cannot be opened (so always found, as CRIU finds it only
    // with --force-irmap).
    let why = match mounts.open(w.sdev, &fh, w.wd as u32) {
        Ok(fd) => {
            let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
            match std::fs::read_link(link) {
                Ok(p) => {
                    fh.path = Some(p.to_string_lossy().into_owned());
                    None
                }
                Err(e) => Some(format!("readlink: {e}")),
            }
        }
        Err(e) => Some(e.to_string()),
    };
    Some((fh, why))
}

/// The `files.img` entry of an inotify instance with id `id`; `flags` are
/// the file's `O_*` flags without `O_CLOEXEC`. A watch without a file
/// handle (a filesystem that cannot export one) is refused; so is, with
/// `force_irmap` (`--force-irmap`), one whose handle leads to no path.
pub fn dump(
    id: u32,
    flags: u32,
    info: &FdInfo,
    force_irmap: bool,
) -> Result<pb::FileEntry, InotifyError> {
    let mut mounts = MountFds::default();
    let mut wds = Vec::with_capacity(info.inotify_watches.len());
    for w in &info.inotify_watches {
        let (f_handle, why) = fh_entry(w, &mut mounts).ok_or(InotifyError::NoHandle {
            wd: w.wd,
            ino: w.ino,
        })?;
        if let (true, Some(why)) = (force_irmap, why) {
            return Err(InotifyError::NoPath {
                wd: w.wd,
                ino: w.ino,
                why,
            });
        }
        wds.push(pb::InotifyWdEntry {
            id,
            i_ino: w.ino,
            mask: w.mask,
            ignored_mask: w.ignored_mask,
            s_dev: w.sdev,
            wd: w.wd as u32,
            f_handle,
        });
    }
    Ok(pb::FileEntry {
        r#type: pb::FdTypes::Inotify as i32,
        id,
        ify: Some(pb::InotifyFileEntry {
            id,
            flags,
            fown: pb::FownEntry::default(),
            wd: wds,
        }),
        ..Default::default()
    })
}

/// In a tree with a mount namespace of its own, each watch is named as
/// the tree sees it, as CRIU's dump names it (CRIU's restore of a watch
/// with a path and no mount there stops on a BUG_ON): its handle opened
/// through a mount of the namespace (`/proc/PID/root` and the mount
/// point), the path that gives, checked to lead to the watched inode from
/// the namespace's root, and the mount it is on. A watch no mount of the
/// namespace leads to keeps its handle alone (refused with
/// `force_irmap`).
pub fn name_in_mount_ns(
    entries: &mut [pb::FileEntry],
    pid: i32,
    mounts: &[pb::MntEntry],
    force_irmap: bool,
) -> Result<(), super::table::FilesError> {
    let root = format!("/proc/{pid}/root");
    for i in entries.iter_mut().filter_map(|e| e.ify.as_mut()) {
        name_watches(i, &root, pid, mounts, force_irmap)
            .map_err(|source| super::table::FilesError::Inotify { id: i.id, source })?;
    }
    Ok(())
}

fn name_watches(
    i: &mut pb::InotifyFileEntry,
    root: &str,
    pid: i32,
    mounts: &[pb::MntEntry],
    force_irmap: bool,
) -> Result<(), InotifyError> {
    for w in &mut i.wd {
        let found = mounts
            .iter()
            .filter(|m| m.root_dev == w.s_dev)
            .find_map(|m| path_through(root, &m.mountpoint, w));
        match found {
            Some((path, mnt_id)) => {
                w.f_handle.path = Some(path);
                w.f_handle.mnt_id = Some(mnt_id);
            }
            None if force_irmap => {
                return Err(InotifyError::NoPath {
                    wd: w.wd as i32,
                    ino: w.i_ino,
                    why: format!("no mount of task {pid}'s mount namespace leads to it"),
                });
            }
            None => {
                w.f_handle.path = None;
                w.f_handle.mnt_id = None;
            }
        }
    }
    Ok(())
}

/// The path (as the namespace of `root` sees it) and mount id of the
/// inode watch `w` names, through the mount at `mountpoint` there.
fn path_through(root: &str, mountpoint: &str, w: &pb::InotifyWdEntry) -> Option<(String, u32)> {
    use rustix::fs::{AtFlags, StatxFlags};
    let mount = rustix::fs::open(
        format!("{root}{mountpoint}").as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    let fh = &w.f_handle;
    let bytes: Vec<u8> = fh.handle.iter().flat_map(|x| x.to_ne_bytes()).collect();
    let len = (fh.bytes as usize).min(bytes.len());
    let fd = crate::sys::anonfd::open_by_handle_at(
        &mount,
        fh.r#type as i32,
        &bytes[..len],
        O_PATH | O_CLOEXEC,
    )
    .ok()?;
    // The link of a file of another mount namespace reads as that
    // namespace shows it.
    let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let path = path.to_str()?.to_string();
    let st = rustix::fs::statx(
        rustix::fs::CWD,
        format!("{root}{path}").as_str(),
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::INO | StatxFlags::MNT_ID,
    )
    .ok()?;
    (st.stx_ino == w.i_ino).then_some((path, st.stx_mnt_id as u32))
}

/// The path to watch the inode of `w` through: its handle opened (the fd
/// is kept in `keep` while it is used), else the path saved at dump
/// (below `root`, the restored tree's `/` as the tool sees it, for a path
/// the tree's own mount namespace gave: one with its mount).
fn watch_path(
    w: &pb::InotifyWdEntry,
    mounts: &mut MountFds,
    keep: &mut Vec<OwnedFd>,
    root: &std::path::Path,
) -> Result<PathBuf, InotifyError> {
    match mounts.open(w.s_dev, &w.f_handle, w.wd) {
        Ok(fd) => {
            let p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            keep.push(fd);
            Ok(p)
        }
        Err(e) => match (&w.f_handle.path, w.f_handle.mnt_id) {
            (Some(p), Some(_)) => Ok(root.join(p.trim_start_matches('/'))),
            (Some(p), None) => Ok(PathBuf::from(p)),
            (None, _) => Err(match e {
                InotifyError::Inode { reason, .. } => InotifyError::Inode {
                    wd: w.wd,
                    ino: w.i_ino,
                    reason,
                },
                other => other,
            }),
        },
    }
}

/// A new inotify instance with the dumped watches under their numbers.
pub fn open(e: &pb::InotifyFileEntry, root: &std::path::Path) -> Result<OwnedFd, InotifyError> {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(fail("inotify_init1"))?;
    let mut mounts = MountFds::default();
    let mut watches: Vec<&pb::InotifyWdEntry> = e.wd.iter().collect();
    watches.sort_by_key(|w| w.wd);
    let mut removed = false;
    for w in watches {
        let mut keep = Vec::new();
        let path = watch_path(w, &mut mounts, &mut keep, root)?;
        let mask = inotify::WatchFlags::from_bits_retain(w.mask & !IN_MASK_REQUESTS);
        let mut rounds = 0;
        loop {
            let got =
                inotify::add_watch(&fd, &path, mask).map_err(|errno| InotifyError::Inode {
                    wd: w.wd,
                    ino: w.i_ino,
                    reason: format!("inotify_add_watch({}): {errno}", path.display()),
                })?;
            if got == w.wd as i32 {
                break;
            }
            if got > w.wd as i32 || rounds >= MAX_WD_ROUNDS {
                return Err(InotifyError::WdPassed { wd: w.wd, got });
            }
            inotify::remove_watch(&fd, got).map_err(fail("inotify_rm_watch"))?;
            removed = true;
            rounds += 1;
        }
    }
    if removed {
        drain(&fd);
    }
    // Created non-blocking to drain it; the dumped flags say what it was.
    rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::empty()).map_err(fail("fcntl(F_SETFL)"))?;
    set_status_flags(&fd, e.flags)?;
    Ok(fd)
}

/// Reads away the `IN_IGNORED` events the removed watches queued.
fn drain(fd: impl AsFd) {
    let mut buf = [0u8; 4096];
    while matches!(rustix::io::read(&fd, &mut buf), Ok(n) if n > 0) {}
}

/// The `INOTIFY` kind: `anon_inode:inotify` fds.
pub struct Inotify;

impl super::kind::FileKind for Inotify {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Inotify
    }

    fn claims(&self, fd: &super::table::FdView<'_>) -> bool {
        fd.anon_name() == Some("inotify")
    }

    fn dump(
        &self,
        files: &mut super::table::FileTable,
        v: &super::table::FdView<'_>,
    ) -> Result<u32, super::table::FilesError> {
        let id = files.next_id();
        let e = dump(id, v.ctx.flags, v.info, v.opts.force_irmap)
            .map_err(|why| v.ctx.fail("an inotify instance", why))?;
        files.entries.push(e);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &super::FileImages) -> Option<(pb::FownEntry, u32)> {
        e.ify.as_ref().map(|x| (x.fown, x.flags))
    }

    fn open(
        &self,
        o: &mut super::Opener<'_>,
        e: &pb::FileEntry,
    ) -> Result<OwnedFd, super::FileError> {
        let x = e
            .ify
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, "an inotify instance"))?;
        open(x, &o.root).map_err(|f| super::restore_err(e.id, "an inotify instance", f.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::fdinfo::FileHandle;

    /// A watch whose handle opens to nothing (a stale handle on the root's
    /// device) is dumped by handle alone, or refused with --force-irmap.
    #[test]
    fn force_irmap_refuses_a_watch_without_a_path() {
        let st = rustix::fs::stat("/").unwrap();
        let (major, minor) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
        let info = FdInfo {
            inotify_watches: vec![InotifyWatch {
                wd: 7,
                ino: 1,
                sdev: (major << 20) | minor,
                mask: 0x100,
                ignored_mask: 0,
                // No filesystem hands out this handle type.
                fhandle: Some(FileHandle {
                    bytes: 8,
                    handle_type: 0x7e,
                    handle: vec![0xff; 8],
                }),
            }],
            ..Default::default()
        };
        let e = dump(1, 0, &info, false).unwrap();
        let w = &e.ify.unwrap().wd[0];
        assert_eq!((w.wd, w.f_handle.path.as_deref()), (7, None));
        let err = dump(1, 0, &info, true).unwrap_err();
        assert!(matches!(err, InotifyError::NoPath { wd: 7, .. }), "{err}");
        assert!(err.to_string().contains("--force-irmap"), "{err}");
    }
}
