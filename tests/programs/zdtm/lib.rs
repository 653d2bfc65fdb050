//! The program side of the ZDTM-style tests (`tests/zdtm_*.rs`), included by
//! every `tests/programs/zdtm/*.rs` program with `#[path = "lib.rs"] mod zdtm;`.
//!
//! Protocol (driven by `tests/common/zdtm.rs`): a program is started as
//! `PROGRAM DIR [ARGS...]`; it becomes a session leader, closes every fd
//! it inherited above stdio, sets up the one kind of state it tests, and
//! writes its PID to `DIR/ready` (atomically, through a rename). It then
//! works (the `tick` closure, e.g. counting) until `DIR/go` exists,
//! checks that its state is exactly as it was set up and writes `PASS` or
//! `FAIL: reason` to `DIR/result`. The harness dumps and restores it
//! between `ready` and `go`.
#![allow(dead_code)] // Each program uses a different part of it.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The last bound on waiting for `go`, for a harness that lives on but
/// forgot the program. A program normally gives up only when its harness
/// is gone ([`waited_too_long`]): a fixed bound counted from the program's
/// start failed call_faults' tree walks in a loaded aarch64 VM, where the
/// walk outlasted it and the program ended in the middle of a dump or a
/// restore ("the restore failed by itself", a zombie in the dump walk).
pub const GO_TIMEOUT: Duration = Duration::from_secs(3600);

/// The harness's PID: the program's parent when it starts (the test
/// process spawns every program itself). Inherited by forked children and
/// kept across dump and restore, since it is plain memory.
static HARNESS: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Notes the harness (the parent) once, at the program's start.
fn note_harness() {
    let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
    HARNESS.store(ppid, std::sync::atomic::Ordering::Relaxed);
}

/// The harness's PID (in the namespaces the tests and criu run in).
pub fn harness_pid() -> i32 {
    HARNESS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether the program should stop waiting for `go`: its harness is gone
/// (no process with its PID), or the last bound ran out. A slow machine
/// only makes the wait longer, never makes the program end on its own
/// while its harness still drives it.
pub fn waited_too_long(start: std::time::Instant) -> bool {
    let harness = HARNESS.load(std::sync::atomic::Ordering::Relaxed);
    let gone = match rustix::process::Pid::from_raw(harness) {
        Some(pid) => rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH),
        None => false,
    };
    gone || start.elapsed() > GO_TIMEOUT
}

/// The test directory (first argument) and the rest of the arguments.
pub struct Args {
    pub dir: PathBuf,
    pub rest: Vec<String>,
}

/// Run a test program: `setup` builds the state (its value is what
/// `tick` and `check` see), `tick` runs repeatedly until `go` (about every
/// millisecond), `check` verifies the state after restore.
pub fn run<T>(
    setup: impl FnOnce(&Args) -> Result<T, String>,
    mut tick: impl FnMut(&mut T),
    check: impl FnOnce(T) -> Result<(), String>,
) {
    let mut argv = std::env::args_os().skip(1);
    let dir = PathBuf::from(argv.next().expect("usage: PROGRAM DIR [ARGS...]"));
    let args = Args {
        dir: dir.clone(),
        rest: argv.map(|a| a.to_string_lossy().into_owned()).collect(),
    };
    note_harness();
    let verdict = (|| {
        let _ = rustix::process::setsid();
        close_inherited_fds()?;
        let pid = std::process::id();
        let mut state = setup(&args)?;
        write_atomic(&dir.join("ready"), &format!("{pid}\n"))?;
        let go = dir.join("go");
        let start = std::time::Instant::now();
        while !go.exists() {
            if waited_too_long(start) {
                return Err("no go from the harness".to_string());
            }
            tick(&mut state);
            std::thread::sleep(Duration::from_millis(1));
        }
        if std::process::id() != pid {
            return Err(format!(
                "PID {} after restore, was {pid}",
                std::process::id()
            ));
        }
        check(state)
    })();
    let text = match verdict {
        Ok(()) => "PASS\n".to_string(),
        Err(e) => format!("FAIL: {e}\n"),
    };
    let _ = write_atomic(&dir.join("result"), &text);
}

