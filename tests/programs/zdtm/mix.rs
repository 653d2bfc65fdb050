//! Every kind of fd the restore handles, at once, in a small tree
//! (`PROGRAM DIR [MODE]`).
//!
//! Mode `mix` (default): the root opens a regular file at offset 5 and a
//! dup of it (one offset), the test directory, /dev/null, a memfd at
//! offset 3, a pipe holding data, a FIFO holding data, a unix socket pair
//! with data queued and a listening unix socket, an eventfd (count 5), a
//! signalfd for SIGUSR1, a periodic timerfd, an epoll instance watching
//! the eventfd, the pipe, the socket and the timerfd, an inotify instance
//! watching `DIR/watched`, an unlinked (ghost) file and a file under
//! flock(LOCK_EX) (dumped with `--file-locks`); then forks child C, which
//! inherits them all (one epoll instance in two tasks). After restore C
//! checks what it can without consuming anything (epoll, offsets, memfd)
//! and ends; then the root checks everything, consuming the data.
//! (Processes sharing an fd table: `clone_files.rs`.)
#[path = "lib.rs"]
mod zdtm;

use std::collections::BTreeSet;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::fs::{Mode, OFlags, SeekFrom};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use zdtm::ensure;

const SIGUSR1: u64 = 10;

fn e<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err}")
}

fn exit(code: usize) -> ! {
    // SAFETY: ends this process.
    unsafe { criu_arch::syscall1(criu_arch::nr::EXIT_GROUP, code) };
    unreachable!("exit_group returned")
}

struct Fds {
    file: OwnedFd,
    file_dup: OwnedFd,
    dirfd: OwnedFd,
    null: OwnedFd,
    memfd: OwnedFd,
    pipe_r: OwnedFd,
    _pipe_w: OwnedFd,
    fifo: OwnedFd,
    sk_a: OwnedFd,
    sk_b: OwnedFd,
    listener: OwnedFd,
    efd: OwnedFd,
    sfd: OwnedFd,
    tfd: OwnedFd,
    ep: OwnedFd,
    ify: OwnedFd,
    ghost: OwnedFd,
    _locked: OwnedFd,
}

fn write_all(fd: impl AsFd, data: &[u8]) -> Result<(), String> {
    let n = rustix::io::write(fd, data).map_err(e("write"))?;
    ensure(n == data.len(), || format!("short write {n}"))
}

fn read_some(fd: impl AsFd, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    let n = rustix::io::read(fd, &mut buf).map_err(e("read"))?;
    buf.truncate(n);
    Ok(buf)
}

fn open(path: &Path, flags: OFlags) -> Result<OwnedFd, String> {
    rustix::fs::open(path, flags | OFlags::CREATE, Mode::from_raw_mode(0o600))
        .map_err(|err| format!("open {}: {err}", path.display()))
}

