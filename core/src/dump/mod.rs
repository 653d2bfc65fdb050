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
//! - shared anonymous memory and memfd mappings: per shmem object
//!   `pagemap-shmem-<inode>.img` + `pages-<2..>.img` (see [`shmem`]); memfd
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
pub mod core_img;
pub mod files;
pub mod freezer;
pub mod namespaces;
pub mod parasite;
pub mod preflight;
mod proc_part;
pub mod regs;
pub mod shmem;
mod task_state;
pub mod tree;
mod workers;
mod write;

use std::path::PathBuf;

use crate::blob::PARASITE;
use crate::hooks::{Action, Hooks};
use crate::infect::{InfectError, Parasite, Seized, TaskState};
use crate::mem::{self, PagePolicy};
use crate::opts::{CgroupMode, CommonOpts, DumpOpts, FinalState};
use crate::proc::ProcDir;
use crate::proc::vma_kind::status::{VMA_ANON_SHARED, VMA_AREA_MEMFD};
use crate::sys::ptrace::{self, SigInfo};
use crate::{pr_debug, pr_info};

pub use write::Collected;
use write::FIRST_TASK_OBJ_ID;

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
];

/// `O_RDWR`: a memfd mapping's access mode when map_files gives none.
const O_RDWR: u32 = linux_raw_sys::general::O_RDWR;

