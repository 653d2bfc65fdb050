//! Running a restore of a whole tree: plan every task, map every region,
//! fork the root (which forks the rest), watch every task's status, let
//! them all go together, remove the restorer from each, and on any
//! failure kill every task created so far.
//!
//! - here: the order of it all ([`restore_tree`]), each task's role and
//!   plan, and forking the root;
//! - [`fds`]: the files the tool holds for the tree until it is restored
//!   (the tree's opener, shared fd tables, the lists of fds each task
//!   takes);
//! - [`watch`]: waiting for and watching the tasks, and killing them on
//!   failure.

mod fds;
mod fill;
mod watch;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::Instant;

use rustix::io::Errno;
use rustix::process::Pid;

use crate::blob::restorer_abi::{self as abi, ChildArg};
use crate::hooks::{Action, Hooks};
use crate::images::typed::ImageDir;
use crate::opts::Opts;

use super::images::{TaskImages, TreeTaskImages};
use super::layout::SelfMaps;
use super::pidns::PidMap;
use super::vdso::{Runtime, TaskVdso, VdsoPlan};
use super::{
    FAULT_AFTER_DONE, FAULT_ENV, FAULT_OPEN_FILES, RESTORER_ENTRY, RestoreError, RestoreStats,
    Restored, check_images, fault_from_env, plan, tree,
};
use crate::blob::bootstrap::{Region, TreePage};
use crate::sys::plain::bytes_of;

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
    /// The page runs the tool copies in (see `fill`).
    copy_runs: Vec<crate::blob::restorer_abi::PageRun>,
}

