//! Shared harness for the integration tests: per-test temporary directories,
//! starting the test programs (examples of this package) in their own session
//! with stdio to files, waiting for their files, and cleaning up by PID.
#![allow(dead_code)] // Each test binary uses a different part of it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

#[allow(dead_code)]
pub mod cgroups;
pub mod container;
pub mod fixtures;
pub mod net;
pub mod peer;
pub mod skipping;
pub mod zdtm;

pub use skipping::skip;

/// A temporary directory removed (with its contents) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh directory named after the test, unique within this run.
    pub fn new(test: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("criu-test-{test}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Make this test process the reaper of orphaned descendants, so that
/// programs that fork are still ours to reap and kill.
pub fn become_subreaper() {
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
}

/// Path of a test program built as an example of this package: test
/// binaries live in `target/<profile>/deps`, examples in
/// `target/<profile>/examples`.
pub fn program_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "test program {} is not built: `cargo test` builds it (examples are \
         built with the tests), a filtered run needs `cargo build --examples` first",
        path.display()
    );
    path
}

/// A running test program, killed (by PID) and reaped on drop.
pub struct Program {
    child: Child,
}

impl Program {
    /// Start example `name` with `args`, stdin from /dev/null and
    /// stdout/stderr to `dir/<name>.out` / `dir/<name>.err`. The programs
    /// call `setsid()` themselves; fds of ours are not inherited (Rust opens
    /// everything close-on-exec, and `Command` passes only stdio).
    pub fn spawn(name: &str, args: &[&str], dir: &Path) -> Program {
        Program::spawn_wrapped(&[], name, args, dir)
    }

    /// [`Program::spawn`] through `wrapper` (a command and its arguments,
    /// like `unshare --uts`, which runs the program's path and `args`).
    pub fn spawn_wrapped(wrapper: &[&str], name: &str, args: &[&str], dir: &Path) -> Program {
        let out = std::fs::File::create(dir.join(format!("{name}.out"))).expect("stdout file");
        let err = std::fs::File::create(dir.join(format!("{name}.err"))).expect("stderr file");
        let path = program_path(name);
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", path.display()));
        Program { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send `sig` to the program (by PID).
    pub fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(self.pid()).expect("pid");
        rustix::process::kill_process(pid, sig).expect("kill");
    }

    /// Wait up to `timeout` for the program to exit; its exit code, or
    /// `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // `Child::kill` sends SIGKILL to this child's PID only.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Start a real program `argv` in `dir`, stdio on the file `dir/out`: in
/// a new session, unless `job`, where it only gets its own process group
/// (as a shell's job does).
pub fn spawn_in(dir: &Path, argv: &[&str], job: bool) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(dir.join("out")).unwrap();
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    // SAFETY: only async-signal-safe syscalls run between fork and exec:
    // close every fd above stdio (the test runner's, e.g. cargo's jobserver
    // pipe, must not become part of the program) and, unless it is to be
    // a job of ours, start a new session.
    unsafe {
        cmd.pre_exec(move || {
            criu_arch::syscall3(criu_arch::nr::CLOSE_RANGE, 3, u32::MAX as usize, 0);
            if !job {
                rustix::process::setsid()?;
            }
            Ok(())
        })
    };
    if job {
        cmd.process_group(0);
    }
    cmd.spawn().expect("spawn")
}

/// The number a program keeps writing to `path` (0 while there is none).
pub fn read_num(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether the running kernel is at least `major.minor` (from uname's
/// release, e.g. `6.1.0-57-arm64`), for a feature that version added.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let num = |p: Option<&str>| p.and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    (num(parts.next()), num(parts.next())) >= (major, minor)
}

/// Wait until `path` exists and is non-empty; its contents.
pub fn wait_for_file(path: &Path, timeout: Duration) -> Option<String> {
    let end = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return Some(text);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `pred` holds, polling; whether it did within `timeout`.
pub fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `TracerPid:` of `/proc/PID/status` (0: not traced).
pub fn tracer_pid(pid: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|s| s.trim().parse().ok())
}

/// The state letter of `/proc/PID/status` (`R`, `S`, `T`, `t`, `Z`, ...).
pub fn proc_state(pid: i32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("State:"))
        .and_then(|s| s.trim().chars().next())
}

/// The syscall number a task is blocked in (first field of
/// `/proc/PID/syscall`), if it is blocked in one.
pub fn proc_syscall(pid: i32) -> Option<i64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Run our `criu ARGS -D images -v4 -o ACTION.log` (ACTION = `args[0]`)
/// with `env` added and stdio on /dev/null: whether it succeeded, and its
/// log.
pub fn run_criu(images: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (bool, String) {
    let action = args[0];
    let out = Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(args)
        .arg("-D")
        .arg(images)
        .args(["-v4", "-o", &format!("{action}.log")])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run criu");
    let mut log = std::fs::read_to_string(images.join(format!("{action}.log"))).unwrap_or_default();
    // A failure the log does not explain (a crash, a message only on
    // stderr): say how it ended, for whoever reads the failed test.
    if !out.status.success() && !log.contains("Error") {
        log.push_str(&how_criu_ended(&out.status, &out.stderr));
    }
    (out.status.success(), log)
}

/// How a failed criu run ended, for a test's failure message: its exit
/// status (or the signal that killed it) and whatever it wrote to stderr
/// (a panic's message goes there too), so that no failure reads as a log
/// that simply stops.
pub fn how_criu_ended(status: &std::process::ExitStatus, stderr: &[u8]) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("{status}"),
    };
    let err = String::from_utf8_lossy(stderr);
    let err = err.trim_end();
    if err.is_empty() {
        format!("\n[criu: {how}, nothing on stderr]\n")
    } else {
        format!("\n[criu: {how}; stderr:]\n{err}\n")
    }
}

