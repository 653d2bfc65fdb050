//! `ns_exec KIND... -- PROGRAM ARGS...`: run PROGRAM in new namespaces,
//! as util-linux's `unshare(1)` would, for the tests that need a task in
//! its own namespaces. The VMs' busybox `unshare` cannot make most of
//! them, so the tests carry their own.
//!
//! KIND is one of `uts ipc mnt net cgroup time user pid`. `user` maps
//! root inside to our uid and gid (`unshare --map-root-user`). `pid`
//! (like `unshare --pid --fork`) keeps this process in our PID namespace,
//! runs PROGRAM as pid 1 of the new one, waits for it and exits as it did.
//! Without `pid`, PROGRAM replaces this process. `mnt` makes the new
//! namespace's mounts private (`unshare`'s default propagation). `time` moves this
//! process itself into the new time namespace (setns) before that;
//! `time=MONO,BOOT` first gives its clocks those offsets in seconds
//! (`unshare --monotonic MONO --boottime BOOT`).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode};

use rustix::thread::UnshareFlags;

fn flag(kind: &str) -> Option<UnshareFlags> {
    Some(match kind {
        "uts" => UnshareFlags::NEWUTS,
        "ipc" => UnshareFlags::NEWIPC,
        "mnt" => UnshareFlags::NEWNS,
        "net" => UnshareFlags::NEWNET,
        "cgroup" => UnshareFlags::NEWCGROUP,
        "time" => UnshareFlags::NEWTIME,
        "user" => UnshareFlags::NEWUSER,
        "pid" => UnshareFlags::NEWPID,
        _ => return None,
    })
}

/// Map root of the new user namespace to the uid and gid we had.
fn map_root(uid: u32, gid: u32) -> std::io::Result<()> {
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    // An unprivileged writer of gid_map must give up setgroups first.
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
}

/// Move this process itself into the time namespace unshare made for
/// its children: exec does that only from Linux 6.x (the VMs' 6.1 does
/// not), setns always (this program has one thread).
fn enter_time_for_children() -> std::io::Result<()> {
    let ns = std::fs::File::open("/proc/self/ns/time_for_children")?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&ns),
        Some(rustix::thread::LinkNameSpaceType::Time),
    )?;
    Ok(())
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let split = args
        .iter()
        .position(|a| a == "--")
        .ok_or("usage: ns_exec KIND... -- PROGRAM ARGS...")?;
    let (kinds, program) = (&args[..split], &args[split + 1..]);
    let (first, rest) = program.split_first().ok_or("no PROGRAM")?;
    let mut flags = UnshareFlags::empty();
    let mut offsets = None;
    for kind in kinds {
        let kind = match kind.split_once('=') {
            Some(("time", o)) => {
                offsets = Some(o.split_once(',').ok_or("time=MONO,BOOT")?);
                "time"
            }
            _ => kind.as_str(),
        };
        flags |= flag(kind).ok_or_else(|| format!("unknown namespace kind {kind:?}"))?;
    }
    let (uid, gid) = (rustix::process::getuid(), rustix::process::getgid());
    // SAFETY: this program has one thread and no file descriptor shared
    // with another (no CLONE_FILES), so nothing observes the change.
    unsafe { rustix::thread::unshare_unsafe(flags) }
        .map_err(|e| format!("unshare {kinds:?}: {e}"))?;
    if flags.contains(UnshareFlags::NEWUSER) {
        map_root(uid.as_raw(), gid.as_raw()).map_err(|e| format!("map root: {e}"))?;
    }
    // As `unshare -m` does (its default `--propagation private`): the
    // copy's mounts share no mount events with ours, which a host with
    // shared mounts (systemd's, `ip netns`'s /run/netns) would give it.
    if flags.contains(UnshareFlags::NEWNS) {
        rustix::mount::mount_change(
            "/",
            rustix::mount::MountPropagationFlags::PRIVATE
                | rustix::mount::MountPropagationFlags::REC,
        )
        .map_err(|e| format!("make the new mounts private: {e}"))?;
    }
    if let Some((mono, boot)) = offsets {
        let text = format!("monotonic {mono} 0\nboottime {boot} 0\n");
        std::fs::write("/proc/self/timens_offsets", text)
            .map_err(|e| format!("time offsets: {e}"))?;
    }
    if flags.contains(UnshareFlags::NEWTIME) {
        enter_time_for_children().map_err(|e| format!("enter the new time namespace: {e}"))?;
    }
    let mut cmd = Command::new(first);
    cmd.args(rest);
    if !flags.contains(UnshareFlags::NEWPID) {
        return Err(format!("exec {first}: {}", cmd.exec()));
    }
    let status = cmd.status().map_err(|e| format!("start {first}: {e}"))?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(sig)) => ExitCode::from(128 + sig as u8),
        _ => ExitCode::FAILURE,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    run(&args).unwrap_or_else(|e| {
        eprintln!("ns_exec: {e}");
        ExitCode::from(125)
    })
}
