//! `criu dump` of a process tree (`-t ROOT` and every descendant, see
//! [`tree`]): seize every task, collect each from /proc and ptrace (one
//! file table for the whole tree: fds of different tasks sharing an open
//! file get one id, found with kcmp), dump shared memory once per object,
//! then infect, gather from inside with the parasite daemon and cure each
//! task in turn, write CRIU's images, then kill every task or
//! (`--leave-running`) let them all run on unchanged.
//!
//! Whatever step fails, for whichever task, every task is left running as
//! it was: the infect handles undo their changes when dropped, and images
//! are only the last step before the final kill. Fault injection for
//! tests: the environment variable `CRIU_DUMP_FAULT=<step>` makes the named
//! step fail (see [`FAULT_STEPS`]); with `CRIU_DUMP_FAULT_TASK=<n>` a
//! per-task step fails only in the tree's n-th task.
//!
//! Task i of the tree (pstree order, the root 0) has kernel-object ids
//! i + 1 (vm, files, fs, sighand) and its pages in `pages-<i+1>.img`;
//! shmem objects' pages follow. A zombie has a `pstree.img` entry and a
//! `core-PID.img` with task_state 2 and its wait status, nothing else.
//!
//! Images written (all with CRIU's framing; per live task unless said):
//! - `inventory.img`: img_version 2, fdinfo_per_id, ns_per_id, root_ids
//!   (the dumping tool's own ids, as CRIU writes them: vm/files/fs/sighand
//!   = 1, never a dumped task's; pid 1, net 2, ipc 3, uts 4, time 5, mnt 6,
//!   user 7, cgroup 8 — no namespace images: the task shares ours, or is
//!   refused, see [`namespaces`]), lsmtype (the active LSM; a task's label
//!   is criu's or refused, and goes to `creds.lsm_profile`),
//!   network_lock_method 0, dump_criu_run_id.
//! - `pstree.img`: pid, ppid 0, pgid, sid (from inside), threads [pid].
//! - `ids-PID.img`: the task's kobj ids, numbered per task (its index in
//!   the tree + 2: 1 is the tool's), except `files_id`/`fs_id` of a child sharing its
//!   parent's fd table/fs struct (`CLONE_FILES`/`CLONE_FS`, found with
//!   kcmp): those of the topmost task sharing it.
//! - `core-PID.img`: mtype, thread_info (gpregs after the syscall-restart
//!   fix-up, fpregs + xsave components present in XCR0, GDT TLS,
//!   clear_tid_addr), tc (task_state 1 alive / 3 stopped with stop_signo,
//!   personality, flags, blk_sigset, comm, itimers + POSIX timers, 16
//!   rlimits, signals_s, 62 sigactions (signals 1..=64 without KILL and
//!   STOP), loginuid, oom_score_adj, child_subreaper,
//!   membarrier_registration_mask), thread_core (futex_rla, sched
//!   nice/policy (with SCHED_RESET_ON_FORK)/prio, sas, pdeath_sig,
//!   signals_p, creds (ambient set included), comm, rseq_entry).
//!   Refused (see [`task_state`]): SCHED_DEADLINE, a timer slack other
//!   than ours, PR_THP_DISABLE_EXCEPT_ADVISED, a session leader's
//!   controlling terminal that is not a dumped pty, a traced task, an
//!   exit signal other than SIGCHLD, a CPU affinity, I/O priority,
//!   coredump_filter, machine-check kill policy or TSC setting (x86) of
//!   its own.
//! - `mm-PID.img`: mm boundaries from stat, brk from inside, auxv,
//!   exe_file_id, every VMA (file mappings: `shmid` = files.img id),
//!   dumpable, thp_disabled.
//! - `pagemap-PID.img`: `pagemap_head{pages_id: 1}`, then runs
//!   `{vaddr, nr_pages, flags}` in address order, flags PE_PRESENT, plus
//!   PE_LAZY for anonymous private memory; their pages follow each other in
//!   `pages-1.img`. Holes are absent. The vDSO is dumped whole, vvar never.
//!   With `--track-mem --prev-images-dir`, pages not written since the
//!   parent images were made and held there are `PE_PARENT` entries with
//!   no pages here, and `parent` links to the parent (see [`iterative`]).
//!   With `--page-server` these (and the shmem objects' pagemaps) go to
//!   the page server instead (see `to_server`), which writes them.
//! - shared anonymous memory and memfd mappings: per shmem object
//!   `pagemap-shmem-<inode>.img` + `pages-<2..>.img` (see [`crate::files::shmem`]); memfd
//!   mappings also a MEMFD entry in `files.img` (`vma.shmid` = its id) and
//!   a `memfd.img` inode entry.
//! - `fs-PID.img` (cwd_id, root_id, umask), `fdinfo-<files_id>.img` (fd,
//!   id, FD_CLOEXEC; once per fd table), `files.img` (REG entries: exe, mapped files, fds, cwd,
//!   root; path, flags without O_CLOEXEC, pos, size, mode; EVENTFD,
//!   EVENTPOLL, SIGNALFD, TIMERFD and INOTIFY entries, see
//!   [`crate::files`]).
//! - unlinked files (fds and mappings): `remap-fpath.img` (reg id → ghost
//!   id, GHOST) and `ghost-file-<id>.img` (entry + contents).
//! - `filelocks.img` with `--file-locks` (without it a held lock is
//!   refused with CRIU's message).
//! - pipes, FIFOs and unix sockets: PIPE/FIFO/UNIXSK entries in `files.img`
//!   and their unread data in `pipes-data.img`, `fifo-data.img` and
//!   `sk-queues.img` (see [`crate::files`]).

