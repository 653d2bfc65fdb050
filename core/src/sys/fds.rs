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
