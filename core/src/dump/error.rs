//! The errors of a dump, and the fault injection its steps answer to.

use std::path::PathBuf;

use super::{FAULT_STEPS, cgroups, freezer, namespaces, regs};
use crate::infect::InfectError;

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("no task to dump: use -t PID")]
    NoTree,
    #[error(
        "the root process {pid} is not a session leader (its session is {sid}); \
         consider using --shell-job"
    )]
    NotSessionLeader { pid: i32, sid: i32 },
    #[error(
        "task {pid} belongs to uid {owner}: --unprivileged dumps only processes \
         of its own user (uid {ours})"
    )]
    NotOurs { pid: i32, owner: u32, ours: u32 },
    #[error(
        "task {pid} is in session {sid}, whose leader is not in the dumped tree \
         (only the root's session may be outside it, with --shell-job)"
    )]
    Session { pid: i32, sid: i32 },
    #[error(
        "tasks {pid1} and {pid2} share one {what} without being threads of one \
         process, nor a child sharing it with its parent; a restore cannot make that again"
    )]
    SharedTable {
        what: &'static str,
        pid1: i32,
        pid2: i32,
    },
    #[error("{step}: {source}")]
    Infect {
        step: &'static str,
        source: InfectError,
    },
    #[error("collecting {what} of task {pid}: {source}")]
    Collect {
        pid: i32,
        what: &'static str,
        source: CollectError,
    },
    #[error("task {pid}: {what}; refusing to dump what a restore cannot bring back")]
    Refused { pid: i32, what: String },
    #[error("page server: {0}")]
    PageServer(#[from] crate::page_server::ClientError),
    #[error("dumping memory of task {pid}: {reason}")]
    Memory { pid: i32, reason: String },
    #[error("Tracking memory is not available: {0}")]
    NoMemTrack(String),
    #[error("parent images {dir}: {reason}")]
    Parent { dir: PathBuf, reason: String },
    #[error(transparent)]
    Files(#[from] crate::files::table::FilesError),
    /// An inotify instance of a tree with its own mount namespace, once
    /// its watches are named there (by file id).
    #[error("inotify instance (file id {id}) of the tree: {source}")]
    Inotify {
        id: u32,
        #[source]
        source: crate::files::inotify::InotifyError,
    },
    #[error(transparent)]
    Regs(#[from] regs::RegsError),
    #[error("writing images to {dir}: {source}")]
    Images {
        dir: PathBuf,
        source: crate::images::ImageError,
    },
    #[error(transparent)]
    ImagesDir(#[from] crate::images::writer::ImagesDirError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error("fault injected at step {0:?} (CRIU_DUMP_FAULT)")]
    Fault(&'static str),
    #[error(transparent)]
    Cpuinfo(#[from] crate::regs::cpuinfo::CpuinfoError),
    #[error(transparent)]
    Namespace(#[from] namespaces::NsError),
    #[error(transparent)]
    Mounts(#[from] crate::ns::mnt::MntError),
    #[error(
        "{what} is PID {pid}, which is outside the tree's pid namespace: it has no PID \
         there, so it cannot be dumped (CRIU refuses it too)"
    )]
    OutsidePidNs { what: String, pid: i32 },
    #[error("{0} is not supported yet for a tree in its own pid namespace")]
    PidNsUnsupported(&'static str),
    #[error(transparent)]
    Cgroup(#[from] cgroups::CgroupError),
    #[error(transparent)]
    Cgroups(#[from] crate::cgroups::collect::CollectError),
    #[error(transparent)]
    Freezer(#[from] freezer::FreezerError),
    #[error("locking the network of the TCP connections: {0}")]
    NetLock(#[from] crate::netlock::NetLockError),
    #[error(
        "task {pid} runs under the {lsm} label {label:?}, criu under {ours:?}: \
         restoring another LSM label is not supported yet"
    )]
    Lsm {
        pid: i32,
        lsm: &'static str,
        label: String,
        ours: String,
    },
}

/// Fails at `step` when `CRIU_FAULT` holds its number
/// ([`crate::fault::DUMP_BASE`] + its index in [`FAULT_STEPS`]) or
/// `CRIU_DUMP_FAULT` its name.
pub(super) fn fault(step: &'static str) -> Result<(), DumpError> {
    let index = FAULT_STEPS
        .iter()
        .position(|s| *s == step)
        .unwrap_or(usize::MAX);
    match crate::fault::at(crate::fault::DUMP_BASE, index, step, "CRIU_DUMP_FAULT") {
        true => Err(DumpError::Fault(step)),
        false => Ok(()),
    }
}

/// A per-task step's fault: with `CRIU_DUMP_FAULT_TASK=<n>` set, only
/// in the tree's n-th task (0 = the root), to fail in the middle of a
/// tree.
pub(super) fn task_fault(step: &'static str, index: usize) -> Result<(), DumpError> {
    match std::env::var("CRIU_DUMP_FAULT_TASK") {
        Ok(n) if n.parse::<usize>().ok() != Some(index) => Ok(()),
        _ => fault(step),
    }
}

pub(super) fn infect_err(step: &'static str) -> impl FnOnce(InfectError) -> DumpError {
    move |source| DumpError::Infect { step, source }
}

/// Why collecting one piece of a task's state failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Proc(#[from] crate::proc::ProcError),
    #[error(transparent)]
    Sys(#[from] rustix::io::Errno),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Mappings(#[from] crate::proc::vmas::CollectError),
    #[error(transparent)]
    Limits(#[from] super::core_img::LimitsError),
    #[error(
        "{0:#x} has hex digits CRIU's images cannot hold (they keep the hex digits read as \
         a decimal number)"
    )]
    Personality(u32),
    #[error("it could not be seized but is not a zombie")]
    NotSeizedNotZombie,
}

pub(super) fn collect_err<E: Into<CollectError>>(
    pid: i32,
    what: &'static str,
) -> impl FnOnce(E) -> DumpError {
    move |e| DumpError::Collect {
        pid,
        what,
        source: e.into(),
    }
}
