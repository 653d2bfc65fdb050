//! A busybox container run by an OCI runtime (runc, crun) that checkpoints
//! and restores it through a criu: ours or the CRIU 4.1.1 peer.
//!
//! The container is the runtime's default spec (`RUNTIME spec`: its own
//! pid, mount, network, IPC and UTS namespaces, `/dev` on a tmpfs with
//! devpts, shm and mqueue, a read-only sysfs, cgroup mounts, masked and
//! read-only proc paths) over a root filesystem of Debian's static
//! busybox, running a shell that counts in a variable and writes the count
//! to its `/tmp`: a restore that lost its memory starts again from 1.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::TempDir;

pub const BUSYBOX: &str = "/bin/busybox";

/// The runtime, and how it is told which criu to run.
pub enum Runtime {
    /// Debian 12's runc: `--criu PATH` on every command.
    Runc,
    /// Debian 13's crun 1.21 (the peer's wrapper, which runs it with its
    /// own libcriu): it runs the `criu` it finds on `PATH`. Crun refuses
    /// this machine's hybrid cgroup layout, so every command runs in a
    /// mount namespace of its own without the cgroup2 mount: the
    /// container is made there, sees cgroup v1 only, and so does criu.
    Crun(PathBuf),
}

/// A container of `runtime`, deleted (with what a failed restore may
/// have left of it) when dropped.
pub struct Container {
    runtime: Runtime,
    pub bundle: PathBuf,
    pub id: String,
    dir: TempDir,
}

impl Container {
    /// The bundle of a new container for test `test`; not started.
    pub fn new(test: &str, runtime: Runtime) -> Container {
        let dir = TempDir::new(test);
        let bundle = dir.join("bundle");
        let root = bundle.join("rootfs");
        for d in ["bin", "tmp", "proc", "sys", "dev"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep", "cat", "nc"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let id = format!("criu-rs-{test}-{}", std::process::id());
        let c = Container {
            runtime,
            bundle,
            id,
            dir,
        };
        let (ok, out) = c.run(None, &["spec"]);
        assert!(ok, "spec: {out}");
        let path = c.bundle.join("config.json");
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
        c
    }

    /// The runtime's command with `args`, running `criu` (none: the
    /// runtime's own choice, for commands that run none).
    fn command(&self, criu: Option<&Path>, args: &[&str]) -> Command {
        let mut cmd = match &self.runtime {
            Runtime::Runc => {
                let mut c = Command::new("runc");
                if let Some(criu) = criu {
                    c.arg("--criu").arg(criu);
                }
                c
            }
            Runtime::Crun(crun) => {
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "slave", "sh", "-c"])
                    .arg("umount -l /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"")
                    .arg(crun);
                if let Some(criu) = criu {
                    criu_first_on_path(&mut c, self.dir.path(), criu);
                }
                c
            }
        };
        cmd.args(args)
            .current_dir(&self.bundle)
            .stdin(Stdio::null());
        cmd
    }

