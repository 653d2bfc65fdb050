//! Signal-related kernel ABI that is identical on x86_64, aarch64, ppc64le and
//! s390x: the `struct sigaction` the raw `rt_sigaction` syscall takes, `stack_t`,
//! `siginfo_t` (128 bytes) and the flag values.

/// Size of the kernel signal set in bytes (the `sigsetsize` argument of
/// `rt_sigaction`/`rt_sigprocmask`).
pub const KSIGSET_SIZE: usize = 8;
/// Highest signal number.
pub const NSIG: usize = 64;
/// Size of `siginfo_t`.
pub const SIGINFO_SIZE: usize = 128;

/// `SA_NOCLDSTOP`.
pub const SA_NOCLDSTOP: u64 = 0x0000_0001;
/// `SA_NOCLDWAIT`.
pub const SA_NOCLDWAIT: u64 = 0x0000_0002;
/// `SA_SIGINFO`: three-argument handler.
pub const SA_SIGINFO: u64 = 0x0000_0004;
/// `SA_RESTORER`: `sa_restorer` holds the return trampoline.
pub const SA_RESTORER: u64 = 0x0400_0000;
/// `SA_ONSTACK`.
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// `SA_RESTART`.
pub const SA_RESTART: u64 = 0x1000_0000;
/// `SA_NODEFER`.
pub const SA_NODEFER: u64 = 0x4000_0000;
/// `SA_RESETHAND`.
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// `SIG_DFL` handler value.
pub const SIG_DFL: u64 = 0;
/// `SIG_IGN` handler value.
pub const SIG_IGN: u64 = 1;

/// `SIG_BLOCK` for `rt_sigprocmask`.
pub const SIG_BLOCK: usize = 0;
/// `SIG_UNBLOCK` for `rt_sigprocmask`.
pub const SIG_UNBLOCK: usize = 1;
/// `SIG_SETMASK` for `rt_sigprocmask`.
pub const SIG_SETMASK: usize = 2;

/// `SS_ONSTACK` in `stack_t::flags`.
pub const SS_ONSTACK: i32 = 1;
/// `SS_DISABLE` in `stack_t::flags`.
pub const SS_DISABLE: i32 = 2;
/// `SS_AUTODISARM` in `stack_t::flags`.
pub const SS_AUTODISARM: i32 = 1 << 31;

/// `SIGTRAP`'s `si_code` for a breakpoint (`TRAP_BRKPT`).
pub const TRAP_BRKPT: i32 = 1;
/// `SI_KERNEL`: signal sent by the kernel (x86 `int3` reports this).
pub const SI_KERNEL: i32 = 0x80;
/// `SI_USER`.
pub const SI_USER: i32 = 0;
/// `SI_TKILL`.
pub const SI_TKILL: i32 = -6;

/// Signal numbers that are the same on every supported arch.
pub mod sig {
    pub const SIGHUP: usize = 1;
    pub const SIGINT: usize = 2;
    pub const SIGQUIT: usize = 3;
    pub const SIGILL: usize = 4;
    pub const SIGTRAP: usize = 5;
    pub const SIGABRT: usize = 6;
    pub const SIGBUS: usize = 7;
    pub const SIGFPE: usize = 8;
    pub const SIGKILL: usize = 9;
    pub const SIGUSR1: usize = 10;
    pub const SIGSEGV: usize = 11;
    pub const SIGUSR2: usize = 12;
    pub const SIGPIPE: usize = 13;
    pub const SIGALRM: usize = 14;
    pub const SIGTERM: usize = 15;
    pub const SIGSTKFLT: usize = 16;
    pub const SIGCHLD: usize = 17;
    pub const SIGCONT: usize = 18;
    pub const SIGSTOP: usize = 19;
    pub const SIGTSTP: usize = 20;
    pub const SIGTTIN: usize = 21;
    pub const SIGTTOU: usize = 22;
    pub const SIGURG: usize = 23;
    pub const SIGXCPU: usize = 24;
    pub const SIGXFSZ: usize = 25;
    pub const SIGVTALRM: usize = 26;
    pub const SIGPROF: usize = 27;
    pub const SIGWINCH: usize = 28;
    pub const SIGIO: usize = 29;
    pub const SIGPWR: usize = 30;
    pub const SIGSYS: usize = 31;
    pub const SIGRTMIN: usize = 32;
}

/// Bit of signal `signo` (1-based) in a kernel signal set.
pub const fn sigmask_bit(signo: usize) -> u64 {
    if signo == 0 || signo > NSIG {
        0
    } else {
        1u64 << (signo - 1)
    }
}

/// The kernel's `struct sigaction` as the raw `rt_sigaction` syscall reads and
/// writes it (not glibc's, whose mask is 128 bytes and field order differs on
/// some arches). Identical on x86_64, aarch64, ppc64 and s390x.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KSigaction {
    /// `sa_handler` / `sa_sigaction`, or [`SIG_DFL`]/[`SIG_IGN`].
    pub handler: u64,
    /// `SA_*` flags.
    pub flags: u64,
    /// `sa_restorer`: return trampoline, used with [`SA_RESTORER`].
    pub restorer: u64,
    /// Signals blocked while the handler runs.
    pub mask: u64,
}
const _: () = assert!(core::mem::size_of::<KSigaction>() == 32);
const _: () = assert!(core::mem::offset_of!(KSigaction, flags) == 8);
const _: () = assert!(core::mem::offset_of!(KSigaction, restorer) == 16);
const _: () = assert!(core::mem::offset_of!(KSigaction, mask) == 24);

/// `stack_t` (`sigaltstack`), 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackT {
    /// `ss_sp`.
    pub sp: u64,
    /// `ss_flags` (`SS_*`).
    pub flags: i32,
    /// Padding the C layout has implicitly.
    pub _pad: u32,
    /// `ss_size`.
    pub size: u64,
}
const _: () = assert!(core::mem::size_of::<StackT>() == 24);
const _: () = assert!(core::mem::offset_of!(StackT, flags) == 8);
const _: () = assert!(core::mem::offset_of!(StackT, size) == 16);

impl StackT {
    /// A `stack_t` meaning "no alternate signal stack".
    pub const fn disabled() -> Self {
        StackT {
            sp: 0,
            flags: SS_DISABLE,
            _pad: 0,
            size: 0,
        }
    }
}

/// `siginfo_t`, kept opaque apart from the three leading fields all arches
/// share (`si_signo`, `si_errno`, `si_code`); 128 bytes, 8-byte aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Siginfo {
    /// `si_signo`.
    pub signo: i32,
    /// `si_errno`.
    pub errno: i32,
    /// `si_code`.
    pub code: i32,
    /// Union body (pid/uid, fault address, timer id, ...), raw.
    pub rest: [u32; 29],
}
const _: () = assert!(core::mem::size_of::<Siginfo>() == SIGINFO_SIZE);

/// The `sa_restorer` trampoline for a handler installed with `flags`, as
/// an address for [`KSigaction::restorer`]: [`restore_rt`](crate::restore_rt)
/// everywhere, except that s390x builds its old non-RT frame for handlers
/// without [`SA_SIGINFO`], which only plain `sigreturn` unwinds.
pub fn sa_restorer(flags: u64) -> u64 {
    #[cfg(target_arch = "s390x")]
    if flags & SA_SIGINFO == 0 {
        return crate::restore_sigreturn as *const () as usize as u64;
    }
    let _ = flags;
    crate::restore_rt as *const () as usize as u64
}