pub mod cgroups;
mod collect;
pub mod core_img;
mod error;
pub mod files;
pub mod freezer;
mod gather;
pub mod iterative;
pub mod namespaces;
mod netns;
pub mod parasite;
pub mod pidns;
pub mod preflight;
mod proc_part;
pub mod regs;
mod release;
mod seccomp;
mod sysv;
mod task_state;
mod to_server;
pub mod tree;
pub mod vpids;
mod workers;
mod write;

use crate::files::shmem;
use crate::hooks::{Action, Hooks};
use crate::mem::{self, PagePolicy};
use crate::opts::{CgroupMode, CommonOpts, DumpOpts, FinalState};
use crate::proc::ProcDir;
use crate::{pr_debug, pr_err, pr_info, pr_warn};
use vpids::VPids;

use collect::refuse_unsupported_vmas;
pub use error::{CollectError, DumpError};
use error::{collect_err, fault, infect_err, task_fault};

pub use write::Collected;

/// Steps `CRIU_DUMP_FAULT` can make fail.
/// One after each stage of a dump, in order: seize, collect from /proc,
/// shmem objects, infect, each parasite command, page transfer, stopping
/// the parasite, cure, image write. The dump tests run every one.
pub const FAULT_STEPS: &[&str] = &[
    "seized",
    "collected",
    "shmem",
    "infected",
    "daemon",
    "misc",
    "thread",
    "sigacts",
    "itimers",
    "posix-timers",
    "mprotect",
    "pages",
    "mprotect-undo",
    "parasite-fini",
    "cured",
    "images",
    // After the tree's cgroups are read (numbered last: the others keep
    // their numbers).
    "cgroups",
    // Last so that the numbers of the others stay: it comes after
    // "shmem" in a dump.
    "namespaces",
    "seccomp",
    // Last likewise: where the caller's network-lock hook of a root in its
    // own net namespace runs (a failed dump then runs network-unlock).
    "network-lock",
];

/// Dump the tree rooted at `opts.tree` into `common.images_dir`, running
/// `hooks` at `pre-dump` (before any task is touched) and `post-dump`
/// (with the images written, before the tasks are killed or let go: if it
/// fails, the dump fails and the tasks run on).
pub fn dump(common: &CommonOpts, opts: &DumpOpts, hooks: &mut Hooks) -> Result<(), DumpError> {
    let mut net_locked = false;
    let r = run(common, opts, hooks, false, &mut net_locked);
    // As CRIU: a root's own net namespace locked by the caller
    // (`network-lock`) is unlocked if the tree runs on, here or after a
    // failure; a killed tree's stays locked for the restore to unlock.
    if net_locked && (r.is_err() || opts.final_state == FinalState::Alive) {
        hooks
            .run(Action::NetworkUnlock, None)
            .unwrap_or_else(|e| pr_err!("{e}"));
    }
    r
}

/// `criu pre-dump`: one round of an iterative dump (see [`iterative`]).
/// The tree is seized, collected and infected as for a dump, but only
/// its memory is saved (`pagemap-PID.img` and `pages-N.img` of each task,
/// with `inventory.img`: what a later round names as its parent), each
/// task gets a fresh dirty tracker, and the tree runs on. The `pre-dump`
/// hook runs before it.
pub fn pre_dump(common: &CommonOpts, opts: &DumpOpts, hooks: &mut Hooks) -> Result<(), DumpError> {
    run(common, opts, hooks, true, &mut false)
}

