//! userfaultfd(2): creating a userfault fd and the `UFFDIO_API` handshake.
//!
//! A userfault fd is made either with the `userfaultfd` syscall or, when
//! that is restricted (`vm.unprivileged_userfaultfd = 0` for non-root), via
//! `/dev/userfaultfd` and its `USERFAULTFD_IOC_NEW` ioctl. The API handshake
//! then tells which `UFFD_FEATURE_*` bits the kernel offers; lazy pages need
//! the basic API and memory tracking wants `UFFD_FEATURE_WP_ASYNC`.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use linux_raw_sys::general as raw;
use rustix::io::Errno;

/// `UFFD_API`, the only API version.
pub const UFFD_API: u64 = raw::UFFD_API as u64;

/// Feature bits (`UFFD_FEATURE_*`) offered by the kernel or requested.
pub mod feature {
    use linux_raw_sys::general as raw;
    pub const PAGEFAULT_FLAG_WP: u64 = raw::UFFD_FEATURE_PAGEFAULT_FLAG_WP as u64;
    pub const EVENT_FORK: u64 = raw::UFFD_FEATURE_EVENT_FORK as u64;
    pub const EVENT_REMAP: u64 = raw::UFFD_FEATURE_EVENT_REMAP as u64;
    pub const EVENT_REMOVE: u64 = raw::UFFD_FEATURE_EVENT_REMOVE as u64;
    pub const MISSING_SHMEM: u64 = raw::UFFD_FEATURE_MISSING_SHMEM as u64;
    pub const EVENT_UNMAP: u64 = raw::UFFD_FEATURE_EVENT_UNMAP as u64;
    pub const THREAD_ID: u64 = raw::UFFD_FEATURE_THREAD_ID as u64;
    pub const WP_HUGETLBFS_SHMEM: u64 = raw::UFFD_FEATURE_WP_HUGETLBFS_SHMEM as u64;
    pub const WP_UNPOPULATED: u64 = raw::UFFD_FEATURE_WP_UNPOPULATED as u64;
    pub const WP_ASYNC: u64 = raw::UFFD_FEATURE_WP_ASYNC as u64;
    /// What CRIU calls non-cooperative uffd: events for fork, remap, remove
    /// and unmap in the lazily restored tree.
    pub const NON_COOPERATIVE: u64 = EVENT_FORK | EVENT_REMAP | EVENT_REMOVE | EVENT_UNMAP;
}

/// `USERFAULTFD_IOC_NEW`: `_IO(0xAA, 0x00)`.
const USERFAULTFD_IOC_NEW: u32 = criu_arch::ioc(criu_arch::IOC_NONE, 0xAA, 0x00, 0);
/// `UFFDIO_API`: `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
const UFFDIO_API: u32 = linux_raw_sys::ioctl::UFFDIO_API;

const _: () = assert!(size_of::<raw::uffdio_api>() == 24);

/// Flags for a new userfault fd (`O_CLOEXEC`, `O_NONBLOCK`,
/// `UFFD_USER_MODE_ONLY`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UffdFlags {
    pub cloexec: bool,
    pub nonblock: bool,
    /// Only faults from user mode: allowed to unprivileged users.
    pub user_mode_only: bool,
}

impl UffdFlags {
    fn bits(self) -> usize {
        let mut f = 0;
        if self.cloexec {
            f |= raw::O_CLOEXEC as usize;
        }
        if self.nonblock {
            f |= raw::O_NONBLOCK as usize;
        }
        if self.user_mode_only {
            f |= raw::UFFD_USER_MODE_ONLY as usize;
        }
        f
    }
}

fn owned_fd(ret: isize) -> Result<OwnedFd, Errno> {
    if ret < 0 {
        return Err(Errno::from_raw_os_error(-ret as i32));
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

/// The `userfaultfd` syscall.
pub fn userfaultfd(flags: UffdFlags) -> Result<OwnedFd, Errno> {
    // SAFETY: takes only flags and returns a new descriptor; no memory of
    // ours is involved.
    let ret = unsafe { criu_arch::syscall1(criu_arch::nr::USERFAULTFD, flags.bits()) };
    owned_fd(ret)
}

/// A userfault fd from `/dev/userfaultfd` (kernel 6.1+), which only needs
/// access to that device node.
pub fn userfaultfd_dev(flags: UffdFlags) -> Result<OwnedFd, Errno> {
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/userfaultfd")
        .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::NOENT))?;
    // SAFETY: USERFAULTFD_IOC_NEW takes its flags by value and returns a new
    // descriptor; `dev` is an open descriptor we own.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            dev.as_raw_fd() as usize,
            USERFAULTFD_IOC_NEW as usize,
            flags.bits(),
        )
    };
    owned_fd(ret)
}

/// The kernel's answer to the `UFFDIO_API` handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UffdApi {
    /// Features enabled on this fd (those requested that exist).
    pub features: u64,
    /// Bitmask of the ioctls usable on this fd.
    pub ioctls: u64,
}

