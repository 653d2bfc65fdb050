//! The names of unix sockets at restore: binding a socket to its dumped
//! name (a relative one from its directory, `name_dir`), giving its socket file the dumped mode and owner
//! (`unix_sk_entry.file_perms`), and sockets whose file had been removed
//! (`deleted`), as CRIU's `bind_on_deleted` does them: the name is bound
//! again (its missing directories made, anything now at that path moved
//! aside meanwhile), the socket file is kept open `O_PATH`, then removed
//! with the directories made for it and whatever was moved aside put
//! back. Sockets connecting to such a socket reach it through that
//! descriptor (`/proc/self/fd/N`), the only way left to name it.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::SocketAddrUnix;

use super::{addr, path_bytes};
use crate::files::sockets::SockError;
use crate::images::pb;

/// What a file in the way of a removed socket's name is parked as while
/// the name is bound again (CRIU's `UNIX_GHOST_FMT`).
const PARKED_SUFFIX: &str = ".criu-sk-ghost";

/// Sockets bound to names whose files are gone, by inode: an `O_PATH`
/// descriptor of each one's (removed) socket file.
#[derive(Default)]
pub(super) struct Names {
    removed: HashMap<u32, OwnedFd>,
}

impl Names {
    /// Binds `fd` to the name of `u`, if it has one. A stale socket file in
    /// the way of a live name is removed first (anything else there is an
    /// error); the socket file gets the dumped mode and owner.
    pub(super) fn bind(&mut self, fd: &OwnedFd, u: &pb::UnixSkEntry) -> Result<(), SockError> {
        if u.name.is_empty() {
            return Ok(());
        }
        let a = addr(&u.name).map_err(SockError::call("its name"))?;
        if u.name[0] != b'/'
            && u.name[0] != 0
            && let Some(dir) = &u.name_dir
        {
            // A relative name is bound as it was, from its directory.
            return in_dir(Path::new(dir), || self.bind_path(fd, u, &a));
        }
        self.bind_path(fd, u, &a)
    }

    fn bind_path(
        &mut self,
        fd: &OwnedFd,
        u: &pb::UnixSkEntry,
        a: &SocketAddrUnix,
    ) -> Result<(), SockError> {
        let Some(path) = path_of(u) else {
            return rustix::net::bind(fd, a).map_err(SockError::call("bind"));
        };
        if u.deleted == Some(true) {
            let kept = bind_removed(fd, a, &path, u.file_perms.as_ref())?;
            self.removed.insert(u.ino, kept);
            return Ok(());
        }
        if let Ok(m) = std::fs::symlink_metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            if !m.file_type().is_socket() {
                return Err(SockError::Refused(format!(
                    "{} exists and is not a socket",
                    path.display()
                )));
            }
            std::fs::remove_file(&path)
                .map_err(|e| SockError::io(format!("removing stale {}", path.display()), e))?;
        }
        rustix::net::bind(fd, a).map_err(SockError::call("bind"))?;
        set_perms(&path, u.file_perms.as_ref())
    }

    /// The address to reach socket `u` at: its name, or for one whose
    /// file was removed the descriptor kept of it.
    pub(super) fn addr_of(&self, u: &pb::UnixSkEntry) -> Result<SocketAddrUnix, Errno> {
        match (self.removed.get(&u.ino), &u.name_dir) {
            (Some(kept), _) => SocketAddrUnix::new(format!("/proc/self/fd/{}", kept.as_raw_fd())),
            (None, Some(dir)) if u.name.first().is_some_and(|&c| c != b'/' && c != 0) => {
                SocketAddrUnix::new(
                    Path::new(dir).join(std::ffi::OsStr::from_bytes(path_bytes(&u.name))),
                )
            }
            _ => addr(&u.name),
        }
    }
}

/// The path of a socket bound to a path name (relative to the current
/// directory for a relative name).
fn path_of(u: &pb::UnixSkEntry) -> Option<PathBuf> {
    (u.name.first().is_some_and(|&c| c != 0))
        .then(|| PathBuf::from(std::ffi::OsStr::from_bytes(path_bytes(&u.name))))
}