fn run(
    common: &CommonOpts,
    opts: &DumpOpts,
    hooks: &mut Hooks,
    pre: bool,
    net_locked: &mut bool,
) -> Result<(), DumpError> {
    let pid = opts.tree.ok_or(DumpError::NoTree)?;
    let what = if pre { "Pre-dumping" } else { "Dumping" };
    pr_info!("{what} task {pid} into {}", common.images_dir.display());
    let (ours, rules) = before_seize(common, opts, pid)?;
    let mut iter = iterative::prepare(common, opts, pre)?;
    hooks.run(Action::PreDump, None)?;
    let ps = to_server::connect(common)?;
    if ps.is_some() && iter.parent.is_some() {
        // The server would need the PE_PARENT runs too: not sent yet.
        return Err(DumpError::Parent {
            dir: common.images_dir.join(crate::mem::parent::PARENT_LINK),
            reason: "--page-server with --prev-images-dir is not supported yet".into(),
        });
    }

    if ours.tree_pid.is_some() && ps.is_some() {
        // The server's images are named by the tasks' PIDs, which this
        // path does not translate yet.
        return Err(DumpError::PidNsUnsupported("--page-server"));
    }

    let t_start = std::time::Instant::now();
    let seize_opts = seize_bound(common);
    // Every task of the tree stopped before anything is collected (with
    // `--freeze-cgroup`, the cgroup frozen and its threads attached first,
    // and those outside the tree held); if anything fails from here on,
    // dropping `tree` lets them all go.
    let mut tree = tree::seize(pid, seize_opts, opts.freeze_cgroup.as_deref())?;
    let t_frozen = std::time::Instant::now();
    fault("seized")?;
    pr_debug!("Seized {} tasks", tree.tasks.len());
    let (sharing, own_ns, membership) = check_seized(common, &tree, &ours, rules)?;
    // The root's own net namespace: how it is taken, its sockets listed
    // from inside it, and (as CRIU) the caller's network-lock hook.
    let net_mode = match own_ns.net {
        true => Some(netns::mode(common, opts, pid)?),
        false => None,
    };
    let _diag = netns::diag_in_root(own_ns, pid)?;
    if own_ns.net && !pre {
        *net_locked = true;
        hooks.run(Action::NetworkLock, None)?;
    }
    let run_id = write::run_id(pid);
    // Its connections are locked with the whole namespace, as CRIU does
    // (dropped before `tree`: unlocked before the tree runs again).
    let ns_lock = match (&net_mode, pre, common.tcp_established) {
        (Some(mode), false, true) => Some(netns::NsLock::take(common, pid, &run_id, mode)?),
        _ => None,
    };
    fault("network-lock")?;
    let threads: Vec<(i32, Vec<i32>)> = tree
        .tasks
        .iter()
        .filter(|t| !t.is_zombie())
        .map(|t| (t.pid, t.thread_ids()))
        .collect();
    sysv::refuse_sem_undo(pid, own_ns, &threads)?;
    // Cgroups are recorded by the final dump (a pre-dump saves memory).
    let cg_sets = if pre || common.manage_cgroups == CgroupMode::Ignore {
        let root = &tree.tasks[0];
        if !pre
            && root
                .proc
                .ns_ids()
                .is_ok_and(|ids| namespaces::own_cgroup(&ids, &ours.ns))
        {
            pr_warn!(
                "Task {} has its own cgroup namespace, which is not dumped \
                 (--manage-cgroups=ignore): it is restored in criu's",
                root.pid
            );
        }
        crate::cgroups::collect::Sets::default()
    } else {
        // The root's hierarchies: recorded whether or not criu sees them.
        let names: Vec<String> = membership
            .first()
            .map(|(_, lines)| lines.iter().map(|l| l.controllers.join(",")).collect())
            .unwrap_or_default();
        let hs = crate::cgroups::with_private(&ours.hierarchies, names.iter().map(String::as_str));
        crate::cgroups::collect::build(
            &ours.cgroups,
            &membership,
            &hs,
            &common.cgroup_dump_controllers,
            &cgns_roots(&tree, &ours, &membership)?,
        )?
    };
    fault("cgroups")?;
    // The root's own mount namespace: its mounts, checked against what a
    // restore can make again, before anything else is read.
    let mounts = if own_ns.mnt && !pre {
        // `--external mnt[PATH]:KEY`, and `--ext-mount-map PATH:KEY` (RPC
        // `ext_mnt`) as CRIU reads it at dump.
        let mut ext = crate::ns::mnt::collect::externals(&common.external);
        ext.extend(
            common
                .ext_mounts
                .iter()
                .map(|m| crate::ns::mnt::collect::External {
                    mountpoint: m.key.clone(),
                    key: m.val.clone(),
                }),
        );
        let auto = common
            .auto_ext_mounts
            .then_some(crate::ns::mnt::collect::AutoExt {
                sharing: common.enable_external_sharing,
                masters: common.enable_external_masters,
            });
        Some(crate::ns::mnt::collect::collect(
            pid,
            &ext,
            &common.enable_fs,
            auto,
        )?)
    } else {
        None
    };
    // The PIDs the images hold: those the tasks have in their namespace.
    let vpids = pidns::collect(&tree, ours.tree_pid)?;
    // Every round names a task's pagemap by this PID (a pre-dump's as
    // the dump's), and finds its parent's by it.
    iter.vpids = vpids.clone();

    // Collect from outside, every task, with one file table.
    let (mut files, fd_opts) = collect::file_table(
        common,
        opts.orphan_pts_master,
        &tree,
        &run_id,
        ns_lock.is_some(),
    )?;
    let mut collected = collect::collect_all(&tree, &sharing, &mut files, fd_opts, opts, &ours)?;
    sysv::check_attached(
        pid,
        own_ns,
        collected.iter().flatten().map(|c| (c.pid, &c.vmas[..])),
    )?;
    // Unix socket peers, once every fd of every task is known.
    crate::files::finish_dump(&mut files, &fd_opts)?;
    if own_ns.net {
        netns::renumber_sockets(&mut files, own_ns.numbers().net);
    }
    task_state::refuse_lost_ctty(&tree, &files)?;
    pidns::translate_files(&mut files, &vpids)?;
    match &mounts {
        Some(m) => {
            refuse_outside_mounts(&mut files, m)?;
            crate::files::inotify::name_in_mount_ns(
                &mut files.entries,
                m.pid,
                &m.tree.mounts,
                fd_opts.force_irmap,
            )
            .map_err(|(id, source)| DumpError::Inotify { id, source })?;
        }
        // As CRIU writes them: a file's mount only where the tree has a
        // mount namespace of its own (CRIU 4.1.1 cannot open a linked
        // remap whose file names a mount of its own namespace).
        None => {
            for r in files.entries.iter_mut().filter_map(|e| e.reg.as_mut()) {
                r.mnt_id = None;
            }
        }
    }
    fault("collected")?;
    // Shared memory is saved whole by the final dump (not tracked).
    let (shpages_scanned, shpages_written, next_pages_id) = if pre {
        (0, 0, 0)
    } else {
        dump_shmem(common, &tree, &collected, &files, ps.as_ref())?
    };
    fault("shmem")?;
    // The root's own UTS and IPC namespaces, read from inside while the
    // tree is frozen (a pre-dump saves memory only).
    if let Some(m) = &mounts {
        m.write(
            &crate::images::ImageDir::new(&common.images_dir),
            own_ns.numbers().mnt,
        )?;
    }
    if !pre {
        crate::ns::dump(&common.images_dir, pid, own_ns, next_pages_id).map_err(|e| {
            DumpError::Namespace(namespaces::NsError::Dump {
                pid,
                reason: e.to_string(),
            })
        })?;
        if let Some(mode) = net_mode {
            netns::dump(common, mode, pid, own_ns, ns_lock.as_ref())?;
        }
    }
    fault("namespaces")?;

    gather::gather_all(&mut tree, &mut collected, common, &iter, ps.clone())?;
    fault("cured")?;
    // A pre-dump writes its images once the tree runs again.
    let mut collected = if pre {
        collected
    } else {
        let belongs = Belonging {
            cg_sets: &cg_sets,
            own_ns,
            vpids: &vpids,
        };
        write_images(common, &tree, collected, &files, &ours, &run_id, belongs)?
    };
    to_server::finish(ps)?;
    fault("images")?;
    if !pre {
        hooks.run(Action::PostDump, Some(pid))?;
    }

    let mut stats = write::Stats {
        freezing: t_frozen - t_start,
        shpages_scanned,
        shpages_written,
        ..write::Stats::default()
    };
    add_stats(&mut stats, &collected, common.lazy_pages);
    let final_state = if pre {
        FinalState::Alive
    } else {
        opts.final_state
    };
    let dead = final_state == FinalState::Dead;
    files.kinds.before_release(dead);
    release::finish(tree, final_state, ours.tree_pid.is_some())?;
    files.kinds.after_release(dead)?;
    if let Some(l) = ns_lock {
        l.finish(dead)?;
    }
    // `--link-remap`'s links stay for the restore only when the tree is
    // gone (CRIU removes them when it runs on, as after a failure).
    if dead {
        files.ghosts.keep_links();
    }
    stats.frozen = t_frozen.elapsed();
    if pre {
        stats.pages_written += write_deferred(&mut collected)?;
        write_pre_images(common, &collected, &vpids, &run_id, opts.pre_dump_mode)?;
    }
    // Stats go to the work dir (-W), like the log.
    let work = common.work_dir().to_path_buf();
    write::write_stats(&work, &stats).map_err(|source| DumpError::Images { dir: work, source })?;
    if common.display_stats {
        write::display_stats(&stats);
    }
    if common.auto_dedup && iter.parent.is_some() {
        let page = crate::proc::page_size() as u64;
        let freed = crate::images::dedup::dedup_dir(&common.images_dir, page).map_err(|e| {
            DumpError::Parent {
                dir: common.images_dir.join(crate::mem::parent::PARENT_LINK),
                reason: e.to_string(),
            }
        })?;
        pr_info!("--auto-dedup: {freed} bytes of the parent images given back");
    }
    Ok(())
}

