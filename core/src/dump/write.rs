//! Writing the images of one dumped task.

use std::path::Path;

use crate::blob::parasite_abi::{ItimersArgs, MiscArgs, PosixTimer, SigactsArgs, ThreadArgs};
use crate::images::{ImageDir, ImageError, Kind, pb};
use crate::infect::ExtRegs;
use crate::proc::stat::Stat;
use crate::proc::task::NsIds;
use crate::proc::timers::PosixTimer as ProcTimer;
use crate::proc::vmas::CollectedVma;
use crate::sys::ptrace::{RseqConfig, SigInfo};
use crate::sys::sched::SchedInfo;

use super::core_img::{self, TASK_ALIVE, TASK_STOPPED};
use super::vpids::VPids;
use crate::files::table::FileTable;
use crate::mem::PageRange;

/// `task_core_entry.task_state` of a zombie.
pub const TASK_ZOMBIE: u32 = 2;

/// What a non-leader thread contributes (its own `core-TID.img`).
#[derive(Debug)]
pub struct ThreadData {
    pub tid: i32,
    pub gp: criu_arch::GpRegs,
    pub ext: ExtRegs,
    pub sigmask: u64,
    pub signals_p: Vec<SigInfo>,
    pub robust: (u64, u64),
    pub rseq: Option<RseqConfig>,
    pub sched: SchedInfo,
    pub args: Option<ThreadArgs>,
}

/// Everything collected about one task.
#[derive(Debug)]
pub struct Collected {
    pub pid: i32,
    pub stat: Stat,
    pub vmas: Vec<CollectedVma>,
    pub vma_file_ids: Vec<Option<u32>>,
    /// `MADV_GUARD_INSTALL` guard regions inside the VMAs.
    pub guards: Vec<(u64, u64)>,
    pub ranges: Vec<PageRange>,
    pub page_size: u64,
    pub auxv: Vec<u64>,
    pub rlimits: Vec<pb::RlimitEntry>,
    pub proc_timers: Vec<ProcTimer>,
    pub signals_s: Vec<SigInfo>,
    pub signals_p: Vec<SigInfo>,
    pub robust: (u64, u64),
    pub rseq: Option<RseqConfig>,
    pub loginuid: Option<u32>,
    pub oom_score_adj: Option<i32>,
    pub personality: u32,
    /// The leader's scheduling (the other threads have their own).
    pub sched: SchedInfo,
    /// The task's kernel object ids (vm and sighand; one per task:
    /// threads share them, processes of the tree do not).
    pub obj_id: u32,
    /// Its fd table's id: its own `obj_id`, or that of the task whose
    /// table it shares (`fdinfo-<files_id>.img` is written by that task).
    pub files_id: u32,
    /// Its fs struct's id, likewise.
    pub fs_id: u32,
    /// `pages-<id>.img` of its private pages.
    pub pages_id: u64,
    pub fdinfo: Vec<pb::FdinfoEntry>,
    pub exe_file_id: u32,
    pub cwd_id: u32,
    pub root_id: u32,
    pub ns: NsIds,
    /// The signal of the group stop it was in, if it was stopped.
    pub stop_signo: Option<u32>,
    pub gp: criu_arch::GpRegs,
    pub ext: ExtRegs,
    pub sigmask: u64,
    pub misc: Option<MiscArgs>,
    pub thread: Option<ThreadArgs>,
    pub sigacts: Option<SigactsArgs>,
    pub itimers: Option<ItimersArgs>,
    pub posix: Vec<(ProcTimer, PosixTimer)>,
    pub pagemap: Vec<pb::PagemapEntry>,
    /// The pages and pagemap went to a page server (`--page-server`).
    pub pages_sent: bool,
    pub nr_pages: u64,
    pub stats: Stats,
    /// The other threads, in tid order.
    pub threads: Vec<ThreadData>,
    /// `creds.lsm_profile` of the task and its threads (their label is
    /// criu's own, or the dump refused them).
    pub lsm_profile: Option<String>,
    /// Every thread's seccomp state, the leader first (read on the tracer
    /// thread; the image indices set once the whole tree is known).
    pub seccomp: Vec<super::seccomp::ThreadSeccomp>,
    /// A pre-dump's pages still to be written once the tree runs (see
    /// [`crate::mem::deferred`]); `pagemap` then holds only the
    /// `in_parent` entries.
    pub deferred: Option<crate::mem::deferred::DeferredPages>,
}

