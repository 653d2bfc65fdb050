//! ZDTM-style dump/restore tests of multi-threaded processes: every
//! thread comes back with its TID, registers, TLS, signal mask, pending
//! signals and sigaltstack, and runs on (see
//! tests/programs/zdtm/threads.rs).
#![cfg(target_arch = "x86_64")]

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
