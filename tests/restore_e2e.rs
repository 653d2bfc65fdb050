//! `criu dump -t PID` then `criu restore -d`: a ZDTM-style program is dumped
//! (and killed by the dump), restored with the same PID, told to go on, and
//! must find its state intact (it checks itself and writes PASS/FAIL).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Program, TempDir, become_subreaper, skip, wait_for_file};
use rustix::process::{Pid, Signal, WaitOptions};

const TIMEOUT: Duration = Duration::from_secs(20);

fn criu(args: &[&str], images: &Path) -> (bool, String) {
    criu_with_fault(args, images, None)
}

fn criu_with_fault(args: &[&str], images: &Path, fault: Option<&str>) -> (bool, String) {
    let env: Vec<(&str, &std::ffi::OsStr)> = fault
        .map(|f| (criu_core::restore::FAULT_ENV, std::ffi::OsStr::new(f)))
        .into_iter()
        .collect();
    common::run_criu(images, args, &env)
}

/// Dump the program running in `work` (PID in the first word of
/// `work/ready`), restore it detached, let it check itself: its verdict.
fn dump_restore_verdict(program: Program, work: &Path, images: &Path) -> String {
    dump_restore_verdict_stopped(program, work, images, false)
}

/// [`dump_restore_verdict`]; with `stopped`, the program is dumped in a
/// SIGSTOP stop and must come back stopped.
fn dump_restore_verdict_stopped(
    mut program: Program,
    work: &Path,
    images: &Path,
    stopped: bool,
) -> String {
    let ready = wait_for_file(&work.join("ready"), TIMEOUT).expect("program not ready");
    let pid: i32 = ready.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(pid, program.pid());
    if stopped {
        program.signal(Signal::STOP);
        assert!(common::wait_until(TIMEOUT, || common::proc_state(pid) == Some('T')));
    }
    std::fs::create_dir_all(images).unwrap();
    let (ok, log) = criu(&["dump", "-t", &pid.to_string()], images);
    assert!(ok, "dump: {log}");
    // The dump killed it; reap it so the PID is free again.
    program
        .wait_exit(TIMEOUT)
        .expect("dumped program still running");

    let (ok, log) = criu(&["restore", "-d", "--pidfile", "restored.pid"], images);
    assert!(ok, "restore: {log}");
    let restored = std::fs::read_to_string(images.join("restored.pid")).unwrap();
    assert_eq!(restored.trim(), pid.to_string(), "{log}");
    if stopped {
        assert!(
            common::wait_until(TIMEOUT, || common::proc_state(pid) == Some('T')),
            "restored task is not stopped"
        );
        let _ = rustix::process::kill_process(Pid::from_raw(pid).unwrap(), Signal::CONT);
    }
    std::fs::write(work.join("go"), "").unwrap();
    let verdict =
        wait_for_file(&work.join("result"), TIMEOUT).unwrap_or_else(|| "no result".into());
    // We are the subreaper: the restored task is our child now.
    let verdict = verdict.trim().to_string();
    let p = Pid::from_raw(pid).unwrap();
    let _ = rustix::process::kill_process(p, Signal::KILL);
    let _ = rustix::process::waitpid(Some(p), WaitOptions::empty());
    verdict
}

#[test]
fn pattern_program_survives_dump_and_restore() {
    if let Some(why) = common::cannot_checkpoint() {
        return skip("pattern_program_survives_dump_and_restore", why);
    }
    become_subreaper();
    let dir = TempDir::new("restore-e2e-pattern");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let program = Program::spawn("restore_pattern", &[work.to_str().unwrap()], dir.path());
    let verdict = dump_restore_verdict(program, &work, &dir.join("images"));
    assert_eq!(verdict, "PASS");
}

#[test]
fn dump_victim_survives_dump_and_restore() {
    if let Some(why) = common::cannot_checkpoint() {
        return skip("dump_victim_survives_dump_and_restore", why);
    }
    become_subreaper();
    let dir = TempDir::new("restore-e2e-victim");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let program = Program::spawn("dump_victim", &[work.to_str().unwrap()], dir.path());
    let verdict = dump_restore_verdict(program, &work, &dir.join("images"));
    assert_eq!(verdict, "PASS");
}

