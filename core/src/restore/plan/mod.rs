//! Turning [`TaskImages`] into the bootstrap region's contents: the
//! relocated restorer, the vDSO parking area, the restorer's stack, the
//! signal frame and the [`RestoreArgs`] with their arrays; and the files the
//! tool opens for the child beforehand.
//!
//! [`build`] runs named steps, in this order: the files ([`files`]: ghosts
//! by path, shared memory, fds), the VMAs ([`vmas`]), the fs struct and
//! executable ([`fs`]), signals and timers ([`signals`]), the region's
//! layout and place ([`layout`]), the arrays ([`arena`]), and last the
//! args and the region's bytes. The tree-wide file opener is built once,
//! where the tree is launched, and lent to every task's plan through
//! [`SharedFiles`].

mod arena;
mod attrs;
mod copy;
mod files;
mod fs;
mod layout;
mod signals;
mod vdso;
mod vmas;

use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::OFlags;

use crate::blob::RESTORER;
use crate::blob::bootstrap::RegionImage;
use crate::blob::restorer_abi::{
    CowArgs, PrctlMmMap, Region as AbiRegion, RestoreArgs, RestoreStatus, RseqArg, VmaArg,
};
use crate::images::pb;
use crate::sys::plain::{bytes_of, sigframe_bytes};

use super::fd_state::FdState;
use super::images::TaskImages;
use super::layout::SelfMaps;
use super::{RestoreError, regs};
use arena::{Arena, Arrays, Placed};
use attrs::{comm_arg, creds_arg, rlimits_arg, rseq_arg};
use layout::{Layout, hold_region};
use signals::{Signals, signals_arg};

const STACK_SIZE: usize = 64 * 1024;
/// Stack of each other thread while it runs the restorer.
const THREAD_STACK_SIZE: usize = 32 * 1024;
const MAP_SHARED: u32 = linux_raw_sys::general::MAP_SHARED;
const MAP_ANONYMOUS: u32 = linux_raw_sys::general::MAP_ANONYMOUS;
const PROT_WRITE: u32 = linux_raw_sys::general::PROT_WRITE;
const PROT_READ: u32 = linux_raw_sys::general::PROT_READ;
const SIGKILL: u64 = linux_raw_sys::general::SIGKILL as u64;
const SIGSTOP: u64 = linux_raw_sys::general::SIGSTOP as u64;
const SIGNAL_COUNT: u64 = 64;
/// Signal the child sends itself to get onto the restorer's stack.
const SWITCH_SIGNAL: u64 = linux_raw_sys::general::SIGUSR2 as u64;

/// Everything needed to start the child.
pub struct Plan {
    pub base: u64,
    /// The address space of the region, held from the moment its place
    /// was chosen (else an allocation of the tool could land there).
    pub hold: crate::blob::bootstrap::Reservation,
    pub image: crate::blob::bootstrap::RegionImage,
    pub args_off: usize,
    /// Fds the child inherits and moves or uses; closed in the tool once
    /// the child exists.
    pub fds: Vec<OwnedFd>,
    /// Offset in `image` of the `[ChildArg]` array (filled by the tree
    /// once every region's place is known).
    pub children_off: usize,
    /// The tool fds the task uses, ascending (see `RestoreArgs::pull`),
    /// and the offset in `image` of the args' `pull_fds` (filled once
    /// the fds of the tasks sharing its table are known too).
    pub pull: Vec<i32>,
    pub pull_off: usize,
    /// The page runs the tool copies into the task (`RestoreArgs::copy_runs`).
    pub copy_runs: Vec<crate::blob::restorer_abi::PageRun>,
}