/// What `stats-dump` reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Seizing the task.
    pub freezing: std::time::Duration,
    /// From the task stopped until it was killed or let go.
    pub frozen: std::time::Duration,
    /// Moving pages out (parasite and splice).
    pub memdump: std::time::Duration,
    /// Of which splicing into the image.
    pub memwrite: std::time::Duration,
    pub pages_scanned: u64,
    pub pages_written: u64,
    pub pages_lazy: u64,
    pub page_pipes: u64,
    pub page_pipe_bufs: u64,
    /// Pages of shared memory objects looked at and written.
    pub shpages_scanned: u64,
    pub shpages_written: u64,
}

/// `--display-stats`: print the figures as CRIU does.
pub fn display_stats(s: &Stats) {
    let us = |d: std::time::Duration| d.as_micros();
    crate::pr_msg!("Displaying dump stats:");
    crate::pr_msg!("Freezing time: {} us", us(s.freezing));
    crate::pr_msg!("Frozen time: {} us", us(s.frozen));
    crate::pr_msg!("Memory dump time: {} us", us(s.memdump));
    crate::pr_msg!("Memory write time: {} us", us(s.memwrite));
    crate::pr_msg!(
        "Memory pages scanned: {} ({:#x})",
        s.pages_scanned,
        s.pages_scanned
    );
    crate::pr_msg!("Memory pages skipped from parent: 0 (0x0)");
    crate::pr_msg!(
        "Memory pages written: {} ({:#x})",
        s.pages_written,
        s.pages_written
    );
    crate::pr_msg!("Lazy memory pages: {} ({:#x})", s.pages_lazy, s.pages_lazy);
    crate::pr_msg!("Page Pipes: {}", s.page_pipes);
    crate::pr_msg!("Page Pipe Buffers: {}", s.page_pipe_bufs);
}

/// Write `stats-dump` (CRIU's `stats_entry` with `dump`; times in µs).
pub fn write_stats(dir: &Path, s: &Stats) -> Result<(), ImageError> {
    let us = |d: std::time::Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    let path = dir.join(Kind::Stats.desc().file_name("dump", ""));
    crate::images::write_one(
        &path,
        Kind::Stats,
        &pb::StatsEntry {
            dump: Some(pb::DumpStatsEntry {
                freezing_time: us(s.freezing),
                frozen_time: us(s.frozen),
                memdump_time: us(s.memdump),
                memwrite_time: us(s.memwrite),
                pages_scanned: s.pages_scanned,
                pages_skipped_parent: 0,
                pages_written: s.pages_written,
                pages_lazy: s.pages_lazy,
                page_pipes: Some(s.page_pipes),
                page_pipe_bufs: Some(s.page_pipe_bufs),
                // Written by CRIU 4.x even when zero.
                irmap_resolve: Some(0),
                shpages_scanned: Some(s.shpages_scanned),
                shpages_skipped_parent: Some(0),
                shpages_written: Some(s.shpages_written),
            }),
            restore: None,
        },
    )
}

/// `mm.mm_saved_auxv` as CRIU writes it: the first
/// [`MM_SAVED_AUXV_MAX`](crate::images::MM_SAVED_AUXV_MAX) words of the
/// auxv (with its `AT_NULL` pair only when that fits), since CRIU refuses
/// more. The saved auxv is only what `/proc/PID/auxv` shows after restore
/// (the task's own copy on its stack is restored with its memory), so
/// entries past the cap are dropped with a warning rather than refused.
fn saved_auxv(pid: i32, words: &[u64]) -> Vec<u64> {
    let max = crate::images::MM_SAVED_AUXV_MAX;
    let dropped = words
        .chunks_exact(2)
        .skip(max / 2)
        .take_while(|p| p[0] != crate::proc::auxv::AT_NULL)
        .count();
    if dropped > 0 {
        crate::pr_warn!(
            "task {pid}: auxv has {dropped} entries past the {} CRIU's images hold;              /proc/{pid}/auxv will not show them after restore",
            max / 2
        );
    }
    words[..words.len().min(max)].to_vec()
}