/// Close every fd above stderr: the test runner's fds must not become
/// part of the dumped state.
fn close_inherited_fds() -> Result<(), String> {
    // SAFETY: close_range(3, ~0, 0) only closes fds; this program has
    // opened none of its own yet, so no Rust object owns any of them.
    let ret = unsafe { criu_arch::syscall3(criu_arch::nr::CLOSE_RANGE, 3, u32::MAX as usize, 0) };
    errno(ret, "close_range").map(drop)
}

/// Write `text` to `path` through a temporary file and a rename, so that
/// a reader never sees a partial file.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename {}: {e}", path.display()))
}

/// A raw syscall's return value as a `Result` (negative values are errnos).
pub fn errno(ret: isize, what: &str) -> Result<usize, String> {
    if ret < 0 {
        Err(format!("{what}: errno {}", -ret))
    } else {
        Ok(ret as usize)
    }
}

/// The first two arguments of a raw `clone` with `flags` (exit signal and
/// `CLONE_*` bits) and no new stack: s390x takes the stack first and the
/// flags second, every other arch the flags first.
pub fn clone_args(flags: usize) -> (usize, usize) {
    if cfg!(target_arch = "s390x") {
        (0, flags)
    } else {
        (flags, 0)
    }
}

/// fork(2) as a raw `clone` with SIGCHLD and `flags` (`CLONE_FILES`, ...)
/// added: no `CLONE_VM` and no new stack, so the child continues on a copy
/// of this process. The raw result: 0 in the child, the child's PID, or
/// -errno. (A vfork must inline the syscall with [`clone_args`] instead:
/// its child would return through this function's frame, which the
/// suspended parent returns through too.)
///
/// # Safety
/// The usual fork rules: the child of a multi-threaded program may only
/// make raw syscalls (other threads' locks are copied as they were).
pub unsafe fn raw_fork(flags: usize) -> isize {
    let (a, b) = clone_args(linux_raw_sys::general::SIGCHLD as usize | flags);
    // SAFETY: no CLONE_VM, no pointers: the caller's fork contract.
    unsafe { criu_arch::syscall5(criu_arch::nr::CLONE, a, b, 0, 0, 0) }
}

/// [`raw_fork`] with its result as the child's PID (0 in the child) or
/// the error.
///
/// # Safety
/// See [`raw_fork`].
pub unsafe fn fork(flags: usize) -> Result<i32, String> {
    // SAFETY: the caller's contract.
    errno(unsafe { raw_fork(flags) }, "fork").map(|p| p as i32)
}

/// `wait4(pid, options)`: the child's wait status.
pub fn wait_status(pid: i32, options: usize) -> Result<i32, String> {
    let mut status: i32 = 0;
    // SAFETY: wait4 writes one int into `status`, live for the call.
    let ret = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::WAIT4,
            pid as usize,
            std::ptr::from_mut(&mut status) as usize,
            options,
            0,
        )
    };
    errno(ret, &format!("wait4({pid})"))?;
    Ok(status)
}