/// What the tree decides for one task: its session and group, its
/// children, and the shared counters.
#[derive(Clone, Debug, Default)]
pub struct TaskRole {
    pub setsid: u32,
    pub pgid: i32,
    pub leads_group: u32,
    pub join_pgid: i32,
    pub nr_children: usize,
    /// Address of the tree's counters (0: alone).
    pub tree: u64,
    pub fault_stage: u32,
    /// `FD_TABLE_*`: whose fd table the task uses.
    pub fd_table: u32,
    /// `FD_TABLE_SHARED`: the PID of the table's owner.
    pub fd_owner: i32,
    /// `FD_TABLE_LENT`: how many tasks share its table.
    pub fd_sync_count: u32,
    /// The end of the table's pipe the task uses (a tool fd), or -1.
    pub fd_sync: i32,
    /// `clone3` flags of the tool's fork of the task (the root only):
    /// `CLONE_PARENT` for `--restore-sibling`.
    pub start_flags: u64,
    /// Its VMAs built in the tree's premap area, which is
    /// `[cow_area.0, cow_area.0 + cow_area.1)` (see [`super::cow`]).
    pub cow: Vec<super::cow::CowVma>,
    pub cow_area: (u64, u64),
    /// Tool fds of the `cgroup.procs` files the task writes itself into
    /// (see [`crate::cgroups::place`]).
    pub cgroup_fds: Vec<i32>,
    /// The root's own cgroup namespace: tool fds of the `cgroup.procs`
    /// files of its roots, joined before it is unshared.
    pub cgns_fds: Vec<i32>,
}

/// Files and shared memory opened once for the whole tree, inherited by
/// every task (the tool forks the root after all of them are open):
/// tasks sharing one file id get one open file description.
#[derive(Default)]
pub struct SharedFiles<'a> {
    /// Every fd the tool opens for the tasks is at or above this (above
    /// every task's highest target fd).
    pub min_fd: i32,
    /// File id (files.img) -> the tool's fd.
    files: std::collections::HashMap<u32, i32>,
    /// shmem object id -> the tool's fd.
    shm: std::collections::HashMap<u64, i32>,
    /// The descriptors themselves, closed once the root is forked.
    pub fds: Vec<OwnedFd>,
    /// The tree's file objects, each made once (built where the tree is
    /// launched; taken back once every task is planned).
    opener: Option<crate::files::Opener<'a>>,
    /// `--shell-job`: a stdio pipe to the outside is inherited from us.
    shell_job: bool,
    /// The masters RPC `orphan_pts_master` made (for the client).
    pub orphan_masters: Vec<OwnedFd>,
    /// TCP connections restored in repair mode (`--tcp-established`).
    pub tcp_repaired: crate::files::inet::tcp_repair::Repaired,
    /// The tool thread's rseq registration and FPU format, probed once.
    tool_state: Option<(RseqArg, regs::HostFpu)>,
    /// A pidfd of the tool, through which the tasks take their files
    /// (`RestoreArgs::pull`); -1: they inherit them all.
    pub tool_pidfd: i32,
    /// `--inherit-fd fd[N]:KEY`: files of the images named KEY are the
    /// tool's fd N instead (CRIU's keys, see [`crate::files::Opener::inherit_key`]).
    pub inherit: Vec<crate::opts::InheritFd>,
    /// The fds of `inherit` some file of the images took.
    pub inherit_used: std::collections::HashSet<i32>,
}

