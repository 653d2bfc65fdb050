//! Running a restore of a whole tree: plan every task, map every region,
//! fork the root (which forks the rest), watch every task's status, let
//! them all go together, remove the restorer from each, and on any
//! failure kill every task created so far.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions};

use crate::blob::restorer_abi::{self as abi, ChildArg};
use crate::hooks::{Action, Hooks};
use crate::opts::Opts;

use super::images::{TaskImages, TreeTaskImages};
use super::layout::SelfMaps;
use super::{
    FAULT_AFTER_DONE, FAULT_ENV, FAULT_OPEN_FILES, RESTORE_TIMEOUT, RESTORER_ENTRY, RestoreError,
    RestoreStats, Restored, check_images, fault_from_env, finish, plan, stage_name, stage_source,
    stop_signal, tree,
};
use crate::blob::bootstrap::{Region, TreePage, bytes_of};

/// Environment variable naming the PID of the task a `CRIU_RESTORE_FAULT`
/// restorer stage applies to (default: the root).
pub const FAULT_PID_ENV: &str = "CRIU_RESTORE_FAULT_PID";

/// One live task being restored.
struct Live<'a> {
    t: &'a TaskImages,
    pid: i32,
    region: Region,
    base: u64,
    len: u64,
    args_off: usize,
}

