//! Turning [`TaskImages`] into the bootstrap region's contents: the
//! relocated restorer, the vDSO parking area, the restorer's stack, the
//! signal frame and the [`RestoreArgs`] with their arrays; and the files the
//! tool opens for the child beforehand.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::OFlags;

use crate::blob::RESTORER;
use crate::blob::restorer_abi::{
    Array, CODE_PATCH_MAX, ChildArg, CodePatch, CowArgs, CredsArg, FdMove, ItimerArg, MAX_GROUPS,
    PageRun, PosixTimerArg, PrctlMmMap, RawSyscall, Region as AbiRegion, Remap, RestoreArgs,
    RlimitArg, RseqArg, SigactionArg, SiginfoArg, ThreadArg, VdsoMarkArg, VmaArg,
};
use crate::images::pb;
use rustix::io::Errno;

use super::images::{TaskImages, is_file_vma, is_mapped_vma};
use super::layout::SelfMaps;
use super::{RestoreError, regs};
use crate::blob::bootstrap::bytes_of;

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
    pub image: Vec<u8>,
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

    /// Once every task is planned: what no task holds (a pipe's other
    /// end, a FIFO's keeper) stays open with the rest until the root is
    /// forked (every task inherits it from there).
    pub fn all_planned(&mut self) {
        if let Some(mut o) = self.opener.take() {
            self.orphan_masters = o.take_orphan_masters();
            self.tcp_repaired = o.take_tcp_repaired();
            self.fds.extend(o.into_keep());
        }
    }
}

/// Arrays laid out after the args; addresses are offsets until `rebase`.
struct Arena {
    buf: Vec<u8>,
}

impl Arena {
    fn push<T: Copy>(&mut self, items: &[T]) -> Array {
        while !self.buf.len().is_multiple_of(16) {
            self.buf.push(0);
        }
        let off = self.buf.len();
        for it in items {
            self.buf.extend_from_slice(bytes_of(it));
        }
        Array {
            addr: off as u64,
            len: items.len() as u64,
        }
    }
}

/// An fd opened by the tool at or above `min` (so it cannot collide with
/// any target fd of the task).
pub(super) fn high_fd(fd: OwnedFd, min: i32) -> Result<OwnedFd, RestoreError> {
    rustix::io::fcntl_dupfd_cloexec(&fd, min).map_err(|e| RestoreError::Sys("fcntl(F_DUPFD)", e))
}

/// Opens the regular file `reg` of the files image (a mapped file, the
/// exe, cwd or root); an error names the image entry too (a damaged image
/// is the likelier cause than a lost file).
fn open_reg(reg: &pb::RegFileEntry, flags: OFlags, min: i32) -> Result<OwnedFd, RestoreError> {
    let fd = crate::files::reg::open_path(&reg.name, flags).map_err(|e| {
        RestoreError::Open(format!("{} (file id {} of files.img)", reg.name, reg.id), e)
    })?;
    high_fd(fd, min)
}