/// Before any task is touched: the images directory, `--cpu-cap`, the
/// root's owner and session, and what a restore could not bring back of
/// any task of the tree. The tool's own namespaces, cgroups and LSM
/// label, and the rules the checks ran with.
fn before_seize(
    common: &CommonOpts,
    opts: &DumpOpts,
    pid: i32,
) -> Result<(preflight::Ours, preflight::Rules), DumpError> {
    // Before touching the task: a directory others can write to is refused.
    crate::images::writer::check_private_dir(&common.images_dir)?;
    // --cpu-cap with its image bit: this CPU's capabilities, for restore
    // to check (CRIU writes cpuinfo.img only then).
    crate::regs::cpuinfo::dump_if_asked(&common.images_dir, common.cpu_cap)?;
    let proc = ProcDir::open(pid).map_err(collect_err(pid, "/proc"))?;
    check_owner(common, &proc)?;
    // A task in someone else's session can only come back in the session
    // of whoever restores it: CRIU wants that said with --shell-job, and
    // so refuses before touching the task.
    if !common.shell_job {
        let sid = proc.stat().map_err(collect_err(pid, "stat"))?.session;
        if sid != pid {
            return Err(DumpError::NotSessionLeader { pid, sid });
        }
    }

    let mut ours = preflight::Ours::read()?;
    ours.tree_pid = pidns::detect(pid, &proc, &ours.ns, pidns::our_levels)?;
    let rules = preflight::Rules {
        ignore_cgroups: common.manage_cgroups == CgroupMode::Ignore,
        refuse_frozen: opts.freeze_cgroup.is_none(),
        report: false,
    };
    // Before any task is touched: what a restore could not bring back.
    let root_ns = proc.ns_ids().map_err(collect_err(pid, "namespaces"))?;
    for p in preflight::walk(pid) {
        let Ok(task) = ProcDir::open(p) else {
            continue;
        };
        preflight::check_task(p, &task, &ours, &root_ns, rules)?;
    }
    Ok((ours, rules))
}

