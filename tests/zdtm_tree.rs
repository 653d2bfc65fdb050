//! ZDTM-style dump/restore tests of process trees (tests/programs/zdtm/
//! tree.rs): PIDs, parents, groups and sessions of three levels, shared
//! anonymous memory and an inherited file offset across processes,
//! zombies, a process group whose leader is gone, `--leave-running`, and
//! faults that must leave every task as it was (dump) or none at all
//! (restore).

mod common;

use common::{descendants, kill_all, reap};

use common::zdtm::Zdtm;
use rustix::process::Pid;

fn dump_restore_tree(test: &str, mode: &str, expect_tasks: usize) {
    dump_restore_tree_then(test, mode, expect_tasks, |_| {});
}

fn dump_restore_tree_then(test: &str, mode: &str, expect_tasks: usize, after: impl FnOnce(&Zdtm)) {
    let Some(mut z) = Zdtm::start(test, "zdtm_tree", &[mode]) else {
        return;
    };
    let kids = descendants(z.pid());
    assert_eq!(kids.len() + 1, expect_tasks, "tasks before dump: {kids:?}");
    z.dump(&[]);
    reap(&kids);
    z.restore(&[]);
    for k in &kids {
        assert!(common::proc_state(*k).is_some(), "task {k} not restored");
    }
    after(&z);
    assert_eq!(z.go(), "PASS");
}

/// 16 MiB of private memory filled by the root and changed in a few
/// pages by two children and a grandchild: after restore each child's
/// unchanged pages are its parent's page frames (copy-on-write, not one
/// copy per task), the changed ones its own, and writes stay private.
#[test]
fn forked_children_share_unchanged_private_pages_with_their_parent() {
    use criu_core::images::{Kind, pb, read_one};
    let Some(mut z) = Zdtm::start("zdtm-cow", "zdtm_cow", &[]) else {
        return;
    };
    let kids = descendants(z.pid());
    assert_eq!(kids.len(), 3, "tasks before dump: {kids:?}");
    z.dump(&[]);
    reap(&kids);
    z.restore(&[]);
    let stats: pb::StatsEntry = read_one(&z.images().join("stats-restore"), Kind::Stats).unwrap();
    let skipped = stats.restore.unwrap().pages_skipped_cow;
    let page = rustix::param::page_size() as u64;
    // Three children, each sharing all but a few of the 16 MiB's pages.
    assert!(
        skipped >= 3 * ((16 << 20) / page - 8),
        "pages_skipped_cow {skipped}"
    );
    assert_eq!(z.go(), "PASS");
}

#[test]
fn tree_of_three_levels_keeps_ids_memory_and_offsets() {
    dump_restore_tree("zdtm-tree", "tree", 4);
}

#[test]
fn tree_with_sessions_inside_and_a_child_left_in_the_old_one() {
    dump_restore_tree("zdtm-tree-sessions", "sessions", 5);
}

#[test]
fn tree_with_zombies_keeps_their_exit_status() {
    dump_restore_tree("zdtm-tree-zombie", "zombie", 4);
}