/// What [`check`] checks once for the whole tree: the file images every
/// task shares (`t` is any task of the tree).
pub fn check_tree(t: &TaskImages) -> Result<(), RestoreError> {
    t.other_files.check(&|id| t.reg_files.contains_key(&id))?;
    super::fd_state::check_tree(t)
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
    let _ = page_runs(t, page_size);
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

pub fn build<'a>(
    t: &'a TaskImages,
    maps: &SelfMaps,
    vdso: super::vdso::TaskVdso<'_>,
    page_size: u64,
    role: &TaskRole,
    shared: &mut SharedFiles<'a>,
    file_opts: super::fd_state::FileOpts<'_>,
) -> Result<Plan, RestoreError> {
    let pid = t.pstree.pid;
    // Ghost files are opened by the path they were created at (looked up
    // per file: the tree's table is shared, never copied per task).
    let reg_of = |id: u32| -> Option<std::borrow::Cow<'_, pb::RegFileEntry>> {
        let reg = t.reg_files.get(&id)?;
        Some(match file_opts.ghosts.path_of(id) {
            Some(p) => std::borrow::Cow::Owned(pb::RegFileEntry {
                name: p.display().to_string(),
                ..reg.clone()
            }),
            None => std::borrow::Cow::Borrowed(reg),
        })
    };
    // A session leader whose controlling terminal none of its own fds
    // holds gets it through a slave opened for it, at a free fd.
    let ctty = (role.setsid != 0)
        .then(|| crate::files::tty::restore::unheld_ctty(&t.other_files, &t.fdinfo, pid))
        .flatten()
        .map(|c| (c, free_fd(t)));
    let tty = super::fd_state::TtyCtx {
        leader: role.setsid != 0,
        shell_job: shared.shell_job,
        ctty: ctty.map(|(c, fd)| (fd, c.pgrp)),
    };
    let fd_state = super::fd_state::FdState::new(t, file_opts, tty)?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    let min_fd = shared.min_fd;
    let keep_raw = |fd: &OwnedFd| fd.as_raw_fd();

    // Shared memory objects, created and filled here (once per tree); the
    // restorer maps their descriptors.
    let mut shm_fds = Vec::with_capacity(t.shmem.len());
    for o in &t.shmem {
        if let Some(&fd) = shared.shm.get(&o.shmid) {
            shm_fds.push(fd);
            continue;
        }
        let fd = high_fd(super::shmem::create(o)?, min_fd)?;
        crate::pr_debug!(
            "shmem object {} ({} bytes, {} runs) is fd {}",
            o.shmid,
            o.size,
            o.runs.len(),
            fd.as_raw_fd()
        );
        // A memfd's fds are opened from the object made here.
        if let (Some(m), Some(op)) = (&o.memfd, shared.opener.as_mut()) {
            op.note_memfd(m.inode_id, o.shmid, &fd)?;
        }
        shared.shm.insert(o.shmid, fd.as_raw_fd());
        shm_fds.push(fd.as_raw_fd());
        shared.fds.push(fd);
    }

    // Task fds: every file id opened once by the kind its entry names
    // (each kernel object made once for the tree: files.img is the
    // tree's) and dup'ed to each fd holding it; std fds the images do not
    // know, and a shell job's stdio pipe to the outside (a new pipe would
    // lead nowhere), are inherited from the tool, like CRIU's --shell-job.
    let mut moves = Vec::new();
    let mut keep: Vec<i32> = Vec::new();
    let shell_job = shared.shell_job;
    let opener = shared.opener.as_mut().ok_or(RestoreError::Unsupported(
        "internal: the tree's file opener was not made before planning".into(),
    ))?;
    let opened = &mut shared.files;
    for fi in &t.fdinfo {
        let target = fi.fd as i32;
        let cloexec = if fi.flags & 1 != 0 {
            OFlags::CLOEXEC.bits()
        } else {
            0
        };
        keep.push(target);
        let from = match opened.get(&fi.id) {
            Some(&from) => from,
            None if !opener.restorable(fi.id)
                || (shell_job && target <= 2 && opener.outside_pipe(fi.id)) =>
            {
                if target > 2 {
                    return Err(RestoreError::Unsupported(format!(
                        "{}: fd {target} (file id {}): a kind of file that is not restored yet",
                        t.fdinfo_file, fi.id
                    )));
                }
                crate::pr_warn!("fd {target}: inheriting the tool's fd {target}");
                continue;
            }
            None => {
                let fd = opener.open(fi.id)?;
                let raw = keep_raw(&fd);
                opened.insert(fi.id, raw);
                shared.fds.push(fd);
                raw
            }
        };
        // FD_CLOEXEC is per descriptor: it comes from the fdinfo.
        moves.push(FdMove {
            from,
            to: target,
            flags: cloexec,
        });
    }
    if let Some((c, target)) = ctty {
        let fd = high_fd(opener.ctty_slave(c.index)?, min_fd)?;
        moves.push(FdMove {
            from: keep_raw(&fd),
            to: target as i32,
            flags: OFlags::CLOEXEC.bits(),
        });
        keep.push(target as i32);
        shared.fds.push(fd);
    }
    if t.no_fdinfo_image {
        keep.extend([0, 1, 2]);
    }
    keep.sort_unstable();
    keep.dedup();

    // VMAs and the files they map.
    let mut vmas = Vec::new();
    for v in t.mm.vmas.iter().filter(|v| is_mapped_vma(v)) {
        // The first run ending above the VMA's start (runs are sorted).
        let first = t
            .pages
            .partition_point(|r| r.vaddr + r.nr_pages * page_size <= v.start);
        let has_pages = t.pages.get(first).is_some_and(|r| r.vaddr < v.end);
        if let Some(i) = super::shmem::index_of(&t.shmem, v, &t.memfd_files) {
            // The object holds its contents already: map it as it was. A
            // private mapping of a memfd may have copied-on-write pages of
            // its own in the task's pagemap, read in like a file's.
            let fd = match super::shmem::memfd_mapping_mode(v, &t.memfd_files) {
                // The memfd_create'd description: it counts as no writer.
                Some(m) if m != OFlags::RDWR => {
                    let f = high_fd(crate::files::memfd::reopen(shm_fds[i], m)?, min_fd)?;
                    let raw = f.as_raw_fd();
                    fds.push(f);
                    raw
                }
                _ => shm_fds[i],
            };
            vmas.push(VmaArg {
                start: v.start,
                end: v.end,
                offset: v.pgoff,
                map_prot: if has_pages {
                    v.prot | PROT_WRITE
                } else {
                    v.prot
                },
                flags: v.flags & !MAP_ANONYMOUS,
                fd,
                final_prot: v.prot,
                ..VmaArg::default()
            });
            continue;
        }
        let mut fd = -1;
        if is_file_vma(v) {
            let reg = reg_of(v.shmid as u32).ok_or_else(|| {
                RestoreError::Unsupported(format!("no file for VMA {:#x}", v.start))
            })?;
            let f = open_reg(&reg, vma_open_mode(v), min_fd)?;
            fd = f.as_raw_fd();
            fds.push(f);
        }
        // A premapped VMA comes read-write from its slot.
        let premapped = role.cow.iter().any(|c| c.start == v.start);
        let map_prot = if premapped {
            PROT_READ | PROT_WRITE
        } else if has_pages {
            v.prot | PROT_WRITE
        } else {
            v.prot
        };
        vmas.push(VmaArg {
            start: v.start,
            end: v.end,
            offset: v.pgoff,
            map_prot,
            flags: v.flags,
            fd,
            final_prot: v.prot,
            premapped: u32::from(premapped),
            _pad: 0,
        });
    }

    let pages = File::open(&t.pages_path).map_err(|e| {
        RestoreError::Open(
            t.pages_path.display().to_string(),
            rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
        )
    })?;
    let pages_fd = high_fd(pages.into(), min_fd)?;

    // fs: cwd and root are directory paths in the files images.
    let mut cwd_fd = -1;
    let mut root_fd = -1;
    let mut umask = u32::MAX;
    if let Some(fs) = &t.fs {
        for (id, slot) in [(fs.cwd_id, &mut cwd_fd), (fs.root_id, &mut root_fd)] {
            if let Some(reg) = reg_of(id) {
                let d = open_reg(&reg, OFlags::RDONLY | OFlags::DIRECTORY, min_fd)?;
                // The task's root is ours already in the common case: no
                // chroot then (it needs CAP_SYS_CHROOT, which
                // --unprivileged does without).
                if id == fs.root_id && same_dir_as_our_root(&d) {
                    continue;
                }
                *slot = d.as_raw_fd();
                fds.push(d);
            }
        }
        umask = fs.umask.unwrap_or(u32::MAX);
    }

    // mm boundaries and the executable.
    let mut exe_fd = None;
    if let Some(reg) = reg_of(t.mm.exe_file_id) {
        exe_fd = Some(open_reg(&reg, OFlags::RDONLY, min_fd)?);
    }

    // Signals: every catchable signal gets its dumped action (or SIG_DFL).
    let tc = t.core.tc.as_ref();
    let dumped: Vec<&pb::SaEntry> = tc
        .map(|tc| tc.sigactions.iter().collect())
        .unwrap_or_default();
    let mut sigs = Vec::new();
    let mut idx = 0;
    for sig in 1..=SIGNAL_COUNT {
        if sig == SIGKILL || sig == SIGSTOP {
            continue;
        }
        let sa = dumped.get(idx);
        idx += 1;
        sigs.push(SigactionArg {
            sig,
            handler: sa.map_or(0, |s| s.sigaction),
            flags: sa.map_or(0, |s| s.flags),
            restorer: sa.map_or(0, |s| s.restorer),
            mask: sa.map_or(0, |s| s.mask),
        });
    }
    let mut itimers = Vec::new();
    let mut posix = Vec::new();
    if let Some(tm) = tc.and_then(|tc| tc.timers.as_ref()) {
        let mut sorted: Vec<&pb::PosixTimerEntry> = tm.posix.iter().collect();
        sorted.sort_by_key(|p| p.it_id);
        for p in sorted {
            posix.push(PosixTimerArg {
                id: p.it_id as i32,
                clock: p.clock_id as i32,
                signo: p.si_signo as i32,
                notify: p.it_sigev_notify as i32,
                sival: p.sival_ptr,
                tid: p.notify_thread_id.unwrap_or(0),
                _pad: 0,
                interval_sec: p.isec,
                interval_nsec: p.insec,
                value_sec: p.vsec,
                value_nsec: p.vnsec,
            });
        }
        for (which, it) in [(0u64, &tm.real), (1, &tm.virt), (2, &tm.prof)] {
            // A periodic ITIMER_REAL that expired while its SIGALRM was
            // pending reads as 0 left (the kernel re-arms it only when the
            // signal is taken); setitimer with a zero value would disarm
            // it for good, so it gets a whole interval, as in CRIU.
            let (value_sec, value_usec) = match (it.vsec, it.vusec) {
                (0, 0) => (it.isec, it.iusec),
                v => v,
            };
            itimers.push(ItimerArg {
                which,
                interval_sec: it.isec,
                interval_usec: it.iusec,
                value_sec,
                value_usec,
            });
        }
    }
    let sigmask = t
        .core
        .thread_core
        .as_ref()
        .and_then(|tc| tc.blk_sigset)
        .or(tc.map(|tc| tc.blk_sigset))
        .unwrap_or(0);

    // What this thread's kernel state looks like (rseq to undo in the
    // child; FPU state format for the frame).
    // The same for every task: probed once per restore (a traced fork of
    // the tool, whose cost grows with the tool's memory).
    let (tool_rseq, host) = match &shared.tool_state {
        Some(s) => *s,
        None => {
            let s = crate::blob::bootstrap::with_traced_fork(|p| {
                Ok((
                    crate::blob::bootstrap::rseq_of(p)?,
                    regs::HostFpu::probe(p)?,
                ))
            })
            .map_err(|e| RestoreError::Sys("probing the tool's rseq/FPU state", e))?;
            shared.tool_state = Some(s);
            s
        }
    };
    crate::pr_debug!("tool rseq {tool_rseq:x?}, host FPU {host:x?}");

    // Sizes first: the region's address depends on its size.
    let blob_len = (RESTORER.mem_size() as u64).next_multiple_of(page_size) as usize;
    let park_len = maps.vdso_span() as usize;
    let frame_size = criu_arch::SIGFRAME_SIZE.next_multiple_of(64);
    let stack_off = blob_len + park_len;
    let frame_off = stack_off + STACK_SIZE;
    // Each other thread: its stack, then its frame (the stack's top).
    let threads_off = frame_off + frame_size;
    let thread_len = THREAD_STACK_SIZE + frame_size;
    let args_off = threads_off + t.threads.len() * thread_len;
    let arrays_off = (args_off + size_of::<RestoreArgs>()).next_multiple_of(64);

    let mut arena = Arena { buf: Vec::new() };
    let park_placeholder = maps.park_list(0);
    let a_park = arena.push(&park_placeholder);
    let a_unmap = arena.push(&[AbiRegion::default(); 4]);
    let a_vmas = arena.push(&vmas);
    let mut runs = page_runs(t, page_size);
    let (area, area_len) = role.cow_area;
    let cow = super::cow::task_arrays(&role.cow, area, area_len, &mut runs);
    let a_runs = arena.push(&runs);
    let cow_arrays = [
        arena.push(&cow.unmap),
        arena.push(&cow.maps),
        arena.push(&cow.fill),
        arena.push(&cow.compare),
        arena.push(&cow.discard),
        arena.push(&cow.moves),
    ];
    // The vDSO's remaps (one per area of this kernel's, wherever they go),
    // the proxy's jumps (their number is known before their addresses).
    let a_unpark = arena.push(&maps.park_list(0));
    let nr_patches = vdso_patches(t, vdso, 0)?.len();
    let a_patches = arena.push(&vec![CodePatch::default(); nr_patches]);
    let a_sigs = arena.push(&sigs);
    let a_itimers = arena.push(&itimers);
    let a_posix = arena.push(&posix);
    let a_rlimits = arena.push(&rlimits_arg(t));
    let a_signals = arena.push(&signals_arg(t)?);
    // The other threads' arrays (no addresses in them), and their list,
    // filled in once the base is known.
    let mut thread_arrays = Vec::with_capacity(t.threads.len());
    for (tid, core) in &t.threads {
        let file = format!("core-{tid}.img");
        let tcore = core.thread_core.as_ref();
        let signals = siginfos(tcore.and_then(|c| c.signals_p.as_ref()), 0, &file)?;
        let sigmask = tcore.and_then(|c| c.blk_sigset).unwrap_or(sigmask);
        let mut calls = regs::frame_for(core, 0, sigmask, &host)?.arch_syscalls;
        calls.extend(robust_list_call(core));
        thread_arrays.push((arena.push(&signals), arena.push(&calls), sigmask));
    }
    let a_threads = arena.push(&vec![ThreadArg::default(); t.threads.len()]);
    let a_moves = arena.push(&moves);
    let a_events = arena.push(&fd_state.events);
    let a_flocks = arena.push(&fd_state.flocks);
    let a_fd_calls = arena.push(&vec![RawSyscall::default(); fd_state.count()]);
    let a_words = arena.push(&fd_state.words);
    let a_keep = arena.push(&keep);
    let a_children = arena.push(&vec![ChildArg::default(); role.nr_children]);
    let auxv: Vec<u64> = t.mm.mm_saved_auxv.clone();
    let a_auxv = arena.push(&auxv);
    // arch syscalls: the count is known without the frame address.
    let probe = regs::frame_for(&t.core, 0, sigmask, &host)?;
    let robust = robust_list_call(&t.core);
    let a_arch = arena.push(&[probe.arch_syscalls, robust.clone()].concat());
    let a_madvise = arena.push(&madvise_calls(t));

    let total = (arrays_off + arena.buf.len()).next_multiple_of(page_size as usize);
    let (base, hold) = hold_region(maps, total as u64, &t.mm.vmas, page_size)?;
    let at = |a: Array| Array {
        addr: if a.len == 0 {
            0
        } else {
            base + arrays_off as u64 + a.addr
        },
        len: a.len,
    };

    // Now that the base is known: rewrite the address-dependent arrays.
    let park = maps.park_list(base + blob_len as u64);
    // The premap area stays: its slots become the task's VMAs.
    let unmap = super::cow::except(
        &maps.unmap_list(base, base + total as u64, page_size),
        (area, area + area_len),
    );
    let park_at = base + blob_len as u64;
    let (unpark, patches, vdso_mark) = vdso_moves(
        t,
        maps,
        vdso,
        park_at,
        (base, base + total as u64),
        page_size,
    )?;
    let mut frame = regs::frame_for(&t.core, base + frame_off as u64, sigmask, &host)?;
    // The task's alternate signal stack comes back with rt_sigreturn.
    // (A disabled one stays disabled: the frame already says so.)
    set_altstack(&mut frame, &t.core);
    // The other threads: frames at their addresses, and their list.
    let mut thread_frames = Vec::with_capacity(t.threads.len());
    let mut thread_args = Vec::with_capacity(t.threads.len());
    for (i, ((tid, core), &(a_sig, a_calls, sigmask))) in
        t.threads.iter().zip(&thread_arrays).enumerate()
    {
        let stack = base + (threads_off + i * thread_len) as u64;
        let frame_addr = stack + THREAD_STACK_SIZE as u64;
        let mut f = regs::frame_for(core, frame_addr, sigmask, &host)?;
        set_altstack(&mut f, core);
        thread_frames.push((frame_addr - base, f.frame));
        thread_args.push(ThreadArg {
            tid: *tid as i32,
            stack: AbiRegion {
                start: stack,
                end: frame_addr,
            },
            sigreturn_sp: frame_addr + criu_arch::RT_SIGFRAME_OFFSET as u64,
            signals: at(a_sig),
            arch_syscalls: at(a_calls),
            rseq: rseq_arg(core),
            comm: comm_arg(core),
            creds: creds_arg(core, &format!("core-{tid}.img"))?,
            attrs: super::task_attrs::thread_arg(core),
            thread_pointer: f.thread_pointer,
            ..ThreadArg::default()
        });
    }
    for (a, bytes) in [
        (a_park, vec_bytes(&park)),
        (a_unmap, vec_bytes(&unmap)),
        (a_unpark, vec_bytes(&unpark)),
        (a_patches, vec_bytes(&patches)),
        (a_arch, vec_bytes(&[frame.arch_syscalls, robust].concat())),
        (a_threads, vec_bytes(&thread_args)),
        (
            a_fd_calls,
            vec_bytes(&fd_state.calls(at(a_events).addr, at(a_flocks).addr, at(a_words).addr)),
        ),
    ] {
        let off = a.addr as usize;
        arena.buf[off..off + bytes.len()].copy_from_slice(&bytes);
    }

    let mut mm_map = PrctlMmMap {
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
        auxv: at(a_auxv).addr,
        auxv_size: (auxv.len() * 8) as u32,
        exe_fd: 0,
    };
    let set_mm = match &exe_fd {
        Some(fd) => {
            mm_map.exe_fd = fd.as_raw_fd() as u32;
            1
        }
        None => {
            crate::pr_warn!("no executable file in the images: mm boundaries are not restored");
            0
        }
    };
    if let Some(fd) = exe_fd {
        fds.push(fd);
    }

    let args = RestoreArgs {
        pid: t.pstree.pid as i32,
        setsid: role.setsid,
        pgid: role.pgid,
        leads_group: role.leads_group,
        join_pgid: role.join_pgid,
        fd_table: role.fd_table,
        fd_sync: role.fd_sync,
        fd_sync_count: role.fd_sync_count,
        start_flags: role.start_flags,
        tree: role.tree,
        children: at(a_children),
        umask,
        cwd_fd,
        root_fd,
        fd_moves: at(a_moves),
        keep_fds: at(a_keep),
        // The restorer's alternate stack ends 16 bytes below the frame: the
        // kernel counts an sp equal to a stack's end as on that stack, and
        // rt_sigreturn (sp = frame + RT_SIGFRAME_OFFSET, 0 on s390x and
        // aarch64) would then silently keep this stack instead of the
        // task's (EPERM, which restore_altstack ignores).
        stack: AbiRegion {
            start: base + stack_off as u64,
            end: base + (stack_off + STACK_SIZE - 16) as u64,
        },
        switch_signal: SWITCH_SIGNAL,
        park: at(a_park),
        unmap: at(a_unmap),
        vmas: at(a_vmas),
        pages_fd: pages_fd.as_raw_fd(),
        set_mm,
        page_runs: at(a_runs),
        unpark: at(a_unpark),
        mm_map,
        sigactions: at(a_sigs),
        itimers: at(a_itimers),
        posix_timers: at(a_posix),
        creds: creds_arg(&t.core, &format!("core-{pid}.img"))?,
        rlimits: at(a_rlimits),
        signals: at(a_signals),
        comm: comm_arg(&t.core),
        task_rseq: rseq_arg(&t.core),
        fault_stage: role.fault_stage,
        arch_syscalls: at(a_arch),
        sigreturn_sp: base + frame_off as u64 + criu_arch::RT_SIGFRAME_OFFSET as u64,
        tool_rseq,
        attrs: super::task_attrs::arg(t),
        threads: at(a_threads),
        fd_calls: at(a_fd_calls),
        thread_pointer: frame.thread_pointer,
        madvise: at(a_madvise),
        pull: u32::from(shared.tool_pidfd >= 0),
        tool_pidfd: shared.tool_pidfd,
        tool_fds_from: min_fd,
        vdso_patches: at(a_patches),
        vdso_mark,
        cow: CowArgs {
            unmap: at(cow_arrays[0]),
            maps: at(cow_arrays[1]),
            fill: at(cow_arrays[2]),
            compare: at(cow_arrays[3]),
            discard: at(cow_arrays[4]),
            moves: at(cow_arrays[5]),
            skipped: 0,
        },
        ..RestoreArgs::default()
    };
    fds.push(pages_fd);
    // Every tool fd the args name (all at or above min_fd).
    let mut pull: Vec<i32> = moves
        .iter()
        .map(|m| m.from)
        .chain(vmas.iter().map(|v| v.fd))
        .chain([args.pages_fd, cwd_fd, root_fd, role.fd_sync])
        .chain((set_mm != 0).then_some(args.mm_map.exe_fd as i32))
        .filter(|&fd| fd >= min_fd)
        .collect();
    pull.sort_unstable();
    pull.dedup();

    let mut image = vec![0u8; total];
    RESTORER
        .relocate_into(&mut image[..blob_len], base)
        .map_err(|e| RestoreError::Unsupported(e.to_string()))?;
    image[frame_off..frame_off + size_of::<criu_arch::RtSigframe>()]
        .copy_from_slice(bytes_of(&*frame.frame));
    for (off, f) in &thread_frames {
        let off = *off as usize;
        image[off..off + size_of::<criu_arch::RtSigframe>()].copy_from_slice(bytes_of(&**f));
    }
    image[args_off..args_off + size_of::<RestoreArgs>()].copy_from_slice(bytes_of(&args));
    image[arrays_off..arrays_off + arena.buf.len()].copy_from_slice(&arena.buf);
    Ok(Plan {
        base,
        hold,
        image,
        args_off,
        fds,
        children_off: arrays_off + a_children.addr as usize,
        pull,
        pull_off: args_off + std::mem::offset_of!(RestoreArgs, pull_fds),
    })
}

