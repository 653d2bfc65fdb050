//! State a dump must refuse, or (`devices`) bring back exactly
//! (`PROGRAM DIR MODE [ARG]`). Each mode holds its object while it counts,
//! and checks at the end that the object is still there as it was set up
//! and the counters agree: after a refused dump the program must run on
//! unchanged, after a restore its state must be back.
//!
//! Modes:
//! - `count`: nothing but the counters (run inside `unshare`, a cgroup, a
//!   frozen cgroup).
//! - `devices`: fds 10..=14 open on `/dev/null` (read-write), `/dev/zero`
//!   (read), `/dev/full` (write), `/dev/random` and `/dev/urandom` (read):
//!   the devices a restore reopens; after restore each fd is the same
//!   device with the same access mode and behaves as that device.
//! - `device PATH`: fd 10 open on the device `PATH` (read-only for a block
//!   device, else read-write, `O_NOCTTY`).
//! - `linked`: fd 10 open on a file whose name was removed while another
//!   hard link keeps it (`NAME (deleted)` in `/proc`).
//! - `linked-map`: the same file, also mapped (read-only, private).
//! - `hugetlbfs FILE`: FILE (on a hugetlbfs mount) of one huge page,
//!   mapped shared and filled with a pattern.
//! - `hugetlb`: an anonymous `MAP_HUGETLB` mapping of one huge page,
//!   filled with a pattern.
//! - `hugetlb-memfd`: fd 10 a `MFD_HUGETLB` memfd of one huge page, filled
//!   with a pattern through a mapping that is then removed.
//! - `child-ns KIND`: a child that unshared its KIND namespace (`uts`
//!   with its own hostname, `ipc`, `mnt`, `net`, `cgroup`, `user`, and
//!   `pid`/`time`, which only its children would live in) and waits; the
//!   root checks it is still alive in that namespace.
//! - `vfork`: after `ready`, the program vforks a child that waits for
//!   `DIR/go` and exits: until then the program sleeps in the kernel where
//!   no `PTRACE_INTERRUPT` stops it (a task a dump waits for in vain).
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use criu_arch::nr;
use rustix::fs::{Mode, OFlags};
use zdtm::{ensure, errno};

static COUNT: AtomicU64 = AtomicU64::new(0);

