//! Podman (Debian 12's 4.3.1, with runc as its runtime: Debian's crun has
//! no checkpoint support) checkpoints and restores a busybox container
//! with our criu, which it finds as `criu` on PATH (its own version check
//! through go-criu, then runc's `criu swrk` sessions). Three cycles each
//! with stdio on conmon's pipes and on a pty (`-t`: runc's console, whose
//! master conmon holds: `orphan_pts_master`), with `--network none` and
//! on Podman's default bridge network (CNI); `--leave-running`;
//! `--export` to an archive restored twice with `--import` into two new
//! containers (`--name`).
//!
//! The container's program checks its own state: a shell counting in a
//! variable that it also writes to `/tmp/count` and to its stdout; before
//! each step it compares the file with its variable and stops with a note
//! in `/tmp/broken` when they differ (memory or files not restored as
//! they were). The test reads the count in the container's root, checks
//! that each restore goes on from the count at its checkpoint, and that
//! the container's log (what conmon read from its stdio) is every number
//! in order.
//!
//! Podman runs with private state only: `--root`, `--runroot` and
//! `--tmpdir` in the test's directory, vfs storage, the busybox image
//! made by `podman import` (no registry), a cgroup parent of the test's
//! own; all removed at the end. The bridge network is the machine's
//! (`/etc/cni/net.d`), each container taking an address of its own.
//! `tests/run` installs podman, runc, conmon, the CNI plugins, iptables
//! and busybox-static. Native only: the foreign VMs have no podman.
#![cfg(target_arch = "x86_64")]

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::TempDir;
use common::net::{LINE_SERVER, LineClient};

/// The most any one podman command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// The image `podman import` makes of the busybox root filesystem.
const IMAGE: &str = "localhost/criu-rs-busybox:test";

/// The container's program (see the module's doc). It counts to its
/// stdout too, one number a line.
const COUNTER: &str = "i=0; while :; do \
    c=$(cat /tmp/count 2>/dev/null || echo 0); \
    if [ \"$c\" != \"$i\" ]; then echo \"memory $i, file $c\" > /tmp/broken; exit 1; fi; \
    i=$((i+1)); echo $i > /tmp/count; echo $i; sleep 0.05; done";

/// What `podman` this test needs is missing, if it is. On x86_64
/// `tests/run` installs them all: a missing one fails the test.
fn cannot_run(test: &str) -> bool {
    if let Some(why) = common::cannot_checkpoint() {
        common::skipping::skip(test, why);
        return true;
    }
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    let missing: Vec<&str> = ["podman", "runc", "conmon", "tar"]
        .into_iter()
        .filter(|t| !on_path(t))
        .chain(
            ["/bin/busybox"]
                .into_iter()
                .filter(|f| !Path::new(f).is_file()),
        )
        .collect();
    if !missing.is_empty() {
        panic!(
            "{test}: not installed: {} (tests/run installs podman, runc and busybox-static)",
            missing.join(", ")
        );
    }
    false
}

/// [`common::run_bounded`] within [`COMMAND_TIMEOUT`].
fn run_bounded(cmd: Command, dir: &Path, what: &str) -> Result<Output, String> {
    common::run_bounded(cmd, dir, what, COMMAND_TIMEOUT)
}

/// Podman with state of its own in a temporary directory, our criu first
/// on its PATH, the busybox image imported; its containers removed on
/// drop.
struct Podman {
    dir: TempDir,
    /// PATH with `bin/criu` first.
    path: OsString,
    /// The cgroup parent of the containers and conmon (`/NAME`).
    cgroup_parent: String,
    /// The prefix of the containers' names.
    prefix: String,
    /// Every container made (by name), for drop to remove.
    names: std::cell::RefCell<Vec<String>>,
}

