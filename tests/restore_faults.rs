//! Whatever fallible call of a restore fails (`CRIU_FAULT_SYSCALL=N`: the
//! Nth file the tool opens, the bootstrap mapping, each ptrace request
//! that takes the restorer out of the task), the restore fails and leaves
//! nothing behind: no process or thread with a dumped ID, and no file
//! changed in the images or the program's directory. Walks N from 1 until
//! a restore gets through, so every such call is covered; the restorer's
//! own stages are walked by the `CRIU_RESTORE_FAULT` tests.
#![cfg(target_arch = "x86_64")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use common::zdtm::Zdtm;

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
            assert!(
                !injected,
                "the restore ignored the failure of call {n}: {log}"
            );
            break;
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
