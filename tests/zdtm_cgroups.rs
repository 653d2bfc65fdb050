//! Cgroups: a task in other cgroups than criu's is dumped with them
//! (`cgroup.img`) and restored into them as `--manage-cgroups` and
//! `--cgroup-root` say, by criu and by CRIU 4.1.1 both ways; with
//! `--manage-cgroups=ignore` it is dumped without them (the restore puts
//! it into the restoring criu's cgroups). A frozen cgroup (v2
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

use common::cgroups::{hierarchy, path_of};
use common::zdtm::Zdtm;
use criu_core::images::pb::rpc::{
    CgroupRoot, CriuCgMode, CriuOpts, CriuReq, CriuReqType, CriuResp,
};
use service_common::Client;

const PROGRAM: &str = "zdtm_refused";

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

/// The children of `pid`.
fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn read_prop(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
        .trim()
        .to_string()
}

/// Remove the cgroup directories of a dumped (gone) tree, deepest first,
/// for the restore to make them again.
fn remove(dirs: &[&Path]) {
    for d in dirs {
        assert!(
            common::wait_until(Duration::from_secs(5), || std::fs::remove_dir(d).is_ok()),
            "cannot remove {}",
            d.display()
        );
    }
}

impl Cgroup {
    /// A cgroup the restore made, removed when dropped.
    fn adopt(dir: PathBuf) -> Cgroup {
        Cgroup { dir }
    }
}

/// A tree in cgroups of its own (v2 and the v1 pids hierarchy, a child in
/// a sub-cgroup) is dumped with them by default, and the restore (the
/// default `--manage-cgroups=soft`) makes the removed cgroups again, with
/// their properties, and puts every task back into its own.
#[test]
fn a_tree_in_its_own_cgroups_comes_back_into_them() {
    const TEST: &str = "cg_tree";
    let (Some(v2), Some(pids)) = (hierarchy(TEST, None), hierarchy(TEST, Some("pids"))) else {
        return;
    };
    let Some(mut z) = Zdtm::start(TEST, "zdtm_tree", &["tree"]) else {
        return;
    };
    let a = Cgroup::new(&v2, TEST);
    let sub = Cgroup::new(&a.dir, "sub");
    let p = Cgroup::new(&pids, TEST);
    std::fs::write(p.dir.join("pids.max"), "57").unwrap();
    a.add(z.pid());
    p.add(z.pid());
    let kids = children(z.pid());
    assert!(!kids.is_empty());
    let child = kids[0];
    let tree = common::descendants(z.pid());
    sub.add(child);
    let (a_path, sub_path, p_path) = (a.path(&v2), sub.path(&v2), p.path(&pids));
    z.dump(&[]);
    assert!(z.images().join("cgroup.img").exists());
    common::reap(&tree);
    remove(&[&sub.dir, &a.dir, &p.dir]);
    z.restore(&[]);
    assert_eq!(path_of(z.pid(), None), Some(a_path));
    assert_eq!(path_of(z.pid(), Some("pids")), Some(p_path));
    assert_eq!(path_of(child, None), Some(sub_path));
    // Made again by the restore, with its limit.
    assert_eq!(read_prop(&p.dir, "pids.max"), "57");
    assert_eq!(z.go(), "PASS");
}