#[test]
fn tree_with_orphaned_process_group_gets_a_helper() {
    dump_restore_tree_then("zdtm-tree-orphan-pgid", "orphan-pgid", 2, |z| {
        // The helper that held the group is gone (reaped by its parent).
        let leader: i32 = std::fs::read_to_string(z.work().join("leader"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            common::proc_state(leader),
            None,
            "helper {leader} left behind"
        );
    });
}

#[test]
fn tree_dumped_twice_with_leave_running() {
    let Some(mut z) = Zdtm::start("zdtm-tree-twice", "zdtm_tree", &["tree"]) else {
        return;
    };
    let kids = descendants(z.pid());
    let first = z.new_dir("images-1");
    let second = z.new_dir("images-2");
    for images in [&first, &second] {
        z.dump_to(images, &["--leave-running"]);
        for p in std::iter::once(z.pid()).chain(kids.iter().copied()) {
            let st = common::proc_state(p);
            assert!(
                matches!(st, Some('S' | 'R')),
                "task {p} is {st:?} after --leave-running"
            );
        }
    }
    z.kill();
    kill_all(&kids);
    z.restore_from(&second, &[]);
    assert_eq!(z.go(), "PASS");
}

/// `--leave-stopped` stops the whole tree; SIGCONT lets it go on.
#[test]
fn tree_left_stopped() {
    let Some(mut z) = Zdtm::start("zdtm-tree-stopped", "zdtm_tree", &["tree"]) else {
        return;
    };
    let kids = descendants(z.pid());
    z.dump(&["--leave-stopped"]);
    let all: Vec<i32> = std::iter::once(z.pid())
        .chain(kids.iter().copied())
        .collect();
    for &p in &all {
        assert!(
            common::wait_until(common::zdtm::TIMEOUT, || common::proc_state(p) == Some('T')),
            "task {p} is {:?} after --leave-stopped",
            common::proc_state(p)
        );
    }
    for &p in &all {
        let _ =
            rustix::process::kill_process(Pid::from_raw(p).unwrap(), rustix::process::Signal::CONT);
    }
    let verdict = z.go();
    kill_all(&kids);
    assert_eq!(verdict, "PASS");
}

/// A dump that fails in the middle of the tree (in its third task, after
/// the first two were infected and cured) leaves every task running.
#[test]
fn dump_fault_in_the_middle_leaves_the_tree_running() {
    let Some(z) = Zdtm::start("zdtm-tree-dump-fault", "zdtm_tree", &["tree"]) else {
        return;
    };
    let kids = descendants(z.pid());
    for step in ["pages", "misc", "parasite-fini"] {
        let images = z.new_dir(&format!("images-{step}"));
        let pid = z.pid().to_string();
        let env = [
            ("CRIU_DUMP_FAULT", std::ffi::OsStr::new(step)),
            ("CRIU_DUMP_FAULT_TASK", std::ffi::OsStr::new("2")),
        ];
        let (ok, log) = common::run_criu(&images, &["dump", "-t", &pid], &env);
        assert!(!ok, "dump with a fault at {step} worked: {log}");
        assert!(log.contains("fault injected"), "{log}");
        for p in std::iter::once(z.pid()).chain(kids.iter().copied()) {
            let st = common::proc_state(p);
            assert!(
                matches!(st, Some('S' | 'R')),
                "task {p} is {st:?} after a fault at {step}"
            );
        }
    }
    let verdict = z.go();
    kill_all(&kids);
    assert_eq!(verdict, "PASS");
}

/// A restore that fails in a child task (not the root) leaves no task of
/// the tree behind, and the images restore fine afterwards.
#[test]
fn restore_fault_in_a_child_leaves_nothing() {
    let Some(mut z) = Zdtm::start("zdtm-tree-restore-fault", "zdtm_tree", &["tree"]) else {
        return;
    };
    let kids = descendants(z.pid());
    z.dump(&[]);
    reap(&kids);
    let all: Vec<i32> = std::iter::once(z.pid())
        .chain(kids.iter().copied())
        .collect();
    // The grandchild: the deepest task.
    let victim = kids.iter().max().unwrap().to_string();
    for stage in [
        "session",
        "fds",
        "map-vmas",
        "creds",
        "threads",
        "after-done",
    ] {
        let env = [
            ("CRIU_RESTORE_FAULT", std::ffi::OsStr::new(stage)),
            ("CRIU_RESTORE_FAULT_PID", std::ffi::OsStr::new(&victim)),
        ];
        let (ok, log) = common::run_criu(z.images(), &["restore", "-d"], &env);
        assert!(!ok, "restore with a fault at {stage} worked: {log}");
        assert!(
            common::wait_until(common::zdtm::TIMEOUT, || {
                reap(&all);
                all.iter().all(|&p| common::proc_state(p).is_none())
            }),
            "tasks left after a fault at {stage}: {:?}",
            all.iter()
                .map(|&p| (p, common::proc_state(p)))
                .collect::<Vec<_>>()
        );
    }
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

/// A PID of the tree still taken (a dumped task's zombie not reaped yet):
/// the restore says so and leaves no task of the tree behind.
#[test]
fn busy_child_pid_is_reported_and_nothing_is_left() {
    let Some(mut z) = Zdtm::start("zdtm-tree-busy", "zdtm_tree", &["tree"]) else {
        return;
    };
    let kids = descendants(z.pid());
    z.dump(&[]);
    let busy = *kids.iter().max().unwrap();
    let others: Vec<i32> = kids.iter().copied().filter(|&k| k != busy).collect();
    reap(&others);
    assert!(common::wait_until(common::zdtm::TIMEOUT, || {
        common::proc_state(busy) == Some('Z')
    }));
    let (ok, log) = common::run_criu(z.images(), &["restore", "-d"], &[]);
    assert!(!ok, "restore over a busy PID worked: {log}");
    // The zombie also holds its session's id, the root's PID, which the
    // kernel then refuses first.
    assert!(log.contains("is in use"), "{log}");
    let all: Vec<i32> = std::iter::once(z.pid())
        .chain(others.iter().copied())
        .collect();
    assert!(
        common::wait_until(common::zdtm::TIMEOUT, || {
            reap(&all);
            all.iter().all(|&p| common::proc_state(p).is_none())
        }),
        "tasks left after a busy PID"
    );
    reap(&[busy]);
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

/// A tree we did not write: a shell with two children in its session.
#[test]
fn shell_tree_restores() {
    if let Some(why) = common::cannot_checkpoint() {
        common::skip("zdtm-tree-shell", why);
        return;
    }
    if std::process::Command::new("bash")
        .args(["-c", "true"])
        .status()
        .is_err()
    {
        common::skip("zdtm-tree-shell", "bash is not installed");
        return;
    }
    common::become_subreaper();
    let dir = common::TempDir::new("zdtm-tree-shell");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    // Fds the test runner leaks to us (a jobserver pipe) are closed first:
    // pipes are not dumped yet.
    let script = "for f in /proc/$$/fd/*; do n=${f##*/}; \
                  [ \"$n\" -gt 2 ] && eval \"exec $n>&-\"; done 2>/dev/null; \
                  sleep 1000 & sleep 1000 & exec sleep 1000";
    let mut child = std::process::Command::new("setsid")
        .args(["bash", "-c", script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    assert!(common::wait_until(common::zdtm::TIMEOUT, || {
        descendants(pid).len() == 2
            && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e.ends_with("sleep"))
    }));
    let kids = descendants(pid);
    let (ok, log) = common::run_criu(&images, &["dump", "-t", &pid.to_string()], &[]);
    assert!(ok, "dump: {log}");
    let _ = child.wait();
    reap(&kids);
    let (ok, log) = common::run_criu(&images, &["restore", "-d"], &[]);
    assert!(ok, "restore: {log}");
    let all: Vec<i32> = std::iter::once(pid).chain(kids.iter().copied()).collect();
    for &p in &all {
        assert!(
            common::proc_state(p).is_some(),
            "task {p} not restored: {log}"
        );
    }
    let mut restored = descendants(pid);
    restored.sort_unstable();
    let mut want = kids.clone();
    want.sort_unstable();
    assert_eq!(restored, want, "children of the restored shell");
    kill_all(&all);
}

/// Processes sharing one fd table (CLONE_FILES: root, C1 and C1's child
/// G) and one cwd (CLONE_FS: root and C1) beside a child sharing nothing
/// (tests/programs/zdtm/clone_files.rs): after restore an fd opened or
/// closed by one is seen by the others, a chdir by its fs partner only.
#[test]
fn shared_fd_table_and_fs_come_back_shared() {
    let Some(mut z) = Zdtm::start("zdtm-tree-clone-files", "zdtm_clone_files", &["share"]) else {
        return;
    };
    let kids = descendants(z.pid());
    assert_eq!(kids.len(), 3, "C1, G and C2: {kids:?}");
    z.dump(&[]);
    reap(&kids);
    let ids = std::fs::read_dir(z.images())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("fdinfo-"))
        .count();
    assert_eq!(ids, 2, "one fdinfo image per fd table (root's and C2's)");
    // Failures in a task sharing the table (C1 lends it on to G) or in
    // its owner, around the stages that hand the table's fds over, leave
    // no task behind.
    let all: Vec<i32> = std::iter::once(z.pid())
        .chain(kids.iter().copied())
        .collect();
    let c1 = *kids.iter().min().unwrap();
    for (stage, victim) in [
        ("fds", c1),
        ("close-fds", c1),
        ("close-fds", z.pid()),
        ("fd-state", c1),
    ] {
        let victim = victim.to_string();
        let env = [
            ("CRIU_RESTORE_FAULT", std::ffi::OsStr::new(stage)),
            ("CRIU_RESTORE_FAULT_PID", std::ffi::OsStr::new(&victim)),
        ];
        let (ok, log) = common::run_criu(z.images(), &["restore", "-d"], &env);
        assert!(
            !ok,
            "restore with a fault at {stage} in {victim} worked: {log}"
        );
        assert!(
            common::wait_until(common::zdtm::TIMEOUT, || {
                reap(&all);
                all.iter().all(|&p| common::proc_state(p).is_none())
            }),
            "tasks left after a fault at {stage} in {victim}"
        );
    }
    z.restore(&[]);
    for k in &kids {
        assert!(common::proc_state(*k).is_some(), "task {k} not restored");
    }
    assert_eq!(z.go(), "PASS");
}

/// A table shared by two siblings (CLONE_FILES | CLONE_PARENT) cannot be
/// made again by forking: the dump refuses by name and the tree runs on.
#[test]
fn fd_table_shared_by_siblings_is_refused_by_name() {
    let Some(z) = Zdtm::start("zdtm-tree-clone-sibling", "zdtm_clone_files", &["sibling"]) else {
        return;
    };
    let c4: i32 = std::fs::read_to_string(z.work().join("c4"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut kids = descendants(z.pid());
    kids.sort_unstable();
    assert_eq!(kids.len(), 2, "{kids:?}");
    let c2 = kids.iter().copied().find(|&k| k != c4).unwrap();
    let pid = z.pid().to_string();
    let (ok, log) = z.criu_in(z.images(), &["dump", "-t", &pid]);
    assert!(!ok, "the dump went through: {log}");
    let (a, b) = (c2.min(c4), c2.max(c4));
    assert!(
        log.contains(&format!("tasks {a} and {b} share one fd table")),
        "{log}"
    );
    for p in [z.pid(), c2, c4] {
        assert!(
            matches!(common::proc_state(p), Some('S' | 'R')),
            "task {p} not left running"
        );
    }
    assert_eq!(z.go(), "PASS");
}