/// What a mode set up, for the check.
enum Held {
    Nothing,
    /// fd, device number, access mode (O_ACCMODE bits), path.
    Devices(Vec<(OwnedFd, u64, u32, &'static str)>),
    Device(OwnedFd, u64),
    Linked {
        fd: OwnedFd,
        other: PathBuf,
        /// Where it is mapped too (`linked-map`).
        map: Option<usize>,
    },
    Hugetlb {
        addr: usize,
        len: usize,
    },
    /// Filled through a mapping that is gone: only the fd holds it.
    HugetlbMemfd(OwnedFd),
    Child {
        pid: i32,
        kind: String,
        ns: String,
    },
    /// A `memfd_secret` area at fd 10, or only mapped (its fd closed),
    /// filled with a pattern.
    #[cfg_attr(target_arch = "powerpc64", allow(dead_code))] // no memfd_secret there
    Secret {
        fd: Option<OwnedFd>,
        addr: usize,
    },
    /// `DIR/go` as a C string; whether the vfork child came and went.
    Vfork {
        go: std::ffi::CString,
        done: Result<bool, String>,
    },
}

struct State {
    count: u64,
    held: Held,
}

const HUGE: usize = 2 << 20;
const SIGKILL: i32 = 9;

fn dup_to(fd: OwnedFd, target: i32) -> Result<OwnedFd, String> {
    // SAFETY: dup3 onto a number this program does not use otherwise;
    // the result is owned once.
    let ret = unsafe { criu_arch::syscall3(nr::DUP3, fd.as_raw_fd() as usize, target as usize, 0) };
    errno(ret, "dup3")?;
    drop(fd);
    // SAFETY: `target` is now an fd of ours that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(target) })
}

fn open(path: &str, flags: OFlags) -> Result<OwnedFd, String> {
    rustix::fs::open(
        path,
        flags | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| format!("open {path}: {e}"))
}

fn rdev(fd: &OwnedFd) -> Result<u64, String> {
    #[allow(clippy::useless_conversion)] // st_rdev's width varies by arch
    rustix::fs::fstat(fd)
        .map(|st| u64::from(st.st_rdev))
        .map_err(|e| format!("fstat: {e}"))
}

fn accmode(fd: &OwnedFd) -> Result<u32, String> {
    rustix::fs::fcntl_getfl(fd)
        .map(|f| f.bits() & linux_raw_sys::general::O_ACCMODE)
        .map_err(|e| format!("F_GETFL: {e}"))
}

fn setup_devices() -> Result<Held, String> {
    let specs: [(&str, OFlags); 5] = [
        ("/dev/null", OFlags::RDWR),
        ("/dev/zero", OFlags::RDONLY),
        ("/dev/full", OFlags::WRONLY),
        ("/dev/random", OFlags::RDONLY),
        ("/dev/urandom", OFlags::RDONLY),
    ];
    let mut out = Vec::new();
    for (i, (path, flags)) in specs.into_iter().enumerate() {
        let fd = dup_to(open(path, flags)?, 10 + i as i32)?;
        let dev = rdev(&fd)?;
        let mode = accmode(&fd)?;
        out.push((fd, dev, mode, path));
    }
    Ok(Held::Devices(out))
}

/// Each device fd is still its device, opened as before, and works.
fn check_devices(devs: &[(OwnedFd, u64, u32, &'static str)]) -> Result<(), String> {
    for (fd, dev, mode, path) in devs {
        ensure(rdev(fd)? == *dev, || format!("{path}: another device now"))?;
        ensure(accmode(fd)? == *mode, || {
            format!("{path}: access mode changed")
        })?;
        let mut buf = [0xa5u8; 16];
        let e = |what: &str, err: rustix::io::Errno| format!("{path}: {what}: {err}");
        match *path {
            "/dev/null" => {
                ensure(
                    rustix::io::read(fd, &mut buf).map_err(|x| e("read", x))? == 0,
                    || format!("{path}: read gave data"),
                )?;
                rustix::io::write(fd, b"x").map_err(|x| e("write", x))?;
            }
            "/dev/zero" => {
                rustix::io::read(fd, &mut buf).map_err(|x| e("read", x))?;
                ensure(buf == [0; 16], || format!("{path}: not zeros"))?;
            }
            "/dev/full" => {
                let r = rustix::io::write(fd, b"x");
                ensure(r == Err(rustix::io::Errno::NOSPC), || {
                    format!("{path}: write gave {r:?}, not ENOSPC")
                })?;
            }
            _ => {
                let n = rustix::io::read(fd, &mut buf).map_err(|x| e("read", x))?;
                ensure(n == buf.len(), || format!("{path}: short read {n}"))?;
            }
        }
    }
    Ok(())
}

fn setup_linked(dir: &std::path::Path) -> Result<Held, String> {
    let name = dir.join("linked-a");
    let other = dir.join("linked-b");
    std::fs::write(&name, b"kept by another link").map_err(|e| e.to_string())?;
    std::fs::hard_link(&name, &other).map_err(|e| e.to_string())?;
    let fd = open(name.to_str().unwrap_or(""), OFlags::RDWR)?;
    std::fs::remove_file(&name).map_err(|e| e.to_string())?;
    Ok(Held::Linked {
        fd: dup_to(fd, 10)?,
        other,
        map: None,
    })
}

fn setup_linked_map(dir: &std::path::Path) -> Result<Held, String> {
    let Held::Linked { fd, other, .. } = setup_linked(dir)? else {
        unreachable!()
    };
    // SAFETY: a new private read-only mapping of our own file, at an
    // address the kernel picks.
    let p = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            zdtm::page(),
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE,
            &fd,
            0,
        )
    }
    .map_err(|e| format!("mmap: {e}"))?;
    Ok(Held::Linked {
        fd,
        other,
        map: Some(p as usize),
    })
}

fn setup_hugetlbfs(path: &str) -> Result<Held, String> {
    use rustix::mm::{MapFlags, ProtFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| format!("open {path}: {e}"))?;
    // SAFETY: a new shared mapping of our own hugetlbfs file.
    let p = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            HUGE,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            0,
        )
    }
    .map_err(|e| format!("mmap of {path}: {e}"))?;
    // SAFETY: the mapping is ours, HUGE bytes, readable and writable.
    let buf = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), HUGE) };
    zdtm::fill_pattern(buf, 77);
    Ok(Held::Hugetlb {
        addr: p as usize,
        len: HUGE,
    })
}

