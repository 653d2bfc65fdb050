//! Probes that mount filesystems, as CRIU's do: autofs, the
//! `MOVE_MOUNT_SET_GROUP` peer-group move, overlayfs device numbers in
//! `/proc/PID/maps`, binfmt_misc per user namespace. Test mounts go on a
//! fresh directory under /tmp (or in a private mount namespace) and are
//! detached before returning.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags,
    UnmountFlags,
};

use super::procfs::strerror;
use super::{CheckResult, KernelFeatures, Problem, problem};

/// A fresh directory `/tmp/.criu.NAME.XXXXXX`, removed (after detaching
/// whatever is mounted on it) on drop.
struct TempMountPoint {
    path: PathBuf,
}

impl TempMountPoint {
    fn new(name: &str) -> Result<TempMountPoint, Problem> {
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        for n in 0..100u32 {
            let path = PathBuf::from(format!("/tmp/.criu.{name}.{pid}.{n}"));
            match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o700)) {
                Ok(()) => return Ok(TempMountPoint { path }),
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    return Err(problem!(
                        Error,
                        "Fail to make dir {}: {}",
                        path.display(),
                        strerror(e)
                    ));
                }
            }
        }
        Err(problem!(Error, "failed to construct temporary name"))
    }
}

impl Drop for TempMountPoint {
    fn drop(&mut self) {
        while rustix::mount::unmount(&self.path, UnmountFlags::DETACH).is_ok() {}
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            crate::pr_warn!("Fail to rmdir {}: {e}", self.path.display());
        }
    }
}

/// autofs in `/proc/self/mountinfo`: `Some(true)` with `pipe_ino=` (the
/// kernel shows what dump needs), `Some(false)` without, `None` if no
/// autofs is mounted.
fn autofs_pipe_ino() -> Option<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let line = info.lines().find(|l| l.contains(" autofs "))?;
    Some(line.contains("pipe_ino="))
}

/// CRIU's `autofs` (experimental): an autofs mount shows `pipe_ino=`;
/// without one mounted, one is mounted to look.
pub(super) fn check_autofs(_: &KernelFeatures) -> CheckResult {
    let unsupported = || problem!(Error, "autofs not supported.");
    match autofs_pipe_ino() {
        Some(true) => return Ok(()),
        Some(false) => return Err(unsupported()),
        None => {}
    }
    let (_rd, wr) = rustix::pipe::pipe()
        .map_err(|e| problem!(Error, "failed to create pipe: {}", strerror(e)))?;
    let dir = TempMountPoint::new("mnt")?;
    let pgrp = rustix::process::getpgrp().as_raw_nonzero().get();
    let options = CString::new(format!(
        "fd={},pgrp={pgrp},minproto=5,maxproto=5,direct",
        wr.as_raw_fd()
    ))
    .map_err(|_| problem!(Error, "failed to allocate autofs options"))?;
    rustix::mount::mount("criu", &dir.path, "autofs", MountFlags::empty(), &*options)
        .map_err(|e| problem!(Error, "failed to mount autofs: {}", strerror(e)))?;
    match autofs_pipe_ino() {
        Some(true) => Ok(()),
        _ => Err(unsupported()),
    }
}

/// CRIU's `move_mount_set_group`: a bind mount joins the peer group of a
/// shared mount with `move_mount(MOVE_MOUNT_SET_GROUP)` (5.15+), which
/// restore uses to recreate shared mounts.
pub(super) fn check_move_mount_set_group(_: &KernelFeatures) -> CheckResult {
    let dir = TempMountPoint::new("move_mount_set_group")?;
    let fail = |what: String, e: Errno| problem!(Error, "{what}: {}", strerror(e));
    let p = dir.path.display().to_string();
    rustix::mount::mount(
        "criu.move_mount_set_group",
        &dir.path,
        "tmpfs",
        MountFlags::empty(),
        None,
    )
    .map_err(|e| fail(format!("Fail to mount tmfps to {p}"), e))?;
    rustix::mount::mount_change(&dir.path, MountPropagationFlags::PRIVATE)
        .map_err(|e| fail(format!("Fail to make {p} private"), e))?;
    let sub = dir.path.join("subdir");
    rustix::fs::mkdir(&sub, Mode::from_raw_mode(0o700))
        .map_err(|e| fail(format!("Fail to make dir {}", sub.display()), e))?;
    rustix::mount::mount_bind(&sub, &sub)
        .map_err(|e| fail(format!("Fail to make bind-mount {}", sub.display()), e))?;
    rustix::mount::mount_change(&dir.path, MountPropagationFlags::SHARED)
        .map_err(|e| fail(format!("Fail to make {p} shared"), e))?;
    match rustix::mount::move_mount(
        rustix::fs::CWD,
        &dir.path,
        rustix::fs::CWD,
        &sub,
        MoveMountFlags::MOVE_MOUNT_SET_GROUP,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL | Errno::NOSYS) => {
            Err(problem!(Info, "No MOVE_MOUNT_SET_GROUP kernel feature"))
        }
        Err(e) => Err(fail("Fail to MOVE_MOUNT_SET_GROUP".into(), e)),
    }
}