/// Each live task's cgroups, the root first.
type Membership = Vec<(i32, Vec<crate::proc::cgroup::CgroupLine>)>;

/// The seized tree's checks (sessions, exit signals, owners,
/// the preflight's again now that nothing moves), whose fd table and
/// fs struct each task uses, which namespaces of the root's are its own
/// and dumped, and each task's cgroups.
fn check_seized(
    common: &CommonOpts,
    tree: &tree::Tree,
    ours: &preflight::Ours,
    rules: preflight::Rules,
) -> Result<(tree::Sharing, crate::ns::RootNs, Membership), DumpError> {
    tree::check_sessions(tree, common.shell_job)?;
    task_state::refuse_exit_signals(tree)?;
    let sharing = tree::shared_tables(tree)?;
    let seized_rules = preflight::Rules {
        refuse_frozen: false,
        report: true,
        ..rules
    };
    let root = &tree.tasks[0];
    let root_ns = root
        .proc
        .ns_ids()
        .map_err(collect_err(root.pid, "namespaces"))?;
    let mut membership = Vec::with_capacity(tree.tasks.len());
    for t in tree.tasks.iter().filter(|t| !t.is_zombie()) {
        check_owner(common, &t.proc)?;
        if let Some(lines) = preflight::check_seized(&t.proc, ours, &root_ns, seized_rules)? {
            membership.push((t.pid, lines));
        }
    }
    let own = namespaces::root_own(&root_ns, &ours.ns);
    if let (true, Some(ino), Some(o)) = (own.user, root_ns.user, ours.ns.user) {
        namespaces::check_user_parent(root.pid, ino, o)?;
        if !own.pid {
            user_without_pid_ns(tree)?;
        }
    }
    Ok((sharing, own, membership))
}

