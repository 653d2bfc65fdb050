//! Mount calls a restore must make from another process than the tool:
//! a filesystem that shows the namespaces of whoever mounts it (proc, its
//! pid namespace; mqueue, its IPC namespace; sysfs, its network
//! namespace), mounted from a child born in or joined to the restored
//! tree's; and the final `pivot_root` of the restored mount namespace,
//! which moves every task whose root is the namespace's old root and so
//! must not be made by the tool. As in [`super::probe_child`], each
//! child's whole life is raw syscalls on memory prepared before the fork,
//! ending in `exit_group`; its exit status is the errno it failed with.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::thread::LinkNameSpaceType;

use super::clone3::child_exit;
use super::probe_child::{ChildEnd, exit_code, in_child};

/// A child's end as a result: its errno, or `EINTR` if it was killed.
fn ended(end: ChildEnd) -> Result<(), Errno> {
    match end {
        ChildEnd::Exited(0) => Ok(()),
        ChildEnd::Exited(code) => Err(Errno::from_raw_os_error(code as i32)),
        ChildEnd::Killed(_) => Err(Errno::INTR),
    }
}

/// `mount(source, target, fstype, flags, data)` from a child that first
/// joins the namespaces `join` (`/proc/PID/ns/*` fds: IPC, network) and,
/// with `pid_ns`, is born in that pid namespace (whose init must exist).
/// The child shares the caller's mount namespace, so the mount lands in
/// it.
pub fn mount_in_child(
    join: &[BorrowedFd<'_>],
    pid_ns: Option<BorrowedFd<'_>>,
    source: &CStr,
    target: &CStr,
    fstype: &CStr,
    flags: u64,
    data: &CStr,
) -> Result<(), Errno> {
    let joins: Vec<usize> = join.iter().map(|f| f.as_raw_fd() as usize).collect();
    let own_pid: Option<OwnedFd> = match pid_ns {
        Some(ns) => {
            let own = rustix::fs::open(
                "/proc/thread-self/ns/pid",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            rustix::thread::move_into_link_name_space(ns, Some(LinkNameSpaceType::ProcessID))?;
            Some(own)
        }
        None => None,
    };
    let (src, tgt, fs, dat) = (
        source.as_ptr() as usize,
        target.as_ptr() as usize,
        fstype.as_ptr() as usize,
        data.as_ptr() as usize,
    );
    // SAFETY: the child makes raw syscalls on the caller's live C strings
    // and fd list (its copies of them) and exits.
    let end = unsafe {
        in_child(move || {
            for &fd in &joins {
                let ret = criu_arch::syscall2(criu_arch::nr::SETNS, fd, 0);
                if ret < 0 {
                    child_exit(exit_code(ret));
                }
            }
            let ret = criu_arch::syscall5(criu_arch::nr::MOUNT, src, tgt, fs, flags as usize, dat);
            child_exit(exit_code(ret))
        })
    };
    if let Some(own) = own_pid {
        // Back to the caller's own pid namespace for its later children.
        rustix::thread::move_into_link_name_space(own.as_fd(), Some(LinkNameSpaceType::ProcessID))?;
    }
    ended(end?)
}

/// In a child that joins mount namespace `ns`: makes `new_root` (a mount
/// point of it) the namespace's root with `pivot_root(".", ".")` and
/// detaches the old root. Every task of the namespace whose root or cwd
/// was the old root gets the new one; the caller must not be in `ns`.
/// `shared`: then makes the new root shared (a peer group of its own).
pub fn pivot_in_child(ns: BorrowedFd<'_>, new_root: &CStr, shared: bool) -> Result<(), Errno> {
    const DOT: &CStr = c".";
    const SLASH: &CStr = c"/";
    let fd = ns.as_raw_fd() as usize;
    let (root, dot) = (new_root.as_ptr() as usize, DOT.as_ptr() as usize);
    let slash = SLASH.as_ptr() as usize;
    let nsflag = linux_raw_sys::general::CLONE_NEWNS as usize;
    let detach = linux_raw_sys::general::MNT_DETACH as usize;
    let ms_shared = linux_raw_sys::general::MS_SHARED as usize;
    // SAFETY: raw syscalls on the child's copies of live C strings; it
    // exits at the end.
    let end = unsafe {
        in_child(move || {
            for (nr, a, b) in [
                (criu_arch::nr::SETNS, fd, nsflag),
                (criu_arch::nr::CHDIR, root, 0),
                (criu_arch::nr::PIVOT_ROOT, dot, dot),
                (criu_arch::nr::UMOUNT2, dot, detach),
            ] {
                let ret = criu_arch::syscall2(nr, a, b);
                if ret < 0 {
                    child_exit(exit_code(ret));
                }
            }
            // pivot_root refuses a shared new root: shared once there.
            if shared {
                let ret = criu_arch::syscall5(criu_arch::nr::MOUNT, 0, slash, 0, ms_shared, 0);
                if ret < 0 {
                    child_exit(exit_code(ret));
                }
            }
            child_exit(0)
        })
    };
    ended(end?)
}
