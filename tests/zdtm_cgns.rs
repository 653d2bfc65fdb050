//! Cgroup namespaces: a tree whose root unshared its cgroup namespace
//! (`unshare -C`, as runc does on cgroup v2) after joining cgroups of its
//! own, then moved below them, is dumped with the namespace's roots
//! (`cgroup.img`'s `cgns_prefix`, as CRIU records them) and restored into
//! a new namespace rooted at the same cgroups: the tasks see the same
//! `/proc/self/cgroup` inside, and are in the same cgroups outside
//! (`zdtm_cgns` checks the inside itself). By criu and by CRIU 4.1.1
//! both ways; a fault at the restorer's cgroup stage leaves no task and
//! no cgroup behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cgroups::{hierarchy, path_of};
use common::zdtm::Zdtm;

const PROGRAM: &str = "zdtm_cgns";

/// A namespace's root cgroup and the cgroup below it the tasks move to,
/// in one hierarchy; removed (once empty) when dropped.
struct Pair {
    mount: PathBuf,
    outer: PathBuf,
    inner: PathBuf,
}

impl Pair {
    fn new(mount: &Path, test: &str) -> Pair {
        let outer = mount.join(format!("criu-test-{test}-{}", std::process::id()));
        let inner = outer.join("inner");
        std::fs::create_dir_all(&inner).unwrap_or_else(|e| panic!("{}: {e}", inner.display()));
        Pair {
            mount: mount.to_path_buf(),
            outer,
            inner,
        }
    }

    fn args(&self) -> [String; 2] {
        [
            self.outer.display().to_string(),
            self.inner.display().to_string(),
        ]
    }

    /// The inner cgroup's path as `/proc/PID/cgroup` shows it to us.
    fn inner_path(&self) -> String {
        format!(
            "/{}",
            self.inner.strip_prefix(&self.mount).unwrap().display()
        )
    }