/// The kernel object ids of the dumping tool's own task, which CRIU writes
/// as `inventory.img`'s `root_ids`: on restore it compares each task's ids
/// with these, and a task whose `files_id` equals the tool's is taken to
/// share the tool's fd table ("Image corruption on kIDs data"). The tool
/// shares no vm, files, fs or sighand with the tree it dumps.
pub const TOOL_OBJ_ID: u32 = 1;
/// The dumping tool's cgroup set (CRIU's `root_cg_set`).
const ROOT_CG_SET: u32 = crate::cgroups::TOOL_SET;

/// The first id of a dumped task's own objects (after [`TOOL_OBJ_ID`]).
pub const FIRST_TASK_OBJ_ID: u32 = 2;

/// The ids of the task's objects and namespaces, numbered as CRIU numbers
/// them: the dumping tool's namespaces, but for the pid, net, ipc, uts
/// and time ones of `ns` (the root task's own, which every task is in).
fn kobj_ids(
    obj_id: u32,
    files_id: u32,
    fs_id: u32,
    ns: crate::ns::NsNumbers,
) -> pb::TaskKobjIdsEntry {
    pb::TaskKobjIdsEntry {
        vm_id: obj_id,
        files_id,
        fs_id,
        sighand_id: obj_id,
        pid_ns_id: Some(ns.pid),
        net_ns_id: Some(ns.net),
        ipc_ns_id: Some(ns.ipc),
        uts_ns_id: Some(ns.uts),
        time_ns_id: Some(ns.time),
        mnt_ns_id: Some(ns.mnt),
        user_ns_id: Some(ns.user),
        cgroup_ns_id: Some(8),
    }
}

fn signal_queue(sigs: &[SigInfo]) -> pb::SignalQueueEntry {
    pb::SignalQueueEntry {
        signals: sigs
            .iter()
            .map(|s| pb::SiginfoEntry {
                siginfo: s.as_bytes().to_vec(),
            })
            .collect(),
    }
}

fn missing(what: &str) -> ImageError {
    ImageError::io(
        what,
        std::io::Error::new(std::io::ErrorKind::InvalidData, "not collected"),
    )
}

/// A random-looking run id in UUID form (CRIU's `dump_criu_run_id`; the
/// network lock's table is named after it, as CRIU names its own).
pub fn run_id(pid: i32) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let x = t ^ (u128::from(std::process::id()) << 64) ^ (pid as u128);
    // The clock's nanoseconds first: the lock's table keeps only the
    // first 21 characters (see `netlock::table_name`), which must differ
    // from one dump to the next.
    let h = format!("{:016x}{:016x}", x as u64, (x >> 64) as u64);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The tree's time namespace: its id and its `CLOCK_MONOTONIC` and
/// `CLOCK_BOOTTIME` now, as its tasks read them (`timens-ID.img`; CRIU
/// writes `timens-0.img` with the tool's clocks for a tree in its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeNs {
    pub id: u32,
    /// The namespace's offsets (seconds, nanoseconds) from the tool's.
    pub monotonic: (i64, i64),
    pub boottime: (i64, i64),
}

impl TimeNs {
    /// The tool's own: no offsets, image id 0.
    pub fn tool() -> TimeNs {
        TimeNs::default()
    }

