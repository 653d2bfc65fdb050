//! Integer socket options that rustix has no typed call for
//! (`SO_PEEK_OFF`, `SO_PRIORITY`, `SO_RCVLOWAT`, `SO_PASSSEC`, …): plain
//! `getsockopt`/`setsockopt` of one `int`.

use std::os::fd::{AsFd, AsRawFd};

use rustix::io::Errno;

/// `SOL_SOCKET`.
pub const SOL_SOCKET: u32 = 1;
/// `SO_PEEK_OFF`: where the next `MSG_PEEK` starts (-1: peeking always
/// starts at the head of the queue).
pub const SO_PEEK_OFF: u32 = 42;
pub const SO_PRIORITY: u32 = 12;
pub const SO_RCVLOWAT: u32 = 18;
pub const SO_PASSSEC: u32 = 34;
pub const SO_DONTROUTE: u32 = 5;
pub const SO_NO_CHECK: u32 = 11;

fn ret(r: isize) -> Result<isize, Errno> {
    if r < 0 {
        Err(Errno::from_raw_os_error(-r as i32))
    } else {
        Ok(r)
    }
}

/// `getsockopt(fd, level, name)` of an `int` option.
pub fn get_int(fd: impl AsFd, level: u32, name: u32) -> Result<i32, Errno> {
    let mut val: i32 = 0;
    let mut len: u32 = size_of::<i32>() as u32;
    // SAFETY: the kernel writes at most `len` (4) bytes to `val` and the
    // length back to `len`; both live on this stack frame for the call.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::GETSOCKOPT,
            fd.as_fd().as_raw_fd() as usize,
            level as usize,
            name as usize,
            &mut val as *mut i32 as usize,
            &mut len as *mut u32 as usize,
        )
    };
    ret(r)?;
    Ok(val)
}

/// `setsockopt(fd, level, name, &val, sizeof(int))`.
pub fn set_int(fd: impl AsFd, level: u32, name: u32, val: i32) -> Result<(), Errno> {
    // SAFETY: the kernel reads 4 bytes from `val`, which outlives the call.
    let r = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::SETSOCKOPT,
            fd.as_fd().as_raw_fd() as usize,
            level as usize,
            name as usize,
            &val as *const i32 as usize,
            size_of::<i32>(),
        )
    };
    ret(r).map(drop)
}
