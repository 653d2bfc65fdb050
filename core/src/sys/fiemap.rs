//! The `FS_IOC_FIEMAP` ioctl: a file's extents (where it has blocks), as
//! CRIU's `--ghost-fiemap` uses them to dump a sparse ghost file in one
//! call per batch of extents instead of a `SEEK_DATA`/`SEEK_HOLE` pair per
//! run of data. Filesystems without it (tmpfs) answer `EOPNOTSUPP`.

use std::os::fd::{AsFd, AsRawFd};

use rustix::io::Errno;

/// `struct fiemap` (include/uapi/linux/fiemap.h) without its flexible
/// array of extents, which follows it in the request buffer.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapHead {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

/// `struct fiemap_extent`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

const _: () = assert!(size_of::<FiemapHead>() == 32);
const _: () = assert!(size_of::<FiemapExtent>() == 56);
const _: () = assert!(std::mem::offset_of!(FiemapHead, fm_extent_count) == 24);
const _: () = assert!(std::mem::offset_of!(FiemapExtent, fe_flags) == 40);
// `_IOWR('f', 11, struct fiemap)`: the kernel headers' value is ours too.
const _: () = assert!(
    linux_raw_sys::ioctl::FS_IOC_FIEMAP
        == criu_arch::ioc(
            criu_arch::IOC_READ | criu_arch::IOC_WRITE,
            b'f' as u32,
            11,
            size_of::<FiemapHead>()
        )
);

/// `FIEMAP_FLAG_SYNC`: write dirty pages back first, so that data still in
/// the page cache (delayed allocation) is reported where it will be.
const FIEMAP_FLAG_SYNC: u32 = 0x1;
/// `FIEMAP_EXTENT_LAST`: the last extent of the file.
pub const EXTENT_LAST: u32 = 0x1;

/// One extent: `length` bytes from file offset `logical`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub length: u64,
    /// `FIEMAP_EXTENT_*`.
    pub flags: u32,
}

/// The extents of `fd` that overlap `[start, start + len)`, at most
/// `out.len()` of them, into `out`; how many.
pub fn extents(fd: impl AsFd, start: u64, len: u64, out: &mut [Extent]) -> Result<usize, Errno> {
    let n = out.len();
    // u64 words: 8-byte aligned, as both structs need.
    let words = (size_of::<FiemapHead>() + n * size_of::<FiemapExtent>()) / 8;
    let mut buf = vec![0u64; words];
    let head = FiemapHead {
        fm_start: start,
        fm_length: len,
        fm_flags: FIEMAP_FLAG_SYNC,
        fm_extent_count: u32::try_from(n).map_err(|_| Errno::INVAL)?,
        ..FiemapHead::default()
    };
    let base = buf.as_mut_ptr().cast::<u8>();
    // SAFETY: `buf` holds the head and `n` extents, 8-byte aligned; the
    // head is written at its start.
    unsafe { base.cast::<FiemapHead>().write(head) };
    // SAFETY: FS_IOC_FIEMAP reads the head and writes the head's
    // fm_mapped_extents and at most fm_extent_count (= n) extents after
    // it, all inside `buf`.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_fd().as_raw_fd() as usize,
            linux_raw_sys::ioctl::FS_IOC_FIEMAP as usize,
            base as usize,
        )
    };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(-ret as i32));
    }
    // SAFETY: the head lies at the start of `buf`, written by the kernel.
    let mapped = unsafe { base.cast::<FiemapHead>().read() }.fm_mapped_extents as usize;
    let mapped = mapped.min(n);
    for (i, slot) in out.iter_mut().enumerate().take(mapped) {
        let off = size_of::<FiemapHead>() + i * size_of::<FiemapExtent>();
        // SAFETY: extent `i` < n lies inside `buf`, 8-byte aligned.
        let e = unsafe { base.add(off).cast::<FiemapExtent>().read() };
        *slot = Extent {
            logical: e.fe_logical,
            length: e.fe_length,
            flags: e.fe_flags,
        };
    }
    Ok(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn extents_of_a_sparse_file_skip_its_holes() {
        let dir = std::env::temp_dir().join(format!("criu-fiemap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sparse");
        let f = std::fs::File::create(&path).unwrap();
        f.write_all_at(&[1u8; 4096], 1 << 20).unwrap();
        f.set_len(4 << 20).unwrap();
        let mut out = [Extent::default(); 8];
        match extents(&f, 0, 4 << 20, &mut out) {
            Ok(n) => {
                assert_eq!(n, 1, "{:?}", &out[..n]);
                assert_eq!(out[0].logical, 1 << 20);
                assert!(out[0].length >= 4096);
            }
            // tmpfs and some others have no FIEMAP.
            Err(Errno::OPNOTSUPP) => {}
            Err(e) => panic!("FIEMAP: {e}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