/// Runs `f` with `dir` as the tool's current directory (as CRIU binds a
/// relative name), then returns to the one before, whatever happened.
fn in_dir<T>(dir: &Path, f: impl FnOnce() -> Result<T, SockError>) -> Result<T, SockError> {
    let back = rustix::fs::open(
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(SockError::call("the current directory"))?;
    rustix::process::chdir(dir)
        .map_err(|e| SockError::sys(format!("chdir {}", dir.display()), e))?;
    let r = f();
    rustix::process::fchdir(&back).map_err(SockError::call("back to the current directory"))?;
    r
}

/// Gives the socket file at `path` the dumped owner and mode.
fn set_perms(path: &Path, perms: Option<&pb::FilePermsEntry>) -> Result<(), SockError> {
    let Some(p) = perms else {
        return Ok(());
    };
    let at = rustix::fs::CWD;
    rustix::fs::chownat(
        at,
        path,
        Some(rustix::fs::Uid::from_raw(p.uid)),
        Some(rustix::fs::Gid::from_raw(p.gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| SockError::sys(format!("chown {}", path.display()), e))?;
    rustix::fs::chmodat(
        at,
        path,
        Mode::from_raw_mode(p.mode & 0o7777),
        rustix::fs::AtFlags::empty(),
    )
    .map_err(|e| SockError::sys(format!("chmod {}", path.display()), e))
}

/// Binds `fd` to `path`, which had been removed: see the module doc. The
/// `O_PATH` descriptor of the socket file.
fn bind_removed(
    fd: &OwnedFd,
    a: &SocketAddrUnix,
    path: &Path,
    perms: Option<&pb::FilePermsEntry>,
) -> Result<OwnedFd, SockError> {
    let made = make_dirs(path.parent().unwrap_or(Path::new("/")))?;
    let parked = PathBuf::from(format!("{}{PARKED_SUFFIX}", path.display()));
    let moved = std::fs::symlink_metadata(path).is_ok();
    let result = (|| {
        if moved {
            std::fs::rename(path, &parked).map_err(|e| {
                SockError::io(
                    format!("moving {} aside to {}", path.display(), parked.display()),
                    e,
                )
            })?;
        }
        let bound = (|| {
            rustix::net::bind(fd, a).map_err(SockError::call("bind"))?;
            let kept = (|| {
                set_perms(path, perms)?;
                rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| SockError::sys(format!("open {}", path.display()), e))
            })();
            // Removed again whatever happened.
            let gone = std::fs::remove_file(path)
                .map_err(|e| SockError::io(format!("removing {} again", path.display()), e));
            let kept = kept?;
            gone.map(|()| kept)
        })();
        if moved {
            std::fs::rename(&parked, path).map_err(|e| {
                SockError::io(
                    format!("moving {} back from {}", path.display(), parked.display()),
                    e,
                )
            })?;
        }
        bound
    })();
    for d in made.iter().rev() {
        if let Err(e) = std::fs::remove_dir(d) {
            crate::pr_warn!("cannot remove {} made for a socket: {e}", d.display());
        }
    }
    result
}

/// Creates the missing directories of `dir` (mode 0755, as CRIU), the
/// outermost first; those it created.
fn make_dirs(dir: &Path) -> Result<Vec<PathBuf>, SockError> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d {
        match std::fs::symlink_metadata(p) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(p.to_path_buf()),
            Err(e) => return Err(SockError::io(p.display().to_string(), e)),
        }
        d = p.parent();
    }
    let mut made = Vec::new();
    for p in missing.into_iter().rev() {
        if let Err(e) = std::fs::create_dir(&p) {
            for m in made.iter().rev() {
                let _ = std::fs::remove_dir(m);
            }
            return Err(SockError::io(format!("creating {}", p.display()), e));
        }
        let _ = rustix::fs::chmod(&p, Mode::from_raw_mode(0o755));
        made.push(p);
    }
    Ok(made)
}
