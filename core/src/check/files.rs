//! Probes of file kinds' checkpoint/restore interfaces: AIO ring remapping,
//! timerfd ticks, tun devices, socket namespaces and files, socket buffer
//! locks. Each follows CRIU's probe of the same feature name.

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType};

use super::procfs::strerror;
use super::{CheckResult, KernelFeatures, problem};
use crate::sys::probe;
use crate::sys::sockopt;

/// The length of the mapping at `addr` if `/proc/self/maps` shows it as
/// an AIO ring (`/[aio] (deleted)`).
fn aio_ring_len(addr: usize) -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        (start == addr && rest.trim_end().ends_with("/[aio] (deleted)")).then_some(end - start)
    })
}

/// CRIU's `aio_remap`: an AIO ring moved with `mremap` still works, as
/// restore moves each dumped ring to its old address.
pub(super) fn check_aio_remap(_: &KernelFeatures) -> CheckResult {
    let mut ctx = probe::AioContext::setup(16)
        .map_err(|e| problem!(Error, "No AIO syscall: {}", strerror(e)))?;
    let len = aio_ring_len(ctx.addr())
        .ok_or_else(|| problem!(Error, "No AIO ring at expected location"))?;
    ctx.remap_and_poll(len)
        .map_err(|(what, e)| problem!(Error, "{what}: {}", strerror(e)))
}

/// CRIU's `timerfd`: `TFD_IOC_SET_TICKS` exists (a NULL argument makes a
/// kernel that has it fail with `EFAULT`).
pub(super) fn check_timerfd(_: &KernelFeatures) -> CheckResult {
    use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
    let fd = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::CLOEXEC)
        .map_err(|e| problem!(Error, "timerfd_create failed: {}", strerror(e)))?;
    match probe::timerfd_set_ticks_null(&fd) {
        Ok(()) | Err(Errno::FAULT) => Ok(()),
        Err(e) => Err(problem!(
            Error,
            "No timerfd support for c/r: {}",
            strerror(e)
        )),
    }
}

fn open_tun(flags: OFlags) -> Result<std::os::fd::OwnedFd, Errno> {
    rustix::fs::open("/dev/net/tun", flags | OFlags::CLOEXEC, Mode::empty())
}

/// CRIU's `tun`: `/dev/net/tun` opens and knows `TUNSETIFINDEX`, which
/// restore uses to give a tun device its old index.
pub(super) fn check_tun(_: &KernelFeatures) -> CheckResult {
    let fd = open_tun(OFlags::RDWR)
        .map_err(|e| problem!(Error, "Can't check tun support: {}", strerror(e)))?;
    probe::tun_set_ifindex(&fd, 13).map_err(|e| {
        problem!(
            Error,
            "No proper support for tun dump/restore: {}",
            strerror(e)
        )
    })
}

/// The `--extra` form of the tun check: a system without `/dev/net/tun`
/// is fine (no tun device to dump), only one whose tun lacks the ioctl is
/// not.
pub(super) fn check_tun_cr(k: &KernelFeatures) -> CheckResult {
    match open_tun(OFlags::RDWR) {
        Err(e) => {
            crate::pr_err!("Can't check tun support: {}", strerror(e));
            Ok(())
        }
        Ok(_) => check_tun(k),
    }
}

/// CRIU's `tun_ns`: a tun file tells its network namespace (`SIOCGSKNS`).
pub(super) fn check_tun_ns(_: &KernelFeatures) -> CheckResult {
    let fd = open_tun(OFlags::RDONLY)
        .map_err(|e| problem!(Error, "Unable to create tun: {}", strerror(e)))?;
    probe::socket_netns(&fd)
        .map(drop)
        .map_err(|_| problem!(Warn, "Unable to get tun network namespace"))
}

fn unix_dgram() -> Result<std::os::fd::OwnedFd, super::Problem> {
    rustix::net::socket(AddressFamily::UNIX, SocketType::DGRAM, None)
        .map_err(|e| problem!(Error, "Unable to create socket: {}", strerror(e)))
}

/// CRIU's `sk_ns`: a socket tells its network namespace (`SIOCGSKNS`).
pub(super) fn check_sk_ns(_: &KernelFeatures) -> CheckResult {
    let sk = unix_dgram()?;
    probe::socket_netns(&sk)
        .map(drop)
        .map_err(|_| problem!(Warn, "Unable to get socket network namespace"))
}

/// CRIU's `sk_unix_file`: `SIOCUNIXFILE` opens a unix socket's file (an
/// unbound socket has none: `ENOENT` still shows the ioctl exists).
pub(super) fn check_sk_unix_file(_: &KernelFeatures) -> CheckResult {
    let sk = unix_dgram()?;
    match probe::unix_socket_file(&sk) {
        Ok(_) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(problem!(
            Warn,
            "Unable to open a socket file: {}",
            strerror(e)
        )),
    }
}

fn tcp_socket() -> Result<std::os::fd::OwnedFd, super::Problem> {
    rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)
        .or_else(|e| match e {
            Errno::AFNOSUPPORT => {
                rustix::net::socket(AddressFamily::INET6, SocketType::STREAM, None)
            }
            e => Err(e),
        })
        .map_err(|e| problem!(Error, "Unable to create a socket: {}", strerror(e)))
}

/// CRIU's `sockopt_buf_lock`: `SO_BUF_LOCK` can be read (5.14+).
pub(super) fn check_sockopt_buf_lock(_: &KernelFeatures) -> CheckResult {
    let sk = tcp_socket()?;
    match sockopt::get_int(&sk, sockopt::SOL_SOCKET, sockopt::SO_BUF_LOCK) {
        Ok(_) => Ok(()),
        Err(Errno::NOPROTOOPT) => Err(problem!(Info, "SO_BUF_LOCK isn't supported")),
        Err(e) => Err(problem!(
            Error,
            "Unable to get SO_BUF_LOCK with getsockopt: {}",
            strerror(e)
        )),
    }
}