impl Podman {
    fn new(test: &str) -> Podman {
        let dir = TempDir::new(test);
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let mut paths = vec![bin];
        if let Some(p) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&p));
        }
        let path = std::env::join_paths(paths).unwrap();
        // No storage.conf of the machine's applies: this one says what
        // the flags below say.
        let conf = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            dir.join("root").display(),
            dir.join("run").display()
        );
        std::fs::write(dir.join("storage.conf"), conf).unwrap();
        let prefix = format!("criu-rs-{test}-{}", std::process::id());
        let podman = Podman {
            dir,
            path,
            cgroup_parent: format!("/{prefix}"),
            prefix,
            names: Default::default(),
        };
        podman.use_criu(Path::new(env!("CARGO_BIN_EXE_criu")));
        podman.import_busybox();
        podman
    }

    /// `criu` on podman's PATH is `criu` from now on.
    fn use_criu(&self, criu: &Path) {
        let link = self.dir.join("bin/criu");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(criu, link).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let d = |n: &str| self.dir.join(n).into_os_string();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(d("root"))
            .arg("--runroot")
            .arg(d("run"))
            .arg("--tmpdir")
            .arg(d("tmp"))
            .args(["--storage-driver", "vfs"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .args(["--runtime", "runc"])
            .args(args)
            .env("PATH", &self.path)
            .env("CONTAINERS_STORAGE_CONF", d("storage.conf"));
        cmd
    }

    /// `podman ARGS`: whether it succeeded, and its stdout and stderr.
    fn try_run(&self, args: &[&str]) -> (bool, String) {
        let what = format!("podman {args:?}");
        let out = run_bounded(self.command(args), self.dir.path(), &what)
            .unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// `podman ARGS`, which must succeed: its stdout and stderr.
    fn run(&self, args: &[&str]) -> String {
        let (ok, out) = self.try_run(args);
        assert!(ok, "podman {args:?} failed:\n{out}");
        out
    }

    /// A busybox root filesystem (the applets the counter runs), as a
    /// tar that `podman import` makes [`IMAGE`] of.
    fn import_busybox(&self) {
        let rootfs = self.dir.join("rootfs");
        for d in ["bin", "tmp", "proc", "sys", "dev", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep", "cat", "echo", "nc"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let tar = self.dir.join("busybox.tar");
        let mut cmd = Command::new("tar");
        cmd.arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".");
        let out = run_bounded(cmd, self.dir.path(), "tar -cf").unwrap();
        assert!(out.status.success(), "tar: {out:?}");
        self.run(&["import", tar.to_str().unwrap(), IMAGE]);
    }

    /// The name of container `n` of this test (remembered for drop).
    fn name(&self, n: &str) -> String {
        let name = format!("{}-{n}", self.prefix);
        self.names.borrow_mut().push(name.clone());
        name
    }

    /// Starts the counter in a new container `name` (`extra`: `-t`, a
    /// network): detached, with the limits runc can set here (this
    /// machine's root has no CAP_SYS_RESOURCE to raise Podman's default
    /// RLIMIT_NOFILE and NPROC).
    fn start(&self, name: &str, extra: &[&str]) {
        self.start_cmd(name, extra, &["sh", "-c", COUNTER]);
    }

    /// [`Podman::start`] with the container running `cmd`.
    fn start_cmd(&self, name: &str, extra: &[&str], cmd: &[&str]) {
        let cgroup_parent = format!("--cgroup-parent={}", self.cgroup_parent);
        let mut args = vec![
            "run",
            "--detach",
            "--name",
            name,
            &cgroup_parent,
            "--ulimit=nofile=1024:1024",
            "--ulimit=nproc=1024:1024",
        ];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        self.run(&args);
    }

    fn state(&self, name: &str) -> String {
        self.run(&["inspect", "--format", "{{.State.Status}}", name])
            .trim()
            .to_owned()
    }

    /// The PID of the container's first process, while it runs.
    fn pid(&self, name: &str) -> Option<i32> {
        let (ok, out) = self.try_run(&["inspect", "--format", "{{.State.Pid}}", name]);
        out.trim()
            .parse()
            .ok()
            .filter(|&p| ok && p > 0 && self.state(name) == "running")
    }

    /// What the counter wrote to `/tmp/count`, read in its root (again
    /// for a moment while it reads empty: the shell truncates the file
    /// before it writes the next number).
    fn count(&self, name: &str) -> Option<u64> {
        let pid = self.pid(name)?;
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

    /// The count of a container just restored or checkpointed (which
    /// must run), or a panic that says what became of it.
    fn restored_count(&self, name: &str) -> u64 {
        if let Some(n) = self.count(name) {
            return n;
        }
        let (_, inspect) = self.try_run(&["inspect", name]);
        let (_, logs) = self.try_run(&["logs", name]);
        panic!("{name}: no count after its restore: {inspect}\n{logs}");
    }

    /// The counter's own verdict, once it found its state broken.
    fn broken(&self, name: &str) -> Option<String> {
        let pid = self.pid(name)?;
        std::fs::read_to_string(format!("/proc/{pid}/root/tmp/broken")).ok()
    }

    /// The container's count, once it is past `past` (and it runs).
    fn counting_past(&self, name: &str, past: u64) -> u64 {
        let mut last = None;
        let ok = common::wait_until(Duration::from_secs(20), || {
            last = self.count(name);
            last.is_some_and(|n| n > past)
        });
        if !ok {
            let (_, logs) = self.try_run(&["logs", name]);
            let tail: String = logs
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "{name} does not count past {past} (last count {last:?}, state {}): ...{tail}",
                self.state(name)
            );
        }
        assert_eq!(self.broken(name), None, "{name} found its own state broken");
        last.unwrap()
    }

    /// The numbers of the container's log (its stdout, as conmon read it;
    /// a pty's lines end in `\r\n`), which must be 1, 2, 3... up to at
    /// least `at_least`, none missing or twice.
    fn check_log(&self, name: &str, at_least: u64) {
        let logs = self.run(&["logs", name]);
        let mut want = 1u64;
        for word in logs.split_whitespace() {
            let n: u64 = word
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {word:?} in its log"));
            assert_eq!(n, want, "{name}: its log goes from {} to {n}", want - 1);
            want += 1;
        }
        assert!(
            want > at_least,
            "{name}: its log ends at {} (counted to {at_least})",
            want - 1
        );
    }

    /// `container checkpoint` then `container restore`, three times: each
    /// restore goes on from the count at its checkpoint.
    fn three_cycles(&self, name: &str) -> u64 {
        self.cycles(name, &[None, None, None])
    }

    /// A checkpoint and a restore for each of `criu`: the `criu` on PATH
    /// (ours if `None`) for the checkpoint and for the restore; each
    /// restore goes on from the count at its checkpoint. The last count.
    fn cycles(&self, name: &str, criu: &[Option<(&Path, &Path)>]) -> u64 {
        let ours = Path::new(env!("CARGO_BIN_EXE_criu"));
        let mut seen = self.counting_past(name, 0);
        for (i, pair) in criu.iter().enumerate() {
            let cycle = i + 1;
            let (dump, restore) = pair.unwrap_or((ours, ours));
            self.use_criu(dump);
            let out = self.run(&["container", "checkpoint", name]);
            self.use_criu(restore);
            assert_eq!(self.state(name), "exited", "cycle {cycle}: {out}");
            // Seen before the checkpoint: the count at dump is at least
            // this, and only a little more.
            let at_dump = seen;
            self.run(&["container", "restore", name]);
            let first = self.restored_count(name);
            assert!(
                first >= at_dump && first < at_dump + 100,
                "cycle {cycle}: count {first} after a checkpoint past {at_dump}"
            );
            seen = self.counting_past(name, first);
        }
        self.use_criu(ours);
        seen
    }

    /// The last lines of every criu log (`dump.log`, `restore.log`) in
    /// podman's storage, for a failure's message.
    fn criu_logs(&self) -> String {
        let mut out = String::new();
        let mut dirs = vec![self.dir.join("root")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                let name = e.file_name();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(p);
                } else if name == "dump.log" || name == "restore.log" {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                    out += &format!("--- {}:\n{tail}\n", p.display());
                }
            }
        }
        out
    }

    /// For each of `criu` (as in [`Podman::cycles`]): `container
    /// checkpoint --pre-checkpoint` (the container runs on, the same
    /// task, counting), then `container checkpoint --with-previous` and
    /// `container restore --keep`, which goes on from the count at the
    /// checkpoint. The final images (`checkpoint/` in the container's
    /// directory) name the pre-checkpoint's (`../pre-checkpoint`) as their
    /// parent and leave pages to it. The last count.
    fn pre_checkpoint_cycles(&self, name: &str, criu: &[Option<(&Path, &Path)>]) -> u64 {
        let ours = Path::new(env!("CARGO_BIN_EXE_criu"));
        let mut seen = self.counting_past(name, 0);
        for (i, pair) in criu.iter().enumerate() {
            let cycle = i + 1;
            let (dump, restore) = pair.unwrap_or((ours, ours));
            self.use_criu(dump);
            let pid = self.pid(name);
            let out = self.run(&["container", "checkpoint", "--pre-checkpoint", name]);
            assert_eq!(
                self.pid(name),
                pid,
                "cycle {cycle}: after --pre-checkpoint: {out}"
            );
            seen = self.counting_past(name, seen);
            let out = self.run(&["container", "checkpoint", "--with-previous", name]);
            assert_eq!(self.state(name), "exited", "cycle {cycle}: {out}");
            let dir = PathBuf::from(
                self.run(&["inspect", "--format", "{{.StaticDir}}", name])
                    .trim(),
            );
            let images = dir.join("checkpoint");
            assert_eq!(
                std::fs::read_link(images.join("parent")).ok(),
                Some(PathBuf::from("../pre-checkpoint")),
                "cycle {cycle}: the final images' parent"
            );
            let in_parent = common::container::pages_in(&images, common::container::PE_PARENT);
            assert!(
                in_parent > 0,
                "cycle {cycle}: no page left to the pre-checkpoint"
            );
            self.use_criu(restore);
            let at_dump = seen;
            self.run(&["container", "restore", "--keep", name]);
            let first = self.restored_count(name);
            assert!(
                first >= at_dump && first < at_dump + 100,
                "cycle {cycle}: count {first} after a checkpoint past {at_dump}"
            );
            seen = self.counting_past(name, first);
        }
        self.use_criu(ours);
        seen
    }

    /// The controlling terminal of the container's first process (`tty_nr`
    /// of its stat), 0 for none.
    fn ctty(&self, name: &str) -> u64 {
        let pid = self.pid(name).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // After the command's `(...)`: state, ppid, pgrp, session, tty_nr.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(4).unwrap().parse().unwrap()
    }

    /// Unmount anything left mounted in the test's directory (podman rm
    /// unmounts the container's; this is for a test that failed
    /// half-way).
    fn unmount_leftovers(&self) {
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let mut points: Vec<&str> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| Path::new(p).starts_with(self.dir.path()))
            .collect();
        // The deepest first.
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH);
        }
    }

    /// Remove what `podman rm` leaves of the cgroup parent: `conmon`
    /// below it and itself, in every hierarchy.
    fn remove_cgroups(&self) {
        let name = self.cgroup_parent.trim_start_matches('/');
        let mut dirs: Vec<PathBuf> = vec![Path::new("/sys/fs/cgroup").join(name)];
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            dirs.extend(rd.flatten().map(|e| e.path().join(name)));
        }
        dirs.retain(|d| d.is_dir());
        let done = common::wait_until(Duration::from_secs(10), || {
            dirs.retain(|d| {
                let _ = std::fs::remove_dir(d.join("conmon"));
                std::fs::remove_dir(d).is_err() && d.is_dir()
            });
            dirs.is_empty()
        });
        if !done {
            eprintln!("{}: cgroups left behind: {dirs:?}", self.prefix);
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let names = self.names.borrow().clone();
        if !names.is_empty() {
            let mut args = vec!["rm", "--force", "--time", "0", "--ignore"];
            args.extend(names.iter().map(String::as_str));
            let rm = run_bounded(self.command(&args), self.dir.path(), "podman rm");
            if !rm.as_ref().is_ok_and(|o| o.status.success()) {
                eprintln!("{}: podman rm: {rm:?}", self.prefix);
            }
        }
        self.unmount_leftovers();
        self.remove_cgroups();
        // Podman's bridge network bind-mounts /run/netns on itself, shared
        // (peer group of `/`), and leaves it: a later test's mount
        // namespace would share mount events with criu's there, which a
        // dump refuses. Private again (Podman makes it shared again each
        // time it makes a namespace there); nothing is unmounted.
        let netns = Path::new("/run/netns");
        let is_mount = std::fs::read_to_string("/proc/self/mountinfo")
            .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(4) == Some("/run/netns")));
        if is_mount {
            let _ =
                rustix::mount::mount_change(netns, rustix::mount::MountPropagationFlags::PRIVATE);
        }
    }
}

