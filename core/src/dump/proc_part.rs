//! What is read about a seized task from `/proc` alone (its mappings,
//! their pages, auxv, limits, timers, links, namespaces): nothing here
//! needs the tracer or the tree's file table, so the tasks of a tree are
//! read by several threads at once (`/proc` reads are the bulk of
//! collecting a task, and the machine has more than one core). Whatever
//! needs ptrace or the file table follows on the dumping thread, task by
//! task, in [`super::collect_outside`].

use std::path::PathBuf;

use crate::mem::{self, PageRange};
use crate::opts::DumpOpts;
use crate::proc::ProcDir;
use crate::proc::stat::Stat;
use crate::proc::vma_kind::ClassifyConfig;
use crate::proc::vmas::CollectedVma;
use crate::sys::sched::SchedInfo;

use super::{CollectError, DumpError, collect_err, core_img, refuse_unsupported_vmas, task_state};

/// One task's `/proc` part.
#[derive(Debug)]
pub struct ProcPart {
    pub stat: Stat,
    pub vmas: Vec<CollectedVma>,
    /// Guard regions (`MADV_GUARD_INSTALL`), start and end.
    pub guards: Vec<(u64, u64)>,
    pub ranges: Vec<PageRange>,
    pub auxv: Vec<u64>,
    pub rlimits: Vec<crate::images::pb::RlimitEntry>,
    pub proc_timers: Vec<crate::proc::timers::PosixTimer>,
    pub loginuid: Option<u32>,
    pub oom_score_adj: Option<i32>,
    pub personality: u32,
    /// The leader's scheduling (SCHED_DEADLINE refused).
    pub sched: SchedInfo,
    pub exe: PathBuf,
    pub cwd: PathBuf,
    pub root: PathBuf,
    pub ns: crate::proc::task::NsIds,
}

fn read(proc: &ProcDir, cfg: &ClassifyConfig) -> Result<ProcPart, DumpError> {
    let pid = proc.pid();
    let stat = proc.stat().map_err(collect_err(pid, "stat"))?;
    let mut vmas = proc
        .collect_vmas(cfg)
        .map_err(collect_err(pid, "mappings"))?;
    crate::vdso::marked::fixup(pid, &mut vmas).map_err(collect_err(pid, "the vDSO's mark"))?;
    refuse_unsupported_vmas(pid, &vmas)?;
    let guards = mem::guards::guard_regions(pid, &vmas).map_err(|e| DumpError::Memory {
        pid,
        reason: e.to_string(),
    })?;
    // vsyscall lies above user space and is not REGULAR; nothing else needs
    // a tighter bound here.
    let ranges = mem::pages_to_dump(pid, &vmas, u64::MAX).map_err(|e| DumpError::Memory {
        pid,
        reason: e.to_string(),
    })?;
    let auxv = proc.auxv().map_err(collect_err(pid, "auxv"))?;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .map_err(collect_err(pid, "limits"))?;
    let rlimits = core_img::parse_limits(&limits).map_err(collect_err(pid, "limits"))?;
    let proc_timers = proc.timers().map_err(collect_err(pid, "posix timers"))?;
    let personality = proc
        .personality()
        .map_err(collect_err(pid, "personality"))?;
    // Stored as CRIU stores it (see images::personality).
    let personality =
        crate::images::personality::to_image(personality).ok_or(DumpError::Collect {
            pid,
            what: "personality",
            source: CollectError::Personality(personality),
        })?;
    // Scheduling and the refusals of the leader's own attributes (no
    // ptrace needed: the other threads' are read with them, on the
    // task's tracer thread).
    let tid = rustix::process::Pid::from_raw(pid).ok_or(DumpError::NoTree)?;
    let sched = task_state::sched_of(pid, tid)?;
    task_state::refuse_thread_attrs(pid, tid)?;
    task_state::refuse_coredump_filter(proc)?;
    Ok(ProcPart {
        stat,
        vmas,
        guards,
        ranges,
        auxv: auxv.words,
        rlimits,
        proc_timers,
        loginuid: proc.loginuid().ok(),
        oom_score_adj: proc.oom_score_adj().ok(),
        personality,
        sched,
        exe: proc.exe().map_err(collect_err(pid, "exe link"))?,
        cwd: proc.cwd().map_err(collect_err(pid, "cwd"))?,
        root: proc.root().map_err(collect_err(pid, "root"))?,
        ns: proc.ns_ids().map_err(collect_err(pid, "namespaces"))?,
    })
}

/// The `/proc` part of each task of `procs` (`None`: nothing to read, a
/// zombie), in order, read by up to as many threads as there are CPUs.
/// The first error (in task order) is returned.
pub fn read_all(
    procs: &[Option<&ProcDir>],
    opts: &DumpOpts,
    shmem_dev: u64,
) -> Result<Vec<Option<ProcPart>>, DumpError> {
    let cfg = ClassifyConfig {
        shmem_dev,
        allow_uprobes: opts.allow_uprobes,
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(procs.len().div_ceil(4))
        .max(1);
    if threads == 1 {
        return procs
            .iter()
            .map(|p| p.map(|p| read(p, &cfg)).transpose())
            .collect();
    }
    let chunk = procs.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<Option<ProcPart>>, DumpError>> = std::thread::scope(|s| {
        let cfg = &cfg;
        let handles: Vec<_> = procs
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|p| p.map(|p| read(p, cfg)).transpose())
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::with_capacity(procs.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}