pub fn restore_tree(opts: &Opts, hooks: &mut Hooks) -> Result<Restored, RestoreError> {
    let t_start = Instant::now();
    hooks.run(Action::PreRestore, None)?;
    let page = rustix::param::page_size() as u64;
    let TreeRead {
        task_size,
        mut tasks,
        rt_vdso,
        vdso_plans,
        roles,
        new_pid_ns,
    } = read_tree(opts, page)?;
    // The root's own namespaces and what fills them, read before
    // anything is created.
    let root_ns = super::root_ns::plan(&ImageDir::new(&opts.common.images_dir), &tasks)?;
    // Its own net namespace, made and filled now: the tool opens the
    // tree's sockets in it and forks the root into it (see `netns`).
    let net_ns = super::netns::prepare(opts, &root_ns)?;
    if let (Some(n), Some(TreeTaskImages::Alive(t))) = (&net_ns, tasks.first()) {
        n.lock_for_tcp(opts, t.pstree.pid)?;
    }
    let in_net_ns = net_ns.as_ref().map(|n| n.enter()).transpose()?;
    let mounts = super::mntns::plan(
        opts,
        &ImageDir::new(&opts.common.images_dir),
        &root_ns,
        new_pid_ns,
    )?;
    // Its own mount namespace is made next (the tool's thread is in the
    // tree's net namespace already, so a sysfs mounted now shows it): the
    // tasks' files are opened in it (below its root, until the root task
    // is forked into it).
    let yard = match &mounts {
        Some(m) => {
            let yard = m.enter()?;
            super::mntns::files_below(&mut tasks, &yard.root())?;
            Some(yard)
        }
        None => None,
    };
    // For every tree, as the walks over every stage expect.
    fault_tool(super::mntns::FAULT_MOUNTS)?;
    let alive = alive_tasks(&tasks);
    let root = alive[0].pstree.pid;
    // The tree's counters, then every region planned where it is free in
    // the tool (and so in every task until it unmaps the tool) and in its
    // own task, none overlapping another.
    let page_words = tree_page(&tasks, &roles)?;
    // Private memory shared copy-on-write along the tree: its premap area
    // is reserved before the regions are placed, which then avoid it.
    let mut premap = super::cow::plan(&alive);
    let reserved = super::cow::reserve(premap.len, &alive, page)?;
    premap.place(reserved.base);
    let mut maps = tool_maps(task_size, page)?;
    fds::raise_nofile();
    // Ghost files exist from here until every task's files are open (the
    // remap image is the tree's: any task's copy of it will do).
    let dir = ImageDir::new(&opts.common.images_dir);
    let ghosts = crate::files::ghost::Ghosts::create(&dir, &alive[0].remaps, &alive[0].reg_files)
        .map_err(|e| RestoreError::Unsupported(e.to_string()))?;
    let epoll_owners = crate::files::eventpoll::owners(alive.iter().copied())
        .map_err(|e| RestoreError::Unsupported(e.to_string()))?;
    let file_opts = super::fd_state::FileOpts {
        ghosts: &ghosts,
        file_locks: opts.common.file_locks,
        epoll_owners: &epoll_owners,
    };
    let inventory: crate::images::pb::InventoryEntry =
        crate::images::check::read_single(&dir, crate::images::kinds::Kind::Inventory, 0)?;
    // A tree with its own mount namespace: its ptys are made below the
    // namespace's root (some already, for a bind mount of their slave).
    let tree_root = yard.as_ref().map(|y| (y.root(), y.take_ptys()));
    let (mut shared, sync_pipes) = fds::tree_files(opts, &alive, &roles, &ghosts, tree_root)?;
    // An external net namespace takes its --inherit-fd (no file does).
    shared
        .inherit_used
        .extend(net_ns.as_ref().and_then(|n| n.inherited_fd));
    // Declared before the tasks exist, so that on failure its directories
    // go only once they are killed.
    let mut cgroups = place_cgroups(opts, &inventory, &dir, &alive, &mut shared)?;
    let (fault_stage, fault_after) = fault_from_env();
    let mut inputs = RoleInputs {
        roles: &roles,
        tasks: &tasks,
        sync_pipes: &sync_pipes,
        cow_area: (reserved.base, premap.len),
        premap,
        tree: page_words.as_ref().map_or(0, TreePage::addr),
        fault: (fault_pid(root), fault_stage),
        root,
        sibling: opts.restore.sibling,
        cgroups: &cgroups.fds,
        ns_flags: root_ns.own.clone_flags(),
        new_pid_ns,
    };
    let vdso = (&rt_vdso, &vdso_plans[..]);
    let mut plans = plan_all(
        &mut inputs,
        &alive,
        vdso,
        &mut maps,
        page,
        &mut shared,
        file_opts,
    )?;
    shared.all_planned();
    for m in std::mem::take(&mut shared.orphan_masters) {
        hooks.send_fd(Action::OrphanPtsMaster, std::os::fd::AsFd::as_fd(&m))?;
    }
    // Their paths are below the yard in a tree of its own mount namespace,
    // which is the tree's root once restored.
    let yard_root = yard.as_ref().map(|y| y.root());
    let link_remaps = ghosts.link_remaps();
    drop(ghosts);
    let pull_table = fds::pull_lists(&alive, &roles, &mut plans)?;
    fill_children(&alive, &mut plans, &tasks, &roles);
    fault_open_files()?;
    let (live, fds) = map_regions(&alive, plans)?;
    let ret = match &root_ns.time {
        Some(at) => super::namespaces::TimeNs { at }
            .fork_in(|| fork_root(&live, shared.tool_rseq_addr()))?,
        None => fork_root(&live, shared.tool_rseq_addr())?,
    };
    drop(in_net_ns);
    let forking = t_start.elapsed();
    crate::pr_debug!("every task planned, the root forked");
    // The tool's copies of the tasks' files stay open until every task
    // has taken its own (RestoreArgs::pull), i.e. until the restore ends.
    let dumpable = fds::pullable();
    drop(reserved);
    let child = forked(ret, root)?;
    let raw_pid = Some(child.as_raw_nonzero().get());
    // The tool's thread leaves the new mount namespace here, whatever
    // happens next; its late mounts are made and its root pivoted.
    let mounted = match (mounts.as_ref(), yard) {
        (Some(m), Some(y)) => m
            .finish(y, child.as_raw_nonzero().get())
            .map_err(RestoreError::from),
        _ => Ok(()),
    };
    // From here on, the tool reaches the tasks by their PIDs outside the
    // tree's pid namespace, if it has its own.
    let mut pids = match new_pid_ns {
        true => PidMap::new_ns(child.as_raw_nonzero().get()),
        false => PidMap::identity(),
    };
    let mut held = super::finish::Held::default();
    // The root's new namespaces are filled before any task runs restored
    // code (every task waits to be let go below).
    let root_pid = child.as_raw_nonzero().get();
    let done = mounted
        .and_then(|()| super::netns::ns_hook(hooks, Action::SetupNamespaces, &root_ns, root_pid))
        .and_then(|()| super::root_ns::fill(&root_ns, root_pid, fault_ns()))
        .map(|()| live[0].region.ns_ready(live[0].args_off))
        .and_then(|()| {
            super::netns::ns_hook(hooks, Action::PostSetupNamespaces, &root_ns, root_pid)
        })
        .and_then(|()| {
            let forked = watch::Forked {
                root: child,
                pids: &mut pids,
                net_unlock: root_ns.own.net,
            };
            watch::wait_and_hold(
                &live,
                forked,
                opts,
                page_words.as_ref(),
                &tasks,
                hooks,
                &mut held,
            )
        })
        .and_then(|()| fault_after_done(fault_after))
        .and_then(|()| {
            fds::release_tcp(&mut shared, &dir, root, root_ns.own.net.then_some(root_pid))
        })
        .and_then(|()| cgroups.finish().map_err(RestoreError::from))
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
            // The dump's `link_remap.ID` links have served (CRIU removes
            // them once restored).
            for p in &link_remaps {
                let p = match yard_root.as_ref().and_then(|y| p.strip_prefix(y).ok()) {
                    Some(rel) => {
                        std::path::Path::new(&format!("/proc/{}/root", child.as_raw_nonzero()))
                            .join(rel)
                    }
                    None => p.clone(),
                };
                if let Err(e) = std::fs::remove_file(&p) {
                    crate::pr_warn!("cannot unlink link remap {}: {e}", p.display());
                }
            }
            resumed(hooks, raw_pid);
            Ok(Restored {
                pid: child,
                stats: stats(forking, t_start, &alive, &live, page),
                exit_code,
            })
        }
        Err(e) => {
            watch::kill_created(&live, child, &pids, &mut held);
            Err(e)
        }
    }
}