fn check_linked(fd: &OwnedFd, other: &std::path::Path, map: Option<usize>) -> Result<(), String> {
    if let Some(addr) = map {
        // SAFETY: the mapping set up above, one page, still ours.
        let page = unsafe { std::slice::from_raw_parts(addr as *const u8, 20) };
        ensure(page == b"kept by another link", || {
            "the mapping changed".into()
        })?;
    }
    let st = rustix::fs::fstat(fd).map_err(|e| e.to_string())?;
    let m = std::fs::metadata(other).map_err(|e| e.to_string())?;
    #[allow(clippy::useless_conversion)]
    let same = (u64::from(st.st_dev), u64::from(st.st_ino)) == (m.dev(), m.ino());
    ensure(same, || {
        "the fd is not the other link's file any more".into()
    })?;
    let mut buf = [0u8; 64];
    let n = rustix::io::pread(fd, &mut buf, 0).map_err(|e| e.to_string())?;
    ensure(&buf[..n] == b"kept by another link", || {
        "contents changed".into()
    })?;
    // Restored with --link-remap: the same name, unlinked again, and no
    // link of the dump's or the restore's left in the directory.
    let dir = other.parent().unwrap_or(std::path::Path::new("/"));
    let name = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| e.to_string())?;
    let want = dir.join("linked-a (deleted)");
    ensure(name == want, || {
        format!("the fd names {name:?}, not {want:?}")
    })?;
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("link") || n.contains("cr_link"))
        .collect();
    left.sort();
    ensure(left == ["linked-b"], || {
        format!("left in {dir:?}: {left:?}")
    })
}

fn setup_hugetlb(memfd: bool) -> Result<Held, String> {
    use rustix::mm::{MapFlags, ProtFlags};
    let prot = ProtFlags::READ | ProtFlags::WRITE;
    let (addr, fd) = if memfd {
        let fd = rustix::fs::memfd_create(
            "criu-test-huge",
            rustix::fs::MemfdFlags::HUGETLB | rustix::fs::MemfdFlags::CLOEXEC,
        )
        .map_err(|e| format!("memfd_create(MFD_HUGETLB): {e}"))?;
        rustix::fs::ftruncate(&fd, HUGE as u64).map_err(|e| format!("ftruncate: {e}"))?;
        let fd = dup_to(fd, 10)?;
        // SAFETY: a new shared mapping of our own memfd, at an address the
        // kernel picks; nothing else refers to that memory.
        let p =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), HUGE, prot, MapFlags::SHARED, &fd, 0) }
                .map_err(|e| format!("mmap of the hugetlb memfd: {e}"))?;
        (p as usize, Some(fd))
    } else {
        // SAFETY: a new anonymous mapping at an address the kernel picks.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                HUGE,
                prot,
                MapFlags::PRIVATE | MapFlags::HUGETLB,
            )
        }
        .map_err(|e| format!("mmap(MAP_HUGETLB): {e}"))?;
        (p as usize, None)
    };
    // SAFETY: the mapping is ours, HUGE bytes, readable and writable.
    let buf = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, HUGE) };
    zdtm::fill_pattern(buf, 77);
    match fd {
        Some(fd) => {
            zdtm::munmap(addr, HUGE)?;
            Ok(Held::HugetlbMemfd(fd))
        }
        None => Ok(Held::Hugetlb { addr, len: HUGE }),
    }
}