    /// The root's own time namespace, numbered `id`, from its
    /// `timens_offsets`.
    pub fn of_root(text: &str, id: u32) -> Option<TimeNs> {
        let mut ns = TimeNs {
            id,
            ..TimeNs::default()
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [name, s, n] = f[..] else { return None };
            let off = (s.parse().ok()?, n.parse().ok()?);
            match name {
                "monotonic" => ns.monotonic = off,
                "boottime" => ns.boottime = off,
                _ => {}
            }
        }
        Some(ns)
    }

    fn entry(&self) -> pb::TimensEntry {
        let ts = |id, (s, n): (i64, i64)| {
            let t = rustix::time::clock_gettime(id);
            let total = (i128::from(t.tv_sec) + i128::from(s)) * 1_000_000_000
                + i128::from(t.tv_nsec)
                + i128::from(n);
            pb::Timespec {
                tv_sec: total.div_euclid(1_000_000_000) as u64,
                tv_nsec: total.rem_euclid(1_000_000_000) as u64,
            }
        };
        pb::TimensEntry {
            monotonic: ts(rustix::time::ClockId::Monotonic, self.monotonic),
            boottime: ts(rustix::time::ClockId::Boottime, self.boottime),
        }
    }
}

/// One `pstree.img` entry.
#[derive(Clone, Debug)]
pub struct TreeEntry {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub threads: Vec<i32>,
}

/// What the tree's images record of the tree as a whole beside its
/// tasks and files.
pub struct TreeWide<'a> {
    pub lsm: crate::proc::lsm::Lsm,
    pub network_lock: crate::opts::NetworkLock,
    pub run_id: &'a str,
    pub time_ns: TimeNs,
    /// Every thread's seccomp filters (`seccomp.img`).
    pub seccomp: &'a pb::SeccompEntry,
}

/// The images of the whole dump: `inventory.img` (the root's ids),
/// `pstree.img` (tasks in tree order, the root first), `files.img` and
/// `memfd.img` (one file table for every task).
pub fn write_tree_images(
    dir: &Path,
    tree: &[TreeEntry],
    files: &FileTable,
    wide: TreeWide<'_>,
) -> Result<(), ImageError> {
    let TreeWide {
        lsm,
        network_lock,
        run_id,
        time_ns,
        seccomp,
    } = wide;
    use crate::proc::lsm::Lsm;
    let img = ImageDir::new(dir);
    img.write_one(
        Kind::Inventory,
        0,
        &pb::InventoryEntry {
            img_version: 2,
            fdinfo_per_id: Some(true),
            root_ids: Some(kobj_ids(
                TOOL_OBJ_ID,
                TOOL_OBJ_ID,
                TOOL_OBJ_ID,
                crate::ns::NsNumbers::default(),
            )),
            root_cg_set: Some(ROOT_CG_SET),
            plugins_entry: Some(pb::PluginsEntry::default()),
            ns_per_id: Some(true),
            lsmtype: Some(match lsm {
                Lsm::None => pb::Lsmtype::NoLsm,
                Lsm::AppArmor => pb::Lsmtype::Apparmor,
                Lsm::SeLinux => pb::Lsmtype::Selinux,
            } as i32),
            // The method a kept lock was taken with: the restore removes
            // it with the same one (CRIU's 0 iptables, 1 nftables, 2 skip).
            network_lock_method: Some(network_lock.inventory_value()),
            // --tcp-close: a restore must be asked for it too (CRIU).
            tcp_close: files.kinds.inet.tcp_close.then_some(true),
            dump_criu_run_id: Some(run_id.to_string()),
            ..Default::default()
        },
    )?;
    let entries: Vec<pb::PstreeEntry> = tree
        .iter()
        .map(|t| pb::PstreeEntry {
            pid: t.pid as u32,
            ppid: t.ppid as u32,
            pgid: t.pgid as u32,
            sid: t.sid as u32,
            threads: t.threads.iter().map(|&t| t as u32).collect(),
        })
        .collect();
    img.write_all(Kind::Pstree, 0, &entries)?;
    // Every thread's filters (an empty entry without any, as CRIU), and
    // the time namespace's clocks (a restore into a new time namespace
    // sets its offsets from them).
    img.write_one(Kind::Seccomp, 0, seccomp)?;
    img.write_one(Kind::Timens, u64::from(time_ns.id), &time_ns.entry())?;
    img.write_all(Kind::Files, 0, &files.entries)?;
    if !files.memfd_inodes.is_empty() {
        img.write_all(Kind::MemfdInode, 0, &files.memfd_inodes)?;
    }
    files.kinds.write_images(&img)?;
    files.ghosts.write(&img).map_err(|e| match e {
        crate::files::ghost::GhostError::Image(e) => e,
        other => ImageError::io("ghost files", std::io::Error::other(other.to_string())),
    })?;
    if !files.locks.entries.is_empty() {
        img.write_all(Kind::FileLocks, 0, &files.locks.entries)?;
    }
    Ok(())
}