impl<'a> SharedFiles<'a> {
    /// `opener` opens the tree's files at or above `min_fd`.
    pub fn new(min_fd: i32, shell_job: bool, opener: crate::files::Opener<'a>) -> SharedFiles<'a> {
        SharedFiles {
            min_fd,
            shell_job,
            opener: Some(opener),
            tool_pidfd: -1,
            ..SharedFiles::default()
        }
    }

    /// The tool thread's rseq area (0 if none or not probed).
    pub fn tool_rseq_addr(&self) -> u64 {
        self.tool_state.as_ref().map_or(0, |s| s.0.addr)
    }

    /// What this thread's kernel state looks like (rseq to undo in the
    /// child; FPU state format for the frame). The same for every task:
    /// probed once per restore (a traced fork of the tool, whose cost
    /// grows with the tool's memory).
    fn tool_state(&mut self) -> Result<(RseqArg, regs::HostFpu), RestoreError> {
        if let Some(s) = self.tool_state {
            return Ok(s);
        }
        let s = crate::blob::bootstrap::with_traced_fork(|p| {
            Ok((
                crate::blob::bootstrap::rseq_of(p)?,
                regs::HostFpu::probe(p)?,
            ))
        })
        .map_err(|e| RestoreError::Sys("probing the tool's rseq/FPU state", e))?;
        self.tool_state = Some(s);
        Ok(s)
    }

    /// Once every task is planned: what no task holds (a pipe's other
    /// end, a FIFO's keeper) stays open with the rest until the root is
    /// forked (every task inherits it from there).
    pub fn all_planned(&mut self) {
        for i in self
            .inherit
            .iter()
            .filter(|i| !self.inherit_used.contains(&i.fd))
        {
            crate::pr_warn!(
                "--inherit-fd fd[{}]:{}: no file of the images is {}: the fd is not used",
                i.fd,
                i.key,
                i.key
            );
        }
        if let Some(mut o) = self.opener.take() {
            self.orphan_masters = o.take_orphan_masters();
            self.tcp_repaired = o.take_tcp_repaired();
            self.fds.extend(o.into_keep());
        }
    }
}

/// An fd opened by the tool at or above `min` (so it cannot collide with
/// any target fd of the task).
pub(super) fn high_fd(fd: OwnedFd, min: i32) -> Result<OwnedFd, RestoreError> {
    rustix::io::fcntl_dupfd_cloexec(&fd, min).map_err(|e| RestoreError::Sys("fcntl(F_DUPFD)", e))
}

/// Opens the regular file `reg` of the files image (a mapped file, the
/// exe, cwd or root) at or above `min`.
fn open_reg(reg: &pb::RegFileEntry, flags: OFlags, min: i32) -> Result<OwnedFd, RestoreError> {
    high_fd(crate::files::reg::open_entry(reg, flags)?, min)
}

/// What [`check`] checks once for the whole tree: the file images every
/// task shares (`t` is any task of the tree).
pub fn check_tree(t: &TaskImages) -> Result<(), RestoreError> {
    // Epoll targets are checked for the whole tree (`epoll_owners`): a
    // task sharing an instance need not hold them.
    t.other_files
        .check(&|id| t.reg_files.contains_key(&id))
        .map_err(Into::into)
}

/// The part of [`build`] that only looks at the images: every conversion
/// that can refuse them (fds of kinds not restored, registers, signals,
/// credentials), without opening a file or starting a process. Run first
/// so that bad images fail before anything exists.
pub fn check(t: &TaskImages, page_size: u64, task_size: u64) -> Result<(), RestoreError> {
    if t.reg_files.contains_key(&t.mm.exe_file_id) {
        check_mm_map(t, task_size)?;
    }
    for fi in &t.fdinfo {
        if !t.other_files.restorable(fi.id) && fi.fd > 2 {
            return Err(RestoreError::Unsupported(format!(
                "{}: fd {} (file id {}): a kind of file that is not restored yet",
                t.fdinfo_file, fi.fd, fi.id
            )));
        }
    }
    super::fd_state::check(t)?;
    let _ = vmas::page_runs(t, page_size);
    let pid = t.pstree.pid;
    creds_arg(&t.core, &format!("core-{pid}.img"))?;
    signals_arg(t)?;
    let _ = (rlimits_arg(t), comm_arg(&t.core), rseq_arg(&t.core));
    regs::frame_for(&t.core, 0, 0, &regs::HostFpu::default())?;
    for (tid, core) in &t.threads {
        creds_arg(core, &format!("core-{tid}.img"))?;
        regs::frame_for(core, 0, 0, &regs::HostFpu::default())?;
    }
    Ok(())
}

/// What `PR_SET_MM_MAP` would refuse (EINVAL, only once the task
/// exists): every boundary inside [mmap_min_addr, task size) and the
/// pairs in order. (An auxv longer than the kernel keeps, whose limit is
/// per arch, still fails cleanly in the restorer.)
fn check_mm_map(t: &TaskImages, task_size: u64) -> Result<(), RestoreError> {
    let m = &t.mm;
    let file = format!("mm-{}.img", t.pstree.pid);
    let bad = |what: String| RestoreError::Invalid {
        file: file.clone(),
        what,
    };
    let min = std::fs::read_to_string("/proc/sys/vm/mmap_min_addr")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(4096);
    let fields = [
        ("mm_start_code", m.mm_start_code),
        ("mm_end_code", m.mm_end_code),
        ("mm_start_data", m.mm_start_data),
        ("mm_end_data", m.mm_end_data),
        ("mm_start_brk", m.mm_start_brk),
        ("mm_brk", m.mm_brk),
        ("mm_start_stack", m.mm_start_stack),
        ("mm_arg_start", m.mm_arg_start),
        ("mm_arg_end", m.mm_arg_end),
        ("mm_env_start", m.mm_env_start),
        ("mm_env_end", m.mm_env_end),
    ];
    if let Some((name, v)) = fields.iter().find(|(_, v)| *v < min || *v >= task_size) {
        return Err(bad(format!("{name} {v:#x} is outside the address space")));
    }
    let pairs = [
        ("code", m.mm_start_code, m.mm_end_code, false),
        ("data", m.mm_start_data, m.mm_end_data, true),
        ("brk", m.mm_start_brk, m.mm_brk, true),
        ("arguments", m.mm_arg_start, m.mm_arg_end, true),
        ("environment", m.mm_env_start, m.mm_env_end, true),
    ];
    for (what, start, end, may_be_empty) in pairs {
        if start > end || (start == end && !may_be_empty) {
            return Err(bad(format!(
                "the {what} range {start:#x}-{end:#x} is inverted"
            )));
        }
    }
    Ok(())
}

/// The lowest fd the tool may open for the tasks `tasks`: above every
/// target fd of each, and above the one after them (a session leader may
/// need that one for a while, see [`free_fd`]).
pub fn min_fd<'a>(tasks: impl IntoIterator<Item = &'a TaskImages>) -> i32 {
    tasks
        .into_iter()
        .flat_map(|t| t.fdinfo.iter().map(|f| f.fd as i32))
        .max()
        .unwrap_or(2)
        .max(2)
        + 2
}

