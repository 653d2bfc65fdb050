//! The README's main command: the demo example checkpoints and restores its
//! counter program and checks the result itself; this runs it as CI would.

mod common;

use std::process::Command;

#[test]
fn demo_checkpoints_and_restores_the_counter() {
    if let Some(why) = common::cannot_checkpoint() {
        return common::skip("demo_checkpoints_and_restores_the_counter", why);
    }
    // The demo starts its program with setsid(1) (util-linux), which the
    // VMs' busybox does not have.
    if Command::new("setsid").arg("--version").output().is_err() {
        return common::skip(
            "demo_checkpoints_and_restores_the_counter",
            "no setsid(1) command here",
        );
    }
    // The demo finds criu and crit next to its examples directory, where
    // cargo put the binaries this test was built with.
    let demo = common::program_path("demo");
    let out = Command::new(&demo).output().expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("demo: OK"), "{stdout}");
    assert!(stdout.contains("counts on: pid"), "{stdout}");
    // Both sides print CRIU's --display-stats figures.
    assert!(stdout.contains("Memory pages written: "), "{stdout}");
    assert!(stdout.contains("Pages restored: "), "{stdout}");
}