/// The `inventory.img` of a pre-dump (the images a later dump names as
/// its parent): the image version, the tool's ids and the pre-dump mode
/// (CRIU's 1 splice, 2 read), as CRIU writes it for a pre-dump.
pub fn write_pre_inventory(dir: &Path, run_id: &str, pre_dump_mode: u32) -> Result<(), ImageError> {
    ImageDir::new(dir).write_one(
        Kind::Inventory,
        0,
        &pb::InventoryEntry {
            img_version: 2,
            fdinfo_per_id: Some(true),
            root_ids: Some(kobj_ids(
                TOOL_OBJ_ID,
                TOOL_OBJ_ID,
                TOOL_OBJ_ID,
                crate::ns::NsNumbers::default(),
            )),
            ns_per_id: Some(true),
            dump_criu_run_id: Some(run_id.to_string()),
            pre_dump_mode: Some(pre_dump_mode),
            ..Default::default()
        },
    )
}

/// `core-PID.img` of a zombie: its state and wait status, nothing else
/// (CRIU writes no other image for it).
pub fn write_zombie_core(
    dir: &Path,
    pid: i32,
    exit_code: i32,
    stat: &Stat,
) -> Result<(), ImageError> {
    let mut core = pb::CoreEntry {
        mtype: criu_arch::CORE_MTYPE as i32,
        ..Default::default()
    };
    core.tc = Some(pb::TaskCoreEntry {
        task_state: TASK_ZOMBIE,
        exit_code: exit_code as u32,
        personality: 0,
        flags: stat.flags,
        blk_sigset: 0,
        comm: String::from_utf8_lossy(&stat.comm).into_owned(),
        ..Default::default()
    });
    ImageDir::new(dir).write_one(Kind::Core, pid as u64, &core)
}

/// What a task belongs to beside its own objects.
#[derive(Clone, Copy, Debug)]
pub struct Belongs {
    /// Its cgroup set (see [`crate::cgroups::collect`]).
    pub cg_set: u32,
    /// Its namespaces' ids.
    pub ns: crate::ns::NsNumbers,
}

/// Write the images of one live task into `dir`, named by the PIDs `v`
/// gives its task and threads in the tree's pid namespace.
pub fn write_images(
    dir: &Path,
    c: &Collected,
    belongs: Belongs,
    v: &VPids,
) -> Result<(), ImageError> {
    let img = ImageDir::new(dir);
    let pidu = v.of(c.pid) as u64;
    let misc = c.misc.as_ref().ok_or_else(|| missing("DUMP_MISC"))?;
    let cg_set = belongs.cg_set;

    let ids = kobj_ids(c.obj_id, c.files_id, c.fs_id, belongs.ns);
    img.write_one(Kind::Ids, pidu, &ids)?;
    img.write_one(Kind::Core, pidu, &leader_core(c, misc, cg_set)?)?;
    for t in &c.threads {
        img.write_one(Kind::Core, v.of(t.tid) as u64, &thread_core(c, t, cg_set)?)?;
    }
    img.write_one(Kind::Mm, pidu, &mm_entry(c, misc))?;
    if !c.pages_sent {
        write_pagemap(&img, c, pidu)?;
    }

    img.write_one(
        Kind::Fs,
        pidu,
        &pb::FsEntry {
            cwd_id: c.cwd_id,
            root_id: c.root_id,
            umask: Some(misc.umask),
        },
    )?;
    if c.files_id == c.obj_id {
        img.write_all(Kind::Fdinfo, u64::from(c.obj_id), &c.fdinfo)?;
    }
    Ok(())
}