#[test]
fn podman_checkpoints_and_restores_a_busybox_container_three_times() {
    const TEST: &str = "podman-pipes";
    if cannot_run(TEST) {
        return;
    }
    let podman = Podman::new(TEST);
    let name = podman.name("c");
    podman.start(&name, &["--network=none"]);
    let last = podman.three_cycles(&name);
    podman.check_log(&name, last);
}

#[test]
fn podman_checkpoints_and_restores_a_tty_container() {
    const TEST: &str = "podman-tty";
    if cannot_run(TEST) {
        return;
    }
    let podman = Podman::new(TEST);
    let name = podman.name("c");
    podman.start(&name, &["--tty", "--network=none"]);
    let ctty = podman.ctty(&name);
    assert_ne!(ctty, 0, "the container's shell has no controlling terminal");
    let last = podman.three_cycles(&name);
    // The shell's console is its controlling terminal again (a pts of the
    // same index, so the same number).
    assert_eq!(
        podman.ctty(&name),
        ctty,
        "the restored controlling terminal"
    );
    // Its console is a new pty after each restore, whose master conmon
    // got (orphan-pts-master): what the counter writes reaches the log.
    podman.check_log(&name, last);
    let pid = podman.pid(&name).unwrap();
    let fd0 = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
    assert_eq!(fd0, Path::new("/dev/pts/0"), "the restored stdin");
    // runc's /dev/console, a bind of that pts, is the new pty too.
    podman.run(&["exec", &name, "sh", "-c", "echo 0 > /dev/console"]);
}

