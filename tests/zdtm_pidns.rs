//! A tree whose root is the init (pid 1) of its own pid namespace, as
//! `unshare --pid --fork PROG` makes it (here through the `ns_exec` test
//! program, which does the same with the system calls): it dumps with its
//! PIDs in that namespace and restores into a new one with them, the
//! root getting whatever PID the kernel gives it out here; with our tool
//! and CRIU 4.1.1 either way. A fault at the new restore step leaves no
//! process behind. A task of such a namespace that is not its init, and a
//! nested pid namespace, are refused by name with the tree left running.
//!
//! The harness is a child subreaper ([`Zdtm`]): a restored root is its
//! child once `criu restore -d` ends.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::peer::Peer;
use common::skipping::skip;
use common::zdtm::Zdtm;

const PROGRAM: &str = "zdtm_pid_ns";

/// `NSpid:` of `/proc/PATH/status`: the PID here first, in its own
/// namespace last.
fn nspid_at(path: &str) -> Vec<i32> {
    let text = std::fs::read_to_string(format!("/proc/{path}/status"))
        .unwrap_or_else(|e| panic!("/proc/{path}/status: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .expect("an NSpid line")
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect()
}

/// Our own number of PID levels.
fn our_levels() -> usize {
    nspid_at("self").len()
}

/// `PPid:` of task `pid` (here).
fn ppid(pid: i32) -> i32 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A tree as its namespace sees it: by PID there, the parent's PID there
/// (0 for the root) and every thread's TID there.
type View = BTreeMap<i32, (i32, Vec<i32>)>;

/// The [`View`] of the tree under `root`.
/// Asserts on the way that every task is one level below us and that
/// the first `NSpid:` field is the PID the kernel gave it here.
fn inside_view(root: i32) -> View {
    let levels = our_levels() + 1;
    let mut out = BTreeMap::new();
    for pid in std::iter::once(root).chain(common::descendants(root)) {
        let ns = nspid_at(&pid.to_string());
        assert_eq!(ns.len(), levels, "task {pid}: NSpid {ns:?}");
        assert_eq!(ns[0], pid, "task {pid}: NSpid {ns:?}");
        let parent = match pid == root {
            true => 0,
            false => *nspid_at(&ppid(pid).to_string()).last().unwrap(),
        };
        let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .map(|e| {
                let tid = e.file_name().into_string().unwrap();
                let ns = nspid_at(&format!("{pid}/task/{tid}"));
                assert_eq!(ns[0].to_string(), tid, "thread {tid}: NSpid {ns:?}");
                *ns.last().unwrap()
            })
            .collect();
        tids.sort_unstable();
        out.insert(*ns.last().unwrap(), (parent, tids));
    }
    out
}

/// Start the program as pid 1 of a new pid namespace; the tree's root is
/// that init (`ns_exec` stays outside, its parent, until it ends).
fn start(test: &str) -> Option<(Zdtm, View)> {
    let ns_exec = common::program_path("ns_exec");
    start_by(test, &[ns_exec.to_str().unwrap(), "pid", "--"])
}

/// [`start`] through `wrapper`, which must fork the program as pid 1 of
/// a new pid namespace and stay its parent.
fn start_by(test: &str, wrapper: &[&str]) -> Option<(Zdtm, View)> {
    let mut z = Zdtm::start_wrapped(test, wrapper, PROGRAM, &[])?;
    let kids = common::descendants(z.pid());
    let init = kids[0];
    assert_eq!(nspid_at(&init.to_string()).last(), Some(&1));
    z.retarget(init);
    let view = inside_view(init);
    // The init, A, B with G, and the orphan O; the init has 2 threads more.
    assert_eq!(view.len(), 5, "{view:?}");
    assert_eq!(view[&1].1.len(), 3, "{view:?}");
    assert!(
        view.values().filter(|(p, _)| *p == 1).count() == 3,
        "{view:?}"
    );
    Some((z, view))
}

/// The restored tree (root `root`) is the dumped one inside its
/// namespace, and the root is its init.
fn check_restored(root: i32, before: &View) {
    let ns = nspid_at(&root.to_string());
    assert_eq!((ns[0], *ns.last().unwrap()), (root, 1), "{ns:?}");
    assert_eq!(&inside_view(root), before);
}

#[test]
fn init_of_a_pid_namespace_restores_with_its_pids() {
    let Some((mut z, before)) = start("pid_ns") else {
        return;
    };
    let dumped = z.pid();
    z.dump(&[]);
    let images = z.images().to_path_buf();
    let root = z.restore_in_new_pid_ns(&images, &[]);
    let log = std::fs::read_to_string(images.join("restore.log")).unwrap();
    assert!(log.contains("new pid namespace"), "{log}");
    assert!(log.contains(&format!("Restored task {root}")), "{log}");
    // Its outer PID is the kernel's choice (usually not the old one).
    eprintln!("pid_ns: root {dumped} restored as {root}");
    check_restored(root, &before);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_tree_util_linux_unshare_started_restores_with_its_pids() {
    const TEST: &str = "pid_ns_unshare";
    let Some(unshare) = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| util_linux(p))
    else {
        return skip(TEST, "util-linux unshare is not installed");
    };
    // Not `--kill-child`: its parent-death signal is part of the init's
    // state, restored with it, and the restored init's parent (criu
    // restore -d) ends at once.
    let Some((mut z, before)) = start_by(TEST, &[unshare, "--pid", "--fork"]) else {
        return;
    };
    z.dump(&[]);
    let images = z.images().to_path_buf();
    let root = z.restore_in_new_pid_ns(&images, &[]);
    check_restored(root, &before);
    assert_eq!(z.go(), "PASS");
}

/// Whether `path` is util-linux's unshare (busybox's cannot make most
/// namespaces in the VMs' kernels).
fn util_linux(path: &str) -> bool {
    std::process::Command::new(path)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("util-linux"))
}

#[test]
fn criu_restores_our_pid_namespace_dump() {
    let Some(peer) = Peer::for_test("pid_ns_ours_to_criu") else {
        return;
    };
    let Some((mut z, before)) = start("pid_ns_ours_to_criu") else {
        return;
    };
    z.dump(&[]);
    let images = z.images().to_path_buf();
    let (ok, log) = peer.criu(&images, &["restore", "-d", "--pidfile", "restored.pid"]);
    assert!(ok, "CRIU's restore failed: {log}");
    let root = z.adopt_restored(&images);
    check_restored(root, &before);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn we_restore_criu_s_pid_namespace_dump() {
    let Some(peer) = Peer::for_test("pid_ns_criu_to_ours") else {
        return;
    };
    let Some((mut z, before)) = start("pid_ns_criu_to_ours") else {
        return;
    };
    let images = z.images().to_path_buf();
    let (ok, log) = peer.criu(&images, &["dump", "-t", &z.pid().to_string()]);
    assert!(ok, "CRIU's dump failed: {log}");
    z.wait_gone();
    let root = z.restore_in_new_pid_ns(&images, &[]);
    check_restored(root, &before);
    assert_eq!(z.go(), "PASS");
}

/// The PIDs of every process whose command line holds `arg`.
fn processes_with_arg(arg: &Path) -> Vec<i32> {
    let want = arg.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == want))
        })
        .collect()
}

