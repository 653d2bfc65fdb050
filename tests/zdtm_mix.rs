//! Every kind of fd at once in a small tree (tests/programs/zdtm/mix.rs):
//! files with offsets and dups, a directory, /dev/null, a memfd, a pipe
//! and a FIFO with data, unix sockets, eventfd, signalfd, timerfd, one
//! epoll instance shared by two tasks, inotify, a ghost file and a flock.

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