fn ns_link(pid: &str, kind: &str) -> Result<String, String> {
    match std::fs::read_link(format!("/proc/{pid}/ns/{kind}")) {
        Ok(l) => Ok(l.display().to_string()),
        // A new pid namespace has no link before its init exists.
        Err(e) if kind == "pid_for_children" && e.kind() == std::io::ErrorKind::NotFound => {
            Ok("a pid namespace without init".to_string())
        }
        Err(e) => Err(format!("ns/{kind} of {pid}: {e}")),
    }
}

fn setup_child(kind: &str) -> Result<Held, String> {
    use rustix::thread::UnshareFlags as U;
    let (flag, link) = match kind {
        "uts" => (U::NEWUTS, "uts"),
        "ipc" => (U::NEWIPC, "ipc"),
        "mnt" => (U::NEWNS, "mnt"),
        "net" => (U::NEWNET, "net"),
        "cgroup" => (U::NEWCGROUP, "cgroup"),
        "user" => (U::NEWUSER, "user"),
        "pid" => (U::NEWPID, "pid_for_children"),
        "time" => (U::NEWTIME, "time_for_children"),
        _ => return Err(format!("unknown namespace {kind}")),
    };
    let (rd, wr) = rustix::pipe::pipe().map_err(|e| e.to_string())?;
    // SAFETY: a plain fork of this single-threaded program.
    let pid = unsafe { zdtm::fork(0) }?;
    if pid == 0 {
        // The child: unshare, say so, wait for the end of its parent.
        drop(rd);
        let ok = rustix::process::set_parent_process_death_signal(rustix::process::Signal::from_named_raw(SIGKILL)).is_ok()
            // SAFETY: unshare of one namespace in this single-threaded child.
            && unsafe { criu_arch::syscall1(nr::UNSHARE, flag.bits() as usize) } == 0
            && (kind != "uts" || rustix::system::sethostname(b"criu-test-child").is_ok());
        let _ = rustix::io::write(&wr, if ok { b"y" } else { b"n" });
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    drop(wr);
    let mut b = [0u8; 1];
    let n = rustix::io::read(&rd, &mut b).map_err(|e| e.to_string())?;
    ensure(n == 1 && b[0] == b'y', || {
        format!("the child could not unshare {kind}")
    })?;
    let ns = ns_link(&pid.to_string(), link)?;
    let own = ns_link("self", link.trim_end_matches("_for_children"))?;
    ensure(ns != own, || format!("the child's {link} is ours"))?;
    Ok(Held::Child {
        pid,
        kind: link.to_string(),
        ns,
    })
}

fn check_child(pid: i32, kind: &str, ns: &str) -> Result<(), String> {
    let mut status = 0i32;
    // SAFETY: wait4 with WNOHANG writes one int to `status`.
    let ret = unsafe {
        criu_arch::syscall4(
            nr::WAIT4,
            pid as usize,
            std::ptr::from_mut(&mut status) as usize,
            1, // WNOHANG
            0,
        )
    };
    ensure(errno(ret, "wait4")? == 0, || {
        format!("child {pid} ended: {status:#x}")
    })?;
    let now = ns_link(&pid.to_string(), kind)?;
    ensure(now == ns, || {
        format!("child {pid}: {kind} is {now}, was {ns}")
    })
}

/// Sleep through each 10 ms (no stack needed by the vfork child).
static TEN_MS: [i64; 2] = [0, 10_000_000];

/// vfork a child that polls for `go` and exits; the parent is suspended
/// in the kernel until then. The child only makes raw syscalls with what
/// is in registers and statics, on the parent's stack, and never returns.
#[inline(never)]
fn vfork_until(go: *const u8) -> isize {
    use linux_raw_sys::general::{CLONE_VFORK, CLONE_VM, SIGCHLD};
    const AT_FDCWD: isize = -100;
    // Not `zdtm::fork`: the child must not return through a frame the
    // parent returns through later.
    let (a, b) = zdtm::clone_args((CLONE_VM | CLONE_VFORK | SIGCHLD) as usize);
    // SAFETY: vfork through clone: the child runs on our stack while we
    // are suspended, touches no memory but `go` and TEN_MS (both live
    // and read-only) and ends with exit(2), never returning from here.
    unsafe {
        let pid = criu_arch::syscall5(nr::CLONE, a, b, 0, 0, 0);
        if pid == 0 {
            while criu_arch::syscall4(nr::FACCESSAT, AT_FDCWD as usize, go as usize, 0, 0) != 0 {
                criu_arch::syscall2(nr::NANOSLEEP, TEN_MS.as_ptr() as usize, 0);
            }
            criu_arch::syscall1(nr::EXIT, 0);
        }
        pid
    }
}

/// The first tick of `vfork`: vfork, then reap the child once it is back.
fn vfork_tick(go: &std::ffi::CString) -> Result<bool, String> {
    let pid = errno(vfork_until(go.as_ptr().cast()), "vfork")?;
    let mut status = 0i32;
    // SAFETY: wait4 writes one int to `status`.
    let ret = unsafe {
        criu_arch::syscall4(
            nr::WAIT4,
            pid,
            std::ptr::from_mut(&mut status) as usize,
            0,
            0,
        )
    };
    errno(ret, "wait4")?;
    ensure(status == 0, || {
        format!("the vfork child ended with {status:#x}")
    })?;
    Ok(true)
}

/// A page of `memfd_secret` memory, mapped and filled; its fd at 10, or
/// closed (`mapped_only`).
#[cfg(not(target_arch = "powerpc64"))]
fn setup_secret(mapped_only: bool) -> Result<Held, String> {
    use rustix::mm::{MapFlags, ProtFlags};
    // SAFETY: memfd_secret(0) takes no pointer; the result is a new fd.
    let ret = unsafe { criu_arch::syscall1(nr::MEMFD_SECRET, 0) };
    let raw = errno(ret, "memfd_secret")?;
    // SAFETY: `raw` is a new fd nothing else owns.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw as i32) };
    rustix::fs::ftruncate(&fd, 4096).map_err(|e| format!("ftruncate: {e}"))?;
    let prot = ProtFlags::READ | ProtFlags::WRITE;
    // SAFETY: a new shared mapping of our own secret memfd.
    let p = unsafe { rustix::mm::mmap(std::ptr::null_mut(), 4096, prot, MapFlags::SHARED, &fd, 0) }
        .map_err(|e| format!("mmap of the secret memfd: {e}"))?;
    // SAFETY: the mapping is ours, one page, readable and writable.
    zdtm::fill_pattern(
        unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), 4096) },
        91,
    );
    if mapped_only {
        return Ok(Held::Secret {
            fd: None,
            addr: p as usize,
        });
    }
    // Only the fd holds it (mapped, the mapping would be refused first).
    zdtm::munmap(p as usize, 4096)?;
    Ok(Held::Secret {
        fd: Some(dup_to(fd, 10)?),
        addr: 0,
    })
}

