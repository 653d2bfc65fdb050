//! ZDTM-style dump/restore tests of signal, timer and task-attribute
//! state: sigactions, pending signals, interval timers, POSIX timers and
//! prctl-set task attributes. Each program checks itself after restore
//! (see tests/programs/zdtm/).
#![cfg(target_arch = "x86_64")]

mod common;

use common::zdtm::dump_restore;

fn run(test: &str, program: &str) {
    if let Some(verdict) = dump_restore(test, program, &[]) {
        assert_eq!(verdict, "PASS", "{test}");
    }
}

#[test]
fn sigactions_and_blocked_mask_survive() {
    run("zdtm-sigactions", "zdtm_sigactions");
}

#[test]
fn pending_signals_survive_in_order() {
    run("zdtm-pending-signals", "zdtm_pending_signals");
}

#[test]
fn itimers_keep_their_intervals_and_fire() {
    run("zdtm-itimers", "zdtm_itimers");
}

#[test]
fn posix_timers_keep_ids_and_fire() {
    run("zdtm-posix-timers", "zdtm_posix_timers");
}

#[test]
fn task_attributes_survive() {
    run("zdtm-task-attrs", "zdtm_task_attrs");
}
