//! The system calls the blobs make, one function each, named after the
//! system call: `sys::munmap(addr, len)` instead of
//! `syscall2(nr::MUNMAP, addr, len)`.
//!
//! Each function passes its arguments in the kernel's registers unchanged
//! and returns the kernel's raw result (`-errno` on failure) as `isize`; the
//! callers decide what a failure means. The numbers and the entry
//! instruction are the arch's (`criu_arch::nr`, `criu_arch::syscallN`), and so
//! are the calls whose arguments differ between the architectures
//! (`criu_arch::sys_mmap`, `criu_arch::clone_thread`).
//!
//! The arguments are register-wide integers (`usize`), as the kernel sees
//! them: many of the blobs' arguments are addresses in the task that are no
//! Rust object of the blob (VMAs being mapped or unmapped, the tool's
//! argument area), and the argument blocks give fixed-size integers.
//!
//! # Safety
//! Every function here is `unsafe`: the caller upholds the system call's own
//! contract (pointer arguments valid for what the kernel reads or writes
//! through them, memory being unmapped or remapped not in use, signals and
//! credentials changed only where the blob expects it).

use criu_arch::{nr, syscall0, syscall1, syscall2, syscall3, syscall4, syscall5};

/// Defines `pub unsafe fn name(args...) -> isize` for `nr::NUMBER`, through
/// the `syscallN` entry of its argument count.
macro_rules! syscalls {
    ($( $(#[$doc:meta])* $name:ident = $entry:ident($nr:ident $(, $arg:ident)*); )*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        /// The system call's contract (see the module).
        #[inline(always)]
        pub unsafe fn $name($($arg: usize),*) -> isize {
            // SAFETY: the caller upholds the system call's contract.
            unsafe { $entry(nr::$nr $(, $arg)*) }
        }
    )*};
}

syscalls! {
    // Files and descriptors.
    /// `read(2)`.
    read = syscall3(READ, fd, buf, count);
    /// `write(2)`.
    write = syscall3(WRITE, fd, buf, count);
    /// `pread64(2)`.
    pread64 = syscall4(PREAD64, fd, buf, count, offset);
    /// `openat(2)`.
    openat = syscall4(OPENAT, dirfd, path, flags, mode);
    /// `close(2)`.
    close = syscall1(CLOSE, fd);
    /// `close_range(2)`.
    close_range = syscall3(CLOSE_RANGE, first, last, flags);
    /// `dup3(2)`.
    dup3 = syscall3(DUP3, old, new, flags);
    /// `fcntl(2)`.
    fcntl = syscall2(FCNTL, fd, cmd);
    /// `ioctl(2)`.
    ioctl = syscall3(IOCTL, fd, request, arg);
    /// `userfaultfd(2)`.
    userfaultfd = syscall1(USERFAULTFD, flags);
    /// `pidfd_getfd(2)`.
    pidfd_getfd = syscall3(PIDFD_GETFD, pidfd, target_fd, flags);
    /// `fchdir(2)`.
    fchdir = syscall1(FCHDIR, fd);
    /// `chroot(2)`.
    chroot = syscall1(CHROOT, path);
    /// `umask(2)`.
    umask = syscall1(UMASK, mask);
    /// `vmsplice(2)`.
    vmsplice = syscall4(VMSPLICE, fd, iov, nr_segs, flags);

    // Sockets.
    /// `socket(2)`.
    socket = syscall3(SOCKET, domain, kind, protocol);
    /// `connect(2)`.
    connect = syscall3(CONNECT, fd, addr, addrlen);
    /// `sendmsg(2)`.
    sendmsg = syscall3(SENDMSG, fd, msg, flags);
    /// `recvmsg(2)`.
    recvmsg = syscall3(RECVMSG, fd, msg, flags);

    // Memory.
    /// `brk(2)`.
    brk = syscall1(BRK, addr);
    /// `munmap(2)`.
    munmap = syscall2(MUNMAP, addr, len);
    /// `mprotect(2)`.
    mprotect = syscall3(MPROTECT, addr, len, prot);
    /// `mremap(2)`.
    mremap = syscall5(MREMAP, old_addr, old_len, new_len, flags, new_addr);
    /// `madvise(2)`.
    madvise = syscall3(MADVISE, addr, len, advice);
    /// `membarrier(2)`.
    membarrier = syscall3(MEMBARRIER, cmd, flags, cpu_id);
    /// `rseq(2)`.
    rseq = syscall4(RSEQ, rseq, len, flags, sig);

    // Processes and threads.
    /// `getpid(2)`.
    getpid = syscall0(GETPID);
    /// `getppid(2)`.
    getppid = syscall0(GETPPID);
    /// `gettid(2)`.
    gettid = syscall0(GETTID);
    /// `getsid(2)`.
    getsid = syscall1(GETSID, pid);
    /// `setsid(2)`.
    setsid = syscall0(SETSID);
    /// `unshare(2)`.
    unshare = syscall1(UNSHARE, flags);
    /// `shmat(2)`.
    shmat = syscall3(SHMAT, shmid, addr, flags);
    /// `getpgid(2)`.
    getpgid = syscall1(GETPGID, pid);
    /// `setpgid(2)`.
    setpgid = syscall2(SETPGID, pid, pgid);
    /// `clone3(2)`.
    clone3 = syscall2(CLONE3, args, size);
    /// `wait4(2)`.
    wait4 = syscall4(WAIT4, pid, status, options, rusage);
    /// `exit_group(2)`.
    exit_group = syscall1(EXIT_GROUP, status);
    /// `futex(2)` with no timeout beyond `timeout` (the fourth argument).
    futex = syscall4(FUTEX, uaddr, op, val, timeout);
    /// `prctl(2)`; unused arguments are 0 (some options require it).
    prctl = syscall5(PRCTL, option, arg2, arg3, arg4, arg5);
    /// `seccomp(2)`.
    seccomp = syscall3(SECCOMP, op, flags, args);
    /// `personality(2)`.
    personality = syscall1(PERSONALITY, persona);
    /// `setpriority(2)`.
    setpriority = syscall3(SETPRIORITY, which, who, prio);
    /// `sched_setscheduler(2)`.
    sched_setscheduler = syscall3(SCHED_SETSCHEDULER, pid, policy, param);
    /// `prlimit64(2)`.
    prlimit64 = syscall4(PRLIMIT64, pid, resource, new_limit, old_limit);

    // Credentials.
    /// `capget(2)`.
    capget = syscall2(CAPGET, header, data);
    /// `capset(2)`.
    capset = syscall2(CAPSET, header, data);
    /// `getresuid(2)`.
    getresuid = syscall3(GETRESUID, ruid, euid, suid);
    /// `getresgid(2)`.
    getresgid = syscall3(GETRESGID, rgid, egid, sgid);
    /// `setresuid(2)`.
    setresuid = syscall3(SETRESUID, ruid, euid, suid);
    /// `setresgid(2)`.
    setresgid = syscall3(SETRESGID, rgid, egid, sgid);
    /// `setfsuid(2)` (returns the previous fsuid; `-1` only reads it).
    setfsuid = syscall1(SETFSUID, fsuid);
    /// `setfsgid(2)` (returns the previous fsgid; `-1` only reads it).
    setfsgid = syscall1(SETFSGID, fsgid);
    /// `getgroups(2)`.
    getgroups = syscall2(GETGROUPS, size, list);
    /// `setgroups(2)`.
    setgroups = syscall2(SETGROUPS, size, list);

    // Signals.
    /// `kill(2)`.
    kill = syscall2(KILL, pid, sig);
    /// `rt_sigaction(2)`.
    rt_sigaction = syscall4(RT_SIGACTION, sig, act, oldact, sigsetsize);
    /// `rt_sigprocmask(2)`.
    rt_sigprocmask = syscall4(RT_SIGPROCMASK, how, set, oldset, sigsetsize);
    /// `rt_sigqueueinfo(2)`.
    rt_sigqueueinfo = syscall3(RT_SIGQUEUEINFO, pid, sig, info);
    /// `rt_tgsigqueueinfo(2)`.
    rt_tgsigqueueinfo = syscall4(RT_TGSIGQUEUEINFO, tgid, tid, sig, info);
    /// `sigaltstack(2)`.
    sigaltstack = syscall2(SIGALTSTACK, ss, old_ss);

    // Timers.
    /// `getitimer(2)`.
    getitimer = syscall2(GETITIMER, which, value);
    /// `setitimer(2)`.
    setitimer = syscall3(SETITIMER, which, new_value, old_value);
    /// `timer_create(2)`.
    timer_create = syscall3(TIMER_CREATE, clockid, sevp, timerid);
    /// `timer_settime(2)`.
    timer_settime = syscall4(TIMER_SETTIME, timerid, flags, new_value, old_value);
    /// `timer_gettime(2)`.
    timer_gettime = syscall2(TIMER_GETTIME, timerid, curr_value);
    /// `timer_getoverrun(2)`.
    timer_getoverrun = syscall1(TIMER_GETOVERRUN, timerid);
    /// `timer_delete(2)`.
    timer_delete = syscall1(TIMER_DELETE, timerid);
}
