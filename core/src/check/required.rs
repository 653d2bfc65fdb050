//! CRIU's category-1 checks beyond procfs and ptrace (`cr-check.c`): the
//! socket, prctl, fcntl, TCP repair, vmsplice, tty, siginfo and
//! special-mapping interfaces every dump or restore relies on, and the
//! category-2 ones built on the same calls (prctl map, TCP repair window
//! and half-closed sockets, vDSO mapping).

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType};

use super::procfs::strerror;
use super::{CheckResult, KernelFeatures, problem};
use crate::sys::probe_child::ChildEnd;
use crate::sys::{probe, probe_child, sockopt};

pub(super) fn check_sock_peek_off(_: &KernelFeatures) -> CheckResult {
    let sk = rustix::net::socket(AddressFamily::UNIX, SocketType::DGRAM, None)
        .map_err(|e| problem!(Error, "Can't create unix socket for check: {}", strerror(e)))?;
    match sockopt::get_int(&sk, sockopt::SOL_SOCKET, sockopt::SO_PEEK_OFF) {
        Ok(-1) => Ok(()),
        _ => Err(problem!(Msg, "SO_PEEK_OFF sockoption doesn't work.")),
    }
}

pub(super) fn check_prctl_cat1(_: &KernelFeatures) -> CheckResult {
    probe::get_tid_address().map_err(|e| {
        problem!(
            Error,
            "prctl: PR_GET_TID_ADDRESS is not supported: {}",
            strerror(e)
        )
    })?;
    // Restore sets the whole mm map with PR_SET_MM_MAP; CRIU falls back to
    // the single-field calls on kernels without it, which this tool has
    // no code for.
    probe::mm_map_size().map(drop).map_err(|e| {
        problem!(
            Error,
            "prctl: PR_SET_MM_MAP is not supported ({}), and this tool does not \
             restore with the old PR_SET_MM_BRK/... calls",
            strerror(e)
        )
    })
}

pub(super) fn check_prctl_cat2(_: &KernelFeatures) -> CheckResult {
    probe::mm_map_size()
        .map(drop)
        .map_err(|_| problem!(Warn, "prctl: PR_SET_MM_MAP_SIZE is not supported"))
}

pub(super) fn check_fcntl(_: &KernelFeatures) -> CheckResult {
    let fd = rustix::fs::open(
        "/proc/self/comm",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| problem!(Error, "Can't open /proc/self/comm: {}", strerror(e)))?;
    probe::getowner_uids(&fd)
        .map(drop)
        .map_err(|e| problem!(Error, "Can't fetch file owner UIDs: {}", strerror(e)))
}

fn tcp_repair_on(sk: impl AsFd) -> Result<(), Errno> {
    sockopt::set_int(sk, sockopt::SOL_TCP, sockopt::TCP_REPAIR, 1)
}

pub(super) fn check_tcp(_: &KernelFeatures) -> CheckResult {
    let sk = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)
        .map_err(|e| problem!(Error, "Can't create TCP socket :(: {}", strerror(e)))?;
    tcp_repair_on(&sk)
        .map_err(|e| problem!(Error, "Can't turn TCP repair mode ON: {}", strerror(e)))?;
    sockopt::get_int(&sk, sockopt::SOL_TCP, sockopt::TCP_TIMESTAMP)
        .map(drop)
        .map_err(|e| problem!(Error, "Can't get TCP_TIMESTAMP: {}", strerror(e)))
}

/// `struct tcp_repair_window` is five u32s.
const TCP_REPAIR_WINDOW_SIZE: usize = 20;

