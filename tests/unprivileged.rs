//! `--unprivileged`: an ordinary user (uid 1000) whose criu binary holds
//! CAP_CHECKPOINT_RESTORE as a file capability dumps and restores its own
//! process, is refused (cleanly, the process untouched) on a process of
//! another user, and is told to use `--unprivileged` without it. The test
//! copies criu and the test program into a directory uid 1000 can reach
//! and sets the capability itself (as root), so no user account and no
//! `setcap` are needed.
#![cfg(target_arch = "x86_64")]

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TempDir, become_subreaper, skip, wait_for_file};
use rustix::process::{Pid, Signal, WaitOptions};

const UID: u32 = 1000;
const TIMEOUT: Duration = Duration::from_secs(20);
const CAP_CHECKPOINT_RESTORE: u32 = 40;

/// `struct vfs_cap_data` (revision 2) granting `cap` permitted and
/// effective: what `setcap cap_X+eip` writes to `security.capability`.
fn file_caps(cap: u32) -> [u8; 20] {
    const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
    const VFS_CAP_FLAGS_EFFECTIVE: u32 = 1;
    let mut words = [0u32; 5];
    words[0] = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
    // data[i] = { permitted, inheritable }, 32 capabilities each.
    words[1 + 2 * (cap / 32) as usize] = 1 << (cap % 32);
    let mut out = [0u8; 20];
    for (i, w) in words.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The test's set-up: a directory tree uid 1000 can use, holding a copy
/// of criu with the capability and a copy of the counter program.
struct Setup {
    dir: TempDir,
    criu: PathBuf,
    program: PathBuf,
}

fn setup(test: &str) -> Option<Setup> {
    if !rustix::process::geteuid().is_root() {
        skip(test, "needs root to set up the user's files");
        return None;
    }
    become_subreaper();
    let dir = TempDir::new(test);
    let chown = |p: &Path| std::os::unix::fs::chown(p, Some(UID), Some(UID)).unwrap();
    let perm = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap()
    };
    perm(dir.path(), 0o755);
    // TempDir's parent (the temp dir) is world-searchable.
    let criu = dir.join("criu");
    std::fs::copy(env!("CARGO_BIN_EXE_criu"), &criu).unwrap();
    perm(&criu, 0o755);
    if let Err(e) = rustix::fs::setxattr(
        &criu,
        "security.capability",
        &file_caps(CAP_CHECKPOINT_RESTORE),
        rustix::fs::XattrFlags::empty(),
    ) {
        skip(test, &format!("cannot set file capabilities here: {e}"));
        return None;
    }
    let program = dir.join("zdtm_counter");
    std::fs::copy(common::program_path("zdtm_counter"), &program).unwrap();
    perm(&program, 0o755);
    for sub in ["work", "images"] {
        let p = dir.join(sub);
        std::fs::create_dir(&p).unwrap();
        chown(&p);
        perm(&p, 0o700);
    }
    Some(Setup { dir, criu, program })
}

/// Run `f` (a spawn of one of the copied binaries) again while it fails
/// with ETXTBSY: a test thread copying its binaries races with another
/// thread's fork, whose child holds the copy open for writing until it
/// execs.
fn retry_busy<T>(mut f: impl FnMut() -> std::io::Result<T>) -> T {
    for _ in 0..100 {
        match f() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.expect("spawn"),
        }
    }
    f().expect("spawn (still busy)")
}

/// Make the command run as uid/gid 1000 with no supplementary groups.
fn as_user(cmd: &mut Command) -> &mut Command {
    // std drops the supplementary groups when root changes the uid.
    cmd.uid(UID).gid(UID)
}

impl Setup {
    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    /// Start the counter (as uid 1000 unless `root`); its PID once ready.
    fn start(&self, root: bool) -> std::process::Child {
        let mut cmd = Command::new(&self.program);
        cmd.arg(self.work())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !root {
            as_user(&mut cmd);
        }
        let child = retry_busy(|| cmd.spawn());
        let ready = wait_for_file(&self.work().join("ready"), TIMEOUT).expect("program not ready");
        assert_eq!(ready.trim(), child.id().to_string());
        child
    }

