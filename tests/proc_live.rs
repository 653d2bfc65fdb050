//! The /proc layer against live processes: this test process, and a child
//! (this same test binary, re-run as `child_entry`) that sets up known
//! mappings, fds and task state, reports them in a file, and waits to be
//! killed. Everything the child reports is checked exactly.

#[path = "common/skipping.rs"]
mod skipping;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criu_core::proc::maps::{SpecialVma, Vma, VmaName};
use criu_core::proc::task::FdTarget;
use criu_core::proc::timers::SIGEV_SIGNAL;
use criu_core::proc::vm_flags::VmFlags;
use criu_core::proc::vma_kind::status::*;
use criu_core::proc::vma_kind::{ClassifyConfig, probe_shmem_dev};
use criu_core::proc::{ProcDir, page_size};
use linux_raw_sys::general::{
    MADV_DONTDUMP, MADV_WIPEONFORK, MAP_ANONYMOUS, MAP_GROWSDOWN, MAP_PRIVATE, MAP_SHARED,
    O_RDONLY, O_RDWR, PROT_READ, PROT_WRITE,
};
use rustix::process::{Pid, Signal};

const CHILD_ENV: &str = "CRIU_PROC_LIVE_CHILD_DIR";

/// Memory set-up for the child, which keeps every mapping until it is
/// killed. These are the only unsafe operations in this file.
mod mm {
    use std::ffi::c_void;
    use std::os::fd::BorrowedFd;

    use rustix::mm::{Advice, MapFlags, MprotectFlags, ProtFlags};

    pub fn map_file(fd: BorrowedFd<'_>, len: usize, offset: u64, shared: bool) -> usize {
        let flags = if shared {
            MapFlags::SHARED
        } else {
            MapFlags::PRIVATE
        };
        // SAFETY: a fresh mapping at an address the kernel chooses overlaps
        // nothing we own; the child never unmaps it.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                flags,
                fd,
                offset,
            )
        };
        p.expect("mmap file") as usize
    }

    pub fn map_anon(len: usize, shared: bool) -> usize {
        let flags = if shared {
            MapFlags::SHARED
        } else {
            MapFlags::PRIVATE
        };
        // SAFETY: as in `map_file`.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                flags,
            )
        };
        p.expect("mmap anon") as usize
    }

    pub fn protect_none(addr: usize, len: usize) {
        // SAFETY: the range is part of a mapping made by `map_anon` that no
        // Rust reference points into.
        unsafe { rustix::mm::mprotect(addr as *mut c_void, len, MprotectFlags::empty()) }
            .expect("mprotect");
    }

    pub fn advise(addr: usize, len: usize, advice: Advice) {
        // SAFETY: advice on our own mapping; DONTDUMP and WIPEONFORK do not
        // change its contents for this process.
        unsafe { rustix::mm::madvise(addr as *mut c_void, len, advice) }.expect("madvise");
    }

    pub fn touch(addr: usize, v: u8) {
        // SAFETY: `addr` is inside a writable mapping made above that no
        // Rust reference points into.
        unsafe { std::ptr::write_volatile(addr as *mut u8, v) };
    }

    pub fn name(addr: usize, len: usize, name: &std::ffi::CStr) -> bool {
        // SAFETY: the slice only names the range for the prctl; nothing
        // reads through it.
        let region = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
        rustix::process::set_virtual_memory_region_name(region, Some(name)).is_ok()
    }
}

/// Runs only when re-executed as the child (`CHILD_ENV` set); a no-op in
/// a normal test run.
#[test]
fn child_entry() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    child_main(Path::new(&dir));
}

