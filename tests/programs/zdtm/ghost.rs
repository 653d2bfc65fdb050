//! Unlinked open files (CRIU's ghost files): DIR/ghost (10000 bytes of
//! pattern, mode 0640, owner 1234:2345) open twice (read-write at offset
//! 1234, read-only at 77: two open file descriptions of one inode), then
//! unlinked. With argument `occupied` a new, different file is created at
//! the same path before the dump. With `big`, the file is 3 MiB (over the
//! default ghost limit). After restore both fds see the contents, mode,
//! owner, size and their offsets, the inode has no link, and DIR/ghost is
//! absent (or, `occupied`, still the other file).
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use zdtm::ensure;

const SEED: u64 = 4242;

struct State {
    rw: OwnedFd,
    ro: OwnedFd,
    path: PathBuf,
    size: usize,
    occupied: bool,
}

fn pos(fd: impl AsFd) -> Result<u64, String> {
    rustix::fs::seek(fd, rustix::fs::SeekFrom::Current(0)).map_err(|e| e.to_string())
}

fn main() {
    zdtm::run(
        |args| {
            let occupied = args.rest.iter().any(|a| a == "occupied");
            let size = if args.rest.iter().any(|a| a == "big") {
                3 << 20
            } else {
                10_000
            };
            let path = args.dir.join("ghost");
            let mut data = vec![0u8; size];
            zdtm::fill_pattern(&mut data, SEED);
            std::fs::write(&path, &data).map_err(|e| e.to_string())?;
            std::os::unix::fs::chown(&path, Some(1234), Some(2345)).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640))
                .map_err(|e| e.to_string())?;
            let open = |write| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(write)
                    .custom_flags(0)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(|e| e.to_string())
            };
            let (rw, ro) = (open(true)?, open(false)?);
            rustix::fs::seek(&rw, rustix::fs::SeekFrom::Start(1234)).map_err(|e| e.to_string())?;
            rustix::fs::seek(&ro, rustix::fs::SeekFrom::Start(77)).map_err(|e| e.to_string())?;
            std::fs::remove_file(&path).map_err(|e| e.to_string())?;
            if occupied {
                std::fs::write(&path, "someone else").map_err(|e| e.to_string())?;
            }
            Ok(State {
                rw,
                ro,
                path,
                size,
                occupied,
            })
        },
        |_| {},
        |s| {
            for (what, fd, at) in [("rw", &s.rw, 1234), ("ro", &s.ro, 77)] {
                let st = rustix::fs::fstat(fd).map_err(|e| e.to_string())?;
                ensure(st.st_nlink == 0, || {
                    format!("{what}: {} links", st.st_nlink)
                })?;
                ensure(st.st_size as usize == s.size, || {
                    format!("{what}: size {}", st.st_size)
                })?;
                ensure(st.st_mode & 0o7777 == 0o640, || {
                    format!("{what}: mode {:o}", st.st_mode)
                })?;
                ensure((st.st_uid, st.st_gid) == (1234, 2345), || {
                    format!("{what}: owner {}:{}", st.st_uid, st.st_gid)
                })?;
                let p = pos(fd)?;
                ensure(p == at, || format!("{what}: offset {p}, want {at}"))?;
                let mut buf = vec![0u8; s.size];
                let n = rustix::io::pread(fd, &mut buf, 0).map_err(|e| e.to_string())?;
                ensure(n == s.size, || format!("{what}: read {n}"))?;
                zdtm::check_pattern(what, &buf, SEED)?;
                let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                    .map_err(|e| e.to_string())?;
                ensure(link.to_string_lossy().ends_with(" (deleted)"), || {
                    format!("{what}: link {}", link.display())
                })?;
            }
            let a = rustix::fs::fstat(&s.rw).map_err(|e| e.to_string())?;
            let b = rustix::fs::fstat(&s.ro).map_err(|e| e.to_string())?;
            ensure(a.st_ino == b.st_ino, || {
                "the two fds are different files".into()
            })?;
            rustix::io::write(&s.rw, b"XY").map_err(|e| e.to_string())?;
            let mut two = [0u8; 2];
            rustix::io::pread(&s.ro, &mut two, 1234).map_err(|e| e.to_string())?;
            ensure(&two == b"XY", || {
                "a write through rw is not seen through ro".into()
            })?;
            if s.occupied {
                let other = std::fs::read_to_string(&s.path).map_err(|e| e.to_string())?;
                ensure(other == "someone else", || {
                    format!("DIR/ghost holds {other:?}")
                })?;
                let left: Vec<_> = std::fs::read_dir(s.path.parent().unwrap())
                    .map_err(|e| e.to_string())?
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains("ghost") && n != "ghost")
                    .collect();
                ensure(left.is_empty(), || format!("left behind: {left:?}"))
            } else {
                ensure(!s.path.exists(), || "DIR/ghost exists again".into())
            }
        },
    );
}
