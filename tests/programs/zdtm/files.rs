//! Open files with their positions and flags: a read-only file at an
//! offset, an append-only file, a read-write non-blocking file moved to a
//! high fd with a `dup` of it (one open file, one shared position), a
//! close-on-exec fd, `/dev/null`, a directory, and a file whose name has a
//! space and non-ASCII characters. After restore every fd must name the
//! same file (inode), with the same status flags, fd flags and position,
//! and the dup must still share its position with the original.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::path::PathBuf;

use criu_arch::{nr, syscall1, syscall2, syscall3};
use zdtm::{ensure, errno};

const F_GETFD: usize = 1;
const F_GETFL: usize = 3;
const SEEK_SET: usize = 0;
const SEEK_CUR: usize = 1;
const O_ACCMODE: usize = 0o3;
const O_NONBLOCK: usize = 0o4000;
const O_APPEND: usize = 0o2000;
const O_DIRECTORY: usize = 0o200000;

/// What one fd looked like before the dump.
struct Fd {
    fd: RawFd,
    path: PathBuf,
    ino: u64,
    fl: usize,
    fd_flags: usize,
    pos: usize,
}

fn fcntl(fd: RawFd, cmd: usize) -> Result<usize, String> {
    // SAFETY: F_GETFD/F_GETFL only read the fd's flags.
    errno(unsafe { syscall2(nr::FCNTL, fd as usize, cmd) }, "fcntl")
}

fn lseek(fd: RawFd, off: usize, whence: usize) -> Result<usize, String> {
    // SAFETY: lseek moves or reports the position of one of our fds.
    errno(
        unsafe { syscall3(nr::LSEEK, fd as usize, off, whence) },
        "lseek",
    )
}

fn dup2(from: RawFd, to: RawFd) -> Result<(), String> {
    errno(
        // SAFETY: dup3 puts a copy of our fd `from` at `to`, which we do not use otherwise.
        unsafe { syscall3(nr::DUP3, from as usize, to as usize, 0) },
        "dup3",
    )?;
    // SAFETY: `from` came from into_raw_fd and is closed exactly once.
    errno(unsafe { syscall1(nr::CLOSE, from as usize) }, "close")?;
    Ok(())
}

fn snapshot(fd: RawFd, path: PathBuf) -> Result<Fd, String> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(&path)
        .map_err(|e| format!("stat {path:?}: {e}"))?
        .ino();
    let pos = if fcntl(fd, F_GETFL)? & O_DIRECTORY != 0 {
        0
    } else {
        lseek(fd, 0, SEEK_CUR)?
    };
    Ok(Fd {
        fd,
        ino,
        fl: fcntl(fd, F_GETFL)?,
        fd_flags: fcntl(fd, F_GETFD)?,
        pos,
        path,
    })
}

fn open(path: &std::path::Path, opts: &mut std::fs::OpenOptions) -> Result<RawFd, String> {
    Ok(opts
        .open(path)
        .map_err(|e| format!("open {path:?}: {e}"))?
        .into_raw_fd())
}

fn setup(dir: &std::path::Path) -> Result<Vec<Fd>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let ro = dir.join("ro");
    std::fs::write(&ro, vec![b'r'; 4096]).map_err(|e| e.to_string())?;
    let log = dir.join("append.log");
    std::fs::write(&log, b"first\n").map_err(|e| e.to_string())?;
    let rw = dir.join("rw");
    std::fs::write(&rw, vec![b'w'; 8192]).map_err(|e| e.to_string())?;
    let odd = dir.join("a file ünïcode");
    std::fs::write(&odd, b"odd name").map_err(|e| e.to_string())?;

    let mut fds = Vec::new();
    let fd = open(&ro, std::fs::OpenOptions::new().read(true))?;
    // Rust opens with O_CLOEXEC; keep one fd without it.
    dup2(fd, 5)?;
    lseek(5, 100, SEEK_SET)?;
    fds.push(snapshot(5, ro)?);

    let fd = open(&log, std::fs::OpenOptions::new().append(true))?;
    dup2(fd, 6)?;
    fds.push(snapshot(6, log)?);

    let fd = open(
        &rw,
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_NONBLOCK as i32),
    )?;
    dup2(fd, 100)?;
    lseek(100, 4321, SEEK_SET)?;
    // SAFETY: dup of our own fd 100 to the free fd 101.
    errno(unsafe { syscall3(nr::DUP3, 100, 101, 0) }, "dup3 101")?;
    fds.push(snapshot(100, rw.clone())?);
    fds.push(snapshot(101, rw)?);

    // Stays close-on-exec (as opened by Rust), at whatever number it got.
    let fd = open(&odd, std::fs::OpenOptions::new().read(true))?;
    lseek(fd, 3, SEEK_SET)?;
    fds.push(snapshot(fd, odd)?);

    let fd = open(
        std::path::Path::new("/dev/null"),
        std::fs::OpenOptions::new().read(true).write(true),
    )?;
    dup2(fd, 50)?;
    fds.push(snapshot(50, "/dev/null".into())?);

    let d = std::fs::File::open(dir).map_err(|e| e.to_string())?;
    fds.push(snapshot(d.as_raw_fd(), dir.to_path_buf())?);
    std::mem::forget(d);
    Ok(fds)
}

