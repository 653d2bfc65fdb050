//! Probes through /proc and small syscalls: map_files, fdinfo formats,
//! namespaces, pidfd, openat2, rseq, membarrier, kcmp.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use rustix::fs::{Access, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{CheckResult, KernelFeatures, problem};
use crate::sys::kcmp::{self, KcmpEpollSlot, KcmpOrder};

/// `strerror`-style text of an errno, as CRIU's `%m` prints it.
pub(super) fn strerror(e: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(e.raw_os_error()).to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

pub(super) fn exists(path: &str) -> bool {
    rustix::fs::access(path, Access::EXISTS).is_ok()
}

/// The `/proc/self/fdinfo/FD` text of `fd`.
fn fdinfo(fd: impl AsFd) -> std::io::Result<String> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd()))
}

/// The value after `key` on the first fdinfo line starting with it.
fn fdinfo_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

pub(super) fn check_map_files(_: &KernelFeatures) -> CheckResult {
    rustix::fs::access("/proc/self/map_files", Access::READ_OK).map_err(|e| {
        problem!(
            Error,
            "/proc/<pid>/map_files is inaccessible: {}",
            strerror(e)
        )
    })
}

pub(super) fn check_ns_last_pid(_: &KernelFeatures) -> CheckResult {
    rustix::fs::access("/proc/sys/kernel/ns_last_pid", Access::WRITE_OK).map_err(|e| {
        problem!(
            Error,
            "sys/kernel/ns_last_pid sysctl is inaccessible: {}",
            strerror(e)
        )
    })
}

pub(super) fn check_kcmp(k: &KernelFeatures) -> CheckResult {
    if !k.kcmp {
        return Err(problem!(
            Error,
            "System call kcmp is not supported: Function not implemented"
        ));
    }
    Ok(())
}

pub(super) fn check_proc_stat(_: &KernelFeatures) -> CheckResult {
    // The fields after the command name: CRIU needs them up to exit_code
    // (the 52nd field overall, the 50th after "pid (comm)").
    let ok = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].split_whitespace().count() >= 50)
        })
        .unwrap_or(false);
    if !ok {
        return Err(problem!(Msg, "procfs: stat extension is not supported"));
    }
    Ok(())
}

fn check_fdinfo_eventfd() -> CheckResult {
    const COUNT: u32 = 13;
    let fd = rustix::event::eventfd(COUNT, rustix::event::EventfdFlags::CLOEXEC)
        .map_err(|e| problem!(Error, "Can't make eventfd: {}", strerror(e)))?;
    let text = fdinfo(&fd).map_err(|_| problem!(Error, "Error parsing proc fdinfo"))?;
    let count = fdinfo_field(&text, "eventfd-count:")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .ok_or_else(|| problem!(Error, "Error parsing proc fdinfo"))?;
    if count != u64::from(COUNT) {
        return Err(problem!(
            Error,
            "Counter mismatch (or not met) {count} want {COUNT}"
        ));
    }
    crate::pr_info!("Eventfd fdinfo works OK ({COUNT} vs {count})");
    Ok(())
}

fn check_fdinfo_eventpoll() -> CheckResult {
    use rustix::event::epoll;
    let (rd, _wr) = rustix::pipe::pipe()
        .map_err(|e| problem!(Error, "Can't make pipe to watch: {}", strerror(e)))?;
    let efd = epoll::create(epoll::CreateFlags::CLOEXEC)
        .map_err(|e| problem!(Error, "Can't make epoll fd: {}", strerror(e)))?;
    epoll::add(
        &efd,
        &rd,
        epoll::EventData::new_u64(0),
        epoll::EventFlags::IN | epoll::EventFlags::OUT,
    )
    .map_err(|e| problem!(Error, "Can't add epoll tfd: {}", strerror(e)))?;
    let text = fdinfo(&efd).map_err(|_| problem!(Error, "Error parsing proc fdinfo"))?;
    let tfds: Vec<i32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("tfd:"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    if tfds != [rd.as_raw_fd()] {
        return Err(problem!(Error, "TFD mismatch (or not met)"));
    }
    crate::pr_info!("Epoll fdinfo works OK");
    Ok(())
}

fn check_fdinfo_inotify() -> CheckResult {
    use rustix::fs::inotify;
    let ifd = inotify::init(inotify::CreateFlags::CLOEXEC)
        .map_err(|e| problem!(Error, "Can't make inotify fd: {}", strerror(e)))?;
    let wd = inotify::add_watch(&ifd, ".", inotify::WatchFlags::ALL_EVENTS)
        .map_err(|e| problem!(Error, "Can't add watch: {}", strerror(e)))?;
    let text = fdinfo(&ifd).map_err(|_| problem!(Error, "Error parsing proc fdinfo"))?;
    let wds: Vec<i32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("inotify wd:"))
        .filter_map(|rest| i32::from_str_radix(rest.split_whitespace().next()?, 16).ok())
        .collect();
    if wds != [wd] {
        return Err(problem!(Error, "WD mismatch (or not met)"));
    }
    crate::pr_info!("Inotify fdinfo works OK");
    Ok(())
}