#[cfg(target_arch = "powerpc64")]
fn setup_secret(_: bool) -> Result<Held, String> {
    Err("no memfd_secret here: not a system call on powerpc64".into())
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let mode = args.rest.first().map(String::as_str).unwrap_or("count");
    let arg = args.rest.get(1).cloned().unwrap_or_default();
    let held = match mode {
        "count" => Held::Nothing,
        "devices" => setup_devices()?,
        "device" => {
            let meta = std::fs::metadata(&arg).map_err(|e| format!("{arg}: {e}"))?;
            let block = std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type());
            let fd = open(&arg, if block { OFlags::RDONLY } else { OFlags::RDWR })?;
            let fd = dup_to(fd, 10)?;
            let dev = rdev(&fd)?;
            Held::Device(fd, dev)
        }
        "linked" => setup_linked(&args.dir)?,
        "linked-map" => setup_linked_map(&args.dir)?,
        "hugetlbfs" => setup_hugetlbfs(&arg)?,
        "hugetlb" => setup_hugetlb(false)?,
        "hugetlb-memfd" => setup_hugetlb(true)?,
        "child-ns" => setup_child(&arg)?,
        "secretmem" => setup_secret(false)?,
        "secretmem-map" => setup_secret(true)?,
        "vfork" => Held::Vfork {
            go: std::ffi::CString::new(args.dir.join("go").into_os_string().into_encoded_bytes())
                .map_err(|e| e.to_string())?,
            done: Ok(false),
        },
        other => return Err(format!("unknown mode {other}")),
    };
    Ok(State { count: 0, held })
}

