//! The anon-inode and file-handle system calls rustix does not wrap:
//! `signalfd4`, the timerfd `TFD_IOC_SET_TICKS` ioctl and
//! `open_by_handle_at` / `name_to_handle_at`.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use rustix::io::Errno;

use super::ret as result;

/// Takes ownership of a descriptor a system call just returned.
fn owned(ret: isize) -> Result<OwnedFd, Errno> {
    let fd = result(ret)? as i32;
    // SAFETY: the kernel just created `fd` for us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `signalfd4(-1, &mask, 8, flags)`: a new signalfd for the signals in
/// `mask` (bit N-1 for signal N); `flags` are `SFD_NONBLOCK`/`SFD_CLOEXEC`.
pub fn signalfd(mask: u64, flags: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: the kernel reads 8 bytes of signal set from `mask`, which
    // lives across the call.
    let ret = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::SIGNALFD4,
            usize::MAX, // -1: a new signalfd
            &mask as *const u64 as usize,
            size_of::<u64>(),
            flags as usize,
        )
    };
    owned(ret)
}

/// `TFD_IOC_SET_TICKS` (`_IOW('T', 0, u64)`, whose direction bits differ
/// per arch: linux-raw-sys has each arch's value).
const TFD_IOC_SET_TICKS: usize = linux_raw_sys::ioctl::TFD_IOC_SET_TICKS as usize;

/// Sets the expirations a timerfd reports as not read yet (needs a kernel
/// built with `CONFIG_CHECKPOINT_RESTORE`, else `ENOTTY`).
pub fn timerfd_set_ticks(fd: impl AsFd, ticks: u64) -> Result<(), Errno> {
    // SAFETY: the ioctl reads one u64 from `ticks`, alive across the call.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_fd().as_raw_fd() as usize,
            TFD_IOC_SET_TICKS,
            &ticks as *const u64 as usize,
        )
    };
    result(ret).map(drop)
}

/// Most bytes of a file handle (`MAX_HANDLE_SZ`).
pub const MAX_HANDLE_SZ: usize = 128;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct FileHandleBuf {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_SZ],
}

const _: () = assert!(core::mem::offset_of!(FileHandleBuf, f_handle) == 8);

/// `open_by_handle_at(mount_fd, {bytes, handle_type, handle}, flags)`:
/// opens the inode a file handle names (needs `CAP_DAC_READ_SEARCH`).
pub fn open_by_handle_at(
    mount_fd: impl AsFd,
    handle_type: i32,
    handle: &[u8],
    flags: u32,
) -> Result<OwnedFd, Errno> {
    if handle.len() > MAX_HANDLE_SZ {
        return Err(Errno::INVAL);
    }
    let mut buf = FileHandleBuf {
        handle_bytes: handle.len() as u32,
        handle_type,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    buf.f_handle[..handle.len()].copy_from_slice(handle);
    // SAFETY: the kernel reads `handle_bytes` bytes of handle after the
    // header from `buf`, which holds that many and lives across the call.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::OPEN_BY_HANDLE_AT,
            mount_fd.as_fd().as_raw_fd() as usize,
            &buf as *const FileHandleBuf as usize,
            flags as usize,
        )
    };
    owned(ret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signalfd_has_its_mask() {
        let fd = signalfd(1 << 9, 0o2_000_000).unwrap();
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
        assert!(info.contains("sigmask:\t0000000000000200"), "{info}");
    }

    #[test]
    fn handle_longer_than_the_maximum_is_refused() {
        let dir = std::fs::File::open("/").unwrap();
        let h = [0u8; MAX_HANDLE_SZ + 1];
        assert_eq!(open_by_handle_at(&dir, 1, &h, 0).err(), Some(Errno::INVAL));
    }
}
