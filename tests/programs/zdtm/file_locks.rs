//! File locks: flock LOCK_EX on DIR/ex, flock LOCK_SH on DIR/sh, POSIX
//! locks on DIR/posix (write [10, 20), read [100, EOF)) and an OFD write
//! lock on DIR/ofd [0, 5). After restore (both with --file-locks) another
//! process (this program started again with `--probe DIR PID`) checks
//! that every lock is still held, with F_GETLK / F_OFD_GETLK and
//! non-blocking flock, and that nothing else is locked.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use zdtm::ensure;

const F_GETLK: usize = 5;
const F_SETLK: usize = 6;
const F_OFD_GETLK: usize = 36;
const F_OFD_SETLK: usize = 37;
const F_RDLCK: i16 = 0;
const F_WRLCK: i16 = 1;
const F_UNLCK: i16 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Flock {
    l_type: i16,
    l_whence: i16,
    l_start: i64,
    l_len: i64,
    l_pid: i32,
}

fn fcntl_lock(fd: impl AsFd, cmd: usize, l: &mut Flock) -> Result<(), String> {
    // SAFETY: the kernel reads/writes one struct flock at `l`.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::FCNTL,
            fd.as_fd().as_raw_fd() as usize,
            cmd,
            l as *mut Flock as usize,
        )
    };
    zdtm::errno(ret, "fcntl(lock)").map(drop)
}

fn lock(ty: i16, start: i64, len: i64) -> Flock {
    Flock {
        l_type: ty,
        l_start: start,
        l_len: len,
        ..Flock::default()
    }
}

fn open(p: &Path) -> Result<OwnedFd, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .map(OwnedFd::from)
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// The other process's view: every lock held by `pid`, nothing else.
fn probe(dir: &Path, pid: i32) -> Result<(), String> {
    use rustix::fs::{FlockOperation, flock};
    let ex = open(&dir.join("ex"))?;
    ensure(
        flock(&ex, FlockOperation::NonBlockingLockShared).is_err(),
        || "DIR/ex: not flock(LOCK_EX)ed any more".into(),
    )?;
    let sh = open(&dir.join("sh"))?;
    flock(&sh, FlockOperation::NonBlockingLockShared)
        .map_err(|e| format!("DIR/sh: shared flock refused: {e}"))?;
    ensure(
        flock(&sh, FlockOperation::NonBlockingLockExclusive).is_err(),
        || "DIR/sh: not flock(LOCK_SH)ed any more".into(),
    )?;
    let posix = open(&dir.join("posix"))?;
    for (start, len, want, what) in [
        (10, 10, F_WRLCK, "[10, 20)"),
        (50, 10, F_UNLCK, "[50, 60)"),
        (100, 0, F_RDLCK, "[100, EOF)"),
    ] {
        let mut l = lock(F_WRLCK, start, len);
        fcntl_lock(&posix, F_GETLK, &mut l)?;
        ensure(l.l_type == want, || format!("DIR/posix {what}: {l:?}"))?;
        if want != F_UNLCK {
            ensure(
                l.l_pid == pid && l.l_start == start && l.l_len == len,
                || format!("DIR/posix {what}: {l:?} (want pid {pid})"),
            )?;
        }
    }
    let ofd = open(&dir.join("ofd"))?;
    let mut l = lock(F_WRLCK, 0, 100);
    fcntl_lock(&ofd, F_OFD_GETLK, &mut l)?;
    ensure(
        l.l_type == F_WRLCK && l.l_start == 0 && l.l_len == 5,
        || format!("DIR/ofd: {l:?}"),
    )
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).is_some_and(|a| a == "--probe") {
        let pid = argv[3].parse().unwrap_or(0);
        let verdict = probe(Path::new(&argv[2]), pid);
        match verdict {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }
    zdtm::run(
        |args| {
            use rustix::fs::{FlockOperation, flock};
            let d = &args.dir;
            let ex = open(&d.join("ex"))?;
            flock(&ex, FlockOperation::LockExclusive).map_err(|e| e.to_string())?;
            let sh = open(&d.join("sh"))?;
            flock(&sh, FlockOperation::LockShared).map_err(|e| e.to_string())?;
            let posix = open(&d.join("posix"))?;
            fcntl_lock(&posix, F_SETLK, &mut lock(F_WRLCK, 10, 10))?;
            fcntl_lock(&posix, F_SETLK, &mut lock(F_RDLCK, 100, 0))?;
            let ofd = open(&d.join("ofd"))?;
            fcntl_lock(&ofd, F_OFD_SETLK, &mut lock(F_WRLCK, 0, 5))?;
            Ok((d.clone(), [ex, sh, posix, ofd]))
        },
        |_| {},
        |(dir, _fds)| {
            let out =
                std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
                    .arg("--probe")
                    .arg(&dir)
                    .arg(std::process::id().to_string())
                    .output()
                    .map_err(|e| format!("probe: {e}"))?;
            ensure(out.status.success(), || {
                format!("probe: {}", String::from_utf8_lossy(&out.stderr).trim())
            })
        },
    );
}