fn child_main(dir: &Path) -> ! {
    let _ = rustix::process::setsid();
    let ps = page_size();
    let mut report = BTreeMap::<&str, String>::new();
    let mut keep: Vec<OwnedFd> = Vec::new();

    // A shared read-write mapping of a file whose name has spaces; the fd
    // stays open, positioned at 7, with an exclusive flock.
    let data = dir.join("data file.bin");
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&data)
        .unwrap();
    f.set_len(3 * ps as u64).unwrap();
    let shared_file = mm::map_file(f.as_fd(), 2 * ps, 0, true);
    mm::touch(shared_file, 1);
    rustix::fs::seek(&f, rustix::fs::SeekFrom::Start(7)).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
    report.insert("shared_file", format!("{shared_file:x}"));
    report.insert("data_fd", f.as_raw_fd().to_string());
    keep.push(f.into());

    // A private mapping, at an offset, of a file opened read-only and then
    // unlinked; one page is written (copied on write).
    let gone = dir.join("gone.bin");
    std::fs::write(&gone, vec![7u8; 2 * ps]).unwrap();
    let g = std::fs::File::open(&gone).unwrap();
    let private_file = mm::map_file(g.as_fd(), ps, ps as u64, false);
    mm::touch(private_file, 2);
    std::fs::remove_file(&gone).unwrap();
    drop(g);
    report.insert("private_file", format!("{private_file:x}"));

    // Shared anonymous memory, and a shared memfd mapping.
    let anon_shared = mm::map_anon(2 * ps, true);
    mm::touch(anon_shared, 3);
    report.insert("anon_shared", format!("{anon_shared:x}"));
    let memfd = rustix::fs::memfd_create("proc-live", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&memfd, ps as u64).unwrap();
    let memfd_map = mm::map_file(memfd.as_fd(), ps, 0, true);
    report.insert("memfd_map", format!("{memfd_map:x}"));
    keep.push(memfd);

    // Three private pages with a PROT_NONE page in the middle.
    let split = mm::map_anon(3 * ps, false);
    mm::protect_none(split + ps, ps);
    report.insert("split", format!("{split:x}"));

    // madvise()d regions (separate mappings, so they are separate VMAs).
    let dontdump = mm::map_anon(ps, false);
    mm::advise(dontdump, ps, rustix::mm::Advice::LinuxDontDump);
    report.insert("dontdump", format!("{dontdump:x}"));
    let wipe = mm::map_anon(ps, false);
    mm::advise(wipe, ps, rustix::mm::Advice::LinuxWipeOnFork);
    report.insert("wipe", format!("{wipe:x}"));

    // A named anonymous region, if the kernel has CONFIG_ANON_VMA_NAME.
    let named = mm::map_anon(ps, false);
    if mm::name(named, ps, c"proc live") {
        report.insert("named", format!("{named:x}"));
    }

    // Kernel objects behind fds.
    let efd = rustix::event::eventfd(5, rustix::event::EventfdFlags::NONBLOCK).unwrap();
    report.insert("eventfd", efd.as_raw_fd().to_string());
    let ep = rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC).unwrap();
    rustix::event::epoll::add(
        &ep,
        &efd,
        rustix::event::epoll::EventData::new_u64(0xdead),
        rustix::event::epoll::EventFlags::IN,
    )
    .unwrap();
    report.insert("epoll", ep.as_raw_fd().to_string());
    let tfd = rustix::time::timerfd_create(
        rustix::time::TimerfdClockId::Monotonic,
        rustix::time::TimerfdFlags::CLOEXEC,
    )
    .unwrap();
    let spec = rustix::time::Itimerspec {
        it_interval: rustix::time::Timespec {
            tv_sec: 100,
            tv_nsec: 0,
        },
        it_value: rustix::time::Timespec {
            tv_sec: 100,
            tv_nsec: 0,
        },
    };
    rustix::time::timerfd_settime(&tfd, rustix::time::TimerfdTimerFlags::empty(), &spec).unwrap();
    report.insert("timerfd", tfd.as_raw_fd().to_string());
    let ify = rustix::fs::inotify::init(rustix::fs::inotify::CreateFlags::CLOEXEC).unwrap();
    let wd =
        rustix::fs::inotify::add_watch(&ify, dir, rustix::fs::inotify::WatchFlags::CREATE).unwrap();
    report.insert("inotify", ify.as_raw_fd().to_string());
    report.insert("inotify_wd", wd.to_string());
    keep.extend([efd, ep, tfd, ify]);

    // Task state: cwd, oom_score_adj, a child, an extra thread.
    std::env::set_current_dir(dir).unwrap();
    std::fs::write("/proc/self/oom_score_adj", "123").unwrap();
    let grandchild = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    report.insert("grandchild", grandchild.id().to_string());
    std::thread::spawn(idle_forever);

    let text: String = report.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(dir.join("report.tmp"), text).unwrap();
    std::fs::rename(dir.join("report.tmp"), dir.join("report")).unwrap();
    let _keep = (keep, grandchild);
    loop {
        idle_forever();
    }
}

