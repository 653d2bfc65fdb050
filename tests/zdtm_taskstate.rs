//! ZDTM-style tests of task state that a restore used to lose while
//! reporting success: scheduling (per thread, with SCHED_RESET_ON_FORK),
//! oom_score_adj, loginuid, capability sets and securebits (per thread,
//! ambient ones included), the THP-disable prctl, membarrier
//! registrations, job-control stops, closed stdio fds, a controlling
//! terminal no fd of the leader holds and a pty's owner; refused: an
//! exit signal other than SIGCHLD, a CPU affinity, I/O priority or
//! coredump_filter of its own (CRIU's images have no field for them and
//! a restored task would get the tool's). Each program
//! checks itself after restore (see tests/programs/zdtm/); what CRIU's
//! images cannot describe is refused at dump, by name, and the program
//! runs on unchanged.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::zdtm::{TIMEOUT, Zdtm};
use common::{descendants, kill_all, reap};
use rustix::process::{Pid, Signal};

/// Dump `program ARGS` (with its children, if it has any), kill it,
/// restore it and let it check itself.
fn dump_restore_pass(test: &str, program: &str, args: &[&str]) {
    let Some(mut z) = Zdtm::start(test, program, args) else {
        return;
    };
    let kids = descendants(z.pid());
    z.dump(&[]);
    // The children's zombies are ours (the subreaper's): their PIDs
    // must be free for the restore.
    reap(&kids);
    z.restore(&[]);
    let verdict = z.go();
    kill_all(&kids);
    assert_eq!(verdict, "PASS", "{program} {args:?}");
}

/// The dump of `program ARGS` must fail naming `why`; the program must
/// be left running as it was (its own check passes) and no image but
/// the log written.
fn dump_refused(test: &str, program: &str, args: &[&str], why: &str) {
    let Some(z) = Zdtm::start(test, program, args) else {
        return;
    };
    let pid = z.pid().to_string();
    let images = z.images().to_path_buf();
    let (ok, log) = z.criu_in(&images, &["dump", "-t", &pid]);
    assert!(!ok, "{program} {args:?} was dumped: {log}");
    assert!(log.contains(why), "want {why:?} in:\n{log}");
    assert!(common::proc_state(z.pid()).is_some(), "{program} is gone");
    let images_left: Vec<_> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".img"))
        .collect();
    assert!(images_left.is_empty(), "{images_left:?}");
    let kids = descendants(z.pid());
    let verdict = z.go();
    kill_all(&kids);
    assert_eq!(verdict, "PASS", "{program} {args:?} after the refused dump");
}

#[test]
fn scheduling_policy_priority_and_nice_of_every_thread_survive() {
    dump_restore_pass("zdtm-sched", "zdtm_sched", &[]);
}

#[test]
fn sched_deadline_is_refused_by_name() {
    dump_refused(
        "zdtm-sched-deadline",
        "zdtm_sched",
        &["deadline"],
        "runs under SCHED_DEADLINE",
    );
}

#[test]
fn a_timer_slack_of_its_own_is_refused_by_name() {
    dump_refused(
        "zdtm-sched-slack",
        "zdtm_sched",
        &["slack"],
        "has a timer slack of 123456 ns",
    );
}

#[test]
fn oom_score_adj_survives() {
    dump_restore_pass("zdtm-oom-score-adj", "zdtm_oom_score_adj", &[]);
}

#[test]
fn loginuid_survives() {
    dump_restore_pass("zdtm-loginuid", "zdtm_loginuid", &[]);
}

#[test]
fn capabilities_securebits_and_ids_of_every_thread_survive() {
    dump_restore_pass("zdtm-caps", "zdtm_caps", &[]);
}

#[test]
fn thp_disable_survives() {
    dump_restore_pass("zdtm-thp-disable", "zdtm_thp_disable", &[]);
}

#[test]
fn thp_disable_except_advised_is_refused_by_name() {
    if !common::kernel_at_least(6, 18) {
        common::skip(
            "zdtm-thp-except-advised",
            "this kernel predates PR_THP_DISABLE_EXCEPT_ADVISED (Linux 6.18)",
        );
        return;
    }
    dump_refused(
        "zdtm-thp-except-advised",
        "zdtm_thp_disable",
        &["except-advised"],
        "PR_THP_DISABLE_EXCEPT_ADVISED",
    );
}

#[test]
fn membarrier_registrations_survive() {
    dump_restore_pass("zdtm-membarrier", "zdtm_membarrier", &[]);
}

#[test]
fn stopped_children_come_back_stopped_with_their_signal() {
    dump_restore_pass("zdtm-stopped", "zdtm_stopped", &[]);
}

#[test]
fn a_traced_task_is_refused_by_name() {
    dump_refused(
        "zdtm-stopped-traced",
        "zdtm_stopped",
        &["traced"],
        "is traced by",
    );
}

/// The state letter of `pid` (`/proc/PID/stat`).
fn state(pid: i32) -> Option<char> {
    common::proc_state(pid)
}

