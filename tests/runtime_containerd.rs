//! containerd (Debian 12's 1.6.20, its `ctr` and `containerd-shim-runc-v2`
//! over runc 1.1.5) checkpoints and restores a busybox container with our
//! criu: `ctr c checkpoint --task` and `ctr c restore --live`, three cycles
//! in a row, the container's count going on from where it stopped each
//! time; and the same container across CRIU 4.1.1, both ways.
//!
//! What containerd does around criu, and what each test checks of it:
//! - It finds criu on `PATH` only (`ctr` never sets the shim's
//!   `CriuPath`): the test's containerd runs with a directory of its own
//!   first on `PATH`, holding a `criu` that runs ours (or the peer) and
//!   keeps criu's logs, which the shim deletes with its work directory.
//! - `ctr` pauses the task (freezes its cgroup: here the v1 freezer) before
//!   it asks for the checkpoint, and resumes it afterwards; runc passes that
//!   cgroup as `freeze_cgroup`. The dump must seize the frozen tasks, leave
//!   the cgroup frozen as it found it, and not hang (it did before the
//!   freezer work: CRIU copes with a frozen cgroup).
//! - It always sends `leave_running` (the container goes on after the
//!   checkpoint) and `file_locks`; runc sends the container's stdio pipes
//!   as `inherit_fd` at restore, the shim's new pipes taking their place.
//!
//! The container is started with `--log-uri file://...`: its stdout and
//! stderr are the shim's pipes (copied to that file), its stdin the
//! container's own `/dev/null`. (With `ctr run -d` alone its stdin is a
//! pipe too, and `ctr c restore` then hands the restored task the host's
//! `/dev/null` on a mount outside the container, which neither CRIU nor
//! this criu can dump again: "Can't lookup mount=24 for fd=0".)
//!
//! Each containerd here has its own root, state, sockets, `ctr` namespace
//! (which names runc's state directory and the container's cgroups) and
//! container names, and is killed by its PID at the end.
//!
//! Native only: the foreign VMs have no container runtime.
#![cfg(target_arch = "x86_64")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use common::container::{count_now, counting_past};

const BUSYBOX: &str = "/bin/busybox";
const IMAGE: &str = "docker.io/criu-rs/busybox:latest";
/// The most one `ctr` command may take: a checkpoint that hangs fails the
/// test with this, not the test run.
const CTR_TIMEOUT: Duration = Duration::from_secs(90);
/// containerd 1.6's media type of the checkpoint's criu images (a tar).
const CRIU_TAR: &str = "application/vnd.containerd.container.criu.checkpoint.criu.tar";
/// The counter: a shell counting in a variable, writing the count to its
/// `/tmp` and to its stdout (a pipe of the shim's) every 50 ms.
const COUNTER: &str =
    "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo $i; sleep 0.05; done";

/// Why containerd cannot be tried here, if it cannot. On x86_64
/// `tests/run` installs containerd, runc and busybox-static: a missing one
/// fails the test there.
fn cannot_run(test: &str) -> bool {
    if let Some(why) = common::cannot_checkpoint() {
        common::skipping::skip(test, why);
        return true;
    }
    for (what, cmd) in [
        ("containerd", "containerd"),
        ("ctr", "ctr"),
        ("runc", "runc"),
        ("containerd-shim-runc-v2", "containerd-shim-runc-v2"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{test}: {what} is not installed (tests/run installs containerd, runc and busybox-static)"
        );
    }
    assert!(
        Path::new(BUSYBOX).exists(),
        "{test}: {BUSYBOX} is missing (tests/run installs busybox-static)"
    );
    false
}

/// The `criu` containerd's shim finds on `PATH`: runs the binary named in
/// `criu-real` beside it and, once it ends, copies the logs criu left in
/// the directories runc (its parent) has open: `dump.log`/`restore.log` in
/// the shim's work directory, which is removed when `ctr` returns.
const CRIU_WRAPPER: &str = r#"#!/bin/sh
dir=$(dirname "$0")
"$(cat "$dir/criu-real")" "$@"
rc=$?
n=$(date +%s%N)
for f in /proc/$PPID/fd/*; do
    d=$(readlink "$f")
    case "$d" in
    /*) [ -d "$d" ] && for l in "$d"/*.log; do [ -f "$l" ] && cp "$l" "$dir/logs/$n-${l##*/}"; done ;;
    esac
done
exit $rc
"#;

/// A containerd of the test's own, with a `ctr` namespace of its own.
struct Containerd {
    dir: TempDir,
    daemon: Child,
    sock: PathBuf,
    ns: String,
    /// Containers made, deleted at the end.
    containers: Vec<String>,
}

