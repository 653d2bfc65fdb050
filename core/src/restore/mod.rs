//! `criu restore`: rebuild a dumped task from its images.
//!
//! Order (mirrors CRIU, for a tree of processes, each with all its
//! threads; see [`tree`] and [`launch`] for the tree):
//! 1. [`images::read_tree`] loads and validates every image of every task
//!    before anything is created (errors name the file);
//! 2. [`plan::build`] opens the task's files in the tool and lays out the
//!    bootstrap region: restorer blob, vDSO parking area, stack, signal
//!    frame, arguments;
//! 3. [`crate::blob::bootstrap::Region`] maps the region (shared) and calls the
//!    restorer, which forks the task with its PID and rebuilds it (and
//!    creates its other threads with their TIDs, see the restorer's
//!    `restore/threads.rs`);
//! 4. the tool waits for the child's status word, seizes every thread,
//!    lets them go to the exit of their `rt_sigreturn`, removes the
//!    restorer there (see [`finish`]), then detaches (`-d`) or stays its
//!    parent and waits for it, like CRIU.
//!
//! Each task's children are forked with their PIDs by its restorer in
//! `STAGE_SESSION`, before it unmaps the tool; the tool waits for every
//! task, then lets them all go together. A failed restore kills every
//! task created so far.

mod cow;
mod fd_state;
mod finish;
pub mod images;
mod launch;
pub mod layout;
mod mntns;
pub mod namespaces;
mod netns;
mod pidns;
mod plan;
mod regs;
mod regsets;
mod root_ns;
mod sysv;
mod task_attrs;
mod tree;
mod userns;
pub mod vdso;

use std::path::Path;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions};

use crate::blob::restorer_abi as abi;
use crate::hooks::Hooks;
use crate::images::typed::ImageDir;
use crate::images::{Kind, pb};
use crate::opts::Opts;

