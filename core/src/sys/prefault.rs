//! Allocating a file's page-cache pages ahead of a writer, from another
//! thread: fault them in through a short-lived shared mapping
//! (`MADV_POPULATE_WRITE`, Linux 5.14+).
//!
//! On tmpfs, a `write`/`splice` allocates each page under the inode's lock,
//! so writes to one file never run in parallel; page faults take no such
//! lock. A second thread faulting the pages in just ahead of the writer
//! leaves the writer only the copy. Nothing of the file's contents changes:
//! a hole reads as zeros and is allocated as zeros, and a page already
//! there is only mapped and unmapped again.

use std::fs::File;

use rustix::io::Errno;
use rustix::mm::{Advice, MapFlags, ProtFlags};

/// Fault in, writable, the pages of `file` in `[offset, offset + len)`
/// (both page-aligned, inside the file's size), then drop the mapping: the
/// pages stay in the page cache, and our RSS does not keep them. `file`
/// must be open for reading and writing.
pub fn populate_file_range(file: &File, offset: u64, len: usize) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: a fresh mapping at an address the kernel picks; no Rust
    // reference ever points into it, and it is unmapped below.
    let addr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            file,
            offset,
        )?
    };
    // SAFETY: `addr..addr + len` is the mapping made above; populating
    // only faults pages in and leaves their contents as they are.
    let populated = unsafe { rustix::mm::madvise(addr, len, Advice::LinuxPopulateWrite) };
    // SAFETY: unmaps exactly the mapping made above, which nothing uses.
    let unmapped = unsafe { rustix::mm::munmap(addr, len) };
    populated.and(unmapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    #[test]
    fn populates_without_changing_the_contents() {
        let page = rustix::param::page_size();
        let path = std::env::temp_dir().join(format!("prefault-{}", std::process::id()));
        let mut f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create");
        let _ = std::fs::remove_file(&path);
        f.write_all(&vec![7u8; page]).expect("write");
        f.set_len(4 * page as u64).expect("set_len");
        populate_file_range(&f, 0, 4 * page).expect("populate");
        let mut back = Vec::new();
        f.seek(SeekFrom::Start(0)).expect("seek");
        f.read_to_end(&mut back).expect("read");
        assert_eq!(back.len(), 4 * page);
        assert!(back[..page].iter().all(|&b| b == 7));
        assert!(back[page..].iter().all(|&b| b == 0));
    }
}
