//! ZDTM-style dump/restore tests of a task's own state: counting, files,
//! rlimits, cwd and umask, rseq, and repeated dumps with `--leave-running`.
//! Each program checks itself after restore (see tests/programs/zdtm/).
#![cfg(target_arch = "x86_64")]

mod common;

use common::zdtm::{TIMEOUT, Zdtm};

fn progress(z: &Zdtm) -> u64 {
    std::fs::read_to_string(z.work().join("progress"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn counter_counts_on_from_where_it_stopped() {
    let Some(mut z) = Zdtm::start("zdtm-counter", "zdtm_counter", &[]) else {
        return;
    };
    assert!(common::wait_until(TIMEOUT, || progress(&z) >= 128));
    z.dump(&[]);
    let at_dump = progress(&z);
    z.restore(&[]);
    assert!(
        common::wait_until(TIMEOUT, || progress(&z) > at_dump),
        "restored counter does not count on from {at_dump}"
    );
    assert!(progress(&z) < at_dump + 1_000_000, "counter jumped");
    assert_eq!(z.go(), "PASS");
}