#[test]
fn podman_checkpoints_and_restores_on_the_default_network() {
    const TEST: &str = "podman-bridge";
    if cannot_run(TEST) {
        return;
    }
    let podman = Podman::new(TEST);
    let name = podman.name("c");
    // Podman's default network: the `podman` bridge of CNI.
    podman.start(&name, &[]);
    let address = |podman: &Podman| {
        podman
            .run(&[
                "inspect",
                "--format",
                "{{.NetworkSettings.IPAddress}}",
                &name,
            ])
            .trim()
            .to_owned()
    };
    let before = address(&podman);
    assert!(
        before.starts_with("10.88."),
        "the container's address: {before:?}"
    );
    let last = podman.three_cycles(&name);
    podman.check_log(&name, last);
    assert_eq!(address(&podman), before, "the address after three restores");
    let pid = podman.pid(&name).unwrap();
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    assert!(
        dev.contains("eth0:"),
        "the restored container's devices:\n{dev}"
    );
}

/// A TCP server in a container on the default bridge network, its client
/// on the host: `container checkpoint --tcp-established` and `container
/// restore --tcp-established` keep the connection, three times (the
/// container comes back with its address in a new net namespace, which
/// criu locks again before the connection's socket exists, and unlocks
/// once it is repaired); the server's count goes on. The client sends
/// nothing while the container is down: Podman makes the new namespace
/// with the container's address up before runc runs criu, and a packet
/// that arrives in between (TCP's retransmission of what was sent while
/// it was down) is answered with a reset there: criu's lock at restore
/// (CRIU's as ours) comes only once criu runs. The runc tests, whose
/// namespace lives on locked, send while it is down.
#[test]
fn podman_keeps_a_tcp_connection_on_the_default_network() {
    const TEST: &str = "podman-tcp";
    if cannot_run(TEST) {
        return;
    }
    let podman = Podman::new(TEST);
    let name = podman.name("c");
    let port = "5000";
    let server = ["nc", "-l", "-p", port, "-e", "sh", "-c"];
    podman.start_cmd(&name, &[], &[&server[..], &[LINE_SERVER]].concat());
    let address = podman
        .run(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.IPAddress}}",
            &name,
        ])
        .trim()
        .to_owned();
    let addr = std::net::SocketAddr::new(address.parse().unwrap(), 5000);
    let mut client = LineClient::connect(addr);
    client.ask("before", 1);
    let mut n = 2;
    for cycle in 1..=3 {
        let out = podman.run(&[
            "container",
            "checkpoint",
            "--keep",
            "--tcp-established",
            &name,
        ]);
        assert_eq!(podman.state(&name), "exited", "cycle {cycle}: {out}");
        podman.run(&["container", "restore", "--keep", "--tcp-established", &name]);
        let line = format!("restored {cycle}");
        client.send(&line);
        let answer = client.try_answer();
        assert_eq!(
            answer.as_deref().ok(),
            Some(format!("{n} {line}").as_str()),
            "cycle {cycle}: {answer:?}\n{}",
            podman.criu_logs()
        );
        client.ask(&format!("after {cycle}"), n + 1);
        n += 2;
    }
}