/// Chooses the region's place (free in the tool and in the task) and holds
/// it at once. `maps` was read before this task's plan (and the earlier
/// ones') allocated memory, which may sit where it shows a gap: a place
/// found taken is chosen again with the tool's mappings as they are now.
fn hold_region(
    maps: &SelfMaps,
    total: u64,
    vmas: &[pb::VmaEntry],
    page_size: u64,
) -> Result<(u64, crate::blob::bootstrap::Reservation), RestoreError> {
    const TRIES: usize = 8;
    let mut now = maps.clone();
    for _ in 0..TRIES {
        let base = now.free_region(total, vmas, page_size)?;
        match crate::blob::bootstrap::Reservation::at(base, total) {
            Ok(hold) => return Ok((base, hold)),
            Err(Errno::EXIST) => {
                let fresh = SelfMaps::read()?;
                now.all.extend(fresh.all);
                now.all.sort_unstable();
            }
            Err(e) => return Err(RestoreError::Sys("mmap(bootstrap region)", e)),
        }
    }
    Err(RestoreError::Sys("mmap(bootstrap region)", Errno::EXIST))
}

fn vec_bytes<T: Copy>(v: &[T]) -> Vec<u8> {
    v.iter().flat_map(|x| bytes_of(x).to_vec()).collect()
}

