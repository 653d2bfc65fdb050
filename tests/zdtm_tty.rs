//! ZDTM-style tests of terminals: ptys a program opened itself (same
//! index, termios, window size, lock, packet mode, queued bytes both ways,
//! controlling terminal), a pts of a master outside the dump (refused
//! without `--shell-job`), and a `--shell-job` job on a shell's terminal
//! restored from another shell (the job gets that shell's terminal). The
//! ptys here are made by the tests themselves: no real terminal is needed.

mod common;
mod service_common;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::zdtm::{TIMEOUT, Zdtm};
use common::{TempDir, program_path, skip, wait_for_file};
use criu_core::sys::tty as sys;
use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, Signal};

/// Pty indices are global: the tests of this file make and restore ptys
/// one at a time, so that one's restore never finds its index taken by
/// another's new pty.
static PTYS: Mutex<()> = Mutex::new(());

fn pty_lock() -> std::sync::MutexGuard<'static, ()> {
    PTYS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new pty of ours: the master and the slave's path.
fn open_pty() -> (OwnedFd, String) {
    let m = rustix::fs::open(
        "/dev/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open /dev/ptmx");
    sys::set_int(&m, sys::TIOCSPTLCK, 0).expect("unlock");
    let n = sys::get_int(&m, sys::TIOCGPTN).expect("TIOCGPTN");
    (m, format!("/dev/pts/{n}"))
}

fn kill_pid(pid: i32) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, Signal::KILL);
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG);
    }
}

