//! crun checkpoints and restores a busybox container with our criu: three
//! cycles in a row, the container's count going on from where it stopped
//! each time; and the same container's images cross with CRIU 4.1.1 both
//! ways.
//!
//! Debian 12's crun is built without checkpointing; Debian 13's crun 1.21
//! has it, through libcriu (which speaks criu's RPC to the `criu swrk` it
//! finds on `PATH`, options inside its VERSION request). It comes with the
//! CRIU peer (`tests/peer/criu-4.1.1` unpacks it, with libcriu 4.1.1, and
//! runs it through its own loader). The container: `tests/common/container.rs`.
//!
//! Native only: the foreign VMs have no container runtime.
#![cfg(target_arch = "x86_64")]

mod common;

use std::path::Path;

use common::container::{BUSYBOX, Container, Runtime};
use common::peer::Peer;

const OURS: &str = env!("CARGO_BIN_EXE_criu");

/// The peer's crun, or `None` after saying why the test is skipped. On
/// x86_64 `tests/run` sets the peer up and installs busybox-static: a
/// missing one fails the test there.
fn crun(test: &str) -> Option<(Peer, Runtime)> {
    let peer = Peer::for_test(test)?;
    let crun = peer.dir.join("crun");
    assert!(
        crun.exists() && Path::new(BUSYBOX).exists(),
        "{test}: no {} or {BUSYBOX} (tests/run sets up the peer with crun and installs \
         busybox-static)",
        crun.display()
    );
    Some((peer, Runtime::Crun(crun)))
}

#[test]
fn crun_checkpoints_and_restores_a_busybox_container_three_times() {
    const TEST: &str = "crun_cycles";
    let Some((_, runtime)) = crun(TEST) else {
        return;
    };
    let c = Container::new(TEST, runtime);
    let (_, mut seen) = c.start();
    let ours = Path::new(OURS);
    for cycle in 1..=3 {
        let images = c.bundle.join(format!("ck{cycle}"));
        (_, seen) = c.cycle(ours, ours, images.to_str().unwrap(), seen);
    }
}

/// Our checkpoint restored by CRIU 4.1.1, its checkpoint restored by us.
#[test]
fn crun_images_cross_with_criu_4_1_1() {
    const TEST: &str = "crun_crossover";
    let Some((peer, runtime)) = crun(TEST) else {
        return;
    };
    common::container::cross(TEST, runtime, Path::new(OURS), &peer.dir.join("criu"));
}

/// `checkpoint --leave-running`, then two containers restored from the
/// same images.
#[test]
fn crun_leave_running_and_two_restores_of_one_checkpoint() {
    const TEST: &str = "crun_twice";
    let Some((_, runtime)) = crun(TEST) else {
        return;
    };
    common::container::leave_running_then_restore_twice(TEST, runtime, Path::new(OURS));
}
