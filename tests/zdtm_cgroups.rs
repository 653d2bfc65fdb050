//! Cgroups at dump: a task in other cgroups than criu's is refused unless
//! `--manage-cgroups=ignore`, which dumps it without them (the restore
//! puts it into the restoring criu's cgroups); a frozen cgroup (v2
//! `cgroup.freeze`, the v1 freezer) is refused at once without
//! `--freeze-cgroup`, and with it dumped as CRIU does: seized while
//! frozen and left frozen (or thawed, as it was). A task that never stops
//! fails the dump within `--timeout`, naming it (`zdtm_refuse`'s vfork
//! test).

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::zdtm::Zdtm;
use criu_core::images::pb::rpc::{CriuCgMode, CriuOpts, CriuReq, CriuReqType, CriuResp};
use service_common::Client;

const PROGRAM: &str = "zdtm_refused";

/// Where a cgroup hierarchy is mounted: v2 (`None`) or the v1 one with
/// `controller`, from our mountinfo (mounted at its root).
fn mount_of(controller: Option<&str>) -> Option<PathBuf> {
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
fn hierarchy(test: &str, controller: Option<&str>) -> Option<PathBuf> {
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
            common::skip(test, &format!("cannot mount {what}: {e}"));
            None
        }
    }
}

/// A cgroup made for one test: thawed and removed (once its tasks are
/// gone) when dropped.
struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    fn new(parent: &Path, test: &str) -> Cgroup {
        let dir = parent.join(format!("criu-test-{test}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Cgroup { dir }
    }

    /// The cgroup's path as `/proc/PID/cgroup` shows it.
    fn path(&self, mount: &Path) -> String {
        format!("/{}", self.dir.strip_prefix(mount).unwrap().display())
    }

    fn add(&self, pid: i32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    fn v1(&self) -> bool {
        self.dir.join("freezer.state").exists()
    }

    fn freeze(&self, frozen: bool) {
        let (file, text) = match (self.v1(), frozen) {
            (true, true) => ("freezer.state", "FROZEN"),
            (true, false) => ("freezer.state", "THAWED"),
            (false, true) => ("cgroup.freeze", "1"),
            (false, false) => ("cgroup.freeze", "0"),
        };
        std::fs::write(self.dir.join(file), text).unwrap();
        if frozen {
            assert!(
                common::wait_until(Duration::from_secs(10), || self.frozen()),
                "{} did not freeze",
                self.dir.display()
            );
        }
    }

    /// Frozen, as the kernel says (v2 `cgroup.events`, v1 `freezer.state`).
    fn frozen(&self) -> bool {
        if self.v1() {
            let s = std::fs::read_to_string(self.dir.join("freezer.state")).unwrap_or_default();
            s.trim() == "FROZEN"
        } else {
            let s = std::fs::read_to_string(self.dir.join("cgroup.events")).unwrap_or_default();
            s.lines().any(|l| l == "frozen 1")
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let thaw = if self.v1() {
            ("freezer.state", "THAWED")
        } else {
            ("cgroup.freeze", "0")
        };
        let _ = std::fs::write(self.dir.join(thaw.0), thaw.1);
        // Its tasks were killed by the test; they leave once reaped.
        common::wait_until(Duration::from_secs(2), || {
            std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists()
        });
    }
}

/// Criu's (our) path in the hierarchy with `controller` (v2: `None`).
fn our_path(controller: Option<&str>) -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            let ok = match controller {
                None => c.is_empty(),
                Some(name) => c.split(',').any(|x| x == name),
            };
            ok.then(|| p.to_string())
        })
        .unwrap()
}

