//! A ZDTM-style victim for the dump tests. It sets up known state, writes
//! `DIR/ready` ("PID SPARSE_ADDR NOACCESS_ADDR"), waits until `DIR/go`
//! exists, then checks that the state is unchanged and writes its verdict
//! (`PASS` or `FAIL: reason`) to `DIR/result`.
//!
//! State: umask 027, cwd DIR, `DIR/data` open read-write at offset 37, a
//! SIGUSR1 handler with SA_RESTART and a mask, SIGRTMIN+2 blocked, an
//! ITIMER_REAL of 1000 s, a 64-page anonymous region with only pages 0, 5
//! and 17 touched (the rest must stay holes), and a 4-page PROT_NONE region
//! whose page 1 holds data, and a POSIX timer of 2000 s.
//!
//! With a second argument `big`, it also holds 48 MiB of touched anonymous
//! memory (more than one page pipe holds) and checks it.
//!
//! With `shared`, it also holds 16 pages of shared anonymous memory with
//! pages 0, 3, 4 and 11 written, and an 8-page memfd named `pattern`
//! (sealed against shrinking and growing, its fd closed) mapped shared with
//! pages 1 and 6 written. After restore the written pages must hold their
//! pattern, the others must still be holes (smaps Rss counts only the
//! written pages, mincore says the rest are not resident), the names,
//! size and seals must be back. A third memfd, `openfd`, is only open as
//! an fd (never mapped), with data in pages 0-1 and 3 and its position at
//! 1234: its contents, size, name and position must be back.
//! With `threads`, two more threads run (one with SIGUSR2 blocked too),
//! counting; they must still run and keep their masks.
//!
//! With `pipe`, it also holds both ends of a pipe (which dump refuses).
//! With `altstack`, it also has an alternate signal stack of 64 KiB.
//!
//! Usage: `dump_victim DIR [big|shared|threads|pipe|altstack]`

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criu_arch::{KSigaction, SA_RESTART, SA_RESTORER, nr, sys_mmap, syscall2, syscall3, syscall4};

/// This system's page size (4 KiB on x86_64, 64 KiB on ppc64le's kernels).
fn page() -> usize {
    rustix::param::page_size()
}
const SPARSE_PAGES: usize = 64;
const TOUCHED: [usize; 3] = [0, 5, 17];
const SIGUSR1: usize = 10;
const SIGUSR2: usize = 12;
const BLOCKED_SIG: usize = 34;
const PROT_NONE: usize = 0;
const MADV_NOHUGEPAGE: usize = 15;
const PROT_RW: usize = 3;
const MAP_PRIVATE_ANON: usize = 0x22;

extern "C" fn on_usr1(_sig: i32) {}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: dump_victim DIR [big]"),
    );
    let mode = std::env::args().nth(2).unwrap_or_default();
    let verdict = match run(&dir, &mode) {
        Ok(()) => "PASS\n".to_string(),
        Err(e) => format!("FAIL: {e}\n"),
    };
    std::fs::write(dir.join("result"), verdict).expect("write result");
}

fn check(ret: isize, what: &str) -> Result<usize, String> {
    if ret < 0 {
        Err(format!("{what}: errno {}", -ret))
    } else {
        Ok(ret as usize)
    }
}

fn pattern(page: usize, i: usize) -> u8 {
    (page * 31 + i * 7 + 1) as u8
}

fn want_action() -> KSigaction {
    KSigaction {
        handler: on_usr1 as *const () as usize as u64,
        flags: SA_RESTART | SA_RESTORER,
        restorer: criu_arch::sa_restorer(SA_RESTART),
        mask: 1 << (SIGUSR2 - 1),
    }
}

const BIG_LEN: usize = 48 << 20;

/// Word `i` of the big memory: differs from word to word and page to
/// page. Filled a word at a time (not a byte), so that the 48 MiB are
/// ready in well under a second even in a TCG-emulated VM on a busy host.
fn big_word(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i / 512) as u64
}

