//! LXC checkpoints and restores a busybox container with our criu
//! (`lxc-checkpoint -s`, then `lxc-checkpoint -r`): three cycles in a row,
//! the container's count going on from where it stopped each time; and
//! the same container's images cross with CRIU 4.1.1 both ways.
//!
//! LXC runs `criu dump` and `criu restore` as commands (the `criu` it
//! finds on `PATH`), always with `--tcp-established --file-locks
//! --link-remap --manage-cgroups=full --ext-mount-map auto
//! --enable-external-sharing --enable-external-masters --enable-fs
//! hugetlbfs --enable-fs tracefs`, a `--cgroup-root` per hierarchy, and
//! on dump `--skip-in-flight --freeze-cgroup ... --force-irmap`, on
//! restore `--root --restore-detached --restore-sibling --external
//! console:`.
//!
//! The container (written here, no template): its own pid, mount, IPC,
//! UTS and (empty) network namespaces, LXC's `/dev` (autodev), proc and a
//! read-only sysfs, `/dev/shm` and `/dev/mqueue`, the host's
//! `/sys/kernel/security` bound in; no console, ttys or AppArmor profile
//! (this kernel has no AppArmor). Its init is a shell that counts in a
//! variable and writes the count to its `/tmp`: a restore that lost its
//! memory starts again from 1.
//!
//! Native only: the foreign VMs have no container runtime.
#![cfg(target_arch = "x86_64")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::TempDir;
use common::container::BUSYBOX;
use common::peer::Peer;

const OURS: &str = env!("CARGO_BIN_EXE_criu");

struct Lxc {
    name: String,
    /// The `-P` directory: the container's config and rootfs.
    path: PathBuf,
    dir: TempDir,
}

