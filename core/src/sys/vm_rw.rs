//! `process_vm_readv(2)`: reading another process's memory without
//! stopping it (pre-dump's `read` mode).

use rustix::io::Errno;

/// `struct iovec` as the kernel reads it.
#[repr(C)]
struct IoVec {
    base: usize,
    len: usize,
}

/// Read `buf.len()` bytes of task `pid` at `addr` into `buf`: how many
/// were read (less when a page on the way cannot be read: unmapped, or
/// not readable).
pub fn read_at(pid: i32, addr: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    let local = IoVec {
        base: buf.as_mut_ptr() as usize,
        len: buf.len(),
    };
    let remote = IoVec {
        base: addr as usize,
        len: buf.len(),
    };
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`
    // (the one local iovec) and only reads the other task's memory.
    let ret = unsafe {
        criu_arch::syscall6(
            criu_arch::nr::PROCESS_VM_READV,
            pid as usize,
            &local as *const IoVec as usize,
            1,
            &remote as *const IoVec as usize,
            1,
            0,
        )
    };
    if ret < 0 {
        return Err(Errno::from_raw_os_error(-ret as i32));
    }
    Ok(ret as usize)
}