/// The page runs to read, cut at VMA boundaries and limited to the VMAs the
/// restorer maps (the vDSO's dumped pages are skipped), with their offsets
/// in the pages image.
fn page_runs(t: &TaskImages, page_size: u64) -> Vec<PageRun> {
    // Both lists are sorted and disjoint (checked when read): one merge.
    let mapped: Vec<&pb::VmaEntry> = t.mm.vmas.iter().filter(|v| is_mapped_vma(v)).collect();
    let mut out: Vec<PageRun> = Vec::new();
    for r in &t.pages {
        let end = r.vaddr + r.nr_pages * page_size;
        let first = mapped.partition_point(|v| v.end <= r.vaddr);
        for v in mapped[first..].iter().take_while(|v| v.start < end) {
            let (s, e) = (r.vaddr.max(v.start), end.min(v.end));
            if s >= e {
                continue;
            }
            let offset = r.offset + (s - r.vaddr);
            // Pieces of one run in adjacent VMAs are read in one go (every
            // VMA with pages is mapped writable until the pages are in).
            match out.last_mut() {
                Some(p) if p.addr + p.len == s && p.offset + p.len == offset => p.len += e - s,
                _ => out.push(PageRun {
                    addr: s,
                    len: e - s,
                    offset,
                }),
            }
        }
    }
    out
}