/// The lowest fd number task `t` does not use: where it holds a
/// descriptor for a moment during its restore (below [`min_fd`]).
fn free_fd(t: &TaskImages) -> u32 {
    (0..)
        .find(|n| !t.fdinfo.iter().any(|f| f.fd == *n))
        .unwrap_or(0)
}

/// What the steps before the layout made for one task, for the steps
/// after it.
struct Parts<'a, 'v> {
    t: &'a TaskImages,
    maps: &'v SelfMaps,
    vdso: super::vdso::TaskVdso<'v>,
    role: &'v TaskRole,
    page_size: u64,
    vmas: Vec<VmaArg>,
    fds: files::TaskFds,
    fd_state: FdState,
    sig: Signals,
    fs: fs::FsArgs,
    pages_fd: i32,
    exe_fd: Option<i32>,
    host: regs::HostFpu,
    tool_rseq: RseqArg,
    tool_pidfd: i32,
    min_fd: i32,
}

pub fn build<'a>(
    t: &'a TaskImages,
    maps: &SelfMaps,
    vdso: super::vdso::TaskVdso<'_>,
    page_size: u64,
    role: &TaskRole,
    shared: &mut SharedFiles<'a>,
    file_opts: super::fd_state::FileOpts<'_>,
) -> Result<Plan, RestoreError> {
    let regs_of = crate::files::reg::RegFiles {
        reg: &t.reg_files,
        ghosts: file_opts.ghosts,
    };
    // A session leader whose controlling terminal none of its own fds
    // holds gets it through a slave opened for it, at a free fd.
    let ctty = (role.setsid != 0)
        .then(|| crate::files::tty::ctty::unheld_ctty(&t.other_files, &t.fdinfo, t.pstree.pid))
        .flatten()
        .map(|c| (c, free_fd(t)));
    let tty = super::fd_state::TtyCtx {
        leader: role.setsid != 0,
        shell_job: shared.shell_job,
        orphan_pts_master: shared.opener.as_ref().is_some_and(|o| o.orphan_pts_master),
        ctty: ctty.map(|(c, fd)| (fd, c.pgrp)),
    };
    let fd_state = FdState::new(t, file_opts, tty)?;
    let min_fd = shared.min_fd;
    let shm_fds = files::open_shmem(t, shared)?;
    let task_fds = files::open_fds(t, shared, ctty)?;
    // The descriptors opened for this task alone.
    let mut fds: Vec<OwnedFd> = Vec::new();
    let sources = vmas::VmaSources {
        regs: regs_of,
        shm_fds: &shm_fds,
        role,
        page_size,
        min_fd,
    };
    let vma_args = vmas::vma_args(t, &sources, &mut fds)?;
    let pages_fd = vmas::open_pages(t, min_fd)?;
    let fs = fs::open_fs(t, regs_of, min_fd, &mut fds)?;
    let exe_fd = fs::open_exe(t, regs_of, min_fd)?;
    let sig = Signals::of(t);
    let (tool_rseq, host) = shared.tool_state()?;
    crate::pr_debug!("tool rseq {tool_rseq:x?}, host FPU {host:x?}");
    let parts = Parts {
        t,
        maps,
        vdso,
        role,
        page_size,
        vmas: vma_args,
        fds: task_fds,
        fd_state,
        sig,
        fs,
        pages_fd: pages_fd.as_raw_fd(),
        exe_fd: exe_fd.as_ref().map(AsRawFd::as_raw_fd),
        host,
        tool_rseq,
        tool_pidfd: shared.tool_pidfd,
        min_fd,
    };
    let lay = Layout::new(t.threads.len(), maps, page_size);
    let mut arena = Arena::default();
    let mut arrays = arena::push_arrays(&mut arena, &parts)?;
    let total = (lay.arrays_off + arena.buf.len()).next_multiple_of(page_size as usize);
    let (base, hold) = hold_region(maps, total as u64, &t.mm.vmas, page_size)?;
    let placed = arena::place(&mut arena, &parts, &arrays, &lay, (base, total as u64))?;
    if exe_fd.is_none() {
        crate::pr_warn!("no executable file in the images: mm boundaries are not restored");
    }
    let args = restore_args(&parts, &arrays, &lay, base, &placed)?;
    fds.extend(exe_fd);
    fds.push(pages_fd);
    let pull = pull_fds(&parts, &args);
    let image = region_bytes(total, &lay, base, &arena, &placed, &args)?;
    Ok(Plan {
        base,
        hold,
        image,
        args_off: lay.args_off,
        fds,
        children_off: lay.arrays_off + arrays.children.addr as usize,
        pull,
        pull_off: lay.args_off + std::mem::offset_of!(RestoreArgs, pull_fds),
        copy_runs: std::mem::take(&mut arrays.copy_list),
    })
}

