//! Feature probes that must run in a throwaway child process: what they do
//! would change this process for good (an extra vDSO, moved special
//! mappings, a seccomp filter, new namespaces). As in [`super::clone3`],
//! each child's whole life is raw syscalls prepared before the fork (no
//! allocation, no locks: this process may have other threads), ending in
//! `exit_group`; its exit status is its answer.

use linux_raw_sys::general as raw;
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions};

use super::clone3::{Forked, child_exit, fork};

/// How a probe child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(u32),
    Killed(u32),
}

pub(super) fn wait_child(pid: Pid) -> Result<ChildEnd, Errno> {
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, st))) => {
                if let Some(code) = st.exit_status() {
                    return Ok(ChildEnd::Exited(code as u32));
                }
                if let Some(sig) = st.terminating_signal() {
                    return Ok(ChildEnd::Killed(sig as u32));
                }
            }
            Ok(None) => {}
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Runs `body` in a child (see the module docs for what it may do) and
/// waits for it.
///
/// # Safety
/// `body` may only make raw syscalls on memory prepared before the call,
/// and should end with [`child_exit`] (returning exits with status 127).
pub(super) unsafe fn in_child(body: impl FnOnce()) -> Result<ChildEnd, Errno> {
    // SAFETY: the child runs only `body`, which the caller vouches for.
    match unsafe { fork() }? {
        Forked::Child => {
            body();
            child_exit(127)
        }
        Forked::Parent(pid) => wait_child(pid),
    }
}

/// The raw result of a syscall as an exit code: 0 for success, the errno
/// (always below 256) for a failure.
pub(super) fn exit_code(ret: isize) -> usize {
    if ret < 0 { (-ret) as usize & 0xff } else { 0 }
}

/// x86 `arch_prctl(ARCH_MAP_VDSO_32, 0)` in a child (so no second vDSO
/// lands in this process): `EEXIST` (a vDSO is mapped already) or success
/// means the kernel can map a vDSO where restore wants it. Elsewhere the
/// call does not exist: `Ok(false)`.
pub fn can_map_vdso() -> Result<bool, Errno> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the child makes one arch_prctl with integer arguments and
        // exits with its result.
        let end = unsafe {
            in_child(|| {
                let ret = criu_arch::syscall2(
                    criu_arch::nr::ARCH_PRCTL,
                    super::kconst::ARCH_MAP_VDSO_32 as usize,
                    0,
                );
                child_exit(exit_code(ret))
            })
        }?;
        Ok(matches!(end, ChildEnd::Exited(0))
            || end == ChildEnd::Exited(Errno::EXIST.raw_os_error() as u32))
    }
    #[cfg(not(target_arch = "x86_64"))]
    Ok(false)
}

/// A do-nothing signal handler: its return goes through the restorer
/// (`SA_RESTORER`), the path a moved vDSO would break on some arches.
extern "C" fn ignore_signal(_: i32) {}

/// CRIU's special-mapping check: a child moves the given special mappings
/// (`[vdso]`, `[vvar]`, ... as `(start, len)`) to a new place, takes a
/// signal with a handler and returns from it, then exits 0. A kernel that
/// does not follow such a move kills the child on the signal's return.
pub fn special_mappings_move(vmas: &[(usize, usize)]) -> Result<ChildEnd, Errno> {
    let total: usize = vmas.iter().map(|v| v.1).sum();
    let mut moves = [(0usize, 0usize); 8];
    let n = vmas.len().min(moves.len());
    moves[..n].copy_from_slice(&vmas[..n]);
    let act = criu_arch::KSigaction {
        handler: ignore_signal as *const () as usize as u64,
        flags: criu_arch::SA_RESTORER,
        restorer: criu_arch::sa_restorer(criu_arch::SA_RESTORER),
        mask: 0,
    };
    // SAFETY: the child makes raw syscalls on `act` and `moves` (copied
    // with the address space at the fork) and exits.
    unsafe {
        in_child(move || {
            let sig = raw::SIGUSR1 as usize;
            let ok = criu_arch::syscall4(
                criu_arch::nr::RT_SIGACTION,
                sig,
                &act as *const criu_arch::KSigaction as usize,
                0,
                8,
            );
            if ok < 0 {
                child_exit(2);
            }
            // `sys_mmap`, not a raw `MMAP`: s390x's mmap takes a pointer to
            // an argument block.
            let lot = criu_arch::sys_mmap(
                0,
                total,
                raw::PROT_NONE as usize,
                (raw::MAP_PRIVATE | raw::MAP_ANONYMOUS) as usize,
                usize::MAX,
                0,
            );
            if lot < 0 {
                child_exit(3);
            }
            let mut at = lot as usize;
            for &(start, len) in &moves[..n] {
                let ret = criu_arch::syscall5(
                    criu_arch::nr::MREMAP,
                    start,
                    len,
                    len,
                    (raw::MREMAP_FIXED | raw::MREMAP_MAYMOVE) as usize,
                    at,
                );
                if ret as usize != at {
                    child_exit(1);
                }
                at += len;
            }
            let me = criu_arch::syscall0(criu_arch::nr::GETPID);
            criu_arch::syscall2(criu_arch::nr::KILL, me as usize, sig);
            child_exit(0)
        })
    }
}

