//! ZDTM-style dump/restore tests of multi-threaded processes: every
//! thread comes back with its TID, registers, TLS, signal mask, pending
//! signals and sigaltstack, and runs on (see
//! tests/programs/zdtm/threads.rs).

mod common;

use common::zdtm::dump_restore;

fn run(test: &str, args: &[&str]) {
    if let Some(verdict) = dump_restore(test, "zdtm_threads", args) {
        assert_eq!(verdict, "PASS", "{test}");
    }
}

#[test]
fn every_thread_keeps_its_tid_mask_tls_and_signals() {
    run("zdtm-threads", &[]);
}

#[test]
fn a_single_extra_thread_comes_back() {
    run("zdtm-threads-1", &["1"]);
}

#[test]
fn many_threads_come_back() {
    run("zdtm-threads-12", &["12"]);
}

#[test]
fn a_failure_in_a_thread_leaves_no_thread_behind() {
    use std::process::{Command, Stdio};
    let Some(mut z) = common::zdtm::Zdtm::start("zdtm-threads-faults", "zdtm_threads", &[]) else {
        return;
    };
    let pid = z.pid();
    let tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    assert_eq!(tids.len(), 5, "{tids:?}");
    z.dump(&[]);
    // "creds" and "arch-state" fail inside the threads first (they run
    // these before the main thread does); "threads" in the main thread.
    for stage in ["threads", "creds", "arch-state", "after-done"] {
        let ok = Command::new(env!("CARGO_BIN_EXE_criu"))
            .env(criu_core::restore::FAULT_ENV, stage)
            .args(["restore", "-d", "-D"])
            .arg(z.images())
            .args(["-v4", "-o", "fault.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run criu")
            .success();
        let log = std::fs::read_to_string(z.images().join("fault.log")).unwrap_or_default();
        assert!(!ok, "restore with a fault at {stage} succeeded: {log}");
        assert!(log.contains(stage), "{stage}: {log}");
        for &t in &tids {
            assert_eq!(common::proc_state(t), None, "{t} left after {stage}");
        }
    }
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_stopped_multi_threaded_task_comes_back_stopped() {
    use rustix::process::{Pid, Signal};
    let Some(mut z) = common::zdtm::Zdtm::start("zdtm-threads-stopped", "zdtm_threads", &[]) else {
        return;
    };
    let pid = z.pid();
    let p = Pid::from_raw(pid).unwrap();
    let timeout = common::zdtm::TIMEOUT;
    let all_stopped = || {
        let tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        tids.len() == 5 && tids.iter().all(|&t| common::proc_state(t) == Some('T'))
    };
    rustix::process::kill_process(p, Signal::STOP).unwrap();
    assert!(common::wait_until(timeout, all_stopped), "not stopped");
    z.dump(&[]);
    z.restore(&[]);
    assert!(
        common::wait_until(timeout, all_stopped),
        "restored task is not stopped in every thread"
    );
    rustix::process::kill_process(p, Signal::CONT).unwrap();
    assert_eq!(z.go(), "PASS");
}