/// How long the child may take to rebuild itself.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Image(#[from] crate::images::error::ImageError),
    #[error(transparent)]
    Check(#[from] crate::images::check::CheckError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Files(#[from] crate::files::FileError),
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    #[error(transparent)]
    Cgroups(#[from] crate::cgroups::place::PlaceError),
    #[error(transparent)]
    Mounts(#[from] crate::ns::mnt::MntError),
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot open {0}: {1}")]
    Open(String, Errno),
    #[error("{0}: {1}")]
    Sys(&'static str, Errno),
    #[error("gave up after {secs} s waiting for {what}")]
    WaitTimeout { what: &'static str, secs: u64 },
    #[error("PID {0} is in use; the restored task needs it (pstree.img)")]
    PidBusy(u32),
    #[error("the restorer failed at stage {stage} (item {index} of {source_image}): {errno}")]
    Stage {
        stage: &'static str,
        index: u32,
        /// The image the stage's items come from.
        source_image: String,
        errno: Errno,
    },
    #[error("the restorer failed at stage {stage} in thread {tid}: {errno}")]
    ThreadStage {
        stage: &'static str,
        tid: u32,
        errno: Errno,
    },
    #[error("the task died during restore ({0})")]
    Died(String),
    #[error("the restorer did not finish within {0:?}")]
    Timeout(Duration),
    #[error("cannot remove the restorer from the task: {0}")]
    Cure(String),
    #[error("cannot write the pidfile {0}: {1}")]
    Pidfile(String, std::io::Error),
    #[error("cannot write stats-restore: {0}")]
    Stats(String),
    #[error(transparent)]
    Cpuinfo(#[from] crate::regs::cpuinfo::CpuinfoError),
}

/// Environment variable that makes a restore fail on purpose at the named
/// stage (one of [`FAULT_STAGES`]), to test that failures leave nothing
/// behind.
pub const FAULT_ENV: &str = "CRIU_RESTORE_FAULT";
/// Tool-side fault: after the task is fully restored, before it is let go.
pub const FAULT_AFTER_DONE: &str = "after-done";
/// Tool-side fault: after the task's files are opened and shared memory
/// is created, before the task is forked.
pub const FAULT_OPEN_FILES: &str = "open-files";
/// Tool-side fault: every task restored and found by the PID the tool
/// reaches it by (outside the tree's pid namespace, if it has one),
/// before any is seized.
pub const FAULT_PID_MAP: &str = "pid-map";
/// Every stage a fault can be injected at, in order.
pub const FAULT_STAGES: &[&str] = &[
    FAULT_OPEN_FILES,
    "session",
    "proc-attrs",
    "fds",
    "fs",
    "switch-stack",
    "park-vdso",
    "rseq",
    "unmap",
    "map-vmas",
    "read-pages",
    "protect",
    "vdso",
    "prctl-mm-map",
    "task-name",
    "rlimits",
    "pending-signals",
    "posix-timers",
    "sigactions",
    "itimers",
    "close-fds",
    "creds",
    "task-attrs",
    "arch-state",
    "threads",
    "fd-state",
    FAULT_AFTER_DONE,
    // Numbered last (the others keep their numbers), run first thing.
    "cgroups",
    // Tool-side, numbered last so that the others keep their numbers: it
    // comes right after the root is forked (its namespaces filled).
    root_ns::FAULT_NAMESPACES,
    // Tool-side, numbered last likewise: once every task is restored,
    // when the tool maps the tree's PIDs to its own.
    FAULT_PID_MAP,
    // Tool-side, last likewise: the root's own net namespace is made and
    // filled, no task forked yet.
    netns::FAULT_NETNS,
    // Tool-side: the tree's mount namespace built, before the root is
    // forked into it.
    mntns::FAULT_MOUNTS,
];

/// The injected fault, if any: (restorer stage number or 0, tool-side).
/// `CRIU_FAULT` numbers them [`crate::fault::RESTORE_BASE`] + index in
/// [`FAULT_STAGES`]; `CRIU_RESTORE_FAULT` names them.
fn fault_from_env() -> (u32, bool) {
    let Some(name) = FAULT_STAGES
        .iter()
        .enumerate()
        .find(|(i, name)| crate::fault::at(crate::fault::RESTORE_BASE, *i, name, FAULT_ENV))
        .map(|(_, name)| *name)
    else {
        return (0, false);
    };
    if name == FAULT_AFTER_DONE {
        return (0, true);
    }
    if name == FAULT_PID_MAP {
        // Checked where the map is made (see `launch::watch`).
        return (0, false);
    }
    (
        (1..=64).find(|&n| stage_name(n) == name).unwrap_or(0),
        false,
    )
}

/// Name of a restorer stage for messages.
pub fn stage_name(stage: u32) -> &'static str {
    match stage {
        abi::STAGE_SESSION => "session",
        abi::STAGE_FDS => "fds",
        abi::STAGE_FS => "fs",
        abi::STAGE_SWITCH_STACK => "switch-stack",
        abi::STAGE_PARK_VDSO => "park-vdso",
        abi::STAGE_UNMAP => "unmap",
        abi::STAGE_MAP => "map-vmas",
        abi::STAGE_PAGES => "read-pages",
        abi::STAGE_PROTECT => "protect",
        abi::STAGE_VDSO => "vdso",
        abi::STAGE_MM => "prctl-mm-map",
        abi::STAGE_SIGACTIONS => "sigactions",
        abi::STAGE_ITIMERS => "itimers",
        abi::STAGE_ARCH => "arch-state",
        abi::STAGE_CLOSE_FDS => "close-fds",
        abi::STAGE_RSEQ => "rseq",
        abi::STAGE_POSIX_TIMERS => "posix-timers",
        abi::STAGE_CREDS => "creds",
        abi::STAGE_RLIMITS => "rlimits",
        abi::STAGE_SIGNALS => "pending-signals",
        abi::STAGE_TASK => "task-name",
        abi::STAGE_ATTRS => "task-attrs",
        abi::STAGE_THREADS => "threads",
        abi::STAGE_FD_STATE => "fd-state",
        abi::STAGE_PROC_ATTRS => "proc-attrs",
        abi::STAGE_PREMAP => "premap",
        abi::STAGE_CGROUPS => "cgroups",
        abi::STAGE_SECCOMP => "seccomp",
        _ => "unknown",
    }
}

/// The image whose entries a restorer stage applies, so that a failure
/// there (the kernel refusing a dumped value) points at the file.
fn stage_source(stage: u32, pid: i32) -> String {
    match stage {
        abi::STAGE_SESSION => "pstree.img".into(),
        abi::STAGE_FDS | abi::STAGE_CLOSE_FDS => "files.img/fdinfo".into(),
        abi::STAGE_FD_STATE => "files.img (epoll targets) / filelocks.img".into(),
        abi::STAGE_FS => format!("fs-{pid}.img"),
        abi::STAGE_PARK_VDSO
        | abi::STAGE_UNMAP
        | abi::STAGE_MAP
        | abi::STAGE_PROTECT
        | abi::STAGE_VDSO
        | abi::STAGE_MM => format!("mm-{pid}.img"),
        abi::STAGE_PAGES | abi::STAGE_PREMAP => format!("pagemap-{pid}.img"),
        abi::STAGE_PROC_ATTRS => {
            format!("core-{pid}.img (oom_score_adj, loginuid) / mm-{pid}.img (thp_disabled)")
        }
        abi::STAGE_SWITCH_STACK => "the restorer's own set-up".into(),
        abi::STAGE_CGROUPS => "cgroup.img (the task's cgroup set)".into(),
        abi::STAGE_SECCOMP => format!("core-{pid}.img / seccomp.img"),
        _ => format!("core-{pid}.img"),
    }
}

/// A restored task: its PID, and whether we stay its parent.
#[derive(Debug, Clone, Copy)]
pub struct Restored {
    pub pid: Pid,
    pub stats: RestoreStats,
    /// The root's exit code (128 + signal if killed) if its status was
    /// already collected by the restore. Always `None` now: no task runs
    /// its own code before the tool lets it go (see [`finish`]), so none
    /// can end earlier; kept for the callers that wait for the root.
    pub exit_code: Option<i32>,
}

/// What `stats-restore` records (CRIU's `restore_stats_entry`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreStats {
    /// From the start of the restore until the task existed with its PID.
    pub forking: Duration,
    /// From the start of the restore until the task ran its own code.
    pub restore: Duration,
    /// Pages read from the images into the task.
    pub pages_restored: u64,
    /// Pages of children found equal to their parent's and left shared.
    pub pages_skipped_cow: u64,
}

/// Restores the tree in `opts.common.images_dir` and returns its root's
/// PID once every task runs on its own. `hooks` run at CRIU's points:
/// `pre-restore` first; `post-restore` and `pre-resume` when every task is
/// restored but none has run its own code yet (a failure of any of these
/// kills them all and fails the restore); `post-resume` once they run (a
/// failure is only reported).
pub fn restore_tree(opts: &Opts, hooks: &mut Hooks) -> Result<Restored, RestoreError> {
    launch::restore_tree(opts, hooks)
}

/// Everything a restore does before it opens a file or creates a
/// process: read every image of the task in `images_dir` and check it
/// (framing, counts, address ranges, registers, fds, paths) and that a
/// plan can be made from it. `task_size` is the top of the user address
/// space. Restore runs this first; the `restore_plan` fuzz target feeds it
/// arbitrary image sets.
pub fn check_images(
    images_dir: &Path,
    page_size: u64,
    task_size: u64,
) -> Result<Vec<images::TreeTaskImages>, RestoreError> {
    let tasks = images::read_tree(&ImageDir::new(images_dir), page_size, task_size)?;
    if let Some(images::TreeTaskImages::Alive(t)) = tasks.first() {
        plan::check_tree(t)?;
    }
    for t in &tasks {
        if let images::TreeTaskImages::Alive(t) = t {
            plan::check(t, page_size, task_size)?;
        }
    }
    Ok(tasks)
}

const RESTORER_ENTRY: usize = 0;

/// `task_core_entry.task_state` of a task dumped while stopped.
const TASK_STOPPED: u32 = 3;

/// A task dumped in a job-control stop is stopped again, with the signal
/// that stopped it (CRIU's `stop_signo`, SIGSTOP by default): the signal
/// to send it before it runs, if any.
fn stop_signal(task: &images::TaskImages) -> Option<Signal> {
    let tc = task.core.tc.as_ref()?;
    if tc.task_state != TASK_STOPPED {
        return None;
    }
    Some(
        tc.stop_signo
            .and_then(|s| Signal::from_named_raw(s as i32))
            .unwrap_or(Signal::STOP),
    )
}

/// `--pidfile`: the root's PID, written while the restored tree is still
/// held (as CRIU: a restore that cannot say where the tree is fails, and
/// the tree is killed with it, rather than running on unknown).
pub(super) fn write_pidfile(opts: &Opts, root: Pid) -> Result<(), RestoreError> {
    let Some(pf) = &opts.common.pidfile else {
        return Ok(());
    };
    let path = opts.common.work_dir().join(pf);
    std::fs::write(&path, format!("{}", root.as_raw_nonzero()))
        .map_err(|e| RestoreError::Pidfile(path.display().to_string(), e))
}

/// Undo [`write_pidfile`] (the restore failed after it).
pub(super) fn remove_pidfile(opts: &Opts) {
    if let Some(pf) = &opts.common.pidfile {
        let path = opts.common.work_dir().join(pf);
        if let Err(e) = std::fs::remove_file(&path) {
            crate::pr_warn!("cannot remove the pidfile {}: {e}", path.display());
        }
    }
}

/// `criu restore`: restore (which writes `--pidfile`), then either detach
/// (`-d`) or wait for the task and return its exit code as ours.
pub fn run(opts: &Opts, hooks: &mut Hooks) -> Result<i32, RestoreError> {
    let r = restore_tree(opts, hooks)?;
    crate::pr_info!("Restored task {}", r.pid.as_raw_nonzero());
    // Like CRIU, stats-restore is written on every restore, into the work
    // dir. The task already runs: failing here would leave it behind while
    // telling the caller the restore failed, so this only warns.
    if let Err(e) = write_stats(opts.common.work_dir(), &r.stats) {
        crate::pr_warn!("{e}");
    }
    if opts.common.display_stats {
        display_stats(&r.stats);
    }
    if opts.restore.detached {
        return Ok(0);
    }
    if let Some(code) = r.exit_code {
        return Ok(code);
    }
    // Not bounded on purpose: without -d, criu restore stays the restored
    // tree's parent until the tree ends (CRIU's behaviour); no step of the
    // restore waits here.
    loop {
        match rustix::process::waitpid(Some(r.pid), WaitOptions::empty()) {
            Ok(Some((_, st))) => {
                if let Some(code) = st.exit_status() {
                    return Ok(code);
                }
                if let Some(sig) = st.terminating_signal() {
                    return Ok(128 + sig);
                }
            }
            Ok(None) => {}
            Err(Errno::INTR) => {}
            Err(e) => return Err(RestoreError::Sys("waitpid", e)),
        }
    }
}

/// `--display-stats`: print the figures as CRIU does.
fn display_stats(s: &RestoreStats) {
    crate::pr_msg!("Displaying restore stats:");
    crate::pr_msg!("Pages compared: 0 (0x0)");
    crate::pr_msg!(
        "Pages skipped COW: {} ({:#x})",
        s.pages_skipped_cow,
        s.pages_skipped_cow
    );
    crate::pr_msg!(
        "Pages restored: {} ({:#x})",
        s.pages_restored,
        s.pages_restored
    );
    crate::pr_msg!("Restore time: {} us", s.restore.as_micros());
    crate::pr_msg!("Forking time: {} us", s.forking.as_micros());
}

/// Write `stats-restore` (CRIU's `stats_entry` with `restore`; times in µs).
fn write_stats(dir: &Path, s: &RestoreStats) -> Result<(), RestoreError> {
    let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    let path = dir.join(Kind::Stats.desc().file_name("restore", ""));
    let entry = pb::StatsEntry {
        dump: None,
        restore: Some(pb::RestoreStatsEntry {
            pages_compared: 0,
            pages_skipped_cow: s.pages_skipped_cow,
            forking_time: us(s.forking),
            restore_time: us(s.restore),
            pages_restored: Some(s.pages_restored),
        }),
    };
    crate::images::write_one(&path, Kind::Stats, &entry)
        .map_err(|e| RestoreError::Stats(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_stage_names_a_restorer_stage() {
        let tool_side = [
            FAULT_AFTER_DONE,
            FAULT_OPEN_FILES,
            FAULT_PID_MAP,
            root_ns::FAULT_NAMESPACES,
            netns::FAULT_NETNS,
            mntns::FAULT_MOUNTS,
        ];
        for name in FAULT_STAGES.iter().filter(|n| !tool_side.contains(n)) {
            assert!((1..=64).any(|n| stage_name(n) == *name), "{name}");
        }
    }
}