/// A parked child (see [`super::clone3::spawn_parked_child`]) that first
/// installs a seccomp filter allowing every syscall: something for
/// `PTRACE_SECCOMP_GET_FILTER` to read. Returns once the filter is in
/// place (the child says so through a pipe). The caller kills and reaps
/// it.
pub fn spawn_parked_child_with_seccomp() -> Result<Pid, Errno> {
    // BPF_RET | BPF_K with SECCOMP_RET_ALLOW: one instruction.
    const BPF_RET_K: u16 = 0x06;
    let allow = u64::from(linux_raw_sys::ptrace::SECCOMP_RET_ALLOW);
    let filter: [u64; 1] = [u64::from(BPF_RET_K) | (allow << 32)];
    // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    let prog: [usize; 2] = [1, filter.as_ptr() as usize];
    let (rd, wr) = rustix::pipe::pipe()?;
    let wr_fd = std::os::fd::AsRawFd::as_raw_fd(&wr) as usize;
    // SAFETY: the child's branch only makes raw syscalls on `prog`,
    // `filter` and a local (copied at the fork) and never returns.
    let pid = match unsafe { fork() }? {
        Forked::Parent(pid) => pid,
        Forked::Child => {
            // SAFETY: integer arguments, then the filter program above.
            let ret = unsafe {
                criu_arch::syscall3(
                    criu_arch::nr::SECCOMP,
                    linux_raw_sys::ptrace::SECCOMP_SET_MODE_FILTER as usize,
                    0,
                    prog.as_ptr() as usize,
                )
            };
            if ret < 0 {
                child_exit(1);
            }
            let ready = [1u8];
            // SAFETY: writes one byte from `ready` to our end of the pipe.
            unsafe { criu_arch::syscall3(criu_arch::nr::WRITE, wr_fd, ready.as_ptr() as usize, 1) };
            super::clone3::park()
        }
    };
    drop(wr);
    let mut got = [0u8; 1];
    match rustix::io::read(&rd, &mut got) {
        Ok(1) => Ok(pid),
        other => {
            // It died before its filter was in: reap it.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = wait_child(pid);
            Err(other.err().unwrap_or(Errno::CHILD))
        }
    }
}

/// `struct statx` is 256 bytes; `stx_dev_major`/`stx_dev_minor` are the
/// u32s at 136 and 140 (pinned by linux-raw-sys's layout below).
const STATX_SIZE: usize = 256;
const _: () = assert!(size_of::<raw::statx>() == STATX_SIZE);
const DEV_MAJOR: usize = core::mem::offset_of!(raw::statx, stx_dev_major);
const DEV_MINOR: usize = core::mem::offset_of!(raw::statx, stx_dev_minor);