/// Every descendant of `pid` (children, theirs, ...), from /proc.
#[allow(dead_code)]
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in dir.flatten() {
            let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in text
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok())
            {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// Reap tasks of a dumped (killed) tree: orphans come to us, the
/// subreaper, and must be reaped before their PIDs are free again.
#[allow(dead_code)]
pub fn reap(pids: &[i32]) {
    for &p in pids {
        let _ = rustix::process::waitpid(Pid::from_raw(p), WaitOptions::empty());
    }
}

/// Kill what is left of a tree (by PID) and reap it.
#[allow(dead_code)]
pub fn kill_all(pids: &[i32]) {
    for &p in pids {
        if let Some(p) = Pid::from_raw(p) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
        }
    }
    reap(pids);
}

/// Why dump and restore cannot be tested here, if they cannot: not root,
/// or no ptrace at all (qemu-user answers every ptrace request with
/// ENOSYS; a real kernel says ESRCH for a PID that cannot exist).
#[allow(dead_code)]
pub fn cannot_checkpoint() -> Option<&'static str> {
    cannot_ptrace()
}

/// Why tasks cannot be traced here, if they cannot: not root, or no
/// ptrace at all (see [`cannot_checkpoint`]).
#[allow(dead_code)]
pub fn cannot_ptrace() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root");
    }
    const PTRACE_SEIZE: usize = linux_raw_sys::ptrace::PTRACE_SEIZE as usize;
    // SAFETY: integer arguments only; no memory is read or written.
    let ret =
        unsafe { criu_arch::syscall4(criu_arch::nr::PTRACE, PTRACE_SEIZE, 0x3fff_ffff, 0, 0) };
    if ret == -(rustix::io::Errno::NOSYS.raw_os_error() as isize) {
        return Some("ptrace is not available (qemu-user?)");
    }
    None
}

/// Why a mount namespace cannot be restored here, if it cannot: a
/// machine booted into an initramfs (the VMs') has `rootfs` as its root,
/// which `pivot_root` (the restore's, as CRIU's) cannot leave.
#[allow(dead_code)]
pub fn cannot_pivot_root() -> Option<&'static str> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root_fs = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(" - ").nth(1))
        .and_then(|t| t.split(' ').next());
    (root_fs == Some("rootfs"))
        .then_some("the root filesystem is an initramfs (rootfs), which pivot_root cannot leave")
}

/// Run `cmd` to its end, at most `timeout`; its output in files of `dir`
/// (no pipe can fill up). On timeout it is killed (by its PID: it is this
/// test's child) and the error names it as `what`.
#[allow(dead_code)]
pub fn run_bounded(
    mut cmd: std::process::Command,
    dir: &Path,
    what: &str,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    let out_path = dir.join("cmd.out");
    let err_path = dir.join("cmd.err");
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?)
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not end within {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{what}: wait: {e}")),
        }
    };
    Ok(std::process::Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    })
}