pub(super) fn check_fdinfo_ext(_: &KernelFeatures) -> CheckResult {
    // CRIU runs all three and fails if any did.
    let results = [
        check_fdinfo_eventfd(),
        check_fdinfo_eventpoll(),
        check_fdinfo_inotify(),
    ];
    let mut first = None;
    for r in results {
        if let Err(p) = r {
            if first.is_none() {
                first = Some(p);
            } else {
                p.report();
            }
        }
    }
    first.map_or(Ok(()), Err)
}

pub(super) fn check_ipc(_: &KernelFeatures) -> CheckResult {
    rustix::fs::access(
        "/proc/sys/kernel/sem_next_id",
        Access::READ_OK | Access::WRITE_OK,
    )
    .map_err(|e| {
        problem!(
            Error,
            "/proc/sys/kernel/sem_next_id is inaccessible: {}",
            strerror(e)
        )
    })
}

pub(super) fn check_posix_timers(_: &KernelFeatures) -> CheckResult {
    if rustix::fs::access("/proc/self/timers", Access::READ_OK).is_err() {
        return Err(problem!(Msg, "/proc/<pid>/timers file is missing."));
    }
    Ok(())
}

pub(super) fn check_mnt_id(_: &KernelFeatures) -> CheckResult {
    let f = File::open("/proc/self/status")
        .map_err(|e| problem!(Error, "Can't open /proc/self/status: {e}"))?;
    let text = fdinfo(&f).map_err(|e| problem!(Error, "Can't read fdinfo: {e}"))?;
    if fdinfo_field(&text, "mnt_id:").is_none() {
        return Err(problem!(Error, "fdinfo doesn't contain the mnt_id field"));
    }
    Ok(())
}

pub(super) fn check_userns(_: &KernelFeatures) -> CheckResult {
    rustix::fs::access("/proc/self/ns/user", Access::EXISTS)
        .map_err(|e| problem!(Error, "No userns proc file: {}", strerror(e)))
}

pub(super) fn probe_fdinfo_lock() -> bool {
    let Ok(f) = File::open("/proc/locks") else {
        return false;
    };
    if rustix::fs::flock(&f, rustix::fs::FlockOperation::LockShared).is_err() {
        return false;
    }
    fdinfo(&f).map(|t| t.contains("lock:")).unwrap_or(false)
}

pub(super) fn check_fdinfo_lock(k: &KernelFeatures) -> CheckResult {
    if !k.fdinfo_lock {
        return Err(problem!(Error, "fdinfo doesn't contain the lock field"));
    }
    Ok(())
}

/// CRIU's loginuid check: the value can be read, unset and set back.
pub(super) fn check_loginuid(_: &KernelFeatures) -> CheckResult {
    let off = || problem!(Warn, "Loginuid restore is OFF.");
    let saved = std::fs::read_to_string("/proc/self/loginuid").map_err(|_| off())?;
    let write = |v: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/loginuid")
            .and_then(|mut f| f.write_all(v.as_bytes()))
    };
    write("4294967295").map_err(|_| off())?;
    write(saved.trim()).map_err(|_| off())?;
    Ok(())
}

pub(super) fn check_cgroupns(_: &KernelFeatures) -> CheckResult {
    if !exists("/proc/self/ns/cgroup") {
        return Err(problem!(
            Error,
            "cgroupns not supported. This is not fatal."
        ));
    }
    Ok(())
}

/// kcmp exists and `KCMP_FILE` tells a file from its duplicate's twin:
/// an fd and its dup are the same file, two pipe ends are not.
pub(super) fn probe_kcmp_file() -> bool {
    use crate::sys::kcmp::KcmpType;
    if !kcmp::supported() {
        return false;
    }
    let me = rustix::process::getpid();
    let Ok((rd, wr)) = rustix::pipe::pipe() else {
        return false;
    };
    let Ok(dup) = rustix::io::dup(&rd) else {
        return false;
    };
    let fd = |f: &std::os::fd::OwnedFd| f.as_raw_fd() as u32;
    let same = kcmp::kcmp(me, me, KcmpType::File, fd(&rd), fd(&dup));
    let other = kcmp::kcmp(me, me, KcmpType::File, fd(&rd), fd(&wr));
    matches!(same, Ok(KcmpOrder::Equal))
        && matches!(
            other,
            Ok(KcmpOrder::Less | KcmpOrder::Greater | KcmpOrder::Unordered)
        )
}

