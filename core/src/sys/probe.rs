//! System calls only `criu check` makes, to learn whether the kernel has a
//! feature (CRIU's `cr-check.c` and `kerndat.c` probes): each runs on
//! throwaway objects of this process and leaves nothing behind.
//!
//! Constants come from linux-raw-sys, or [`super::kconst`] for the few it
//! does not export.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use linux_raw_sys::{general as raw, ioctl, prctl};
use rustix::io::Errno;

use super::ret as result;

use super::kconst as uapi;

/// An ioctl whose argument is an integer, not a pointer.
fn ioctl_val(fd: impl AsFd, req: u32, arg: usize) -> Result<usize, Errno> {
    // SAFETY: the requests passed here take an integer argument (or none):
    // the kernel reads and writes no memory of ours.
    result(unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_fd().as_raw_fd() as usize,
            req as usize,
            arg,
        )
    })
}

/// `TFD_IOC_SET_TICKS` with a NULL argument: `EFAULT` means the kernel has
/// the ioctl (it tried to read the ticks), `ENOTTY` that it has not.
pub fn timerfd_set_ticks_null(fd: impl AsFd) -> Result<(), Errno> {
    ioctl_val(fd, ioctl::TFD_IOC_SET_TICKS, 0).map(drop)
}

/// `TUNSETIFINDEX` on a tun fd not attached to a device yet.
pub fn tun_set_ifindex(fd: impl AsFd, index: u32) -> Result<(), Errno> {
    // SAFETY: the kernel reads one u32 from `index`, alive across the call.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::IOCTL,
            fd.as_fd().as_raw_fd() as usize,
            ioctl::TUNSETIFINDEX as usize,
            &index as *const u32 as usize,
        )
    };
    result(ret).map(drop)
}

/// `SIOCGSKNS`: the network namespace of a socket (or tun file) as an fd.
pub fn socket_netns(fd: impl AsFd) -> Result<OwnedFd, Errno> {
    ioctl_val(fd, uapi::SIOCGSKNS, 0).map(|fd| {
        // SAFETY: the ioctl returned a new descriptor that nothing owns.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    })
}

/// `SIOCUNIXFILE`: an `O_PATH` fd of a unix socket's file (`ENOENT` for an
/// unbound socket on kernels that have the ioctl).
pub fn unix_socket_file(fd: impl AsFd) -> Result<OwnedFd, Errno> {
    ioctl_val(fd, uapi::SIOCUNIXFILE, 0).map(|fd| {
        // SAFETY: the ioctl returned a new descriptor that nothing owns.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    })
}

/// `TIOCSPTLCK`: lock (or unlock) a pty master's slave.
pub fn set_pty_lock(fd: impl AsFd, locked: bool) -> Result<(), Errno> {
    super::tty::set_int(fd, super::tty::TIOCSPTLCK, i32::from(locked))
}

/// `fcntl(F_GETOWNER_UIDS)`: the real and effective uid of a file's owner.
pub fn getowner_uids(fd: impl AsFd) -> Result<[u32; 2], Errno> {
    let mut uids = [0u32; 2];
    // SAFETY: the kernel writes two u32s to `uids`, alive across the call.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::FCNTL,
            fd.as_fd().as_raw_fd() as usize,
            raw::F_GETOWNER_UIDS as usize,
            uids.as_mut_ptr() as usize,
        )
    };
    result(ret).map(|_| uids)
}

/// `vmsplice` of one byte (an unaligned, sub-page buffer) into a pipe with
/// `SPLICE_F_GIFT | SPLICE_F_NONBLOCK`, as the parasite sends pages.
pub fn vmsplice_one_byte(pipe_wr: impl AsFd) -> Result<usize, Errno> {
    let byte = [0u8; 1];
    let iov = [byte.as_ptr() as usize, byte.len()];
    // SAFETY: the kernel reads one iovec from `iov` and pins the byte it
    // points to; both outlive the call, and the pipe only keeps a
    // reference the caller drops (by closing the pipe) before `byte` goes.
    let ret = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::VMSPLICE,
            pipe_wr.as_fd().as_raw_fd() as usize,
            iov.as_ptr() as usize,
            1,
            (raw::SPLICE_F_GIFT | raw::SPLICE_F_NONBLOCK) as usize,
        )
    };
    result(ret)
}

