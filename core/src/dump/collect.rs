//! Collecting from outside: what /proc and ptrace tell of each seized
//! task (its VMAs and the files they map, its fds into the tree's one
//! file table, cwd, root, exe), what only its tracer can read (pending
//! signals, robust list, rseq, the same of its threads), and the checks
//! that refuse what a restore could not bring back.

use std::path::PathBuf;

use super::write::FIRST_TASK_OBJ_ID;
use super::{
    Collected, DumpError, collect_err, files, preflight, proc_part, task_state, tree, write,
};
use crate::files::table::FileTable;
use crate::infect::{Seized, TaskState};
use crate::opts::{CommonOpts, DumpOpts};
use crate::pr_debug;
use crate::proc::ProcDir;
use crate::proc::vma_kind::status::{VMA_ANON_SHARED, VMA_AREA_MEMFD};
use crate::sys::ptrace::{self, SigInfo};

/// `O_RDWR`: a memfd mapping's access mode when map_files gives none.
const O_RDWR: u32 = linux_raw_sys::general::O_RDWR;

/// What only the tracer can read of a seized task (pending signals, its
/// robust list and rseq area, the same of its other threads), on its
/// tracer thread.
pub(super) fn collect_traced(
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
    let tids: Vec<i32> = std::iter::once(pid)
        .chain(threads.iter().map(|th| th.tid()))
        .collect();
    c.seccomp = super::seccomp::collect(pid, &tids)?;
    super::error::fault("seccomp")?;
    Ok(())
}

/// Everything read from outside the task while it is seized.
pub(super) fn collect_outside(
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
    let vma_file_ids = vma_file_ids(pid, &vmas, files, fd_opts)?;
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
    let cwd_link = PathBuf::from(format!("/proc/{pid}/cwd"));
    let root_link = PathBuf::from(format!("/proc/{pid}/root"));
    let cwd_id = crate::files::reg::add_path(files, &cwd, &cwd_link, false)?;
    let root_id = crate::files::reg::add_path(files, &root, &root_link, false)?;

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
        pages_sent: false,
        nr_pages: 0,
        stats: write::Stats::default(),
        threads: Vec::new(),
        lsm_profile: None,
        seccomp: Vec::new(),
        deferred: None,
    })
}

/// The file object each VMA maps (`None`: none, or shared anonymous
/// memory, whose `shmid` is its inode): memfd mappings and mapped files,
/// each one object per inode over the tree.
fn vma_file_ids(
    pid: i32,
    vmas: &[crate::proc::vmas::CollectedVma],
    files: &mut FileTable,
    fd_opts: files::FdOpts,
) -> Result<Vec<Option<u32>>, DumpError> {
    let mut vma_file_ids = Vec::with_capacity(vmas.len());
    for v in vmas {
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
    Ok(vma_file_ids)
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
/// yet (AIO rings) would come back empty, and hugetlb mappings would come
/// back as ordinary pages or not at all: refuse them rather than lose
/// data. (SysV segments are dumped with the root's IPC namespace and
/// checked with it, see [`super::sysv`].)
pub(super) fn refuse_unsupported_vmas(
    pid: i32,
    vmas: &[crate::proc::vmas::CollectedVma],
) -> Result<(), DumpError> {
    use crate::proc::vma_kind::status::VMA_AREA_AIORING;
    for v in vmas {
        let e = &v.entry;
        let what = if e.is(VMA_AREA_AIORING) {
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

/// The tree's one file table, with the network lock of its TCP
/// connections taken (`--tcp-established`), and the options its fds are
/// dumped with.
pub(super) fn file_table(
    common: &CommonOpts,
    orphan_pts_master: bool,
    tree: &tree::Tree,
    run_id: &str,
) -> Result<(FileTable, files::FdOpts), DumpError> {
    let mut files = FileTable::default();
    // The network lock of the TCP connections: each is added to it before
    // it goes into repair mode (see `files::inet`). A killed tree leaves
    // the lock for the restore to take away; a failed dump or a tree that
    // runs on takes it away once the connections are out of repair mode.
    if common.tcp_established {
        files.kinds.inet.lock = Some(crate::netlock::Lock::take(
            common.network_lock,
            run_id,
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
        orphan_pts_master,
        ext_unix_sk: common.ext_unix_sk,
        skip_in_flight: common.tcp_skip_in_flight,
        tcp_established: common.tcp_established,
        tcp_close: common.tcp_close,
        link_remap: common.link_remap,
        force_irmap: common.force_irmap,
    };
    // Written into the inventory even with no connection (CRIU's).
    files.kinds.inet.tcp_close = common.tcp_close;
    Ok((files, fd_opts))
}

/// Collect from outside, every task, with one file table (`sharing`:
/// whose fd table and fs struct each task uses; `ours`: the tool's own
/// LSM label). `None` for a zombie.
pub(super) fn collect_all(
    tree: &tree::Tree,
    sharing: &tree::Sharing,
    files: &mut FileTable,
    fd_opts: files::FdOpts,
    opts: &DumpOpts,
    ours: &preflight::Ours,
) -> Result<Vec<Option<Collected>>, DumpError> {
    let pid = tree.tasks[0].pid;
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
        let mut c = collect_outside(&t.proc, task, part, files, fd_opts, own_fds)?;
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
    Ok(collected)
}