    /// Remove both (the dumped tree is gone), for the restore to make them.
    fn remove(&self) {
        for d in [&self.inner, &self.outer] {
            assert!(
                common::wait_until(Duration::from_secs(5), || std::fs::remove_dir(d).is_ok()),
                "cannot remove {}",
                d.display()
            );
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        common::wait_until(Duration::from_secs(2), || {
            let _ = std::fs::remove_dir(&self.inner);
            std::fs::remove_dir(&self.outer).is_ok() || !self.outer.exists()
        });
    }
}

fn start(test: &str, pairs: &[&Pair]) -> Option<Zdtm> {
    let args: Vec<String> = pairs.iter().flat_map(|p| p.args()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Zdtm::start(test, PROGRAM, &args)
}

/// Dump with us (killing the tree, its worker reaped too).
fn dump_to(z: &mut Zdtm, images: &Path, extra: &[&str]) {
    let kids = common::descendants(z.pid());
    z.dump_to(images, extra);
    common::reap(&kids);
}

fn ns_link(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/cgroup"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("no link: {e}"))
}

/// The restored root is in the inner cgroups, in a cgroup namespace that
/// is not ours.
fn assert_restored(z: &Zdtm, v2: Option<&Pair>, pids: &Pair) {
    if let Some(v2) = v2 {
        assert_eq!(path_of(z.pid(), None), Some(v2.inner_path()));
    }
    assert_eq!(path_of(z.pid(), Some("pids")), Some(pids.inner_path()));
    assert_ne!(ns_link(z.pid()), ns_link(std::process::id() as i32));
}

#[test]
fn own_cgroup_namespace_is_restored_at_its_roots() {
    const TEST: &str = "cgns";
    let (Some(v2m), Some(pidsm)) = (hierarchy(TEST, None), hierarchy(TEST, Some("pids"))) else {
        return;
    };
    let (v2, pids) = (Pair::new(&v2m, TEST), Pair::new(&pidsm, TEST));
    let Some(mut z) = start(TEST, &[&v2, &pids]) else {
        return;
    };
    let before = std::fs::read_to_string(format!("/proc/{}/cgroup", z.pid())).unwrap();
    let images = z.images().to_path_buf();
    dump_to(&mut z, &images, &[]);
    let log = std::fs::read_to_string(images.join("dump.log")).unwrap_or_default();
    let want = format!("has its own cgroup namespace, rooted at /criu-test-{TEST}-");
    assert!(log.contains(&want), "{log}");
    v2.remove();
    pids.remove();
    z.restore(&[]);
    assert_restored(&z, Some(&v2), &pids);
    let after = std::fs::read_to_string(format!("/proc/{}/cgroup", z.pid())).unwrap();
    assert_eq!(before, after);
    let dl = std::fs::read_to_string(images.join("dump.log")).unwrap_or_default();
    let rl = std::fs::read_to_string(images.join("restore.log")).unwrap_or_default();
    let v = z.go();
    assert_eq!(v, "PASS", "{dl}\n-----\n{rl}");
}

/// A fault in the restorer's cgroup stage (after the cgroups are made):
/// the restore fails naming it, and removes the tasks and the cgroups it
/// made; the images then restore.
#[test]
fn a_failed_restore_leaves_no_cgroup_namespace_roots_behind() {
    const TEST: &str = "cgns_fault";
    let Some(pidsm) = hierarchy(TEST, Some("pids")) else {
        return;
    };
    let pids = Pair::new(&pidsm, TEST);
    let Some(mut z) = start(TEST, &[&pids]) else {
        return;
    };
    let images = z.images().to_path_buf();
    dump_to(&mut z, &images, &[]);
    pids.remove();
    let env = [("CRIU_RESTORE_FAULT", std::ffi::OsStr::new("cgroups"))];
    let (ok, log) = common::run_criu(&images, &["restore", "-d"], &env);
    assert!(!ok, "{log}");
    assert!(log.contains("at stage cgroups"), "{log}");
    assert!(common::wait_until(Duration::from_secs(5), || {
        common::proc_state(z.pid()).is_none()
    }));
    assert!(!pids.outer.exists(), "{log}");
    z.restore(&[]);
    assert_restored(&z, None, &pids);
    assert_eq!(z.go(), "PASS");
}

/// What CRIU 4.1.1 dumps of a tree in its own cgroup namespace we
/// restore into a new one at the same roots, and the other way round.
/// (CRIU walks every cgroup below a hierarchy's root where the task
/// shares criu's, racing the other tests' cgroups: both dumps record the
/// pids hierarchy only, where the namespace's roots are.)
#[test]
fn own_cgroup_namespace_crosses_with_criu() {
    const TEST: &str = "cgns_cross";
    let Some(pidsm) = hierarchy(TEST, Some("pids")) else {
        return;
    };
    let Some(peer) = common::peer::Peer::for_test(TEST) else {
        return;
    };
    let pids = Pair::new(&pidsm, TEST);
    let Some(mut z) = start(TEST, &[&pids]) else {
        return;
    };
    let only = ["--cgroup-dump-controller", "pids"];
    // CRIU dumps, we restore.
    let pid = z.pid().to_string();
    let kids = common::descendants(z.pid());
    let mut args = vec!["dump", "-t", &pid];
    args.extend_from_slice(&only);
    let (ok, log) = peer.criu(z.images(), &args);
    assert!(ok, "{log}");
    z.wait_gone();
    common::reap(&kids);
    pids.remove();
    z.restore(&[]);
    assert_restored(&z, None, &pids);
    // We dump, CRIU restores.
    let ours = z.new_dir("ours");
    dump_to(&mut z, &ours, &only);
    pids.remove();
    let (ok, log) = peer.criu(&ours, &["restore", "-d", "--pidfile", "restored.pid"]);
    assert!(ok, "{log}");
    z.restored_elsewhere();
    assert_restored(&z, None, &pids);
    assert_eq!(z.go(), "PASS");
}

/// A root started in its own cgroup namespace where it stands (`unshare
/// -C` through `ns_exec`, in the harness's cgroups), which a dump refused
/// before, is dumped and restored in a new cgroup namespace rooted there.
#[test]
fn a_root_unshared_in_place_is_restored() {
    const TEST: &str = "cgns_in_place";
    let ns_exec = common::program_path("ns_exec");
    let wrapper = [ns_exec.to_str().unwrap(), "cgroup", "--"];
    let Some(mut z) = Zdtm::start_wrapped(TEST, &wrapper, "zdtm_refused", &["count"]) else {
        return;
    };
    let before = std::fs::read_to_string(format!("/proc/{}/cgroup", z.pid())).unwrap();
    z.dump(&["--shell-job"]);
    z.restore(&["--shell-job"]);
    let after = std::fs::read_to_string(format!("/proc/{}/cgroup", z.pid())).unwrap();
    assert_eq!(before, after);
    assert_ne!(ns_link(z.pid()), ns_link(std::process::id() as i32));
    assert_eq!(z.go(), "PASS");
}