fn check((fds, before): (Vec<Fd>, Vec<RawFd>)) -> Result<(), String> {
    for f in &fds {
        let now = snapshot(f.fd, f.path.clone()).map_err(|e| format!("fd {}: {e}", f.fd))?;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", f.fd))
            .map_err(|e| format!("fd {}: {e}", f.fd))?;
        ensure(link == f.path, || {
            format!("fd {} is {link:?}, was {:?}", f.fd, f.path)
        })?;
        use std::os::unix::fs::MetadataExt;
        let fd_ino = std::fs::metadata(format!("/proc/self/fd/{}", f.fd))
            .map_err(|e| e.to_string())?
            .ino();
        ensure(fd_ino == f.ino, || {
            format!("fd {}: inode {fd_ino}, file has {}", f.fd, f.ino)
        })?;
        ensure(now.fl == f.fl, || {
            format!("fd {}: flags {:#o}, were {:#o}", f.fd, now.fl, f.fl)
        })?;
        ensure(now.fd_flags == f.fd_flags, || {
            format!(
                "fd {}: fd flags {}, were {}",
                f.fd, now.fd_flags, f.fd_flags
            )
        })?;
        ensure(now.pos == f.pos, || {
            format!("fd {}: position {}, was {}", f.fd, now.pos, f.pos)
        })?;
    }
    // The dup shares its position with fd 100: one open file, not two.
    lseek(100, 777, SEEK_SET)?;
    let shared = lseek(101, 0, SEEK_CUR)?;
    ensure(shared == 777, || {
        format!("fd 101 at {shared} after seeking fd 100 to 777: not shared")
    })?;
    // Append-only still appends, whatever the position says.
    lseek(6, 0, SEEK_SET)?;
    let msg = b"second\n";
    errno(
        // SAFETY: writes our local buffer to our fd 6.
        unsafe { syscall3(nr::WRITE, 6, msg.as_ptr() as usize, msg.len()) },
        "write",
    )?;
    let log = fds.iter().find(|f| f.fd == 6).unwrap();
    let text = std::fs::read_to_string(&log.path).map_err(|e| e.to_string())?;
    ensure(text == "first\nsecond\n", || {
        format!("append.log holds {text:?}")
    })?;
    // The access modes are what they were.
    ensure(fcntl(5, F_GETFL)? & O_ACCMODE == 0, || {
        "fd 5 is not read-only".into()
    })?;
    ensure(fcntl(100, F_GETFL)? & O_NONBLOCK != 0, || {
        "fd 100 lost O_NONBLOCK".into()
    })?;
    ensure(fcntl(6, F_GETFL)? & O_APPEND != 0, || {
        "fd 6 lost O_APPEND".into()
    })?;
    // Nothing more and nothing less is open than before.
    let now = open_fds()?;
    ensure(now == before, || {
        format!("open fds {now:?}, were {before:?}")
    })
}

/// The open fds (including the one reading /proc/self/fd, which gets the
/// same number each time as long as the table is the same).
fn open_fds() -> Result<Vec<RawFd>, String> {
    let mut open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    open.sort();
    Ok(open)
}

fn main() {
    zdtm::run(|args| Ok((setup(&args.dir)?, open_fds()?)), |_| {}, check);
}
