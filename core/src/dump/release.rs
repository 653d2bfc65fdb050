//! The end of a dump: every task killed, or let go (running or stopped).

use super::{DumpError, infect_err, tree};
use crate::opts::FinalState;
use crate::pr_info;

/// The end of a dump: kill every task, or let them all go on (running or
/// stopped), each on its tracer thread. Zombies are left to their parents.
/// A frozen `--freeze-cgroup` cgroup is frozen again first (unless the
/// tasks are killed), so they go back to frozen the moment they are let go.
pub(super) fn finish(mut tree: tree::Tree, final_state: FinalState) -> Result<(), DumpError> {
    tree.before_release(final_state == FinalState::Dead);
    let pending: Vec<_> = std::mem::take(&mut tree.tasks)
        .into_iter()
        .map(|t| {
            tree.workers
                .submit(t.owner, move || finish_task(t, final_state))
        })
        .collect();
    // Every task gets its turn, whatever happened to the others.
    let mut result = Ok(());
    for p in pending {
        let done = p.wait();
        if result.is_ok() {
            result = done;
        }
    }
    result?;
    match final_state {
        FinalState::Dead => pr_info!("Dumping finished successfully"),
        FinalState::Alive => pr_info!("Dumping finished successfully (task left running)"),
        FinalState::Stopped => pr_info!("Dumping finished successfully (task left stopped)"),
    }
    Ok(())
}

fn finish_task(t: tree::TreeTask, final_state: FinalState) -> Result<(), DumpError> {
    let tree::TaskKind::Alive { task, threads } = t.kind else {
        return Ok(());
    };
    match final_state {
        FinalState::Dead => {
            threads
                .into_iter()
                .for_each(crate::infect::SeizedThread::forget);
            // Not waited for: the task frees its memory on its own time, and
            // its tracer thread ends with the dump, handing it back to its
            // parent (CRIU does not wait either).
            (*task)
                .kill_no_wait()
                .map_err(infect_err("killing the dumped task"))
        }
        FinalState::Alive => threads
            .into_iter()
            .try_for_each(crate::infect::SeizedThread::release)
            .map_err(infect_err("releasing a thread"))
            .and((*task).release().map_err(infect_err("releasing the task"))),
        FinalState::Stopped => threads
            .into_iter()
            .try_for_each(crate::infect::SeizedThread::release)
            .map_err(infect_err("releasing a thread"))
            .and(
                (*task)
                    .release_stopped()
                    .map_err(infect_err("releasing the task stopped")),
            ),
    }
}