/// The tree's cgroups made, and the `cgroup.procs` files of those its
/// tasks move into opened as tool fds (see [`crate::cgroups::place`]).
fn place_cgroups(
    opts: &Opts,
    inventory: &crate::images::pb::InventoryEntry,
    dir: &ImageDir,
    alive: &[&TaskImages],
    shared: &mut plan::SharedFiles<'_>,
) -> Result<crate::cgroups::place::Placed, RestoreError> {
    use crate::cgroups::place::{self, Inputs, TaskSet};
    let tasks: Vec<TaskSet> = alive
        .iter()
        .map(|t| TaskSet {
            pid: t.pstree.pid as i32,
            ppid: t.pstree.ppid as i32,
            set: cg_set(&t.core),
        })
        .collect();
    let inp = Inputs {
        dir,
        mode: opts.common.manage_cgroups,
        roots: &opts.common.cgroup_roots,
        root_set: inventory.root_cg_set.unwrap_or(crate::cgroups::TOOL_SET),
        tasks: &tasks,
    };
    let min = shared.min_fd;
    place::prepare(&inp, |fd| {
        let fd = plan::high_fd(fd, min).map_err(|e| e.to_string())?;
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        shared.fds.push(fd);
        Ok(raw)
    })
    .map_err(RestoreError::from)
}

/// A task's cgroup set: its main thread's (CRIU 3.x and later), else the
/// task core's (older images), else criu's.
fn cg_set(core: &crate::images::pb::CoreEntry) -> u32 {
    core.thread_core
        .as_ref()
        .and_then(|t| t.cg_set)
        .or_else(|| core.tc.as_ref().and_then(|tc| tc.cg_set))
        .unwrap_or(crate::cgroups::TOOL_SET)
}

/// The tree's images, read and checked, and what follows from them alone.
struct TreeRead {
    /// The top of the address space (see [`task_size`]).
    task_size: u64,
    tasks: Vec<TreeTaskImages>,
    rt_vdso: Runtime,
    vdso_plans: Vec<VdsoPlan>,
    /// Each task's role in the tree.
    roles: tree::Roles,
    /// The root is the init of a pid namespace of its own.
    new_pid_ns: bool,
}

fn read_tree(opts: &Opts, page: u64) -> Result<TreeRead, RestoreError> {
    let maps = SelfMaps::read()?;
    let task_size = task_size(&maps, page);
    let (tasks, rt_vdso, vdso_plans) = read_checked(opts, &maps, page, task_size)?;
    check_pid_max(&tasks)?;
    let roles = tree::roles(&tasks, opts.common.shell_job)?;
    let new_pid_ns = super::pidns::new_pid_ns(&ImageDir::new(&opts.common.images_dir), &tasks)?;
    crate::pr_info!(
        "Restoring {} tasks (root {}) from {}",
        tasks.len(),
        alive_tasks(&tasks)[0].pstree.pid,
        opts.common.images_dir.display()
    );
    if new_pid_ns {
        crate::pr_info!("The root is the init of a new pid namespace (CLONE_NEWPID)");
    }
    Ok(TreeRead {
        task_size,
        tasks,
        rt_vdso,
        vdso_plans,
        roles,
        new_pid_ns,
    })
}