pub(super) fn check_tcp_window(_: &KernelFeatures) -> CheckResult {
    let sk = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)
        .map_err(|e| problem!(Error, "Unable to create inet socket: {}", strerror(e)))?;
    match tcp_repair_on(&sk) {
        Ok(()) => {}
        Err(Errno::PERM) => {
            crate::pr_warn!("TCP_REPAIR isn't available to unprivileged users");
            return Err(problem!(
                Error,
                "The TCP_REPAIR_WINDOW option isn't supported."
            ));
        }
        Err(e) => return Err(problem!(Error, "Unable to set TCP_REPAIR: {}", strerror(e))),
    }
    let mut win = [0u8; TCP_REPAIR_WINDOW_SIZE];
    match sockopt::get_bytes(
        &sk,
        sockopt::SOL_TCP,
        sockopt::TCP_REPAIR_WINDOW,
        Some(&mut win),
    ) {
        Ok(_) => Ok(()),
        Err(Errno::NOPROTOOPT) => Err(problem!(
            Error,
            "The TCP_REPAIR_WINDOW option isn't supported."
        )),
        Err(e) => Err(problem!(
            Error,
            "Unable to set TCP_REPAIR_WINDOW: {}",
            strerror(e)
        )),
    }
}

/// CRIU's kerndat TCP probe: repair mode on a connected socket whose
/// sending side is shut down (a half-closed connection, which dump must
/// be able to put into repair too).
pub(super) fn check_tcp_half_closed(_: &KernelFeatures) -> CheckResult {
    use rustix::net::{Ipv4Addr, Shutdown, SocketAddrV4};
    let failed = |what: &str, e: Errno| problem!(Error, "{what}: {}", strerror(e));
    let listener = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)
        .map_err(|e| failed("Unable to create a socket", e))?;
    rustix::net::bind(&listener, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| failed("Unable to bind a socket", e))?;
    let addr = rustix::net::getsockname(&listener)
        .map_err(|e| failed("Unable to get a socket name", e))?;
    rustix::net::listen(&listener, 1).map_err(|e| failed("Unable to listen a socket", e))?;
    let client = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)
        .map_err(|e| failed("Unable to create a socket", e))?;
    rustix::net::connect(&client, &addr).map_err(|e| failed("Unable to connect a socket", e))?;
    rustix::net::shutdown(&client, Shutdown::Write)
        .map_err(|e| failed("Unable to shutdown a socket", e))?;
    match tcp_repair_on(&client) {
        Ok(()) => Ok(()),
        Err(Errno::PERM) => Err(problem!(
            Error,
            "TCP_REPAIR can't be enabled for half-closed sockets"
        )),
        Err(e) => Err(failed("Unable to set TCP_REPAIR with setsockopt", e)),
    }
}

pub(super) fn check_unaligned_vmsplice(_: &KernelFeatures) -> CheckResult {
    let (_rd, wr) =
        rustix::pipe::pipe().map_err(|e| problem!(Error, "Can't create pipe: {}", strerror(e)))?;
    probe::vmsplice_one_byte(&wr)
        .map_err(|e| problem!(Error, "Unaligned vmsplice doesn't work: {}", strerror(e)))?;
    crate::pr_info!("Unaligned vmsplice works OK");
    Ok(())
}

/// A locked pty's slave must not open (`EIO`), as restore relies on the
/// lock to keep a slave closed until its master is ready.
pub(super) fn check_tty(_: &KernelFeatures) -> CheckResult {
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    let master: OwnedFd = rustix::fs::open("/dev/ptmx", flags, Mode::empty())
        .map_err(|e| problem!(Error, "Can't open /dev/ptmx: {}", strerror(e)))?;
    probe::set_pty_lock(&master, true)
        .map_err(|e| problem!(Error, "Can't lock pty master: {}", strerror(e)))?;
    let n = crate::sys::tty::get_int(&master, crate::sys::tty::TIOCGPTN)
        .map_err(|e| problem!(Error, "Can't get the pty number: {}", strerror(e)))?;
    match rustix::fs::open(format!("/dev/pts/{n}"), flags, Mode::empty()) {
        Err(Errno::IO) => Ok(()),
        Err(e) => Err(problem!(
            Error,
            "Unexpected error on locked pty: {}",
            strerror(e)
        )),
        Ok(_) => Err(problem!(Error, "Managed to open locked pty.")),
    }
}

