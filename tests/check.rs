//! `criu check`: the verdicts and messages on this machine, and the library
//! probes behind them.
//!
//! Under qemu-user (foreign-arch test runs) there is no ptrace, so the
//! required checks cannot pass: the tests that need them detect that and
//! skip with a message instead of failing.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::TempDir;
use criu_core::check::KernelFeatures;
use rustix::process::{Signal, WaitOptions};

/// Whether the criu binary runs here at all: a foreign-arch build under
/// qemu-user cannot be executed without binfmt_misc (the exec fails, or a
/// shell fallback reports "cannot execute binary file").
fn runnable() -> bool {
    static RUNNABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *RUNNABLE.get_or_init(|| {
        Command::new(env!("CARGO_BIN_EXE_criu"))
            .arg("--version")
            .output()
            .map(|o| o.status.success() && o.stdout.starts_with(b"Version: "))
            .unwrap_or(false)
    })
}

/// Runs `criu ARGS` in `cwd`; `None` (the test skips) when the binary
/// cannot run here.
fn criu_in(cwd: &Path, args: &[&str]) -> Option<Output> {
    if !runnable() {
        // libtest names each test's thread after the test.
        let current = std::thread::current();
        common::skip(
            current.name().unwrap_or("criu_in"),
            "the criu binary cannot be executed here (qemu-user without binfmt_misc?)",
        );
        return None;
    }
    Some(
        Command::new(env!("CARGO_BIN_EXE_criu"))
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("run criu"),
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether this process can ptrace a child of its own: false under
/// qemu-user, in sandboxes that forbid ptrace, or without root.
fn can_trace(test: &str) -> bool {
    if !rustix::process::geteuid().is_root() {
        common::skip(test, "criu check needs root");
        return false;
    }
    let pid = match criu_core::sys::clone3::spawn_parked_child() {
        Ok(pid) => pid,
        Err(e) => {
            common::skip(
                test,
                &format!("cannot create a child with clone3 ({e}): qemu-user?"),
            );
            return false;
        }
    };
    let seized = criu_core::sys::ptrace::seize(pid, 0);
    let _ = rustix::process::kill_process(pid, Signal::KILL);
    let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
    if let Err(e) = seized {
        common::skip(
            test,
            &format!("ptrace does not work here ({e}): qemu-user?"),
        );
        return false;
    }
    true
}

#[test]
fn check_looks_good() {
    if !can_trace("check_looks_good") {
        return;
    }
    let dir = TempDir::new("check-good");
    let Some(o) = criu_in(dir.path(), &["check"]) else {
        return;
    };
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(stdout(&o), "Looks good.\n");
}

#[test]
fn feature_pagemap_scan() {
    if !can_trace("feature_pagemap_scan") {
        return;
    }
    let dir = TempDir::new("check-pms");
    let Some(o) = criu_in(dir.path(), &["check", "--feature", "pagemap_scan"]) else {
        return;
    };
    if KernelFeatures::probe().pagemap_scan {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), "pagemap_scan is supported\n");
    } else {
        // Kernels before 6.7.
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("PAGEMAP_SCAN isn't supported"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn feature_mem_dirty_track() {
    if !can_trace("feature_mem_dirty_track") {
        return;
    }
    let dir = TempDir::new("check-sd");
    let Some(o) = criu_in(dir.path(), &["check", "--feature", "mem_dirty_track"]) else {
        return;
    };
    if KernelFeatures::probe().mem_track() {
        // Async write-protect userfaultfd + PAGEMAP_SCAN (this project's
        // machines: no soft-dirty needed).
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), "mem_dirty_track is supported\n");
    } else {
        // Neither: CRIU's warning, non-zero exit, nothing on stdout.
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert!(err.starts_with("Warn  ("), "{err}");
        assert!(
            err.contains("): Dirty tracking is OFF. Memory snapshot will not work.\n"),
            "{err}"
        );
        assert_eq!(stdout(&o), "");
    }
}

#[test]
fn unknown_feature_lists_valid_names() {
    let dir = TempDir::new("check-unknown");
    let Some(o) = criu_in(dir.path(), &["check", "--feature", "no_such_thing"]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("Unknown feature no_such_thing"), "{err}");
    assert!(
        err.contains("mem_dirty_track") && err.contains("clone3_set_tid"),
        "{err}"
    );
}

#[test]
fn feature_list() {
    let dir = TempDir::new("check-list");
    let Some(o) = criu_in(dir.path(), &["check", "--feature", "list"]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(0));
    let names: Vec<String> = stdout(&o).split_whitespace().map(str::to_owned).collect();
    assert_eq!(names.len(), 46);
    assert_eq!(names[0], "mnt_id");
    assert!(names.iter().any(|n| n == "pagemap_scan_guard_pages"));
    assert_eq!(
        names.last().map(String::as_str),
        Some("binfmt_misc_sandboxing")
    );
}

#[test]
fn extra_and_all_report_but_do_not_abort() {
    if !can_trace("extra_and_all") {
        return;
    }
    let dir = TempDir::new("check-extra");
    for flag in ["--extra", "--all"] {
        let Some(o) = criu_in(dir.path(), &["check", flag]) else {
            return;
        };
        let out = stdout(&o);
        // Soft-dirty is missing here, so the verdict is the hedged one.
        assert!(out.starts_with("Looks good"), "{flag}: {out}");
        let expected = if out == "Looks good.\n" { 0 } else { 1 };
        assert_eq!(o.status.code(), Some(expected), "{flag}");
    }
}

#[test]
fn check_log_in_images_dir() {
    if !can_trace("check_log_in_images_dir") {
        return;
    }
    let dir = TempDir::new("check-log");
    let Some(o) = criu_in(dir.path(), &["check", "-D", ".", "-o", "check.log", "-v4"]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = dir.join("check.log");
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&log).unwrap();
    for needle in [
        "Checking map_files",
        "Checking ptrace_seize",
        "Eventfd fdinfo works OK",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
    assert_eq!(stdout(&o), "Looks good.\n");
}

#[test]
fn library_probes_on_this_kernel() {
    if !can_trace("library_probes") {
        return;
    }
    let k = KernelFeatures::probe();
    // Present on every kernel this project supports (5.x and later).
    assert!(k.kcmp, "{k:?}");
    assert!(k.memfd, "{k:?}");
    assert!(k.clone3_set_tid, "{k:?}");
    assert!(k.pidfd_open && k.pidfd_getfd, "{k:?}");
    assert!(k.openat2, "{k:?}");
    assert!(k.nspid, "{k:?}");
    assert!(k.kcmp_epoll_tfd, "{k:?}");
    assert_ne!(k.pagemap, criu_core::check::PagemapMode::Disabled, "{k:?}");
    if k.pagemap_scan_guard_pages {
        assert!(k.pagemap_scan);
    }
    if k.uffd_noncooperative() {
        assert!(k.uffd);
    }
}

/// The checked-in verdict table (tests/check-verdicts.txt): feature name
/// and whether it is supported on the machines of its kernel class.
fn verdict_table() -> Vec<(String, bool)> {
    let text = include_str!("check-verdicts.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next().unwrap().to_string();
            let verdict = match f.next() {
                Some("yes") => true,
                Some("no") => false,
                // A verdict that follows the machine's packages, not its
                // kernel: yes when every listed command is on PATH.
                Some(v) if v.starts_with("if-in-path:") => {
                    v["if-in-path:".len()..].split(',').all(in_path)
                }
                other => panic!("check-verdicts.txt: bad verdict {other:?} in {l}"),
            };
            (name, verdict)
        })
        .collect()
}

/// Whether an executable `name` is in one of PATH's directories.
fn in_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Whether this machine is of the table's kernel class (Linux 6.18 on
/// x86_64): the verdicts depend on the kernel's configuration.
fn table_kernel_class() -> Result<(), String> {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy().into_owned();
    if cfg!(target_arch = "x86_64") && release.starts_with("6.18.") {
        Ok(())
    } else {
        Err(format!(
            "the verdict table is for Linux 6.18 on x86_64 (tests/check-verdicts.txt), this is {release} on {}",
            std::env::consts::ARCH
        ))
    }
}

#[test]
fn every_feature_gives_the_verdict_of_the_table() {
    const TEST: &str = "every_feature_gives_the_verdict_of_the_table";
    if !can_trace(TEST) {
        return;
    }
    let table = verdict_table();
    let names = criu_core::check::feature_names();
    let listed: Vec<&str> = table.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        listed, names,
        "the table must list every feature, in CRIU's order"
    );
    if let Err(why) = table_kernel_class() {
        return common::skip(TEST, &why);
    }
    let dir = TempDir::new("check-table");
    let before = criu_tmp_dirs();
    let mut wrong = Vec::new();
    for (name, supported) in &table {
        let Some(o) = criu_in(dir.path(), &["check", "--feature", name]) else {
            return;
        };
        let said = o.status.code() == Some(0);
        let out = stdout(&o);
        if said != *supported {
            wrong.push(format!(
                "{name}: table says {}, criu exited {:?}: {}{}",
                if *supported { "yes" } else { "no" },
                o.status.code(),
                out,
                stderr(&o)
            ));
        } else if said {
            assert_eq!(out, format!("{name} is supported\n"), "{name}");
        } else {
            assert_eq!(
                out, "",
                "{name}: a missing feature prints nothing on stdout"
            );
            assert_eq!(o.status.code(), Some(1), "{name}");
        }
    }
    assert!(
        wrong.is_empty(),
        "verdicts differ from tests/check-verdicts.txt:\n{}",
        wrong.join("\n")
    );
    // No probe leaves a mount point behind (they make /tmp/.criu.*).
    let left: Vec<_> = criu_tmp_dirs()
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The probes' scratch directories in /tmp.
fn criu_tmp_dirs() -> Vec<String> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".criu."))
        .collect()
}

#[test]
fn plain_check_runs_criu_category_one() {
    // The whole required set runs (a debug log names each check), and
    // passes here.
    if !can_trace("plain_check_runs_criu_category_one") {
        return;
    }
    let dir = TempDir::new("check-cat1");
    let Some(o) = criu_in(dir.path(), &["check", "-v4", "-o", "check.log", "-D", "."]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = std::fs::read_to_string(dir.join("check.log")).unwrap();
    for name in [
        "map_files",
        "sock_diag",
        "ns_last_pid",
        "sock_peek_off",
        "kcmp",
        "prctl",
        "fcntl",
        "proc_stat",
        "tcp",
        "fdinfo_ext",
        "unaligned_vmsplice",
        "tty",
        "so_gets",
        "ipc",
        "sigqueueinfo",
        "ptrace_peeksiginfo",
        "special_mapping_mremap",
    ] {
        assert!(
            log.contains(&format!("Checking {name}\n")),
            "{name} not run: {log}"
        );
    }
}