/// The tree runs: its post-resume action (whose failure can only be
/// reported).
fn resumed(hooks: &mut Hooks, pid: Option<i32>) {
    hooks
        .run(Action::PostResume, pid)
        .unwrap_or_else(|e| crate::pr_err!("{e}"));
}

/// The live tasks of the tree, in pstree order.
fn alive_tasks(tasks: &[TreeTaskImages]) -> Vec<&TaskImages> {
    tasks
        .iter()
        .filter_map(|t| match t {
            TreeTaskImages::Alive(t) => Some(&**t),
            TreeTaskImages::Zombie(_) => None,
        })
        .collect()
}

/// The tool's mappings as they are now, with the top page of the address
/// space (`task_size`): every task unmaps up to there, whatever region
/// lies above the tool's own mappings.
fn tool_maps(task_size: u64, page: u64) -> Result<SelfMaps, RestoreError> {
    let mut maps = SelfMaps::read()?;
    maps.all.push((task_size - page, task_size - page));
    Ok(maps)
}

/// `CRIU_RESTORE_FAULT=namespaces`: the root is forked, its namespaces
/// not filled.
/// A tool-side fault named `stage` (one of [`super::FAULT_STAGES`]), if
/// injected.
fn fault_tool(stage: &'static str) -> Result<(), RestoreError> {
    let i = super::FAULT_STAGES
        .iter()
        .position(|s| *s == stage)
        .unwrap_or(usize::MAX);
    if crate::fault::at(crate::fault::RESTORE_BASE, i, stage, super::FAULT_ENV) {
        return Err(RestoreError::Unsupported(format!(
            "fault injected at {stage}"
        )));
    }
    Ok(())
}

fn fault_ns() -> bool {
    let stage = super::root_ns::FAULT_NAMESPACES;
    let index = super::FAULT_STAGES
        .iter()
        .position(|s| *s == stage)
        .unwrap_or(usize::MAX);
    crate::fault::at(crate::fault::RESTORE_BASE, index, stage, FAULT_ENV)
}

/// `CRIU_RESTORE_FAULT=open-files`: every file is open, no task forked.
fn fault_open_files() -> Result<(), RestoreError> {
    if crate::fault::at(crate::fault::RESTORE_BASE, 0, FAULT_OPEN_FILES, FAULT_ENV) {
        return Err(RestoreError::Unsupported(format!(
            "fault injected at {FAULT_OPEN_FILES}"
        )));
    }
    Ok(())
}

/// The top of the user address space, from the tool's own mappings.
fn task_size(maps: &SelfMaps, page: u64) -> u64 {
    let top = maps.all.iter().map(|m| m.1).max().unwrap_or(1 << 47);
    top.next_power_of_two()
        - if criu_arch::TASK_SIZE_GUARD_PAGE {
            page
        } else {
            0
        }
}

/// The tree's counters (a tree of more than one task).
fn tree_page(
    tasks: &[TreeTaskImages],
    roles: &tree::Roles,
) -> Result<Option<TreePage>, RestoreError> {
    if tasks.len() <= 1 {
        return Ok(None);
    }
    TreePage::map(roles.groups, roles.joins)
        .map(Some)
        .map_err(|e| RestoreError::Sys("mmap(tree counters)", e))
}

/// Plans every live task (`vdso`: this kernel's vDSO and each task's
/// plan), each region placed where it is free in the tool and in its task
/// and none overlapping another (`maps` takes each).
fn plan_all<'a>(
    inputs: &mut RoleInputs<'_>,
    alive: &[&'a TaskImages],
    vdso: (&Runtime, &[VdsoPlan]),
    maps: &mut SelfMaps,
    page: u64,
    shared: &mut plan::SharedFiles<'a>,
    file_opts: super::fd_state::FileOpts<'_>,
) -> Result<Vec<plan::Plan>, RestoreError> {
    let mut plans = Vec::with_capacity(alive.len());
    for (t, vdso_plan) in alive.iter().zip(vdso.1) {
        let role = inputs.role(t.pstree.pid as i32);
        let vdso = TaskVdso {
            rt: vdso.0,
            plan: vdso_plan,
        };
        let p = plan::build(t, maps, vdso, page, &role, shared, file_opts)?;
        maps.all
            .push((p.base - page, p.base + p.image.len() as u64 + page));
        maps.all.sort_unstable();
        plans.push(p);
    }
    Ok(plans)
}