#[test]
fn a_fault_after_the_fork_into_the_namespace_leaves_nothing() {
    let Some((mut z, before)) = start("pid_ns_faults") else {
        return;
    };
    z.dump(&[]);
    let images = z.images().to_path_buf();
    let work = z.work().to_path_buf();
    // The new step (every task found by its PID out here), and the
    // restorer's stages that fork and those after.
    for stage in ["pid-map", "session", "threads", "after-done"] {
        let env = [("CRIU_RESTORE_FAULT", std::ffi::OsStr::new(stage))];
        let (ok, log) = common::run_criu(&images, &["restore", "-d"], &env);
        assert!(!ok, "restore with a fault at {stage} worked: {log}");
        assert!(log.contains(stage), "{stage}: {log}");
        assert!(
            common::wait_until(common::zdtm::TIMEOUT, || processes_with_arg(&work)
                .is_empty()),
            "processes left after a fault at {stage}: {:?}",
            processes_with_arg(&work)
        );
    }
    let root = z.restore_in_new_pid_ns(&images, &[]);
    check_restored(root, &before);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_task_of_the_namespace_that_is_not_its_init_is_refused() {
    let Some((z, before)) = start("pid_ns_not_init") else {
        return;
    };
    // Child A: pid 2 there (its session is the init's: --shell-job).
    let a = common::descendants(z.pid())
        .into_iter()
        .find(|&p| nspid_at(&p.to_string()).last() == Some(&2))
        .unwrap();
    let images = z.new_dir("refused-images");
    let (ok, log) = common::run_criu(&images, &["dump", "-t", &a.to_string(), "--shell-job"], &[]);
    assert!(!ok, "{log}");
    assert!(
        log.contains(&format!("task {a} is in its own pid namespace"))
            && log.contains("is not its init (it is pid 2 there)"),
        "{log}"
    );
    assert!(!log.contains("Seized "), "{log}");
    assert_eq!(common::tracer_pid(a), Some(0));
    assert_eq!(inside_view(z.pid()), before);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_nested_pid_namespace_is_refused_by_name() {
    let ns_exec = common::program_path("ns_exec");
    let n = ns_exec.to_str().unwrap();
    // ns_exec (here) → ns_exec (init of ns 1) → program (init of ns 2).
    let wrapper = [n, "pid", "--", n, "pid", "--"];
    let Some(mut z) = Zdtm::start_wrapped("pid_ns_nested", &wrapper, "zdtm_refused", &["count"])
    else {
        return;
    };
    let kids = common::descendants(z.pid());
    let (outer_init, inner_init) = (kids[0], kids[1]);
    assert_eq!(nspid_at(&inner_init.to_string()).len(), our_levels() + 2);
    // The init of ns 1 starts its children in ns 2.
    // (It is in the session of the ns_exec that started it.)
    z.retarget(outer_init);
    let log = z.dump_refused(
        &["--shell-job"],
        &format!(
            "task {outer_init} starts its children in another pid namespace \
             (pid_for_children is pid:["
        ),
    );
    assert!(!log.contains("Seized "), "{log}");
    // The init of ns 2, two levels below ours.
    z.retarget(inner_init);
    let log = z.dump_refused(&[], &format!("task {inner_init} is in a pid namespace"));
    assert!(log.contains("nested 2 level(s) below criu's"), "{log}");
    assert_eq!(z.go(), "PASS");
}
