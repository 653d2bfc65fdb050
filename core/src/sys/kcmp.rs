//! kcmp(2): do two processes share a kernel object?
//!
//! Dump uses it to find files, memory, fs info, signal handlers and so on
//! that several tasks share, and which epoll target belongs to which file.
//! The result orders the two kernel pointers, so objects can be sorted and
//! deduplicated without the kernel revealing addresses.

use rustix::io::Errno;
use rustix::process::Pid;

/// What to compare (`KCMP_*` from `<linux/kcmp.h>`, which linux-raw-sys does
/// not carry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum KcmpType {
    /// An open file: `idx1`/`idx2` are fds.
    File = 0,
    Vm = 1,
    Files = 2,
    Fs = 3,
    Sighand = 4,
    Io = 5,
    Sysvsem = 6,
    /// A file registered in an epoll instance (see [`kcmp_epoll_tfd`]).
    EpollTfd = 7,
}

/// kcmp's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KcmpOrder {
    /// Both refer to the same object.
    Equal,
    /// Different objects; the first sorts before the second.
    Less,
    /// Different objects; the first sorts after the second.
    Greater,
    /// Different, with no order available.
    Unordered,
}

/// `struct kcmp_epoll_slot`: names a target registered in an epoll fd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct KcmpEpollSlot {
    /// The epoll fd (in the second process).
    pub efd: u32,
    /// The target fd number as registered.
    pub tfd: u32,
    /// Which registration of that fd number (0 for the first).
    pub toff: u32,
}

const _: () = assert!(size_of::<KcmpEpollSlot>() == 12);

fn order(ret: isize) -> Result<KcmpOrder, Errno> {
    match ret {
        0 => Ok(KcmpOrder::Equal),
        1 => Ok(KcmpOrder::Less),
        2 => Ok(KcmpOrder::Greater),
        3 => Ok(KcmpOrder::Unordered),
        r if r < 0 => Err(Errno::from_raw_os_error(-r as i32)),
        _ => Err(Errno::INVAL),
    }
}

fn raw_pid(pid: Pid) -> usize {
    pid.as_raw_nonzero().get() as usize
}

/// Compares the objects of `kind` of two processes. For [`KcmpType::File`]
/// `idx1` and `idx2` are fds in `pid1` and `pid2`; other kinds ignore them.
/// Use [`kcmp_epoll_tfd`] for [`KcmpType::EpollTfd`].
pub fn kcmp(
    pid1: Pid,
    pid2: Pid,
    kind: KcmpType,
    idx1: u32,
    idx2: u32,
) -> Result<KcmpOrder, Errno> {
    if kind == KcmpType::EpollTfd {
        // That kind takes a pointer as idx2; calling it with a number would
        // make the kernel read from a bogus address.
        return Err(Errno::INVAL);
    }
    // SAFETY: for these kinds every argument is an integer; the kernel reads
    // no memory of ours.
    let ret = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::KCMP,
            raw_pid(pid1),
            raw_pid(pid2),
            kind as usize,
            idx1 as usize,
            idx2 as usize,
        )
    };
    order(ret)
}

/// Compares file `fd1` of `pid1` with the target `slot` registered in epoll
/// fd `slot.efd` of `pid2` (`KCMP_EPOLL_TFD`, kernel 4.13+).
pub fn kcmp_epoll_tfd(
    pid1: Pid,
    fd1: u32,
    pid2: Pid,
    slot: &KcmpEpollSlot,
) -> Result<KcmpOrder, Errno> {
    // SAFETY: the kernel reads one `kcmp_epoll_slot` through the last
    // argument, which points to `slot`.
    let ret = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::KCMP,
            raw_pid(pid1),
            raw_pid(pid2),
            KcmpType::EpollTfd as usize,
            fd1 as usize,
            slot as *const KcmpEpollSlot as usize,
        )
    };
    order(ret)
}

/// Whether the kernel has kcmp at all (CRIU's check: any error but `ENOSYS`
/// from a deliberately invalid call means it exists).
pub fn supported() -> bool {
    // SAFETY: integer arguments only; the invalid pid makes the call fail
    // before anything is looked at.
    let ret = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::KCMP,
            rustix::process::getpid().as_raw_nonzero().get() as usize,
            usize::MAX,
            usize::MAX,
            usize::MAX,
            usize::MAX,
        )
    };
    !(ret < 0 && Errno::from_raw_os_error(-ret as i32) == Errno::NOSYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn file_and_its_dup_are_equal() {
        if !supported() {
            eprintln!("SKIPPED file_and_its_dup_are_equal: no kcmp here");
            return;
        }
        let me = rustix::process::getpid();
        let (rd, wr) = rustix::pipe::pipe().unwrap();
        let dup = rustix::io::dup(&rd).unwrap();
        let fd = |f: &std::os::fd::OwnedFd| f.as_raw_fd() as u32;
        assert_eq!(
            kcmp(me, me, KcmpType::File, fd(&rd), fd(&dup)),
            Ok(KcmpOrder::Equal)
        );
        assert_ne!(
            kcmp(me, me, KcmpType::File, fd(&rd), fd(&wr)),
            Ok(KcmpOrder::Equal)
        );
        assert_eq!(kcmp(me, me, KcmpType::Vm, 0, 0), Ok(KcmpOrder::Equal));
        assert_eq!(kcmp(me, me, KcmpType::EpollTfd, 0, 0), Err(Errno::INVAL));
    }
}