pub(super) fn check_so_gets(_: &KernelFeatures) -> CheckResult {
    let sk = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None)
        .map_err(|e| problem!(Error, "No socket: {}", strerror(e)))?;
    sockopt::get_bytes(&sk, sockopt::SOL_SOCKET, sockopt::SO_GET_FILTER, None)
        .map_err(|e| problem!(Error, "Can't get socket filter: {}", strerror(e)))?;
    let mut name = [0u8; 16]; // IFNAMSIZ
    sockopt::get_bytes(
        &sk,
        sockopt::SOL_SOCKET,
        sockopt::SO_BINDTODEVICE,
        Some(&mut name),
    )
    .map(drop)
    .map_err(|e| problem!(Error, "Can't get socket bound dev: {}", strerror(e)))
}

pub(super) fn check_sigqueueinfo(_: &KernelFeatures) -> CheckResult {
    probe::sigqueueinfo_to_self(linux_raw_sys::general::SIGUSR1).map_err(|e| {
        problem!(
            Error,
            "Unable to send siginfo with positive si_code to itself: {}",
            strerror(e)
        )
    })
}

/// The special mappings of this process that are subject to ASLR (and so
/// moved by restore), as `(start, len)`.
fn special_mappings() -> Result<Vec<(usize, usize)>, super::Problem> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| problem!(Error, "Can't read /proc/self/maps: {e}"))?;
    let mut found = Vec::new();
    for name in ["[vvar]", "[vvar_vclock]", "[vdso]", "[sigpage]"] {
        let mut hits = maps.lines().filter(|l| l.ends_with(&format!(" {name}")));
        if let Some(line) = hits.next() {
            if hits.next().is_some() {
                return Err(problem!(Error, "Special mapping meet twice: {name}"));
            }
            let range = line.split(' ').next().unwrap_or_default();
            let (a, b) = range.split_once('-').unwrap_or_default();
            let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                return Err(problem!(Error, "Bad maps format ({line})"));
            };
            found.push((a, b - a));
        }
    }
    Ok(found)
}

/// CRIU's special-mapping check: a child moves its vDSO and vvar pages
/// and returns from a signal handler; a kernel that does not follow the
/// move (before 4.8-4.14, per arch) kills it.
pub(super) fn check_special_mapping_mremap(_: &KernelFeatures) -> CheckResult {
    let vmas = special_mappings()?;
    let end = probe_child::special_mappings_move(&vmas).map_err(|e| {
        problem!(
            Error,
            "check_special_mapping_mremap(): failed to fork(): {}",
            strerror(e)
        )
    })?;
    match end {
        ChildEnd::Exited(0) => Ok(()),
        ChildEnd::Killed(sig) => {
            crate::pr_err!("Child killed by signal {sig}");
            Err(problem!(
                Error,
                "Your kernel probably lacks the support for mremapping special mappings"
            ))
        }
        ChildEnd::Exited(code) => Err(problem!(Error, "Child exited with {code}")),
    }
}

pub(super) fn check_can_map_vdso(_: &KernelFeatures) -> CheckResult {
    match probe_child::can_map_vdso() {
        Ok(true) => Ok(()),
        _ => Err(problem!(
            Warn,
            "Do not have API to map vDSO - will use mremap() to restore vDSO"
        )),
    }
}

/// CRIU's `clone(CLONE_NEWPID | CLONE_PARENT)` check: the two work
/// together (a task can be made the first of a new PID namespace as a
/// sibling of its creator).
pub(super) fn check_clone_parent_vs_pid(_: &KernelFeatures) -> CheckResult {
    probe_child::clone_parent_newpid()
        .map_err(|_| problem!(Error, "CLONE_PARENT | CLONE_NEWPID don't work together"))
}