/// `pagemap-PID.img` (`pid`: the task's in the images): the head and the
/// task's entries.
pub fn write_pagemap(img: &ImageDir, c: &Collected, pid: u64) -> Result<(), ImageError> {
    let mut w = img.writer(Kind::Pagemap, pid)?;
    w.write_message(&pb::PagemapHead {
        pages_id: c.pages_id as u32,
    })?;
    for e in &c.pagemap {
        w.write_message(e)?;
    }
    w.finish()?;
    Ok(())
}

/// A thread's registers as they resume (an interrupted syscall re-armed
/// or turned into EINTR, as the kernel would on the way to user space) in
/// a new `core` entry.
fn core_with_regs(
    tid: i32,
    gp: &criu_arch::GpRegs,
    ext: &ExtRegs,
    tid_addr: u64,
) -> Result<pb::CoreEntry, ImageError> {
    let mut gp = *gp;
    gp.restart_syscall_fixup();
    let mut core = pb::CoreEntry::default();
    super::regs::fill_thread_info(tid, &mut core, &gp, ext, tid_addr)
        .map_err(|e| ImageError::io("core thread_info", std::io::Error::other(e.to_string())))?;
    Ok(core)
}

/// A registered rseq area (none when its pointer is 0).
fn rseq_entry(rseq: Option<RseqConfig>) -> Option<pb::RseqEntry> {
    rseq.filter(|r| r.rseq_abi_pointer != 0)
        .map(|r| pb::RseqEntry {
            rseq_abi_pointer: r.rseq_abi_pointer,
            rseq_abi_size: r.rseq_abi_size,
            signature: r.signature,
            rseq_cs_pointer: None,
        })
}

/// `core-PID.img` of the task's leader: its registers, the task-wide
/// state and the leader thread's own.
fn leader_core(c: &Collected, misc: &MiscArgs, cg_set: u32) -> Result<pb::CoreEntry, ImageError> {
    let thread = c.thread.as_ref().ok_or_else(|| missing("DUMP_THREAD"))?;
    let sigacts = c.sigacts.as_ref().ok_or_else(|| missing("DUMP_SIGACTS"))?;
    let itimers = c.itimers.as_ref().ok_or_else(|| missing("DUMP_ITIMERS"))?;
    let mut core = core_with_regs(c.pid, &c.gp, &c.ext, thread.tid_addr)?;
    let comm = core_img::comm_string(&thread.comm);
    core.tc = Some(pb::TaskCoreEntry {
        task_state: if c.stop_signo.is_some() {
            TASK_STOPPED
        } else {
            TASK_ALIVE
        },
        exit_code: 0,
        personality: c.personality,
        flags: c.stat.flags,
        blk_sigset: c.sigmask,
        comm: comm.clone(),
        timers: Some(core_img::timers_entry(itimers, &c.posix)),
        rlimits: Some(pb::TaskRlimitsEntry {
            rlimits: c.rlimits.clone(),
        }),
        signals_s: Some(signal_queue(&c.signals_s)),
        loginuid: c.loginuid,
        oom_score_adj: c.oom_score_adj,
        sigactions: core_img::sa_entries(sigacts),
        child_subreaper: Some(misc.child_subreaper != 0),
        membarrier_registration_mask: (misc.membarrier != 0).then_some(misc.membarrier),
        stop_signo: c.stop_signo,
        ..Default::default()
    });
    core.thread_core = Some(pb::ThreadCoreEntry {
        futex_rla: c.robust.0,
        futex_rla_len: c.robust.1 as u32,
        sched_nice: Some(c.sched.nice),
        sched_policy: Some(c.sched.policy),
        sched_prio: (c.sched.prio != 0).then_some(c.sched.prio),
        sas: Some(core_img::sas_entry(thread)),
        pdeath_sig: (thread.pdeath_sig != 0).then_some(thread.pdeath_sig as u32),
        signals_p: Some(signal_queue(&c.signals_p)),
        creds: Some(pb::CredsEntry {
            lsm_profile: c.lsm_profile.clone(),
            ..core_img::creds_entry(&thread.creds)
        }),
        comm: Some(comm),
        rseq_entry: rseq_entry(c.rseq),
        seccomp_mode: seccomp_fields(c, c.pid).0,
        seccomp_filter: seccomp_fields(c, c.pid).1,
        cg_set: Some(cg_set),
        ..Default::default()
    });
    Ok(core)
}