#[test]
fn a_task_in_another_v2_cgroup_is_refused() {
    const TEST: &str = "cg_v2";
    let Some(mount) = hierarchy(TEST, None) else {
        return;
    };
    let Some(z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    let cg = Cgroup::new(&mount, TEST);
    cg.add(z.pid());
    let message = format!(
        "task {} is in cgroup {} of cgroup v2, criu in {}: cgroups cannot be dumped yet \
         (--manage-cgroups=ignore dumps the task without them, and the restore puts it \
         into the restoring criu's cgroups)",
        z.pid(),
        cg.path(&mount),
        our_path(None)
    );
    let log = z.dump_refused(&[], &message);
    assert!(!log.contains("Seized "), "{log}");
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_task_in_another_v1_cgroup_is_refused() {
    const TEST: &str = "cg_v1";
    let Some(mount) = hierarchy(TEST, Some("cpu")) else {
        return;
    };
    let Some(z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    let cg = Cgroup::new(&mount, TEST);
    cg.add(z.pid());
    let message = format!(
        "task {} is in cgroup {} of the cpu hierarchy, criu in {}",
        z.pid(),
        cg.path(&mount),
        our_path(Some("cpu"))
    );
    z.dump_refused(&[], &message);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn manage_cgroups_ignore_dumps_without_them_and_restores_into_ours() {
    const TEST: &str = "cg_ignore";
    let (Some(v2), Some(cpu)) = (hierarchy(TEST, None), hierarchy(TEST, Some("cpu"))) else {
        return;
    };
    let Some(mut z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    let (a, b) = (Cgroup::new(&v2, TEST), Cgroup::new(&cpu, TEST));
    a.add(z.pid());
    b.add(z.pid());
    let images = z.images().to_path_buf();
    let pid = z.pid().to_string();
    let (ok, log) = z.criu_in(&images, &["dump", "-t", &pid, "--manage-cgroups=ignore"]);
    assert!(ok, "{log}");
    assert!(
        log.contains(&format!(
            "Cgroups of task {pid} are not dumped (--manage-cgroups=ignore): it is in "
        )),
        "{log}"
    );
    z.wait_gone();
    z.restore(&["--manage-cgroups=ignore"]);
    // Where the restoring criu (our child) is: our cgroups.
    let restored = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let ours = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(restored, ours);
    assert_eq!(z.go(), "PASS");
}

/// Start the counter in a new cgroup of `controller`'s hierarchy, frozen.
/// (The cgroup comes second, to be dropped, thawed, first: a task frozen
/// in a v1 freezer cannot die, nor be reaped, before it is thawed.)
fn frozen_counter(test: &str, controller: Option<&str>) -> Option<(Zdtm, Cgroup)> {
    let mount = hierarchy(test, controller)?;
    let z = Zdtm::start(test, PROGRAM, &["count"])?;
    let cg = Cgroup::new(&mount, test);
    cg.add(z.pid());
    cg.freeze(true);
    Some((z, cg))
}

fn frozen_cgroup_is_refused_at_once(test: &str, controller: Option<&str>, how: &str) {
    let Some((z, cg)) = frozen_counter(test, controller) else {
        return;
    };
    let start = Instant::now();
    let message = format!(
        "which is frozen ({how}): a frozen task cannot be dumped without thawing it; dump it \
         with --freeze-cgroup {}, which seizes it while frozen and leaves it frozen",
        cg.dir.display()
    );
    let log = z.dump_refused(&["--manage-cgroups=ignore"], &message);
    assert!(
        log.contains(&format!("task {} is in cgroup", z.pid())),
        "{log}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(cg.frozen(), "the refused dump thawed the cgroup");
    cg.freeze(false);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_frozen_v2_cgroup_is_refused_without_freeze_cgroup() {
    frozen_cgroup_is_refused_at_once("frozen_v2_refused", None, "cgroup.events: frozen 1");
}

#[test]
fn a_frozen_v1_cgroup_is_refused_without_freeze_cgroup() {
    frozen_cgroup_is_refused_at_once(
        "frozen_v1_refused",
        Some("freezer"),
        "freezer.state: FROZEN",
    );
}

/// `--freeze-cgroup` on a frozen cgroup: a dump that leaves it running
/// leaves it frozen; one that kills it can be restored.
fn frozen_cgroup_is_dumped(test: &str, controller: Option<&str>) {
    let Some((mut z, cg)) = frozen_counter(test, controller) else {
        return;
    };
    let dir = cg.dir.display().to_string();
    let args = ["--freeze-cgroup", &dir, "--manage-cgroups=ignore"];
    let leave = z.new_dir("leave-running");
    let mut with_leave = args.to_vec();
    with_leave.push("--leave-running");
    z.dump_to(&leave, &with_leave);
    assert!(cg.frozen(), "the dump thawed the cgroup");
    assert_eq!(common::tracer_pid(z.pid()), Some(0));
    // Dumped again, killed, and restored (into our cgroups, not frozen).
    z.dump(&args);
    z.restore(&["--manage-cgroups=ignore"]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_frozen_v2_cgroup_is_dumped_with_freeze_cgroup_and_left_frozen() {
    frozen_cgroup_is_dumped("frozen_v2", None);
}

#[test]
fn a_frozen_v1_cgroup_is_dumped_with_freeze_cgroup_and_left_frozen() {
    frozen_cgroup_is_dumped("frozen_v1", Some("freezer"));
}

#[test]
fn a_thawed_cgroup_given_to_freeze_cgroup_is_left_thawed() {
    const TEST: &str = "thawed_v2";
    let Some(mount) = hierarchy(TEST, None) else {
        return;
    };
    let cg = Cgroup::new(&mount, TEST);
    let Some(mut z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    cg.add(z.pid());
    let dir = cg.dir.display().to_string();
    let images = z.images().to_path_buf();
    z.dump_to(
        &images,
        &[
            "--freeze-cgroup",
            &dir,
            "--manage-cgroups=ignore",
            "--leave-running",
        ],
    );
    let log = std::fs::read_to_string(images.join("dump.log")).unwrap();
    assert!(
        log.contains(&format!("Freezer cgroup {dir} is Thawed before the dump")),
        "{log}"
    );
    assert!(!cg.frozen());
    assert_eq!(
        std::fs::read_to_string(cg.dir.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "0"
    );
    assert_eq!(z.go(), "PASS");
}

#[test]
fn freeze_cgroup_naming_a_cgroup_frozen_from_above_is_refused() {
    // A v1 freezer cgroup frozen by its parent cannot be thawed by itself:
    // its tasks would never stop for PTRACE_INTERRUPT.
    const TEST: &str = "frozen_above";
    let Some(mount) = hierarchy(TEST, Some("freezer")) else {
        return;
    };
    let Some(z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    let parent = Cgroup::new(&mount, TEST);
    let child = Cgroup::new(&parent.dir, "inner");
    child.add(z.pid());
    parent.freeze(true);
    let dir = child.dir.display().to_string();
    let message = format!(
        "{dir} is frozen by an ancestor (freezer.parent_freezing: 1), which only that \
         ancestor can thaw: give --freeze-cgroup the frozen cgroup"
    );
    z.dump_refused(
        &["--freeze-cgroup", &dir, "--manage-cgroups=ignore"],
        &message,
    );
    // Left as it was: frozen through its parent only.
    let own = std::fs::read_to_string(child.dir.join("freezer.self_freezing")).unwrap();
    assert_eq!(own.trim(), "0");
    assert!(child.frozen());
    parent.freeze(false);
    assert!(common::wait_until(Duration::from_secs(5), || !child.frozen()));
    assert_eq!(z.go(), "PASS");
}

/// An RPC dump of `pid` into a new directory of `z` with `extra` (and
/// `leave_running`).
fn rpc_dump(z: &Zdtm, name: &str, extra: CriuOpts) -> CriuResp {
    let images = z.new_dir(name);
    let dir = std::fs::File::open(&images).unwrap();
    Client::swrk().call(&CriuReq {
        r#type: CriuReqType::Dump as i32,
        opts: Some(CriuOpts {
            images_dir_fd: dir.as_raw_fd(),
            pid: Some(z.pid()),
            leave_running: Some(true),
            log_level: Some(4),
            ..extra
        }),
        ..Default::default()
    })
}

/// The RPC's `manage_cgroups_mode` and `freeze_cgroup` act as their
/// options do: a task in a frozen cgroup of its own is refused for its
/// cgroup (DEFAULT), then with IGNORE for being frozen, and dumped with
/// `freeze_cgroup` too, the cgroup left frozen.
#[test]
fn rpc_manage_cgroups_mode_and_freeze_cgroup() {
    const TEST: &str = "rpc_frozen_v2";
    let Some((z, cg)) = frozen_counter(TEST, None) else {
        return;
    };
    let errmsg = |r: &CriuResp| r.cr_errmsg.clone().unwrap_or_default();
    let ignore = Some(CriuCgMode::Ignore as i32);
    let r = rpc_dump(
        &z,
        "default",
        CriuOpts {
            manage_cgroups_mode: Some(CriuCgMode::Default as i32),
            ..Default::default()
        },
    );
    let want = format!(
        "task {} is in cgroup {} of cgroup v2",
        z.pid(),
        cg.path(&hierarchy(TEST, None).unwrap())
    );
    assert!(
        !r.success && errmsg(&r).contains(&want),
        "{r:?}, want {want:?}"
    );
    let r = rpc_dump(
        &z,
        "ignore",
        CriuOpts {
            manage_cgroups_mode: ignore,
            ..Default::default()
        },
    );
    let want = format!("dump it with --freeze-cgroup {}", cg.dir.display());
    assert!(
        !r.success && errmsg(&r).contains(&want),
        "{r:?}, want {want:?}"
    );
    assert!(cg.frozen());
    let r = rpc_dump(
        &z,
        "frozen",
        CriuOpts {
            manage_cgroups_mode: ignore,
            freeze_cgroup: Some(cg.dir.display().to_string()),
            ..Default::default()
        },
    );
    assert!(r.success, "{r:?}");
    assert!(cg.frozen(), "the dump thawed the cgroup");
    assert_eq!(common::tracer_pid(z.pid()), Some(0));
    cg.freeze(false);
    assert_eq!(z.go(), "PASS");
}
