//! runc (Debian 12's 1.1.5) checkpoints and restores a busybox container
//! with our criu (`runc --criu`), over criu's RPC as runc speaks it
//! (`criu swrk`: a version check, then DUMP and RESTORE with `root`,
//! `ext_mnt` for its cgroup and device binds, `empty_ns` for the network
//! namespace, `evasive_devices`, notify scripts): three cycles in a row,
//! the container's count going on from where it stopped each time.
//!
//! The container is runc's default one (`runc spec`: its own pid, mount,
//! network, IPC and UTS namespaces, `/dev` on a tmpfs with devpts, shm and
//! mqueue, a read-only sysfs, cgroup mounts, masked and read-only proc
//! paths), running a busybox shell that counts in a variable and writes
//! the count to its `/tmp`.
//!
//! Native only: the foreign VMs have no container runtime.
#![cfg(target_arch = "x86_64")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TempDir;

const BUSYBOX: &str = "/bin/busybox";

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

struct Runc {
    bundle: PathBuf,
    id: String,
    _dir: TempDir,
}

impl Runc {
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("runc")
            .arg("--criu")
            .arg(env!("CARGO_BIN_EXE_criu"))
            .args(args)
            .current_dir(&self.bundle)
            .stdin(Stdio::null())
            .output()
            .expect("run runc");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn pid(&self) -> Option<i32> {
        let (ok, state) = self.run(&["state", &self.id]);
        if !ok {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&state).ok()?;
        v["pid"].as_i64().map(|p| p as i32).filter(|&p| p > 0)
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        let _ = self.run(&["delete", "-f", &self.id]);
    }
}

/// A bundle of runc's default spec over a busybox root filesystem.
fn bundle(test: &str) -> Runc {
    let dir = TempDir::new(test);
    let bundle = dir.join("bundle");
    let root = bundle.join("rootfs");
    for d in ["bin", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let out = Command::new("runc")
        .arg("spec")
        .current_dir(&bundle)
        .output()
        .expect("runc spec");
    assert!(out.status.success(), "runc spec: {out:?}");
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    spec["process"]["terminal"] = serde_json::Value::Bool(false);
    // The count goes to the root filesystem's /tmp.
    spec["root"]["readonly"] = serde_json::Value::Bool(false);
    spec["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done"
    ]);
    // This machine's root has no CAP_SYS_RESOURCE: no rlimits to raise.
    spec["process"]["rlimits"] = serde_json::json!([]);
    std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let id = format!("criu-rs-{test}-{}", std::process::id());
    Runc {
        bundle,
        id,
        _dir: dir,
    }
}

/// The container's count (read again for a moment while it reads empty:
/// the shell truncates the file before it writes the next number).
fn count_of(pid: i32) -> Option<u64> {
    let path = format!("/proc/{pid}/root/tmp/count");
    let mut n = None;
    common::wait_until(Duration::from_secs(2), || {
        n = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        n.is_some()
    });
    n
}

/// The container's count, once it is past `past`.
fn counting_past(pid: i32, past: u64) -> u64 {
    let mut last = None;
    let ok = common::wait_until(Duration::from_secs(10), || {
        last = count_of(pid);
        last.is_some_and(|n| n > past)
    });
    assert!(
        ok,
        "the container (pid {pid}) does not count past {past}: {last:?}"
    );
    last.unwrap()
}

#[test]
fn runc_checkpoints_and_restores_a_busybox_container_three_times() {
    const TEST: &str = "runc_cycles";
    if cannot_run(TEST) {
        return;
    }
    let runc = bundle(TEST);
    // The container keeps runc's stdio: not pipes anybody waits on.
    let started = Command::new("runc")
        .args(["run", "-d", &runc.id])
        .current_dir(&runc.bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runc run");
    assert!(started.success(), "runc run: {started}");
    let mut pid = runc.pid().expect("the container's pid");
    let mut seen = counting_past(pid, 0);
    for cycle in 1..=3 {
        let images = runc.bundle.join(format!("ck{cycle}"));
        let images = images.to_str().unwrap();
        let (ok, out) = runc.run(&["checkpoint", "--image-path", images, &runc.id]);
        let log =
            |name: &str| std::fs::read_to_string(Path::new(images).join(name)).unwrap_or_default();
        assert!(ok, "cycle {cycle}: checkpoint: {out}\n{}", log("dump.log"));
        // Seen before the checkpoint: the count at dump is at least this.
        let at_dump = seen;
        let restored = Command::new("runc")
            .arg("--criu")
            .arg(env!("CARGO_BIN_EXE_criu"))
            .args(["restore", "-d", "--image-path", images, &runc.id])
            .current_dir(&runc.bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("runc restore");
        assert!(
            restored.success(),
            "cycle {cycle}: restore: {restored}\n{}",
            log("restore.log")
        );
        pid = runc.pid().expect("the restored container's pid");
        let first = count_of(pid).expect("a count after the restore");
        assert!(
            first >= at_dump && first < at_dump + 200,
            "cycle {cycle}: count {first} after a checkpoint past {at_dump}"
        );
        seen = counting_past(pid, first);
    }
    let (ok, out) = runc.run(&["kill", &runc.id, "KILL"]);
    assert!(ok, "runc kill: {out}");
}
