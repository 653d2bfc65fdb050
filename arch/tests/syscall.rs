//! The raw syscall entry points, compared with what std observes.

use criu_arch::{nr, sys_mmap, syscall0, syscall1, syscall2, syscall3, syscall4};

#[test]
fn getpid_matches_std() {
    // SAFETY: getpid has no arguments and no side effects.
    let pid = unsafe { syscall0(nr::GETPID) };
    assert_eq!(pid, std::process::id() as isize);
}

#[test]
fn gettid_is_positive_and_distinct_per_thread() {
    // SAFETY: gettid has no arguments and no side effects.
    let main = unsafe { syscall0(nr::GETTID) };
    assert!(main > 0);
    // SAFETY: as above.
    let other = std::thread::spawn(|| unsafe { syscall0(nr::GETTID) })
        .join()
        .unwrap();
    assert!(other > 0);
    assert_ne!(main, other);
}

#[test]
fn write_read_through_pipe() {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two ints into `fds`.
    let r = unsafe { syscall2(nr::PIPE2, fds.as_mut_ptr() as usize, 0) };
    assert_eq!(r, 0);
    let msg = b"criu-arch";
    // SAFETY: `msg` is valid for its length; fds[1] is our pipe.
    let w = unsafe { syscall3(nr::WRITE, fds[1] as usize, msg.as_ptr() as usize, msg.len()) };
    assert_eq!(w, msg.len() as isize);
    let mut buf = [0u8; 16];
    // SAFETY: `buf` is writable for its length; fds[0] is our pipe.
    let n = unsafe {
        syscall3(
            nr::READ,
            fds[0] as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    };
    assert_eq!(n, msg.len() as isize);
    assert_eq!(&buf[..msg.len()], msg);
    for fd in fds {
        // SAFETY: closing our own fds.
        assert_eq!(unsafe { syscall1(nr::CLOSE, fd as usize) }, 0);
    }
}

#[test]
fn errors_are_negative_errno() {
    // SAFETY: closing an fd that cannot be open fails with EBADF (9).
    let r = unsafe { syscall1(nr::CLOSE, 999_999) };
    assert_eq!(r, -9);
    let mut buf = [0u8; 4];
    // SAFETY: reading from a bad fd writes nothing.
    let r = unsafe { syscall3(nr::READ, usize::MAX >> 1, buf.as_mut_ptr() as usize, 4) };
    assert_eq!(r, -9);
}

#[test]
fn six_argument_mmap() {
    const PROT_READ: usize = 1;
    const PROT_WRITE: usize = 2;
    const MAP_PRIVATE: usize = 2;
    const MAP_ANONYMOUS: usize = 0x20;
    let len = 3 * 65536;
    // SAFETY: a fresh anonymous mapping; nothing else is affected.
    let p = unsafe {
        sys_mmap(
            0,
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            usize::MAX,
            0,
        )
    };
    assert!(
        p > 0 && (p as usize).is_multiple_of(4096),
        "mmap returned {p}"
    );
    // SAFETY: the mapping is ours and writable.
    unsafe {
        *(p as *mut u64) = 0x1234;
        assert_eq!(*(p as *const u64), 0x1234);
    }
    // SAFETY: unmapping what we mapped.
    assert_eq!(unsafe { syscall2(nr::MUNMAP, p as usize, len) }, 0);
}

#[test]
fn four_argument_rt_sigprocmask_and_kill() {
    // rt_sigprocmask(SIG_BLOCK, NULL, &old, 8) reads the mask.
    let mut old = 0u64;
    // SAFETY: `old` is a writable 8-byte mask.
    let r = unsafe { syscall4(nr::RT_SIGPROCMASK, 0, 0, &mut old as *mut u64 as usize, 8) };
    assert_eq!(r, 0);
    // kill(getpid(), 0) checks permission only.
    // SAFETY: signal 0 is not delivered.
    let r = unsafe { syscall2(nr::KILL, std::process::id() as usize, 0) };
    assert_eq!(r, 0);
}