pub fn restore_tree(opts: &Opts, hooks: &mut Hooks) -> Result<Restored, RestoreError> {
    let t_start = Instant::now();
    hooks.run(Action::PreRestore, None)?;
    let page = rustix::param::page_size() as u64;
    let maps = SelfMaps::read()?;
    let top = maps.all.iter().map(|m| m.1).max().unwrap_or(1 << 47);
    let task_size = top.next_power_of_two()
        - if criu_arch::TASK_SIZE_GUARD_PAGE {
            page
        } else {
            0
        };
    let mut tasks = check_images(&opts.common.images_dir, page, task_size)?;
    // CRIU's rule: a --tcp-close dump is restored with --tcp-close.
    if let Some(TreeTaskImages::Alive(t)) = tasks.first()
        && t.other_files.dumped_tcp_close
        && !opts.common.tcp_close
    {
        return Err(RestoreError::Unsupported(
            "Need to set the --tcp-close options.".into(),
        ));
    }
    // --cpu-cap with its image bit: refuse a tree this CPU cannot run (its
    // saved FPU state, the instructions it may use) before creating any.
    crate::regs::cpuinfo::validate_if_asked(&opts.common.images_dir, opts.common.cpu_cap)?;
    // Each task's vDSO against this kernel's, before anything is created.
    let rt_vdso = super::vdso::Runtime::read(&maps)?;
    let force_proxy = std::env::var_os(super::vdso::FORCE_PROXY_ENV).is_some_and(|v| v == "1");
    // One plan per live task, in the order of `alive`.
    let mut vdso_plans = Vec::with_capacity(tasks.len());
    for t in &mut tasks {
        if let TreeTaskImages::Alive(t) = t {
            vdso_plans.push(super::vdso::plan(t, &rt_vdso, force_proxy)?);
        }
    }
    let alive: Vec<&TaskImages> = tasks
        .iter()
        .filter_map(|t| match t {
            TreeTaskImages::Alive(t) => Some(&**t),
            TreeTaskImages::Zombie(_) => None,
        })
        .collect();
    check_pid_max(&tasks)?;
    let roles = tree::roles(&tasks, opts.common.shell_job)?;
    let root = alive[0].pstree.pid;
    crate::pr_info!(
        "Restoring {} tasks (root {root}) from {}",
        tasks.len(),
        opts.common.images_dir.display()
    );
    let (fault_stage, fault_after) = fault_from_env();
    let fault_pid = std::env::var(FAULT_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(root);

    // The tree's counters, then every region planned where it is free in
    // the tool (and so in every task until it unmaps the tool) and in its
    // own task, none overlapping another.
    let page_words = if tasks.len() > 1 {
        Some(
            TreePage::map(roles.groups, roles.joins)
                .map_err(|e| RestoreError::Sys("mmap(tree counters)", e))?,
        )
    } else {
        None
    };
    // Private memory shared copy-on-write along the tree: its premap area
    // is reserved before the regions are placed, which then avoid it.
    let mut premap = super::cow::plan(&alive);
    let reserved = super::cow::reserve(premap.len, &alive, page)?;
    premap.place(reserved.base);
    let mut maps = SelfMaps::read()?;
    // Every task unmaps up to the top of the address space, whatever
    // region lies above the tool's own mappings.
    maps.all.push((task_size - page, task_size - page));
    raise_nofile();
    // Ghost files exist from here until every task's files are open (the
    // remap image is the tree's: any task's copy of it will do).
    let dir = crate::images::typed::ImageDir::new(&opts.common.images_dir);
    let ghosts = crate::files::ghost::Ghosts::create(&dir, &alive[0].remaps, &alive[0].reg_files)
        .map_err(|e| RestoreError::Unsupported(e.to_string()))?;
    let epoll_owners = super::fd_state::epoll_owners(alive.iter().copied())?;
    let file_opts = super::fd_state::FileOpts {
        ghosts: &ghosts,
        file_locks: opts.common.file_locks,
        epoll_owners: &epoll_owners,
    };
    // The tree's files (files.img is the tree's: any task's copy of it).
    let min_fd = plan::min_fd(alive.iter().copied());
    let opener = crate::files::Opener::new(
        &alive[0].other_files,
        &alive[0].reg_files,
        opts.common.ext_unix_sk,
    )
    .with_shell_job(opts.common.shell_job)
    .with_orphan_pts_master(opts.restore.orphan_pts_master)
    .with_tcp(crate::files::inet::ConnOpts {
        skip_in_flight: opts.common.tcp_skip_in_flight,
        tcp_established: opts.common.tcp_established,
        tcp_close: opts.common.tcp_close,
    })
    .with_fds(min_fd, ghosts.paths().clone());
    let mut shared = plan::SharedFiles::new(min_fd, opts.common.shell_job, opener);
    shared.tool_pidfd = tool_pidfd(&mut shared);
    let sync_pipes = fd_sync_pipes(&roles, &mut shared)?;
    let mut plans = Vec::with_capacity(alive.len());
    for (t, vdso_plan) in alive.iter().zip(&vdso_plans) {
        let pid = t.pstree.pid as i32;
        let mut role = roles.roles[&pid].clone();
        role.nr_children = tree::nr_children(pid, &tasks, &roles);
        role.cow = premap.tasks.remove(&pid).unwrap_or_default();
        // mremap cannot move a slot onto a range overlapping it: the
        // restorer moves such a slot through a free place first.
        let overlapping = role
            .cow
            .iter()
            .filter(|c| c.slot < c.end && c.start < c.slot + (c.end - c.start));
        for c in overlapping {
            crate::pr_debug!(
                "task {pid}: premap slot {:#x} overlaps its VMA {:#x}-{:#x}",
                c.slot,
                c.start,
                c.end
            );
        }
        role.cow_area = (reserved.base, premap.len);
        role.tree = page_words.as_ref().map_or(0, TreePage::addr);
        role.fd_sync = match role.fd_table {
            abi::FD_TABLE_LENT => sync_pipes.get(&pid).map_or(-1, |p| p.0),
            abi::FD_TABLE_SHARED => sync_pipes.get(&role.fd_owner).map_or(-1, |p| p.1),
            _ => -1,
        };
        role.fault_stage = if t.pstree.pid == fault_pid {
            fault_stage
        } else {
            0
        };
        if t.pstree.pid == root && opts.restore.sibling {
            // --restore-sibling: the root becomes a child of our parent
            // (for swrk, of the RPC client), as CRIU's CLONE_PARENT.
            role.start_flags = u64::from(linux_raw_sys::general::CLONE_PARENT);
        }
        let vdso = super::vdso::TaskVdso {
            rt: &rt_vdso,
            plan: vdso_plan,
        };
        let p = plan::build(t, &maps, vdso, page, &role, &mut shared, file_opts)?;
        maps.all
            .push((p.base - page, p.base + p.image.len() as u64 + page));
        maps.all.sort_unstable();
        plans.push(p);
    }
    shared.all_planned();
    let shared_rseq_addr = shared.tool_rseq_addr();
    for m in std::mem::take(&mut shared.orphan_masters) {
        hooks.send_fd(Action::OrphanPtsMaster, std::os::fd::AsFd::as_fd(&m))?;
    }
    drop(ghosts);
    let at: HashMap<i32, tree::RegionAt> = alive
        .iter()
        .zip(&plans)
        .map(|(t, p)| (t.pstree.pid as i32, (p.base, p.args_off)))
        .collect();
    let pull_table = pull_lists(&alive, &roles, &mut plans)?;
    for (t, p) in alive.iter().zip(plans.iter_mut()) {
        let kids: Vec<ChildArg> =
            tree::children_of(t.pstree.pid as i32, &tasks, &roles, &at, RESTORER_ENTRY);
        let bytes: Vec<u8> = kids.iter().flat_map(|c| bytes_of(c).to_vec()).collect();
        p.image[p.children_off..p.children_off + bytes.len()].copy_from_slice(&bytes);
    }
    if crate::fault::at(crate::fault::RESTORE_BASE, 0, FAULT_OPEN_FILES, FAULT_ENV) {
        return Err(RestoreError::Unsupported(format!(
            "fault injected at {FAULT_OPEN_FILES}"
        )));
    }
    let mut live = Vec::with_capacity(plans.len());
    let mut fds = Vec::new();
    for (t, p) in alive.iter().zip(plans) {
        let region = Region::map(p.hold, &p.image)
            .map_err(|e| RestoreError::Sys("mmap(bootstrap region)", e))?;
        live.push(Live {
            t,
            pid: t.pstree.pid as i32,
            region,
            base: p.base,
            len: p.image.len() as u64,
            args_off: p.args_off,
        });
        fds.push(p.fds);
    }

    // The root (and so every task) gets none of the tool's private memory:
    // only this thread's stack, which it starts on, and the shared regions.
    let here = 0u8;
    let private = SelfMaps::private_writable(&[std::ptr::addr_of!(here) as u64, shared_rseq_addr])?;
    let dontfork = crate::sys::dontfork::DontFork::mark(&private);
    let ret = live[0].region.start(RESTORER_ENTRY, live[0].args_off);
    drop(dontfork);
    let forking = t_start.elapsed();
    // The tool's copies of the tasks' files stay open until every task
    // has taken its own (RestoreArgs::pull), i.e. until the restore ends.
    let dumpable = pullable();
    drop(reserved);
    if ret == -(Errno::EXIST.raw_os_error() as isize) {
        return Err(RestoreError::PidBusy(root));
    }
    if ret < 0 {
        return Err(RestoreError::Sys(
            "clone3",
            Errno::from_raw_os_error(-ret as i32),
        ));
    }
    let child = Pid::from_raw(ret as i32).ok_or(RestoreError::Sys("clone3", Errno::INVAL))?;
    let raw_pid = Some(child.as_raw_nonzero().get());
    let mut held = finish::Held::default();
    let done = wait_all(
        &live,
        child,
        opts.restore.sibling,
        page_words.as_ref(),
        &tasks,
    )
    .and_then(|()| {
        live.iter()
            .try_for_each(|l| super::regsets::write(l.pid, l.t))
    })
    .and_then(|()| Ok(hooks.run(Action::PostRestore, raw_pid)?))
    .and_then(|()| {
        // Every thread is held before any is told to go, so none runs
        // its own code before its region is gone.
        for l in &live {
            let tids: Vec<u32> = l.t.threads.iter().map(|t| t.0).collect();
            held.seize_task(l.pid, &tids, l.base, l.len, stop_signal(l.t))?;
        }
        for l in &live {
            l.region.resume(l.args_off);
        }
        held.run_to_sigreturn()?;
        held.unmap_regions()
    })
    // As CRIU: with every task stopped at the end of its restore, the
    // restorer gone, right before they are let go.
    .and_then(|()| Ok(hooks.run(Action::PreResume, raw_pid)?))
    .and_then(|()| match fault_after {
        true => Err(RestoreError::Unsupported(format!(
            "fault injected at {FAULT_AFTER_DONE}"
        ))),
        false => Ok(()),
    })
    // The TCP connections leave repair mode here: every socket of the tree
    // exists (both ends of a connection inside it), no task has run its
    // own code yet, and none could use its socket in repair mode. CRIU's
    // restorer does the same at the end of each task's restore.
    .and_then(|()| {
        let conns = shared.tcp_repaired.connections();
        shared
            .tcp_repaired
            .release()
            .map_err(|e| RestoreError::Unsupported(format!("leaving TCP repair mode: {e}")))?;
        // The dump's network lock goes once repair mode is off, before
        // the tasks run (taken with the method the inventory names, as
        // CRIU does: an iptables lock of CRIU's dump goes too).
        if !conns.is_empty() {
            let (method, id) = super::images::network_lock(&dir, root)?;
            let conns: Vec<crate::netlock::Conn> = conns
                .iter()
                .map(|c| crate::netlock::Conn::new(c.src, c.dst))
                .collect();
            crate::netlock::release_named(method, &id, &conns)
                .map_err(|e| RestoreError::Unsupported(format!("unlocking the network: {e}")))?;
        }
        Ok(())
    })
    .and_then(|()| super::write_pidfile(opts, child))
    // A restore that fails after all takes its pidfile back.
    .and_then(|()| {
        held.detach_all()
            .inspect_err(|_| super::remove_pidfile(opts))
    })
    .map(|()| None);
    drop(dumpable);
    drop(pull_table);
    drop(fds);
    drop(shared);
    match done {
        Ok(exit_code) => {
            drop(page_words);
            // It runs: a failing post-resume can only be reported.
            if let Err(e) = hooks.run(Action::PostResume, raw_pid) {
                crate::pr_err!("{e}");
            }
            Ok(Restored {
                pid: child,
                stats: RestoreStats {
                    forking,
                    restore: t_start.elapsed(),
                    pages_restored: alive
                        .iter()
                        .flat_map(|t| t.pages.iter())
                        .map(|r| r.nr_pages)
                        .sum(),
                    pages_skipped_cow: live
                        .iter()
                        .map(|l| l.region.cow_skipped(l.args_off) / page)
                        .sum(),
                },
                exit_code,
            })
        }
        Err(e) => {
            kill_created(&live, child, &mut held);
            Err(e)
        }
    }
}

/// The tool holds every task's files at once until the root is forked:
/// allow as many as the hard limit does (each task's own limits come back
/// from its core in the restorer).
/// One pipe per shared fd table, by its owner's PID: (read end, write
/// end), tool fds every task inherits (kept in `shared` until the root is
/// forked). Its sharers tell the owner through it that they no longer
/// need the tool's fds (the restorer's `close_shared_fds`).
fn fd_sync_pipes(
    roles: &tree::Roles,
    shared: &mut plan::SharedFiles<'_>,
) -> Result<HashMap<i32, (i32, i32)>, RestoreError> {
    let mut out = HashMap::new();
    for (&pid, role) in &roles.roles {
        if role.fd_table != abi::FD_TABLE_LENT {
            continue;
        }
        let (r, w) = crate::fault::call(&"pipe (shared fd table)", Errno::MFILE)
            .and_then(|()| rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC))
            .map_err(|e| RestoreError::Sys("pipe (shared fd table)", e))?;
        let r = plan::high_fd(r, shared.min_fd)?;
        let w = plan::high_fd(w, shared.min_fd)?;
        out.insert(
            pid,
            (
                std::os::fd::AsRawFd::as_raw_fd(&r),
                std::os::fd::AsRawFd::as_raw_fd(&w),
            ),
        );
        shared.fds.push(r);
        shared.fds.push(w);
    }
    Ok(out)
}

