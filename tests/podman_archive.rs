//! A real Podman checkpoint archive (issue 16, "checkpoint archives from
//! the ecosystem"): Podman (Debian 12's, with runc as its runtime)
//! checkpoints a small running container (busybox's shell and applets,
//! and the host's python3 holding SysV IPC, shared memory, a memfd, event,
//! inotify, signal and timer fds) with the real CRIU 4.1.1 (the
//! peer of `common::peer`, put first on PATH as `criu`, where runc finds
//! it) and exports it with `podman container checkpoint --export`. Every
//! CRIU image in the archive decodes with our crit to what CRIU's crit
//! prints (`decode` and `show`), `crit x` shows the same tree, files and
//! memory, the page data matches the pagemaps, and the rest of the archive
//! (Podman's metadata, raw page data, CRIU's tmpfs tars) gets a clear
//! refusal from our crit, never a panic.
//!
//! Podman runs with private state only: `--root`, `--runroot` and
//! `--tmpdir` in the test's directory, vfs storage, the container's root
//! filesystem given with `--rootfs` (so no image store is used at all) and
//! a cgroup parent of the test's own; the container, its mounts and its
//! cgroups are removed at the end, so the machine's podman state is
//! untouched. `tests/run` installs podman, runc and busybox-static (the
//! container's shell); python3 is the host's. x86_64 only: the VMs have
//! no podman.

mod common;

#[cfg(target_arch = "x86_64")]
mod podman {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::time::Duration;

    use super::common::peer::{Peer, compare_crits_of, normalize, our_crit, protobuf_images};
    use super::common::{self, TempDir, skip};

    /// The most any one podman or tar command may take.
    const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

    /// The container's program: a shell with a counter it writes to
    /// `/tmp/count` (the test reads it in the root filesystem to know the
    /// container runs), a FIFO and a pipe with data queued in them, a unix
    /// datagram socket (syslogd's `/dev/log`), on the terminal Podman's
    /// `-t` gives it; and the host's python3 (its `/usr` is bind-mounted)
    /// running [`PYTHON`].
    const SCRIPT: &str = "mkfifo /tmp/fifo; exec 3<>/tmp/fifo; echo queued-in-fifo >&3; \
        syslogd -n -O /tmp/syslog & \
        (echo queued-in-pipe; exec sleep 1000) | sleep 1000 & \
        /usr/bin/python3 /state.py & \
        i=0; while :; do i=$((i+1)); echo $i >/tmp/count; sleep 0.1; done";

    /// The busybox applets the script runs.
    const APPLETS: &[&str] = &["sh", "sleep", "mkfifo", "syslogd"];

