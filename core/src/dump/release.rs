//! The end of a dump: every task killed, or let go (running or stopped).

use super::{DumpError, infect_err, tree};
use crate::opts::FinalState;
use crate::pr_info;

/// The end of a dump: kill every task, or let them all go on (running or
/// stopped), each on its tracer thread. Zombies are left to their parents.
/// A frozen `--freeze-cgroup` cgroup is frozen again first (unless the
/// tasks are killed), so they go back to frozen the moment they are let go.
///
/// A killed tree in its own pid namespace (`own_pid_ns`) ends its init
/// last: an init's last thread waits in the kernel until every other task
/// of the namespace is reaped, and those are our tracees until we let
/// them go. So the others are killed first and each fully handed back to
/// its parent (leader reaped too), then the init, which reaps them all.
pub(super) fn finish(
    mut tree: tree::Tree,
    final_state: FinalState,
    own_pid_ns: bool,
) -> Result<(), DumpError> {
    tree.before_release(final_state == FinalState::Dead);
    let mut tasks = std::mem::take(&mut tree.tasks);
    let init_last = own_pid_ns && final_state == FinalState::Dead && !tasks.is_empty();
    let init = init_last.then(|| tasks.remove(0));
    let submit = |tasks: Vec<tree::TreeTask>, wait_leader: bool| -> Vec<_> {
        tasks
            .into_iter()
            .map(|t| {
                tree.workers
                    .submit(t.owner, move || finish_task(t, final_state, wait_leader))
            })
            .collect()
    };
    // Every task gets its turn, whatever happened to the others.
    let mut result = Ok(());
    let mut rounds = vec![submit(tasks, init_last)];
    if let Some(init) = init {
        for p in rounds.pop().into_iter().flatten() {
            let done = p.wait();
            if result.is_ok() {
                result = done;
            }
        }
        rounds.push(submit(vec![init], false));
    }
    for p in rounds.into_iter().flatten() {
        let done = p.wait();
        if result.is_ok() {
            result = done;
        }
    }
    tree.after_release();
    result?;
    match final_state {
        FinalState::Dead => pr_info!("Dumping finished successfully"),
        FinalState::Alive => pr_info!("Dumping finished successfully (task left running)"),
        FinalState::Stopped => pr_info!("Dumping finished successfully (task left stopped)"),
    }
    Ok(())
}

/// `wait_leader`: a killed task's leader is reaped as well (see
/// [`finish`]).
fn finish_task(
    t: tree::TreeTask,
    final_state: FinalState,
    wait_leader: bool,
) -> Result<(), DumpError> {
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
            let pid = t.pid;
            let r = match wait_leader {
                true => (*task).kill(),
                false => (*task).kill_no_wait(),
            }
            .map_err(infect_err("killing the dumped task"));
            crate::pr_debug!("Task {pid} killed (its leader reaped: {wait_leader})");
            r
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