#[test]
fn a_stopped_root_comes_back_stopped() {
    let Some(mut z) = Zdtm::start("zdtm-stopped-root", "zdtm_counter", &[]) else {
        return;
    };
    let pid = Pid::from_raw(z.pid()).unwrap();
    rustix::process::kill_process(pid, Signal::STOP).unwrap();
    assert!(common::wait_until(TIMEOUT, || state(z.pid()) == Some('T')));
    z.dump(&[]);
    z.restore(&[]);
    // Stopped now, and still a moment later (it is not just passing
    // through a stop).
    let end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < end {
        assert_eq!(state(z.pid()), Some('T'), "the restored root runs");
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(pid, Signal::CONT).unwrap();
    assert_eq!(z.go(), "PASS");
}

#[test]
fn closed_stdin_and_stdout_stay_closed() {
    dump_restore_pass("zdtm-closed-stdio", "zdtm_closed_stdio", &[]);
}

#[test]
fn a_task_without_any_fd_gets_none() {
    dump_restore_pass("zdtm-closed-stdio-all", "zdtm_closed_stdio", &["all"]);
}

/// Pty indices are global: the pty tests here run one at a time.
static PTYS: Mutex<()> = Mutex::new(());

#[test]
fn a_controlling_terminal_only_the_master_holds_comes_back() {
    let _g = PTYS.lock().unwrap_or_else(|e| e.into_inner());
    dump_restore_pass("zdtm-ctty-master", "zdtm_ctty", &["master"]);
}

#[test]
fn a_controlling_terminal_a_child_holds_comes_back() {
    let _g = PTYS.lock().unwrap_or_else(|e| e.into_inner());
    dump_restore_pass("zdtm-ctty-child", "zdtm_ctty", &["child"]);
}

/// A thread with a nice of its own and the I/O priority class NONE set
/// (the default: its I/O follows its nice) is not refused: dumped and
/// restored, and finds its affinity, I/O priority and nice as they were.
#[test]
fn an_io_priority_of_class_none_is_not_refused() {
    dump_restore_pass("zdtm-unheld-plain", "zdtm_unheld_attrs", &["plain"]);
}

#[test]
fn a_cpu_affinity_of_its_own_is_refused_by_name() {
    let cpus = rustix::thread::sched_getaffinity(None).unwrap().count();
    if cpus < 2 {
        return common::skip(
            "zdtm-unheld-affinity",
            "needs two CPUs (an affinity of its own leaves one out)",
        );
    }
    dump_refused(
        "zdtm-unheld-affinity",
        "zdtm_unheld_attrs",
        &["affinity"],
        "(sched_setaffinity), which CRIU's images cannot hold",
    );
}

#[test]
fn an_io_priority_of_its_own_is_refused_by_name() {
    dump_refused(
        "zdtm-unheld-ioprio",
        "zdtm_unheld_attrs",
        &["ioprio"],
        "has I/O priority class 3 level 0 (ioprio_set)",
    );
}

#[test]
fn a_coredump_filter_of_its_own_is_refused_by_name() {
    dump_refused(
        "zdtm-unheld-coredump-filter",
        "zdtm_unheld_attrs",
        &["coredump-filter"],
        "its coredump_filter is 00000023",
    );
}

#[test]
fn an_exit_signal_other_than_sigchld_is_refused_by_name() {
    dump_refused(
        "zdtm-unheld-exit-signal",
        "zdtm_unheld_attrs",
        &["exit-signal"],
        "created with exit signal 10 instead of SIGCHLD",
    );
}

#[test]
fn a_machine_check_kill_policy_of_its_own_is_refused_by_name() {
    dump_refused(
        "zdtm-unheld-mce-kill",
        "zdtm_unheld_attrs",
        &["mce-kill"],
        "has machine-check kill policy 1 (PR_MCE_KILL; the tool's is 2)",
    );
}

#[test]
fn a_tsc_setting_of_its_own_is_refused_by_name() {
    if !cfg!(target_arch = "x86_64") {
        return common::skip("zdtm-unheld-tsc", "PR_SET_TSC is x86 only");
    }
    dump_refused(
        "zdtm-unheld-tsc",
        "zdtm_unheld_attrs",
        &["tsc"],
        "has TSC readability 2 (PR_SET_TSC; the tool's is 1)",
    );
}

/// Memory-deny-write-execute (`PR_SET_MDWE`) forbids the parasite's
/// executable mapping (and CRIU's images have no place for it): refused
/// by name, the process runs on with it.
#[test]
fn memory_deny_write_execute_is_refused_by_name() {
    let get = linux_raw_sys::prctl::PR_GET_MDWE as usize;
    // SAFETY: integer arguments only.
    let r = unsafe { criu_arch::syscall5(criu_arch::nr::PRCTL, get, 0, 0, 0, 0) };
    if r < 0 {
        return common::skip(
            "zdtm-unheld-mdwe",
            "this kernel predates PR_SET_MDWE (Linux 6.3)",
        );
    }
    dump_refused(
        "zdtm-unheld-mdwe",
        "zdtm_unheld_attrs",
        &["mdwe"],
        "refuses to make memory executable (mprotect(PROT_EXEC): permission denied): it has \
         memory-deny-write-execute set (PR_SET_MDWE)",
    );
}