fn setup_fds(dir: &Path) -> Result<Fds, String> {
    let file = open(&dir.join("file"), OFlags::RDWR)?;
    write_all(&file, b"hello world")?;
    rustix::fs::seek(&file, SeekFrom::Start(5)).map_err(e("lseek"))?;
    let file_dup = rustix::io::dup(&file).map_err(e("dup"))?;
    let dirfd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
        .map_err(e("open dir"))?;
    let null = rustix::fs::open("/dev/null", OFlags::WRONLY, Mode::empty()).map_err(e("null"))?;
    let memfd = rustix::fs::memfd_create("zdtm-mix", rustix::fs::MemfdFlags::empty())
        .map_err(e("memfd_create"))?;
    write_all(&memfd, b"memfd data")?;
    rustix::fs::seek(&memfd, SeekFrom::Start(3)).map_err(e("lseek memfd"))?;
    let (pipe_r, pipe_w) = rustix::pipe::pipe().map_err(e("pipe"))?;
    write_all(&pipe_w, b"pipe data")?;
    let fifo_path = dir.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo_path,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .map_err(e("mkfifo"))?;
    let fifo = rustix::fs::open(&fifo_path, OFlags::RDWR | OFlags::NONBLOCK, Mode::empty())
        .map_err(e("open fifo"))?;
    write_all(&fifo, b"fifo data")?;
    let (sk_a, sk_b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK,
        None,
    )
    .map_err(e("socketpair"))?;
    write_all(&sk_a, b"ping")?;
    let listener =
        rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).map_err(e("socket"))?;
    let addr = SocketAddrUnix::new(dir.join("sock")).map_err(e("addr"))?;
    rustix::net::bind(&listener, &addr).map_err(e("bind"))?;
    rustix::net::listen(&listener, 4).map_err(e("listen"))?;
    let efd =
        rustix::event::eventfd(5, rustix::event::EventfdFlags::NONBLOCK).map_err(e("eventfd"))?;
    zdtm::sigprocmask(0, Some(1 << (SIGUSR1 - 1)))?;
    let mask: u64 = 1 << (SIGUSR1 - 1);
    // SAFETY: signalfd4 reads 8 bytes of mask from a live u64.
    let ret = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::SIGNALFD4,
            usize::MAX,
            &mask as *const u64 as usize,
            8,
            0o4000, // SFD_NONBLOCK
        )
    };
    // SAFETY: a fresh fd nothing else owns.
    let sfd = unsafe { OwnedFd::from_raw_fd(zdtm::errno(ret, "signalfd4")? as i32) };
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };
    let tfd = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK)
        .map_err(e("timerfd_create"))?;
    let spec = Itimerspec {
        it_interval: Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        },
        it_value: Timespec {
            tv_sec: 100,
            tv_nsec: 0,
        },
    };
    timerfd_settime(&tfd, TimerfdTimerFlags::empty(), &spec).map_err(e("timerfd_settime"))?;
    let ep = epoll::create(epoll::CreateFlags::empty()).map_err(e("epoll_create"))?;
    for (fd, data) in [
        (efd.as_fd(), 1u64),
        (pipe_r.as_fd(), 2),
        (sk_b.as_fd(), 3),
        (tfd.as_fd(), 4),
    ] {
        epoll::add(&ep, fd, EventData::new_u64(data), EventFlags::IN).map_err(e("epoll_ctl"))?;
    }
    let watched = dir.join("watched");
    std::fs::create_dir(&watched).map_err(e("mkdir watched"))?;
    let ify = rustix::fs::inotify::init(rustix::fs::inotify::CreateFlags::NONBLOCK)
        .map_err(e("inotify_init"))?;
    rustix::fs::inotify::add_watch(&ify, &watched, rustix::fs::inotify::WatchFlags::CREATE)
        .map_err(e("inotify_add_watch"))?;
    let ghost_path = dir.join("ghost");
    let ghost = open(&ghost_path, OFlags::RDWR)?;
    write_all(&ghost, b"ghost data")?;
    std::fs::remove_file(&ghost_path).map_err(e("unlink ghost"))?;
    let locked = open(&dir.join("locked"), OFlags::RDWR)?;
    rustix::fs::flock(&locked, rustix::fs::FlockOperation::LockExclusive).map_err(e("flock"))?;
    Ok(Fds {
        file,
        file_dup,
        dirfd,
        null,
        memfd,
        pipe_r,
        _pipe_w: pipe_w,
        fifo,
        sk_a,
        sk_b,
        listener,
        efd,
        sfd,
        tfd,
        ep,
        ify,
        ghost,
        _locked: locked,
    })
}

/// The epoll instance's ready targets (by data), without consuming.
fn ready(ep: &OwnedFd) -> Result<BTreeSet<u64>, String> {
    let mut buf = Vec::with_capacity(8);
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    epoll::wait(ep, rustix::buffer::spare_capacity(&mut buf), Some(&zero))
        .map_err(e("epoll_wait"))?;
    Ok(buf.iter().map(|ev| ev.data.u64()).collect())
}

fn offset(fd: &OwnedFd) -> Result<u64, String> {
    rustix::fs::seek(fd, SeekFrom::Current(0)).map_err(e("lseek"))
}

/// What both tasks check without changing anything.
fn check_shared(f: &Fds, who: &str) -> Result<(), String> {
    let r = ready(&f.ep)?;
    let want: BTreeSet<u64> = [1, 2, 3].into();
    ensure(r == want, || {
        format!("{who}: epoll reports {r:?}, want {want:?}")
    })?;
    ensure(offset(&f.file)? == 5, || {
        format!("{who}: file offset moved")
    })?;
    ensure(offset(&f.memfd)? == 3, || {
        format!("{who}: memfd offset moved")
    })?;
    let mut buf = [0u8; 10];
    let n = rustix::io::pread(&f.memfd, &mut buf, 0).map_err(e("pread memfd"))?;
    ensure(&buf[..n] == b"memfd data", || {
        format!("{who}: memfd holds {buf:?}")
    })
}