/// The thread's alternate signal stack comes back with rt_sigreturn. (A
/// disabled one stays disabled: the frame already says so.)
fn set_altstack(frame: &mut regs::Frame, core: &pb::CoreEntry) {
    let sas = core.thread_core.as_ref().and_then(|tc| tc.sas.as_ref());
    if let Some(sas) =
        sas.filter(|s| s.ss_flags & criu_arch::SS_DISABLE as u32 == 0 && s.ss_size != 0)
    {
        frame.frame.set_altstack(criu_arch::StackT {
            sp: sas.ss_sp,
            flags: sas.ss_flags as i32,
            _pad: 0,
            size: sas.ss_size,
        });
    }
}

/// `set_robust_list(head, len)` of a thread that had one (glibc registers
/// it in every thread; the kernel walks it when the thread exits).
fn robust_list_call(core: &pb::CoreEntry) -> Vec<RawSyscall> {
    match core.thread_core.as_ref() {
        Some(tc) if tc.futex_rla != 0 => vec![RawSyscall {
            nr: criu_arch::nr::SET_ROBUST_LIST as u64,
            args: [tc.futex_rla, u64::from(tc.futex_rla_len), 0, 0, 0, 0],
        }],
        _ => Vec::new(),
    }
}

/// A thread's dumped credentials (`thread_core.creds`) for the restorer.
fn creds_arg(core: &pb::CoreEntry, file: &str) -> Result<CredsArg, RestoreError> {
    let Some(c) = core.thread_core.as_ref().and_then(|tc| tc.creds.as_ref()) else {
        return Ok(CredsArg::default());
    };
    check_lsm_label(c, file)?;
    if c.groups.len() > MAX_GROUPS {
        return Err(RestoreError::Unsupported(format!(
            "{file}: {} supplementary groups (at most {MAX_GROUPS} are restored)",
            c.groups.len()
        )));
    }
    let two = |v: &[u32]| {
        [
            v.first().copied().unwrap_or(0),
            v.get(1).copied().unwrap_or(0),
        ]
    };
    let mut groups = [0u32; MAX_GROUPS];
    groups[..c.groups.len()].copy_from_slice(&c.groups);
    let cap_last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    Ok(CredsArg {
        valid: 1,
        uid: c.uid,
        euid: c.euid,
        suid: c.suid,
        fsuid: c.fsuid,
        gid: c.gid,
        egid: c.egid,
        sgid: c.sgid,
        fsgid: c.fsgid,
        secbits: c.secbits,
        ngroups: c.groups.len() as u32,
        groups,
        cap_eff: two(&c.cap_eff),
        cap_prm: two(&c.cap_prm),
        cap_inh: two(&c.cap_inh),
        cap_bnd: two(&c.cap_bnd),
        cap_amb: two(&c.cap_amb),
        cap_last,
    })
}