fn check(s: State) -> Result<(), String> {
    let n = COUNT.load(Ordering::Relaxed);
    ensure(s.count == n && n > 0, || {
        format!("counters disagree: {} and {n}", s.count)
    })?;
    match &s.held {
        Held::Nothing => Ok(()),
        Held::Devices(d) => check_devices(d),
        Held::Device(fd, dev) => ensure(rdev(fd)? == *dev, || "another device now".into()),
        Held::Linked { fd, other, map } => check_linked(fd, other, *map),
        Held::Hugetlb { addr, len, .. } => {
            let flags = zdtm::vm_flags(*addr)?;
            ensure(flags.iter().any(|f| f == "ht"), || {
                format!("the mapping is no longer hugetlb: {flags:?}")
            })?;
            // SAFETY: the mapping set up above is still ours.
            let buf = unsafe { std::slice::from_raw_parts(*addr as *const u8, *len) };
            zdtm::check_pattern("hugetlb mapping", buf, 77)
        }
        Held::HugetlbMemfd(fd) => {
            let mut buf = vec![0u8; HUGE];
            let n = rustix::io::pread(fd, &mut buf, 0).map_err(|e| format!("pread: {e}"))?;
            ensure(n == HUGE, || format!("short read of the memfd: {n}"))?;
            zdtm::check_pattern("hugetlb memfd", &buf, 77)
        }
        Held::Child { pid, kind, ns } => check_child(*pid, kind, ns),
        Held::Secret { fd, addr } => {
            let addr = match fd {
                // SAFETY: a new shared mapping of our own secret memfd.
                Some(fd) => unsafe {
                    use rustix::mm::{MapFlags, ProtFlags};
                    rustix::mm::mmap(
                        std::ptr::null_mut(),
                        4096,
                        ProtFlags::READ,
                        MapFlags::SHARED,
                        fd,
                        0,
                    )
                }
                .map_err(|e| format!("mmap of the secret memfd: {e}"))?
                    as usize,
                None => *addr,
            };
            // SAFETY: a mapping of ours, one page, readable.
            let buf = unsafe { std::slice::from_raw_parts(addr as *const u8, 4096) };
            zdtm::check_pattern("secret memory", buf, 91)
        }
        Held::Vfork { done, .. } => match done {
            Ok(true) => Ok(()),
            Ok(false) => Err("the vfork child never ran".into()),
            Err(e) => Err(e.clone()),
        },
    }
}

fn main() {
    zdtm::run(
        setup,
        |s| {
            s.count += 1;
            COUNT.fetch_add(1, Ordering::Relaxed);
            if let Held::Vfork { go, done } = &mut s.held
                && *done == Ok(false)
            {
                *done = vfork_tick(go);
            }
        },
        check,
    );
}