/// Size of the parasite's argument area: room for many iovecs per batch.
const ARGS_LEN: usize = 64 * 1024;

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
        "thread {tid} of task {pid} runs under seccomp ({mode}), which cannot be \
         dumped yet (restoring it without its filters would lift its sandbox)"
    )]
    Seccomp {
        pid: i32,
        tid: i32,
        mode: &'static str,
    },
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
    #[error("collecting {what} of task {pid}: {reason}")]
    Collect {
        pid: i32,
        what: &'static str,
        reason: String,
    },
    #[error("task {pid}: {what}; refusing to dump what a restore cannot bring back")]
    Refused { pid: i32, what: String },
    #[error("dumping memory of task {pid}: {reason}")]
    Memory { pid: i32, reason: String },
    #[error(transparent)]
    Files(#[from] crate::files::table::FilesError),
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
    Cgroup(#[from] cgroups::CgroupError),
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

/// Seccomp state is not dumped yet: a task under seccomp (any of its
/// threads) is refused before it is touched, rather than brought back
/// without its sandbox.
fn refuse_seccomp(proc: &ProcDir, pid: i32) -> Result<(), DumpError> {
    for tid in proc.threads().map_err(collect_err(pid, "threads"))? {
        let st = ProcDir::open(tid)
            .and_then(|p| p.status())
            .map_err(collect_err(pid, "thread status"))?;
        let mode = match st.seccomp {
            None | Some(0) => continue,
            Some(1) => "strict mode",
            Some(_) => "filter mode",
        };
        return Err(DumpError::Seccomp { pid, tid, mode });
    }
    Ok(())
}

/// Fails at `step` when `CRIU_FAULT` holds its number
/// ([`crate::fault::DUMP_BASE`] + its index in [`FAULT_STEPS`]) or
/// `CRIU_DUMP_FAULT` its name.
fn fault(step: &'static str) -> Result<(), DumpError> {
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
fn task_fault(step: &'static str, index: usize) -> Result<(), DumpError> {
    match std::env::var("CRIU_DUMP_FAULT_TASK") {
        Ok(n) if n.parse::<usize>().ok() != Some(index) => Ok(()),
        _ => fault(step),
    }
}

fn infect_err(step: &'static str) -> impl FnOnce(InfectError) -> DumpError {
    move |source| DumpError::Infect { step, source }
}

fn collect_err<E: std::fmt::Display>(pid: i32, what: &'static str) -> impl FnOnce(E) -> DumpError {
    move |e| DumpError::Collect {
        pid,
        what,
        reason: e.to_string(),
    }
}

/// Dump the tree rooted at `opts.tree` into `common.images_dir`, running
/// `hooks` at `pre-dump` (before any task is touched) and `post-dump`
/// (with the images written, before the tasks are killed or let go: if it
/// fails, the dump fails and the tasks run on).
pub fn dump(common: &CommonOpts, opts: &DumpOpts, hooks: &mut Hooks) -> Result<(), DumpError> {
    let pid = opts.tree.ok_or(DumpError::NoTree)?;
    pr_info!("Dumping task {pid} into {}", common.images_dir.display());
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

    let ours = preflight::Ours::read()?;
    let rules = preflight::Rules {
        ignore_cgroups: common.manage_cgroups == CgroupMode::Ignore,
        refuse_frozen: opts.freeze_cgroup.is_none(),
        report: false,
    };
    // Before any task is touched: what a restore could not bring back.
    for p in preflight::walk(pid) {
        let Ok(task) = ProcDir::open(p) else {
            continue;
        };
        preflight::check_task(p, &task, &ours, rules)?;
        refuse_seccomp(&task, p)?;
    }
    hooks.run(Action::PreDump, None)?;

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
    tree::check_sessions(&tree, common.shell_job)?;
    task_state::refuse_exit_signals(&tree)?;
    let sharing = tree::shared_tables(&tree)?;
    let seized_rules = preflight::Rules {
        refuse_frozen: false,
        report: true,
        ..rules
    };
    for t in tree.tasks.iter().filter(|t| !t.is_zombie()) {
        check_owner(common, &t.proc)?;
        refuse_seccomp(&t.proc, t.pid)?;
        preflight::check_seized(&t.proc, &ours, seized_rules)?;
    }

    // Collect from outside, every task, with one file table.
    let run_id = write::run_id(pid);
    let mut files = crate::files::table::FileTable::default();
    // The network lock of the TCP connections: each is added to it before
    // it goes into repair mode (see `files::inet`). A killed tree leaves
    // the lock for the restore to take away; a failed dump or a tree that
    // runs on takes it away once the connections are out of repair mode.
    if common.tcp_established {
        files.kinds.inet.lock = Some(crate::netlock::Lock::take(
            common.network_lock,
            &run_id,
            &[],
        )?);
    }
    files.tree_pids = tree.tasks.iter().map(|t| t.pid).collect();
    files.tree_pids.sort_unstable();
    let fd_opts = files::FdOpts {
        ghost: crate::files::ghost::GhostOpts {
            limit: common.ghost_limit,
            fiemap: common.ghost_fiemap,
        },
        file_locks: common.file_locks,
        shell_job: common.shell_job,
        ext_unix_sk: common.ext_unix_sk,
        skip_in_flight: common.tcp_skip_in_flight,
        tcp_established: common.tcp_established,
        tcp_close: common.tcp_close,
    };
    // Written into the inventory even with no connection (CRIU's).
    files.kinds.inet.tcp_close = common.tcp_close;
    let mut collected: Vec<Option<Collected>> = Vec::with_capacity(tree.tasks.len());
    // What /proc alone tells, for every task at once (several threads).
    let procs: Vec<Option<&ProcDir>> = tree
        .tasks
        .iter()
        .map(|t| (!t.is_zombie()).then_some(&t.proc))
        .collect();
    let shmem_dev = files
        .shmem_dev()
        .map_err(collect_err(pid, "shmem device"))?;
    let parts = proc_part::read_all(&procs, opts, shmem_dev)?;
    for (i, (t, part)) in tree.tasks.iter().zip(parts).enumerate() {
        let (tree::TaskKind::Alive { task, .. }, Some(part)) = (&t.kind, part) else {
            collected.push(None);
            continue;
        };
        // A task using its parent's fd table has the same fds: they are
        // dumped once, with the table's owner (the topmost task sharing it).
        let own_fds = sharing.files[i] == i;
        let mut c = collect_outside(&t.proc, task, part, &mut files, fd_opts, own_fds)?;
        // Id 1 of each kind is the dumping tool's own task (`root_ids`):
        // the tree's objects are numbered from 2, as CRIU numbers them.
        c.obj_id = i as u32 + FIRST_TASK_OBJ_ID;
        c.files_id = sharing.files[i] as u32 + FIRST_TASK_OBJ_ID;
        c.fs_id = sharing.fs[i] as u32 + FIRST_TASK_OBJ_ID;
        c.pages_id = i as u64 + 1;
        c.lsm_profile = ours
            .label
            .as_deref()
            .and_then(|l| crate::proc::lsm::profile_for_image(ours.lsm, l));
        pr_debug!(
            "Collected {} VMAs, {} page runs, {} fds of task {}",
            c.vmas.len(),
            c.ranges.len(),
            c.fdinfo.len(),
            t.pid
        );
        collected.push(Some(c));
    }
    // Unix socket peers, once every fd of every task is known.
    crate::files::finish_dump(&mut files, &fd_opts)?;
    task_state::refuse_lost_ctty(&tree, &files)?;
    fault("collected")?;

    // Shared memory objects, read while every task is frozen: one per
    // inode over the whole tree (mappings inherited across fork share it).
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
        let d =
            shmem::dump_object(&common.images_dir, obj, pages_id, page_size).map_err(shm_err)?;
        shpages_scanned += obj.size.div_ceil(page_size);
        shpages_written += d.pages;
        pr_debug!(
            "Dumped {} pages of shmem object {} ({} bytes)",
            d.pages,
            d.shmid,
            obj.size
        );
    }
    fault("shmem")?;

    gather_all(&mut tree, &mut collected, common)?;
    fault("cured")?;

    let entries: Vec<write::TreeEntry> = tree
        .tasks
        .iter()
        .map(|t| write::TreeEntry {
            pid: t.pid,
            ppid: t.ppid,
            pgid: t.pgid,
            sid: t.sid,
            threads: t.thread_ids(),
        })
        .collect();
    let img_err = |source| DumpError::Images {
        dir: common.images_dir.clone(),
        source,
    };
    for t in &tree.tasks {
        if let tree::TaskKind::Zombie { exit_code } = &t.kind {
            write::write_zombie_core(&common.images_dir, t.pid, *exit_code, &t.stat)
                .map_err(img_err)?;
        }
    }
    // Each live task's images on its tracer thread (its thread registers
    // are read there), all at once.
    collected = write_all(&tree, collected, &common.images_dir).map_err(img_err)?;
    write::write_tree_images(
        &common.images_dir,
        &entries,
        &files,
        ours.lsm,
        common.network_lock,
        &run_id,
    )
    .map_err(img_err)?;
    fault("images")?;
    hooks.run(Action::PostDump, Some(pid))?;

    let mut stats = write::Stats {
        freezing: t_frozen - t_start,
        shpages_scanned,
        shpages_written,
        ..write::Stats::default()
    };
    for c in collected.iter().flatten() {
        stats.memdump += c.stats.memdump;
        stats.memwrite += c.stats.memwrite;
        stats.pages_written += c.stats.pages_written;
        // CRIU counts pages as lazy only in a --lazy-pages dump (its
        // pagemap marks them PE_LAZY all the same).
        if common.lazy_pages {
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
    // The connections leave repair mode before the tasks run on (their
    // reads and writes would fail in it); a killed tree's stay in it, so
    // that closing them sends nothing.
    if opts.final_state != FinalState::Dead {
        files.kinds.inet.repair.resume_all();
    }
    finish(tree, opts.final_state)?;
    files.kinds.inet.repair.dismiss();
    match files.kinds.inet.lock.take() {
        Some(l) if opts.final_state == FinalState::Dead => l.keep(),
        Some(l) => l.release()?,
        None => {}
    }
    stats.frozen = t_frozen.elapsed();
    // Stats go to the work dir (-W), like the log.
    let work = common.work_dir().to_path_buf();
    write::write_stats(&work, &stats).map_err(|source| DumpError::Images { dir: work, source })?;
    if common.display_stats {
        write::display_stats(&stats);
    }
    Ok(())
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

/// The end of a dump: kill every task, or let them all go on (running or
/// stopped), each on its tracer thread. Zombies are left to their parents.
/// A frozen `--freeze-cgroup` cgroup is frozen again first (unless the
/// tasks are killed), so they go back to frozen the moment they are let go.
fn finish(mut tree: tree::Tree, final_state: FinalState) -> Result<(), DumpError> {
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

/// Infect, gather inside and cure every live task, each on its tracer
/// thread, all at once. Every task comes back to the tree (to be released
/// with it) before the first error, in tree order, is returned.
fn gather_all(
    tree: &mut tree::Tree,
    collected: &mut Vec<Option<Collected>>,
    common: &CommonOpts,
) -> Result<(), DumpError> {
    let common = std::sync::Arc::new(common.clone());
    let pending: Vec<_> = std::mem::take(&mut tree.tasks)
        .into_iter()
        .zip(std::mem::take(collected))
        .enumerate()
        .map(|(i, (mut t, mut c))| {
            let common = common.clone();
            tree.workers.submit(t.owner, move || {
                let r = match (&mut t.kind, c.as_mut()) {
                    (tree::TaskKind::Alive { task, threads }, Some(c)) => {
                        collect_traced(&t.proc, task, threads, c)
                            .and_then(|()| gather_inside(&common, task, threads, c, i))
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

/// Every live task's own images, each written on its tracer thread (the
/// arch part of its core reads registers through ptrace). The collected
/// state comes back in order; the first error, in tree order, is returned.
fn write_all(
    tree: &tree::Tree,
    collected: Vec<Option<Collected>>,
    dir: &std::path::Path,
) -> Result<Vec<Option<Collected>>, crate::images::ImageError> {
    let pending: Vec<_> = tree
        .tasks
        .iter()
        .zip(collected)
        .map(|(t, c)| {
            let dir = dir.to_path_buf();
            tree.workers.submit(t.owner, move || {
                let r = c.as_ref().map_or(Ok(()), |c| write::write_images(&dir, c));
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

/// What only the tracer can read of a seized task (pending signals, its
/// robust list and rseq area, the same of its other threads), on its
/// tracer thread.
fn collect_traced(
    proc: &ProcDir,
    task: &Seized,
    threads: &[crate::infect::SeizedThread],
    c: &mut Collected,
) -> Result<(), DumpError> {
    let pid = proc.pid();
    let tid = rustix::process::Pid::from_raw(task.pid()).ok_or(DumpError::NoTree)?;
    c.signals_s = peek_signals(tid, true).map_err(collect_err(pid, "shared pending signals"))?;
    c.signals_p = peek_signals(tid, false).map_err(collect_err(pid, "pending signals"))?;
    c.robust = ptrace::get_robust_list(tid).map_err(collect_err(pid, "robust futex list"))?;
    c.rseq = ptrace::rseq_config_for_dump(tid).map_err(collect_err(pid, "rseq"))?;
    c.threads = threads
        .iter()
        .map(|th| collect_thread(proc, th))
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// Infect one seized task, gather what only it can tell (misc, threads,
/// signal actions, timers) and its pages, then cure it. `index` is its
/// place in the tree, for `CRIU_DUMP_FAULT_TASK`.
fn gather_inside(
    common: &CommonOpts,
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

    let changes = unreadable(c);
    parasite::mprotect(&mut daemon, &changes).map_err(infect_err("parasite MPROTECT_VMAS"))?;
    fault("mprotect")?;
    let pages_path = common
        .images_dir
        .join(crate::images::Kind::Pages.file_name(c.pages_id));
    let pages_file =
        crate::images::writer::create_raw(&pages_path).map_err(|source| DumpError::Images {
            dir: common.images_dir.clone(),
            source,
        })?;
    let t_mem = std::time::Instant::now();
    let dumped = mem::dump_pages(
        &mut daemon,
        &c.ranges,
        &pages_file,
        &pages_path.display().to_string(),
        c.page_size,
    )
    .map_err(|e| DumpError::Memory {
        pid,
        reason: e.to_string(),
    })?;
    fault("pages")?;
    parasite::mprotect_undo(&mut daemon).map_err(infect_err("parasite MPROTECT_VMAS undo"))?;
    fault("mprotect-undo")?;
    pr_info!("Dumped {} pages of task {pid}", dumped.pages);
    c.stats = write::Stats {
        memdump: t_mem.elapsed(),
        memwrite: dumped.write_time,
        pages_written: dumped.pages,
        pages_lazy: dumped.lazy_pages,
        page_pipes: dumped.pipes,
        page_pipe_bufs: dumped.iovs,
        ..write::Stats::default()
    };
    c.pagemap = dumped.entries;
    c.nr_pages = dumped.pages;

    daemon.fini().map_err(infect_err("stopping the parasite"))?;
    fault("parasite-fini")?;
    parasite.cure().map_err(infect_err("curing the task"))?;
    Ok(())
}

/// Everything read from outside the task while it is seized.
fn collect_outside(
    proc: &ProcDir,
    task: &Seized,
    part: proc_part::ProcPart,
    files: &mut crate::files::table::FileTable,
    fd_opts: files::FdOpts,
    own_fds: bool,
) -> Result<Collected, DumpError> {
    let pid = proc.pid();
    let proc_part::ProcPart {
        stat,
        vmas,
        guards,
        ranges,
        auxv,
        rlimits,
        proc_timers,
        loginuid,
        oom_score_adj,
        personality,
        sched,
        exe,
        cwd,
        root,
        ns,
    } = part;
    let page_size = crate::proc::page_size() as u64;
    let exe_link = PathBuf::from(format!("/proc/{pid}/exe"));
    let exe_file_id = crate::files::reg::add_mapped(files, &exe_link, &exe, fd_opts)?;
    let mut vma_file_ids = Vec::with_capacity(vmas.len());
    for v in &vmas {
        let id = match &v.file {
            // Shared anonymous memory: `shmid` is its inode, no file object.
            _ if v.entry.is(VMA_ANON_SHARED) => None,
            crate::proc::map_files::MapFile::File { fd, id } if v.entry.is(VMA_AREA_MEMFD) => {
                let link = PathBuf::from(format!(
                    "/proc/{pid}/map_files/{:x}-{:x}",
                    v.vma.start, v.vma.end
                ));
                let target =
                    std::fs::read_link(&link).map_err(collect_err(pid, "map_files link"))?;
                Some(match files.memfd_mapping(id.ino) {
                    Some(fid) => fid,
                    None => {
                        let inode = crate::files::memfd::memfd_inode(fd, id.ino, &target).map_err(
                            |(call, e)| DumpError::Memory {
                                pid,
                                reason: format!("memfd {} ({call}): {e}", id.ino),
                            },
                        )?;
                        // The mapping's access mode, as CRIU records it.
                        let flags = v.entry.fdflags.unwrap_or(O_RDWR);
                        files.add_memfd_mapping(id.ino, flags, inode)
                    }
                })
            }
            crate::proc::map_files::MapFile::File { id, .. } => {
                // Mapped files are one object per inode: one already known
                // (a library every task maps) needs no link read nor stat.
                match files.mapped_file(id.dev, id.ino) {
                    Some(fid) => Some(fid),
                    None => {
                        let path = PathBuf::from(format!(
                            "/proc/{pid}/map_files/{:x}-{:x}",
                            v.vma.start, v.vma.end
                        ));
                        let target = std::fs::read_link(&path)
                            .map_err(collect_err(pid, "map_files link"))?;
                        let fid = crate::files::reg::add_mapped(files, &path, &target, fd_opts)?;
                        files.note_mapped_file(id.dev, id.ino, fid);
                        Some(fid)
                    }
                }
            }
            _ => None,
        };
        vma_file_ids.push(id);
    }
    let fdinfo = if own_fds {
        files::collect_fds(proc, files, fd_opts)?
    } else {
        Vec::new()
    };
    // A packet socket's ring: refused with its socket above when the task
    // holds it (by name), here when it only maps it.
    use crate::proc::vma_kind::status::VMA_AREA_SOCKET;
    if let Some(v) = vmas.iter().find(|v| v.entry.is(VMA_AREA_SOCKET)) {
        let e = &v.entry;
        return Err(DumpError::Memory {
            pid,
            reason: format!(
                "the ring of a packet socket (socket:[{}]) mapped at {:#x}-{:#x} cannot be \
                 dumped yet",
                e.shmid, e.start, e.end
            ),
        });
    }
    let cwd_id = crate::files::reg::add_path(files, &cwd, false)?;
    let root_id = crate::files::reg::add_path(files, &root, false)?;

    Ok(Collected {
        pid,
        stat,
        vmas,
        vma_file_ids,
        guards,
        ranges,
        page_size,
        auxv,
        rlimits,
        proc_timers,
        // Read through ptrace, on the task's tracer thread (collect_traced).
        signals_s: Vec::new(),
        signals_p: Vec::new(),
        robust: (0, 0),
        rseq: None,
        loginuid,
        oom_score_adj,
        personality,
        sched,
        obj_id: 1,
        files_id: 1,
        fs_id: 1,
        pages_id: 1,
        fdinfo,
        exe_file_id,
        cwd_id,
        root_id,
        ns,
        stop_signo: match task.state() {
            TaskState::Stopped(sig) => Some(sig as u32),
            TaskState::Running => None,
        },
        gp: *task.regs(),
        ext: task.ext_regs().clone(),
        sigmask: task.sigmask(),
        misc: None,
        thread: None,
        sigacts: None,
        itimers: None,
        posix: Vec::new(),
        pagemap: Vec::new(),
        nr_pages: 0,
        stats: write::Stats::default(),
        threads: Vec::new(),
        lsm_profile: None,
    })
}

/// What is read from outside about a non-leader thread.
fn collect_thread(
    proc: &ProcDir,
    th: &crate::infect::SeizedThread,
) -> Result<write::ThreadData, DumpError> {
    let pid = proc.pid();
    let tid = th.tid();
    let t = rustix::process::Pid::from_raw(tid).ok_or(DumpError::NoTree)?;
    let sched = task_state::sched_of(pid, t)?;
    task_state::refuse_thread_attrs(pid, t)?;
    Ok(write::ThreadData {
        tid,
        gp: *th.regs(),
        ext: th.ext_regs().clone(),
        sigmask: th.sigmask(),
        signals_p: peek_signals(t, false).map_err(collect_err(pid, "thread signals"))?,
        robust: ptrace::get_robust_list(t).map_err(collect_err(pid, "thread robust list"))?,
        rseq: ptrace::rseq_config_for_dump(t).map_err(collect_err(pid, "thread rseq"))?,
        sched,
        args: None,
    })
}

/// Memory whose contents live outside the task's pages and is not dumped
/// yet (SysV shm, AIO rings) would come back empty, and hugetlb mappings
/// would come back as ordinary pages or not at all: refuse them rather
/// than lose data.
fn refuse_unsupported_vmas(
    pid: i32,
    vmas: &[crate::proc::vmas::CollectedVma],
) -> Result<(), DumpError> {
    use crate::proc::vma_kind::status::{VMA_AREA_AIORING, VMA_AREA_SYSVIPC};
    for v in vmas {
        let e = &v.entry;
        let what = if e.is(VMA_AREA_SYSVIPC) {
            "SysV shared memory".to_string()
        } else if e.is(VMA_AREA_AIORING) {
            "an AIO ring".to_string()
        } else if e.flags & linux_raw_sys::general::MAP_HUGETLB != 0 {
            // Anonymous (`/anon_hugepage`) or a hugetlbfs file: restore
            // would map ordinary pages, or fail to map the file.
            let name = v.vma.path().map(|p| p.display().to_string());
            format!(
                "a hugetlb mapping ({})",
                name.as_deref().unwrap_or("anonymous")
            )
        } else {
            continue;
        };
        return Err(DumpError::Memory {
            pid,
            reason: format!("{what} at {:#x}-{:#x} cannot be dumped yet", e.start, e.end),
        });
    }
    Ok(())
}

/// Pending signals of the thread (`shared == false`) or the process, as
/// raw siginfos.
fn peek_signals(
    tid: rustix::process::Pid,
    shared: bool,
) -> Result<Vec<SigInfo>, rustix::io::Errno> {
    let mut out = Vec::new();
    let mut buf = [SigInfo::zeroed(); 32];
    loop {
        let n = ptrace::peek_siginfo(tid, out.len() as u64, shared, &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
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
