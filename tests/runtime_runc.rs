//! runc (Debian 12's 1.1.5) checkpoints and restores a busybox container
//! with our criu (`runc --criu`), over criu's RPC as runc speaks it
//! (`criu swrk`: a version check, then DUMP and RESTORE with `root`,
//! `ext_mnt` for its cgroup and device binds, `empty_ns` for the network
//! namespace, `evasive_devices`, notify scripts): three cycles in a row,
//! the container's count going on from where it stopped each time; and
//! the same container's images cross with CRIU 4.1.1 both ways.
//!
//! The container: `tests/common/container.rs`.
//!
//! Native only: the foreign VMs have no container runtime.
#![cfg(target_arch = "x86_64")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::container::{Container, Runtime, runc_cannot_run as cannot_run};
use common::peer::Peer;

const OURS: &str = env!("CARGO_BIN_EXE_criu");

#[test]
fn runc_checkpoints_and_restores_a_busybox_container_three_times() {
    const TEST: &str = "runc_cycles";
    if cannot_run(TEST) {
        return;
    }
    let c = Container::new(TEST, Runtime::Runc);
    let (_, mut seen) = c.start();
    let ours = Path::new(OURS);
    for cycle in 1..=3 {
        let images = c.bundle.join(format!("ck{cycle}"));
        (_, seen) = c.cycle(ours, ours, images.to_str().unwrap(), seen);
    }
    let (ok, out) = c.run(None, &["kill", &c.id, "KILL"]);
    assert!(ok, "runc kill: {out}");
}

/// Our checkpoint restored by CRIU 4.1.1, its checkpoint restored by us.
#[test]
fn runc_images_cross_with_criu_4_1_1() {
    const TEST: &str = "runc_crossover";
    if cannot_run(TEST) {
        return;
    }
    let Some(peer) = Peer::for_test(TEST) else {
        return;
    };
    common::container::cross(TEST, Runtime::Runc, Path::new(OURS), &peer.dir.join("criu"));
}

/// `checkpoint --leave-running`, then two containers restored from the
/// same images.
#[test]
fn runc_leave_running_and_two_restores_of_one_checkpoint() {
    const TEST: &str = "runc_twice";
    if cannot_run(TEST) {
        return;
    }
    common::container::leave_running_then_restore_twice(TEST, Runtime::Runc, Path::new(OURS));
}

/// `checkpoint --pre-dump` twice (the second with `--parent-path`), then
/// the final checkpoint with `--parent-path`, restored: three cycles, the
/// count going on each time. runc asks criu for `mem_track` first
/// (FEATURE_CHECK), sends PRE_DUMP, and closes the connection after the
/// answer; the later rounds send `track_mem` and `parent_img`.
#[test]
fn runc_pre_dumps_then_dumps_a_busybox_container_three_times() {
    const TEST: &str = "runc_predump";
    if cannot_run(TEST) {
        return;
    }
    let c = Container::new(TEST, Runtime::Runc);
    let (_, mut seen) = c.start();
    let ours = Path::new(OURS);
    for cycle in 1..=3 {
        let dir = c.bundle.join(format!("it{cycle}"));
        (_, seen) = c.pre_dump_cycle(ours, ours, &dir, seen);
    }
    let (ok, out) = c.run(None, &["kill", &c.id, "KILL"]);
    assert!(ok, "runc kill: {out}");
}

/// Iterative checkpoints crossing with CRIU 4.1.1: ours pre-dumps twice
/// and dumps, CRIU restores (following our parent chain). The other way
/// round needs CRIU's memory tracking, soft-dirty: where the kernel has
/// it, CRIU pre-dumps and dumps and we restore; where it has none (this
/// machine), CRIU answers runc's FEATURE_CHECK with no `mem_track` and
/// runc refuses the pre-dump ("CRIU is missing features"), the
/// container running on untouched: that refusal is what is checked then
/// (no skip: it is this kernel's behaviour, not a test that cannot run).
#[test]
fn runc_pre_dump_chains_cross_with_criu_4_1_1() {
    const TEST: &str = "runc_predump_crossover";
    if cannot_run(TEST) {
        return;
    }
    let Some(peer) = Peer::for_test(TEST) else {
        return;
    };
    let (ours, theirs) = (Path::new(OURS), peer.dir.join("criu"));
    let c = Container::new(TEST, Runtime::Runc);
    let (_, seen) = c.start();
    let (pid, seen) = c.pre_dump_cycle(ours, &theirs, &c.bundle.join("ours"), seen);
    let tracks = Command::new(&theirs)
        .args(["check", "--feature", "mem_dirty_track"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if tracks {
        c.pre_dump_cycle(&theirs, ours, &c.bundle.join("theirs"), seen);
    } else {
        let images = c.bundle.join("theirs-refused");
        let (ok, out) = c.run(
            Some(&theirs),
            &[
                "checkpoint",
                "--pre-dump",
                "--image-path",
                images.to_str().unwrap(),
                &c.id,
            ],
        );
        assert!(!ok && out.contains("CRIU is missing features"), "{out}");
        assert_eq!(c.pid(), Some(pid), "the container after the refusal");
        common::container::counting_past(pid, seen);
    }
    let (ok, out) = c.run(None, &["kill", &c.id, "KILL"]);
    assert!(ok, "runc kill: {out}");
}