/// The root's full check, consuming the data.
fn check_all(dir: &Path, f: &Fds) -> Result<(), String> {
    check_shared(f, "root")?;
    ensure(read_some(&f.file, 16)? == b" world", || "file data".into())?;
    ensure(offset(&f.file_dup)? == 11, || {
        "the dup does not share the offset".into()
    })?;
    let st = rustix::fs::fstat(&f.dirfd).map_err(e("fstat dir"))?;
    let want = rustix::fs::stat(dir).map_err(e("stat dir"))?;
    ensure(st.st_ino == want.st_ino, || {
        "the dir fd is another directory".into()
    })?;
    let st = rustix::fs::fstat(&f.null).map_err(e("fstat null"))?;
    ensure(st.st_rdev == rustix::fs::makedev(1, 3), || {
        "not /dev/null".into()
    })?;
    write_all(&f.null, b"x")?;
    ensure(read_some(&f.pipe_r, 64)? == b"pipe data", || {
        "pipe data".into()
    })?;
    ensure(read_some(&f.fifo, 64)? == b"fifo data", || {
        "fifo data".into()
    })?;
    ensure(read_some(&f.sk_b, 64)? == b"ping", || "socket data".into())?;
    write_all(&f.sk_b, b"pong")?;
    ensure(read_some(&f.sk_a, 64)? == b"pong", || {
        "socket pair broken".into()
    })?;
    let c =
        rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).map_err(e("socket"))?;
    let addr = SocketAddrUnix::new(dir.join("sock")).map_err(e("addr"))?;
    rustix::net::connect(&c, &addr).map_err(e("connect to the listener"))?;
    rustix::net::accept(&f.listener).map_err(e("accept"))?;
    let mut v = [0u8; 8];
    rustix::io::read(&f.efd, &mut v).map_err(e("read eventfd"))?;
    ensure(u64::from_ne_bytes(v) == 5, || {
        format!("eventfd count {v:?}")
    })?;
    // SAFETY: integer arguments only.
    let me = unsafe { criu_arch::syscall0(criu_arch::nr::GETPID) };
    // SAFETY: integer arguments only; SIGUSR1 is blocked.
    unsafe { criu_arch::syscall2(criu_arch::nr::KILL, me as usize, SIGUSR1 as usize) };
    let info = read_some(&f.sfd, 128)?;
    // ssi_signo: the first u32 of the signalfd_siginfo, native-endian.
    let signo = info
        .get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    ensure(info.len() == 128 && signo == Some(SIGUSR1 as u32), || {
        "signalfd".into()
    })?;
    let g = rustix::time::timerfd_gettime(&f.tfd).map_err(e("timerfd_gettime"))?;
    ensure(g.it_interval.tv_sec == 1, || "timerfd interval".into())?;
    ensure((50..=100).contains(&g.it_value.tv_sec), || {
        format!("timerfd value {:?}", g.it_value)
    })?;
    std::fs::write(dir.join("watched/new"), "").map_err(e("create in watched"))?;
    let ev = read_some(&f.ify, 256)?;
    ensure(ev.len() >= 16 && ev[16..].starts_with(b"new"), || {
        format!("inotify event {ev:?}")
    })?;
    let st = rustix::fs::fstat(&f.ghost).map_err(e("fstat ghost"))?;
    ensure(st.st_nlink == 0, || "the ghost file is linked".into())?;
    let mut buf = [0u8; 10];
    rustix::io::pread(&f.ghost, &mut buf, 0).map_err(e("pread ghost"))?;
    ensure(&buf == b"ghost data", || "ghost data".into())?;
    let other = open(&dir.join("locked"), OFlags::RDWR)?;
    ensure(
        rustix::fs::flock(&other, rustix::fs::FlockOperation::NonBlockingLockShared).is_err(),
        || "DIR/locked is not flock(LOCK_EX)ed any more".into(),
    )
}

enum State {
    Mix { dir: PathBuf, fds: Fds, child: i32 },
}

fn main() {
    zdtm::run(
        |args| {
            let dir = args.dir.clone();
            let fds = setup_fds(&dir)?;
            // SAFETY: the program is single-threaded here (its state is
            // all fds and plain memory): the child may do anything.
            let child = unsafe { zdtm::fork(0) }?;
            if child == 0 {
                let r = zdtm::wait_go(&dir).and_then(|()| check_shared(&fds, "child"));
                if let Err(why) = &r {
                    let _ = zdtm::write_atomic(&dir.join("fail-child"), why);
                }
                exit(r.map_or(1, |()| 0));
            }
            Ok(State::Mix { dir, fds, child })
        },
        |_| {},
        |s| match s {
            State::Mix { dir, fds, child } => {
                let st = zdtm::wait_status(child, 0)?;
                if st != 0 {
                    let why = std::fs::read_to_string(dir.join("fail-child"))
                        .unwrap_or_else(|_| format!("status {st:#x}"));
                    return Err(format!("child {child}: {why}"));
                }
                check_all(&dir, &fds)
            }
        },
    );
}
