//! `--inherit-fd fd[N]:KEY` (and RPC `inherit_fd`, swrk only): a file of
//! the images that CRIU's key names (here `pipe:[INODE]`, a shell loop's
//! stdout going to a pipe outside the dumped tree) is restored as criu's
//! fd N instead: the restored loop writes into the new reader's pipe.

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use criu_core::images::pb::rpc::{CriuOpts, CriuReq, CriuReqType, InheritFd};
use service_common::Client;

/// Wait (up to 10 s) for `want` in what comes out of `r`.
fn reads(r: &OwnedFd, want: &str) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let mut fds = [PollFd::new(r, PollFlags::IN)];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        if poll(&mut fds, Some(&timeout)).unwrap_or(0) == 0 {
            continue;
        }
        let mut buf = [0u8; 256];
        match rustix::io::read(r, &mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&got).contains(want) {
            return true;
        }
    }
    false
}

/// A shell loop writing into a pipe whose read end we hold, dumped (and
/// so killed); the pipe's inherit-fd key.
fn dumped_loop(test: &str) -> Option<(common::TempDir, i32, String)> {
    if let Some(why) = common::cannot_checkpoint() {
        common::skip(test, why);
        return None;
    }
    common::become_subreaper();
    let dir = common::TempDir::new(test);
    let (r, w) = rustix::pipe::pipe().unwrap();
    let key = format!("pipe:[{}]", rustix::fs::fstat(&r).unwrap().st_ino);
    let mut child = service_common::spawn_locked(|| {
        Command::new("sh")
            // No child process: `echo` is built in, and blocks once the
            // pipe is full.
            .args(["-c", "while :; do echo tick; done"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(w))
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    assert!(reads(&r, "tick"), "the loop never wrote");
    let pid = child.id() as i32;
    let (ok, log) = common::run_criu(
        dir.path(),
        &["dump", "-t", &pid.to_string(), "--shell-job"],
        &[],
    );
    assert!(ok, "{log}");
    let _ = child.wait();
    Some((dir, pid, key))
}

fn finish(pid: i32) {
    service_common::kill_and_reap(pid);
}

#[test]
fn inherit_fd_gives_a_pipe_to_the_outside_a_new_reader() {
    let Some((dir, pid, key)) = dumped_loop("inherit_fd_cli") else {
        return;
    };
    let (r, w) = rustix::pipe::pipe().unwrap();
    let images = dir.path();
    let out = Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(["restore", "-d", "--shell-job", "-v4", "-o", "restore.log"])
        .arg("-D")
        .arg(images)
        .arg("--inherit-fd")
        .arg(format!("fd[0]:{key}"))
        .stdin(Stdio::from(w))
        .status()
        .unwrap();
    let log = std::fs::read_to_string(images.join("restore.log")).unwrap_or_default();
    assert!(out.success(), "{log}");
    assert!(log.contains("(--inherit-fd)"), "{log}");
    assert!(
        reads(&r, "tick"),
        "the restored loop does not write to the new pipe"
    );
    finish(pid);
}

#[test]
fn rpc_inherit_fd_gives_a_pipe_to_the_outside_a_new_reader() {
    let Some((dir, pid, key)) = dumped_loop("inherit_fd_rpc") else {
        return;
    };
    let (r, w) = rustix::pipe::pipe().unwrap();
    let images = std::fs::File::open(dir.path()).unwrap();
    let mut c = Client::swrk_with_stdin(Path::new(env!("CARGO_BIN_EXE_criu")), Stdio::from(w));
    let resp = c.call(&CriuReq {
        r#type: CriuReqType::Restore as i32,
        opts: Some(CriuOpts {
            images_dir_fd: images.as_fd().as_raw_fd(),
            shell_job: Some(true),
            inherit_fd: vec![InheritFd { key, fd: 0 }],
            log_level: Some(4),
            log_file: Some("restore.log".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let log = std::fs::read_to_string(dir.path().join("restore.log")).unwrap_or_default();
    assert!(resp.success, "{resp:?}\n{log}");
    assert!(
        reads(&r, "tick"),
        "the restored loop does not write to the new pipe"
    );
    finish(pid);
}