/// Wait (in a forked task of a tree program) until the harness says go.
pub fn wait_go(dir: &Path) -> Result<(), String> {
    let go = dir.join("go");
    let start = std::time::Instant::now();
    while !go.exists() {
        if waited_too_long(start) {
            return Err("no go from the harness".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Run `body` as a forked child task that ends with its verdict: exit 0,
/// or exit 1 with its reason in `DIR/fail-PID` (see [`reap_ok`]). For the
/// tree programs, which are single-threaded.
pub fn child(dir: &Path, body: impl FnOnce() -> Result<(), String>) -> Result<i32, String> {
    // SAFETY: the programs that fork their trees this way have one thread,
    // so the child may do anything.
    let pid = unsafe { fork(0) }?;
    if pid != 0 {
        return Ok(pid);
    }
    let code = match body() {
        Ok(()) => 0,
        Err(e) => {
            let me = std::process::id();
            let _ = write_atomic(&dir.join(format!("fail-{me}")), &e);
            1
        }
    };
    // SAFETY: ends this (forked) process only.
    unsafe { criu_arch::syscall1(criu_arch::nr::EXIT_GROUP, code) };
    unreachable!("exit_group returned")
}

/// Reap [`child`] `pid` (named `who`) and turn its failure into its reason.
pub fn reap_ok(dir: &Path, pid: i32, who: &str) -> Result<(), String> {
    let status = wait_status(pid, 0)?;
    if status == 0 {
        return Ok(());
    }
    let why = std::fs::read_to_string(dir.join(format!("fail-{pid}")))
        .unwrap_or_else(|_| format!("wait status {status:#x}"));
    Err(format!("{who} ({pid}): {why}"))
}

/// A program whose whole state is one value written to a `/proc/self`
/// file (`loginuid`, `oom_score_adj`): after restore the file must read
/// `value` again, not the restoring tool's value.
pub fn run_proc_value(path: &'static str, value: &'static str) {
    let read = move || {
        std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("read {path}: {e}"))
    };
    run(
        move |_| {
            std::fs::write(path, value).map_err(|e| format!("write {path}: {e}"))?;
            let v = read()?;
            ensure(v == value, || format!("setup: {path} {v}, want {value}"))
        },
        |_| {},
        move |()| {
            let v = read()?;
            ensure(v == value, || {
                format!("{path} {v} after restore, want {value}")
            })
        },
    );
}

/// `Err(msg)` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

/// The `/proc/self/maps` line of the mapping that contains `addr`.
pub fn maps_line(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .find(|l| {
            let range = l.split_whitespace().next().unwrap_or("");
            let (s, e) = range.split_once('-').unwrap_or(("0", "0"));
            let s = usize::from_str_radix(s, 16).unwrap_or(0);
            let e = usize::from_str_radix(e, 16).unwrap_or(0);
            (s..e).contains(&addr)
        })
        .map(str::to_string)
}

/// Which of the `n` pages at `addr` are resident (`mincore`).
pub fn resident_pages(addr: usize, n: usize) -> Result<Vec<bool>, String> {
    let mut vec = vec![0u8; n];
    // SAFETY: mincore writes one byte per page of the range into `vec`,
    // which holds `n` bytes.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::MINCORE,
            addr,
            n * page(),
            vec.as_mut_ptr() as usize,
        )
    };
    errno(ret, "mincore")?;
    Ok(vec.iter().map(|b| b & 1 != 0).collect())
}

// ---- Memory helpers (the zdtm memory programs: anon_*, file_*, ...) ----

/// This system's page size (4 KiB on x86_64, s390x and the Debian arm64
/// kernel, 64 KiB on Debian's ppc64le kernel): the programs lay out their
/// memory in pages of this size.
pub fn page() -> usize {
    rustix::param::page_size()
}
pub const PROT_NONE: usize = 0;
pub const PROT_READ: usize = 1;
pub const PROT_WRITE: usize = 2;
pub const PROT_EXEC: usize = 4;
pub const MAP_SHARED: usize = 1;
pub const MAP_PRIVATE: usize = 2;
pub const MAP_FIXED: usize = 0x10;
pub const MAP_ANONYMOUS: usize = 0x20;
pub const MAP_NORESERVE: usize = 0x4000;

/// Raw `mmap`; the address it mapped at.
pub fn mmap(
    addr: usize,
    len: usize,
    prot: usize,
    flags: usize,
    fd: i32,
    off: usize,
) -> Result<usize, String> {
    // SAFETY: the callers map fresh memory (or MAP_FIXED over a
    // reservation of their own), never over memory Rust owns.
    let ret = unsafe { criu_arch::sys_mmap(addr, len, prot, flags, fd as usize, off) };
    errno(ret, "mmap")
}

/// Raw `mprotect`.
pub fn mprotect(addr: usize, len: usize, prot: usize) -> Result<(), String> {
    // SAFETY: only changes protections of the caller's own mappings.
    let ret = unsafe { criu_arch::syscall3(criu_arch::nr::MPROTECT, addr, len, prot) };
    errno(ret, "mprotect").map(drop)
}

/// Raw `munmap`.
pub fn munmap(addr: usize, len: usize) -> Result<(), String> {
    // SAFETY: only unmaps the caller's own mappings (guard pages).
    let ret = unsafe { criu_arch::syscall2(criu_arch::nr::MUNMAP, addr, len) };
    errno(ret, "munmap").map(drop)
}

/// Map `lens.len()` private anonymous read-write regions of the given
/// lengths, with a guard page before and after each so that the kernel
/// cannot merge them with each other or with a later mapping. The guards
/// are mapped execute-only (`--xp`), a protection no region of these
/// programs has (an unmapped guard would be filled by a later mmap). The
/// regions' addresses.
pub fn map_separate(lens: &[usize], flags: usize) -> Result<Vec<usize>, String> {
    let total: usize = lens.iter().map(|l| l + page()).sum::<usize>() + page();
    let base = mmap(0, total, PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)?;
    let mut at = base + page();
    let mut addrs = Vec::new();
    for &len in lens {
        mmap(at, len, PROT_READ | PROT_WRITE, flags | MAP_FIXED, -1, 0)?;
        addrs.push(at);
        at += len + page();
    }
    Ok(addrs)
}

/// The bytes at `addr..addr + len` as a slice.
///
/// # Safety
/// The range must be mapped readable (and writable if written through)
/// for as long as the slice lives, and nothing else may hold a reference
/// into it.
pub unsafe fn region<'a>(addr: usize, len: usize) -> &'a mut [u8] {
    // SAFETY: the caller promises the range is mapped and unaliased.
    unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) }
}