/// `core-TID.img` of one of the task's other threads.
fn thread_core(c: &Collected, t: &ThreadData, cg_set: u32) -> Result<pb::CoreEntry, ImageError> {
    let args = t
        .args
        .as_ref()
        .ok_or_else(|| missing("DUMP_THREAD of a thread"))?;
    let mut tcore = core_with_regs(t.tid, &t.gp, &t.ext, args.tid_addr)?;
    tcore.thread_core = Some(pb::ThreadCoreEntry {
        futex_rla: t.robust.0,
        futex_rla_len: t.robust.1 as u32,
        sched_nice: Some(t.sched.nice),
        sched_policy: Some(t.sched.policy),
        sched_prio: (t.sched.prio != 0).then_some(t.sched.prio),
        blk_sigset: Some(t.sigmask),
        sas: Some(core_img::sas_entry(args)),
        pdeath_sig: (args.pdeath_sig != 0).then_some(args.pdeath_sig as u32),
        signals_p: Some(signal_queue(&t.signals_p)),
        creds: Some(pb::CredsEntry {
            lsm_profile: c.lsm_profile.clone(),
            ..core_img::creds_entry(&args.creds)
        }),
        comm: Some(core_img::comm_string(&args.comm)),
        rseq_entry: rseq_entry(t.rseq),
        seccomp_mode: seccomp_fields(c, t.tid).0,
        seccomp_filter: seccomp_fields(c, t.tid).1,
        // Threads in cgroups of their own are refused at dump.
        cg_set: Some(cg_set),
        ..Default::default()
    });
    Ok(tcore)
}

/// Thread `tid`'s `seccomp_mode` and `seccomp_filter` fields.
fn seccomp_fields(c: &Collected, tid: i32) -> (Option<i32>, Option<u32>) {
    super::seccomp::core_fields(c.seccomp.iter().find(|s| s.tid == tid))
}

/// `mm-PID.img`: the task's memory layout and VMAs (guard regions
/// included).
fn mm_entry(c: &Collected, misc: &MiscArgs) -> pb::MmEntry {
    let vmas = c
        .vmas
        .iter()
        .zip(&c.vma_file_ids)
        .map(|(v, id)| crate::mem::vma_entry(v, *id))
        .chain(
            c.guards
                .iter()
                .map(|&(s, e)| crate::mem::guards::guard_entry(s, e)),
        )
        .collect();
    let s = &c.stat;
    pb::MmEntry {
        mm_start_code: s.start_code,
        mm_end_code: s.end_code,
        mm_start_data: s.start_data,
        mm_end_data: s.end_data,
        mm_start_stack: s.start_stack,
        mm_start_brk: s.start_brk,
        mm_brk: misc.brk,
        mm_arg_start: s.arg_start,
        mm_arg_end: s.arg_end,
        mm_env_start: s.env_start,
        mm_env_end: s.env_end,
        exe_file_id: c.exe_file_id,
        mm_saved_auxv: saved_auxv(c.pid, &c.auxv),
        vmas,
        dumpable: Some(misc.dumpable),
        aios: Vec::new(),
        thp_disabled: Some(misc.thp_disabled != 0),
    }
}