/// Registers one end of a pipe in an epoll and asks kcmp whether the target
/// is that file.
pub(super) fn probe_kcmp_epoll_tfd() -> bool {
    use rustix::event::epoll;
    let me = rustix::process::getpid();
    let Ok(efd) = epoll::create(epoll::CreateFlags::CLOEXEC) else {
        return false;
    };
    let Ok((rd, _wr)) = rustix::pipe::pipe() else {
        return false;
    };
    let flags = epoll::EventFlags::IN | epoll::EventFlags::OUT;
    if epoll::add(&efd, &rd, epoll::EventData::new_u64(u64::MAX), flags).is_err() {
        return false;
    }
    let tfd = rd.as_raw_fd() as u32;
    let slot = KcmpEpollSlot {
        efd: efd.as_raw_fd() as u32,
        tfd,
        toff: 0,
    };
    matches!(
        kcmp::kcmp_epoll_tfd(me, tfd, me, &slot),
        Ok(KcmpOrder::Equal)
    )
}

pub(super) fn check_kcmp_epoll(k: &KernelFeatures) -> CheckResult {
    if !k.kcmp_epoll_tfd {
        return Err(problem!(Info, "kcmp(KCMP_EPOLL_TFD) isn't supported"));
    }
    Ok(())
}

pub(super) fn check_timens(k: &KernelFeatures) -> CheckResult {
    if !k.timens {
        return Err(problem!(Error, "Time namespaces are not supported"));
    }
    Ok(())
}

/// pidfd_open on ourselves, and pidfd_getfd stealing our own socket end:
/// a datagram sent through the original must arrive through the copy.
pub(super) fn probe_pidfd() -> (bool, bool) {
    use rustix::process::{PidfdFlags, PidfdGetfdFlags};
    let pidfd = match rustix::process::pidfd_open(rustix::process::getpid(), PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            crate::pr_info!("pidfd_open isn't supported: {e}");
            return (false, false);
        }
    };
    let getfd = (|| {
        let (a, b) = UnixDatagram::pair().ok()?;
        let stolen =
            rustix::process::pidfd_getfd(&pidfd, b.as_raw_fd(), PidfdGetfdFlags::empty()).ok()?;
        let stolen = UnixDatagram::from(stolen);
        a.send(&1984u32.to_ne_bytes()).ok()?;
        let mut buf = [0u8; 4];
        let n = stolen.recv(&mut buf).ok()?;
        Some(n == 4 && u32::from_ne_bytes(buf) == 1984)
    })()
    .unwrap_or(false);
    (true, getfd)
}

pub(super) fn check_pidfd_store(k: &KernelFeatures) -> CheckResult {
    if !k.pidfd_open {
        return Err(problem!(
            Warn,
            "Pidfd store requires pidfd_open syscall which is not supported"
        ));
    }
    if !k.pidfd_getfd {
        return Err(problem!(
            Warn,
            "Pidfd store requires pidfd_getfd syscall which is not supported"
        ));
    }
    Ok(())
}

pub(super) fn probe_nspid() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("NSpid:")))
        .unwrap_or(false)
}

pub(super) fn check_ns_pid(k: &KernelFeatures) -> CheckResult {
    if !k.nspid {
        return Err(problem!(Info, "NSpid isn't shown in /proc/PID/status"));
    }
    Ok(())
}

/// Whether AppArmor is among the active LSMs.
pub(super) fn apparmor_is_lsm() -> bool {
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    lsm.split(',').any(|l| l.trim() == "apparmor")
}

pub(super) fn check_apparmor_stacking(_: &KernelFeatures) -> CheckResult {
    let active = apparmor_is_lsm();
    if active && Path::new("/sys/kernel/security/apparmor/features/domain/stack").exists() {
        return Ok(());
    }
    Err(problem!(
        Info,
        "AppArmor namespace stacking isn't available"
    ))
}

pub(super) fn probe_openat2() -> bool {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rustix::fs::openat2(
        rustix::fs::CWD,
        ".",
        flags,
        Mode::empty(),
        ResolveFlags::empty(),
    ) {
        Ok(_) => true,
        Err(Errno::NOSYS) => {
            crate::pr_debug!("No openat2 syscall support");
            false
        }
        Err(e) => {
            crate::pr_debug!("openat2 failed: {e}");
            false
        }
    }
}

pub(super) fn check_openat2(k: &KernelFeatures) -> CheckResult {
    if !k.openat2 {
        return Err(problem!(Info, "No openat2 syscall support"));
    }
    Ok(())
}

/// rseq support, from the auxiliary vector (`AT_RSEQ_FEATURE_SIZE`, 6.3+).
pub(super) fn probe_rseq() -> bool {
    const AT_RSEQ_FEATURE_SIZE: u64 = linux_raw_sys::auxvec::AT_RSEQ_FEATURE_SIZE as u64;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return false;
    };
    let found = auxv
        .chunks_exact(16)
        .map(|c| {
            let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
            (word(&c[..8]), word(&c[8..]))
        })
        .any(|(k, v)| k == AT_RSEQ_FEATURE_SIZE && v > 0);
    if !found {
        crate::pr_info!("rseq syscall isn't supported");
    }
    found
}

pub(super) fn probe_membarrier_get_registrations() -> bool {
    const MEMBARRIER_CMD_GET_REGISTRATIONS: u32 = 1 << 9;
    rustix::thread::membarrier_query().bits() & MEMBARRIER_CMD_GET_REGISTRATIONS != 0
}