    /// Run our criu as uid 1000: success, and the log.
    fn criu(&self, args: &[&str]) -> (bool, String) {
        let log = format!("{}.log", args[0]);
        let mut cmd = Command::new(&self.criu);
        as_user(&mut cmd)
            .args(args)
            .arg("-D")
            .arg(self.images())
            .args(["-v4", "-o", &log])
            .stdin(Stdio::null());
        let out = retry_busy(|| cmd.output());
        let mut text = std::fs::read_to_string(self.images().join(&log)).unwrap_or_default();
        text += &String::from_utf8_lossy(&out.stderr);
        text += &String::from_utf8_lossy(&out.stdout);
        (out.status.success(), text)
    }

    fn go(&self) -> String {
        std::fs::write(self.work().join("go"), "").unwrap();
        wait_for_file(&self.work().join("result"), TIMEOUT)
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

fn status_field(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn unprivileged_user_dumps_and_restores_its_own_process() {
    let Some(s) = setup("unpriv-own") else { return };
    let (ok, log) = s.criu(&["check", "--unprivileged"]);
    assert!(ok, "criu check --unprivileged: {log}");
    let mut child = s.start(false);
    let pid = child.id() as i32;
    let (ok, log) = s.criu(&["dump", "--unprivileged", "-t", &pid.to_string()]);
    assert!(ok, "unprivileged dump: {log}");
    child.wait().unwrap();
    let (ok, log) = s.criu(&["restore", "--unprivileged", "-d", "--pidfile", "pid"]);
    assert!(ok, "unprivileged restore: {log}");
    let restored = std::fs::read_to_string(s.images().join("pid")).unwrap();
    assert_eq!(restored.trim(), pid.to_string());
    // Back as the user's own process, with none of criu's capability.
    assert_eq!(status_field(pid, "Uid:"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(pid, "CapEff:"), "0000000000000000");
    assert_eq!(status_field(pid, "CapPrm:"), "0000000000000000");
    let verdict = s.go();
    let p = Pid::from_raw(pid).unwrap();
    let _ = rustix::process::kill_process(p, Signal::KILL);
    let _ = rustix::process::waitpid(Some(p), WaitOptions::empty());
    assert_eq!(verdict, "PASS");
}

#[test]
fn unprivileged_user_cannot_dump_another_users_process() {
    let Some(s) = setup("unpriv-other") else {
        return;
    };
    let mut child = s.start(true);
    let pid = child.id() as i32;
    let (ok, log) = s.criu(&["dump", "--unprivileged", "-t", &pid.to_string()]);
    assert!(!ok, "dump of root's process as uid 1000 worked");
    assert!(
        log.contains(&format!("task {pid} belongs to uid 0")),
        "{log}"
    );
    // Untouched: not stopped, not traced, and its state intact.
    assert_eq!(status_field(pid, "TracerPid:"), "0");
    assert_eq!(s.go(), "PASS");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn non_root_without_unprivileged_is_told_to_use_it() {
    let Some(s) = setup("unpriv-flag") else {
        return;
    };
    let (ok, log) = s.criu(&["dump", "-t", "1"]);
    assert!(!ok);
    assert!(
        log.contains("Running as non-root requires '--unprivileged'"),
        "{log}"
    );
    // And a criu without the capability says how to grant it.
    let plain = s.dir.join("criu-plain");
    std::fs::copy(env!("CARGO_BIN_EXE_criu"), &plain).unwrap();
    let mut cmd = Command::new(&plain);
    as_user(&mut cmd)
        .args(["dump", "--unprivileged", "-t", "1", "-D"])
        .arg(s.images());
    let out = retry_busy(|| cmd.output());
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("setcap cap_checkpoint_restore+eip"), "{text}");
}
