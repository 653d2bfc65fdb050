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

use common::container::{BUSYBOX, Container, Runtime};
use common::peer::Peer;

/// Why runc cannot be tried here, if it cannot. On x86_64 `tests/run`
/// installs runc and busybox-static: a missing one fails the test there.
fn cannot_run(test: &str) -> bool {
    if let Some(why) = common::cannot_checkpoint() {
        common::skipping::skip(test, why);
        return true;
    }
    let missing = !Path::new(BUSYBOX).exists()
        || Command::new("runc")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success());
    if missing {
        panic!("{test}: runc is not installed (tests/run installs runc and busybox-static)");
    }
    false
}

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