#[test]
fn unprivileged_program_gets_its_credentials_back() {
    if let Some(why) = common::cannot_checkpoint() {
        return skip("unprivileged_program_gets_its_credentials_back", why);
    }
    become_subreaper();
    let dir = TempDir::new("restore-e2e-nobody");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    // The program writes its files as uid 65534.
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o777);
    std::fs::set_permissions(&work, mode).unwrap();
    let program = Program::spawn(
        "restore_pattern",
        &[work.to_str().unwrap(), "nobody"],
        dir.path(),
    );
    let verdict = dump_restore_verdict(program, &work, &dir.join("images"));
    assert_eq!(verdict, "PASS");
}

#[test]
fn shared_memory_survives_dump_and_restore() {
    if let Some(why) = common::cannot_checkpoint() {
        return skip("shared_memory_survives_dump_and_restore", why);
    }
    become_subreaper();
    let dir = TempDir::new("restore-e2e-shared");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let program = Program::spawn(
        "dump_victim",
        &[work.to_str().unwrap(), "shared"],
        dir.path(),
    );
    let images = dir.join("images");
    let verdict = dump_restore_verdict(program, &work, &images);
    assert_eq!(verdict, "PASS");
    // Our crit decodes the shmem pagemaps and the memfd inodes.
    let mut shmem = 0;
    for entry in std::fs::read_dir(&images).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("pagemap-shmem-") || name == "memfd.img") {
            continue;
        }
        shmem += 1;
        let out = Command::new(env!("CARGO_BIN_EXE_crit"))
            .args(["decode", "-i", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "crit decode {name}");
        let json = String::from_utf8_lossy(&out.stdout);
        assert!(
            json.contains("pages_id") || json.contains("\"pattern\""),
            "{json}"
        );
    }
    assert_eq!(shmem, 4, "three pagemap-shmem images and memfd.img");
}

#[test]
fn big_dump_victim_survives_dump_and_restore() {
    if let Some(why) = common::cannot_checkpoint() {
        return skip("big_dump_victim_survives_dump_and_restore", why);
    }
    become_subreaper();
    let dir = TempDir::new("restore-e2e-big");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let program = Program::spawn("dump_victim", &[work.to_str().unwrap(), "big"], dir.path());
    let verdict = dump_restore_verdict(program, &work, &dir.join("images"));
    assert_eq!(verdict, "PASS");
}

#[test]
fn stopped_program_comes_back_stopped() {
    if let Some(why) = common::cannot_checkpoint() {
        return skip("stopped_program_comes_back_stopped", why);
    }
    become_subreaper();
    let dir = TempDir::new("restore-e2e-stopped");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let program = Program::spawn("restore_pattern", &[work.to_str().unwrap()], dir.path());
    let verdict = dump_restore_verdict_stopped(program, &work, &dir.join("images"), true);
    assert_eq!(verdict, "PASS");
}

#[test]
fn a_failure_at_any_restore_stage_leaves_no_task() {
    if let Some(why) = common::cannot_checkpoint() {
        return skip("a_failure_at_any_restore_stage_leaves_no_task", why);
    }
    become_subreaper();
    let dir = TempDir::new("restore-e2e-faults");
    let work = dir.join("work");
    let images = dir.join("images");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&images).unwrap();
    let mut program = Program::spawn("restore_pattern", &[work.to_str().unwrap()], dir.path());
    let ready = wait_for_file(&work.join("ready"), TIMEOUT).expect("program not ready");
    let pid: i32 = ready.trim().parse().unwrap();
    let (ok, log) = criu(&["dump", "-t", &pid.to_string()], &images);
    assert!(ok, "dump: {log}");
    program
        .wait_exit(TIMEOUT)
        .expect("dumped program still running");

    for stage in criu_core::restore::FAULT_STAGES {
        let (ok, log) = criu_with_fault(&["restore", "-d"], &images, Some(stage));
        assert!(!ok, "restore with a fault at {stage} succeeded: {log}");
        assert!(log.contains(stage), "{stage}: {log}");
        assert_eq!(
            common::proc_state(pid),
            None,
            "task left behind after a fault at {stage}"
        );
    }
    // The images are untouched: a clean restore still works.
    let (ok, log) = criu(&["restore", "-d"], &images);
    assert!(ok, "restore: {log}");
    std::fs::write(work.join("go"), "").unwrap();
    let verdict = wait_for_file(&work.join("result"), TIMEOUT).unwrap_or_default();
    let p = Pid::from_raw(pid).unwrap();
    let _ = rustix::process::kill_process(p, Signal::KILL);
    let _ = rustix::process::waitpid(Some(p), WaitOptions::empty());
    assert_eq!(verdict.trim(), "PASS");
}