/// Byte `i` of pattern `seed`: different in every page and every seed.
pub fn pattern_byte(seed: u64, i: usize) -> u8 {
    let x = (seed << 40 ^ i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ (i >> 12) as u8
}

/// Fill `buf` with pattern `seed`.
pub fn fill_pattern(buf: &mut [u8], seed: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, i);
    }
}

/// Check that `buf` holds pattern `seed`; the error names `what`, the
/// first wrong page and byte and how many bytes are wrong.
pub fn check_pattern(what: &str, buf: &[u8], seed: u64) -> Result<(), String> {
    let bad = buf
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b != pattern_byte(seed, i))
        .map(|(i, _)| i);
    let mut count = 0usize;
    let mut first = None;
    for i in bad {
        first.get_or_insert(i);
        count += 1;
    }
    match first {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: {count} of {} bytes wrong, first at page {} byte {}: {:#04x}, want {:#04x}",
            buf.len(),
            i / page(),
            i % page(),
            buf[i],
            pattern_byte(seed, i)
        )),
    }
}

/// Which of the `n` pages at `addr` are present in RAM or swapped, by
/// `/proc/self/pagemap` (bits 63 and 62 of each entry).
pub fn pagemap_present(addr: usize, n: usize) -> Result<Vec<bool>, String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open("/proc/self/pagemap").map_err(|e| format!("pagemap: {e}"))?;
    let mut raw = vec![0u8; n * 8];
    f.read_exact_at(&mut raw, (addr / page() * 8) as u64)
        .map_err(|e| format!("read pagemap: {e}"))?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()) >> 62 != 0)
        .collect())
}

/// One parsed `/proc/self/maps` line.
#[derive(Debug)]
pub struct Vma {
    pub start: usize,
    pub end: usize,
    pub perms: String,
    pub offset: u64,
    pub path: String,
}

/// The VMA that contains `addr`, parsed.
pub fn vma_at(addr: usize) -> Result<Vma, String> {
    let line = maps_line(addr).ok_or_else(|| format!("nothing mapped at {addr:#x}"))?;
    let mut f = line.splitn(6, ' ');
    let range = f.next().unwrap_or("");
    let perms = f.next().unwrap_or("").to_string();
    let offset = u64::from_str_radix(f.next().unwrap_or(""), 16).unwrap_or(u64::MAX);
    let _dev = f.next();
    let _ino = f.next();
    let path = f.next().unwrap_or("").trim().to_string();
    let (s, e) = range.split_once('-').unwrap_or(("", ""));
    let start = usize::from_str_radix(s, 16).map_err(|_| format!("maps line {line:?}"))?;
    let end = usize::from_str_radix(e, 16).map_err(|_| format!("maps line {line:?}"))?;
    Ok(Vma {
        start,
        end,
        perms,
        offset,
        path,
    })
}

/// Check that the VMA at `addr` spans exactly `addr..addr + len` with
/// permissions `perms`; the VMA.
pub fn expect_vma(what: &str, addr: usize, len: usize, perms: &str) -> Result<Vma, String> {
    let vma = vma_at(addr).map_err(|e| format!("{what}: {e}"))?;
    ensure(vma.start == addr && vma.end == addr + len, || {
        format!(
            "{what}: VMA {:#x}-{:#x}, want {addr:#x}-{:#x}",
            vma.start,
            vma.end,
            addr + len
        )
    })?;
    ensure(vma.perms == perms, || {
        format!("{what}: perms {}, want {perms}", vma.perms)
    })?;
    Ok(vma)
}

// --- Signal helpers (the signal and timer programs) ---