fn idle_forever() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A child process killed (by PID) and reaped on drop, with its reported
/// grandchild.
struct ChildGuard {
    child: Child,
    extra: Vec<i32>,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        for &pid in &self.extra {
            if let Some(p) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed on drop (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("criu-proc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_child(dir: &Path) -> (ChildGuard, BTreeMap<String, String>) {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard {
        child,
        extra: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        if let Ok(t) = std::fs::read_to_string(dir.join("report")) {
            break t;
        }
        if let Ok(Some(st)) = guard.child.try_wait() {
            panic!("child exited early: {st}");
        }
        assert!(Instant::now() < deadline, "child never reported");
        std::thread::sleep(Duration::from_millis(20));
    };
    let map: BTreeMap<String, String> = report
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    guard.extra.push(map["grandchild"].parse().unwrap());
    (guard, map)
}

fn addr(r: &BTreeMap<String, String>, k: &str) -> u64 {
    u64::from_str_radix(&r[k], 16).unwrap()
}

fn fd_of(r: &BTreeMap<String, String>, k: &str) -> i32 {
    r[k].parse().unwrap()
}

fn vma_at(vmas: &[Vma], start: u64) -> &Vma {
    vmas.iter()
        .find(|v| v.start == start)
        .unwrap_or_else(|| panic!("no VMA at {start:#x}"))
}

/// Under qemu-user the kernel's /proc describes the emulator (an x86_64
/// process running `qemu-*-static`), not the emulated program, so checks of
/// a live task's /proc cannot hold there. Read through a directory fd, the
/// `exe` link is not rewritten by qemu and names the emulator.
fn under_qemu_user(test: &str) -> bool {
    let exe = ProcDir::open_self().and_then(|me| me.exe());
    let qemu = exe.as_ref().is_ok_and(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("qemu-"))
    });
    if qemu {
        skipping::skip(test, "/proc shows the qemu-user emulator, not this program");
    }
    qemu
}

