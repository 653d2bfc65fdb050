//! A file's owner for SIGIO/SIGURG (`F_GETOWN_EX`, `F_GETSIG`,
//! `F_GETOWNER_UIDS`): fcntl commands rustix does not offer.

use std::os::fd::{AsFd, AsRawFd};

use rustix::io::Errno;

use super::ret;

use linux_raw_sys::general::{F_GETOWN_EX, F_GETOWNER_UIDS, F_GETSIG};

/// `struct f_owner_ex`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnerEx {
    /// `F_OWNER_TID` 0, `F_OWNER_PID` 1, `F_OWNER_PGRP` 2.
    pub kind: i32,
    pub pid: i32,
}
const _: () = assert!(size_of::<OwnerEx>() == 8);

/// The owner of an open file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub owner: OwnerEx,
    /// Signal sent instead of SIGIO (0: SIGIO).
    pub signum: u32,
    /// uid and euid recorded when the owner was set.
    pub uids: [u32; 2],
}

/// The owner of the file `fd` refers to.
pub fn owner(fd: impl AsFd) -> Result<Owner, Errno> {
    let fd = fd.as_fd().as_raw_fd() as usize;
    let mut out = Owner::default();
    let nr = criu_arch::nr::FCNTL;
    // SAFETY: F_GETOWN_EX writes one `struct f_owner_ex` (OwnerEx's
    // layout) to the live local it points to.
    ret(unsafe {
        criu_arch::syscall3(nr, fd, F_GETOWN_EX as usize, (&raw mut out.owner) as usize)
    })?;
    // SAFETY: F_GETSIG only returns a number.
    out.signum = ret(unsafe { criu_arch::syscall2(nr, fd, F_GETSIG as usize) })? as u32;
    let uids = out.uids.as_mut_ptr() as usize;
    // SAFETY: F_GETOWNER_UIDS writes two u32s to the live local array.
    match ret(unsafe { criu_arch::syscall3(nr, fd, F_GETOWNER_UIDS as usize, uids) }) {
        Ok(_) => {}
        // Without CONFIG_CHECKPOINT_RESTORE: the uids stay unknown (0).
        Err(Errno::INVAL) => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}
