//! `CMD_UFFD_WP`: the task's memory dirty tracker, a userfaultfd in
//! asynchronous write-protect mode. Only the task itself can make one for
//! its own memory (a userfaultfd belongs to the mm of whoever created it),
//! so the parasite creates it, registers the ranges the tool names and
//! write-protects them; from then on the kernel resolves the task's writes
//! by itself (no fault ever waits for a reader) and the tool's
//! `PAGEMAP_SCAN` tells the pages written since.

use criu_blob_rt::sys;

use crate::abi::{self, IoVec, UffdWpArgs};
use crate::area::Area;
use crate::sock::close;

const EINVAL: isize = -(criu_arch::kernel::errno::EINVAL as isize);
const O_CLOEXEC: usize = criu_arch::kernel::general::O_CLOEXEC as usize;
const O_NONBLOCK: usize = criu_arch::kernel::general::O_NONBLOCK as usize;
const UFFD_USER_MODE_ONLY: usize = criu_arch::kernel::general::UFFD_USER_MODE_ONLY as usize;
const UFFD_API: u64 = criu_arch::kernel::general::UFFD_API as u64;
const MODE_WP: u64 = criu_arch::kernel::general::UFFDIO_REGISTER_MODE_WP as u64;
/// `UFFDIO_WRITEPROTECT_MODE_WP` (`<linux/userfaultfd.h>`: `1 << 0`), which
/// linux-raw-sys does not export.
const WP_MODE_WP: u64 = 1;
const UFFDIO_API: usize = criu_arch::kernel::ioctl::UFFDIO_API as usize;
const UFFDIO_REGISTER: usize = criu_arch::kernel::ioctl::UFFDIO_REGISTER as usize;
const UFFDIO_WRITEPROTECT: usize = criu_arch::kernel::ioctl::UFFDIO_WRITEPROTECT as usize;

/// `struct uffdio_api`.
#[repr(C)]
struct Api {
    api: u64,
    features: u64,
    ioctls: u64,
}

/// `struct uffdio_register`.
#[repr(C)]
struct Register {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

/// `struct uffdio_writeprotect`.
#[repr(C)]
struct WriteProtect {
    start: u64,
    len: u64,
    mode: u64,
}

fn ioctl<T>(fd: i32, req: usize, arg: &mut T) -> isize {
    // SAFETY: `arg` is the structure `req` reads and writes back, alive
    // for the call.
    unsafe { sys::ioctl(fd as usize, req, arg as *mut T as usize) }
}

pub fn uffd_wp(mut area: Area) -> isize {
    let Some(hdr) = area.get::<UffdWpArgs>() else {
        return EINVAL;
    };
    let (fd, op, features, nr) = (hdr.fd, hdr.op, hdr.features, hdr.nr);
    if fd < 0 {
        return EINVAL;
    }
    if op == abi::UFFD_WP_CLOSE {
        close(fd);
        return 0;
    }
    if op == abi::UFFD_WP_TRACK {
        let ret = new_tracker(fd, features);
        if ret < 0 {
            return ret;
        }
    } else if op != abi::UFFD_WP_ADD {
        return EINVAL;
    }
    let Some(ranges) = area.array::<IoVec>(core::mem::size_of::<UffdWpArgs>(), nr) else {
        close(fd);
        return EINVAL;
    };
    let mut done = 0u64;
    for r in ranges.iter() {
        let ret = protect(fd, r);
        if ret < 0 {
            close(fd);
            return ret;
        }
        done += 1;
    }
    if let Some(hdr) = area.get::<UffdWpArgs>() {
        hdr.registered = done;
    }
    0
}

/// Register `r` for write-protection with the tracker `fd`, and protect
/// it.
fn protect(fd: i32, r: &IoVec) -> isize {
    let mut reg = Register {
        start: r.base,
        len: r.len,
        mode: MODE_WP,
        ioctls: 0,
    };
    let ret = ioctl(fd, UFFDIO_REGISTER, &mut reg);
    if ret < 0 {
        return ret;
    }
    let mut wp = WriteProtect {
        start: r.base,
        len: r.len,
        mode: WP_MODE_WP,
    };
    ioctl(fd, UFFDIO_WRITEPROTECT, &mut wp)
}

/// A new tracker with `features`, at fd `fd`.
fn new_tracker(fd: i32, features: u64) -> isize {
    // SAFETY: takes flags only and returns a new descriptor.
    let uffd = unsafe { sys::userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY) };
    if uffd < 0 {
        return uffd;
    }
    let uffd = uffd as i32;
    let ret = setup(uffd, features);
    if ret < 0 {
        close(uffd);
        return ret;
    }
    // The tracker goes to its place (closing the previous round's there,
    // which unregisters its ranges: this one registers them again).
    if uffd != fd {
        // SAFETY: integer-only syscall on descriptors of the task.
        let r = unsafe { sys::dup3(uffd as usize, fd as usize, O_CLOEXEC) };
        close(uffd);
        if r < 0 {
            return r;
        }
    }
    0
}

/// The API handshake asking for `features`, all of which must be there.
fn setup(uffd: i32, features: u64) -> isize {
    let mut api = Api {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    let ret = ioctl(uffd, UFFDIO_API, &mut api);
    if ret < 0 {
        return ret;
    }
    if api.features & features != features {
        return EINVAL;
    }
    0
}
