//! Every kind of fd at once in a small tree (tests/programs/zdtm/mix.rs):
//! files with offsets and dups, a directory, /dev/null, a memfd, a pipe
//! and a FIFO with data, unix sockets, eventfd, signalfd, timerfd, one
//! epoll instance shared by two tasks, inotify, a ghost file and a flock;
//! and a tree whose processes share an fd table (CLONE_FILES), which a
//! dump refuses, leaving it running.
#![cfg(any(target_arch = "x86_64", target_arch = "powerpc64"))]

mod common;

use common::zdtm::Zdtm;
use rustix::process::{Pid, WaitOptions};

fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

#[test]
fn every_fd_kind_in_a_tree_sharing_an_epoll() {
    let Some(mut z) = Zdtm::start("zdtm-mix", "zdtm_mix", &[]) else {
        return;
    };
    let kids = children(z.pid());
    assert_eq!(kids.len(), 1, "{kids:?}");
    z.dump(&["--file-locks"]);
    for &k in &kids {
        let _ = rustix::process::waitpid(Pid::from_raw(k), WaitOptions::empty());
    }
    z.restore(&["--file-locks"]);
    assert_eq!(children(z.pid()), kids, "the child is back");
    assert_eq!(z.go(), "PASS");
}

#[test]
fn processes_sharing_an_fd_table_are_refused_by_name() {
    let Some(z) = Zdtm::start("zdtm-mix-clone-files", "zdtm_mix", &["clone-files"]) else {
        return;
    };
    let kids = children(z.pid());
    assert_eq!(kids.len(), 1, "{kids:?}");
    let pid = z.pid().to_string();
    let (ok, log) = z.criu_in(z.images(), &["dump", "-t", &pid]);
    assert!(!ok, "the dump went through: {log}");
    assert!(
        log.contains(&format!(
            "tasks {} and {} share one fd table",
            z.pid(),
            kids[0]
        )),
        "{log}"
    );
    for p in [z.pid(), kids[0]] {
        assert!(
            matches!(common::proc_state(p), Some('S' | 'R')),
            "task {p} not left running"
        );
    }
    assert_eq!(z.go(), "PASS");
}