#[test]
fn child_with_known_state() {
    if under_qemu_user("child_with_known_state") {
        return;
    }
    let tmp = TempDir::new("child");
    let dir = tmp.0.clone();
    let (guard, r) = start_child(&dir);
    let pid = guard.child.id() as i32;
    let ps = page_size() as u64;
    let proc = ProcDir::open(pid).unwrap();

    // stat / status: our child, its own session leader.
    let stat = proc.stat().unwrap();
    assert_eq!(stat.pid, pid);
    assert_eq!(
        (stat.ppid, stat.pgrp, stat.session),
        (std::process::id() as i32, pid, pid)
    );
    assert_eq!(stat.state, b'S');
    assert!(stat.start_code > 0 && stat.start_code < stat.end_code);
    assert!(stat.start_brk > 0 && stat.arg_start < stat.arg_end && stat.env_start < stat.env_end);
    let status = proc.status().unwrap();
    assert_eq!(
        (status.pid, status.tgid, status.ppid),
        (pid, pid, std::process::id() as i32)
    );
    assert_eq!(status.ns_pid.last(), Some(&pid));
    assert_eq!(status.ns_sid.last(), Some(&pid));
    assert_ne!(status.sig_ign & (1 << (13 - 1)), 0, "Rust ignores SIGPIPE");
    let threads = proc.threads().unwrap();
    assert!(threads.contains(&pid));
    assert_eq!(threads.len(), status.threads as usize);
    assert!(threads.len() >= 2, "the extra thread: {threads:?}");
    let first_thread = proc.task(threads[0]).unwrap().stat().unwrap();
    assert_eq!(first_thread.pid, threads[0]);

    // Children, links, one-number files.
    let grandchild: i32 = r["grandchild"].parse().unwrap();
    assert_eq!(proc.process_children().unwrap(), [grandchild]);
    assert_eq!(proc.cwd().unwrap(), dir.canonicalize().unwrap());
    assert_eq!(proc.root().unwrap(), PathBuf::from("/"));
    assert_eq!(
        proc.exe().unwrap(),
        std::env::current_exe().unwrap().canonicalize().unwrap()
    );
    let me = ProcDir::open_self().unwrap();
    assert_eq!(proc.oom_score_adj().unwrap(), 123);
    assert_eq!(proc.loginuid().unwrap(), me.loginuid().unwrap());
    assert_eq!(proc.personality().unwrap(), 0);
    assert_eq!(proc.ns_ids().unwrap(), me.ns_ids().unwrap());
    assert!(
        proc.mountinfo()
            .unwrap()
            .iter()
            .any(|m| m.mount_point == Path::new("/"))
    );
    assert_eq!(proc.cgroup().unwrap(), me.cgroup().unwrap());
    assert_eq!(proc.auxv().unwrap().get(6 /* AT_PAGESZ */), Some(ps));
    assert!(proc.timers().unwrap().is_empty());

    // VMAs, raw.
    let vmas = proc.smaps().unwrap();
    let shared_file = vma_at(&vmas, addr(&r, "shared_file"));
    assert_eq!(shared_file.len(), 2 * ps);
    assert!(shared_file.shared);
    assert_eq!(
        (shared_file.prot, shared_file.offset),
        (PROT_READ | PROT_WRITE, 0)
    );
    assert_eq!(
        shared_file.name,
        VmaName::File {
            path: dir.canonicalize().unwrap().join("data file.bin"),
            deleted: false
        }
    );
    let private_file = vma_at(&vmas, addr(&r, "private_file"));
    assert_eq!(
        (private_file.len(), private_file.offset, private_file.shared),
        (ps, ps, false)
    );
    assert!(
        matches!(&private_file.name, VmaName::File { path, deleted: true } if path.ends_with("gone.bin"))
    );
    assert_eq!(
        private_file.smaps.as_ref().unwrap().anonymous_kb,
        ps / 1024,
        "one COW page"
    );
    let split = addr(&r, "split");
    for (i, prot) in [PROT_READ | PROT_WRITE, 0, PROT_READ | PROT_WRITE]
        .into_iter()
        .enumerate()
    {
        let v = vma_at(&vmas, split + i as u64 * ps);
        assert_eq!(
            (v.len(), v.prot, &v.name),
            (ps, prot, &VmaName::Anonymous),
            "split page {i}"
        );
    }
    assert!(
        vma_at(&vmas, addr(&r, "dontdump"))
            .vm_flags()
            .contains(VmFlags::DONTDUMP)
    );
    assert!(
        vma_at(&vmas, addr(&r, "wipe"))
            .vm_flags()
            .contains(VmFlags::WIPEONFORK)
    );
    if !r.contains_key("named") {
        eprintln!("note: no CONFIG_ANON_VMA_NAME, [anon:NAME] not checked");
    } else {
        assert_eq!(
            vma_at(&vmas, addr(&r, "named")).name,
            VmaName::AnonNamed(b"proc live".to_vec())
        );
    }
    let maps = proc.maps().unwrap();
    assert_eq!(maps.len(), vmas.len());
    for (m, s) in maps.iter().zip(&vmas) {
        assert_eq!(
            (m.start, m.end, m.prot, &m.name),
            (s.start, s.end, s.prot, &s.name)
        );
        assert!(s.smaps.as_ref().unwrap().has_vm_flags);
    }

    // VMAs, classified as CRIU would write them.
    let cfg = ClassifyConfig {
        shmem_dev: probe_shmem_dev().unwrap(),
        allow_uprobes: false,
    };
    let all = proc.collect_vmas(&cfg).unwrap();
    let entry = |start: u64| all.iter().find(|c| c.vma.start == start).unwrap().entry;
    let e = entry(addr(&r, "shared_file"));
    assert_eq!(
        (e.status, e.flags, e.fdflags),
        (VMA_AREA_REGULAR | VMA_FILE_SHARED, MAP_SHARED, Some(O_RDWR))
    );
    let e = entry(addr(&r, "private_file"));
    assert_eq!(
        (e.status, e.flags, e.fdflags, e.pgoff),
        (
            VMA_AREA_REGULAR | VMA_FILE_PRIVATE,
            MAP_PRIVATE,
            Some(O_RDONLY),
            ps
        )
    );
    let anon_shared = vma_at(&vmas, addr(&r, "anon_shared"));
    let e = entry(anon_shared.start);
    assert_eq!(
        (e.status, e.flags),
        (
            VMA_AREA_REGULAR | VMA_ANON_SHARED,
            MAP_SHARED | MAP_ANONYMOUS
        )
    );
    assert_eq!(e.shmid, anon_shared.inode);
    let e = entry(addr(&r, "memfd_map"));
    assert_eq!(
        e.status,
        VMA_AREA_REGULAR | VMA_AREA_MEMFD | VMA_FILE_SHARED
    );
    let e = entry(split + ps);
    assert_eq!(
        (e.status, e.prot, e.flags),
        (
            VMA_AREA_REGULAR | VMA_ANON_PRIVATE,
            0,
            MAP_PRIVATE | MAP_ANONYMOUS
        )
    );
    assert_eq!(entry(addr(&r, "dontdump")).madv, 1 << MADV_DONTDUMP);
    assert_eq!(entry(addr(&r, "wipe")).madv, 1 << MADV_WIPEONFORK);
    let special = |s: SpecialVma| all.iter().find(|c| c.vma.name == VmaName::Special(s));
    let stack = special(SpecialVma::Stack).expect("[stack]");
    assert_ne!(stack.entry.flags & MAP_GROWSDOWN, 0);
    assert_eq!(
        stack.entry.start,
        stack.vma.start - ps,
        "guard page included"
    );
    assert!(
        special(SpecialVma::Vdso)
            .expect("[vdso]")
            .entry
            .is(VMA_AREA_VDSO)
    );
    if let Some(heap) = special(SpecialVma::Heap) {
        assert!(heap.entry.is(VMA_AREA_HEAP | VMA_ANON_PRIVATE));
    }
    for s in [SpecialVma::Vvar, SpecialVma::VvarVclock] {
        if let Some(v) = special(s) {
            assert!(v.entry.is(VMA_AREA_VVAR), "{s:?}");
        }
    }
    if let Some(v) = special(SpecialVma::Vsyscall) {
        assert_eq!(v.entry.status, VMA_AREA_VSYSCALL | VMA_ANON_PRIVATE);
    }

    // fds and fdinfo.
    let fds = proc.fds().unwrap();
    for k in ["data_fd", "eventfd", "epoll", "timerfd", "inotify"] {
        assert!(fds.contains(&fd_of(&r, k)), "{k}");
    }
    let data_fd = fd_of(&r, "data_fd");
    assert_eq!(
        proc.fd_target(data_fd).unwrap(),
        FdTarget::Path(dir.canonicalize().unwrap().join("data file.bin"))
    );
    let info = proc.fdinfo(data_fd).unwrap();
    assert_eq!(info.pos, 7);
    assert_eq!(info.flags & 0o3, O_RDWR);
    let data_ino = std::fs::metadata(dir.join("data file.bin"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_eq!(info.ino, Some(data_ino));
    assert_eq!(info.locks.len(), 1);
    assert_eq!(info.locks[0].kind, criu_core::proc::flock::LockKind::Flock);
    assert_eq!(
        info.locks[0].lock_type,
        criu_core::proc::flock::LockType::Write
    );
    assert_eq!(info.locks[0].inode.map(|i| i.2), Some(data_ino));

    let efd = fd_of(&r, "eventfd");
    assert_eq!(
        proc.fd_target(efd).unwrap(),
        FdTarget::AnonInode("[eventfd]".into())
    );
    assert_eq!(proc.fdinfo(efd).unwrap().eventfd.unwrap().count, 5);

    let ep = fd_of(&r, "epoll");
    assert_eq!(
        proc.fd_target(ep).unwrap(),
        FdTarget::AnonInode("[eventpoll]".into())
    );
    let targets = proc.fdinfo(ep).unwrap().epoll_targets;
    assert_eq!(targets.len(), 1);
    // EPOLLIN as asked, plus EPOLLERR | EPOLLHUP, which epoll_ctl always adds.
    assert_eq!(
        (targets[0].tfd, targets[0].events, targets[0].data),
        (efd, 0x1 | 0x8 | 0x10, 0xdead)
    );
    assert_eq!(targets[0].pos, Some(0));

    let tfd = fd_of(&r, "timerfd");
    assert_eq!(
        proc.fd_target(tfd).unwrap(),
        FdTarget::AnonInode("[timerfd]".into())
    );
    let t = proc.fdinfo(tfd).unwrap().timerfd.unwrap();
    assert_eq!((t.clockid, t.ticks, t.it_interval), (1, 0, (100, 0)));
    assert!(t.it_value.0 < 100 && t.it_value.0 > 50, "{:?}", t.it_value);

    let ify = fd_of(&r, "inotify");
    assert_eq!(
        proc.fd_target(ify).unwrap(),
        FdTarget::AnonInode("inotify".into())
    );
    let w = proc.fdinfo(ify).unwrap().inotify_watches;
    assert_eq!(w.len(), 1);
    let dir_ino = std::fs::metadata(&dir)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_eq!(
        (w[0].wd.to_string(), w[0].ino, w[0].mask & 0x100),
        (r["inotify_wd"].clone(), dir_ino, 0x100)
    );

    drop(guard);
    // The directory fd outlives the task: reads now fail as "gone".
    let e = proc.stat().unwrap_err();
    assert!(e.is_gone(), "{e}");
}

#[test]
fn self_process() {
    if under_qemu_user("self_process") {
        return;
    }
    let me = ProcDir::open_self().unwrap();
    let pid = std::process::id() as i32;
    assert_eq!(me.pid(), pid);
    assert_eq!(me.stat().unwrap().pid, pid);
    let st = me.status().unwrap();
    assert_eq!((st.pid, st.tgid), (pid, pid));
    assert_eq!(
        me.auxv().unwrap().get(6 /* AT_PAGESZ */),
        Some(page_size() as u64)
    );
    assert!(me.fds().unwrap().starts_with(&[0, 1, 2]));
    assert!(
        me.mountinfo()
            .unwrap()
            .iter()
            .any(|m| m.mount_point == Path::new("/proc") && m.fstype == "proc")
    );
    let cfg = ClassifyConfig {
        shmem_dev: probe_shmem_dev().unwrap(),
        allow_uprobes: false,
    };
    // The other tests of this binary run in threads of this process and
    // map and unmap memory meanwhile: compare the two views only when
    // the map did not change around the collection.
    let ranges = |v: &[criu_core::proc::maps::Vma]| -> Vec<(u64, u64)> {
        v.iter().map(|v| (v.start, v.end)).collect()
    };
    let (vmas, all) = (0..100)
        .find_map(|_| {
            let before = me.smaps().unwrap();
            let all = me.collect_vmas(&cfg).unwrap();
            let after = me.smaps().unwrap();
            (ranges(&before) == ranges(&after)).then_some((before, all))
        })
        .expect("this process's map never held still for a moment");
    assert!(
        vmas.windows(2).all(|w| w[0].end <= w[1].start),
        "sorted, disjoint"
    );
    // One VMA each, but `[vvar]` and `[vvar_vclock]` are one vvar area.
    let vclock = vmas
        .iter()
        .filter(|v| v.name == VmaName::Special(SpecialVma::VvarVclock))
        .count();
    assert_eq!(all.len(), vmas.len() - vclock);
    // Some file mapping (the test binary itself) shares its descriptor with
    // the neighbouring VMAs of the same file.
    let exe = std::env::current_exe().unwrap().canonicalize().unwrap();
    assert!(
        all.iter()
            .filter(|c| c.vma.path() == Some(exe.as_path()))
            .count()
            >= 2
    );
}

/// coreutils `timeout` arms a POSIX timer (`timer_create(CLOCK_REALTIME,
/// NULL, …)`, so SIGALRM to the process): a live `timers` file to parse.
#[test]
fn posix_timers_of_timeout() {
    let Ok(child) = Command::new("timeout")
        .args(["1000", "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return skipping::skip("posix_timers_of_timeout", "no `timeout` program");
    };
    let pid = child.id() as i32;
    let guard = ChildGuard {
        child,
        extra: Vec::new(),
    };
    let proc = ProcDir::open(pid).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let timers = loop {
        let t = proc.timers().unwrap();
        if !t.is_empty() || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // `timeout` falls back to alarm() when timer_create fails.
    if timers.is_empty() {
        finish_timeout(guard, pid);
        return skipping::skip(
            "posix_timers_of_timeout",
            "this `timeout` made no POSIX timer (it fell back to alarm())",
        );
    }
    assert_eq!(timers.len(), 1);
    let t = timers[0];
    assert_eq!(
        (t.signo, t.sigev_notify, t.notify_pid, t.clock_id),
        (14, SIGEV_SIGNAL, pid, 0)
    );
    finish_timeout(guard, pid);
}

/// SIGTERM makes `timeout` kill and reap its `sleep`, then exit; SIGKILL
/// (from the guard) only if it does not.
fn finish_timeout(mut guard: ChildGuard, pid: i32) {
    let _ = rustix::process::kill_process(Pid::from_raw(pid).unwrap(), Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = guard.child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(guard);
}