impl Containerd {
    fn start(test: &str) -> Containerd {
        let dir = TempDir::new(test);
        let bin = dir.join("bin");
        std::fs::create_dir_all(bin.join("logs")).unwrap();
        let wrapper = bin.join("criu");
        std::fs::write(&wrapper, CRIU_WRAPPER).unwrap();
        let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&wrapper, perms).unwrap();
        let sock = dir.join("containerd.sock");
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \
             \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
             \"io.containerd.snapshotter.v1.aufs\", \"io.containerd.snapshotter.v1.devmapper\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"{sock}.debug\"\n\
             [metrics]\n  address = \"\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = sock.display(),
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        );
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            dir,
            daemon,
            sock,
            ns: format!("criu-rs-{test}-{}", std::process::id()),
            containers: Vec::new(),
        };
        c.use_criu(Path::new(env!("CARGO_BIN_EXE_criu")));
        let up = common::wait_until(Duration::from_secs(30), || {
            c.sock.exists() && c.ctr(&["version"]).is_ok()
        });
        assert!(
            up,
            "containerd did not come up within 30 s: {}",
            std::fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
        );
        c
    }

    /// Make `criu` the one the shim runs from now on.
    fn use_criu(&self, criu: &Path) {
        std::fs::write(
            self.dir.join("bin/criu-real"),
            criu.as_os_str().as_encoded_bytes(),
        )
        .unwrap();
    }

    /// Run `ctr ARGS` against this containerd, in its namespace, within
    /// [`CTR_TIMEOUT`]: its output, or why it failed.
    fn ctr(&self, args: &[&str]) -> Result<String, String> {
        let out_path = self.dir.join("ctr.out");
        let out = std::fs::File::create(&out_path).unwrap();
        let mut child = Command::new("ctr")
            .arg("--address")
            .arg(&self.sock)
            .args(["--namespace", &self.ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("run ctr");
        let deadline = Instant::now() + CTR_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait for ctr") {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        match status {
            Some(s) if s.success() => Ok(text),
            Some(s) => Err(format!("ctr {args:?}: {s}: {text}")),
            None => Err(format!(
                "ctr {args:?} did not end within {} s (killed): {text}",
                CTR_TIMEOUT.as_secs()
            )),
        }
    }

    /// `ctr ARGS`, which must succeed.
    fn ok(&self, args: &[&str]) -> String {
        self.ctr(args)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.last_logs()))
    }

    /// The task's pid and status (`ctr t ls`).
    fn task(&self, id: &str) -> Option<(i32, String)> {
        let list = self.ctr(&["tasks", "ls"]).ok()?;
        list.lines()
            .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                [task, pid, status] if task == id => Some((pid.parse().ok()?, status.to_string())),
                _ => None,
            })
    }

    fn pid(&self, id: &str) -> i32 {
        let (pid, status) = self
            .task(id)
            .unwrap_or_else(|| panic!("no task {id} in `ctr t ls`"));
        assert_eq!(status, "RUNNING", "task {id} (pid {pid})");
        pid
    }

    /// Kill task `id` and delete it and its container.
    fn remove(&mut self, id: &str) {
        let _ = self.ctr(&["tasks", "kill", "--signal", "SIGKILL", id]);
        common::wait_until(Duration::from_secs(10), || {
            self.task(id).is_none_or(|(_, s)| s == "STOPPED")
        });
        let _ = self.ctr(&["tasks", "delete", id]);
        let _ = self.ctr(&["containers", "delete", id]);
        self.containers.retain(|c| c != id);
    }

    /// The logs criu left, newest last, named `NANOS-ACTION.log`.
    fn logs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.join("bin/logs"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The newest log of `action` (`dump`, `restore`).
    fn last_log(&self, action: &str) -> String {
        self.logs()
            .iter()
            .rev()
            .find(|p| p.to_string_lossy().ends_with(&format!("-{action}.log")))
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    /// The tails of the newest dump and restore logs, for messages.
    fn last_logs(&self) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        format!(
            "--- last dump.log:\n{}\n--- last restore.log:\n{}",
            tail(self.last_log("dump")),
            tail(self.last_log("restore"))
        )
    }

    /// Import the busybox image (a docker archive made here).
    fn import_busybox(&self) {
        let archive = busybox_archive(self.dir.path());
        self.ok(&["images", "import", archive.to_str().unwrap()]);
    }

    /// Start the counter in container `id`, its stdout and stderr to
    /// `out` through the shim's pipes.
    fn run_counter(&mut self, id: &str, out: &Path) -> i32 {
        let uri = format!("file://{}", out.display());
        self.ok(&[
            "run",
            "-d",
            "--log-uri",
            &uri,
            IMAGE,
            id,
            "sh",
            "-c",
            COUNTER,
        ]);
        self.containers.push(id.to_string());
        self.pid(id)
    }

    /// `ctr c checkpoint --task ID REF`: the image must hold criu's files.
    fn checkpoint(&self, id: &str, image: &str) -> Duration {
        let start = Instant::now();
        self.ok(&["containers", "checkpoint", "--task", id, image]);
        let took = start.elapsed();
        let list = self.ok(&["images", "ls"]);
        let digest = list
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&image)).then(|| f.get(2).map(|d| d.to_string()))?
            })
            .unwrap_or_else(|| panic!("no image {image} after the checkpoint: {list}"));
        let index = self.ok(&["content", "get", &digest]);
        assert!(
            index.contains(CRIU_TAR),
            "checkpoint image {image} holds no criu images ({CRIU_TAR}): containerd 1.6 \
             writes such an image after an earlier failed or repeated checkpoint of the same \
             container; its index: {index}\n{}",
            self.last_logs()
        );
        took
    }

    /// `ctr c restore --live ID REF`, then the image is deleted (containerd
    /// 1.6 can write a second checkpoint image of a container without
    /// criu's files otherwise).
    fn restore(&mut self, id: &str, image: &str) -> (i32, Duration) {
        let start = Instant::now();
        self.ok(&["containers", "restore", "--live", id, image]);
        let took = start.elapsed();
        self.containers.push(id.to_string());
        self.ok(&["images", "rm", image]);
        (self.pid(id), took)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in self.containers.clone() {
            self.remove(&id);
        }
        let pid = rustix::process::Pid::from_raw(self.daemon.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let gone = common::wait_until(Duration::from_secs(10), || {
            self.daemon.try_wait().ok().flatten().is_some()
        });
        if !gone {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
        // runc's cgroups of the namespace (`/NS/ID`; the `ID`s are gone).
        for mount in cgroup_mounts() {
            let _ = std::fs::remove_dir(mount.join(&self.ns));
        }
        // runc's state directory of the namespace (its containers are gone).
        let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(&self.ns));
    }
}