impl Lxc {
    /// A new container for test `test`, not started; `None` (the test
    /// skipped) without LXC or busybox: `tests/run` installs both, so
    /// in CI their absence fails the test.
    fn new(test: &str) -> Option<Lxc> {
        if Command::new("lxc-checkpoint")
            .arg("--version")
            .output()
            .is_err()
            || !Path::new(BUSYBOX).exists()
        {
            common::skip(
                test,
                "LXC or busybox-static is not installed (tests/run installs lxc and busybox-static)",
            );
            return None;
        }
        let dir = TempDir::new(test);
        let path = dir.join("lxc");
        // Unique on the machine: LXC names its cgroups after it.
        let name = format!("{}-{}", test.replace('_', "-"), std::process::id());
        let root = path.join(&name).join("rootfs");
        for d in ["bin", "tmp", "proc", "sys", "dev"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let counter = root.join("bin/counter");
        std::fs::write(
            &counter,
            "#!/bin/sh\ni=0\nwhile true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done\n",
        )
        .unwrap();
        std::fs::set_permissions(
            &counter,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let config = format!(
            "lxc.rootfs.path = dir:{root}\n\
             lxc.uts.name = {name}\n\
             lxc.net.0.type = empty\n\
             lxc.autodev = 1\n\
             lxc.tty.max = 0\n\
             lxc.pty.max = 0\n\
             lxc.console.path = none\n\
             lxc.cap.drop = sys_module mac_admin mac_override sys_time\n\
             lxc.mount.auto = cgroup:mixed proc:mixed sys:ro\n\
             lxc.mount.entry = shm dev/shm tmpfs defaults,create=dir 0 0\n\
             lxc.mount.entry = mqueue dev/mqueue mqueue defaults,optional,create=dir 0 0\n\
             lxc.mount.entry = /sys/kernel/security sys/kernel/security none ro,bind,optional 0 0\n\
             lxc.init.cmd = /bin/counter\n",
            root = root.display()
        );
        std::fs::write(path.join(&name).join("config"), config).unwrap();
        Some(Lxc { name, path, dir })
    }

    /// `lxc-TOOL -P PATH -n NAME ARGS`, with `criu` (if any) first on
    /// `PATH`: success and what it printed.
    fn run(&self, tool: &str, criu: Option<&Path>, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new(tool);
        cmd.arg("-P").arg(&self.path).args(["-n", &self.name]);
        cmd.args(args);
        if let Some(criu) = criu {
            common::container::criu_first_on_path(&mut cmd, self.dir.path(), criu);
        }
        match common::run_bounded(cmd, self.dir.path(), tool, Duration::from_secs(120)) {
            Ok(out) => (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            ),
            Err(e) => (false, e),
        }
    }

    /// The container's init, as the host sees it (`None`: not running).
    fn pid(&self) -> Option<i32> {
        let (ok, out) = self.run("lxc-info", None, &["-pH"]);
        ok.then(|| out.trim().parse().ok()).flatten()
    }

    fn state(&self) -> String {
        let (_, out) = self.run("lxc-info", None, &["-sH"]);
        out.trim().to_string()
    }

    /// Starts it: its init and a count it has reached, past 20 (a second
    /// of counting) so that a restore that starts again from 1 shows.
    fn start(&self) -> (i32, u64) {
        let (ok, out) = self.run("lxc-start", None, &["-d"]);
        assert!(ok, "lxc-start: {out}");
        let pid = self.pid().expect("the started container's pid");
        (pid, common::container::counting_past(pid, 20))
    }

    /// A file of the images directory, for messages.
    fn log(images: &Path, name: &str) -> String {
        std::fs::read_to_string(images.join(name)).unwrap_or_else(|e| format!("({name}: {e})"))
    }

    /// Checkpoints it with `criu` (stopping it), restores it with
    /// `restorer` from the same images, and checks that it counts on from
    /// where it stopped: the new init and its count.
    fn cycle(&self, criu: &Path, restorer: &Path, images: &Path, seen: u64) -> (i32, u64) {
        let dir = images.to_str().unwrap();
        let (ok, out) = self.run("lxc-checkpoint", Some(criu), &["-D", dir, "-s"]);
        assert!(
            ok,
            "lxc-checkpoint -s with {}: {out}\n{}",
            criu.display(),
            Self::log(images, "dump.log")
        );
        assert_eq!(self.state(), "STOPPED", "after the checkpoint");
        let root = self.path.join(&self.name).join("rootfs/tmp/count");
        let at_dump: u64 = std::fs::read_to_string(&root)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            at_dump >= seen,
            "the count at the dump {at_dump}, seen {seen} before"
        );
        let (ok, out) = self.run("lxc-checkpoint", Some(restorer), &["-D", dir, "-r"]);
        assert!(
            ok,
            "lxc-checkpoint -r with {}: {out}\n{}",
            restorer.display(),
            Self::log(images, "restore.log")
        );
        let pid = self.pid().expect("the restored container's pid");
        let now = common::container::count_now(pid);
        // The shell's variable came back: it counts on, not from 1.
        assert!(
            now >= at_dump,
            "the restored container counts from {now}, it had reached {at_dump}"
        );
        let later = common::container::counting_past(pid, now);
        eprintln!(
            "{}: dumped by {} at {at_dump}, restored by {} (init {pid}), counting {now}, {later}",
            self.name,
            criu.display(),
            restorer.display()
        );
        (pid, later)
    }
}

impl Drop for Lxc {
    fn drop(&mut self) {
        let _ = self.run("lxc-stop", None, &["-k"]);
        let _ = self.run("lxc-destroy", None, &["-f"]);
    }
}

#[test]
fn lxc_checkpoint_restores_a_busybox_container() {
    const TEST: &str = "lxc_cycles";
    let Some(c) = Lxc::new(TEST) else {
        return;
    };
    let (_, mut seen) = c.start();
    let ours = Path::new(OURS);
    for cycle in 1..=3 {
        let images = c.dir.join(&format!("ck{cycle}"));
        (_, seen) = c.cycle(ours, ours, &images, seen);
    }
}

/// Our checkpoint restored by CRIU 4.1.1, its checkpoint restored by us.
#[test]
fn lxc_images_cross_with_criu_4_1_1() {
    const TEST: &str = "lxc_crossover";
    let Some(peer) = Peer::for_test(TEST) else {
        return;
    };
    let Some(c) = Lxc::new(TEST) else {
        return;
    };
    let (_, seen) = c.start();
    let (ours, theirs) = (Path::new(OURS), peer.dir.join("criu"));
    let (_, seen) = c.cycle(ours, &theirs, &c.dir.join("to-criu"), seen);
    c.cycle(&theirs, ours, &c.dir.join("from-criu"), seen);
}