/// The device and inode `/proc/self/maps` shows for the mapping at `addr`.
fn maps_dev_ino(addr: usize) -> Option<(u32, u32, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let start = usize::from_str_radix(f.next()?.split('-').next()?, 16).ok()?;
        if start != addr {
            return None;
        }
        let (_perms, _off) = (f.next()?, f.next()?);
        let (maj, min) = f.next()?.split_once(':')?;
        let ino = f.next()?.parse().ok()?;
        Some((
            u32::from_str_radix(maj, 16).ok()?,
            u32::from_str_radix(min, 16).ok()?,
            ino,
        ))
    })
}

fn fs_mount(fs: &str, opts: &[(&str, &str)]) -> Result<OwnedFd, (String, Errno)> {
    let ctx = rustix::mount::fsopen(fs, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| (format!("Unable to fsopen {fs}"), e))?;
    for (k, v) in opts {
        rustix::mount::fsconfig_set_string(&ctx, *k, *v)
            .map_err(|e| (format!("Unable to configure {fs}"), e))?;
    }
    rustix::mount::fsconfig_create(&ctx).map_err(|e| (format!("Unable to create {fs}"), e))?;
    rustix::mount::fsmount(&ctx, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| (format!("Unable to mount {fs}"), e))
}

/// The overlayfs part, run in a thread with its own mount namespace: a
/// file of an overlay mount, mapped shared, must show in maps the device
/// and inode `fstat` gives (what dump compares to find the file).
fn overlay_maps_match(scratch: &Path) -> Result<bool, (String, Errno)> {
    use linux_raw_sys::general::{CLONE_FS, CLONE_NEWNS};
    crate::sys::probe::unshare_this_thread(CLONE_FS | CLONE_NEWNS)
        .map_err(|e| ("Unable to create a new mount namespace".into(), e))?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| ("Unable to remount / with MS_SLAVE".into(), e))?;
    let tmpfs = fs_mount("tmpfs", &[])?;
    rustix::mount::move_mount(
        &tmpfs,
        "",
        rustix::fs::CWD,
        scratch,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| ("Unable to attach tmpfs mount".into(), e))?;
    for d in ["w", "u", "l"] {
        rustix::fs::mkdir(scratch.join(d), Mode::from_raw_mode(0o755))
            .map_err(|e| ("mkdir".into(), e))?;
    }
    let dir = |d: &str| scratch.join(d).display().to_string();
    let ovl = fs_mount(
        "overlay",
        &[
            ("source", "test"),
            ("lowerdir", &dir("l")),
            ("upperdir", &dir("u")),
            ("workdir", &dir("w")),
        ],
    )?;
    let file = rustix::fs::openat(
        &ovl,
        "test",
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| ("Unable to open a test file".into(), e))?;
    let st = rustix::fs::fstat(&file).map_err(|e| ("stat".into(), e))?;
    let map = crate::sys::shared_mapping::SharedMapping::map(file.as_fd(), 4096)
        .map_err(|e| ("Unable to map the test file".into(), e))?;
    let shown = maps_dev_ino(map.as_slice().as_ptr() as usize);
    drop(map);
    let want = (
        rustix::fs::major(st.st_dev),
        rustix::fs::minor(st.st_dev),
        st.st_ino,
    );
    Ok(shown == Some(want))
}

/// CRIU's `overlayfs_maps`: `/proc/PID/maps` names an overlayfs file by
/// the overlay's device and inode, not the lower filesystem's.
pub(super) fn check_overlayfs_maps(_: &KernelFeatures) -> CheckResult {
    let scratch = TempMountPoint::new("ovl")?;
    let path = scratch.path.clone();
    let res = std::thread::spawn(move || overlay_maps_match(&path))
        .join()
        .map_err(|_| problem!(Error, "the overlayfs probe thread panicked"))?;
    match res {
        Ok(true) => Ok(()),
        Ok(false) => Err(problem!(
            Error,
            "/proc/PID/maps shows the wrong device and inode for overlayfs files"
        )),
        // CRIU counts a system where it cannot make a mount namespace as
        // fine (it cannot have overlay mounts of its own to dump).
        Err((what, e)) if what.starts_with("Unable to create a new mount namespace") => {
            crate::pr_warn!("{what}: {}", strerror(e));
            Ok(())
        }
        Err((what, e)) => Err(problem!(Error, "{what}: {}", strerror(e))),
    }
}

/// binfmt_misc sandboxing (6.7+): a user namespace gets a binfmt_misc
/// instance of its own.
pub(super) fn check_binfmt_misc_sandboxing(_: &KernelFeatures) -> CheckResult {
    match crate::sys::probe_child::binfmt_misc_sandboxed() {
        Ok(Some(true)) => Ok(()),
        _ => Err(problem!(Info, "binfmt_misc sandboxing isn't supported")),
    }
}