#[test]
fn podman_checkpoint_leave_running_then_restore_goes_back_to_it() {
    const TEST: &str = "podman-leave";
    if cannot_run(TEST) {
        return;
    }
    let podman = Podman::new(TEST);
    let name = podman.name("c");
    // Its /tmp a tmpfs, whose files are in the checkpoint (CRIU's tmpfs
    // archive): the restore takes the count in /tmp back with the memory
    // (files of the root filesystem would keep the later count, which the
    // counter would see as broken state).
    podman.start(&name, &["--network=none", "--tmpfs=/tmp"]);
    let mut seen = podman.counting_past(&name, 0);
    // The last checkpoint's count: between these two.
    let (mut before, mut after) = (0, 0);
    for _ in 0..3 {
        before = seen;
        podman.run(&["container", "checkpoint", "--leave-running", &name]);
        assert_eq!(podman.state(&name), "running", "after --leave-running");
        after = podman.restored_count(&name);
        seen = podman.counting_past(&name, after);
    }
    // It counts on well past the last checkpoint, is killed, and the
    // restore takes it back to that checkpoint.
    let later = podman.counting_past(&name, after + 60);
    podman.run(&["kill", &name]);
    assert!(
        common::wait_until(Duration::from_secs(20), || podman.state(&name) == "exited"),
        "{name} is not killed"
    );
    podman.run(&["container", "restore", &name]);
    let first = podman.restored_count(&name);
    assert!(
        first >= before && first < after + 20,
        "restored count {first}: its checkpoint was between {before} and {after} \
         (killed past {later})"
    );
    podman.counting_past(&name, first);
}

