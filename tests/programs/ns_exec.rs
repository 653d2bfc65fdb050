//! `ns_exec KIND... -- PROGRAM ARGS...`: run PROGRAM in new namespaces,
//! as util-linux's `unshare(1)` would, for the tests that need a task in
//! its own namespaces. The VMs' busybox `unshare` cannot make most of
//! them, so the tests carry their own.
//!
//! KIND is one of `uts ipc mnt net cgroup time user pid`. `user` maps
//! root inside to our uid and gid (`unshare --map-root-user`, setgroups
//! denied). `user=INSIDE:OUTSIDE:COUNT` maps that range of uids and gids
//! instead (`unshare --map-users=... --map-groups=...`), setgroups left
//! allowed (`user=...:deny` denies it): a helper forked before the
//! namespace exists writes the maps from outside, as only a writer with
//! `CAP_SETUID` there may, and gives PROGRAM's first argument (a tests'
//! work directory) to the namespace's root, so that it can write there. `pid`
//! (like `unshare --pid --fork`) keeps this process in our PID namespace,
//! runs PROGRAM as pid 1 of the new one, waits for it and exits as it did.
//! Without `pid`, PROGRAM replaces this process. `mnt` makes the new
//! namespace's mounts private (`unshare`'s default propagation). `time` moves this
//! process itself into the new time namespace (setns) before that;
//! `time=MONO,BOOT` first gives its clocks those offsets in seconds
//! (`unshare --monotonic MONO --boottime BOOT`). Not a namespace:
//! `inotify=PATH` gives PROGRAM an inotify instance as fd 25 (not
//! close-on-exec) watching PATH for created files.

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

/// A wide map (`user=INSIDE:OUTSIDE:COUNT[:deny]`).
struct WideMap {
    map: String,
    deny: bool,
    /// OUTSIDE: the namespace's root out here, who gets the work dir.
    root: u32,
}

fn wide_map(spec: &str) -> Result<WideMap, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let deny = match parts.get(3) {
        None => false,
        Some(&"deny") => true,
        Some(other) => return Err(format!("user=...:{other}: only deny")),
    };
    let nums: Vec<u32> = parts[..3.min(parts.len())]
        .iter()
        .map(|p| p.parse().map_err(|_| format!("user={spec}: not a number")))
        .collect::<Result<_, _>>()?;
    let [inside, outside, count] = nums[..] else {
        return Err(format!("user={spec}: INSIDE:OUTSIDE:COUNT"));
    };
    Ok(WideMap {
        map: format!("{inside} {outside} {count}"),
        deny,
        root: outside,
    })
}

/// `ns_exec --write-maps PID MAP deny|allow DIR`: wait until task PID has
/// left our user namespace, then write its maps and give DIR to its root.
fn write_maps(args: &[String]) -> Result<ExitCode, String> {
    let [pid, map, setgroups, dir] = args else {
        return Err("usage: ns_exec --write-maps PID MAP deny|allow DIR".into());
    };
    let ours = std::fs::read_link("/proc/self/ns/user").map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    while std::fs::read_link(format!("/proc/{pid}/ns/user")).map_err(|e| e.to_string())? == ours {
        if start.elapsed() > std::time::Duration::from_secs(30) {
            return Err(format!("task {pid} never made its user namespace"));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let write = |name: &str, text: &str| {
        std::fs::write(format!("/proc/{pid}/{name}"), text).map_err(|e| format!("{name}: {e}"))
    };
    if setgroups == "deny" {
        write("setgroups", "deny")?;
    }
    write("uid_map", map)?;
    write("gid_map", map)?;
    let root: u32 = map
        .split_whitespace()
        .nth(1)
        .and_then(|o| o.parse().ok())
        .ok_or("no OUTSIDE in the map")?;
    std::os::unix::fs::chown(dir, Some(root), Some(root))
        .map_err(|e| format!("chown {dir}: {e}"))?;
    Ok(ExitCode::SUCCESS)
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
    let mut wide = None;
    let mut watch = None;
    for kind in kinds {
        let kind = match kind.split_once('=') {
            Some(("inotify", path)) => {
                watch = Some(path);
                continue;
            }
            Some(("time", o)) => {
                offsets = Some(o.split_once(',').ok_or("time=MONO,BOOT")?);
                "time"
            }
            Some(("user", m)) => {
                wide = Some(wide_map(m)?);
                "user"
            }
            _ => kind.as_str(),
        };
        flags |= flag(kind).ok_or_else(|| format!("unknown namespace kind {kind:?}"))?;
    }
    let (uid, gid) = (rustix::process::getuid(), rustix::process::getgid());
    let helper = match &wide {
        Some(w) => {
            let dir = rest
                .first()
                .ok_or("user=...: PROGRAM has no work directory")?;
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            let deny = if w.deny { "deny" } else { "allow" };
            let child = Command::new(me)
                .args([
                    "--write-maps",
                    &std::process::id().to_string(),
                    &w.map,
                    deny,
                    dir,
                ])
                .spawn()
                .map_err(|e| format!("start the map writer: {e}"))?;
            Some((child, w.root))
        }
        None => None,
    };
    // SAFETY: this program has one thread and no file descriptor shared
    // with another (no CLONE_FILES), so nothing observes the change.
    unsafe { rustix::thread::unshare_unsafe(flags) }
        .map_err(|e| format!("unshare {kinds:?}: {e}"))?;
    if let Some((mut child, _)) = helper {
        let st = child
            .wait()
            .map_err(|e| format!("wait for the map writer: {e}"))?;
        if !st.success() {
            return Err(format!("the map writer failed ({st})"));
        }
        // Become the namespace's root (as unshare --map-users does not:
        // it execs as the mapped uid our own uid has, here root).
        rustix::thread::set_thread_gid(rustix::process::Gid::ROOT)
            .and_then(|()| rustix::thread::set_thread_uid(rustix::process::Uid::ROOT))
            .map_err(|e| format!("become root inside: {e}"))?;
    } else if flags.contains(UnshareFlags::NEWUSER) {
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
    if let Some(path) = watch {
        use rustix::fs::inotify;
        let fd =
            inotify::init(inotify::CreateFlags::empty()).map_err(|e| format!("inotify: {e}"))?;
        inotify::add_watch(&fd, path, inotify::WatchFlags::CREATE)
            .map_err(|e| format!("watch {path}: {e}"))?;
        let mut at = fd_25();
        rustix::io::dup2(&fd, &mut at).map_err(|e| format!("dup2 to fd 25: {e}"))?;
        // Fd 25 stays open for PROGRAM.
        std::mem::forget(at);
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

/// Fd 25, as an owned fd for `dup2` to replace (whatever it is).
fn fd_25() -> std::os::fd::OwnedFd {
    // SAFETY: fd 25 is only a target for dup2, which closes what it was;
    // the caller forgets the value rather than close it.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(25) }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.split_first() {
        Some((first, rest)) if first == "--write-maps" => write_maps(rest),
        _ => run(&args),
    };
    r.unwrap_or_else(|e| {
        eprintln!("ns_exec: {e}");
        ExitCode::from(125)
    })
}
