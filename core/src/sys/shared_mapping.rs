//! A `MAP_SHARED` mapping of a file in our address space, owned and unmapped
//! on drop: the local view of memory we share with an infected task.

use std::ffi::c_void;
use std::os::fd::AsFd;
use std::ptr::NonNull;

use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

/// A read-write shared mapping of the first `len` bytes of a file.
///
/// Another process may map the same file. The slices handed out are only
/// sound to use while that process cannot write to the memory (for an
/// infected task: while it is stopped under ptrace), which is how the infect
/// code uses them.
#[derive(Debug)]
pub struct SharedMapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl SharedMapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`.
    pub fn map(fd: impl AsFd, len: usize) -> Result<SharedMapping, Errno> {
        if len == 0 {
            return Err(Errno::INVAL);
        }
        // SAFETY: a fresh mapping at an address the kernel picks overlaps
        // nothing of ours; the file's size is the caller's concern (access
        // past the file's end would fault, and callers size it first).
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::FAULT)?;
        Ok(SharedMapping { ptr, len })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is a live mapping we own until drop; see
        // the type's doc for the sharing rule.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only local view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: we own the mapping and no slice borrowed from it outlives
        // `self`. A failure here could only mean a bad range, which ours is not.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

// SAFETY: the mapping is plain memory owned by this value; moving it to
// another thread moves the ownership.
unsafe impl Send for SharedMapping {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_views_of_one_memfd_share_bytes() {
        let fd = rustix::fs::memfd_create("shared-mapping-test", rustix::fs::MemfdFlags::CLOEXEC)
            .unwrap();
        rustix::fs::ftruncate(&fd, 8192).unwrap();
        let mut a = SharedMapping::map(&fd, 8192).unwrap();
        let b = SharedMapping::map(&fd, 8192).unwrap();
        a.as_mut_slice()[4100] = 0x5a;
        assert_eq!(b.as_slice()[4100], 0x5a);
        assert_eq!(b.len(), 8192);
        assert!(SharedMapping::map(&fd, 0).is_err());
    }
}