    /// More kinds of state, which CRIU writes to images of their own: SysV
    /// shared memory, a message queue and semaphores (`ipcns-*`), a memfd,
    /// shared anonymous memory (`pagemap-shmem-*`), a unix socket pair with
    /// a queued message (`sk-queues`), an eventfd in an epoll, an inotify,
    /// a signalfd, a timerfd, an interval timer and a second thread. It
    /// writes `/tmp/py-ready` when all is set up.
    const PYTHON: &str = r#"
import ctypes, mmap, os, select, signal, socket, threading, time
libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT = 0o1000
libc.shmat.restype = ctypes.c_void_p
shm = libc.shmget(0, 8192, IPC_CREAT | 0o600)
ctypes.memset(libc.shmat(shm, None, 0), 0x5A, 100)
class Msg(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 16)]
msq = libc.msgget(0, IPC_CREAT | 0o600)
libc.msgsnd(msq, ctypes.byref(Msg(7, b"queued-in-msgq")), 16, 0)
sem = libc.semget(0, 3, IPC_CREAT | 0o600)
memfd = os.memfd_create("criu-rs-memfd")
os.write(memfd, b"in-the-memfd")
shared = mmap.mmap(-1, 65536, flags=mmap.MAP_SHARED)
shared[:6] = b"shared"
a, b = socket.socketpair()
a.send(b"queued-in-socket")
efd = os.eventfd(5)
ep = select.epoll()
ep.register(efd, select.EPOLLIN)
ino = libc.inotify_init1(0)
libc.inotify_add_watch(ino, b"/tmp", 0x100)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
mask = (ctypes.c_ulong * 16)(1 << (signal.SIGUSR1 - 1))
sfd = libc.signalfd(-1, ctypes.byref(mask), 0)
class Ts(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
tfd = libc.timerfd_create(1, 0)
libc.timerfd_settime(tfd, 0, ctypes.byref((Ts * 2)(Ts(100, 0), Ts(100, 0))), None)
signal.signal(signal.SIGALRM, lambda *_: None)
signal.setitimer(signal.ITIMER_REAL, 1000, 1000)
threading.Thread(target=lambda: time.sleep(1000), daemon=True).start()
if min(shm, msq, sem, ino, sfd, tfd) < 0:
    raise SystemExit("set-up failed: errno %d" % ctypes.get_errno())
open("/tmp/py-ready", "w").write("ready")
while True:
    time.sleep(1)
"#;

    /// Image kinds CRIU writes for this container (the name before `-ID`):
    /// each must be in the archive, so that the test decodes them all.
    const KINDS: &[&str] = &[
        "inventory",
        "pstree",
        "core",
        "ids",
        "mm",
        "pagemap",
        "fs",
        "files",
        "fdinfo",
        "fifo-data",
        "pipes-data",
        "tty-info",
        "cgroup",
        "mountpoints",
        "seccomp",
        "utsns",
        "ipcns-var",
        "ipcns-shm",
        "ipcns-msg",
        "ipcns-sem",
        "memfd",
        "pagemap-shmem",
        "sk-queues",
        "timens",
    ];

    /// What Podman always adds beside `checkpoint/` (CRI-O's archives use
    /// the same names).
    const METADATA: &[&str] = &["config.dump", "spec.dump", "network.status", "stats-dump"];

    /// Why the tools this test needs are missing, if they are.
    fn missing_tools() -> Option<String> {
        let on_path = |name: &str| {
            std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        };
        let missing: Vec<&str> = ["podman", "runc", "conmon", "tar", "gzip"]
            .into_iter()
            .filter(|t| !on_path(t))
            .chain(
                ["/bin/busybox", "/usr/bin/python3"]
                    .into_iter()
                    .filter(|f| !Path::new(f).is_file()),
            )
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "podman's tools are not installed: {} (tests/run installs podman, runc and \
                 busybox-static)",
                missing.join(", ")
            )
        })
    }

    /// [`common::run_bounded`] within [`COMMAND_TIMEOUT`].
    fn run_bounded(cmd: Command, dir: &Path, what: &str) -> Result<Output, String> {
        common::run_bounded(cmd, dir, what, COMMAND_TIMEOUT)
    }

    /// Podman with state of its own in a temporary directory, and the
    /// container it runs; all removed on drop.
    struct Podman {
        dir: TempDir,
        /// PATH with the peer's `criu` first.
        path: OsString,
        /// The cgroup parent of the container and conmon (`/NAME`).
        cgroup_parent: String,
        name: String,
    }

    impl Podman {
        fn new(test: &str, peer: &Peer) -> Podman {
            let dir = TempDir::new(test);
            let bin = dir.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::os::unix::fs::symlink(peer.dir.join("criu"), bin.join("criu")).unwrap();
            let mut paths = vec![bin];
            if let Some(p) = std::env::var_os("PATH") {
                paths.extend(std::env::split_paths(&p));
            }
            let path = std::env::join_paths(paths).unwrap();
            // No storage.conf of the machine's applies: this one says
            // what the flags below say.
            let conf = format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                dir.join("root").display(),
                dir.join("run").display()
            );
            std::fs::write(dir.join("storage.conf"), conf).unwrap();
            let id = format!("criu-rs-{test}-{}", std::process::id());
            Podman {
                dir,
                path,
                cgroup_parent: format!("/{id}"),
                name: id,
            }
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

        /// `podman ARGS`, which must succeed: its stdout.
        fn run(&self, args: &[&str]) -> String {
            let what = format!("podman {args:?}");
            let out = run_bounded(self.command(args), self.dir.path(), &what).unwrap();
            assert!(
                out.status.success(),
                "podman {args:?}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }

        /// A root filesystem of busybox and the applets the script runs,
        /// [`PYTHON`], and where the host's `/usr` is mounted (`/lib` and
        /// `/lib64` lead there, as on the host).
        fn make_rootfs(&self) -> PathBuf {
            let rootfs = self.dir.join("rootfs");
            for d in ["bin", "tmp", "usr"] {
                std::fs::create_dir_all(rootfs.join(d)).unwrap();
            }
            std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
            for applet in APPLETS {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
            }
            for lib in ["lib", "lib64"] {
                std::os::unix::fs::symlink(format!("usr/{lib}"), rootfs.join(lib)).unwrap();
            }
            std::fs::write(rootfs.join("state.py"), PYTHON).unwrap();
            rootfs
        }

        /// Remove what `podman rm` leaves of the cgroup parent: `conmon`
        /// below it and itself, in every hierarchy (conmon may take a
        /// moment to leave its cgroup after the container ends).
        fn remove_cgroups(&self) {
            let name = self.cgroup_parent.trim_start_matches('/');
            let mut dirs = vec![Path::new("/sys/fs/cgroup").join(name)];
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
                eprintln!("{}: cgroups left behind: {dirs:?}", self.name);
            }
        }

        /// Unmount anything left mounted in the test's directory (podman
        /// rm unmounts the container's; this is for a test that failed
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
    }

    impl Drop for Podman {
        fn drop(&mut self) {
            let rm = self.command(&["rm", "--force", "--time", "0", "--ignore", &self.name]);
            let out = run_bounded(rm, self.dir.path(), "podman rm");
            if !out.as_ref().is_ok_and(|o| o.status.success()) {
                eprintln!("{}: podman rm: {out:?}", self.name);
            }
            self.unmount_leftovers();
            self.remove_cgroups();
        }
    }

    /// Every file under `dir`, as paths relative to it, sorted.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    todo.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().to_path_buf());
                }
            }
        }
        out.sort();
        out
    }

    /// The kind of a CRIU image from its file name: `core-7.img` is
    /// `core`, `ipcns-var-11.img` is `ipcns-var`, `inventory.img` is
    /// `inventory`.
    fn kind_of(name: &str) -> &str {
        let stem = name.strip_suffix(".img").unwrap_or(name);
        match stem.rsplit_once('-') {
            Some((kind, id)) if id.bytes().all(|b| b.is_ascii_digit()) => kind,
            _ => stem,
        }
    }

    /// Our crit on a file that is not a protobuf image: a clear error
    /// (`crit: FILE: ...`, exit 1), never a panic or made-up output.
    fn refused_by_our_crit(file: &Path) -> Result<(), String> {
        let out = Command::new(env!("CARGO_BIN_EXE_crit"))
            .args(["decode", "-i"])
            .arg(file)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let prefix = format!("crit: {}: ", file.display());
        if out.status.code() == Some(1) && out.stdout.is_empty() && err.starts_with(&prefix) {
            Ok(())
        } else {
            Err(format!(
                "{}: want a refusal, got {}: {}{err}",
                file.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }

    /// Both crits' `show` of `img`, to the same JSON (after `normalize`).
    fn same_show(peer: &Peer, img: &Path) -> Result<(), String> {
        let p = img.to_str().unwrap();
        let parse = |text: String| -> Result<serde_json::Value, String> {
            let mut v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
            normalize(&mut v);
            Ok(v)
        };
        let theirs = parse(peer.crit(&["show", p])?)?;
        let ours = parse(our_crit(&["show", p])?)?;
        if theirs == ours {
            Ok(())
        } else {
            Err(format!(
                "{p}: crit show differs:\n  CRIU's: {theirs}\n  ours:   {ours}"
            ))
        }
    }

    /// A JSON number field of an entry.
    fn num(entry: &serde_json::Value, field: &str) -> u64 {
        entry.get(field).and_then(|v| v.as_u64()).unwrap_or(0)
    }

    /// Each `pages-N.img` holds exactly the pages the pagemaps (of tasks
    /// and of shared memory) naming `pages_id: N` say are present
    /// (PE_PRESENT), as our crit decodes them.
    fn check_pages(images: &Path) -> Vec<String> {
        const PE_PRESENT: u64 = 1 << 2;
        let page = rustix::param::page_size() as u64;
        let mut want = std::collections::BTreeMap::<u64, u64>::new();
        for img in protobuf_images(images) {
            let name = img.file_name().unwrap().to_string_lossy().into_owned();
            if !["pagemap", "pagemap-shmem"].contains(&kind_of(&name)) {
                continue;
            }
            let text = our_crit(&["decode", "-i", img.to_str().unwrap()]).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let entries = v["entries"].as_array().unwrap();
            let id = num(&entries[0], "pages_id");
            let pages: u64 = entries[1..]
                .iter()
                .filter(|e| num(e, "flags") & PE_PRESENT != 0)
                .map(|e| num(e, "nr_pages").max(num(e, "compat_nr_pages")))
                .sum();
            *want.entry(id).or_default() += pages * page;
        }
        let mut bad = Vec::new();
        for (id, bytes) in &want {
            let file = images.join(format!("pages-{id}.img"));
            let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            if len != *bytes {
                bad.push(format!(
                    "{}: {len} bytes, the pagemaps say {bytes}",
                    file.display()
                ));
            }
        }
        if want.is_empty() {
            bad.push("no pagemap image".into());
        }
        // And no page data is left that no pagemap names.
        for e in std::fs::read_dir(images).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name
                .strip_prefix("pages-")
                .and_then(|n| n.strip_suffix(".img"));
            if let Some(id) = id.and_then(|i| i.parse::<u64>().ok())
                && !want.contains_key(&id)
            {
                bad.push(format!("{name}: no pagemap names it"));
            }
        }
        bad
    }

    /// Podman checkpoints a running container with CRIU 4.1.1 and exports
    /// it; our crit reads every image of the archive as CRIU's crit does.
    #[test]
    fn podman_checkpoint_archive_images_decode_with_both_crits() {
        let test = "podman-archive";
        if let Some(why) = common::cannot_checkpoint() {
            return skip(test, why);
        }
        if let Some(why) = missing_tools() {
            return skip(test, &why);
        }
        // tests/run sets the peer up on x86_64: its absence is a failure.
        let peer = Peer::find().unwrap_or_else(|why| panic!("{test}: {why}"));
        let podman = Podman::new(test, &peer);
        let rootfs = podman.make_rootfs();
        let cgroup_parent = format!("--cgroup-parent={}", podman.cgroup_parent);
        // This machine has no CAP_SYS_RESOURCE: runc cannot raise the
        // limits Podman asks for by default (RLIMIT_NOFILE and NPROC of
        // 1048576), so the container gets limits it can set.
        podman.run(&[
            "run",
            "--detach",
            "--tty",
            "--name",
            &podman.name,
            "--network=none",
            &cgroup_parent,
            "--ulimit=nofile=1024:1024",
            "--ulimit=nproc=1024:1024",
            "--env=PATH=/bin",
            "--volume=/usr:/usr:ro",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "/bin/sh",
            "-c",
            SCRIPT,
        ]);
        let count = rootfs.join("tmp/count");
        let running = common::wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(&count)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_some_and(|n| n >= 5)
                && rootfs.join("tmp/py-ready").exists()
        });
        if !running {
            let logs = podman.run(&["logs", &podman.name]);
            panic!("the container did not get ready (counter to 5, python3) in 20 s: {logs}");
        }

        let archive = podman.dir.join("checkpoint.tar.gz");
        let archive_arg = format!("--export={}", archive.display());
        podman.run(&[
            "container",
            "checkpoint",
            "--compress=gzip",
            &archive_arg,
            &podman.name,
        ]);
        let state = podman.run(&["inspect", "--format", "{{.State.Status}}", &podman.name]);
        assert_eq!(state.trim(), "exited", "the container after its checkpoint");

        let out = podman.dir.join("extracted");
        std::fs::create_dir_all(&out).unwrap();
        let mut tar = Command::new("tar");
        tar.arg("-xzf").arg(&archive).arg("-C").arg(&out);
        let t = run_bounded(tar, podman.dir.path(), "tar -xzf").unwrap();
        assert!(t.status.success(), "tar -xzf: {t:?}");

        let files = files_under(&out);
        eprintln!("{test}: the archive holds:");
        for f in &files {
            let len = std::fs::metadata(out.join(f)).unwrap().len();
            eprintln!("  {:>8}  {}", len, f.display());
        }
        for m in METADATA {
            assert!(
                out.join(m).is_file(),
                "{m} is not in the archive: {files:?}"
            );
        }
        let images = out.join("checkpoint");
        let protobuf = protobuf_images(&images);
        let kinds: std::collections::BTreeSet<&str> = protobuf
            .iter()
            .map(|p| kind_of(p.file_name().unwrap().to_str().unwrap()))
            .collect();
        let missing: Vec<&&str> = KINDS.iter().filter(|k| !kinds.contains(*k)).collect();
        assert!(
            missing.is_empty(),
            "images CRIU did not write: {missing:?} (have {kinds:?})"
        );

        // Every CRIU image, and CRIU's statistics beside them: both crits
        // decode it to the same JSON, and print the same `show`.
        let mut decoded = protobuf.clone();
        decoded.push(out.join("stats-dump"));
        let mut bad = compare_crits_of(&peer, &decoded);
        if peer.cannot_run_crit().is_none() {
            bad.extend(decoded.iter().filter_map(|img| same_show(&peer, img).err()));
            for what in ["ps", "fds", "mems", "rss"] {
                let args = ["x", images.to_str().unwrap(), what];
                match (our_crit(&args), peer.crit(&args)) {
                    (Ok(o), Ok(t)) if o == t => {}
                    (o, t) => bad.push(format!("crit x {what}:\n  CRIU's: {t:?}\n  ours:   {o:?}")),
                }
            }
        }
        bad.extend(check_pages(&images));
        // The rest (raw page data, tmpfs tars, Podman's files) is refused.
        let others: Vec<PathBuf> = files
            .iter()
            .map(|f| out.join(f))
            .filter(|p| !decoded.contains(p))
            .collect();
        assert!(
            others.iter().any(|p| p.ends_with("config.dump")) && others.len() >= 4,
            "{others:?}"
        );
        bad.extend(others.iter().filter_map(|p| refused_by_our_crit(p).err()));
        assert!(bad.is_empty(), "{}", bad.join("\n"));

        // What the crits show is this container: its shell and children,
        // its FIFO, pipe, unix socket and terminal.
        let ps = our_crit(&["x", images.to_str().unwrap(), "ps"]).unwrap();
        for comm in ["sh", "syslogd", "sleep", "python3"] {
            assert!(
                ps.split_whitespace().any(|w| w == comm),
                "no {comm} in\n{ps}"
            );
        }
        let fds = our_crit(&["x", images.to_str().unwrap(), "fds"]).unwrap();
        for kind in ["FIFO", "pipe[", "TTY", "unix["] {
            assert!(fds.contains(kind), "no {kind} fd in\n{fds}");
        }
        // The lines queued in the FIFO and the pipe (15 bytes each).
        for img in ["fifo-data.img", "pipes-data.img"] {
            let data = our_crit(&["show", images.join(img).to_str().unwrap()]).unwrap();
            assert!(data.contains("\"bytes\": 15"), "{img}: {data}");
        }
    }
}
