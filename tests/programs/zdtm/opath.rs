//! `O_PATH` descriptors (`PROGRAM DIR`): of a regular file, of a
//! directory, of a symlink itself (`O_NOFOLLOW`), of `/dev/null`, and of a
//! file then unlinked. They have no owner, position or I/O, only a name.
//! After restore each is still `O_PATH` (with `O_NOFOLLOW` where it was),
//! names the same inode, and works as what it is: `openat` relative to
//! the directory, `readlinkat` of the symlink, `fstat` of the others.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};
use zdtm::ensure;

struct Held {
    name: &'static str,
    fd: OwnedFd,
    /// (dev, ino) at setup.
    id: (u64, u64),
    flags: OFlags,
}

fn id_of(fd: &OwnedFd) -> Result<(u64, u64), String> {
    // A symlink's own stat: fstatat(fd, "", AT_EMPTY_PATH).
    let st = rustix::fs::statat(fd, "", AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| format!("fstatat: {e}"))?;
    #[allow(clippy::useless_conversion)] // st_dev's width varies by arch
    Ok((u64::from(st.st_dev), u64::from(st.st_ino)))
}

fn fdinfo_flags(fd: &OwnedFd) -> Result<u32, String> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .map_err(|e| e.to_string())?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .ok_or("no flags: line")?;
    u32::from_str_radix(line.trim(), 8).map_err(|e| e.to_string())
}

fn setup(args: &zdtm::Args) -> Result<Vec<Held>, String> {
    let dir = &args.dir;
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).map_err(|e| e.to_string())?;
    std::fs::write(sub.join("inside"), b"inside").map_err(|e| e.to_string())?;
    std::fs::write(dir.join("file"), b"file").map_err(|e| e.to_string())?;
    std::fs::write(dir.join("gone"), b"gone").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(dir.join("link"));
    std::os::unix::fs::symlink("file", dir.join("link")).map_err(|e| e.to_string())?;
    let path = OFlags::PATH | OFlags::CLOEXEC;
    let mut held = Vec::new();
    for (name, at, flags) in [
        ("file", dir.join("file"), path),
        ("dir", sub.clone(), path | OFlags::DIRECTORY),
        ("symlink", dir.join("link"), path | OFlags::NOFOLLOW),
        ("null", Path::new("/dev/null").to_path_buf(), path),
        ("unlinked", dir.join("gone"), path),
    ] {
        let fd = rustix::fs::open(&at, flags, Mode::empty())
            .map_err(|e| format!("open {}: {e}", at.display()))?;
        held.push(Held {
            name,
            id: id_of(&fd)?,
            fd,
            flags: flags & !OFlags::CLOEXEC,
        });
    }
    std::fs::remove_file(dir.join("gone")).map_err(|e| e.to_string())?;
    Ok(held)
}

fn check(held: Vec<Held>) -> Result<(), String> {
    for h in &held {
        let flags = fdinfo_flags(&h.fd)?;
        // fdinfo shows f_flags: O_DIRECTORY is not kept there.
        let want = (h.flags & !OFlags::DIRECTORY).bits();
        ensure(flags & want == want, || {
            format!("{}: flags {flags:#o}, want {want:#o} among them", h.name)
        })?;
        // An unlinked file comes back as a new (unlinked) copy.
        let id = id_of(&h.fd)?;
        ensure(id == h.id || h.name == "unlinked", || {
            format!("{}: names {id:?}, was {:?}", h.name, h.id)
        })?;
        match h.name {
            "dir" => {
                let f = rustix::fs::openat(&h.fd, "inside", OFlags::RDONLY, Mode::empty())
                    .map_err(|e| format!("openat(dir, inside): {e}"))?;
                let mut buf = [0u8; 16];
                let n = rustix::io::read(&f, &mut buf).map_err(|e| e.to_string())?;
                ensure(&buf[..n] == b"inside", || "dir/inside reads wrong".into())?;
            }
            "symlink" => {
                let t = rustix::fs::readlinkat(&h.fd, "", Vec::new())
                    .map_err(|e| format!("readlinkat(symlink fd): {e}"))?;
                ensure(t.as_bytes() == b"file", || {
                    format!("the symlink now points to {t:?}")
                })?;
            }
            "unlinked" => {
                let meta = std::fs::metadata(format!("/proc/self/fd/{}", h.fd.as_raw_fd()))
                    .map_err(|e| e.to_string())?;
                ensure(meta.nlink() == 0 && meta.size() == 4, || {
                    format!(
                        "the unlinked file has {} links and {} bytes",
                        meta.nlink(),
                        meta.size()
                    )
                })?;
            }
            _ => {}
        }
        // No I/O through an O_PATH fd.
        let read = rustix::io::read(&h.fd, &mut [0u8; 1]);
        ensure(read == Err(rustix::io::Errno::BADF), || {
            format!("{}: read on it gave {read:?}, not EBADF", h.name)
        })?;
    }
    Ok(())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
