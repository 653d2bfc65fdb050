//! ZDTM-style dump/restore tests of a task's own state: counting, files,
//! rlimits, cwd and umask, rseq, arm64 pointer-authentication keys, and
//! repeated dumps with `--leave-running`.
//! Each program checks itself after restore (see tests/programs/zdtm/).

mod common;

use common::zdtm::{TIMEOUT, Zdtm};

fn progress(z: &Zdtm) -> u64 {
    std::fs::read_to_string(z.work().join("progress"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn counter_counts_on_from_where_it_stopped() {
    let Some(mut z) = Zdtm::start("zdtm-counter", "zdtm_counter", &[]) else {
        return;
    };
    assert!(common::wait_until(TIMEOUT, || progress(&z) >= 128));
    z.dump(&[]);
    let at_dump = progress(&z);
    z.restore(&[]);
    assert!(
        common::wait_until(TIMEOUT, || progress(&z) > at_dump),
        "restored counter does not count on from {at_dump}"
    );
    assert!(progress(&z) < at_dump + 1_000_000, "counter jumped");
    assert_eq!(z.go(), "PASS");
}

#[test]
fn counter_dumped_twice_with_leave_running() {
    let Some(mut z) = Zdtm::start("zdtm-counter-twice", "zdtm_counter", &[]) else {
        return;
    };
    let first = z.new_dir("images-1");
    let second = z.new_dir("images-2");
    for images in [&first, &second] {
        let before = progress(&z);
        z.dump_to(images, &["--leave-running"]);
        // Still the same task, still counting.
        assert!(
            common::proc_state(z.pid()).is_some(),
            "task gone after --leave-running"
        );
        assert!(
            common::wait_until(TIMEOUT, || progress(&z) > before),
            "counter stopped after a --leave-running dump"
        );
    }
    z.kill();
    z.restore_from(&second, &[]);
    let at_restore = progress(&z);
    assert!(common::wait_until(TIMEOUT, || progress(&z) > at_restore));
    assert_eq!(z.go(), "PASS");
}

fn dump_restore_pass(test: &str, program: &str) {
    if let Some(verdict) = common::zdtm::dump_restore(test, program, &[]) {
        assert_eq!(verdict, "PASS", "{program}");
    }
}

#[test]
fn open_files_keep_positions_and_flags() {
    dump_restore_pass("zdtm-files", "zdtm_files");
}

#[test]
fn rlimits_are_restored() {
    dump_restore_pass("zdtm-rlimits", "zdtm_rlimits");
}

#[test]
fn cwd_and_umask_are_restored() {
    dump_restore_pass("zdtm-cwd-umask", "zdtm_cwd_umask");
}

#[test]
fn glibc_rseq_registration_is_restored() {
    dump_restore_pass("zdtm-rseq", "zdtm_rseq");
}

/// Filters inherited by two threads, one of which adds its own: every
/// thread still has its chain after restore (the filtered syscalls fail
/// with their errnos, the others work, the filter counts are the same).
#[test]
fn seccomp_filters_come_back_in_every_thread() {
    dump_restore_pass("zdtm-seccomp", "zdtm_seccomp");
}

/// One filter given to every thread with TSYNC: kept once, on the
/// leader, and synced to the others again by the restore.
#[test]
fn seccomp_tsync_filter_comes_back_in_every_thread() {
    if let Some(verdict) =
        common::zdtm::dump_restore("zdtm-seccomp-tsync", "zdtm_seccomp", &["tsync"])
    {
        assert_eq!(verdict, "PASS");
    }
}

/// A filter installed with CAP_SYS_ADMIN and no no_new_privs, the
/// capability dropped since: the restore installs it before the
/// credentials take the capability away again.
#[test]
fn seccomp_filter_without_no_new_privs_comes_back() {
    if let Some(verdict) =
        common::zdtm::dump_restore("zdtm-seccomp-no-nnp", "zdtm_seccomp", &["no-nnp"])
    {
        assert_eq!(verdict, "PASS");
    }
}

/// A child process sharing its parent's filter and adding its own.
#[test]
fn seccomp_filters_of_a_forked_child_come_back() {
    let Some(mut z) = Zdtm::start("zdtm-seccomp-fork", "zdtm_seccomp", &["fork"]) else {
        return;
    };
    let kids = common::descendants(z.pid());
    assert_eq!(kids.len(), 1, "{kids:?}");
    z.dump(&[]);
    common::reap(&kids);
    z.restore(&[]);
    assert!(
        common::proc_state(kids[0]).is_some(),
        "the child was not restored"
    );
    assert_eq!(z.go(), "PASS");
}

/// A thread in strict mode (read and write only) beside filtered ones.
#[test]
fn seccomp_strict_thread_comes_back() {
    if let Some(verdict) =
        common::zdtm::dump_restore("zdtm-seccomp-strict", "zdtm_seccomp", &["strict"])
    {
        assert_eq!(verdict, "PASS");
    }
}

/// A filter the kernel refuses (an instruction it does not know, in
/// images that pass every check of ours) fails the restore at its
/// seccomp stage, after the go, at once and by name, leaving no task.
#[test]
fn seccomp_filter_the_kernel_refuses_fails_the_restore_by_name() {
    let Some(mut z) = Zdtm::start("zdtm-seccomp-bad", "zdtm_seccomp", &[]) else {
        return;
    };
    z.dump(&[]);
    // The filters' first instruction, `ld [0]` followed by a `jeq`: its
    // opcode made one the kernel refuses.
    let path = z.images().join("seccomp.img");
    let mut img = std::fs::read(&path).unwrap();
    let ld: &[u8] = &[0x20, 0, 0, 0, 0, 0, 0, 0, 0x15, 0];
    let at: Vec<usize> = (0..img.len().saturating_sub(ld.len()))
        .filter(|&i| img[i..].starts_with(ld))
        .collect();
    assert!(!at.is_empty(), "no filter found in seccomp.img");
    for i in at {
        img[i..i + 2].copy_from_slice(&[0xff, 0xff]);
    }
    std::fs::write(&path, img).unwrap();
    let start = std::time::Instant::now();
    let (ok, log) = z.criu_in(z.images(), &["restore", "-d"]);
    assert!(!ok, "a filter the kernel refuses was restored: {log}");
    assert!(log.contains("seccomp"), "{log}");
    assert!(log.contains("Invalid argument"), "{log}");
    assert!(
        start.elapsed() < TIMEOUT / 2,
        "the failure took {:?}",
        start.elapsed()
    );
    assert!(
        common::proc_state(z.pid()).is_none(),
        "a task was left behind"
    );
}

/// Without CAP_SYS_ADMIN (the filters could not be kept suspended until
/// the restore lets the task go) a tree under seccomp is refused before
/// any task is created; with it, the same images restore.
#[test]
fn seccomp_restore_without_cap_sys_admin_is_refused_by_name() {
    use std::os::unix::process::CommandExt;
    let Some(mut z) = Zdtm::start("zdtm-seccomp-nocap", "zdtm_seccomp", &[]) else {
        return;
    };
    z.dump(&[]);
    let images = z.images().to_path_buf();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_criu"));
    cmd.args(["restore", "-d", "-v4", "-o", "nocap.log", "-D"])
        .arg(&images)
        .stdin(std::process::Stdio::null());
    // SAFETY: the closure only makes one prctl call between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Root's exec takes its permitted set from the bounding set.
            rustix::thread::remove_capability_from_bounding_set(
                rustix::thread::CapabilitySet::SYS_ADMIN,
            )
            .map_err(std::io::Error::from)
        });
    }
    let out = cmd.output().expect("run criu");
    let log = std::fs::read_to_string(images.join("nocap.log")).unwrap_or_default();
    assert!(
        !out.status.success(),
        "restored without CAP_SYS_ADMIN: {log}"
    );
    assert!(
        log.contains(&format!(
            "task {} ran under seccomp: restoring it needs CAP_SYS_ADMIN",
            z.pid()
        )),
        "{log}"
    );
    assert!(common::proc_state(z.pid()).is_none(), "a task was created");
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

/// A fault right after the filters are read leaves the task running
/// with its filters in force (its own check runs them).
#[test]
fn seccomp_dump_fault_leaves_the_task_filtered() {
    let Some(z) = Zdtm::start("zdtm-seccomp-fault", "zdtm_seccomp", &[]) else {
        return;
    };
    let pid = z.pid().to_string();
    let images = z.new_dir("images-fault");
    let env = [("CRIU_DUMP_FAULT", std::ffi::OsStr::new("seccomp"))];
    let (ok, log) = common::run_criu(&images, &["dump", "-t", &pid], &env);
    assert!(!ok, "dump with a fault at seccomp worked: {log}");
    assert!(log.contains("fault injected"), "{log}");
    let st = common::proc_state(z.pid());
    assert!(
        matches!(st, Some('S' | 'R')),
        "task is {st:?} after the fault"
    );
    assert_eq!(z.go(), "PASS");
}

#[test]
fn pointer_authentication_keys_come_back() {
    const TEST: &str = "pointer_authentication_keys_come_back";
    if !cfg!(target_arch = "aarch64") {
        return common::skip(TEST, "pointer authentication keys are arm64 state");
    }
    // HWCAP_PACA | HWCAP_PACG.
    let pac = (1 << 30) | (1 << 31);
    if rustix::param::linux_hwcap().0 & pac != pac {
        return common::skip(TEST, "the CPU has no pointer authentication");
    }
    let Some(mut z) = Zdtm::start("zdtm-pac", "zdtm_pac", &[]) else {
        return;
    };
    z.dump(&[]);
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}
