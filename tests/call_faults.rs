//! Whatever fallible call fails (`CRIU_FAULT_SYSCALL=N`), nothing is
//! harmed. A restore (the Nth file the tool opens, a bootstrap mapping,
//! each ptrace request that takes the restorer out of a task) fails and
//! leaves nothing behind: no process or thread with a dumped ID, and no
//! file changed in the images or the program's directory. A dump of a
//! whole tree (each ptrace request, syscall in a task, image write) fails
//! and every task runs on unchanged. Each test walks N from 1 until the
//! operation gets through, so every such call is covered; the restorer's
//! own stages are walked by the `CRIU_RESTORE_FAULT` tests, a single
//! task's dump in tests/dump.rs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use std::time::Duration;

use common::zdtm::Zdtm;
use common::{descendants, kill_all, reap};
use rustix::process::{Pid, WaitOptions};

/// Every file under `dir` with its contents (the log files restore
/// writes excepted).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") || !e.file_type().unwrap().is_file() {
            continue;
        }
        out.insert(name, std::fs::read(e.path()).unwrap());
    }
    out
}

#[test]
fn every_failing_call_of_a_restore_leaves_nothing() {
    let Some(mut z) = Zdtm::start("restore-call-faults", "zdtm_threads", &[]) else {
        return;
    };
    let pid = z.pid();
    let tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    z.dump(&[]);
    let images = snapshot(z.images());
    let work = snapshot(z.work());
    let mut n = 1u32;
    let mut retries = 0;
    loop {
        let ok = Command::new(env!("CARGO_BIN_EXE_criu"))
            .env("CRIU_FAULT_SYSCALL", n.to_string())
            .args(["restore", "-d", "--pidfile", "restored.pid", "-D"])
            .arg(z.images())
            .args(["-v4", "-o", "fault.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run criu")
            .success();
        let log = std::fs::read_to_string(z.images().join("fault.log")).unwrap_or_default();
        let injected = log.contains("CRIU_FAULT_SYSCALL");
        if ok {
            // Only stats-restore may fail without failing the restore
            // (the tasks already run; it is the last file written).
            assert!(
                !injected || stats_only(&log),
                "the restore ignored the failure of call {n}: {log}"
            );
            break;
        }
        if !injected
            && retries < PID_RETRIES
            && let Some(pid) = pid_taken_by_another(&log)
        {
            retries += 1;
            wait_for_pid_to_be_free(pid, n);
            continue;
        }
        assert!(injected, "call {n}: the restore failed by itself: {log}");
        assert!(log.contains("Error"), "call {n}: no error reported: {log}");
        for &t in &tids {
            assert_eq!(
                common::proc_state(t),
                None,
                "{t} left after call {n}: {log}"
            );
        }
        assert_eq!(snapshot(z.images()), images, "images changed by call {n}");
        assert_eq!(
            snapshot(z.work()),
            work,
            "program's files changed by call {n}"
        );
        n += 1;
        assert!(n < 2000, "the restore never got through");
    }
    eprintln!("{} fallible calls, each failed once", n - 1);
    assert!(n > 5, "only {} calls were counted", n - 1);
    z.restored_elsewhere();
    assert_eq!(z.go(), "PASS");
}

/// A PID the restore needed but found taken, when the tree's tasks were
/// all gone before it started: another process got it. The kernel hands
/// freed PIDs out again once its counter wraps at `pid_max` (32768 here
/// and in the VMs), which a loaded machine reaches within one of these
/// walks: thousands of `criu` runs, and other tests beside them. Nothing
/// of ours is at fault; the walk waits for that process to end (bounded)
/// and runs the same call again.
fn pid_taken_by_another(log: &str) -> Option<i32> {
    let end = log.find(" is in use; the restored task needs it")?;
    let start = log[..end].rfind("PID ")? + "PID ".len();
    log[start..end].parse().ok()
}

/// Waits (bounded) for the unrelated holder of `pid` to end; panics,
/// naming it, if it does not.
fn wait_for_pid_to_be_free(pid: i32, n: u32) {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    eprintln!(
        "call {n}: PID {pid} was taken by another process ({}) after the PID counter \
         wrapped; waiting for it to end, then trying call {n} again",
        comm.trim()
    );
    let free = common::wait_until(Duration::from_secs(60), || {
        common::proc_state(pid).is_none()
    });
    assert!(
        free,
        "call {n}: PID {pid} is held by another process ({}) for over 60 s",
        comm.trim()
    );
}

/// How often one call may be retried because another process took a PID.
const PID_RETRIES: u32 = 10;

/// Whether every injected failure in `log` was writing stats-restore.
fn stats_only(log: &str) -> bool {
    log.lines()
        .filter(|l| l.contains("CRIU_FAULT_SYSCALL"))
        .all(|l| l.contains("stats-restore"))
}

/// One `criu` run with `CRIU_FAULT_SYSCALL=n`: success and its log.
fn criu_failing_call(images: &Path, args: &[&str], n: u32) -> (bool, String) {
    let n = n.to_string();
    common::run_criu(
        images,
        args,
        &[("CRIU_FAULT_SYSCALL", std::ffi::OsStr::new(&n))],
    )
}

#[test]
fn every_failing_call_of_a_tree_dump_leaves_the_tree_running() {
    let Some(z) = Zdtm::start("tree-dump-call-faults", "zdtm_tree", &["tree"]) else {
        return;
    };
    let kids = descendants(z.pid());
    let all: Vec<i32> = std::iter::once(z.pid())
        .chain(kids.iter().copied())
        .collect();
    let fds_of = |p: i32| std::fs::read_dir(format!("/proc/{p}/fd")).unwrap().count();
    let fds: Vec<usize> = all.iter().map(|&p| fds_of(p)).collect();
    let pid = z.pid().to_string();
    let mut n = 1u32;
    loop {
        let images = z.new_dir("images");
        let (ok, log) = criu_failing_call(&images, &["dump", "--leave-running", "-t", &pid], n);
        let injected = log.contains("CRIU_FAULT_SYSCALL");
        for (&p, &f) in all.iter().zip(&fds) {
            let st = common::proc_state(p);
            // Running or sleeping; 'D' is a moment of uninterruptible
            // sleep (seen under TCG emulation), not a stop.
            assert!(
                matches!(st, Some('S' | 'R' | 'D')),
                "task {p} is {st:?} after call {n}: {log}"
            );
            let maps = std::fs::read_to_string(format!("/proc/{p}/maps")).unwrap();
            assert!(
                !maps.contains("CRIUMFD"),
                "parasite left in {p} after call {n}"
            );
            assert_eq!(fds_of(p), f, "fds of {p} after call {n}");
        }
        if ok {
            assert!(!injected, "the dump ignored the failure of call {n}: {log}");
            break;
        }
        assert!(injected, "call {n}: the dump failed by itself: {log}");
        n += 1;
        assert!(n < 5000, "the dump never got through");
    }
    eprintln!("{} fallible calls, each failed once", n - 1);
    assert!(n > 100, "only {} calls were counted", n - 1);
    let verdict = z.go();
    kill_all(&kids);
    assert_eq!(verdict, "PASS");
}

#[test]
fn every_failing_call_of_a_tree_restore_leaves_nothing() {
    let Some(mut z) = Zdtm::start("tree-restore-call-faults", "zdtm_tree", &["tree"]) else {
        return;
    };
    let kids = descendants(z.pid());
    z.dump(&[]);
    reap(&kids);
    let all: Vec<i32> = std::iter::once(z.pid())
        .chain(kids.iter().copied())
        .collect();
    let images = snapshot(z.images());
    let mut n = 1u32;
    let mut retries = 0;
    loop {
        let (ok, log) = criu_failing_call(
            z.images(),
            &["restore", "-d", "--pidfile", "restored.pid"],
            n,
        );
        let injected = log.contains("CRIU_FAULT_SYSCALL");
        if ok {
            // Only stats-restore may fail without failing the restore
            // (the tasks already run; it is the last file written).
            assert!(
                !injected || stats_only(&log),
                "the restore ignored the failure of call {n}: {log}"
            );
            break;
        }
        if !injected
            && retries < PID_RETRIES
            && let Some(pid) = pid_taken_by_another(&log)
        {
            retries += 1;
            wait_for_pid_to_be_free(pid, n);
            continue;
        }
        assert!(injected, "call {n}: the restore failed by itself: {log}");
        for &p in &all {
            // Killed children of the killed root come to us (the
            // subreaper) as zombies: reaped, they are gone.
            let gone = common::wait_until(Duration::from_secs(5), || {
                let _ = rustix::process::waitpid(Pid::from_raw(p), WaitOptions::NOHANG);
                common::proc_state(p).is_none()
            });
            assert!(gone, "{p} left after call {n}: {log}");
        }
        assert_eq!(snapshot(z.images()), images, "images changed by call {n}");
        n += 1;
        assert!(n < 5000, "the restore never got through");
    }
    eprintln!("{} fallible calls, each failed once", n - 1);
    z.restored_elsewhere();
    let verdict = z.go();
    kill_all(&kids);
    assert_eq!(verdict, "PASS");
}
