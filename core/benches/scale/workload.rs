//! The program the benchmark dumps and restores (this binary run as
//! `scale workload DIR PROCS THREADS FDS MAPS MEM_MIB CONNS PORT`): a tree
//! of PROCS processes (process k's parent is (k - 1) / 4, so a 4-ary
//! tree), each with THREADS threads, FDS open fds of several kinds, MAPS
//! private anonymous mappings of one page each, and MEM_MIB MiB of
//! touched anonymous memory; the root also holds CONNS TCP connections to
//! the benchmark's peer on 127.0.0.1:PORT ([`super::conns`]).
//!
//! Protocol (all files in DIR): each process writes `ready/K` (its PID)
//! once its state is set up, polls for `go`, then checks every piece of
//! its state against what it set up and writes `res/K`: `PASS` or
//! `FAIL: what differs`. A parent waits for its children before it exits.
//! The benchmark only counts a run whose every process said `PASS`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags, SeekFrom};

const PAGE: usize = 4096;
/// How often a waiting process looks for `go`.
const POLL: Duration = Duration::from_millis(50);
/// Bound on every wait of the workload itself.
const WAIT: Duration = Duration::from_secs(600);
/// Bytes of the shared data file the regular-file fds point into.
const DATA_LEN: u64 = 1 << 16;

/// What each process of the tree holds.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub procs: usize,
    pub threads: usize,
    pub fds: usize,
    pub maps: usize,
    pub mem_mib: usize,
    /// TCP connections the root holds to a peer outside the tree.
    pub conns: usize,
}

impl Shape {
    /// The workload's arguments after DIR (`port`: the peer's, for
    /// CONNS).
    pub fn args(&self, port: u16) -> [String; 7] {
        [
            self.procs.to_string(),
            self.threads.to_string(),
            self.fds.to_string(),
            self.maps.to_string(),
            self.mem_mib.to_string(),
            self.conns.to_string(),
            port.to_string(),
        ]
    }

    fn parse(a: &[String]) -> Option<(Shape, u16)> {
        let n = |i: usize| a.get(i)?.parse::<usize>().ok();
        let shape = Shape {
            procs: n(0)?.max(1),
            threads: n(1)?.max(1),
            fds: n(2)?,
            maps: n(3)?,
            mem_mib: n(4)?,
            conns: n(5)?,
        };
        Some((shape, a.get(6)?.parse().ok()?))
    }
}