/// A tree in its own user namespace but criu's pid namespace: one task
/// with one thread only (see [`namespaces::NsError::UserNoPid`]).
fn user_without_pid_ns(tree: &tree::Tree) -> Result<(), DumpError> {
    let root = tree.tasks[0].pid;
    let what = if tree.tasks.len() > 1 {
        format!("with {} tasks", tree.tasks.len())
    } else {
        let threads = tree.tasks[0].proc.threads().map(|t| t.len()).unwrap_or(1);
        if threads <= 1 {
            return Ok(());
        }
        format!("with {threads} threads")
    };
    Err(namespaces::NsError::UserNoPid { pid: root, what }.into())
}

/// The roots of the root task's own cgroup namespace, as the tool sees
/// them (empty if the root is in criu's; see
/// [`crate::cgroups::collect::cgns_roots`]).
fn cgns_roots(
    tree: &tree::Tree,
    ours: &preflight::Ours,
    membership: &[(i32, Vec<crate::proc::cgroup::CgroupLine>)],
) -> Result<std::collections::HashMap<String, String>, DumpError> {
    use crate::cgroups::collect;
    let root = &tree.tasks[0];
    let ids = root
        .proc
        .ns_ids()
        .map_err(collect_err(root.pid, "namespaces"))?;
    let Some((_, outside)) = membership.first().filter(|(pid, _)| *pid == root.pid) else {
        return Ok(Default::default());
    };
    if !namespaces::own_cgroup(&ids, &ours.ns) {
        return Ok(Default::default());
    }
    let inside = collect::inside_view(root.pid)?;
    let roots = collect::cgns_roots(root.pid, outside, &inside)?;
    for (name, at) in &roots {
        pr_info!(
            "cgroups: task {} has its own cgroup namespace, rooted at {at} of {}",
            root.pid,
            collect::hierarchy_label(name)
        );
    }
    Ok(roots)
}

/// Shared memory objects, read while every task is frozen: one per
/// inode over the whole tree (mappings inherited across fork share it).
/// The pages scanned and written, and the first `pages-N.img` id left.
fn dump_shmem(
    common: &CommonOpts,
    tree: &tree::Tree,
    collected: &[Option<Collected>],
    files: &crate::files::table::FileTable,
    ps: Option<&to_server::Shared>,
) -> Result<(u64, u64, u64), DumpError> {
    let pid = tree.tasks[0].pid;
    let shm_err = |e: shmem::ShmemError| DumpError::Memory {
        pid,
        reason: e.to_string(),
    };
    let page_size = crate::proc::page_size() as u64;
    let all_vmas = collected.iter().flatten().flat_map(|c| c.vmas.iter());
    let objects = shmem::objects(all_vmas, &files.memfd_objects).map_err(shm_err)?;
    let first_shmem_pages = tree.tasks.len() as u64 + 1;
    let (mut shpages_scanned, mut shpages_written) = (0, 0);
    for (i, obj) in objects.iter().enumerate() {
        let pages_id = first_shmem_pages + i as u64;
        let dest = match ps {
            Some(s) => shmem::ShmemDest::Server(to_server::lock(s)),
            None => shmem::ShmemDest::Dir {
                dir: &common.images_dir,
                pages_id,
            },
        };
        let d = shmem::dump_object(dest, obj, page_size).map_err(shm_err)?;
        shpages_scanned += obj.size.div_ceil(page_size);
        shpages_written += d.pages;
        pr_debug!(
            "Dumped {} pages of shmem object {} ({} bytes)",
            d.pages,
            d.shmid,
            obj.size
        );
    }
    Ok((
        shpages_scanned,
        shpages_written,
        first_shmem_pages + objects.len() as u64,
    ))
}

/// What the tasks of a tree belong to beside themselves.
struct Belonging<'a> {
    cg_sets: &'a crate::cgroups::collect::Sets,
    /// The root's own namespaces.
    own_ns: crate::ns::RootNs,
    /// The PIDs in the tree's pid namespace.
    vpids: &'a pidns::VPids,
}

