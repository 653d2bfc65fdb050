//! `criu service` as a supervisor sees it: `--status-fd` gets one zero byte
//! and is closed, `--pidfile` holds the daemon's pid and is exclusive (a
//! second daemon fails and the first keeps serving), bad requests do not
//! take the daemon down, and `-d` detaches.

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TempDir, become_subreaper, wait_until};
use criu_core::images::pb::rpc::{CriuReq, CriuReqType};
use service_common::{Client, kill_and_reap, spawn_with_fd};

const TIMEOUT: Duration = Duration::from_secs(20);

fn version_ok(sock: &Path) -> bool {
    let Ok(mut c) = Client::connect(sock) else {
        return false;
    };
    c.call(&CriuReq {
        r#type: CriuReqType::Version as i32,
        ..Default::default()
    })
    .success
}

/// A status pipe: (read end, write end for the daemon).
fn status_pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe")
}

/// Reads the status pipe to its end: everything written before the last
/// writer closed it.
fn read_status(rd: OwnedFd) -> Vec<u8> {
    let mut fds = [rustix::event::PollFd::new(
        &rd,
        rustix::event::PollFlags::IN,
    )];
    let mut got = Vec::new();
    loop {
        let limit = rustix::time::Timespec {
            tv_sec: TIMEOUT.as_secs() as i64,
            tv_nsec: 0,
        };
        let n = rustix::event::poll(&mut fds, Some(&limit)).expect("poll");
        assert!(n > 0, "status fd neither written nor closed: {got:?}");
        let mut buf = [0u8; 16];
        let len = rustix::io::read(&rd, &mut buf).expect("read status");
        if len == 0 {
            return got;
        }
        got.extend_from_slice(&buf[..len]);
    }
}

fn criu_service(dir: &TempDir, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_criu"));
    cmd.arg("service")
        .arg("--address")
        .arg(dir.join("svc.sock"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

#[test]
fn status_fd_pidfile_and_a_second_instance() {
    let dir = TempDir::new("svc-daemon");
    let sock = dir.join("svc.sock");
    let pidfile = dir.join("svc.pid");
    let (rd, wr) = status_pipe();
    let wr_num = std::os::fd::AsRawFd::as_raw_fd(&wr).to_string();
    let mut cmd = criu_service(
        &dir,
        &[
            "--status-fd",
            &wr_num,
            "--pidfile",
            pidfile.to_str().unwrap(),
        ],
    );
    let mut daemon = spawn_with_fd(&mut cmd, wr);
    let pid = daemon.id() as i32;

    assert_eq!(read_status(rd), [0u8], "exactly one zero byte, then closed");
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    assert!(version_ok(&sock));

    // A second daemon on the same pidfile (another address) fails clearly
    // and touches neither the pidfile nor the first daemon.
    let out = Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(["service", "--address"])
        .arg(dir.join("other.sock"))
        .arg("--pidfile")
        .arg(&pidfile)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert!(!dir.join("other.sock").exists());
    // A second daemon on the same address fails too, without stealing it.
    let out = criu_service(&dir, &[]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    assert!(daemon.try_wait().unwrap().is_none(), "first daemon died");
    assert!(version_ok(&sock), "first daemon no longer serves");

    // Bad requests end their own connection only.
    let mut c = Client::connect(&sock).unwrap();
    c.send_raw(b"\xff\xff\xffnot protobuf");
    let resp = c.recv().expect("failure response");
    assert!(!resp.success);
    assert!(c.recv().is_none());
    let mut c = Client::connect(&sock).unwrap();
    c.send(&CriuReq {
        r#type: 77,
        ..Default::default()
    });
    assert!(!c.recv().unwrap().success);
    // swrk-only options are refused on the service socket.
    let resp = Client::connect(&sock).unwrap().call(&CriuReq {
        r#type: CriuReqType::Restore as i32,
        opts: Some(criu_core::images::pb::rpc::CriuOpts {
            images_dir_fd: -1,
            images_dir: Some(dir.path().display().to_string()),
            rst_sibling: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert!(!resp.success);
    assert!(
        resp.cr_errmsg
            .unwrap()
            .contains("rst_sibling is not allowed in standalone service")
    );
    assert!(version_ok(&sock));
    assert!(daemon.try_wait().unwrap().is_none());
    // Finished workers are reaped: no children left once they are done.
    let children = format!("/proc/{pid}/task/{pid}/children");
    assert!(
        wait_until(TIMEOUT, || std::fs::read_to_string(&children)
            .map(|c| c.trim().is_empty())
            .unwrap_or(false)),
        "workers not reaped: {:?}",
        std::fs::read_to_string(&children)
    );

    let _ = daemon.kill();
    let _ = daemon.wait();
}

#[test]
fn pidfile_is_never_followed_through_a_symlink() {
    let dir = TempDir::new("svc-symlink");
    let target = dir.join("victim-file");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.join("svc.pid");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = criu_service(&dir, &["--pidfile", link.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(!dir.join("svc.sock").exists());
}

#[test]
fn detached_daemon() {
    become_subreaper();
    let dir = TempDir::new("svc-detached");
    let sock = dir.join("svc.sock");
    let pidfile = dir.join("svc.pid");
    let (rd, wr) = status_pipe();
    let wr_num = std::os::fd::AsRawFd::as_raw_fd(&wr).to_string();
    let mut cmd = criu_service(
        &dir,
        &[
            "-d",
            "--status-fd",
            &wr_num,
            "--pidfile",
            pidfile.to_str().unwrap(),
        ],
    );
    let mut starter = spawn_with_fd(&mut cmd, wr);
    assert_eq!(read_status(rd), [0u8]);
    let st = starter.wait().unwrap();
    assert!(st.success(), "{st:?}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(pid, starter.id() as i32);
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(wait_until(TIMEOUT, || version_ok(&sock)));
    // Its own session.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let sid: i32 = after.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(sid, pid);
    kill_and_reap(pid);
}
