//! A FIFO (named pipe) in the work directory, open for reading
//! (non-blocking) and for writing, with unread data in it. After restore
//! both fds must be that FIFO (same path and inode), with their flags,
//! hold exactly the data and still be connected.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};
use zdtm::ensure;

struct State {
    path: PathBuf,
    ino: u64,
    r: OwnedFd,
    w: OwnedFd,
    r_flags: OFlags,
    w_flags: OFlags,
    data: Vec<u8>,
}

fn setup(dir: &std::path::Path) -> Result<State, String> {
    let path = dir.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .map_err(|e| format!("mkfifo: {e}"))?;
    let r = rustix::fs::open(&path, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())
        .map_err(|e| format!("open for reading: {e}"))?;
    let w = rustix::fs::open(&path, OFlags::WRONLY, Mode::empty())
        .map_err(|e| format!("open for writing: {e}"))?;
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let mut off = 0;
    while off < data.len() {
        off += rustix::io::write(&w, &data[off..]).map_err(|e| e.to_string())?;
    }
    let ino = rustix::fs::stat(&path).map_err(|e| e.to_string())?.st_ino;
    Ok(State {
        r_flags: rustix::fs::fcntl_getfl(&r).map_err(|e| e.to_string())?,
        w_flags: rustix::fs::fcntl_getfl(&w).map_err(|e| e.to_string())?,
        path,
        ino,
        r,
        w,
        data,
    })
}

fn read_all(fd: impl AsFd, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    let mut off = 0;
    while off < len {
        match rustix::io::read(&fd, &mut buf[off..]) {
            Ok(0) => return Err(format!("EOF after {off} bytes")),
            Ok(n) => off += n,
            Err(e) => return Err(format!("read after {off} of {len} bytes: {e}")),
        }
    }
    Ok(buf)
}

fn check(s: State) -> Result<(), String> {
    for (name, fd, flags) in [("read", &s.r, s.r_flags), ("write", &s.w, s.w_flags)] {
        let st = rustix::fs::fstat(fd).map_err(|e| e.to_string())?;
        ensure(st.st_ino == s.ino, || {
            format!("{name} fd: inode {}, the FIFO is {}", st.st_ino, s.ino)
        })?;
        let now = rustix::fs::fcntl_getfl(fd).map_err(|e| e.to_string())?;
        ensure(now == flags, || {
            format!("{name} fd: flags {now:?}, were {flags:?}")
        })?;
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        s.r.as_raw_fd()
    }))
    .map_err(|e| e.to_string())?;
    ensure(link == s.path, || format!("read fd is {link:?}"))?;
    let avail = rustix::io::ioctl_fionread(&s.r).map_err(|e| e.to_string())?;
    ensure(avail as usize == s.data.len(), || {
        format!("{avail} bytes queued, were {}", s.data.len())
    })?;
    let got = read_all(&s.r, s.data.len())?;
    ensure(got == s.data, || "queued data differs".into())?;
    rustix::io::write(&s.w, b"more").map_err(|e| e.to_string())?;
    let got = read_all(&s.r, 4)?;
    ensure(got == b"more", || "new data differs".into())
}

fn main() {
    zdtm::run(|args| setup(&args.dir), |_| {}, check);
}