/// The task's `PR_SET_MM_MAP` (its auxv at `auxv`), and whether it is set
/// (only with the executable's fd).
fn mm_map(t: &TaskImages, auxv: u64, exe_fd: Option<i32>) -> (PrctlMmMap, u32) {
    let mm_map = PrctlMmMap {
        start_code: t.mm.mm_start_code,
        end_code: t.mm.mm_end_code,
        start_data: t.mm.mm_start_data,
        end_data: t.mm.mm_end_data,
        start_brk: t.mm.mm_start_brk,
        brk: t.mm.mm_brk,
        start_stack: t.mm.mm_start_stack,
        arg_start: t.mm.mm_arg_start,
        arg_end: t.mm.mm_arg_end,
        env_start: t.mm.mm_env_start,
        env_end: t.mm.mm_env_end,
        auxv,
        auxv_size: (t.mm.mm_saved_auxv.len() * 8) as u32,
        exe_fd: exe_fd.map_or(0, |fd| fd as u32),
    };
    (mm_map, u32::from(exe_fd.is_some()))
}

/// The restorer's args for the region at `base`.
fn restore_args(
    p: &Parts<'_, '_>,
    a: &Arrays,
    lay: &Layout,
    base: u64,
    placed: &Placed,
) -> Result<RestoreArgs, RestoreError> {
    let (t, role) = (p.t, p.role);
    let at = |x| lay.at(base, x);
    let (mm_map, set_mm) = mm_map(t, at(a.auxv).addr, p.exe_fd);
    let pid = t.pstree.pid;
    Ok(RestoreArgs {
        pid: pid as i32,
        setsid: role.setsid,
        pgid: role.pgid,
        leads_group: role.leads_group,
        join_pgid: role.join_pgid,
        fd_table: role.fd_table,
        fd_sync: role.fd_sync,
        fd_sync_count: role.fd_sync_count,
        start_flags: role.start_flags,
        tree: role.tree,
        children: at(a.children),
        umask: p.fs.umask,
        cwd_fd: p.fs.cwd_fd,
        root_fd: p.fs.root_fd,
        fd_moves: at(a.moves),
        keep_fds: at(a.keep),
        // The restorer's alternate stack ends 16 bytes below the frame: the
        // kernel counts an sp equal to a stack's end as on that stack, and
        // rt_sigreturn (sp = frame + RT_SIGFRAME_OFFSET, 0 on s390x and
        // aarch64) would then silently keep this stack instead of the
        // task's (EPERM, which restore_altstack ignores).
        stack: AbiRegion {
            start: base + lay.stack_off as u64,
            end: base + (lay.stack_off + STACK_SIZE - 16) as u64,
        },
        switch_signal: SWITCH_SIGNAL,
        park: at(a.park),
        unmap: at(a.unmap),
        vmas: at(a.vmas),
        pages_fd: p.pages_fd,
        set_mm,
        page_runs: at(a.runs),
        unpark: at(a.unpark),
        mm_map,
        sigactions: at(a.sigs),
        itimers: at(a.itimers),
        posix_timers: at(a.posix),
        creds: creds_arg(&t.core, &format!("core-{pid}.img"))?,
        rlimits: at(a.rlimits),
        signals: at(a.signals),
        comm: comm_arg(&t.core),
        task_rseq: rseq_arg(&t.core),
        fault_stage: role.fault_stage,
        arch_syscalls: at(a.arch),
        sigreturn_sp: base + lay.frame_off as u64 + criu_arch::RT_SIGFRAME_OFFSET as u64,
        tool_rseq: p.tool_rseq,
        attrs: super::task_attrs::arg(t),
        threads: at(a.threads),
        fd_calls: at(a.fd_calls),
        thread_pointer: placed.frame.thread_pointer,
        madvise: at(a.madvise),
        pull: u32::from(p.tool_pidfd >= 0),
        tool_pidfd: p.tool_pidfd,
        tool_fds_from: p.min_fd,
        vdso_patches: at(a.patches),
        vdso_mark: placed.vdso_mark,
        cow: CowArgs {
            unmap: at(a.cow[0]),
            maps: at(a.cow[1]),
            fill: at(a.cow[2]),
            compare: at(a.cow[3]),
            discard: at(a.cow[4]),
            moves: at(a.cow[5]),
            skipped: 0,
        },
        copy_runs: at(a.copy_runs),
        copy_vmas: at(a.copy_vmas),
        cgroup_fds: at(a.cgroup_fds),
        cgns_fds: at(a.cgns_fds),
        seccomp: a
            .seccomp
            .first()
            .map(|&s| arena::seccomp_arg(lay, base, s))
            .unwrap_or_default(),
        status: RestoreStatus {
            uffd: -1,
            ..RestoreStatus::default()
        },
        ..RestoreArgs::default()
    })
}

