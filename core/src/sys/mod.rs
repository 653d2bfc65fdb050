//! The small unsafe syscall layer: safe, typed wrappers for the system calls
//! that rustix does not cover. Every `unsafe` block in core outside the blob
//! loader lives here, each with a `// SAFETY:` line.

pub mod anonfd;
pub mod clone3;
pub mod dontfork;
pub mod fds;
pub mod fiemap;
pub mod fown;
pub mod kcmp;
pub mod kconst;
pub mod mount_child;
pub mod netlink;
pub mod own_vdso;
pub mod pagemap_scan;
pub mod plain;
pub mod prefault;
pub mod probe;
pub mod probe_child;
pub mod ptrace;
pub mod sched;
pub mod shared_mapping;
pub mod sockopt;
pub mod sysvipc;
pub mod tty;
pub mod uffd;
pub mod vm_rw;
pub mod wait;

/// A raw system call's return: `-errno` on failure, the value otherwise.
pub(crate) fn ret(r: isize) -> Result<usize, rustix::io::Errno> {
    if r < 0 {
        Err(rustix::io::Errno::from_raw_os_error(-r as i32))
    } else {
        Ok(r as usize)
    }
}
