//! Whole fd-table operations that rustix does not offer.

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
