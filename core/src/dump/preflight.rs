//! What restore cannot bring back, refused by name, for every task of the
//! tree: its namespaces ([`super::namespaces`]), a frozen cgroup
//! ([`super::cgroups`]) and its LSM label, compared with criu's own; and
//! each seized task's cgroups, which the dump records
//! ([`crate::cgroups::collect`]).
//!
//! The checks run on the tree as found before anything is seized (the
//! root, then `/proc/PID/task/*/children` recursively), so that a task
//! that would be refused is never stopped or infected; a frozen cgroup is
//! refused only here (a seized task is stopped, not frozen). They run
//! again on every seized task and thread, where the tree can no longer
//! change: that answer is the authoritative one.

use crate::dump::cgroups::{self, CgroupError, FreezerMounts};
use crate::dump::namespaces;
use crate::pr_info;
use crate::proc::ProcDir;
use crate::proc::cgroup::CgroupLine;
use crate::proc::lsm::Lsm;
use crate::proc::task::NsIds;

use super::{DumpError, collect_err};

/// Most tasks the walk before the seize follows (far beyond real trees;
/// it only bounds a tree that forks faster than it can be read).
const WALK_MAX: usize = 1 << 16;

/// What criu itself is: the yardstick for every task.
#[derive(Debug)]
pub struct Ours {
    pub ns: NsIds,
    pub cgroups: Vec<CgroupLine>,
    pub lsm: Lsm,
    pub label: Option<String>,
    pub mounts: FreezerMounts,
    /// The cgroup hierarchies criu sees mounted.
    pub hierarchies: Vec<crate::cgroups::Hierarchy>,
    /// The root's own pid namespace, if it is the init of one (see
    /// [`super::pidns`]): the tree's tasks are in it.
    pub tree_pid: Option<super::pidns::TreePidNs>,
}

impl Ours {
    pub fn read() -> Result<Ours, DumpError> {
        let me = ProcDir::open_self().map_err(collect_err(0, "/proc/self"))?;
        let pid = me.pid();
        let lsm = Lsm::active();
        let mounts = me.mountinfo().map_err(collect_err(pid, "criu's mounts"))?;
        Ok(Ours {
            ns: me.ns_ids().map_err(collect_err(pid, "criu's namespaces"))?,
            cgroups: me.cgroup().map_err(collect_err(pid, "criu's cgroups"))?,
            label: me
                .lsm_label(lsm)
                .map_err(collect_err(pid, "criu's LSM label"))?,
            lsm,
            mounts: FreezerMounts::from_mounts(&mounts),
            hierarchies: crate::cgroups::hierarchies(&mounts),
            tree_pid: None,
        })
    }
}

/// What the options allow.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// `--manage-cgroups=ignore`: cgroups are not dumped, and said so.
    pub ignore_cgroups: bool,
    /// Before the seize without `--freeze-cgroup`: refuse a frozen cgroup.
    pub refuse_frozen: bool,
    /// After the seize: say in the log what is not dumped.
    pub report: bool,
}

/// The tasks of the tree rooted at `root` as they are now, the root first.
/// Tasks that vanish while it is read are left out: the seize decides.
pub fn walk(root: i32) -> Vec<i32> {
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() && found.len() < WALK_MAX {
        let pid = found[next];
        next += 1;
        let Ok(children) = ProcDir::open(pid).and_then(|p| p.process_children()) else {
            continue;
        };
        for c in children {
            if !found.contains(&c) {
                found.push(c);
            }
        }
    }
    found
}

/// Check task (or thread) `pid` whose `/proc` directory is `proc`, of a
/// tree whose root task is in namespaces `root_ns`; its cgroups (`None`
/// for a zombie, or a task gone meanwhile: the seize finds it gone too).
pub fn check_task(
    pid: i32,
    proc: &ProcDir,
    ours: &Ours,
    root_ns: &NsIds,
    rules: Rules,
) -> Result<Option<Vec<CgroupLine>>, DumpError> {
    let gone = |e: &crate::proc::ProcError| e.is_gone();
    match proc.ns_ids() {
        Ok(ns) => {
            super::pidns::check(pid, proc, &ns, ours.tree_pid)?;
            let allowed = super::pidns::allowed(&ours.ns, ours.tree_pid);
            namespaces::check_in_tree(pid, &ns, &allowed, root_ns)?
        }
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(collect_err(pid, "namespaces")(e)),
    }
    // A zombie runs no more and is restored as a zombie: its cgroups (the
    // kernel shows the root ones once it has exited) and its label do not
    // matter.
    if proc.stat().is_ok_and(|st| st.state == b'Z') {
        return Ok(None);
    }
    let lines = match proc.cgroup() {
        Ok(l) => l,
        Err(e) if gone(&e) => return Ok(None),
        Err(source) => return Err(CgroupError::Proc { pid, source }.into()),
    };
    if rules.ignore_cgroups
        && rules.report
        && let Some((hierarchy, theirs, criu)) = cgroups::difference(&lines, &ours.cgroups)
    {
        pr_info!(
            "Cgroups of task {pid} are not dumped (--manage-cgroups=ignore): it is in \
             {theirs} of {hierarchy}, criu in {criu}; the restore puts it into the \
             restoring criu's cgroups"
        );
    }
    if rules.refuse_frozen {
        cgroups::check_frozen(pid, &lines, &ours.mounts)?;
    }
    match proc.lsm_label(ours.lsm) {
        Ok(label) if label != ours.label => Err(DumpError::Lsm {
            pid,
            lsm: ours.lsm.name(),
            label: label.unwrap_or_default(),
            ours: ours.label.clone().unwrap_or_default(),
        }),
        Ok(_) => Ok(Some(lines)),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(collect_err(pid, "LSM label")(e)),
    }
}

/// [`check_task`] for a seized process and each of its threads; the
/// process's cgroups (a thread elsewhere is refused, unless cgroups are
/// ignored).
pub fn check_seized(
    proc: &ProcDir,
    ours: &Ours,
    root_ns: &NsIds,
    rules: Rules,
) -> Result<Option<Vec<CgroupLine>>, DumpError> {
    let pid = proc.pid();
    let lines = check_task(pid, proc, ours, root_ns, rules)?;
    let quiet = Rules {
        report: false,
        ..rules
    };
    for tid in proc.threads().map_err(collect_err(pid, "threads"))? {
        if tid == pid {
            continue;
        }
        let thread = match proc.task(tid) {
            Ok(t) => check_task(tid, &t, ours, root_ns, quiet)?,
            Err(e) if e.is_gone() => None,
            Err(e) => return Err(collect_err(pid, "thread directory")(e)),
        };
        if let (Some(task), Some(thread), false) = (&lines, &thread, rules.ignore_cgroups) {
            crate::cgroups::collect::check_thread(pid, tid, task, thread)?;
        }
    }
    Ok(lines)
}
