//! Waiting for and watching the tasks of a restore: every task's status
//! word until all are done (or the first failure, named with its task,
//! stage and image), then each held at the end of its restore; and on
//! failure, every task created so far killed.

use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions};

use super::Live;
use super::PidMap;
use super::fill::Filler;
use crate::blob::bootstrap::TreePage;
use crate::blob::restorer_abi as abi;
use crate::hooks::{Action, Hooks};
use crate::opts::Opts;
use crate::restore::images::TreeTaskImages;
use crate::restore::{
    RESTORE_TIMEOUT, RestoreError, finish, stage_name, stage_source, stop_signal,
};

/// Waits until every task is restored, then holds every thread at the end
/// of its restore with the restorer gone (the hooks of both moments run).
/// The forked tree's root (our child) and the PIDs the tool reaches the
/// tasks by.
pub(super) struct Forked<'p> {
    pub root: Pid,
    pub pids: &'p mut PidMap,
    /// The root has its own net namespace: the caller's network-unlock
    /// hook runs after post-restore, as CRIU's.
    pub net_unlock: bool,
}

pub(super) fn wait_and_hold(
    live: &[Live<'_>],
    forked: Forked<'_>,
    opts: &Opts,
    page_words: Option<&TreePage>,
    tasks: &[TreeTaskImages],
    hooks: &mut Hooks,
    held: &mut finish::Held,
) -> Result<(), RestoreError> {
    let Forked {
        root: child,
        pids,
        net_unlock,
    } = forked;
    let raw_pid = Some(child.as_raw_nonzero().get());
    wait_all(live, child, pids, opts.restore.sibling, page_words, tasks)?;
    crate::pr_debug!("every task restored; holding them at the end of their restore");
    // Every task and thread by the PID the tool reaches it by.
    let outer = live
        .iter()
        .map(|l| outer_ids(l, pids))
        .collect::<Result<Vec<_>, _>>()?;
    fault_pid_map()?;
    for (l, (pid, tids)) in live.iter().zip(&outer) {
        crate::restore::regsets::write(*pid, tids, l.t)?;
    }
    hooks.run(Action::PostRestore, raw_pid)?;
    if net_unlock {
        hooks.run(Action::NetworkUnlock, None)?;
    }
    // Every thread is held before any is told to go, so none runs its own
    // code before its region is gone.
    for (l, (pid, tids)) in live.iter().zip(&outer) {
        let seccomp = l.t.seccomp.iter().any(|s| s.mode != 0);
        held.seize_task(*pid, tids, l.base, l.len, stop_signal(l.t), seccomp)?;
    }
    for l in live {
        l.region.resume(l.args_off);
    }
    crate::pr_debug!("every thread held; running them to their rt_sigreturn");
    if let Err(e) = held.run_to_sigreturn() {
        // A thread failing after the go (its seccomp state, or what comes
        // after it) published why before its exit_group.
        if let Some((l, st)) = live
            .iter()
            .map(|l| (l, l.region.status(l.args_off)))
            .find(|(_, st)| st.state == abi::STATE_FAILED)
        {
            return Err(failure(l, &st, tasks));
        }
        return Err(e);
    }
    held.unmap_regions()?;
    crate::pr_debug!("every restorer region unmapped");
    // As CRIU: with every task stopped at the end of its restore, the
    // restorer gone, right before they are let go.
    hooks.run(Action::PreResume, raw_pid)?;
    Ok(())
}

/// `CRIU_RESTORE_FAULT=pid-map`: every task is found, none is held yet.
fn fault_pid_map() -> Result<(), RestoreError> {
    use crate::restore::{FAULT_ENV, FAULT_PID_MAP, FAULT_STAGES};
    let index = FAULT_STAGES
        .iter()
        .position(|s| *s == FAULT_PID_MAP)
        .unwrap_or(FAULT_STAGES.len());
    if crate::fault::at(crate::fault::RESTORE_BASE, index, FAULT_PID_MAP, FAULT_ENV) {
        return Err(RestoreError::Unsupported(format!(
            "fault injected at {FAULT_PID_MAP}"
        )));
    }
    Ok(())
}

/// Task `l`'s PID and its other threads' TIDs as the tool reaches them
/// (outside the tree's pid namespace, if it has one).
fn outer_ids(l: &Live<'_>, pids: &mut PidMap) -> Result<(i32, Vec<u32>), RestoreError> {
    let mut outer = |id: u32| {
        pids.outer(id as i32).ok_or_else(|| {
            RestoreError::Died(format!(
                "task {}: thread {id} is not in the tree's pid namespace any more",
                l.pid
            ))
        })
    };
    let pid = outer(l.pid as u32)?;
    let tids =
        l.t.threads
            .iter()
            .map(|t| outer(t.0).map(|o| o as u32))
            .collect::<Result<Vec<_>, _>>()?;
    Ok((pid, tids))
}

/// Leave nothing behind: kill every task that says it exists, in rounds
/// (a task forked by a parent killed in the same round announces itself
/// a moment later), then reap the root. Zombies and helpers die with their
/// parents (helpers have a parent-death signal). A tree in its own pid
/// namespace dies with its init, the root: only the tasks whose outer
/// PIDs are known are killed one by one (never an image's PID, which is
/// some other process out here).
pub(super) fn kill_created(live: &[Live<'_>], root: Pid, pids: &PidMap, held: &mut finish::Held) {
    let mut killed = vec![false; live.len()];
    for _round in 0..4 {
        for (l, k) in live.iter().zip(killed.iter_mut()) {
            if !*k
                && l.region.status(l.args_off).created != 0
                && let Some(p) = pids.known(l.pid).and_then(Pid::from_raw)
            {
                let _ = rustix::process::kill_process(p, Signal::KILL);
                *k = true;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = rustix::process::kill_process(root, Signal::KILL);
    // Threads traced by us are reported to us, not their parents, and a
    // process cannot be reaped before they are: collect those first.
    held.reap_killed();
    let _ = rustix::process::waitpid(Some(root), WaitOptions::empty());
}

/// Is task `pid` (not our child) gone or a zombie?
/// How task `pid` (not our child) ended, if it did: a zombie's
/// `/proc/PID/stat` still shows its exit code (the last field).
fn ended(pid: i32) -> Option<String> {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Some("gone".into());
    };
    let fields: Vec<&str> = s.rsplit_once(") ")?.1.split_whitespace().collect();
    if !matches!(fields.first(), Some(&"Z" | &"X")) {
        return None;
    }
    // Field 52 of proc_pid_stat(5), the 50th after the name.
    let code = fields.get(49).and_then(|c| c.parse::<u32>().ok());
    Some(match code {
        Some(c) if c & 0x7f != 0 => format!("killed by signal {}", c & 0x7f),
        Some(c) => format!("exited with {}", c >> 8),
        None => "ended".into(),
    })
}

/// Wait until every task is restored (`STATE_DONE`), or report the first
/// failure with the task, stage and image it concerns.
fn wait_all(
    live: &[Live<'_>],
    root: Pid,
    pids: &mut PidMap,
    sibling: bool,
    page: Option<&TreePage>,
    tasks: &[TreeTaskImages],
) -> Result<(), RestoreError> {
    std::thread::scope(|scope| {
        let filler = Filler::start(scope);
        let r = watch(live, root, pids, sibling, page, tasks, &filler);
        filler.stop();
        r
    })
}

/// [`wait_all`]'s loop, handing each task that waits for its pages to
/// `filler`.
fn watch<'a>(
    live: &'a [Live<'_>],
    root: Pid,
    pids: &mut PidMap,
    sibling: bool,
    page: Option<&TreePage>,
    tasks: &[TreeTaskImages],
    filler: &Filler<'a>,
) -> Result<(), RestoreError> {
    let start = Instant::now();
    let mut offered = vec![false; live.len()];
    // Reading every task's /proc stat each round would cost O(tasks) file
    // reads per millisecond: a task that died is looked for less often
    // (its status word says at once when it failed on its own).
    let mut next_check = start;
    loop {
        let check_ended = Instant::now() >= next_check;
        if check_ended {
            next_check = Instant::now() + Duration::from_millis(20);
        }
        let mut all_done = true;
        for (l, offered) in live.iter().zip(offered.iter_mut()) {
            let st = l.region.status(l.args_off);
            match st.state {
                abi::STATE_DONE => continue,
                abi::STATE_FAILED => return Err(failure(l, &st, tasks)),
                abi::STATE_PAGES if !*offered => {
                    *offered = true;
                    // Not found: the filler's answer is that the task
                    // reads its pages itself.
                    filler.offer(l, pids.outer(l.pid).unwrap_or(0), st.uffd);
                    all_done = false;
                }
                _ => all_done = false,
            }
            // Our own child (the root, unless it is our sibling) is
            // watched with waitpid below.
            let outer = match check_ended && st.created != 0 {
                true => pids.outer(l.pid),
                false => None,
            };
            let ours = outer == Some(root.as_raw_nonzero().get()) && !sibling;
            let how = outer.filter(|_| !ours).and_then(ended);
            if let Some(how) = how {
                // It may have published its failure just before ending;
                // or another task did, whose end took this one along (a
                // pid namespace's init takes every task of it): the
                // published failure is the cause.
                let st = l.region.status(l.args_off);
                if st.state == abi::STATE_FAILED {
                    return Err(failure(l, &st, tasks));
                }
                if let Some((o, st)) = live
                    .iter()
                    .map(|o| (o, o.region.status(o.args_off)))
                    .find(|(_, st)| st.state == abi::STATE_FAILED)
                {
                    return Err(failure(o, &st, tasks));
                }
                return Err(RestoreError::Died(format!(
                    "task {} {how} at stage {}",
                    l.pid,
                    stage_name(st.stage)
                )));
            }
        }
        if all_done {
            return Ok(());
        }
        if let Some(pid) = page.and_then(TreePage::failed) {
            return Err(RestoreError::Unsupported(format!(
                "pstree.img: zombie or group helper {pid} could not set its session or group"
            )));
        }
        if let Ok(Some((_, status))) = rustix::process::waitpid(Some(root), WaitOptions::NOHANG) {
            let st = live[0].region.status(live[0].args_off);
            return Err(RestoreError::Died(format!(
                "{status:?} at stage {}",
                stage_name(st.stage)
            )));
        }
        if start.elapsed() > RESTORE_TIMEOUT {
            return Err(RestoreError::Timeout(RESTORE_TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The error for a task's published failure.
fn failure(l: &Live<'_>, st: &abi::RestoreStatus, tasks: &[TreeTaskImages]) -> RestoreError {
    let errno = Errno::from_raw_os_error(st.errno);
    let tids: Vec<u32> = l.t.threads.iter().map(|t| t.0).collect();
    if st.stage == abi::STAGE_SESSION && (FORK_INDEX..FORK_INDEX + 0x1000).contains(&st.index) {
        // A fork of one of its children (tasks, zombies, then helpers).
        let i = (st.index - FORK_INDEX) as usize;
        let kids: Vec<i32> = tasks
            .iter()
            .skip(1)
            .filter(|t| t.pstree().ppid as i32 == l.pid)
            .map(|t| t.pstree().pid as i32)
            .collect();
        let pid = kids.get(i).copied().unwrap_or(0);
        if errno == Errno::EXIST && pid > 0 {
            return RestoreError::PidBusy(pid as u32);
        }
        let what = match pid {
            0 => "a helper task for a process group or session (pgid/sid)".to_string(),
            pid => format!("child {pid}"),
        };
        return RestoreError::Invalid {
            file: "pstree.img".into(),
            what: format!("task {} could not create {what}: clone3: {errno}", l.pid),
        };
    }
    if st.stage == abi::STAGE_THREADS
        && errno == Errno::EXIST
        && let Some(&tid) = tids.get(st.index as usize)
    {
        return RestoreError::PidBusy(tid);
    }
    let thread = st.index.checked_sub(abi::THREAD_INDEX_BASE);
    if let Some(&tid) = thread.and_then(|i| tids.get(i as usize)) {
        return RestoreError::ThreadStage {
            stage: stage_name(st.stage),
            tid,
            errno,
        };
    }
    RestoreError::Stage {
        stage: stage_name(st.stage),
        index: st.index,
        source_image: {
            let src = stage_source(st.stage, l.pid);
            if src.contains(&l.pid.to_string()) {
                src
            } else {
                format!("{src} of task {}", l.pid)
            }
        },
        errno,
    }
}

/// Index base of fork failures in `STAGE_SESSION` (the restorer's
/// `restore/tree.rs`).
const FORK_INDEX: u32 = 0x100;