/// The restorer does not set LSM labels: a restored task keeps criu's.
/// A label in the images (`creds.lsm_profile`, `lsm_sockcreate`) that is
/// not criu's own would be lost, so it is refused.
fn check_lsm_label(c: &pb::CredsEntry, file: &str) -> Result<(), RestoreError> {
    use crate::proc::lsm::{Lsm, profile_for_image};
    let lsm = Lsm::active();
    let ours = crate::proc::ProcDir::open_self()
        .and_then(|me| me.lsm_label(lsm))
        .ok()
        .flatten()
        .and_then(|l| profile_for_image(lsm, &l));
    if let Some(p) = &c.lsm_profile
        && Some(p) != ours.as_ref()
    {
        return Err(RestoreError::Unsupported(format!(
            "{file}: the task ran under the LSM label {p:?} ({}), which a restore cannot \
             set yet (criu runs under {:?})",
            lsm.name(),
            ours.unwrap_or_default()
        )));
    }
    if let Some(p) = c.lsm_sockcreate.as_ref().filter(|p| !p.is_empty()) {
        return Err(RestoreError::Unsupported(format!(
            "{file}: the task creates its sockets under the LSM label {p:?}, which a \
             restore cannot set yet"
        )));
    }
    Ok(())
}

/// The dumped rlimits, indexed by resource number.
fn rlimits_arg(t: &TaskImages) -> Vec<RlimitArg> {
    let Some(rl) = t.core.tc.as_ref().and_then(|tc| tc.rlimits.as_ref()) else {
        return Vec::new();
    };
    rl.rlimits
        .iter()
        .enumerate()
        .map(|(i, r)| RlimitArg {
            resource: i as u64,
            cur: r.cur,
            max: r.max,
        })
        .collect()
}