/// The cgroup hierarchies' mount points.
fn cgroup_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| PathBuf::from(pre.split_whitespace().nth(4).unwrap_or("")))
        })
        .collect()
}

/// A docker archive (`docker save` format) of a busybox image, its one
/// layer made from busybox-static: `bin/busybox`, applets `sh`, `sleep`,
/// `echo`, `cat` as links to it, and `/tmp`.
fn busybox_archive(dir: &Path) -> PathBuf {
    let mut layer = tar::Builder::new(Vec::new());
    for (name, mode) in [("bin/", 0o755), ("tmp/", 0o1777)] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        layer.append_data(&mut h, name, std::io::empty()).unwrap();
    }
    let mut busybox = std::fs::File::open(BUSYBOX).unwrap();
    layer
        .append_file("bin/busybox", &mut busybox)
        .expect("add busybox to the layer");
    for applet in ["sh", "sleep", "echo", "cat"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        layer
            .append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let layer_path = dir.join("layer.tar");
    std::fs::write(&layer_path, &layer).unwrap();
    let sum = Command::new("sha256sum")
        .arg(&layer_path)
        .output()
        .expect("sha256sum");
    assert!(sum.status.success(), "sha256sum: {sum:?}");
    let digest = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
    });
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["criu-rs/busybox:latest"],
        "Layers": ["layer.tar"],
    }]);
    let mut archive = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ("config.json", serde_json::to_vec(&config).unwrap()),
        ("layer.tar", layer),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        archive.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    let path = dir.join("busybox.tar");
    std::fs::write(&path, archive.into_inner().unwrap()).unwrap();
    path
}

/// Where the task's fd `fd` leads.
fn fd_link(pid: i32, fd: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("({e})"))
}

/// The freezer cgroup of task `pid` (v1 `freezer.state` or v2
/// `cgroup.freeze`): its state.
fn freezer_state(pid: i32) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    for l in cgroups.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrl.split(',').any(|c| c == "freezer") {
            return std::fs::read_to_string(format!("/sys/fs/cgroup/freezer{path}/freezer.state"))
                .unwrap_or_default()
                .trim()
                .to_string();
        }
    }
    String::from("(no v1 freezer)")
}