/// Every image of the tree: zombies' cores, each live task's own images,
/// then the tree's (pstree, files, inventory, ...).
fn write_images(
    common: &CommonOpts,
    tree: &tree::Tree,
    mut collected: Vec<Option<Collected>>,
    files: &crate::files::table::FileTable,
    ours: &preflight::Ours,
    run_id: &str,
    belongs: Belonging<'_>,
) -> Result<Vec<Option<Collected>>, DumpError> {
    let Belonging {
        cg_sets,
        own_ns,
        vpids,
    } = belongs;
    let entries = pidns::tree_entries(tree, vpids)?;
    pidns::translate_collected(&mut collected, vpids);
    let img_err = |source| DumpError::Images {
        dir: common.images_dir.clone(),
        source,
    };
    for t in &tree.tasks {
        if let tree::TaskKind::Zombie { exit_code } = &t.kind {
            write::write_zombie_core(&common.images_dir, vpids.of(t.pid), *exit_code, &t.stat)
                .map_err(img_err)?;
        }
    }
    // Where each thread's filters go in seccomp.img, which its core names.
    let mut collected = collected;
    let seccomp = seccomp::image(
        collected
            .iter_mut()
            .flatten()
            .flat_map(|c| c.seccomp.iter_mut()),
    );
    // Each live task's images on its tracer thread (its thread registers
    // are read there), all at once.
    let numbers = own_ns.numbers();
    let time_ns = tree_time_ns(tree, own_ns, numbers)?;
    let collected = write_all(
        tree,
        collected,
        &common.images_dir,
        (cg_sets, numbers),
        vpids,
    )
    .map_err(img_err)?;
    let wide = write::TreeWide {
        lsm: ours.lsm,
        network_lock: common.network_lock,
        run_id,
        time_ns,
        seccomp: &seccomp,
    };
    write::write_tree_images(&common.images_dir, &entries, files, wide).map_err(img_err)?;
    if let Some(cg) = &cg_sets.image {
        crate::images::typed::ImageDir::new(&common.images_dir)
            .write_one(crate::images::kinds::Kind::Cgroup, 0, cg)
            .map_err(img_err)?;
    }
    Ok(collected)
}

/// The tree's time namespace: the root's own (its offsets read now, the
/// tree frozen) where it is not criu's, else the tool's.
fn tree_time_ns(
    tree: &tree::Tree,
    own: crate::ns::RootNs,
    numbers: crate::ns::NsNumbers,
) -> Result<write::TimeNs, DumpError> {
    let Some(root) = tree.tasks.first().filter(|_| own.time) else {
        return Ok(write::TimeNs::tool());
    };
    let raw = root
        .proc
        .read_small("timens_offsets")
        .map_err(collect_err(root.pid, "timens_offsets"))?;
    let text = String::from_utf8_lossy(&raw);
    let t = write::TimeNs::of_root(&text, numbers.time).ok_or_else(|| {
        collect_err(root.pid, "timens_offsets")(std::io::Error::other(format!(
            "unexpected contents {text:?}"
        )))
    })?;
    pr_info!(
        "task {} is in a time namespace of its own (offsets monotonic {:?}, boottime {:?}): dumped",
        root.pid,
        t.monotonic,
        t.boottime
    );
    Ok(t)
}

/// A pre-dump's pages, held while the tree was frozen, into the images
/// (the tree runs again); each task's pagemap completed. The pages
/// written.
fn write_deferred(collected: &mut [Option<Collected>]) -> Result<u64, DumpError> {
    let mut total = 0;
    for c in collected.iter_mut().flatten() {
        let Some(d) = c.deferred.take() else {
            continue;
        };
        let w = d.write(c.page_size).map_err(|e| DumpError::Memory {
            pid: c.pid,
            reason: e.to_string(),
        })?;
        pr_info!("Wrote {} pages of task {} (it runs on)", w.pages, c.pid);
        c.pagemap.extend(w.entries);
        c.pagemap.sort_by_key(|e| e.vaddr);
        c.nr_pages += w.pages;
        total += w.pages;
    }
    Ok(total)
}

/// The images of a pre-dump: each live task's pagemap (named by its PID
/// in the tree's namespace, as the dump's), and the inventory.
fn write_pre_images(
    common: &CommonOpts,
    collected: &[Option<Collected>],
    vpids: &VPids,
    run_id: &str,
    mode: crate::opts::PreDumpMode,
) -> Result<(), DumpError> {
    let img_err = |source| DumpError::Images {
        dir: common.images_dir.clone(),
        source,
    };
    let img = crate::images::ImageDir::new(&common.images_dir);
    for c in collected.iter().flatten() {
        write::write_pagemap(&img, c, vpids.of(c.pid) as u64).map_err(img_err)?;
    }
    write::write_pre_inventory(&common.images_dir, run_id, iterative::inventory_mode(mode))
        .map_err(img_err)
}

/// Each task's numbers added to the dump's.
fn add_stats(stats: &mut write::Stats, collected: &[Option<Collected>], lazy_pages: bool) {
    for c in collected.iter().flatten() {
        stats.memdump += c.stats.memdump;
        stats.memwrite += c.stats.memwrite;
        stats.pages_written += c.stats.pages_written;
        // CRIU counts pages as lazy only in a --lazy-pages dump (its
        // pagemap marks them PE_LAZY all the same).
        if lazy_pages {
            stats.pages_lazy += c.stats.pages_lazy;
        }
        stats.page_pipes += c.stats.page_pipes;
        stats.page_pipe_bufs += c.stats.page_pipe_bufs;
        stats.pages_scanned += c
            .vmas
            .iter()
            .filter(|v| mem::page_policy(v, u64::MAX) != PagePolicy::Skip)
            .map(|v| (v.vma.end - v.vma.start) / c.page_size)
            .sum::<u64>();
    }
}