/// Mounts a detached binfmt_misc (`fsopen`/`fsconfig`/`fsmount`) and
/// writes the mount's statx into `out`. Returns the syscall result and the
/// fsopen and mount fds (-1 when not made) for the caller to close.
///
/// # Safety
/// Raw syscalls only: safe in a forked child.
unsafe fn detached_binfmt_misc(out: &mut [u8; STATX_SIZE]) -> (isize, isize, isize) {
    const FS: &[u8] = b"binfmt_misc\0";
    const EMPTY: &[u8] = b"\0";
    // SAFETY: each call reads the NUL-terminated strings above or writes
    // one statx to `out`.
    unsafe {
        let fs = criu_arch::syscall2(criu_arch::nr::FSOPEN, FS.as_ptr() as usize, 0);
        if fs < 0 {
            return (fs, -1, -1);
        }
        let created = criu_arch::syscall5(
            criu_arch::nr::FSCONFIG,
            fs as usize,
            raw::fsconfig_command::FSCONFIG_CMD_CREATE as usize,
            0,
            0,
            0,
        );
        if created < 0 {
            return (created, fs, -1);
        }
        let mnt = criu_arch::syscall3(criu_arch::nr::FSMOUNT, fs as usize, 0, 0);
        if mnt < 0 {
            return (mnt, fs, -1);
        }
        let ret = criu_arch::syscall5(
            criu_arch::nr::STATX,
            mnt as usize,
            EMPTY.as_ptr() as usize,
            raw::AT_EMPTY_PATH as usize,
            raw::STATX_BASIC_STATS as usize,
            out.as_mut_ptr() as usize,
        );
        (ret, fs, mnt)
    }
}

fn dev_of(st: &[u8]) -> (u32, u32) {
    let word = |at: usize| u32::from_ne_bytes(st[at..at + 4].try_into().unwrap_or([0; 4]));
    (word(DEV_MAJOR), word(DEV_MINOR))
}

/// binfmt_misc sandboxing (6.7+): a binfmt_misc mounted in a new user and
/// mount namespace is an instance of its own, not the host's. `Ok(None)`
/// when binfmt_misc cannot be mounted here at all. As CRIU does, the
/// host's instance is kept mounted (detached) while the child looks, so
/// that both cannot be the same fresh superblock by chance.
pub fn binfmt_misc_sandboxed() -> Result<Option<bool>, Errno> {
    let mut host = [0u8; STATX_SIZE];
    // SAFETY: raw syscalls on `host`; the fds are closed below.
    let (ret, fs, mnt) = unsafe { detached_binfmt_misc(&mut host) };
    let close = |fd: isize| {
        if fd >= 0 {
            // SAFETY: closes an fd the helper opened and nothing else owns.
            unsafe { criu_arch::syscall1(criu_arch::nr::CLOSE, fd as usize) };
        }
    };
    let answer = if ret < 0 {
        Ok(None)
    } else {
        let host_dev = dev_of(&host);
        statx_dev_in_new_userns().map(|d| d.map(|d| d != host_dev))
    };
    close(mnt);
    close(fs);
    answer
}

/// The binfmt_misc device seen by a child after
/// `unshare(CLONE_NEWUSER | CLONE_NEWNS)` (`None`: it could not mount
/// one), passed back through a pipe.
fn statx_dev_in_new_userns() -> Result<Option<(u32, u32)>, Errno> {
    let (rd, wr) = rustix::pipe::pipe()?;
    let wr_fd = std::os::fd::AsRawFd::as_raw_fd(&wr) as usize;
    let mut st = [0u8; STATX_SIZE];
    // SAFETY: the child makes raw syscalls on its copy of `st` and writes
    // 8 bytes of it to the pipe, then exits.
    let end = unsafe {
        in_child(move || {
            let ret = criu_arch::syscall1(
                criu_arch::nr::UNSHARE,
                (raw::CLONE_NEWUSER | raw::CLONE_NEWNS) as usize,
            );
            if ret < 0 {
                child_exit(exit_code(ret));
            }
            let (ret, _, _) = detached_binfmt_misc(&mut st);
            if ret < 0 {
                child_exit(exit_code(ret));
            }
            let mut dev = [0u8; 8];
            let mut i = 0;
            while i < 4 {
                dev[i] = st[DEV_MAJOR + i];
                dev[4 + i] = st[DEV_MINOR + i];
                i += 1;
            }
            let n = criu_arch::syscall3(criu_arch::nr::WRITE, wr_fd, dev.as_ptr() as usize, 8);
            child_exit(if n == 8 { 0 } else { 5 })
        })
    }?;
    drop(wr);
    if end != ChildEnd::Exited(0) {
        return Ok(None);
    }
    let mut got = [0u8; 8];
    if rustix::io::read(&rd, &mut got)? != 8 {
        return Ok(None);
    }
    let word = |b: &[u8]| u32::from_ne_bytes(b.try_into().unwrap_or([0; 4]));
    Ok(Some((word(&got[..4]), word(&got[4..]))))
}