/// A pidfd of the tool at or above `shared.min_fd` (kept in `shared`), or
/// -1 when the kernel has none (the tasks then inherit every tool fd).
fn tool_pidfd(shared: &mut plan::SharedFiles<'_>) -> i32 {
    let me = rustix::process::getpid();
    let fd = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty())
        .map_err(|e| RestoreError::Sys("pidfd_open", e))
        .and_then(|fd| plan::high_fd(fd, shared.min_fd));
    match fd {
        Ok(fd) => {
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            shared.fds.push(fd);
            raw
        }
        Err(e) => {
            crate::pr_debug!("{e}: the tasks inherit every file of the tree");
            -1
        }
    }
}

/// Each task's list of tool fds to take, written into one shared table
/// and pointed to from its args: a table's owner takes the fds of every
/// task sharing its table too (they use them in its table).
fn pull_lists(
    alive: &[&TaskImages],
    roles: &tree::Roles,
    plans: &mut [plan::Plan],
) -> Result<Option<crate::blob::bootstrap::SharedTable>, RestoreError> {
    let index: HashMap<i32, usize> = alive
        .iter()
        .enumerate()
        .map(|(i, t)| (t.pstree.pid as i32, i))
        .collect();
    for i in 0..plans.len() {
        let role = &roles.roles[&(alive[i].pstree.pid as i32)];
        if role.fd_table != abi::FD_TABLE_SHARED {
            continue;
        }
        let Some(&owner) = index.get(&role.fd_owner) else {
            continue;
        };
        let mine = std::mem::take(&mut plans[i].pull);
        plans[owner].pull.extend(mine);
        plans[owner].pull.sort_unstable();
        plans[owner].pull.dedup();
    }
    let words: Vec<i32> = plans.iter().flat_map(|p| p.pull.iter().copied()).collect();
    if words.is_empty() {
        return Ok(None);
    }
    let table = crate::blob::bootstrap::SharedTable::map(&words)
        .map_err(|e| RestoreError::Sys("mmap(fd lists)", e))?;
    let mut at = 0;
    for p in plans.iter_mut() {
        let list = abi::Array {
            addr: if p.pull.is_empty() {
                0
            } else {
                table.addr_of(at)
            },
            len: p.pull.len() as u64,
        };
        at += p.pull.len();
        p.image[p.pull_off..p.pull_off + size_of::<abi::Array>()].copy_from_slice(bytes_of(&list));
    }
    Ok(Some(table))
}

