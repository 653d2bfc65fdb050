//! Gathering from inside: each live task infected with the parasite,
//! what only it can tell read (misc, threads, signal actions, timers),
//! its pages spliced out, then cured, all tasks at once, each on its
//! tracer thread.

use super::collect::collect_traced;
use super::iterative::{Iterative, TrackerAfter};
use super::{Collected, DumpError, infect_err, parasite, task_fault, task_state, tree, write};
use crate::blob::PARASITE;
use crate::infect::{Parasite, Seized};
use crate::mem::{self, PagePolicy};
use crate::opts::CommonOpts;
use crate::{pr_debug, pr_info};

/// Size of the parasite's argument area: room for many iovecs per batch.
const ARGS_LEN: usize = 64 * 1024;

/// Infect, gather inside and cure every live task, each on its tracer
/// thread, all at once. Every task comes back to the tree (to be released
/// with it) before the first error, in tree order, is returned.
pub(super) fn gather_all(
    tree: &mut tree::Tree,
    collected: &mut Vec<Option<Collected>>,
    common: &CommonOpts,
    iter: &Iterative,
    ps: Option<super::to_server::Shared>,
) -> Result<(), DumpError> {
    let common = std::sync::Arc::new(common.clone());
    let iter = std::sync::Arc::new(iter.clone());
    let pending: Vec<_> = std::mem::take(&mut tree.tasks)
        .into_iter()
        .zip(std::mem::take(collected))
        .enumerate()
        .map(|(i, (mut t, mut c))| {
            let common = common.clone();
            let iter = iter.clone();
            let ps = ps.clone();
            tree.workers.submit(t.owner, move || {
                let r = match (&mut t.kind, c.as_mut()) {
                    (tree::TaskKind::Alive { task, threads }, Some(c)) => {
                        collect_traced(&t.proc, task, threads, c).and_then(|()| {
                            gather_inside(&common, &iter, ps.as_ref(), task, threads, c, i)
                        })
                    }
                    _ => Ok(()),
                };
                if r.is_ok() && !t.is_zombie() {
                    pr_debug!("Task {} cured", t.pid);
                }
                (t, c, r)
            })
        })
        .collect();
    let mut first_err = None;
    for p in pending {
        let (t, c, r) = p.wait();
        tree.tasks.push(t);
        collected.push(c);
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Infect one seized task, gather what only it can tell (misc, threads,
/// signal actions, timers) and its pages, then cure it. `index` is its
/// place in the tree, for `CRIU_DUMP_FAULT_TASK`.
fn gather_inside(
    common: &CommonOpts,
    iter: &Iterative,
    ps: Option<&super::to_server::Shared>,
    task: &mut Seized,
    threads: &mut [crate::infect::SeizedThread],
    c: &mut Collected,
    index: usize,
) -> Result<(), DumpError> {
    let pid = c.pid;
    let fault = |step| task_fault(step, index);
    let mut parasite =
        Parasite::infect(task, &PARASITE, ARGS_LEN).map_err(infect_err("infecting the task"))?;
    fault("infected")?;
    let mut daemon = parasite
        .start_daemon()
        .map_err(infect_err("starting the parasite daemon"))?;
    pr_debug!("Parasite daemon running in task {pid}");
    fault("daemon")?;
    let step = infect_err("parasite DUMP_MISC");
    let misc = parasite::misc(&mut daemon).map_err(step)?;
    task_state::refuse_thp_except_advised(pid, &misc)?;
    c.misc = Some(misc);
    fault("misc")?;
    c.thread = Some(parasite::thread(&mut daemon).map_err(infect_err("parasite DUMP_THREAD"))?);
    for (th, data) in threads.iter_mut().zip(c.threads.iter_mut()) {
        data.args = Some(
            parasite::thread_in(&mut daemon, th)
                .map_err(infect_err("parasite DUMP_THREAD in a thread"))?,
        );
    }
    task_state::refuse_timer_slack(c)?;
    task_state::refuse_thread_prctls(c)?;
    fault("thread")?;
    c.sigacts = Some(parasite::sigacts(&mut daemon).map_err(infect_err("parasite DUMP_SIGACTS"))?);
    fault("sigacts")?;
    c.itimers = Some(parasite::itimers(&mut daemon).map_err(infect_err("parasite DUMP_ITIMERS"))?);
    fault("itimers")?;
    let ids: Vec<i32> = c.proc_timers.iter().map(|t| t.id).collect();
    let posix = parasite::posix_timers(&mut daemon, &ids)
        .map_err(infect_err("parasite DUMP_POSIX_TIMERS"))?;
    c.posix = c.proc_timers.iter().cloned().zip(posix).collect();
    fault("posix-timers")?;

    let read_mode = iter.pre == Some(crate::opts::PreDumpMode::Read);
    // Read mode reads readable pages only, without changing protections.
    let changes = if read_mode { Vec::new() } else { unreadable(c) };
    parasite::mprotect(&mut daemon, &changes).map_err(infect_err("parasite MPROTECT_VMAS"))?;
    fault("mprotect")?;
    let t_mem = std::time::Instant::now();
    // Pages not written since the previous round stay in the parent.
    let parent = iter.parent_pages(pid, c.page_size)?;
    let split = mem::parent::split(&c.ranges, parent.as_ref());
    if parent.is_some() {
        let nr = |r: &[(u64, u64)]| r.iter().map(|(s, e)| (e - s) / c.page_size).sum::<u64>();
        pr_info!(
            "Task {pid}: {} pages in the parent images",
            nr(&split.in_parent)
        );
    }
    let mem_err = |e: mem::PageXferError| DumpError::Memory {
        pid,
        reason: e.to_string(),
    };
    // A pre-dump's pages wait in pipes (or in the task, to be read) until
    // the tree runs again.
    let held = match iter.pre {
        Some(crate::opts::PreDumpMode::Read) => Some(mem::deferred::How::Read),
        Some(crate::opts::PreDumpMode::Splice) => {
            mem::deferred::hold_in_pipes(&mut daemon, &split.dump, c.page_size)
                .map_err(mem_err)?
                .map(mem::deferred::How::Pipes)
        }
        None => None,
    };
    let dumped = match (held, ps) {
        (Some(how), _) => {
            let (file, name) = create_pages_file(common, c)?;
            c.deferred = Some(mem::deferred::DeferredPages {
                pid,
                how,
                ranges: split.dump.clone(),
                file,
                name,
            });
            mem::DumpedPages::default()
        }
        (None, Some(s)) => {
            let conn = super::to_server::lock(s);
            let target = crate::page_server::Target::Task(pid as u64);
            let dest = mem::PageDest::Server {
                conn: &conn,
                target,
            };
            c.pages_sent = true;
            mem::dump_pages(&mut daemon, &split.dump, dest, c.page_size).map_err(mem_err)?
        }
        (None, None) => {
            let (file, name) = create_pages_file(common, c)?;
            let dest = mem::PageDest::Image {
                file: &file,
                name: &name,
            };
            mem::dump_pages(&mut daemon, &split.dump, dest, c.page_size).map_err(mem_err)?
        }
    };
    fault("pages")?;
    after_round(&mut daemon, iter.after, c)?;
    parasite::mprotect_undo(&mut daemon).map_err(infect_err("parasite MPROTECT_VMAS undo"))?;
    fault("mprotect-undo")?;
    if c.deferred.is_some() {
        pr_info!("Pages of task {pid} to be written once it runs again");
    } else {
        pr_info!("Dumped {} pages of task {pid}", dumped.pages);
    }
    c.stats = write::Stats {
        memdump: t_mem.elapsed(),
        memwrite: dumped.write_time,
        pages_written: dumped.pages,
        pages_lazy: dumped.lazy_pages,
        page_pipes: dumped.pipes,
        page_pipe_bufs: dumped.iovs,
        ..write::Stats::default()
    };
    c.pagemap = mem::parent::with_parent_entries(dumped.entries, &split.in_parent, c.page_size);
    c.nr_pages = dumped.pages;

    daemon.fini().map_err(infect_err("stopping the parasite"))?;
    fault("parasite-fini")?;
    parasite.cure().map_err(infect_err("curing the task"))?;
    Ok(())
}

/// The task's dirty tracker after this round's pages are out (see
/// [`crate::mem::dirty`]).
fn after_round(
    daemon: &mut crate::infect::Daemon<'_, '_>,
    after: TrackerAfter,
    c: &Collected,
) -> Result<(), DumpError> {
    let pid = c.pid;
    match after {
        TrackerAfter::Track => {
            let fd = mem::dirty::slot(pid).ok_or_else(|| DumpError::Memory {
                pid,
                reason: "no free fd for the memory dirty tracker".into(),
            })?;
            let ranges = mem::dirty::tracked_ranges(&c.vmas, u64::MAX);
            mem::dirty::track(daemon, fd, &ranges)
                .map_err(infect_err("parasite UFFD_WP (memory dirty tracking)"))?;
            pr_debug!(
                "Task {pid}: {} ranges write-protected for dirty tracking (tracker fd {fd})",
                ranges.len()
            );
        }
        TrackerAfter::Stop => {
            if let Some(fd) = mem::dirty::find_tracker(pid) {
                mem::dirty::stop(daemon, fd)
                    .map_err(infect_err("parasite UFFD_WP close (memory dirty tracking)"))?;
                pr_debug!("Task {pid}: dirty tracker (fd {fd}) closed");
            }
        }
        TrackerAfter::Keep => {}
    }
    Ok(())
}

/// Private VMAs whose pages are dumped but which the task cannot read:
/// they get `PROT_READ` while the parasite splices them.
fn unreadable(c: &Collected) -> Vec<parasite::ProtChange> {
    const PROT_READ: u32 = linux_raw_sys::general::PROT_READ;
    c.vmas
        .iter()
        .filter(|v| v.entry.prot & PROT_READ == 0)
        .filter(|v| mem::page_policy(v, u64::MAX) != PagePolicy::Skip)
        .filter(|v| {
            c.ranges
                .iter()
                .any(|r| r.start < v.vma.end && r.end > v.vma.start)
        })
        .map(|v| parasite::ProtChange {
            start: v.vma.start,
            len: v.vma.end - v.vma.start,
            prot: u64::from(v.entry.prot | PROT_READ),
            orig: u64::from(v.entry.prot),
        })
        .collect()
}

/// Creates the task's `pages-N.img`; returns it and its name for messages.
fn create_pages_file(
    common: &CommonOpts,
    c: &Collected,
) -> Result<(std::fs::File, String), DumpError> {
    let pages_path = common
        .images_dir
        .join(crate::images::Kind::Pages.file_name(c.pages_id));
    let file =
        crate::images::writer::create_raw(&pages_path).map_err(|source| DumpError::Images {
            dir: common.images_dir.clone(),
            source,
        })?;
    Ok((file, pages_path.display().to_string()))
}
