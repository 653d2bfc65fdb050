//! ZDTM-style dump/restore tests of signal, timer and task-attribute
//! state: sigactions, pending signals, interval timers, POSIX timers and
//! prctl-set task attributes. Each program checks itself after restore
//! (see tests/programs/zdtm/).

mod common;

use common::zdtm::{TIMEOUT, Zdtm, dump_restore};

fn run(test: &str, program: &str) {
    run_with(test, program, &[]);
}

fn run_with(test: &str, program: &str, args: &[&str]) {
    if let Some(verdict) = dump_restore(test, program, args) {
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
fn many_queued_realtime_signals_survive() {
    run_with(
        "zdtm-pending-signals-many",
        "zdtm_pending_signals",
        &["many"],
    );
}

#[test]
fn itimers_keep_their_intervals_and_fire() {
    run("zdtm-itimers", "zdtm_itimers");
}

#[test]
fn expired_itimer_with_blocked_sigalrm_stays_armed() {
    run_with("zdtm-itimers-blocked", "zdtm_itimers", &["blocked"]);
}

#[test]
fn posix_timers_keep_ids_and_fire() {
    run("zdtm-posix-timers", "zdtm_posix_timers");
}

#[test]
fn pending_posix_timer_signal_survives() {
    run_with(
        "zdtm-posix-timers-blocked",
        "zdtm_posix_timers",
        &["blocked"],
    );
}

#[test]
fn posix_timer_id_holes_stay_holes() {
    run_with("zdtm-posix-timers-gap", "zdtm_posix_timers", &["gap"]);
}

#[test]
fn sigaltstack_with_autodisarm_survives() {
    run("zdtm-sigaltstack", "zdtm_sigaltstack");
}

/// Start `program inside`, dump once its handler runs (`DIR/inside`),
/// restore, check.
fn dump_inside_handler(test: &str, program: &str) {
    let Some(mut z) = Zdtm::start(test, program, &["inside"]) else {
        return;
    };
    let inside = common::wait_for_file(&z.work().join("inside"), TIMEOUT);
    assert!(inside.is_some(), "{test}: the handler did not start");
    z.dump(&[]);
    z.restore(&[]);
    assert_eq!(z.go(), "PASS", "{test}");
}

#[test]
fn dump_inside_a_handler_on_the_alternate_stack() {
    dump_inside_handler("zdtm-sigaltstack-inside", "zdtm_sigaltstack");
}

#[test]
fn dump_inside_a_handler_keeps_its_mask() {
    dump_inside_handler("zdtm-sigactions-inside", "zdtm_sigactions");
}

#[test]
fn task_attributes_survive() {
    run("zdtm-task-attrs", "zdtm_task_attrs");
}

/// Dump with `--leave-running`, then let the program check itself: the
/// dump must leave its signal and timer state as it found it.
fn dump_leave_running(test: &str, program: &str, args: &[&str]) {
    let Some(mut z) = Zdtm::start(test, program, args) else {
        return;
    };
    z.dump(&["--leave-running"]);
    assert_eq!(z.go(), "PASS", "{test}");
}

#[test]
fn dumping_leaves_signal_and_timer_state_alone() {
    for (program, args) in [
        ("zdtm_sigactions", &[][..]),
        ("zdtm_pending_signals", &[]),
        ("zdtm_itimers", &["blocked"]),
        ("zdtm_posix_timers", &["gap", "blocked"]),
        ("zdtm_task_attrs", &[]),
        ("zdtm_sigaltstack", &[]),
    ] {
        let test = format!("zdtm-leave-running-{program}");
        dump_leave_running(&test, program, args);
    }
}