/// Pending signals: process-wide ones (`tc.signals_s`) and the thread's own
/// (`thread_core.signals_p`).
fn signals_arg(t: &TaskImages) -> Result<Vec<SiginfoArg>, RestoreError> {
    let shared = t.core.tc.as_ref().and_then(|tc| tc.signals_s.as_ref());
    let private = t
        .core
        .thread_core
        .as_ref()
        .and_then(|tc| tc.signals_p.as_ref());
    let file = format!("core-{}.img", t.pstree.pid);
    let mut out = siginfos(shared, 1, &file)?;
    out.extend(siginfos(private, 0, &file)?);
    Ok(out)
}

/// The signals of one dumped queue (`shared`: 1 for the process-wide one).
fn siginfos(
    queue: Option<&pb::SignalQueueEntry>,
    shared: u32,
    file: &str,
) -> Result<Vec<SiginfoArg>, RestoreError> {
    let mut out = Vec::new();
    for s in queue.iter().flat_map(|q| q.signals.iter()) {
        let mut info = [0u8; 128];
        if s.siginfo.len() != info.len() {
            return Err(RestoreError::Invalid {
                file: file.to_string(),
                what: format!("a pending siginfo of {} bytes (want 128)", s.siginfo.len()),
            });
        }
        info.copy_from_slice(&s.siginfo);
        let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
        out.push(SiginfoArg {
            shared,
            signo,
            info,
        });
    }
    Ok(out)
}

/// The task name, NUL-terminated within 16 bytes (the kernel's TASK_COMM_LEN).
fn comm_arg(core: &pb::CoreEntry) -> [u8; 16] {
    let name = core
        .thread_core
        .as_ref()
        .and_then(|tc| tc.comm.as_deref())
        .or(core.tc.as_ref().map(|tc| tc.comm.as_str()))
        .unwrap_or("");
    let mut comm = [0u8; 16];
    for (d, s) in comm.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    comm
}

/// The task's own rseq area, registered again right before it resumes.
fn rseq_arg(core: &pb::CoreEntry) -> RseqArg {
    match core
        .thread_core
        .as_ref()
        .and_then(|tc| tc.rseq_entry.as_ref())
    {
        Some(r) if r.rseq_abi_pointer != 0 => RseqArg {
            addr: r.rseq_abi_pointer,
            len: r.rseq_abi_size,
            sig: r.signature,
        },
        _ => RseqArg::default(),
    }
}