/// `--cgroup-root CONTROLLER:/PATH` puts the root task's cgroup of that
/// hierarchy (made, with its properties) at PATH; the other hierarchies
/// keep their paths. A restore that fails (a fault injected in the
/// restorer's cgroup stage) removes the cgroups it made.
#[test]
fn cgroup_root_moves_the_tree() {
    const TEST: &str = "cg_root";
    let (Some(v2), Some(pids)) = (hierarchy(TEST, None), hierarchy(TEST, Some("pids"))) else {
        return;
    };
    let Some(mut z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    let a = Cgroup::new(&v2, TEST);
    let p = Cgroup::new(&pids, TEST);
    std::fs::write(p.dir.join("pids.max"), "41").unwrap();
    a.add(z.pid());
    p.add(z.pid());
    let a_path = a.path(&v2);
    z.dump(&[]);
    z.wait_gone();
    let moved = Cgroup::adopt(pids.join(format!("criu-test-{TEST}-moved-{}", std::process::id())));
    let root = format!("pids:{}", moved.path(&pids));
    remove(&[&a.dir]);
    let env = [("CRIU_RESTORE_FAULT", std::ffi::OsStr::new("cgroups"))];
    let (ok, log) = common::run_criu(z.images(), &["restore", "-d", "--cgroup-root", &root], &env);
    assert!(!ok, "{log}");
    assert!(log.contains("at stage cgroups"), "{log}");
    assert!(common::wait_until(Duration::from_secs(5), || {
        common::proc_state(z.pid()).is_none()
    }));
    assert!(!moved.dir.exists(), "{log}");
    assert!(!a.dir.exists(), "{log}");
    z.restore(&["--cgroup-root", &root]);
    assert_eq!(path_of(z.pid(), None), Some(a_path));
    assert_eq!(path_of(z.pid(), Some("pids")), Some(moved.path(&pids)));
    assert_eq!(read_prop(&moved.dir, "pids.max"), "41");
    assert_eq!(z.go(), "PASS");
    drop(p);
}

/// `none` and `props` create no cgroup: a missing one fails the restore,
/// naming it, with nothing left behind; an existing one is joined, and
/// only `props` writes its properties.
#[test]
fn manage_cgroups_none_and_props_need_the_cgroups() {
    const TEST: &str = "cg_none";
    let Some(pids) = hierarchy(TEST, Some("pids")) else {
        return;
    };
    let Some(mut z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    let p = Cgroup::new(&pids, TEST);
    std::fs::write(p.dir.join("pids.max"), "23").unwrap();
    p.add(z.pid());
    let p_path = p.path(&pids);
    z.dump(&[]);
    z.wait_gone();
    remove(&[&p.dir]);
    let (ok, log) = z.criu_in(z.images(), &["restore", "-d", "--manage-cgroups=none"]);
    assert!(!ok, "{log}");
    let want = format!(
        "cgroup {} does not exist (--manage-cgroups=none creates none)",
        p.dir.display()
    );
    assert!(log.contains(&want), "{log}");
    assert!(common::proc_state(z.pid()).is_none());
    assert!(!p.dir.exists());
    // Made by hand (pids.max "max"): joined, its limit left alone.
    std::fs::create_dir(&p.dir).unwrap();
    z.restore(&["--manage-cgroups=none"]);
    assert_eq!(path_of(z.pid(), Some("pids")), Some(p_path.clone()));
    assert_eq!(read_prop(&p.dir, "pids.max"), "max");
    z.kill();
    z.restore(&["--manage-cgroups=props"]);
    assert_eq!(path_of(z.pid(), Some("pids")), Some(p_path));
    assert_eq!(read_prop(&p.dir, "pids.max"), "23");
    assert_eq!(z.go(), "PASS");
}

/// An existing cgroup keeps its properties under `soft`, gets the dumped
/// ones under `full`, and fails `strict`, which wants to make it.
#[test]
fn manage_cgroups_full_and_strict() {
    const TEST: &str = "cg_full";
    let Some(pids) = hierarchy(TEST, Some("pids")) else {
        return;
    };
    let Some(mut z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    let p = Cgroup::new(&pids, TEST);
    std::fs::write(p.dir.join("pids.max"), "29").unwrap();
    p.add(z.pid());
    z.dump(&[]);
    z.wait_gone();
    std::fs::write(p.dir.join("pids.max"), "max").unwrap();
    let (ok, log) = z.criu_in(z.images(), &["restore", "-d", "--manage-cgroups=strict"]);
    assert!(!ok, "{log}");
    let want = format!(
        "cgroup {} exists already (--manage-cgroups=strict wants to create it)",
        p.dir.display()
    );
    assert!(log.contains(&want), "{log}");
    assert!(common::proc_state(z.pid()).is_none());
    z.restore(&["--manage-cgroups=soft"]);
    assert_eq!(read_prop(&p.dir, "pids.max"), "max");
    z.kill();
    z.restore(&["--manage-cgroups=full"]);
    assert_eq!(read_prop(&p.dir, "pids.max"), "29");
    z.kill();
    remove(&[&p.dir]);
    z.restore(&["--manage-cgroups=strict"]);
    assert_eq!(read_prop(&p.dir, "pids.max"), "29");
    assert_eq!(z.go(), "PASS");
}

/// What CRIU 4.1.1 dumps of a task in cgroups of its own, we restore into
/// them, and the other way round.
#[test]
fn cgroups_cross_with_criu() {
    const TEST: &str = "cg_cross";
    let Some(pids) = hierarchy(TEST, Some("pids")) else {
        return;
    };
    let Some(peer) = common::peer::Peer::for_test(TEST) else {
        return;
    };
    let Some(mut z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    let p = Cgroup::new(&pids, TEST);
    std::fs::write(p.dir.join("pids.max"), "31").unwrap();
    p.add(z.pid());
    let p_path = p.path(&pids);
    let pid = z.pid().to_string();
    // CRIU dumps, we restore into the (made again) cgroup. CRIU records
    // every cgroup below the task's, even below a hierarchy's root where
    // the task shares criu's: there it would race the other tests of this
    // file making and removing theirs (its dump failed once so), so it is
    // asked for the pids hierarchy only.
    let (ok, log) = peer.criu(
        z.images(),
        &["dump", "-t", &pid, "--cgroup-dump-controller", "pids"],
    );
    assert!(ok, "{log}");
    z.wait_gone();
    remove(&[&p.dir]);
    z.restore(&[]);
    assert_eq!(path_of(z.pid(), Some("pids")), Some(p_path.clone()));
    assert_eq!(read_prop(&p.dir, "pids.max"), "31");
    // We dump, CRIU restores.
    let ours = z.new_dir("ours");
    z.dump_to(&ours, &[]);
    z.wait_gone();
    remove(&[&p.dir]);
    let (ok, log) = peer.criu(&ours, &["restore", "-d", "--pidfile", "restored.pid"]);
    assert!(ok, "{log}");
    z.restored_elsewhere();
    assert_eq!(path_of(z.pid(), Some("pids")), Some(p_path));
    assert_eq!(read_prop(&p.dir, "pids.max"), "31");
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

/// Dump steps a fault is injected at: the seize, then each stage with the
/// tasks seized and infected, up to the images written.
const FAULT_STEPS: [&str; 6] = [
    "seized",
    "collected",
    "infected",
    "pages",
    "cured",
    "images",
];

/// `--freeze-cgroup` dumps that fail (a fault injected at each of
/// [`FAULT_STEPS`]) leave the cgroup exactly as they found it, frozen or
/// thawed, its tasks untraced; the tree then runs on and passes its own
/// check. (containerd freezes a container's cgroup before it asks for a
/// dump, and thaws it only after the dump returns, failed or not.)
fn failed_dump_leaves_the_freezer(test: &str, controller: Option<&str>, frozen: bool) {
    let Some(mount) = hierarchy(test, controller) else {
        return;
    };
    let Some(z) = Zdtm::start(test, PROGRAM, &["count"]) else {
        return;
    };
    let cg = Cgroup::new(&mount, test);
    cg.add(z.pid());
    if frozen {
        cg.freeze(true);
    }
    let own = || {
        let (file, on) = if cg.v1() {
            ("freezer.self_freezing", "1")
        } else {
            ("cgroup.freeze", "1")
        };
        read_prop(&cg.dir, file) == on
    };
    let dir = cg.dir.display().to_string();
    let pid = z.pid().to_string();
    for step in FAULT_STEPS {
        let images = z.new_dir(&format!("fault-{step}"));
        let start = Instant::now();
        let (ok, log) = common::run_criu(
            &images,
            &[
                "dump",
                "-t",
                &pid,
                "--freeze-cgroup",
                &dir,
                "--manage-cgroups=ignore",
            ],
            &[("CRIU_DUMP_FAULT", std::ffi::OsStr::new(step))],
        );
        assert!(!ok, "{step}: the dump did not fail: {log}");
        assert!(
            log.contains(&format!("fault injected at step \"{step}\"")),
            "{step}: {log}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{step}: the failed dump took {:?}",
            start.elapsed()
        );
        assert_eq!(
            cg.frozen(),
            frozen,
            "{step}: the cgroup's state changed: {log}"
        );
        assert_eq!(
            own(),
            frozen,
            "{step}: the cgroup's own freeze changed: {log}"
        );
        assert_eq!(
            common::tracer_pid(z.pid()),
            Some(0),
            "{step}: the task was left traced: {log}"
        );
    }
    if frozen {
        cg.freeze(false);
    }
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_failed_dump_leaves_a_frozen_v2_cgroup_frozen() {
    failed_dump_leaves_the_freezer("fault_frozen_v2", None, true);
}

#[test]
fn a_failed_dump_leaves_a_frozen_v1_cgroup_frozen() {
    failed_dump_leaves_the_freezer("fault_frozen_v1", Some("freezer"), true);
}

#[test]
fn a_failed_dump_leaves_a_thawed_v1_cgroup_thawed() {
    failed_dump_leaves_the_freezer("fault_thawed_v1", Some("freezer"), false);
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
/// options do: a task in a frozen cgroup is refused for being frozen
/// (DEFAULT and IGNORE alike), and dumped with `freeze_cgroup`, the
/// cgroup left frozen.
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
    let want = format!("dump it with --freeze-cgroup {}", cg.dir.display());
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

/// Over RPC, `manage_cgroups` dumps the cgroups, and a restore with
/// `manage_cgroups_mode` FULL and a `cg_root` for the pids hierarchy puts
/// the task into the new cgroup, made with the dumped limit.
#[test]
fn rpc_manage_cgroups_and_cg_root() {
    const TEST: &str = "rpc_cg_root";
    let Some(pids) = hierarchy(TEST, Some("pids")) else {
        return;
    };
    let Some(mut z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    let p = Cgroup::new(&pids, TEST);
    std::fs::write(p.dir.join("pids.max"), "37").unwrap();
    p.add(z.pid());
    let images = z.new_dir("rpc");
    let dir = std::fs::File::open(&images).unwrap();
    let r = Client::swrk().call(&CriuReq {
        r#type: CriuReqType::Dump as i32,
        opts: Some(CriuOpts {
            images_dir_fd: dir.as_raw_fd(),
            pid: Some(z.pid()),
            manage_cgroups: Some(true),
            log_level: Some(4),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert!(r.success, "{r:?}");
    z.wait_gone();
    assert!(images.join("cgroup.img").exists());
    let moved = Cgroup::adopt(pids.join(format!("criu-test-{TEST}-moved-{}", std::process::id())));
    let r = Client::swrk().call(&CriuReq {
        r#type: CriuReqType::Restore as i32,
        opts: Some(CriuOpts {
            images_dir_fd: dir.as_raw_fd(),
            manage_cgroups_mode: Some(CriuCgMode::Full as i32),
            cg_root: vec![CgroupRoot {
                ctrl: Some("pids".into()),
                path: moved.path(&pids),
            }],
            log_level: Some(4),
            log_file: Some("restore.log".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert!(r.success, "{r:?}");
    z.restored_elsewhere();
    assert_eq!(path_of(z.pid(), Some("pids")), Some(moved.path(&pids)));
    assert_eq!(read_prop(&moved.dir, "pids.max"), "37");
    assert_eq!(z.go(), "PASS");
    drop(p);
}

/// `--cgroup-dump-controller pids`: only the pids hierarchy is recorded;
/// the task's own v2 cgroup is not (it comes back in criu's), its pids
/// cgroup is.
#[test]
fn cgroup_dump_controller_dumps_only_those() {
    const TEST: &str = "cg_only";
    let (Some(v2), Some(pids)) = (hierarchy(TEST, None), hierarchy(TEST, Some("pids"))) else {
        return;
    };
    let Some(mut z) = Zdtm::start(TEST, PROGRAM, &["count"]) else {
        return;
    };
    let a = Cgroup::new(&v2, TEST);
    let p = Cgroup::new(&pids, TEST);
    a.add(z.pid());
    p.add(z.pid());
    let p_path = p.path(&pids);
    z.dump(&["--cgroup-dump-controller", "pids"]);
    z.restore(&[]);
    assert_eq!(path_of(z.pid(), Some("pids")), Some(p_path));
    assert_eq!(
        path_of(z.pid(), None),
        path_of(std::process::id() as i32, None)
    );
    assert_eq!(z.go(), "PASS");
}
