//! Pipes with unread data: a pipe with both ends held and data in it, a
//! partially read pipe, a pipe grown with `F_SETPIPE_SZ` holding more
//! than 64 KiB, a pipe whose write end is closed (data, then EOF), one
//! whose read end is closed (so only the write end is held), a
//! non-blocking write end, and a read end reopened through /proc (its own
//! open file, non-blocking while the first read end is not). After restore each
//! must hold exactly its data, have its size and flags, and its two ends
//! must still be one pipe (what is written to one is read from the
//! other).
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::OFlags;
use rustix::pipe::PipeFlags;
use zdtm::ensure;

const BIG_SIZE: usize = 1 << 20;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn write_all(fd: impl AsFd, data: &[u8]) -> Result<(), String> {
    let mut off = 0;
    while off < data.len() {
        off += rustix::io::write(&fd, &data[off..]).map_err(|e| format!("write: {e}"))?;
    }
    Ok(())
}

fn read_exact(fd: impl AsFd, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    let mut off = 0;
    while off < len {
        let n = rustix::io::read(&fd, &mut buf[off..]).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("EOF after {off} of {len} bytes"));
        }
        off += n;
    }
    Ok(buf)
}

/// One pipe under test.
struct Case {
    name: &'static str,
    r: Option<OwnedFd>,
    w: Option<OwnedFd>,
    /// What is queued in it.
    queued: Vec<u8>,
    size: usize,
    r_flags: OFlags,
    w_flags: OFlags,
}

fn new_pipe() -> Result<(OwnedFd, OwnedFd), String> {
    rustix::pipe::pipe_with(PipeFlags::empty()).map_err(|e| format!("pipe: {e}"))
}

fn flags(fd: &Option<OwnedFd>) -> OFlags {
    fd.as_ref()
        .and_then(|f| rustix::fs::fcntl_getfl(f).ok())
        .unwrap_or(OFlags::empty())
}

fn case(
    name: &'static str,
    r: Option<OwnedFd>,
    w: Option<OwnedFd>,
    queued: Vec<u8>,
) -> Result<Case, String> {
    let any = r.as_ref().or(w.as_ref()).ok_or("no end")?;
    let size = rustix::pipe::fcntl_getpipe_size(any).map_err(|e| e.to_string())?;
    Ok(Case {
        name,
        r_flags: flags(&r),
        w_flags: flags(&w),
        r,
        w,
        queued,
        size,
    })
}

fn setup() -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();

    let (r, w) = new_pipe()?;
    write_all(&w, b"hello through a pipe")?;
    cases.push(case(
        "plain",
        Some(r),
        Some(w),
        b"hello through a pipe".to_vec(),
    )?);

    let (r, w) = new_pipe()?;
    let data = pattern(1, 10_000);
    write_all(&w, &data)?;
    read_exact(&r, 3_000)?;
    cases.push(case(
        "partly-read",
        Some(r),
        Some(w),
        data[3_000..].to_vec(),
    )?);

    let (r, w) = new_pipe()?;
    rustix::pipe::fcntl_setpipe_size(&w, BIG_SIZE).map_err(|e| format!("F_SETPIPE_SZ: {e}"))?;
    let data = pattern(2, 300 * 1024);
    write_all(&w, &data)?;
    cases.push(case("big", Some(r), Some(w), data)?);

    let (r, w) = new_pipe()?;
    write_all(&w, b"last words")?;
    drop(w);
    cases.push(case("writer-gone", Some(r), None, b"last words".to_vec())?);

    let (r, w) = new_pipe()?;
    write_all(&w, b"nobody reads this")?;
    drop(r);
    cases.push(case(
        "reader-gone",
        None,
        Some(w),
        b"nobody reads this".to_vec(),
    )?);

    let (r, w) = new_pipe()?;
    rustix::fs::fcntl_setfl(&w, OFlags::NONBLOCK).map_err(|e| e.to_string())?;
    cases.push(case("nonblock-empty", Some(r), Some(w), Vec::new())?);

    let (r, w) = new_pipe()?;
    write_all(&w, b"two readers")?;
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&r));
    let r2 = rustix::fs::open(
        path.as_str(),
        OFlags::RDONLY | OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("reopen: {e}"))?;
    // The first reader stays blocking (a separate open file), and open.
    let first = case("reopened-first", Some(r), None, Vec::new())?;
    cases.push(case(
        "reopened",
        Some(r2),
        Some(w),
        b"two readers".to_vec(),
    )?);
    cases.push(Case {
        queued: b"two readers".to_vec(),
        ..first
    });
    Ok(cases)
}

fn check_case(c: &Case) -> Result<(), String> {
    let ctx = |e: String| format!("{}: {e}", c.name);
    if c.name == "reopened-first" {
        // Its data was read through the other reader; only its flags
        // (blocking, unlike the other) and its pipe are left to check.
        return ensure(flags(&c.r) == c.r_flags, || {
            ctx(format!("flags {:?}, were {:?}", flags(&c.r), c.r_flags))
        });
    }
    ensure(flags(&c.r) == c.r_flags && flags(&c.w) == c.w_flags, || {
        ctx(format!(
            "flags {:?}/{:?}, were {:?}/{:?}",
            flags(&c.r),
            flags(&c.w),
            c.r_flags,
            c.w_flags
        ))
    })?;
    let any = c.r.as_ref().or(c.w.as_ref()).ok_or("no end")?;
    let size = rustix::pipe::fcntl_getpipe_size(any).map_err(|e| ctx(e.to_string()))?;
    ensure(size == c.size, || {
        ctx(format!("pipe size {size}, was {}", c.size))
    })?;
    if let (Some(r), Some(w)) = (&c.r, &c.w) {
        let a = rustix::fs::fstat(r).map_err(|e| ctx(e.to_string()))?;
        let b = rustix::fs::fstat(w).map_err(|e| ctx(e.to_string()))?;
        ensure(
            a.st_ino == b.st_ino,
            || ctx("the ends are two pipes".into()),
        )?;
    }
    let Some(r) = &c.r else {
        // Only the write end: the data is still in the pipe.
        let w = c.w.as_ref().ok_or("no end")?;
        let n = rustix::io::ioctl_fionread(w).map_err(|e| ctx(e.to_string()))?;
        return ensure(n as usize == c.queued.len(), || {
            ctx(format!("{n} bytes queued, were {}", c.queued.len()))
        });
    };
    let avail = rustix::io::ioctl_fionread(r).map_err(|e| ctx(e.to_string()))?;
    ensure(avail as usize == c.queued.len(), || {
        ctx(format!("{avail} bytes queued, were {}", c.queued.len()))
    })?;
    let got = read_exact(r, c.queued.len()).map_err(ctx)?;
    ensure(got == c.queued, || ctx("queued data differs".into()))?;
    match &c.w {
        Some(w) => {
            write_all(w, b"after restore").map_err(ctx)?;
            let got = read_exact(r, 13).map_err(ctx)?;
            ensure(got == b"after restore", || ctx("new data differs".into()))?;
        }
        None => {
            let mut b = [0u8; 1];
            let n = rustix::io::read(r, &mut b).map_err(|e| ctx(e.to_string()))?;
            ensure(n == 0, || ctx("no EOF after the data".into()))?;
        }
    }
    Ok(())
}

fn main() {
    zdtm::run(
        |_| setup(),
        |_| {},
        |cases| {
            for c in &cases {
                check_case(c)?;
            }
            Ok(())
        },
    );
}