/// Whether directory `d` is this process's root directory.
fn same_dir_as_our_root(d: &OwnedFd) -> bool {
    match (rustix::fs::fstat(d), rustix::fs::stat("/")) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// The access mode to open a mapped file with: the one the mapping held
/// it with at dump (`vma_entry.fdflags`, as CRIU reopens it), so that a
/// shared mapping of a file opened read-write can be made writable again
/// and one of a read-only file cannot. Images without it (CRIU before
/// 3.x) get read-write for a writable shared mapping, read-only otherwise.
fn vma_open_mode(v: &pb::VmaEntry) -> OFlags {
    match v.fdflags.map(|f| f & OFlags::ACCMODE.bits()) {
        Some(m) if m == OFlags::RDWR.bits() => OFlags::RDWR,
        Some(m) if m == OFlags::WRONLY.bits() => OFlags::WRONLY,
        Some(_) => OFlags::RDONLY,
        None if v.flags & MAP_SHARED != 0 && v.prot & PROT_WRITE != 0 => OFlags::RDWR,
        None => OFlags::RDONLY,
    }
}

/// The `madvise` calls that give each VMA back its advice (MADV_NOHUGEPAGE,
/// MADV_DONTFORK, ...: `VmaEntry.madv` has bit N set for advice N, as CRIU
/// records it). The restorer makes them right after mapping the VMAs and
/// before reading their pages: with THP `always`, reading pages into a
/// VMA still without its MADV_NOHUGEPAGE would fault in huge pages and
/// fill the holes around them.
fn madvise_calls(t: &TaskImages) -> Vec<RawSyscall> {
    let mut calls = Vec::new();
    for v in t.mm.vmas.iter().filter(|v| is_mapped_vma(v)) {
        let madv = v.madv.unwrap_or(0);
        for advice in (0..64).filter(|a| madv & (1u64 << a) != 0) {
            calls.push(RawSyscall {
                nr: criu_arch::nr::MADVISE as u64,
                args: [v.start, v.end - v.start, advice, 0, 0, 0],
            });
        }
    }
    // Guard regions over them, as CRIU's restore_madv_guard_regions: no
    // pages are read there, and those of a file mapping are dropped.
    for g in t.mm.vmas.iter().filter(|v| crate::mem::guards::is_guard(v)) {
        calls.push(RawSyscall {
            nr: criu_arch::nr::MADVISE as u64,
            args: [
                g.start,
                g.end - g.start,
                u64::from(linux_raw_sys::general::MADV_GUARD_INSTALL),
                0,
                0,
                0,
            ],
        });
    }
    calls
}

/// The proxy vDSO's jumps into this kernel's vDSO mapped at `rt_vdso`
/// (none unless the task's vDSO is a proxy).
fn vdso_patches(
    t: &TaskImages,
    vdso: super::vdso::TaskVdso<'_>,
    rt_vdso: u64,
) -> Result<Vec<CodePatch>, RestoreError> {
    let super::vdso::VdsoPlan::Proxy { dumped, syms, code } = vdso.plan else {
        return Ok(Vec::new());
    };
    let mm_file = format!("mm-{}.img", t.pstree.pid);
    let tr = crate::vdso::trampolines(syms, code, dumped, &vdso.rt.syms, rt_vdso)
        .map_err(|e| RestoreError::Unsupported(format!("{mm_file}: {e}")))?;
    if !tr.missing.is_empty() {
        crate::pr_warn!(
            "{mm_file}: this kernel's vDSO lacks {}: the dumped code stays there",
            tr.missing.join(", ")
        );
    }
    if !tr.stubs.is_empty() {
        crate::pr_info!(
            "{mm_file}: {} of the dumped vDSO are lone system calls, too short for a \
             jump: kept as dumped",
            tr.stubs.join(", ")
        );
    }
    Ok(tr
        .patches
        .iter()
        .map(|p| {
            let mut code = [0u8; CODE_PATCH_MAX];
            code[..p.code.len()].copy_from_slice(&p.code);
            CodePatch {
                addr: p.addr,
                len: p.code.len() as u64,
                code,
            }
        })
        .collect())
}

/// Where this kernel's vDSO goes from the parking area at `park` (see
/// [`super::vdso::VdsoPlan`]), the proxy's jumps and the mark: in place,
/// over the dumped areas; for a proxy, to a gap of the task's layout
/// below the dumped vDSO (free of its VMAs and of the bootstrap region),
/// marked as CRIU marks it.
fn vdso_moves(
    t: &TaskImages,
    maps: &SelfMaps,
    vdso: super::vdso::TaskVdso<'_>,
    park: u64,
    region: (u64, u64),
    page: u64,
) -> Result<(Vec<Remap>, Vec<CodePatch>, VdsoMarkArg), RestoreError> {
    use super::vdso::VdsoPlan;
    match vdso.plan {
        VdsoPlan::Nothing => Ok((
            maps.unpark_to(park, None)?,
            Vec::new(),
            VdsoMarkArg::default(),
        )),
        VdsoPlan::InPlace(dumped) => Ok((
            maps.unpark_to(park, Some(dumped))?,
            Vec::new(),
            VdsoMarkArg::default(),
        )),
        VdsoPlan::Proxy { dumped, .. } => {
            let rt_layout = vdso
                .rt
                .layout
                .ok_or_else(|| RestoreError::Unsupported("this kernel maps no vDSO".into()))?;
            let span = rt_layout.vdso.1.max(rt_layout.vvar.map_or(0, |v| v.1)) - rt_layout.start();
            let mut busy: Vec<(u64, u64)> = t.mm.vmas.iter().map(|v| (v.start, v.end)).collect();
            busy.push(region);
            let at = SelfMaps::free_gap(&busy, span, dumped.start(), page).ok_or_else(|| {
                RestoreError::Unsupported(format!(
                    "mm-{}.img: no free place for this kernel's vDSO",
                    t.pstree.pid
                ))
            })?;
            let shift =
                |(s, e): (u64, u64)| (s - rt_layout.start() + at, e - rt_layout.start() + at);
            let dest = crate::vdso::Layout {
                vdso: shift(rt_layout.vdso),
                vvar: rt_layout.vvar.map(shift),
            };
            crate::pr_info!(
                "mm-{}.img: this kernel's vDSO at {:#x}, the dumped one at {:#x} proxies it",
                t.pstree.pid,
                dest.vdso.0,
                dumped.vdso.0
            );
            let mark = crate::vdso::mark::Mark {
                orig_vdso: dumped.vdso.0,
                orig_vvar: dumped.vvar.map(|v| v.0),
                rt_vvar: dest.vvar.map(|v| v.0),
            };
            Ok((
                maps.unpark_to(park, Some(&dest))?,
                vdso_patches(t, vdso, dest.vdso.0)?,
                VdsoMarkArg {
                    addr: dest.vdso.0,
                    len: dest.vdso.1 - dest.vdso.0,
                    words: mark.words(),
                },
            ))
        }
    }
}