/// A `prctl` with integer arguments only.
fn prctl_int(option: u32, a2: usize, a3: usize) -> Result<usize, Errno> {
    // SAFETY: the options used with this take integers and touch no memory
    // of ours (callers below pass pointers through `prctl_out` instead).
    result(unsafe { criu_arch::syscall5(criu_arch::nr::PRCTL, option as usize, a2, a3, 0, 0) })
}

/// `PR_GET_TID_ADDRESS`: this thread's `clear_child_tid` address.
pub fn get_tid_address() -> Result<usize, Errno> {
    let mut addr = 0usize;
    // SAFETY: the kernel writes one pointer-sized word to `addr` (the
    // second prctl argument), alive across the call.
    result(unsafe {
        criu_arch::syscall5(
            criu_arch::nr::PRCTL,
            prctl::PR_GET_TID_ADDRESS as usize,
            &mut addr as *mut usize as usize,
            0,
            0,
            0,
        )
    })
    .map(|_| addr)
}

/// `PR_SET_MM, PR_SET_MM_MAP_SIZE`: the size of `struct prctl_mm_map` (no
/// privilege needed; restore sets the whole mm map with it).
pub fn mm_map_size() -> Result<u32, Errno> {
    let mut size = 0u32;
    // SAFETY: PR_SET_MM_MAP_SIZE writes one u32 to the third argument.
    let ret = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::PRCTL,
            prctl::PR_SET_MM as usize,
            prctl::PR_SET_MM_MAP_SIZE as usize,
            &mut size as *mut u32 as usize,
            0,
            0,
        )
    };
    result(ret).map(|_| size)
}

/// `PR_TIMER_CREATE_RESTORE_IDS_GET`: whether `timer_create` takes the
/// timer id from its argument (`EINVAL` on kernels without the prctl).
pub fn timer_create_restore_ids() -> Result<bool, Errno> {
    prctl_int(
        prctl::PR_TIMER_CREATE_RESTORE_IDS,
        prctl::PR_TIMER_CREATE_RESTORE_IDS_GET as usize,
        0,
    )
    .map(|v| v != 0)
}

/// The size of `siginfo_t` on every Linux architecture.
const SIGINFO_SIZE: usize = 128;

/// Queues a signal with a positive `si_code` (as restore queues a dumped
/// pending signal) to this thread with `rt_tgsigqueueinfo`, the signal
/// blocked meanwhile, and takes it back with `rt_sigtimedwait`. The
/// thread's signal mask is as before afterwards; nothing is delivered.
pub fn sigqueueinfo_to_self(sig: u32) -> Result<(), Errno> {
    let bit = 1u64 << (sig - 1);
    let mut old = 0u64;
    // SAFETY: rt_sigprocmask reads 8 bytes from `bit` and writes 8 to `old`.
    result(unsafe {
        criu_arch::syscall4(
            criu_arch::nr::RT_SIGPROCMASK,
            raw::SIG_BLOCK as usize,
            &bit as *const u64 as usize,
            &mut old as *mut u64 as usize,
            8,
        )
    })?;
    let mut info = [0u8; SIGINFO_SIZE];
    info[..4].copy_from_slice(&(sig as i32).to_ne_bytes()); // si_signo
    info[8..12].copy_from_slice(&1i32.to_ne_bytes()); // si_code
    let pid = rustix::process::getpid().as_raw_nonzero().get() as usize;
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as usize;
    // SAFETY: the kernel reads one siginfo (128 bytes) from `info`.
    let queued = result(unsafe {
        criu_arch::syscall4(
            criu_arch::nr::RT_TGSIGQUEUEINFO,
            pid,
            tid,
            sig as usize,
            info.as_mut_ptr() as usize,
        )
    });
    if queued.is_ok() {
        let zero = [0i64; 2];
        let mut got = [0u8; SIGINFO_SIZE];
        // SAFETY: reads the set (8 bytes) and a zero timespec, writes one
        // siginfo to `got`; all live across the call.
        let _ = unsafe {
            criu_arch::syscall4(
                criu_arch::nr::RT_SIGTIMEDWAIT,
                &bit as *const u64 as usize,
                got.as_mut_ptr() as usize,
                zero.as_ptr() as usize,
                8,
            )
        };
    }
    // SAFETY: restores the mask saved above (reads 8 bytes from `old`).
    unsafe {
        criu_arch::syscall4(
            criu_arch::nr::RT_SIGPROCMASK,
            raw::SIG_SETMASK as usize,
            &old as *const u64 as usize,
            0,
            8,
        )
    };
    queued.map(drop)
}