/// `--pre-checkpoint`, then `--with-previous`, then a restore: three
/// cycles, the count and the log going on.
#[test]
fn podman_pre_checkpoints_then_checkpoints_with_previous_three_times() {
    const TEST: &str = "podman-precheck";
    if cannot_run(TEST) {
        return;
    }
    let podman = Podman::new(TEST);
    let name = podman.name("c");
    podman.start(&name, &["--network=none"]);
    let last = podman.pre_checkpoint_cycles(&name, &[None, None, None]);
    podman.check_log(&name, last);
}

/// `--pre-checkpoint --export` and `--with-previous --export`: the two
/// archives restored with `--import` and `--import-previous` into two
/// new containers, each going on from the checkpoint.
#[test]
fn podman_pre_checkpoint_archives_restore_with_import_previous() {
    const TEST: &str = "podman-prexport";
    if cannot_run(TEST) {
        return;
    }
    let podman = Podman::new(TEST);
    let name = podman.name("c");
    podman.start(&name, &["--network=none"]);
    let ours = Path::new(env!("CARGO_BIN_EXE_criu"));
    pre_checkpoint_archives(&podman, &name, ours, ours);
}

/// Archives of a `--pre-checkpoint` and a `--with-previous` checkpoint of
/// `name` by `dump`, each restored by `restore` with `--import` and
/// `--import-previous` into a new container, twice.
fn pre_checkpoint_archives(podman: &Podman, name: &str, dump: &Path, restore: &Path) {
    podman.use_criu(dump);
    let seen = podman.counting_past(name, 0);
    let pid = podman.pid(name);
    let pre = podman.dir.join("pre.tar.gz");
    let fin = podman.dir.join("final.tar.gz");
    let pre_export = format!("--export={}", pre.display());
    podman.run(&[
        "container",
        "checkpoint",
        "--pre-checkpoint",
        &pre_export,
        name,
    ]);
    assert_eq!(podman.pid(name), pid, "after --pre-checkpoint");
    let seen = podman.counting_past(name, seen);
    let fin_export = format!("--export={}", fin.display());
    podman.run(&[
        "container",
        "checkpoint",
        "--with-previous",
        &fin_export,
        name,
    ]);
    assert_eq!(podman.state(name), "exited");
    // The final archive holds images whose pages are partly in the
    // pre-checkpoint's: unpacked, its pagemaps say so.
    let unpacked = podman.dir.join("final-unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let mut tar = Command::new("tar");
    tar.arg("-C").arg(&unpacked).arg("-xf").arg(&fin);
    let out = run_bounded(tar, podman.dir.path(), "tar -xf").unwrap();
    assert!(out.status.success(), "tar -xf: {out:?}");
    let in_parent =
        common::container::pages_in(&unpacked.join("checkpoint"), common::container::PE_PARENT);
    assert!(
        in_parent > 0,
        "no page of the exported checkpoint left to its parent"
    );
    podman.use_criu(restore);
    let import = format!("--import={}", fin.display());
    let import_previous = format!("--import-previous={}", pre.display());
    for copy in ["copy1", "copy2"] {
        let copy = podman.name(copy);
        podman.run(&[
            "container",
            "restore",
            &import,
            &import_previous,
            "--name",
            &copy,
        ]);
        let first = podman.restored_count(&copy);
        assert!(
            first >= seen && first < seen + 100,
            "{copy}: count {first} after a checkpoint past {seen}"
        );
        podman.counting_past(&copy, first);
    }
    podman.use_criu(Path::new(env!("CARGO_BIN_EXE_criu")));
}

/// Pre-checkpoint chains crossing with CRIU 4.1.1 under Podman: ours
/// pre-checkpoints and checkpoints `--with-previous`, CRIU restores (in
/// place, then from the archives with `--import-previous`). The other
/// way round needs CRIU's soft-dirty tracking: where the kernel has it,
/// it runs; where not (this machine), runc refuses CRIU's
/// `--pre-checkpoint` after its FEATURE_CHECK ("CRIU is missing
/// features"), the container running on: that refusal is what is
/// checked then.
#[test]
fn podman_pre_checkpoint_chains_cross_with_criu_4_1_1() {
    const TEST: &str = "podman-precross";
    if cannot_run(TEST) {
        return;
    }
    let peer = common::peer::Peer::find().unwrap_or_else(|why| panic!("{TEST}: {why}"));
    let theirs = peer.dir.join("criu");
    let ours = Path::new(env!("CARGO_BIN_EXE_criu"));
    let podman = Podman::new(TEST);
    let name = podman.name("c");
    podman.start(&name, &["--network=none"]);
    let seen = podman.pre_checkpoint_cycles(&name, &[Some((ours, &theirs))]);
    pre_checkpoint_archives(&podman, &name, ours, &theirs);
    let tracks = Command::new(&theirs)
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .is_ok_and(|o| o.status.success());
    // A container restored from the archives by CRIU, running.
    let copy = format!("{}-copy1", podman.prefix);
    if tracks {
        podman.pre_checkpoint_cycles(&copy, &[Some((&theirs, ours))]);
        return;
    }
    let pid = podman.pid(&copy);
    podman.use_criu(&theirs);
    let (ok, out) = podman.try_run(&["container", "checkpoint", "--pre-checkpoint", &copy]);
    podman.use_criu(ours);
    // runc's FEATURE_CHECK of CRIU: no `mem_track`.
    assert!(
        !ok && out.contains("CRIU is missing features"),
        "CRIU 4.1.1's --pre-checkpoint: {out}"
    );
    assert_eq!(podman.pid(&copy), pid, "the container after the refusal");
    podman.counting_past(&copy, seen);
}

#[test]
fn podman_export_restores_twice_with_import() {
    const TEST: &str = "podman-export";
    if cannot_run(TEST) {
        return;
    }
    let podman = Podman::new(TEST);
    let name = podman.name("c");
    podman.start(&name, &["--network=none"]);
    let seen = podman.counting_past(&name, 0);
    let archive = podman.dir.join("checkpoint.tar.gz");
    let export = format!("--export={}", archive.display());
    podman.run(&["container", "checkpoint", &export, &name]);
    assert_eq!(podman.state(&name), "exited");
    let at_dump = podman.run(&["logs", &name]).split_whitespace().count() as u64;
    assert!(at_dump >= seen, "the log ends at {at_dump}, before {seen}");
    let import = format!("--import={}", archive.display());
    for copy in ["copy1", "copy2"] {
        let copy = podman.name(copy);
        podman.run(&["container", "restore", &import, "--name", &copy]);
        let first = podman.restored_count(&copy);
        assert!(
            first >= at_dump && first < at_dump + 100,
            "{copy}: count {first} after a checkpoint at {at_dump}"
        );
        podman.counting_past(&copy, first);
    }
    // The original stays as it was checkpointed: stopped.
    assert_eq!(podman.state(&name), "exited");
}

/// The same container goes back and forth between our criu and CRIU 4.1.1
/// (the peer of `common::peer`, which `tests/run` sets up) under Podman:
/// on a pty and the default bridge network, each one's checkpoint restored
/// by the other, and each one's `--export` archive restored by the other
/// with `--import`.
#[test]
fn podman_containers_cross_between_our_criu_and_criu_4_1_1() {
    const TEST: &str = "podman-cross";
    if cannot_run(TEST) {
        return;
    }
    // tests/run sets the peer up on x86_64: its absence is a failure.
    let peer = common::peer::Peer::find().unwrap_or_else(|why| panic!("{TEST}: {why}"));
    let theirs = peer.dir.join("criu");
    let ours = Path::new(env!("CARGO_BIN_EXE_criu"));
    let podman = Podman::new(TEST);
    let name = podman.name("c");
    podman.start(&name, &["--tty"]);
    let last = podman.cycles(
        &name,
        &[
            Some((ours, &theirs)),
            Some((&theirs, ours)),
            Some((ours, &theirs)),
            Some((&theirs, ours)),
        ],
    );
    podman.check_log(&name, last);
    assert_ne!(
        podman.ctty(&name),
        0,
        "no controlling terminal after the crossings"
    );
    // Each one's archive into a new container by the other.
    let mut from = name;
    for (n, (dump, restore)) in [(ours, theirs.as_path()), (&theirs, ours)]
        .into_iter()
        .enumerate()
    {
        let archive = podman.dir.join(&format!("export{n}.tar"));
        podman.use_criu(dump);
        let seen = podman.counting_past(&from, 0);
        podman.run(&[
            "container",
            "checkpoint",
            &format!("--export={}", archive.display()),
            &from,
        ]);
        podman.use_criu(restore);
        let copy = podman.name(&format!("copy{n}"));
        podman.run(&[
            "container",
            "restore",
            &format!("--import={}", archive.display()),
            "--name",
            &copy,
        ]);
        let first = podman.restored_count(&copy);
        assert!(
            first >= seen && first < seen + 100,
            "{copy}: count {first} after a checkpoint past {seen}"
        );
        podman.counting_past(&copy, first);
        from = copy;
    }
}

/// A checkpoint or restore our criu fails reaches Podman's user as
/// CRIU's failures do (runc's "criu failed: ... log file: PATH", the log
/// ending with the reason), and leaves the container as it was: a failed
/// checkpoint leaves it running, its state intact; a failed restore
/// leaves it stopped with no process behind, and a restore that works
/// takes it on from its checkpoint. The failures are injected through
/// `criu` on PATH: a script that runs ours with our fault variables
/// (runc passes criu no environment of Podman's).
#[test]
fn podman_shows_a_failed_checkpoint_and_restore_and_the_container_survives() {
    const TEST: &str = "podman-fail";
    if cannot_run(TEST) {
        return;
    }
    let podman = Podman::new(TEST);
    let faulty = podman.dir.join("faulty-criu");
    std::fs::write(
        &faulty,
        format!(
            "#!/bin/sh\nexport CRIU_DUMP_FAULT=pages CRIU_RESTORE_FAULT=open-files\n\
             exec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_criu")
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&faulty).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&faulty, perms).unwrap();
    let ours = Path::new(env!("CARGO_BIN_EXE_criu"));
    let name = podman.name("c");
    podman.start(&name, &["--network=none"]);
    let seen = podman.counting_past(&name, 0);

    // The log path runc prints, and the last line of that log.
    let log_of = |out: &str, what: &str| -> String {
        let path = out
            .split("log file: ")
            .nth(1)
            .and_then(|rest| rest.split(['"', '\n', '\\']).next())
            .unwrap_or_else(|| panic!("{what}: no log file named in: {out}"));
        assert!(out.contains("criu failed"), "{what}: {out}");
        let log = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        log.lines().last().unwrap_or_default().to_owned()
    };

    podman.use_criu(&faulty);
    let (ok, out) = podman.try_run(&["container", "checkpoint", &name]);
    assert!(!ok, "a checkpoint with a fault injected succeeded: {out}");
    let last = log_of(&out, "checkpoint");
    assert!(
        last.contains("Dumping FAILED") && last.contains("fault injected at step \"pages\""),
        "the dump log ends with: {last}"
    );
    // It runs on, as it was.
    assert_eq!(podman.state(&name), "running");
    let seen = podman.counting_past(&name, seen + 5);

    podman.use_criu(ours);
    podman.run(&["container", "checkpoint", &name]);
    podman.use_criu(&faulty);
    let (ok, out) = podman.try_run(&["container", "restore", &name]);
    assert!(!ok, "a restore with a fault injected succeeded: {out}");
    let last = log_of(&out, "restore");
    assert!(
        last.contains("Restore failed") && last.contains("open-files"),
        "the restore log ends with: {last}"
    );
    assert_eq!(podman.state(&name), "exited", "after a failed restore");
    podman.use_criu(ours);
    podman.run(&["container", "restore", &name]);
    let first = podman.restored_count(&name);
    assert!(
        first >= seen && first < seen + 100,
        "count {first} after a checkpoint past {seen}"
    );
    podman.counting_past(&name, first);
    podman.check_log(&name, first);
}
