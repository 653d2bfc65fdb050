//! Cgroup hierarchies for the tests: where this machine mounts them, or
//! mounted by the test binary where it does not (the VMs).

use std::path::PathBuf;

/// Where a cgroup hierarchy is mounted: v2 (`None`) or the v1 one with
/// `controller`, from our mountinfo (mounted at its root).
pub fn mount_of(controller: Option<&str>) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        let (root, point, fstype, opts) = (f.get(3)?, f.get(4)?, r.first()?, r.get(2)?);
        let ok = match controller {
            None => *fstype == "cgroup2",
            Some(c) => *fstype == "cgroup" && opts.split(',').any(|o| o == c),
        };
        (ok && *root == "/").then(|| PathBuf::from(point))
    })
}

/// The hierarchy's mount: where the machine has it, else mounted by us
/// (once per test binary, left mounted: the VMs' initramfs mounts no
/// cgroups), or a skip naming it.
pub fn hierarchy(test: &str, controller: Option<&str>) -> Option<PathBuf> {
    static MOUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MOUNTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = mount_of(controller) {
        return Some(m);
    }
    let name = controller.map_or("cgroup2".to_string(), |c| format!("cgroup-{c}"));
    let at = std::env::temp_dir().join(format!("criu-test-{name}"));
    let _ = std::fs::create_dir_all(&at);
    let data = controller.map(|c| std::ffi::CString::new(c).unwrap());
    let fstype = if controller.is_some() {
        "cgroup"
    } else {
        "cgroup2"
    };
    let flags = rustix::mount::MountFlags::empty();
    match rustix::mount::mount(fstype, &at, fstype, flags, data.as_deref()) {
        Ok(()) => Some(at),
        Err(e) => {
            let what =
                controller.map_or("cgroup v2".to_string(), |c| format!("the v1 {c} hierarchy"));
            super::skip(test, &format!("cannot mount {what}: {e}"));
            None
        }
    }
}

/// The path of task `pid` in the hierarchy with `controller` (v2: `None`).
pub fn path_of(pid: i32, controller: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, c, p) = (f.next()?, f.next()?, f.next()?);
        let ok = match controller {
            None => c.is_empty(),
            Some(name) => c.split(',').any(|x| x == name),
        };
        ok.then(|| p.to_string())
    })
}