/// `CRIU_RESTORE_FAULT=after-done`: the tree is restored, and fails here.
fn fault_after_done(fault_after: bool) -> Result<(), RestoreError> {
    match fault_after {
        true => Err(RestoreError::Unsupported(format!(
            "fault injected at {FAULT_AFTER_DONE}"
        ))),
        false => Ok(()),
    }
}

/// The restore's numbers (`stats-restore`).
fn stats(
    forking: std::time::Duration,
    t_start: Instant,
    alive: &[&TaskImages],
    live: &[Live<'_>],
    page: u64,
) -> RestoreStats {
    RestoreStats {
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
    }
}

/// A task under seccomp is finished with its filters suspended
/// (`PTRACE_O_SUSPEND_SECCOMP`), which takes CAP_SYS_ADMIN: without it
/// (`--unprivileged`) such a tree is refused before anything is created.
fn refuse_seccomp_unprivileged(tasks: &[TreeTaskImages]) -> Result<(), RestoreError> {
    const CAP_SYS_ADMIN: u32 = linux_raw_sys::general::CAP_SYS_ADMIN;
    let Some(t) = tasks.iter().find_map(|t| match t {
        TreeTaskImages::Alive(t) if t.seccomp.iter().any(|s| s.mode != 0) => Some(t),
        _ => None,
    }) else {
        return Ok(());
    };
    let eff = crate::proc::ProcDir::open_self()
        .and_then(|p| p.status())
        .map_err(|e| RestoreError::Unsupported(format!("reading our capabilities: {e}")))?
        .cap_eff;
    if eff & (1 << CAP_SYS_ADMIN) != 0 {
        return Ok(());
    }
    Err(RestoreError::Unsupported(format!(
        "task {} ran under seccomp: restoring it needs CAP_SYS_ADMIN, to keep its filters \
         suspended (PTRACE_O_SUSPEND_SECCOMP) until the restore lets it go",
        t.pstree.pid
    )))
}

/// Reads and checks every image of the tree (see [`check_images`]), and
/// what depends on this system: `--tcp-close`, `--cpu-cap`, and each
/// live task's vDSO against this kernel's (one plan per live task, in
/// pstree order).
fn read_checked(
    opts: &Opts,
    maps: &SelfMaps,
    page: u64,
    task_size: u64,
) -> Result<(Vec<TreeTaskImages>, Runtime, Vec<VdsoPlan>), RestoreError> {
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
    refuse_seccomp_unprivileged(&tasks)?;
    // --cpu-cap with its image bit: refuse a tree this CPU cannot run (its
    // saved FPU state, the instructions it may use) before creating any.
    crate::regs::cpuinfo::validate_if_asked(&opts.common.images_dir, opts.common.cpu_cap)?;
    // Each task's vDSO against this kernel's, before anything is created.
    let rt_vdso = Runtime::read(maps)?;
    let force_proxy = std::env::var_os(super::vdso::FORCE_PROXY_ENV).is_some_and(|v| v == "1");
    let mut vdso_plans = Vec::with_capacity(tasks.len());
    for t in &mut tasks {
        if let TreeTaskImages::Alive(t) = t {
            vdso_plans.push(super::vdso::plan(t, &rt_vdso, force_proxy)?);
        }
    }
    Ok((tasks, rt_vdso, vdso_plans))
}

/// The task a `CRIU_RESTORE_FAULT` restorer stage applies to.
fn fault_pid(root: u32) -> u32 {
    std::env::var(FAULT_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(root)
}

/// What each task's role is made of, for the whole tree.
struct RoleInputs<'r> {
    roles: &'r tree::Roles,
    tasks: &'r [TreeTaskImages],
    /// Shared fd tables' pipes by owner (see [`fds::fd_sync_pipes`]).
    sync_pipes: &'r HashMap<i32, (i32, i32)>,
    /// The premap area, and each task's VMAs in it (each taken out by
    /// its role).
    cow_area: (u64, u64),
    premap: super::cow::Premap,
    /// Address of the tree's counters (0: alone).
    tree: u64,
    /// The task a fault is injected into, and the stage.
    fault: (u32, u32),
    root: u32,
    /// `--restore-sibling`.
    sibling: bool,
    /// Each task's `cgroup.procs` fds (see [`crate::cgroups::place`]).
    cgroups: &'r HashMap<i32, crate::cgroups::place::Join>,
    /// The root's own UTS and IPC namespaces (`clone3` flags).
    ns_flags: u64,
    /// The root starts a pid namespace of its own (`CLONE_NEWPID`).
    new_pid_ns: bool,
}

impl RoleInputs<'_> {
    /// Task `pid`'s role, with its VMAs of the premap area.
    fn role(&mut self, pid: i32) -> plan::TaskRole {
        let mut role = self.roles.roles[&pid].clone();
        role.nr_children = tree::nr_children(pid, self.tasks, self.roles);
        role.cow = self.premap.tasks.remove(&pid).unwrap_or_default();
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
        role.cow_area = self.cow_area;
        role.tree = self.tree;
        let join = self.cgroups.get(&pid).cloned().unwrap_or_default();
        (role.cgroup_fds, role.cgns_fds) = (join.fds, join.cgns);
        role.fd_sync = match role.fd_table {
            abi::FD_TABLE_LENT => self.sync_pipes.get(&pid).map_or(-1, |p| p.0),
            abi::FD_TABLE_SHARED => self.sync_pipes.get(&role.fd_owner).map_or(-1, |p| p.1),
            _ => -1,
        };
        role.fault_stage = if pid as u32 == self.fault.0 {
            self.fault.1
        } else {
            0
        };
        if pid as u32 == self.root && self.sibling {
            // --restore-sibling: the root becomes a child of our parent
            // (for swrk, of the RPC client), as CRIU's CLONE_PARENT.
            role.start_flags = u64::from(linux_raw_sys::general::CLONE_PARENT);
        }
        if pid as u32 == self.root {
            role.start_flags |= self.ns_flags;
        }
        if pid as u32 == self.root && self.new_pid_ns {
            // Its pid 1 there is its set_tid's one level.
            role.start_flags |= u64::from(linux_raw_sys::general::CLONE_NEWPID);
        }
        role
    }
}

