//! The end of a restore: no restored task runs its own code while its
//! restorer region is mapped, so tasks that fork the moment they run
//! again (tests/programs/zdtm/fork_restore.rs: a root, a child and the
//! child's second thread) never hand the region to a child, and after the
//! restore no task of the tree shows it in /proc/PID/maps.

mod common;

use common::zdtm::Zdtm;
use common::{descendants, reap};

/// The restorer's region as /proc/PID/maps shows it: the only shared
/// read+write+exec mapping of these programs.
fn region_lines(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("rwxs"))
        .map(str::to_string)
        .collect()
}

#[test]
fn tasks_forking_right_after_restore_never_inherit_the_restorer() {
    for round in 0..3 {
        let name = format!("zdtm-fork-restore-{round}");
        let Some(mut z) = Zdtm::start(&name, "zdtm_fork_restore", &[]) else {
            return;
        };
        // Its child may still be on its way when the root says ready.
        let pid = z.pid();
        common::wait_until(common::zdtm::TIMEOUT, || descendants(pid).len() == 1);
        let kids = descendants(pid);
        assert_eq!(kids.len(), 1, "one child before dump: {kids:?}");
        z.dump(&[]);
        reap(&kids);
        z.restore(&[]);
        let tree: Vec<i32> = std::iter::once(z.pid())
            .chain(descendants(z.pid()))
            .collect();
        assert!(tree.len() >= 2, "tree after restore: {tree:?}");
        for &p in &tree {
            assert_eq!(region_lines(p), Vec::<String>::new(), "task {p}");
        }
        assert_eq!(z.go(), "PASS", "round {round}");
    }
}

/// A `--pidfile` that cannot be written fails the restore, and the tree
/// (a root and its child) is killed with it rather than left running
/// where nobody was told (CRIU writes it before letting the tree go).
/// The images still restore afterwards.
#[test]
fn an_unwritable_pidfile_fails_the_restore_and_leaves_no_task() {
    let Some(mut z) = Zdtm::start("zdtm-pidfile-unwritable", "zdtm_tree", &["tree"]) else {
        return;
    };
    let kids = descendants(z.pid());
    assert!(!kids.is_empty(), "the tree has children");
    z.dump(&[]);
    reap(&kids);
    let images = z.images().to_path_buf();
    let (ok, log) = z.criu_in(
        &images,
        &["restore", "-d", "--pidfile", "no-such-dir/restored.pid"],
    );
    assert!(!ok, "the restore succeeded without its pidfile: {log}");
    assert!(
        log.contains("cannot write the pidfile"),
        "no pidfile error in: {log}"
    );
    // Killed children of the killed root come to us (the subreaper) as
    // zombies: reaped, they are gone.
    for p in std::iter::once(z.pid()).chain(kids.iter().copied()) {
        let gone = common::wait_until(std::time::Duration::from_secs(10), || {
            let pid = rustix::process::Pid::from_raw(p);
            let _ = rustix::process::waitpid(pid, rustix::process::WaitOptions::NOHANG);
            common::proc_state(p).is_none()
        });
        assert!(gone, "task {p} left after the failed restore: {log}");
    }
    z.restore(&[]);
    let kids = descendants(z.pid());
    let verdict = z.go();
    common::kill_all(&kids);
    assert_eq!(verdict, "PASS");
}
