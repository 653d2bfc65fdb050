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