fn run(dir: &Path, mode: &str) -> Result<(), String> {
    let big = mode == "big";
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    check(
        // SAFETY: closes only fds inherited from the test runner (none opened yet).
        unsafe { syscall3(nr::CLOSE_RANGE, 3, u32::MAX as usize, 0) },
        "close_range",
    )?;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
    std::env::set_current_dir(dir).map_err(|e| format!("chdir: {e}"))?;
    let mut data = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open("data")
        .map_err(|e| format!("open data: {e}"))?;
    data.write_all(&[b'x'; 100]).map_err(|e| e.to_string())?;
    data.seek(SeekFrom::Start(37)).map_err(|e| e.to_string())?;

    let act = want_action();
    check(
        // SAFETY: installs a handler that does nothing; reads our local `act`.
        unsafe { syscall4(nr::RT_SIGACTION, SIGUSR1, &act as *const _ as usize, 0, 8) },
        "rt_sigaction",
    )?;
    let set: u64 = 1 << (BLOCKED_SIG - 1);
    check(
        // SAFETY: reads 8 bytes from our local `set`.
        unsafe { syscall4(nr::RT_SIGPROCMASK, 0, &set as *const u64 as usize, 0, 8) },
        "rt_sigprocmask",
    )?;
    let timer: [i64; 4] = [1000, 0, 1000, 0];
    check(
        // SAFETY: reads one itimerval from our local.
        unsafe { syscall3(nr::SETITIMER, 0, timer.as_ptr() as usize, 0) },
        "setitimer",
    )?;

    // A POSIX timer (CLOCK_MONOTONIC, default SIGALRM notification) armed
    // for 2000 s every 2000 s.
    let mut timer_id: i32 = -1;
    check(
        // SAFETY: a null sigevent; the kernel writes the id to our local.
        unsafe { syscall3(nr::TIMER_CREATE, 1, 0, &mut timer_id as *mut i32 as usize) },
        "timer_create",
    )?;
    let spec: [i64; 4] = [2000, 0, 2000, 0];
    check(
        // SAFETY: reads one itimerspec from our local.
        unsafe {
            syscall4(
                nr::TIMER_SETTIME,
                timer_id as usize,
                0,
                spec.as_ptr() as usize,
                0,
            )
        },
        "timer_settime",
    )?;

    // SAFETY: fresh anonymous mappings, used only through the slices below.
    let sparse = check(
        unsafe {
            sys_mmap(
                0,
                SPARSE_PAGES * page(),
                PROT_RW,
                MAP_PRIVATE_ANON,
                usize::MAX,
                0,
            )
        },
        "mmap sparse",
    )?;
    check(
        // No transparent huge pages: with 64 KiB pages the region is 4 MiB and
        // may hold a whole 2 MiB huge page, which a write would fill in (the
        // dump would rightly see 32 present pages instead of one).
        // SAFETY: advice on our own fresh mapping.
        unsafe { syscall3(nr::MADVISE, sparse, SPARSE_PAGES * page(), MADV_NOHUGEPAGE) },
        "madvise sparse",
    )?;
    let noacc = check(
        // SAFETY: a fresh anonymous mapping; no memory of ours changes.
        unsafe { sys_mmap(0, 4 * page(), PROT_RW, MAP_PRIVATE_ANON, usize::MAX, 0) },
        "mmap noaccess",
    )?;
    for &p in &TOUCHED {
        for i in 0..page() {
            // SAFETY: inside the sparse mapping.
            unsafe { *((sparse + p * page() + i) as *mut u8) = pattern(p, i) };
        }
    }
    for i in 0..page() {
        // SAFETY: page 1 of the noaccess mapping, still writable here.
        unsafe { *((noacc + page() + i) as *mut u8) = pattern(99, i) };
    }
    check(
        // SAFETY: changes only our own mapping.
        unsafe { syscall3(nr::MPROTECT, noacc, 4 * page(), PROT_NONE) },
        "mprotect",
    )?;

    let shmem = if mode == "shared" {
        Some(shmem_setup()?)
    } else {
        None
    };
    let altstack = vec![0u8; 64 * 1024];
    let want_ss = criu_arch::StackT {
        sp: altstack.as_ptr() as u64,
        flags: 0,
        _pad: 0,
        size: altstack.len() as u64,
    };
    if mode == "altstack" {
        check(
            // SAFETY: reads one stack_t from our local; the stack outlives run().
            unsafe { syscall2(nr::SIGALTSTACK, &want_ss as *const _ as usize, 0) },
            "sigaltstack",
        )?;
    }
    let _pipe = if mode == "pipe" {
        Some(rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?)
    } else {
        None
    };
    // A kind of fd that cannot be dumped yet: a SOCK_DGRAM netlink socket
    // (CRIU's image has no place for the type).
    let _netlink = if mode == "netlink" {
        Some(
            rustix::net::socket(
                rustix::net::AddressFamily::NETLINK,
                rustix::net::SocketType::DGRAM,
                Some(rustix::net::netlink::USERSOCK),
            )
            .map_err(|e| format!("netlink socket: {e}"))?,
        )
    } else {
        None
    };
    let big_mem: Vec<u64> = if big {
        (0..BIG_LEN / 8).map(big_word).collect()
    } else {
        Vec::new()
    };

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    if mode == "threads" {
        for i in 0..2u64 {
            let stop = stop.clone();
            workers.push(std::thread::spawn(move || -> Result<u64, String> {
                let extra: u64 = if i == 1 { 1 << (SIGUSR2 - 1) } else { 0 };
                check(
                    // SAFETY: reads 8 bytes from our local.
                    unsafe { syscall4(nr::RT_SIGPROCMASK, 0, &extra as *const u64 as usize, 0, 8) },
                    "thread rt_sigprocmask",
                )?;
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
                let mut mask = 0u64;
                check(
                    // SAFETY: writes 8 bytes to our local.
                    unsafe {
                        syscall4(nr::RT_SIGPROCMASK, 0, 0, &mut mask as *mut u64 as usize, 8)
                    },
                    "thread rt_sigprocmask",
                )?;
                let want = (1 << (BLOCKED_SIG - 1)) | extra;
                if mask != want {
                    return Err(format!("thread {i} sigmask {mask:#x}"));
                }
                Ok(n)
            }));
        }
        // Let them start counting before we report ready.
        std::thread::sleep(Duration::from_millis(50));
    }

    std::fs::write(
        dir.join("ready"),
        format!("{} {sparse:#x} {noacc:#x}\n", std::process::id()),
    )
    .map_err(|e| e.to_string())?;
    while !dir.join("go").exists() {
        std::thread::sleep(Duration::from_millis(10));
    }

    // Verify.
    if let Some(s) = &shmem {
        shmem_verify(s)?;
    }
    if mode == "altstack" {
        let mut ss = criu_arch::StackT::default();
        check(
            // SAFETY: writes one stack_t to our local.
            unsafe { syscall2(nr::SIGALTSTACK, 0, &mut ss as *mut _ as usize) },
            "sigaltstack",
        )?;
        if ss != want_ss {
            return Err(format!("sigaltstack {ss:?}"));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for (i, w) in workers.into_iter().enumerate() {
        let n = w.join().map_err(|_| format!("thread {i} panicked"))??;
        if n < 10 {
            return Err(format!("thread {i} counted only {n}"));
        }
    }
    if let Some(i) = (0..big_mem.len()).find(|&i| big_mem[i] != big_word(i)) {
        return Err(format!("big memory differs at word {i}"));
    }
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
    if old.bits() != 0o027 {
        return Err(format!("umask {:o}", old.bits()));
    }
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    if cwd != dir.canonicalize().map_err(|e| e.to_string())? {
        return Err(format!("cwd {}", cwd.display()));
    }
    let pos = data.stream_position().map_err(|e| e.to_string())?;
    if pos != 37 {
        return Err(format!("file position {pos}"));
    }
    let mut rest = Vec::new();
    data.read_to_end(&mut rest).map_err(|e| e.to_string())?;
    if rest != [b'x'; 63] {
        return Err("file content".into());
    }
    let mut got = KSigaction::default();
    check(
        // SAFETY: writes one kernel sigaction to our local.
        unsafe { syscall4(nr::RT_SIGACTION, SIGUSR1, 0, &mut got as *mut _ as usize, 8) },
        "rt_sigaction",
    )?;
    if got != want_action() {
        return Err(format!("sigaction {got:?}"));
    }
    let mut mask = 0u64;
    check(
        // SAFETY: writes 8 bytes to our local.
        unsafe { syscall4(nr::RT_SIGPROCMASK, 0, 0, &mut mask as *mut u64 as usize, 8) },
        "rt_sigprocmask",
    )?;
    if mask != set {
        return Err(format!("sigmask {mask:#x}"));
    }
    let mut t = [0i64; 4];
    check(
        // SAFETY: writes one itimerval to our local.
        unsafe { syscall2(nr::GETITIMER, 0, t.as_mut_ptr() as usize) },
        "getitimer",
    )?;
    if t[0] != 1000 || t[2] <= 0 || t[2] > 1000 {
        return Err(format!("itimer {t:?}"));
    }
    let mut cur = [0i64; 4];
    check(
        // SAFETY: writes one itimerspec to our local.
        unsafe {
            syscall2(
                nr::TIMER_GETTIME,
                timer_id as usize,
                cur.as_mut_ptr() as usize,
            )
        },
        "timer_gettime",
    )?;
    if cur[0] != 2000 || cur[2] <= 0 || cur[2] > 2000 {
        return Err(format!("posix timer {cur:?}"));
    }
    for p in 0..SPARSE_PAGES {
        for i in 0..page() {
            // SAFETY: inside the sparse mapping.
            let b = unsafe { *((sparse + p * page() + i) as *const u8) };
            let want = if TOUCHED.contains(&p) {
                pattern(p, i)
            } else {
                0
            };
            if b != want {
                return Err(format!("sparse page {p} byte {i}: {b}"));
            }
        }
    }
    check(
        // SAFETY: our own mapping.
        unsafe { syscall3(nr::MPROTECT, noacc, 4 * page(), 1) },
        "mprotect read",
    )?;
    for i in 0..page() {
        // SAFETY: page 1 of the noaccess mapping, now readable.
        let b = unsafe { *((noacc + page() + i) as *const u8) };
        if b != pattern(99, i) {
            return Err(format!("noaccess page byte {i}: {b}"));
        }
    }
    Ok(())
}

const SHM_PAGES: usize = 16;
const SHM_TOUCHED: [usize; 4] = [0, 3, 4, 11];
const MFD_PAGES: usize = 8;
const MFD_TOUCHED: [usize; 2] = [1, 6];

/// Addresses of the shared anonymous region and the memfd mapping, and a
/// memfd only open as an fd (never mapped).
struct Shmem {
    anon: usize,
    mfd: usize,
    /// A private mapping of the memfd's page 6, half of it written
    /// (copied on write), the rest still the memfd's.
    private: usize,
    open: std::fs::File,
}

const OPEN_POS: u64 = 1234;
const OPEN_TAIL: &[u8] = b"0123456789";

fn open_byte(i: usize) -> u8 {
    (i % 251) as u8
}

fn mmap_shared(len: usize, flags: usize, fd: usize, what: &str) -> Result<usize, String> {
    // SAFETY: a fresh mapping where the kernel chooses.
    check(unsafe { sys_mmap(0, len, PROT_RW, flags, fd, 0) }, what)
}

fn fill_pages(base: usize, pages: &[usize], tag: usize) {
    for &p in pages {
        for i in 0..page() {
            // SAFETY: inside a mapping of ours, writable.
            unsafe { *((base + p * page() + i) as *mut u8) = pattern(p + tag, i) };
        }
    }
}

fn shmem_setup() -> Result<Shmem, String> {
    use std::os::fd::AsRawFd;
    let anon = mmap_shared(SHM_PAGES * page(), 0x21, usize::MAX, "mmap shared anon")?;
    fill_pages(anon, &SHM_TOUCHED, 200);
    let fd = rustix::fs::memfd_create("pattern", rustix::fs::MemfdFlags::ALLOW_SEALING)
        .map_err(|e| format!("memfd_create: {e}"))?;
    rustix::fs::ftruncate(&fd, (MFD_PAGES * page()) as u64).map_err(|e| e.to_string())?;
    let mfd = mmap_shared(
        MFD_PAGES * page(),
        0x01,
        fd.as_raw_fd() as usize,
        "mmap memfd",
    )?;
    fill_pages(mfd, &MFD_TOUCHED, 300);
    // SAFETY: a fresh private mapping where the kernel chooses.
    let private = check(
        unsafe {
            sys_mmap(
                0,
                page(),
                PROT_RW,
                0x02,
                fd.as_raw_fd() as usize,
                6 * page(),
            )
        },
        "mmap memfd private",
    )?;
    for i in 0..page() / 2 {
        // SAFETY: inside the private mapping.
        unsafe { *((private + i) as *mut u8) = pattern(400, i) };
    }
    let seals = rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW;
    rustix::fs::fcntl_add_seals(&fd, seals).map_err(|e| format!("F_ADD_SEALS: {e}"))?;
    // Only the mapping keeps the memfd.
    drop(fd);
    let open = rustix::fs::memfd_create("openfd", rustix::fs::MemfdFlags::empty())
        .map_err(|e| format!("memfd_create: {e}"))?;
    let mut open = std::fs::File::from(open);
    let head: Vec<u8> = (0..5000).map(open_byte).collect();
    open.write_all(&head).map_err(|e| e.to_string())?;
    std::os::unix::fs::FileExt::write_all_at(&open, OPEN_TAIL, 3 * page() as u64)
        .map_err(|e| e.to_string())?;
    open.seek(SeekFrom::Start(OPEN_POS))
        .map_err(|e| e.to_string())?;
    Ok(Shmem {
        anon,
        mfd,
        private,
        open,
    })
}

/// smaps Rss (kB) and the maps name of the VMA starting at `start`.
fn smaps_of(start: usize) -> Result<(u64, String), String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|e| e.to_string())?;
    let head = format!("{start:x}-");
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head));
    let first = lines.next().ok_or(format!("no VMA at {start:#x}"))?;
    let name = first
        .split_whitespace()
        .skip(5)
        .collect::<Vec<_>>()
        .join(" ");
    let rss = lines
        .find_map(|l| l.strip_prefix("Rss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or("no Rss")?;
    Ok((rss, name))
}

fn verify_region(
    what: &str,
    base: usize,
    pages: usize,
    touched: &[usize],
    tag: usize,
    name: &str,
) -> Result<(), String> {
    // Written pages first: reading them maps them (and only them: the
    // kernel's fault-around maps cached pages only).
    for &p in touched {
        for i in 0..page() {
            // SAFETY: inside the region.
            let b = unsafe { *((base + p * page() + i) as *const u8) };
            if b != pattern(p + tag, i) {
                return Err(format!("{what} page {p} byte {i}: {b}"));
            }
        }
    }
    let (rss, got_name) = smaps_of(base)?;
    if got_name != name {
        return Err(format!("{what} is named {got_name:?}, want {name:?}"));
    }
    if rss != (touched.len() * page() / 1024) as u64 {
        return Err(format!("{what} Rss {rss} kB: holes were filled"));
    }
    let mut vec = vec![0u8; pages];
    check(
        // SAFETY: writes `pages` bytes into our vector.
        unsafe { syscall3(nr::MINCORE, base, pages * page(), vec.as_mut_ptr() as usize) },
        "mincore",
    )?;
    for p in (0..pages).filter(|p| !touched.contains(p)) {
        if vec[p] & 1 != 0 {
            return Err(format!("{what} page {p} is resident but was never written"));
        }
        for i in 0..page() {
            // SAFETY: inside the region.
            let b = unsafe { *((base + p * page() + i) as *const u8) };
            if b != 0 {
                return Err(format!("{what} hole page {p} byte {i}: {b}"));
            }
        }
    }
    // Still shared and writable.
    // SAFETY: inside the region, writable.
    unsafe { *((base + touched[0] * page()) as *mut u8) = 0x5a };
    Ok(())
}

fn shmem_verify(s: &Shmem) -> Result<(), String> {
    verify_region(
        "shared anonymous memory",
        s.anon,
        SHM_PAGES,
        &SHM_TOUCHED,
        200,
        "/dev/zero (deleted)",
    )?;
    verify_region(
        "memfd mapping",
        s.mfd,
        MFD_PAGES,
        &MFD_TOUCHED,
        300,
        "/memfd:pattern (deleted)",
    )?;
    let link = format!(
        "/proc/self/map_files/{:x}-{:x}",
        s.mfd,
        s.mfd + MFD_PAGES * page()
    );
    let f = std::fs::File::open(&link).map_err(|e| format!("open {link}: {e}"))?;
    let seals = rustix::fs::fcntl_get_seals(&f).map_err(|e| e.to_string())?;
    if seals != rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW {
        return Err(format!("memfd seals {seals:?}"));
    }
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    if size != (MFD_PAGES * page()) as u64 {
        return Err(format!("memfd size {size}"));
    }
    for i in 0..page() {
        // SAFETY: inside the private mapping.
        let b = unsafe { *((s.private + i) as *const u8) };
        let want = if i < page() / 2 {
            pattern(400, i)
        } else {
            pattern(6 + 300, i)
        };
        if b != want {
            return Err(format!("private memfd mapping byte {i}: {b}"));
        }
    }
    verify_open_memfd(&s.open)
}

fn verify_open_memfd(mut f: &std::fs::File) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .map_err(|e| e.to_string())?;
    if link.as_os_str() != "/memfd:openfd (deleted)" {
        return Err(format!("open memfd is {}", link.display()));
    }
    let pos = f.stream_position().map_err(|e| e.to_string())?;
    if pos != OPEN_POS {
        return Err(format!("open memfd position {pos}"));
    }
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    if size != (3 * page() + OPEN_TAIL.len()) as u64 {
        return Err(format!("open memfd size {size}"));
    }
    let mut head = vec![0u8; 5000];
    f.read_exact_at(&mut head, 0).map_err(|e| e.to_string())?;
    if let Some(i) = (0..head.len()).find(|&i| head[i] != open_byte(i)) {
        return Err(format!("open memfd byte {i}: {}", head[i]));
    }
    let mut tail = [0u8; 10];
    f.read_exact_at(&mut tail, 3 * page() as u64)
        .map_err(|e| e.to_string())?;
    if tail != OPEN_TAIL {
        return Err(format!("open memfd tail {tail:?}"));
    }
    Ok(())
}