/// The tasks take their files from the tool with `pidfd_getfd`, which a
/// tool that is not dumpable (run from a binary with file capabilities,
/// `--unprivileged`) refuses to tasks without CAP_SYS_PTRACE. It is made
/// dumpable for the restore (its tasks hold the same capabilities, others
/// cannot trace it); the guard puts the old value back.
struct Dumpable(Option<rustix::process::DumpableBehavior>);

fn pullable() -> Dumpable {
    use rustix::process::{DumpableBehavior, dumpable_behavior, set_dumpable_behavior};
    match dumpable_behavior() {
        Ok(DumpableBehavior::Dumpable) | Err(_) => Dumpable(None),
        Ok(old) => match set_dumpable_behavior(DumpableBehavior::Dumpable) {
            Ok(()) => Dumpable(Some(old)),
            Err(_) => Dumpable(None),
        },
    }
}

impl Drop for Dumpable {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            let _ = rustix::process::set_dumpable_behavior(old);
        }
    }
}

fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            crate::pr_warn!("cannot raise the open files limit: {e}");
        }
    }
}

/// Leave nothing behind: kill every task that says it exists, in rounds
/// (a task forked by a parent killed in the same round announces itself
/// a moment later), then reap the root. Zombies and helpers die with their
/// parents (helpers have a parent-death signal).
fn kill_created(live: &[Live<'_>], root: Pid, held: &mut finish::Held) {
    let mut killed = vec![false; live.len()];
    for _round in 0..4 {
        for (l, k) in live.iter().zip(killed.iter_mut()) {
            if !*k
                && l.region.status(l.args_off).created != 0
                && let Some(p) = Pid::from_raw(l.pid)
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
    sibling: bool,
    page: Option<&TreePage>,
    tasks: &[TreeTaskImages],
) -> Result<(), RestoreError> {
    let start = Instant::now();
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
        for l in live {
            let st = l.region.status(l.args_off);
            match st.state {
                abi::STATE_DONE => continue,
                abi::STATE_FAILED => return Err(failure(l, &st, tasks)),
                _ => all_done = false,
            }
            // Our own child (the root, unless it is our sibling) is
            // watched with waitpid below.
            let ours = l.pid == root.as_raw_nonzero().get() && !sibling;
            let how = (check_ended && !ours && st.created != 0)
                .then(|| ended(l.pid))
                .flatten();
            if let Some(how) = how {
                // It may have published its failure just before ending.
                let st = l.region.status(l.args_off);
                if st.state == abi::STATE_FAILED {
                    return Err(failure(l, &st, tasks));
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

/// Every PID and TID of the tree must fit this system's `pid_max` (images
/// from a machine with a larger one may not).
fn check_pid_max(tasks: &[TreeTaskImages]) -> Result<(), RestoreError> {
    let Some(max) = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return Ok(());
    };
    for t in tasks {
        let e = t.pstree();
        if let Some(&id) = std::iter::once(&e.pid)
            .chain(e.threads.iter())
            .find(|&&id| id > max)
        {
            return Err(RestoreError::Invalid {
                file: "pstree.img".into(),
                what: format!(
                    "task {}: PID {id} is above this system's pid_max ({max}, /proc/sys/kernel/pid_max)",
                    e.pid
                ),
            });
        }
    }
    Ok(())
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