    /// Run the runtime with `args`: success and its output.
    pub fn run(&self, criu: Option<&Path>, args: &[&str]) -> (bool, String) {
        let out = self.command(criu, args).output().expect("run the runtime");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// Run the runtime detached (`run -d`, `restore -d`): the container
    /// keeps the runtime's stdio, which must then be nothing anybody
    /// waits on (and nothing outside the container's mounts, which
    /// neither criu could restore).
    fn detached(&self, criu: Option<&Path>, args: &[&str]) -> bool {
        self.command(criu, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the runtime")
            .success()
    }

    /// Changes the bundle's `config.json` with `f` (before the container
    /// is started).
    pub fn edit_spec(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let path = self.bundle.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        f(&mut spec);
        std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    }

    /// Start the container running whatever its spec says: its pid.
    pub fn start_plain(&self) -> i32 {
        assert!(self.detached(None, &["run", "-d", &self.id]), "run -d");
        self.pid().expect("the container's pid")
    }

    /// Restore by `restorer` from `images` with `extra` arguments
    /// (`--tcp-established`): the restored pid.
    pub fn restore_plain(&self, restorer: &Path, images: &str, extra: &[&str]) -> i32 {
        let mut args = vec!["restore", "-d", "--image-path", images];
        args.extend(extra);
        args.push(&self.id);
        let log = || std::fs::read_to_string(Path::new(images).join("restore.log"));
        assert!(
            self.detached(Some(restorer), &args),
            "restore by {restorer:?}:\n{}",
            log().unwrap_or_default()
        );
        self.pid().expect("the restored container's pid")
    }

    /// The directory of this container's test files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Start the container; its pid once it counts.
    pub fn start(&self) -> (i32, u64) {
        assert!(self.detached(None, &["run", "-d", &self.id]), "run -d");
        let pid = self.pid().expect("the container's pid");
        (pid, counting_past(pid, 0))
    }

    pub fn pid(&self) -> Option<i32> {
        let (ok, state) = self.run(None, &["state", &self.id]);
        if !ok {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&state).ok()?;
        v["pid"].as_i64().map(|p| p as i32).filter(|&p| p > 0)
    }

    /// Checkpoint by `criu` into `images`, with `extra` arguments
    /// (`--leave-running`).
    pub fn checkpoint(&self, criu: &Path, images: &str, extra: &[&str]) {
        let mut args = vec!["checkpoint", "--image-path", images];
        args.extend(extra);
        args.push(&self.id);
        let (ok, out) = self.run(Some(criu), &args);
        let log = std::fs::read_to_string(Path::new(images).join("dump.log")).unwrap_or_default();
        assert!(ok, "checkpoint by {criu:?}: {out}\n{log}");
    }

    /// Restore by `restorer` from `images` (maybe another container's
    /// checkpoint of the same bundle): the restored pid, and its count
    /// once it goes on from at least `seen` (a count seen before the
    /// checkpoint).
    pub fn restore(&self, restorer: &Path, images: &str, seen: u64) -> (i32, u64) {
        let log =
            |name: &str| std::fs::read_to_string(Path::new(images).join(name)).unwrap_or_default();
        assert!(
            self.detached(
                Some(restorer),
                &["restore", "-d", "--image-path", images, &self.id]
            ),
            "restore by {restorer:?}:\n{}",
            log("restore.log")
        );
        let pid = self.pid().expect("the restored container's pid");
        let first = count_now(pid);
        assert!(
            first >= seen && first < seen + 200,
            "count {first} after a checkpoint past {seen}"
        );
        (pid, counting_past(pid, first))
    }

    /// One checkpoint by `criu` into `images` and a restore by
    /// `restorer`, the count of a container seen at `seen` before: the
    /// restored pid and the count it goes on to.
    pub fn cycle(&self, criu: &Path, restorer: &Path, images: &str, seen: u64) -> (i32, u64) {
        self.checkpoint(criu, images, &[]);
        self.restore(restorer, images, seen)
    }

    /// An iterative checkpoint by `criu` into `dir`: two `checkpoint
    /// --pre-dump` rounds (`dir/pre1`, then `dir/pre2` with
    /// `--parent-path ../pre1`), the container counting on in the same
    /// task after each, then the final checkpoint into `dir/final` with
    /// `--parent-path ../pre2`, restored by `restorer`. The final images
    /// leave pages to their parents (the memory the container did not
    /// touch since the last round): the restore found them there. The
    /// restored pid and the count it goes on to.
    pub fn pre_dump_cycle(
        &self,
        criu: &Path,
        restorer: &Path,
        dir: &Path,
        seen: u64,
    ) -> (i32, u64) {
        let pid = self.pid().expect("the container's pid");
        let mut seen = seen;
        let mut parent: Option<String> = None;
        for round in ["pre1", "pre2"] {
            let images = dir.join(round);
            let images = images.to_str().unwrap();
            let mut extra = vec!["--pre-dump"];
            if let Some(p) = &parent {
                extra.extend(["--parent-path", p.as_str()]);
            }
            self.checkpoint(criu, images, &extra);
            assert_eq!(self.pid(), Some(pid), "the container after a pre-dump");
            assert!(
                pages_in(Path::new(images), 0) > 0,
                "{round}: no pages saved"
            );
            seen = counting_past(pid, seen);
            parent = Some(format!("../{round}"));
        }
        let images = dir.join("final");
        self.checkpoint(
            criu,
            images.to_str().unwrap(),
            &["--parent-path", parent.as_deref().unwrap()],
        );
        assert_eq!(
            std::fs::read_link(images.join("parent")).ok(),
            Some(PathBuf::from("../pre2")),
            "the final images' parent link"
        );
        let in_parent = pages_in(&images, PE_PARENT);
        assert!(
            in_parent > 0,
            "no page of the final dump left to its parent"
        );
        self.restore(restorer, images.to_str().unwrap(), seen)
    }

    /// A second container of a copy of this one's bundle as it is now
    /// (its root filesystem with the count file in it), not started: a
    /// checkpoint of this one restores into it as a container of its own.
    pub fn copy(&self, test: &str) -> Container {
        let dir = TempDir::new(test);
        let bundle = dir.join("bundle");
        let out = Command::new("cp")
            .arg("-a")
            .arg(&self.bundle)
            .arg(&bundle)
            .output()
            .expect("run cp");
        assert!(out.status.success(), "cp -a: {out:?}");
        let runtime = match &self.runtime {
            Runtime::Runc => Runtime::Runc,
            Runtime::Crun(p) => Runtime::Crun(p.clone()),
        };
        Container {
            runtime,
            bundle,
            id: format!("criu-rs-{test}-{}", std::process::id()),
            dir,
        }
    }
}

/// A checkpoint by `criu` with `--leave-running`: the container counts
/// on, the same task; then the images restore into two new containers of
/// copies of its bundle, each counting on from the checkpoint, side by
/// side with the first.
pub fn leave_running_then_restore_twice(test: &str, runtime: Runtime, criu: &Path) {
    let c = Container::new(test, runtime);
    let (pid, seen) = c.start();
    let images = c.dir.join("leave-running");
    let images = images.to_str().unwrap();
    c.checkpoint(criu, images, &["--leave-running"]);
    assert_eq!(c.pid(), Some(pid), "the container after --leave-running");
    counting_past(pid, seen);
    let (a, b) = (c.copy(&format!("{test}_a")), c.copy(&format!("{test}_b")));
    let (pa, _) = a.restore(criu, images, seen);
    let (pb, _) = b.restore(criu, images, seen);
    assert!(pa != pid && pb != pid && pa != pb, "{pid} {pa} {pb}");
    for p in [pid, pa, pb] {
        counting_past(p, count_now(p));
    }
}

/// A checkpoint by `ours` restored by `theirs` (CRIU 4.1.1), then one by
/// `theirs` restored by `ours`: the count goes on each time.
pub fn cross(test: &str, runtime: Runtime, ours: &Path, theirs: &Path) {
    let c = Container::new(test, runtime);
    let (_, seen) = c.start();
    let images = c.dir.join("ours");
    let (_, seen) = c.cycle(ours, theirs, images.to_str().unwrap(), seen);
    let images = c.dir.join("theirs");
    c.cycle(theirs, ours, images.to_str().unwrap(), seen);
}

/// `PE_PARENT` of a pagemap entry: the pages are in the parent images.
pub const PE_PARENT: u64 = 1;

/// The pages of every `pagemap-*.img` in `images` whose entries have
/// every bit of `flags` (0: all pages).
pub fn pages_in(images: &Path, flags: u64) -> u64 {
    let mut pages = 0;
    for e in std::fs::read_dir(images).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("pagemap-") && name.ends_with(".img")) {
            continue;
        }
        let json = super::peer::our_crit(&["decode", "-i", e.path().to_str().unwrap()])
            .unwrap_or_else(|e| panic!("crit decode {name}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let num = |x: &serde_json::Value| {
            x.as_u64()
                .or_else(|| u64::from_str_radix(x.as_str()?.trim_start_matches("0x"), 16).ok())
                .unwrap_or(0)
        };
        for e in v["entries"].as_array().unwrap().iter().skip(1) {
            let nr = e
                .get("nr_pages")
                .map_or(0, num)
                .max(num(&e["compat_nr_pages"]));
            if num(&e["flags"]) & flags == flags {
                pages += nr;
            }
        }
    }
    pages
}

/// A name for the bin directory of `criu`.
/// Runs `cmd` with `criu` as the `criu` it finds first on `PATH`: a
/// directory of `dir` whose only file is a link to it (for runtimes that
/// take criu from `PATH`).
pub fn criu_first_on_path(cmd: &mut Command, dir: &Path, criu: &Path) {
    let bin = dir.join(format!("bin-{}", criu_tag(criu)));
    if !bin.exists() {
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(criu, bin.join("criu")).unwrap();
    }
    let mut path = OsString::from(&bin);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    cmd.env("PATH", path);
}

fn criu_tag(criu: &Path) -> String {
    criu.to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.run(None, &["delete", "-f", &self.id]);
        // What a failed restore leaves of the container's cgroups (crun
        // makes `.proxy-crun` below them): empty directories named after
        // this test's container.
        if let Ok(hs) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hs.flatten() {
                let dir = h.path().join(&self.id);
                let _ = std::fs::remove_dir(dir.join(".proxy-crun"));
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
}

/// Whether runc cannot be tried here (the test then skipped, saying
/// why). On x86_64 `tests/run` installs runc and busybox-static: a
/// missing one fails the test there.
pub fn runc_cannot_run(test: &str) -> bool {
    if let Some(why) = super::cannot_checkpoint() {
        super::skipping::skip(test, why);
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

pub fn count_of(pid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/root/tmp/count"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The container's count now. The shell rewrites the file (`echo >`
/// truncates it first): a read that finds it empty is tried again.
pub fn count_now(pid: i32) -> u64 {
    let mut n = None;
    let ok = super::wait_until(Duration::from_secs(5), || {
        n = count_of(pid);
        n.is_some()
    });
    assert!(ok, "no count in the container (pid {pid})");
    n.unwrap()
}

/// The container's count, once it is past `past` (within 20 s: the
/// slowest CI machines under load).
pub fn counting_past(pid: i32, past: u64) -> u64 {
    let mut last = None;
    let ok = super::wait_until(Duration::from_secs(20), || {
        last = count_of(pid);
        last.is_some_and(|n| n > past)
    });
    assert!(
        ok,
        "the container (pid {pid}) does not count past {past}: {last:?}"
    );
    last.unwrap()
}