/// `clone3(CLONE_NEWPID | CLONE_PARENT)` from a child: the new task (the
/// first of a new PID namespace) becomes *our* child, a sibling of the
/// one that made it, and exits at once; we reap both. Whether the kernel
/// accepts the two flags together.
pub fn clone_parent_newpid() -> Result<(), Errno> {
    let (rd, wr) = rustix::pipe::pipe()?;
    let wr_fd = std::os::fd::AsRawFd::as_raw_fd(&wr) as usize;
    let mut args = super::clone3::fork_args();
    args.flags = u64::from(raw::CLONE_NEWPID | raw::CLONE_PARENT);
    // clone3 wants no exit signal with CLONE_PARENT: the new task takes
    // its creator's (SIGCHLD, from the fork above).
    args.exit_signal = 0;
    // SAFETY: the child makes raw syscalls on its copies of `args` and a
    // local, writes 4 bytes to the pipe and exits; the new task exits.
    let end = unsafe {
        in_child(move || {
            let ret = match super::clone3::clone3(&args) {
                Ok(Forked::Child) => child_exit(0),
                Ok(Forked::Parent(pid)) => pid.as_raw_nonzero().get(),
                Err(e) => child_exit(e.raw_os_error() as usize & 0xff),
            };
            let bytes = ret.to_ne_bytes();
            let n = criu_arch::syscall3(criu_arch::nr::WRITE, wr_fd, bytes.as_ptr() as usize, 4);
            child_exit(if n == 4 { 0 } else { 5 })
        })
    }?;
    drop(wr);
    let mut got = [0u8; 4];
    let n = rustix::io::read(&rd, &mut got).unwrap_or(0);
    if n == 4
        && let Some(pid) = Pid::from_raw(i32::from_ne_bytes(got))
    {
        // Our child now: reap it.
        let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
    }
    match end {
        ChildEnd::Exited(0) => Ok(()),
        ChildEnd::Exited(code) => Err(Errno::from_raw_os_error(code as i32)),
        ChildEnd::Killed(_) => Err(Errno::INTR),
    }
}

/// Which of `tids` have a SysV semaphore undo list: a child (forked
/// without `CLONE_SYSVSEM`, so with none of its own) compares its list
/// with each one's (`kcmp(KCMP_SYSVSEM)`) and writes one byte per tid into
/// a pipe: 0 the same (none), 1 another (one), 2 + errno (below 256) its
/// failure. (Criu itself cannot be the yardstick: its threads share a
/// list the kernel made for them.)
pub fn sem_undo_lists(tids: &[i32]) -> Result<Vec<Result<bool, Errno>>, Errno> {
    use std::io::Read;
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let wfd = std::os::fd::AsRawFd::as_raw_fd(&w) as usize;
    // SAFETY: the child makes raw syscalls on `tids` (copied with the
    // address space at the fork) and on the write end, then exits.
    let child = unsafe {
        match fork()? {
            Forked::Child => {
                let me = criu_arch::syscall0(criu_arch::nr::GETPID) as usize;
                for &t in tids {
                    let ret = criu_arch::syscall5(
                        criu_arch::nr::KCMP,
                        me,
                        t as usize,
                        super::kcmp::KcmpType::Sysvsem as usize,
                        0,
                        0,
                    );
                    let b: u8 = match ret {
                        0 => 0,
                        r if r > 0 => 1,
                        r => 2u8.saturating_add(((-r) & 0xff) as u8),
                    };
                    if criu_arch::syscall3(criu_arch::nr::WRITE, wfd, &b as *const u8 as usize, 1)
                        != 1
                    {
                        child_exit(1);
                    }
                }
                child_exit(0)
            }
            Forked::Parent(pid) => pid,
        }
    };
    drop(w);
    let mut answers = Vec::with_capacity(tids.len());
    let read = std::fs::File::from(r).read_to_end(&mut answers);
    let end = wait_child(child)?;
    read.map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    if end != ChildEnd::Exited(0) || answers.len() != tids.len() {
        return Err(Errno::CHILD);
    }
    Ok(answers
        .into_iter()
        .map(|b| match b {
            0 => Ok(false),
            1 => Ok(true),
            e => Err(Errno::from_raw_os_error(i32::from(e - 2))),
        })
        .collect())
}