/// One cycle on a running counter `id` (pid `pid`): checkpoint with the
/// container left running (as `ctr` always does), the container goes on
/// and is then killed; restore; the count goes on from the checkpoint.
/// Returns the restored pid.
fn cycle(c: &mut Containerd, id: &str, pid: i32, image: &str, what: &str) -> i32 {
    let seen = counting_past(pid, 0);
    let pipes = (fd_link(pid, 1), fd_link(pid, 2));
    assert!(
        pipes.0.starts_with("pipe:") && pipes.1.starts_with("pipe:"),
        "{what}: the container's stdout and stderr are not pipes: {pipes:?}"
    );
    let dumped = c.checkpoint(id, image);
    // `ctr` resumed it: it is running (leave_running), counting on.
    let after = count_now(pid);
    assert_eq!(
        c.task(id).map(|t| t.1).as_deref(),
        Some("RUNNING"),
        "{what}"
    );
    assert_eq!(freezer_state(pid), "THAWED", "{what}");
    // Killed well past the checkpoint: a restore from there is told apart.
    let killed_at = counting_past(pid, after + 100);
    c.remove(id);
    let (new_pid, restored) = c.restore(id, image);
    assert_ne!(new_pid, pid, "{what}");
    let first = count_now(new_pid);
    assert!(
        first >= seen && first < after + 100 && first < killed_at,
        "{what}: count {first} after a checkpoint between {seen} and {after} (the old \
         container was killed at {killed_at})"
    );
    counting_past(new_pid, first);
    // stdin is the container's /dev/null again; stdout and stderr are the
    // shim's new pipes, given to criu as inherit_fd.
    assert_eq!(fd_link(new_pid, 0), "/dev/null", "{what}");
    let new_pipes = (fd_link(new_pid, 1), fd_link(new_pid, 2));
    assert!(
        new_pipes.0.starts_with("pipe:")
            && new_pipes.1.starts_with("pipe:")
            && new_pipes.0 != pipes.0
            && new_pipes.1 != pipes.1,
        "{what}: stdout/stderr {new_pipes:?} after the restore, {pipes:?} before"
    );
    eprintln!(
        "{what}: checkpoint {:.2} s, restore {:.2} s, count {seen}..{after} at the checkpoint, \
         {first} after the restore",
        dumped.as_secs_f64(),
        restored.as_secs_f64()
    );
    new_pid
}

#[test]
fn containerd_checkpoints_and_restores_a_busybox_container_three_times() {
    const TEST: &str = "ctrd_cycles";
    if cannot_run(TEST) {
        return;
    }
    let mut c = Containerd::start(TEST);
    c.import_busybox();
    let id = format!("counter-{}", std::process::id());
    let out = c.dir.join("counter.out");
    let mut pid = c.run_counter(&id, &out);
    counting_past(pid, 5);
    // Its stdout reaches the shim through the pipe.
    let printed = common::wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.starts_with("1\n2\n3\n"))
    });
    assert!(printed, "{:?}", std::fs::read_to_string(&out));
    for n in 1..=3 {
        pid = cycle(&mut c, &id, pid, &format!("ck{n}"), &format!("cycle {n}"));
        // The dump found the cgroup frozen by `ctr`'s pause and froze it
        // again before letting the tasks go (then `ctr` resumed it).
        let log = c.last_log("dump");
        assert!(
            log.contains("is Frozen before the dump") && log.contains("frozen again"),
            "cycle {n}: {log}"
        );
    }
}

#[test]
fn a_containerd_container_crosses_to_criu_4_1_1_and_back() {
    const TEST: &str = "ctrd_peer";
    if cannot_run(TEST) {
        return;
    }
    let Some(peer) = common::peer::Peer::for_test(TEST) else {
        return;
    };
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_criu"));
    let theirs = peer.dir.join("criu");
    let mut c = Containerd::start(TEST);
    c.import_busybox();
    let id = format!("cross-{}", std::process::id());
    let mut pid = c.run_counter(&id, &c.dir.join("counter.out"));
    counting_past(pid, 5);
    // Ours dumps, CRIU restores; CRIU dumps that, ours restores.
    let steps = [
        (&ours, &theirs, "ours to CRIU 4.1.1"),
        (&theirs, &ours, "CRIU 4.1.1 to ours"),
    ];
    for (n, (dumper, restorer, what)) in steps.into_iter().enumerate() {
        c.use_criu(dumper);
        let image = format!("cross{n}");
        let seen = counting_past(pid, 0);
        c.checkpoint(&id, &image);
        let after = count_now(pid);
        let killed_at = counting_past(pid, after + 100);
        c.remove(&id);
        c.use_criu(restorer);
        let (new_pid, _) = c.restore(&id, &image);
        let first = count_now(new_pid);
        assert!(
            first >= seen && first < after + 100 && first < killed_at,
            "{what}: count {first} after a checkpoint between {seen} and {after}"
        );
        pid = new_pid;
        counting_past(pid, first);
    }
}