/// `UFFDIO_API` on a fresh userfault fd, requesting `features`. With
/// `features == 0` the reply lists every feature the kernel supports. The
/// handshake can be done once per fd; a second one fails with `EINVAL`.
pub fn api(uffd: &OwnedFd, features: u64) -> Result<UffdApi, Errno> {
    let mut arg = raw::uffdio_api {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    // SAFETY: the kernel reads and writes back one `uffdio_api`, which is our
    // local `arg`; `uffd` is an open descriptor we own.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            uffd.as_raw_fd() as usize,
            UFFDIO_API as usize,
            &mut arg as *mut raw::uffdio_api as usize,
        )
    };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(-ret as i32));
    }
    Ok(UffdApi {
        features: arg.features,
        ioctls: arg.ioctls,
    })
}

/// `UFFDIO_COPY`: `_IOWR(0xAA, 0x03, struct uffdio_copy)`.
const UFFDIO_COPY: u32 = linux_raw_sys::ioctl::UFFDIO_COPY;

const _: () = assert!(size_of::<raw::uffdio_copy>() == 40);

/// `UFFDIO_COPY` of `len` bytes at `offset` of the file `src` to `dst` in
/// the address space `uffd` belongs to (registered there for missing
/// pages, not yet populated). The file's pages are mapped read-only into
/// ours for the copy, so the kernel copies them once, into pages it
/// allocates without zeroing them first; the mapping is gone on return.
pub fn copy_from_file(
    uffd: BorrowedFd<'_>,
    src: BorrowedFd<'_>,
    offset: u64,
    dst: u64,
    len: usize,
) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: a fresh read-only mapping at an address the kernel picks: it
    // overlaps nothing of ours, and we only hand its address to the kernel.
    let map = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::SHARED,
            src,
            offset,
        )?
    };
    // Read once, in order: the kernel then does not mark the pages
    // accessed when they are unmapped (a freshly written image's pages
    // would each be moved to the active list, under the LRU lock the
    // other copying thread takes for every page it adds).
    // SAFETY: advice on the mapping made above; it changes no contents.
    let _ = unsafe { rustix::mm::madvise(map, len, rustix::mm::Advice::Sequential) };
    let result = copy_from(uffd, map as u64, dst, len as u64);
    // SAFETY: unmaps exactly the mapping made above, which nothing else uses.
    let _ = unsafe { rustix::mm::munmap(map, len) };
    result
}

/// `UFFDIO_COPY` from `src` in our address space, again after a partial copy
/// (the kernel copies what it can and says how much) or `EAGAIN` (the
/// target's layout changed meanwhile).
fn copy_from(uffd: BorrowedFd<'_>, src: u64, dst: u64, len: u64) -> Result<(), Errno> {
    let mut done = 0u64;
    while done < len {
        let mut arg = raw::uffdio_copy {
            dst: dst + done,
            src: src + done,
            len: len - done,
            mode: 0,
            copy: 0,
        };
        // SAFETY: the kernel reads `arg` and writes its `copy`; it reads
        // `len - done` bytes at `src + done`, inside the caller's mapping.
        let ret = unsafe {
            criu_arch::syscall3(
                criu_arch::nr::IOCTL,
                uffd.as_raw_fd() as usize,
                UFFDIO_COPY as usize,
                &mut arg as *mut raw::uffdio_copy as usize,
            )
        };
        if arg.copy > 0 {
            done += arg.copy as u64;
        }
        if ret < 0 && ret != -(Errno::AGAIN.raw_os_error() as isize) {
            return Err(Errno::from_raw_os_error(-ret as i32));
        }
    }
    Ok(())
}

/// The features the kernel supports, found through a throwaway userfault fd
/// made by `open` (the syscall or the device).
pub fn supported_features(open: fn(UffdFlags) -> Result<OwnedFd, Errno>) -> Result<u64, Errno> {
    let fd = open(UffdFlags {
        cloexec: true,
        nonblock: true,
        user_mode_only: false,
    })?;
    Ok(api(&fd, 0)?.features)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers() {
        use criu_arch::{IOC_NONE, IOC_READ, IOC_WRITE, ioc};
        assert_eq!(USERFAULTFD_IOC_NEW & 0xffff, 0xaa00);
        // criu_arch::ioc's bits against the kernel headers' numbers, for
        // both directions (they differ on powerpc).
        let api = ioc(
            IOC_READ | IOC_WRITE,
            0xAA,
            0x3F,
            size_of::<raw::uffdio_api>(),
        );
        assert_eq!(api, UFFDIO_API);
        assert_eq!(ioc(IOC_NONE, 0x12, 95, 0), linux_raw_sys::ioctl::BLKRRPART);
    }

    #[test]
    fn api_handshake_once_per_fd() {
        let flags = UffdFlags {
            cloexec: true,
            nonblock: true,
            user_mode_only: true,
        };
        let fd = match userfaultfd(flags).or_else(|_| userfaultfd_dev(flags)) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("SKIPPED api_handshake_once_per_fd: no userfaultfd here: {e}");
                return;
            }
        };
        let first = api(&fd, 0).expect("UFFDIO_API");
        assert_ne!(first.ioctls, 0);
        assert_eq!(api(&fd, 0), Err(Errno::INVAL));
    }
}
