//! Whole fd-table operations that rustix does not offer, and taking
//! ownership of a descriptor inherited by number (`criu swrk FD`,
//! `--status-fd FD`).

use rustix::io::Errno;

/// Close every fd from `first` up (`close_range(first, ~0, 0)`).
///
/// Programs started for checkpointing (tests, the demo) use it to drop the
/// fds they inherited from whoever started them: an unexpected pipe or
/// socket from the parent would otherwise end up in their images.
pub fn close_fds_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range only closes descriptors; callers use it before
    // they own any fd at or above `first`, so nothing in the process refers
    // to the closed ones afterwards.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::CLOSE_RANGE,
            first as usize,
            u32::MAX as usize,
            0,
        )
    };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(-ret as i32));
    }
    Ok(())
}

/// Close descriptor `fd` by number (`criu --close FD`), whatever it is; a
/// negative or unused number is not an error (CRIU ignores the result).
pub fn close_number(fd: i32) -> Result<(), Errno> {
    if fd < 0 {
        return Ok(());
    }
    // SAFETY: close_range over one number only closes that descriptor. The
    // caller does this first thing, before it opens or borrows any fd, so
    // nothing in the process refers to it afterwards.
    let ret =
        unsafe { criu_arch::syscall3(criu_arch::nr::CLOSE_RANGE, fd as usize, fd as usize, 0) };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(-ret as i32));
    }
    Ok(())
}

/// Adopts fd `raw`, which the process that exec'ed us left open for us.
/// The standard streams are refused (they are not ours to close), as is a
/// number with no open file behind it.
pub fn adopt(raw: i32) -> Result<std::os::fd::OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    if raw <= 2 {
        return Err(Errno::BADF);
    }
    // Only an fd that is really open may be adopted: /proc/self/fd/N is a
    // symlink exactly for the open ones.
    std::fs::symlink_metadata(format!("/proc/self/fd/{raw}")).map_err(|_| Errno::BADF)?;
    // SAFETY: `raw` is open (checked above) and was inherited across exec:
    // nothing in this process has wrapped it in an owning type (std and our
    // code open everything close-on-exec, so no inherited number is in use by
    // them), and the caller adopts each inherited number once, from argv.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) })
}

/// A copy (close-on-exec, at or above `min`) of fd number `raw` of this
/// process, which someone else gave us by number (`--inherit-fd`); an fd
/// that is not open fails with EBADF.
pub fn dup_given(raw: i32, min: i32) -> Result<std::os::fd::OwnedFd, Errno> {
    if raw < 0 {
        return Err(Errno::BADF);
    }
    // SAFETY: the borrow lives only for the F_DUPFD below, which the
    // kernel checks (EBADF for a number that is not open); nothing is
    // closed through it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    rustix::io::fcntl_dupfd_cloexec(fd, min)
}
