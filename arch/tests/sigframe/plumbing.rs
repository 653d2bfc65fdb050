//! Raw signal plumbing shared by the signal-frame tests: `rt_sigaction`
//! with our own restorer, `rt_sigprocmask`, and raising a signal at a known
//! place.

use core::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use criu_arch::{
    KSigaction, SA_RESTORER, SA_SIGINFO, Siginfo, nr, restore_rt, syscall0, syscall3, syscall4,
};

pub type Handler = extern "C" fn(i32, *mut Siginfo, *mut c_void);

pub fn install(signo: usize, handler: Handler) {
    let act = KSigaction {
        handler: handler as *const () as usize as u64,
        flags: SA_SIGINFO | SA_RESTORER,
        restorer: restore_rt as *const () as usize as u64,
        mask: 0,
    };
    let mut old = KSigaction::default();
    // SAFETY: both pointers refer to live KSigaction values of the kernel layout.
    let r = unsafe {
        syscall4(
            nr::RT_SIGACTION,
            signo,
            &act as *const _ as usize,
            &mut old as *mut _ as usize,
            8,
        )
    };
    assert_eq!(r, 0, "rt_sigaction");
}

pub fn sigprocmask(how: usize, set: Option<u64>) -> u64 {
    let mut old = 0u64;
    let set_ptr = set.as_ref().map_or(0, |s| s as *const u64 as usize);
    // SAFETY: valid 8-byte masks or null.
    let r = unsafe {
        syscall4(
            nr::RT_SIGPROCMASK,
            how,
            set_ptr,
            &mut old as *mut u64 as usize,
            8,
        )
    };
    assert_eq!(r, 0, "rt_sigprocmask");
    old
}

/// Send `signo` to the calling thread. Never inlined, so the interrupted pc
/// lies inside this function's code.
#[inline(never)]
pub fn raise(signo: usize, local_addr: &AtomicUsize) {
    let marker = 0u64;
    local_addr.store(&marker as *const u64 as usize, SeqCst);
    // SAFETY: getpid/gettid/tgkill on ourselves; the handler is installed.
    unsafe {
        let pid = syscall0(nr::GETPID) as usize;
        let tid = syscall0(nr::GETTID) as usize;
        let r = syscall3(nr::TGKILL, pid, tid, signo);
        assert_eq!(r, 0);
    }
    std::hint::black_box(&marker);
}