/// The kernel's action for `sig` (`rt_sigaction` with no new action).
pub fn get_sigaction(sig: usize) -> Result<criu_arch::KSigaction, String> {
    let mut old = criu_arch::KSigaction::default();
    // SAFETY: the kernel writes one struct sigaction into `old`.
    let ret = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::RT_SIGACTION,
            sig,
            0,
            &mut old as *mut criu_arch::KSigaction as usize,
            8,
        )
    };
    errno(ret, &format!("rt_sigaction({sig}) query"))?;
    Ok(old)
}

/// Install `act` for `sig` (raw `rt_sigaction`: any flags, any signal).
pub fn set_sigaction(sig: usize, act: &criu_arch::KSigaction) -> Result<(), String> {
    // SAFETY: the kernel reads one struct sigaction from `act`.
    let ret = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::RT_SIGACTION,
            sig,
            act as *const criu_arch::KSigaction as usize,
            0,
            8,
        )
    };
    errno(ret, &format!("rt_sigaction({sig})")).map(drop)
}

/// A handler entry for [`set_sigaction`]: `handler` with `flags` (plus
/// SA_RESTORER and the arch's trampoline) and `mask`.
pub fn action(handler: usize, flags: u64, mask: u64) -> criu_arch::KSigaction {
    criu_arch::KSigaction {
        handler: handler as u64,
        flags: flags | criu_arch::SA_RESTORER,
        restorer: criu_arch::sa_restorer(flags),
        mask,
    }
}

/// `rt_sigprocmask(how, set)`; the previous mask.
pub fn sigprocmask(how: usize, set: Option<u64>) -> Result<u64, String> {
    let mut old: u64 = 0;
    let new = set.as_ref().map_or(0, |s| s as *const u64 as usize);
    // SAFETY: the kernel reads 8 bytes from `new` (if any) and writes 8 to `old`.
    let ret = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::RT_SIGPROCMASK,
            how,
            new,
            &mut old as *mut u64 as usize,
            8,
        )
    };
    errno(ret, "rt_sigprocmask").map(|_| old)
}

/// The blocked mask of this thread.
pub fn blocked() -> Result<u64, String> {
    sigprocmask(criu_arch::SIG_BLOCK, None)
}

/// Signal `sig` to this thread (`tgkill`), so it is delivered before the
/// call returns when unblocked.
pub fn raise(sig: usize) -> Result<(), String> {
    let pid = std::process::id() as usize;
    // SAFETY: integer arguments only.
    let ret = unsafe {
        let tid = criu_arch::syscall0(criu_arch::nr::GETTID) as usize;
        criu_arch::syscall3(criu_arch::nr::TGKILL, pid, tid, sig)
    };
    errno(ret, &format!("tgkill({sig})")).map(drop)
}

/// This thread's id.
pub fn gettid() -> i32 {
    // SAFETY: no arguments.
    unsafe { criu_arch::syscall0(criu_arch::nr::GETTID) as i32 }
}

/// Sleep `d` of wall-clock time even if signal handlers interrupt it.
pub fn sleep_through_signals(d: Duration) {
    let end = std::time::Instant::now() + d;
    while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
        std::thread::sleep(left);
    }
}

/// A `siginfo_t` as 128 raw bytes, with accessors for the fields the
/// programs compare (the layout is the same on every 64-bit arch).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct RawSiginfo(pub [u8; 128]);

impl RawSiginfo {
    pub fn zeroed() -> Self {
        RawSiginfo([0; 128])
    }
    fn i32_at(&self, off: usize) -> i32 {
        i32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap())
    }
    fn set_i32(&mut self, off: usize, v: i32) {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    pub fn signo(&self) -> i32 {
        self.i32_at(0)
    }
    pub fn code(&self) -> i32 {
        self.i32_at(8)
    }
    /// `si_pid` (kill, rt, sigqueue) / `si_tid` (POSIX timers: the timer id).
    pub fn pid(&self) -> i32 {
        self.i32_at(16)
    }
    /// `si_uid` / `si_overrun` (POSIX timers).
    pub fn uid(&self) -> i32 {
        self.i32_at(20)
    }
    /// `si_value` (sigqueue, POSIX timers).
    pub fn value(&self) -> u64 {
        u64::from_ne_bytes(self.0[24..32].try_into().unwrap())
    }
    /// An `SI_QUEUE` siginfo from this process with `value`.
    pub fn queued(signo: i32, value: u64) -> Self {
        const SI_QUEUE: i32 = -1;
        let mut s = RawSiginfo::zeroed();
        s.set_i32(0, signo);
        s.set_i32(8, SI_QUEUE);
        s.set_i32(16, std::process::id() as i32);
        s.set_i32(20, rustix::process::getuid().as_raw() as i32);
        s.0[24..32].copy_from_slice(&value.to_ne_bytes());
        s
    }
}