/// The bound of the seize (`--timeout` from now; 0, which CRIU takes as
/// "no alarm", is taken as the default, since every wait has a bound).
/// With `--freeze-cgroup` the cgroup is frozen and its threads attached
/// within the same bound, by the tree's tracer thread ([`tree::seize`]).
fn seize_bound(common: &CommonOpts) -> crate::infect::SeizeOpts<'static> {
    let secs = match common.timeout {
        0 => crate::opts::DEFAULT_TIMEOUT,
        t => t,
    };
    pr_debug!("Freezing the tree: every task must stop within {secs} s (--timeout)");
    crate::infect::SeizeOpts::within(std::time::Duration::from_secs(u64::from(secs)))
}

/// Without root, only our own user's processes (the kernel would refuse
/// to seize others anyway; say so plainly, before trying).
fn check_owner(common: &CommonOpts, proc: &ProcDir) -> Result<(), DumpError> {
    if !common.unprivileged {
        return Ok(());
    }
    let pid = proc.pid();
    let ours = rustix::process::geteuid().as_raw();
    let st = proc.status().map_err(collect_err(pid, "status"))?;
    if let Some(&owner) = st.uid.iter().find(|&&u| u != ours) {
        return Err(DumpError::NotOurs { pid, owner, ours });
    }
    Ok(())
}

/// Every live task's own images, each written on its tracer thread (the
/// arch part of its core reads registers through ptrace). The collected
/// state comes back in order; the first error, in tree order, is returned.
fn write_all(
    tree: &tree::Tree,
    collected: Vec<Option<Collected>>,
    dir: &std::path::Path,
    (cg_sets, ns): (&crate::cgroups::collect::Sets, crate::ns::NsNumbers),
    vpids: &pidns::VPids,
) -> Result<Vec<Option<Collected>>, crate::images::ImageError> {
    let pending: Vec<_> = tree
        .tasks
        .iter()
        .zip(collected)
        .map(|(t, c)| {
            let dir = dir.to_path_buf();
            let belongs = write::Belongs {
                cg_set: cg_sets.of(t.pid),
                ns,
            };
            let vpids = vpids.clone();
            tree.workers.submit(t.owner, move || {
                let r = c
                    .as_ref()
                    .map_or(Ok(()), |c| write::write_images(&dir, c, belongs, &vpids));
                (c, r)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(pending.len());
    let mut first_err = None;
    for p in pending {
        let (c, r) = p.wait();
        out.push(c);
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(out), Err)
}

/// A file of the tree on a mount outside the root's own mount namespace
/// (an fd inherited from outside the container) is opened again by its
/// path in the restored one only if that path leads to the same file in
/// the namespace (a copy of criu's has the same files on other mounts):
/// it is then recorded on the namespace's mount there. Otherwise it is
/// refused by name, as CRIU does.
fn refuse_outside_mounts(
    files: &mut crate::files::table::FileTable,
    mounts: &crate::ns::mnt::collect::Mounts,
) -> Result<(), DumpError> {
    use rustix::fs::{AtFlags, StatxFlags};
    let root = format!("/proc/{}/root", mounts.pid);
    let inodes = std::mem::take(&mut files.reg_inodes);
    for e in &mut files.entries {
        let Some(r) = e.reg.as_mut() else { continue };
        let Some(id) = r.mnt_id.filter(|&id| id >= 0 && !mounts.has(id)) else {
            continue;
        };
        let inside = format!("{root}{}", r.name);
        let same = rustix::fs::statx(
            rustix::fs::CWD,
            inside.as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::INO | StatxFlags::MNT_ID,
        )
        .ok()
        .filter(|st| {
            let dev = rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor);
            inodes.get(&r.id) == Some(&(dev, st.stx_ino)) && mounts.has(st.stx_mnt_id as i32)
        });
        match same {
            Some(st) => r.mnt_id = Some(st.stx_mnt_id as i32),
            None => {
                return Err(DumpError::Mounts(crate::ns::mnt::MntError::Restore(
                    format!(
                        "file {} (file id {}) of the tree is on mount {id}, which is not in \
                     the mount namespace of task {}, and its path there leads elsewhere: \
                     it could not be opened again",
                        r.name, r.id, mounts.pid
                    ),
                )));
            }
        }
    }
    Ok(())
}