/// Runs CRIU's crit (if installed) on every image of `images`.
fn crit_decodes(test: &str, images: &Path) {
    let crit = Path::new("/usr/bin/crit");
    if !crit.exists() {
        skip(test, "CRIU's crit is not installed (Debian package criu)");
        return;
    }
    for entry in std::fs::read_dir(images).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".img") || name.starts_with("pages-") {
            continue;
        }
        let out = Command::new(crit)
            .args(["decode", "-i", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "crit decode {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(crit)
        .args(["x", images.to_str().unwrap(), "fds"])
        .output()
        .unwrap();
    assert!(out.status.success(), "crit x fds");
}

#[test]
fn ptys_keep_index_termios_winsize_data_lock_packet_and_ctty() {
    let _g = pty_lock();
    let Some(mut z) = Zdtm::start("zdtm-pty", "zdtm_pty", &[]) else {
        return;
    };
    z.dump(&[]);
    let images = z.images().to_path_buf();
    for name in ["tty-info.img", "tty-data.img"] {
        assert!(images.join(name).exists(), "no {name}");
    }
    crit_decodes("zdtm-pty crit", &images);
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn ptys_keep_their_data_when_left_running() {
    let _g = pty_lock();
    let Some(mut z) = Zdtm::start("zdtm-pty-leave", "zdtm_pty", &[]) else {
        return;
    };
    z.dump(&["--leave-running"]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn ptys_restore_refuses_a_taken_index() {
    let _g = pty_lock();
    let Some(mut z) = Zdtm::start("zdtm-pty-taken", "zdtm_pty", &[]) else {
        return;
    };
    z.dump(&[]);
    // Take every free index up to the dumped ones.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(open_pty());
    }
    let (ok, log) = z.criu_in(z.images(), &["restore", "-d"]);
    drop(held);
    assert!(!ok, "restore with the index taken succeeded: {log}");
    assert!(log.contains("is in use"), "{log}");
}

/// A test program started by hand with its stdout on `slave`.
struct Spawned {
    child: std::process::Child,
    dir: TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // `Child::kill` sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_on(test: &str, program: &str, slave: &str) -> Spawned {
    let dir = TempDir::new(test);
    std::fs::create_dir_all(dir.join("work")).unwrap();
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let tty = std::fs::OpenOptions::new()
        .write(true)
        .open(slave)
        .expect("open slave");
    let child = Command::new(program_path(program))
        .arg(dir.join("work"))
        .stdin(Stdio::null())
        .stdout(tty)
        .stderr(std::fs::File::create(dir.join("err")).unwrap())
        .spawn()
        .expect("spawn");
    let s = Spawned { child, dir };
    wait_for_file(&s.dir.join("work/ready"), TIMEOUT).expect("program not ready");
    s
}

#[test]
fn pts_of_a_master_outside_the_dump_is_refused_without_shell_job() {
    if let Some(why) = common::cannot_checkpoint() {
        skip("zdtm-pty-outside", why);
        return;
    }
    common::become_subreaper();
    let _g = pty_lock();
    let (_master, slave) = open_pty();
    let s = spawn_on("zdtm-pty-outside", "zdtm_counter", &slave);
    let pid = s.child.id().to_string();
    let (ok, log) = common::run_criu(&s.dir.join("images"), &["dump", "-t", &pid], &[]);
    assert!(!ok, "dump succeeded: {log}");
    assert!(
        log.contains("fd 1 of task") && log.contains("--shell-job"),
        "{log}"
    );
    // The task was left alone.
    std::fs::write(s.dir.join("work/go"), "").unwrap();
    let verdict = wait_for_file(&s.dir.join("work/result"), TIMEOUT).unwrap_or_default();
    assert_eq!(verdict.trim(), "PASS");
}

/// A tiny shell (`zdtm_tty_job shell`) in its own session on `slave`,
/// running `cmd`; the shell (killed on drop), and where it writes the
/// command's exit code.
fn shell_on(dir: &Path, name: &str, slave: &str, cmd: &[&str]) -> (Shell, std::path::PathBuf) {
    let status = dir.join(format!("{name}.status"));
    let child = Command::new(program_path("zdtm_tty_job"))
        .arg("shell")
        .arg(slave)
        .arg(&status)
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
        .spawn()
        .expect("spawn shell");
    (Shell(child), status)
}

struct Shell(std::process::Child);

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads what the terminal's master has, for up to `wait`.
fn read_master(m: &OwnedFd, wait: Duration) -> String {
    let mut text = Vec::new();
    let end = std::time::Instant::now() + wait;
    while std::time::Instant::now() < end {
        let n = sys::get_int(m, sys::FIONREAD).unwrap_or(0);
        if n > 0 {
            let mut buf = vec![0u8; n as usize];
            if let Ok(k) = rustix::io::read(m, &mut buf) {
                text.extend_from_slice(&buf[..k]);
            }
            let t = String::from_utf8_lossy(&text);
            if t.contains("through /dev/tty") || t.contains("through the new pty") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn shell_job_gets_the_terminal_of_the_restoring_shell() {
    const TEST: &str = "zdtm-tty-shell-job";
    if let Some(why) = common::cannot_checkpoint() {
        skip(TEST, why);
        return;
    }
    common::become_subreaper();
    let _g = pty_lock();
    let dir = TempDir::new(TEST);
    let work = dir.join("work");
    let images = dir.join("images");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&images).unwrap();

    // Shell 1 runs the job on terminal A.
    let (master_a, slave_a) = open_pty();
    let job = program_path("zdtm_tty_job");
    let (_shell1, _) = shell_on(
        dir.path(),
        "shell1",
        &slave_a,
        &[job.to_str().unwrap(), work.to_str().unwrap()],
    );
    let ready = wait_for_file(&work.join("ready"), TIMEOUT).expect("job not ready");
    let pid: i32 = ready.trim().parse().unwrap();
    let _kj = KillOnDrop(pid);

    // Without --shell-job the dump is refused (the session is the shell's).
    let (ok, log) = common::run_criu(&images, &["dump", "-t", &pid.to_string()], &[]);
    assert!(!ok, "dump of a shell job without --shell-job: {log}");
    let (ok, log) = common::run_criu(
        &images,
        &["dump", "-t", &pid.to_string(), "--shell-job"],
        &[],
    );
    assert!(ok, "dump failed: {log}");
    assert!(
        common::wait_until(TIMEOUT, || common::proc_state(pid).is_none()),
        "the dumped job is still there"
    );
    drop(master_a);

    // Shell 2, on terminal B, runs the restore in the foreground.
    let (master_b, slave_b) = open_pty();
    let criu = env!("CARGO_BIN_EXE_criu");
    let (_shell2, status) = shell_on(
        dir.path(),
        "shell2",
        &slave_b,
        &[
            criu,
            "restore",
            "-d",
            "--shell-job",
            "-D",
            images.to_str().unwrap(),
            "-v4",
            "-o",
            "restore.log",
            "--pidfile",
            "restored.pid",
        ],
    );
    let code = wait_for_file(&status, TIMEOUT).unwrap_or_default();
    let log = std::fs::read_to_string(images.join("restore.log")).unwrap_or_default();
    assert_eq!(code.trim(), "0", "restore failed: {log}");
    let restored = std::fs::read_to_string(images.join("restored.pid")).unwrap();
    assert_eq!(restored.trim(), pid.to_string());

    std::fs::write(work.join("go"), "").unwrap();
    let verdict =
        wait_for_file(&work.join("result"), TIMEOUT).unwrap_or_else(|| "no result".into());
    let said = read_master(&master_b, Duration::from_secs(5));
    assert_eq!(verdict.trim(), "PASS", "{log}");
    assert!(
        said.contains("hello from the job"),
        "terminal B got {said:?}"
    );
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_pid(self.0);
    }
}

/// RPC `orphan_pts_master`: a job whose stdout was a pts of a master
/// outside the dump gets a new pty with the same index, and the client
/// the master of it (notify `orphan-pts-master` with the fd), through
/// which it reads what the job writes.
#[test]
fn orphan_pts_master_goes_to_the_rpc_client() {
    use criu_core::images::pb::rpc::{CriuOpts, CriuReq, CriuReqType};
    const TEST: &str = "zdtm-pty-orphan";
    if let Some(why) = common::cannot_checkpoint() {
        skip(TEST, why);
        return;
    }
    common::become_subreaper();
    let _g = pty_lock();
    let (master, slave) = open_pty();
    let mut s = spawn_on(TEST, "zdtm_counter", &slave);
    let pid = s.child.id() as i32;
    let images = s.dir.join("images");
    let (ok, log) = common::run_criu(
        &images,
        &["dump", "-t", &pid.to_string(), "--shell-job"],
        &[],
    );
    assert!(ok, "dump failed: {log}");
    let _ = s.child.wait();
    // Its pty goes away with our master: the index is free again.
    drop(master);

    let dir = std::fs::File::open(&images).unwrap();
    let mut c = service_common::Client::swrk();
    c.send(&CriuReq {
        r#type: CriuReqType::Restore as i32,
        opts: Some(CriuOpts {
            images_dir_fd: std::os::fd::AsRawFd::as_raw_fd(&dir),
            orphan_pts_master: Some(true),
            notify_scripts: Some(true),
            log_level: Some(4),
            log_file: Some("restore.log".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut got_master = None;
    let resp = loop {
        let (resp, fd) = c.recv_with_fd().expect("connection closed");
        if resp.r#type != CriuReqType::Notify as i32 {
            break resp;
        }
        let script = resp.notify.as_ref().and_then(|n| n.script.clone());
        if script.as_deref() == Some("orphan-pts-master") {
            got_master = Some(fd.expect("orphan-pts-master without an fd"));
        }
        c.send(&CriuReq {
            r#type: CriuReqType::Notify as i32,
            notify_success: Some(true),
            ..Default::default()
        });
    };
    let log = std::fs::read_to_string(images.join("restore.log")).unwrap_or_default();
    assert!(resp.success, "{resp:?}\n{log}");
    let restored = resp.restore.unwrap().pid;
    let _k = KillOnDrop(restored);
    let m = got_master.expect("no orphan-pts-master notify");
    let n = sys::get_int(&m, sys::TIOCGPTN).unwrap();
    assert_eq!(format!("/dev/pts/{n}"), slave, "the new pty's index");
    let link = std::fs::read_link(format!("/proc/{restored}/fd/1")).unwrap();
    assert_eq!(link.to_str(), Some(slave.as_str()));
    // The job's stdout is the new pty: what is written there reaches us.
    let w = rustix::fs::open(
        slave.as_str(),
        OFlags::WRONLY | OFlags::NOCTTY,
        Mode::empty(),
    )
    .unwrap();
    rustix::io::write(&w, b"hello through the new pty\n").unwrap();
    let said = read_master(&m, Duration::from_secs(5));
    assert!(said.contains("hello through the new pty"), "{said:?}");
}
