//! Interop: the independent `rust-criu` client (crates.io), unmodified,
//! pointed at our binary, gets our version and dumps and restores a
//! ZDTM-style program through `criu swrk`, with notify callbacks.

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use common::{Program, TempDir, become_subreaper, skip, wait_for_file};
use rust_criu::Criu;
use rust_criu::rust_criu_protobuf::rpc::Criu_notify;
use service_common::{kill_and_reap, spawn_locked};

const TIMEOUT: Duration = Duration::from_secs(30);

/// rust-criu's socketpair is inheritable: one test at a time here.
static SERIAL: Mutex<()> = Mutex::new(());
/// Notify scripts seen by the callback.
static SCRIPTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(script: &str, _: &Criu_notify, _: Option<RawFd>) -> i32 {
    SCRIPTS.lock().unwrap().push(script.to_owned());
    0
}

fn criu() -> Criu {
    Criu::new_with_criu_path(env!("CARGO_BIN_EXE_criu").to_owned()).expect("rust-criu")
}

#[test]
fn version() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 4.2 with a git id: runc's rule (copied by rust-criu) reads a git id
    // as "development build after 4.2" and adds one to the minor number.
    assert_eq!(criu().get_criu_version().expect("VERSION"), 40300);
}

#[test]
fn dump_and_restore() {
    // Dump and restore work on every arch now: only a missing ptrace
    // (qemu-user) or privilege stops this test.
    if let Some(why) = common::cannot_checkpoint() {
        return skip("rust_criu dump_and_restore", why);
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    become_subreaper();
    let dir = TempDir::new("rust-criu");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut program =
        spawn_locked(|| Program::spawn("dump_victim", &[work.to_str().unwrap()], dir.path()));
    let ready = wait_for_file(&work.join("ready"), TIMEOUT).expect("victim not ready");
    let pid: i32 = ready.split_whitespace().next().unwrap().parse().unwrap();
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let images_fd = std::fs::File::open(&images).unwrap();

    let mut c = criu();
    c.set_pid(pid);
    c.set_images_dir_fd(images_fd.as_raw_fd());
    c.set_log_level(4);
    c.set_log_file("dump.log".to_owned());
    c.set_notify_scripts(true);
    c.set_notify_cb(record);
    let dumped = c.dump();
    let log = std::fs::read_to_string(images.join("dump.log")).unwrap_or_default();
    dumped.unwrap_or_else(|e| panic!("dump: {e}\n{log}"));
    program
        .wait_exit(TIMEOUT)
        .expect("dumped program still running");

    let mut c = criu();
    c.set_images_dir_fd(images_fd.as_raw_fd());
    c.set_log_level(4);
    c.set_log_file("restore.log".to_owned());
    c.set_notify_scripts(true);
    c.set_notify_cb(record);
    let restored = c.restore();
    let log = std::fs::read_to_string(images.join("restore.log")).unwrap_or_default();
    restored.unwrap_or_else(|e| panic!("restore: {e}\n{log}"));
    assert_eq!(
        *SCRIPTS.lock().unwrap(),
        [
            "pre-dump",
            "post-dump",
            "pre-restore",
            "post-restore",
            "pre-resume",
            "post-resume"
        ]
    );

    std::fs::write(work.join("go"), "").unwrap();
    let verdict =
        wait_for_file(&work.join("result"), TIMEOUT).unwrap_or_else(|| "no result".into());
    // We are the subreaper: the restored task is ours once swrk is gone.
    kill_and_reap(pid);
    assert_eq!(verdict.trim(), "PASS");
}