/// Every tool fd the args name (all at or above `min_fd`), ascending.
fn pull_fds(p: &Parts<'_, '_>, args: &RestoreArgs) -> Vec<i32> {
    let mut pull: Vec<i32> = p
        .fds
        .moves
        .iter()
        .map(|m| m.from)
        .chain(p.vmas.iter().map(|v| v.fd))
        .chain([args.pages_fd, p.fs.cwd_fd, p.fs.root_fd, p.role.fd_sync])
        .chain((args.set_mm != 0).then_some(args.mm_map.exe_fd as i32))
        .chain(p.role.cgroup_fds.iter().copied())
        .chain(p.role.cgns_fds.iter().copied())
        .filter(|&fd| fd >= p.min_fd)
        .collect();
    pull.sort_unstable();
    pull.dedup();
    pull
}

/// The region's contents: the relocated restorer, the frames, the args and
/// the arena (the stacks stay zero).
fn region_bytes(
    total: usize,
    lay: &Layout,
    base: u64,
    arena: &Arena,
    placed: &Placed,
    args: &RestoreArgs,
) -> Result<RegionImage, RestoreError> {
    let mut image = RegionImage::new(total);
    let mut blob = vec![0u8; lay.blob_len];
    RESTORER
        .relocate_into(&mut blob, base)
        .map_err(|e| RestoreError::Unsupported(e.to_string()))?;
    image.put(0, &blob);
    image.put(lay.frame_off, sigframe_bytes(&placed.frame.frame));
    for (off, f) in &placed.thread_frames {
        image.put(*off as usize, sigframe_bytes(f));
    }
    // The args and the arena that follows them as one part (the arena's
    // arrays are patched in place later: children, pull lists).
    let mut tail = vec![0u8; lay.arrays_off - lay.args_off + arena.buf.len()];
    tail[..size_of::<RestoreArgs>()].copy_from_slice(bytes_of(args));
    tail[lay.arrays_off - lay.args_off..].copy_from_slice(&arena.buf);
    image.put(lay.args_off, &tail);
    Ok(image)
}