/// The pattern word of item `i` of process `k`: never zero.
pub fn pattern(k: usize, i: usize) -> u64 {
    ((k as u64) << 40 ^ i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

pub fn main(args: &[String]) -> ExitCode {
    let (Some(dir), Some((shape, port))) = (args.first(), Shape::parse(&args[1..])) else {
        eprintln!("usage: workload DIR PROCS THREADS FDS MAPS MEM_MIB CONNS PORT");
        return ExitCode::FAILURE;
    };
    let dir = PathBuf::from(dir);
    match run(&dir, shape, port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = write_atomic(&dir.join("res").join("setup"), &format!("FAIL: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path, shape: Shape, port: u16) -> Result<(), String> {
    // Only what the workload opens belongs in its images; a session of its
    // own, so neither tool needs --shell-job.
    criu_core::sys::fds::close_fds_from(3).map_err(|e| format!("close_range: {e}"))?;
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    raise_nofile();
    let data = dir.join("data");
    std::fs::write(&data, vec![0x5a; DATA_LEN as usize]).map_err(|e| format!("data: {e}"))?;
    // Fds every process of a tree inherits from the root.
    let inherited = if shape.procs > 1 {
        Fds::open(dir, usize::MAX, 10)?
    } else {
        Fds::default()
    };
    let (k, children) = grow(0, shape.procs)?;
    let state = State::set_up(dir, k, shape)?;
    let conns = match (k, shape.conns) {
        (0, n) if n > 0 => super::conns::Conns::open(port, n, WAIT)?,
        _ => super::conns::Conns::default(),
    };
    write_atomic(
        &dir.join("ready").join(k.to_string()),
        &std::process::id().to_string(),
    )?;
    wait_until(WAIT, || dir.join("go").exists()).ok_or("no go within the bound")?;
    let verdict = state
        .check()
        .and_then(|()| inherited.check(false))
        .and_then(|()| conns.check())
        .map_or_else(|e| format!("FAIL: {e}"), |()| "PASS".into());
    write_atomic(&dir.join("res").join(k.to_string()), &verdict)?;
    for c in children {
        if let Some(p) = rustix::process::Pid::from_raw(c) {
            let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
        }
    }
    drop(inherited);
    Ok(())
}

/// Fork the subtree of process `k` (children 4k+1 .. 4k+4 below `procs`),
/// depth first: returns this process's index and its children's PIDs.
fn grow(mut k: usize, procs: usize) -> Result<(usize, Vec<i32>), String> {
    let mut children = Vec::new();
    let mut c = 4 * k + 1;
    while c < procs && c <= 4 * k + 4 {
        let pid = fork()?;
        if pid == 0 {
            k = c;
            children.clear();
            c = 4 * k + 1;
            continue;
        }
        children.push(pid);
        c += 1;
    }
    Ok((k, children))
}

/// fork(2) through a raw clone: the workload is single-threaded here.
fn fork() -> Result<i32, String> {
    const SIGCHLD: usize = 17;
    let (a, b) = if cfg!(target_arch = "s390x") {
        (0, SIGCHLD)
    } else {
        (SIGCHLD, 0)
    };
    // SAFETY: clone without CLONE_VM and without a new stack is fork; the
    // child continues with a copy of this single-threaded process.
    let ret = unsafe { criu_arch::syscall5(criu_arch::nr::CLONE, a, b, 0, 0, 0) };
    if ret < 0 {
        return Err(format!("fork: errno {}", -ret));
    }
    Ok(ret as i32)
}

fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
}

pub fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename {}: {e}", path.display()))
}

fn wait_until(bound: Duration, mut f: impl FnMut() -> bool) -> Option<()> {
    let end = Instant::now() + bound;
    while !f() {
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(POLL);
    }
    Some(())
}

/// Everything one process sets up and later checks.
struct State {
    k: usize,
    mem: Option<(usize, usize)>,
    maps: Option<(usize, usize)>,
    fds: Fds,
    threads: Threads,
}

impl State {
    fn set_up(dir: &Path, k: usize, shape: Shape) -> Result<State, String> {
        let mem = match shape.mem_mib {
            0 => None,
            mib => {
                let len = mib << 20;
                let addr = map_anon(len)?;
                for p in 0..len / PAGE {
                    // SAFETY: inside the fresh private mapping of `len` bytes.
                    unsafe { ((addr + p * PAGE) as *mut u64).write(pattern(k, p)) };
                }
                Some((addr, len))
            }
        };
        let maps = match shape.maps {
            0 => None,
            n => Some((map_alternating(k, n)?, n)),
        };
        Ok(State {
            k,
            mem,
            maps,
            fds: Fds::open(dir, k, shape.fds)?,
            threads: Threads::start(k, shape.threads - 1)?,
        })
    }

    fn check(&self) -> Result<(), String> {
        if let Some((addr, len)) = self.mem {
            let bad = (0..len / PAGE)
                .filter(
                    // SAFETY: the mapping set up in `set_up`, still ours.
                    |&p| unsafe { ((addr + p * PAGE) as *const u64).read() } != pattern(self.k, p),
                )
                .count();
            if bad > 0 {
                return Err(format!("{bad} of {} memory pages differ", len / PAGE));
            }
        }
        if let Some((addr, n)) = self.maps {
            check_alternating(self.k, addr, n)?;
        }
        self.fds.check(true)?;
        self.threads.check()
    }
}

fn map_anon(len: usize) -> Result<usize, String> {
    use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous};
    // SAFETY: a fresh private mapping the kernel places; nothing aliases it.
    let p = unsafe {
        mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
    .map_err(|e| format!("mmap {len}: {e}"))?;
    Ok(p as usize)
}

/// `n` pages, each its own VMA: even pages read-write, odd read-only,
/// each holding its pattern word.
fn map_alternating(k: usize, n: usize) -> Result<usize, String> {
    let addr = map_anon(n * PAGE)?;
    for p in 0..n {
        // SAFETY: inside the fresh mapping.
        unsafe { ((addr + p * PAGE) as *mut u64).write(pattern(k, 1 << 30 | p)) };
    }
    for p in (1..n).step_by(2) {
        // SAFETY: only the protection of our own page changes.
        unsafe {
            rustix::mm::mprotect(
                (addr + p * PAGE) as *mut _,
                PAGE,
                rustix::mm::MprotectFlags::READ,
            )
        }
        .map_err(|e| format!("mprotect: {e}"))?;
    }
    Ok(addr)
}

fn check_alternating(k: usize, addr: usize, n: usize) -> Result<(), String> {
    for p in 0..n {
        // SAFETY: the mapping set up by `map_alternating`, readable.
        let w = unsafe { ((addr + p * PAGE) as *const u64).read() };
        if w != pattern(k, 1 << 30 | p) {
            return Err(format!("mapping page {p} holds {w:#x}"));
        }
    }
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    let end = addr + n * PAGE;
    let mut seen = 0;
    for l in maps.lines() {
        let mut it = l.split_whitespace();
        let (range, perms) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
        let (s, e) = range.split_once('-').unwrap_or(("0", "0"));
        let s = usize::from_str_radix(s, 16).unwrap_or(0);
        let e = usize::from_str_radix(e, 16).unwrap_or(0);
        if e <= addr || s >= end {
            continue;
        }
        let want = if seen % 2 == 0 { "rw-p" } else { "r--p" };
        if perms != want || e - s.max(addr) != PAGE && e <= end {
            return Err(format!("mapping {seen}: {l} (want one {want} page)"));
        }
        seen += 1;
    }
    if seen != n {
        return Err(format!("{seen} mappings instead of {n}"));
    }
    Ok(())
}

/// One fd the workload opened, with what it must find in it.
enum Fd {
    /// The data file opened on its own, at `pos`.
    Data { fd: OwnedFd, pos: u64 },
    /// A dup of `of` (an index into the list): one open file description.
    Dup { fd: OwnedFd, of: usize },
    /// A file of its own, inode `ino`, at `pos`.
    Own { fd: OwnedFd, ino: u64, pos: u64 },
    /// A pipe holding `word`, both ends.
    Pipe { r: OwnedFd, _w: OwnedFd, word: u64 },
    /// A unix stream socket pair, each end holding `word` from the other.
    Sock { a: OwnedFd, b: OwnedFd, word: u64 },
}

#[derive(Default)]
struct Fds {
    data_ino: u64,
    list: Vec<Fd>,
}

impl Fds {
    /// About `n` fds of process `k` (`usize::MAX`: the root's inherited
    /// ones), by slot i % 20: 0-4 and 10-14 the data file, 5-6 and 15-16
    /// dups, 7 and 17 a file of its own, 8-9 a pipe, 18-19 a socket pair.
    fn open(dir: &Path, k: usize, n: usize) -> Result<Fds, String> {
        let data = dir.join("data");
        let io = |what: &str| {
            let what = what.to_string();
            move |e: rustix::io::Errno| format!("{what}: {e}")
        };
        let mut out = Fds {
            data_ino: std::fs::metadata(&data).map_err(|e| e.to_string())?.ino(),
            list: Vec::with_capacity(n),
        };
        let mut i = 0;
        while i < n {
            let word = pattern(k, i);
            let pos = word % DATA_LEN;
            match i % 20 {
                5 | 6 | 15 | 16 => {
                    let of = out.list.len() - 1 - i % 20 % 10 % 5;
                    let src = match &out.list[of] {
                        Fd::Data { fd, .. } => fd,
                        _ => return Err("dup of a non-data fd".into()),
                    };
                    let fd = rustix::io::dup(src).map_err(io("dup"))?;
                    out.list.push(Fd::Dup { fd, of });
                }
                7 | 17 => {
                    let p = dir.join("files").join(format!("{k}-{i}"));
                    let fd = rustix::fs::open(
                        &p,
                        OFlags::RDWR | OFlags::CREATE,
                        Mode::from_raw_mode(0o600),
                    )
                    .map_err(io("open own"))?;
                    rustix::io::write(&fd, &word.to_le_bytes()).map_err(io("write own"))?;
                    let pos = word % 8;
                    rustix::fs::seek(&fd, SeekFrom::Start(pos)).map_err(io("seek"))?;
                    let ino = rustix::fs::fstat(&fd).map_err(io("fstat"))?.st_ino;
                    out.list.push(Fd::Own { fd, ino, pos });
                }
                8 | 18 if i + 1 < n => {
                    let pair = if i % 20 == 8 {
                        let (r, w) = rustix::pipe::pipe().map_err(io("pipe"))?;
                        rustix::io::write(&w, &word.to_le_bytes()).map_err(io("pipe write"))?;
                        Fd::Pipe { r, _w: w, word }
                    } else {
                        use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
                        let (a, b) = socketpair(
                            AddressFamily::UNIX,
                            SocketType::STREAM,
                            SocketFlags::empty(),
                            None,
                        )
                        .map_err(io("socketpair"))?;
                        rustix::io::write(&a, &word.to_le_bytes()).map_err(io("send"))?;
                        rustix::io::write(&b, &word.to_le_bytes()).map_err(io("send"))?;
                        Fd::Sock { a, b, word }
                    };
                    out.list.push(pair);
                    i += 1;
                }
                _ => {
                    let fd = rustix::fs::open(&data, OFlags::RDONLY, Mode::empty())
                        .map_err(io("open data"))?;
                    rustix::fs::seek(&fd, SeekFrom::Start(pos)).map_err(io("seek"))?;
                    out.list.push(Fd::Data { fd, pos });
                }
            }
            i += 1;
        }
        Ok(out)
    }

    /// Checks every fd; `mutate` false for fds shared with other processes
    /// of the tree checking at the same time (nothing is moved or read).
    fn check(&self, mutate: bool) -> Result<(), String> {
        let cur = |fd: &OwnedFd| rustix::fs::seek(fd, SeekFrom::Current(0)).unwrap_or(u64::MAX);
        let ino = |fd: &OwnedFd| rustix::fs::fstat(fd).map_or(0, |s| s.st_ino);
        let read_word = |fd: &OwnedFd| {
            let mut b = [0u8; 8];
            match rustix::io::read(fd, &mut b) {
                Ok(8) => Some(u64::from_le_bytes(b)),
                _ => None,
            }
        };
        for f in &self.list {
            let bad =
                |what: &str, fd: &OwnedFd| Err(format!("fd {} ({what}) differs", fd.as_raw_fd()));
            match f {
                Fd::Data { fd, pos } => {
                    if ino(fd) != self.data_ino || cur(fd) != *pos {
                        return bad("data file", fd);
                    }
                }
                Fd::Own { fd, ino: want, pos } => {
                    if ino(fd) != *want || cur(fd) != *pos {
                        return bad("own file", fd);
                    }
                }
                Fd::Dup { fd, of } => {
                    let Fd::Data { fd: src, pos } = &self.list[*of] else {
                        return bad("dup", fd);
                    };
                    if !mutate {
                        if ino(fd) != self.data_ino || cur(fd) != *pos {
                            return bad("dup", fd);
                        }
                        continue;
                    }
                    // One description: moving one moves the other.
                    let moved = rustix::fs::seek(fd, SeekFrom::Current(1)).ok();
                    let seen = cur(src);
                    let _ = rustix::fs::seek(fd, SeekFrom::Start(*pos));
                    if ino(fd) != self.data_ino || moved != Some(pos + 1) || seen != pos + 1 {
                        return bad("dup", fd);
                    }
                }
                Fd::Pipe { r, .. } if !mutate => {
                    if rustix::io::ioctl_fionread(r).ok() != Some(8) {
                        return bad("pipe", r);
                    }
                }
                Fd::Sock { a, b, .. } if !mutate => {
                    if rustix::io::ioctl_fionread(a).ok() != Some(8)
                        || rustix::io::ioctl_fionread(b).ok() != Some(8)
                    {
                        return bad("socket pair", a);
                    }
                }
                Fd::Pipe { r, word, .. } => {
                    if rustix::io::ioctl_fionread(r).ok() != Some(8) || read_word(r) != Some(*word)
                    {
                        return bad("pipe", r);
                    }
                }
                Fd::Sock { a, b, word } => {
                    if read_word(a) != Some(*word) || read_word(b) != Some(*word) {
                        return bad("socket pair", a);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Released threads wait on this word (futex), checked ones count here.
static GO: AtomicU32 = AtomicU32::new(0);
static OK: AtomicU32 = AtomicU32::new(0);
static BAD: AtomicU32 = AtomicU32::new(0);

/// The process's other threads: each keeps its TID and a word on its
/// stack, and checks both once released.
struct Threads {
    n: usize,
}

impl Threads {
    fn start(k: usize, n: usize) -> Result<Threads, String> {
        let started = std::sync::Arc::new(AtomicU32::new(0));
        for t in 0..n {
            let started = started.clone();
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || thread_body(k, t, &started))
                .map_err(|e| format!("thread {t}: {e}"))?;
        }
        wait_until(WAIT, || started.load(Ordering::Acquire) as usize == n)
            .ok_or("threads did not start")?;
        Ok(Threads { n })
    }

    fn check(&self) -> Result<(), String> {
        if self.n == 0 {
            return Ok(());
        }
        GO.store(1, Ordering::Release);
        // FUTEX_WAKE's count is an int: i32::MAX wakes all (u32::MAX, -1, one).
        let _ = rustix::thread::futex::wake(
            &GO,
            rustix::thread::futex::Flags::PRIVATE,
            i32::MAX as u32,
        );
        let all = || (OK.load(Ordering::Acquire) + BAD.load(Ordering::Acquire)) as usize == self.n;
        wait_until(Duration::from_secs(60), all).ok_or_else(|| {
            format!(
                "only {} of {} threads answered",
                OK.load(Ordering::Acquire),
                self.n
            )
        })?;
        match BAD.load(Ordering::Acquire) {
            0 => Ok(()),
            b => Err(format!(
                "{b} of {} threads found their state changed",
                self.n
            )),
        }
    }
}

fn thread_body(k: usize, t: usize, started: &AtomicU32) {
    let tid = rustix::thread::gettid();
    let word = std::hint::black_box(pattern(k, 1 << 20 | t));
    started.fetch_add(1, Ordering::Release);
    // A bounded wait, so a missed wake-up only delays the answer.
    let tick = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    };
    while GO.load(Ordering::Acquire) == 0 {
        let _ =
            rustix::thread::futex::wait(&GO, rustix::thread::futex::Flags::PRIVATE, 0, Some(&tick));
    }
    let ok =
        rustix::thread::gettid() == tid && std::hint::black_box(word) == pattern(k, 1 << 20 | t);
    if ok { &OK } else { &BAD }.fetch_add(1, Ordering::Release);
}