/// Each task's children, now that every region's place is known.
fn fill_children(
    alive: &[&TaskImages],
    plans: &mut [plan::Plan],
    tasks: &[TreeTaskImages],
    roles: &tree::Roles,
) {
    let at: HashMap<i32, tree::RegionAt> = alive
        .iter()
        .zip(plans.iter())
        .map(|(t, p)| (t.pstree.pid as i32, (p.base, p.args_off)))
        .collect();
    for (t, p) in alive.iter().zip(plans.iter_mut()) {
        let kids: Vec<ChildArg> =
            tree::children_of(t.pstree.pid as i32, tasks, roles, &at, RESTORER_ENTRY);
        let bytes: Vec<u8> = kids.iter().flat_map(|c| bytes_of(c).to_vec()).collect();
        p.image.put(p.children_off, &bytes);
    }
}

/// Maps every task's region; the fds of each plan are kept (returned)
/// until the restore ends.
#[allow(clippy::type_complexity)]
fn map_regions<'a>(
    alive: &[&'a TaskImages],
    plans: Vec<plan::Plan>,
) -> Result<(Vec<Live<'a>>, Vec<Vec<OwnedFd>>), RestoreError> {
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
            copy_runs: p.copy_runs,
        });
        fds.push(p.fds);
    }
    Ok((live, fds))
}

/// Forks the root from the first region: it gets none of the tool's
/// private memory, only this thread's stack, which it starts on, and the
/// shared regions. What `clone3` returned.
fn fork_root(live: &[Live<'_>], tool_rseq_addr: u64) -> Result<isize, RestoreError> {
    let here = 0u8;
    let private = SelfMaps::private_writable(&[std::ptr::addr_of!(here) as u64, tool_rseq_addr])?;
    let dontfork = crate::sys::dontfork::DontFork::mark(&private);
    let ret = live[0].region.start(RESTORER_ENTRY, live[0].args_off);
    drop(dontfork);
    Ok(ret)
}

/// The root's PID from what `clone3` returned (`root`: the PID asked).
fn forked(ret: isize, root: u32) -> Result<Pid, RestoreError> {
    if ret == -(Errno::EXIST.raw_os_error() as isize) {
        return Err(RestoreError::PidBusy(root));
    }
    if ret < 0 {
        return Err(RestoreError::Sys(
            "clone3",
            Errno::from_raw_os_error(-ret as i32),
        ));
    }
    Pid::from_raw(ret as i32).ok_or(RestoreError::Sys("clone3", Errno::INVAL))
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