/// An AIO context (`io_setup`), destroyed on drop.
pub struct AioContext {
    ctx: usize,
}

impl AioContext {
    /// `io_setup(nr_events)`.
    pub fn setup(nr_events: u32) -> Result<AioContext, Errno> {
        let mut ctx = 0usize;
        // SAFETY: the kernel writes the context id (a word) to `ctx`.
        result(unsafe {
            criu_arch::syscall2(
                criu_arch::nr::IO_SETUP,
                nr_events as usize,
                &mut ctx as *mut usize as usize,
            )
        })?;
        Ok(AioContext { ctx })
    }

    /// The ring's address (the context id is its address).
    pub fn addr(&self) -> usize {
        self.ctx
    }

    /// Moves the ring (`len` bytes) to a fresh anonymous mapping with
    /// `mremap(MREMAP_FIXED)`, as restore moves a dumped ring into place,
    /// then asks for events through the new address: whether the kernel
    /// followed the move.
    pub fn remap_and_poll(&mut self, len: usize) -> Result<(), (&'static str, Errno)> {
        // SAFETY: a fresh private anonymous mapping; nothing else uses it.
        let new = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .map_err(|e| ("Can't find place for new AIO ring", e))?;
        // SAFETY: moves the kernel's AIO ring mapping (owned by this context,
        // never touched as Rust memory) over the mapping just made.
        let moved = unsafe {
            rustix::mm::mremap_fixed(
                self.ctx as *mut _,
                len,
                len,
                rustix::mm::MremapFlags::MAYMOVE,
                new,
            )
        };
        if let Err(e) = moved {
            // SAFETY: the placeholder mapping made above, used by nothing.
            let _ = unsafe { rustix::mm::munmap(new, len) };
            return Err(("Can't remap AIO ring", e));
        }
        self.ctx = new as usize;
        // One `struct io_event` (4 u64s) for the kernel to fill.
        let mut events = [0u64; 4];
        // SAFETY: min 0, max 1 events: the kernel writes at most one
        // io_event to `events`, alive across the call; no timeout.
        let ret = unsafe {
            criu_arch::syscall5(
                criu_arch::nr::IO_GETEVENTS,
                self.ctx,
                0,
                1,
                events.as_mut_ptr() as usize,
                0,
            )
        };
        result(ret)
            .map(drop)
            .map_err(|e| ("AIO remap doesn't work properly", e))
    }
}

impl Drop for AioContext {
    fn drop(&mut self) {
        // SAFETY: destroys our own context (and unmaps its ring).
        unsafe { criu_arch::syscall1(criu_arch::nr::IO_DESTROY, self.ctx) };
    }
}

/// `unshare(flags)` for the calling thread only (`CLONE_NEWNET`,
/// `CLONE_FS | CLONE_NEWNS`): for probes that run on a thread made for
/// them, whose namespaces end with it.
pub fn unshare_this_thread(flags: u32) -> Result<(), Errno> {
    // SAFETY: namespaces and the fs struct (cwd, root, umask) are state of
    // the kernel task; no Rust memory depends on them. Other threads keep
    // theirs: only the caller's task changes.
    result(unsafe { criu_arch::syscall1(criu_arch::nr::UNSHARE, flags as usize) }).map(drop)
}

/// `NS_GET_PARENT` on a user or pid namespace file: the namespace one
/// level up (`EPERM` when that is outside the caller's reach).
pub fn ns_get_parent(fd: impl AsFd) -> Result<OwnedFd, Errno> {
    let raw = ioctl_val(fd, ioctl::NS_GET_PARENT, 0)?;
    // SAFETY: NS_GET_PARENT returns a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
}