impl std::fmt::Debug for RawSiginfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{signo {} code {} pid {} uid {} value {:#x}}}",
            self.signo(),
            self.code(),
            self.pid(),
            self.uid(),
            self.value()
        )
    }
}

/// The VmFlags (`/proc/self/smaps`) of the VMA that starts at `start`.
pub fn vm_flags(start: usize) -> Result<Vec<String>, String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|e| e.to_string())?;
    let head = format!("{start:x}-");
    // VmFlags is the last line of each VMA's block.
    let flags = smaps
        .lines()
        .skip_while(|l| !l.starts_with(&head))
        .find_map(|l| l.strip_prefix("VmFlags:"))
        .ok_or_else(|| format!("no VMA starts at {start:#x}"))?;
    Ok(flags.split_whitespace().map(str::to_string).collect())
}

/// This thread's thread pointer (the TLS base glibc's per-thread data,
/// such as its rseq area, hangs off).
#[cfg(target_arch = "x86_64")]
pub fn thread_pointer() -> Result<usize, String> {
    const ARCH_GET_FS: usize = 0x1003;
    let mut fs = 0usize;
    // SAFETY: ARCH_GET_FS writes the fs base into our local `fs`.
    let ret = unsafe {
        criu_arch::syscall2(
            criu_arch::nr::ARCH_PRCTL,
            ARCH_GET_FS,
            &mut fs as *mut usize as usize,
        )
    };
    errno(ret, "arch_prctl(ARCH_GET_FS)")?;
    Ok(fs)
}

/// This thread's thread pointer (`tpidr_el0`).
#[cfg(target_arch = "aarch64")]
pub fn thread_pointer() -> Result<usize, String> {
    let tp: usize;
    // SAFETY: reading tpidr_el0 is allowed at EL0 and has no side effects.
    unsafe { std::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nomem, nostack)) };
    Ok(tp)
}

/// This thread's thread pointer (access registers a0:a1, a0 the high
/// half).
#[cfg(target_arch = "s390x")]
pub fn thread_pointer() -> Result<usize, String> {
    let tp: usize;
    // SAFETY: `ear` and `sllg` only read access registers and write `tp`
    // (ear replaces its low 32 bits, after the shift they hold a1).
    unsafe {
        std::arch::asm!(
            "ear {t}, %a0",
            "sllg {t}, {t}, 32",
            "ear {t}, %a1",
            t = out(reg) tp,
            options(nomem, nostack, preserves_flags),
        )
    };
    Ok(tp)
}

/// This thread's thread pointer (r13).
#[cfg(target_arch = "powerpc64")]
pub fn thread_pointer() -> Result<usize, String> {
    let tp: usize;
    // SAFETY: copies r13, which the ABI reserves for the thread pointer,
    // without changing it.
    unsafe { std::arch::asm!("mr {}, 13", out(reg) tp, options(nomem, nostack)) };
    Ok(tp)
}

/// This thread's thread pointer: on the four supported arches only.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
pub fn thread_pointer() -> Result<usize, String> {
    Err("thread pointer: this arch is not supported by this test".into())
}

/// The rseq signature glibc registers with (`RSEQ_SIG`): x86_64 `ud1`
/// bytes, aarch64 `brk #0x45e0`, ppc64 `twui r5, 0x000b`, s390x
/// `trap4 4095(%r0)`.
#[cfg(target_arch = "aarch64")]
pub const RSEQ_SIG: usize = 0xd428_bc00;
#[cfg(target_arch = "powerpc64")]
pub const RSEQ_SIG: usize = 0x0fe5_000b;
#[cfg(target_arch = "s390x")]
pub const RSEQ_SIG: usize = 0xb2ff_0fff;
#[cfg(not(any(
    target_arch = "aarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
pub const RSEQ_SIG: usize = 0x5305_3053;
