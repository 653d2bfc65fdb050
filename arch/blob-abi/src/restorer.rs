//! The restorer's calling interface: command numbers, argument blocks and
//! result codes.
//!
//! Compiled into the restorer blob and into core (both depend on this crate),
//! so both sides agree on every number and layout by construction. It holds
//! plain data only (constants and `#[repr(C)]` structs of fixed-size
//! integers), no code. The calling convention and the result codes are the
//! crate's (see its root).

pub use crate::{ERR_BAD_ARGS, ERR_NO_COMMAND};

/// Name of the exported entry symbol; the build checks that it is at offset 0.
pub const ENTRY_SYMBOL: &str = "__export_restorer_entry";

/// `PING`: write [`PING_MESSAGE`] to `PingArgs::fd` with a raw `write`, and
/// return entry `PingArgs::index` of the blob's table of pointers to
/// [`PING_VALUES`]. Both the message and the values are reached through
/// pointers stored in the blob's data, so a correct answer proves that the
/// blob was relocated for the address it runs at.
pub const CMD_PING: usize = 1;

/// What `PING` writes.
pub const PING_MESSAGE: &[u8] = b"criu restorer: ping\n";

/// The values `PING` returns, by index. All positive as `isize`, so they
/// cannot be mistaken for an error.
pub const PING_VALUES: [u64; 3] = [
    0x5245_5354_0000_0001,
    0x5245_5354_0000_0002,
    0x5245_5354_0000_0003,
];

/// Argument block of [`CMD_PING`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PingArgs {
    /// In: file descriptor to write the message to.
    pub fd: i32,
    /// In: index into [`PING_VALUES`].
    pub index: u32,
    /// Out: raw result of the `write` system call (bytes written or `-errno`).
    pub written: i64,
    /// Out: how many times `PING` has run in this copy of the blob, this call
    /// included (a counter in the blob's `.bss`).
    pub count: u64,
}

/// `RESTORE`: called in the tool's own process with [`RestoreArgs`] placed
/// inside the bootstrap region (a shared, read+write+exec mapping that also
/// holds the blob). The blob forks the task with `clone3` (with `set_tid`
/// when [`RestoreArgs::pid`] is non-zero) and returns the child's PID to the
/// tool (or `-errno`). The child restores itself from the arguments and ends
/// in `rt_sigreturn`; its progress is reported in [`RestoreArgs::status`],
/// which the tool polls (the region is shared between the two).
pub const CMD_RESTORE: usize = 2;

/// `RESTORE_CHILD`: called in a task of a tree that its parent's restorer
/// has just forked with its PID ([`ChildArg`]), in the task's own bootstrap
/// region (every region is mapped in every task until its `STAGE_UNMAP`):
/// restores the task from the [`RestoreArgs`] like `RESTORE`'s child,
/// without forking. Never returns.
pub const CMD_RESTORE_CHILD: usize = 3;

/// [`ChildArg::kind`]: a task with its own region ([`CMD_RESTORE_CHILD`]).
pub const CHILD_TASK: u32 = 0;
/// [`ChildArg::kind`]: a zombie: sets its session and group, then ends
/// with its dumped wait status; its parent does not reap it.
pub const CHILD_ZOMBIE: u32 = 1;
/// [`ChildArg::kind`]: a helper holding a process group (its PID is the
/// group's) that no task of the tree leads any more, until every task
/// has joined its group; then it exits and its parent reaps it.
pub const CHILD_HELPER: u32 = 2;

/// One child a task forks (clone3 `set_tid`) in `STAGE_SESSION`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChildArg {
    pub pid: i32,
    /// `CHILD_*`.
    pub kind: u32,
    /// `CHILD_TASK`: the entry of the child's own region and its args.
    pub entry: u64,
    pub args: u64,
    /// `CHILD_ZOMBIE`: the raw wait status to end with.
    pub exit_status: i32,
    /// Non-zero: forked before the parent's own `setsid` (it stays in the
    /// session the parent had before).
    pub before_setsid: u32,
    /// `CHILD_ZOMBIE`/`CHILD_HELPER`: like [`RestoreArgs`]' `setsid`,
    /// `pgid`, `leads_group` and `join_pgid`.
    pub setsid: u32,
    pub pgid: i32,
    pub leads_group: u32,
    pub join_pgid: i32,
    /// `CHILD_TASK`: `CLONE_FILES` and/or `CLONE_FS` when the child shares
    /// its parent's fd table or cwd/root/umask (as it did when dumped).
    pub clone_flags: u64,
}

/// [`RestoreArgs::fd_table`]: the task has an fd table of its own.
pub const FD_TABLE_OWN: u32 = 0;
/// [`RestoreArgs::fd_table`]: the task was forked with `CLONE_FILES` and
/// uses its parent's table: it moves and closes no fd (the table's owner
/// does) and, once it no longer needs the tool's fds (its children forked,
/// its files mapped, its pages read: at `STAGE_CLOSE_FDS`), writes a byte
/// to [`RestoreArgs::fd_sync`]. (A pipe, not a shared counter: the tool's
/// memory is gone by then, and the pipe is in the very table shared.)
pub const FD_TABLE_SHARED: u32 = 1;
/// [`RestoreArgs::fd_table`]: the task's table is shared by children; it
/// closes the tool's fds only once it has read `fd_sync_count` bytes from
/// [`RestoreArgs::fd_sync`], one from each task sharing the table.
pub const FD_TABLE_LENT: u32 = 2;

/// The counters the tasks of a tree share while they create sessions
/// and groups (a page mapped shared in the tool before the first fork,
/// gone from each task with the rest of the tool at `STAGE_UNMAP`); both
/// are futex words.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeWords {
    /// Tasks still to create a group (`leads_group`); joiners wait for 0.
    pub groups: u32,
    /// Tasks still to join a group (`join_pgid`); helpers wait for 0.
    pub joins: u32,
}

/// [`RestoreStatus::state`]: the child is still working.
pub const STATE_RUNNING: u32 = 0;
/// [`RestoreStatus::state`]: everything restored; `rt_sigreturn` is next.
pub const STATE_DONE: u32 = 1;
/// [`RestoreStatus::state`]: a stage failed; see `stage`, `errno`, `index`.
/// The child then calls `exit_group(1)`.
pub const STATE_FAILED: u32 = 2;
/// [`RestoreStatus::state`]: the child has mapped its VMAs and waits (on the
/// futex [`RestoreStatus::filled`]) for the tool to copy its
/// [`RestoreArgs::copy_runs`] in through the userfaultfd `status.uffd`
/// (see [`RestoreArgs::copy_vmas`]); it then works on as
/// [`STATE_RUNNING`].
pub const STATE_PAGES: u32 = 3;

/// [`RestoreStatus::filled`]: the tool has not finished yet.
pub const FILL_PENDING: u32 = 0;
/// [`RestoreStatus::filled`]: every copy run is in.
pub const FILL_DONE: u32 = 1;
/// [`RestoreStatus::filled`]: the tool copied nothing (it could not take
/// the userfaultfd); the child reads the copy runs itself.
pub const FILL_SELF: u32 = 2;
/// [`RestoreStatus::filled`]: a copy failed with `fill_errno`; the child
/// fails its `STAGE_PAGES` with it.
pub const FILL_FAILED: u32 = 3;

// Stages of the child, in order ([`RestoreStatus::stage`]).
pub const STAGE_SESSION: u32 = 1;
pub const STAGE_FDS: u32 = 2;
pub const STAGE_FS: u32 = 3;
pub const STAGE_SWITCH_STACK: u32 = 4;
pub const STAGE_PARK_VDSO: u32 = 5;
pub const STAGE_UNMAP: u32 = 6;
pub const STAGE_MAP: u32 = 7;
pub const STAGE_PAGES: u32 = 8;
pub const STAGE_PROTECT: u32 = 9;
pub const STAGE_VDSO: u32 = 10;
pub const STAGE_MM: u32 = 11;
pub const STAGE_SIGACTIONS: u32 = 12;
pub const STAGE_ITIMERS: u32 = 13;
pub const STAGE_ARCH: u32 = 14;
pub const STAGE_CLOSE_FDS: u32 = 15;
pub const STAGE_RSEQ: u32 = 16;
pub const STAGE_POSIX_TIMERS: u32 = 17;
pub const STAGE_CREDS: u32 = 18;
pub const STAGE_RLIMITS: u32 = 19;
pub const STAGE_SIGNALS: u32 = 20;
pub const STAGE_TASK: u32 = 21;
pub const STAGE_ATTRS: u32 = 22;
/// Creating the other threads (`index`: the thread's place in
/// [`RestoreArgs::threads`]); a thread's own failure reports the stage it
/// ran (signals, task-name, creds, arch-state, rseq) with `index` =
/// `THREAD_INDEX_BASE` + its place.
pub const STAGE_THREADS: u32 = 23;
/// The task's own calls on its fds once they have their final numbers
/// and the tool's copies are closed: epoll registrations (keyed by fd
/// number) and file locks (a POSIX lock goes with any close of its file
/// by the process, so it must come after [`STAGE_CLOSE_FDS`]).
pub const STAGE_FD_STATE: u32 = 24;
/// oom_score_adj, loginuid (written to `/proc/self`, which the task must
/// do itself) and the THP-disable flag, right after the task's children
/// are forked (they inherit the tool's values and set their own).
pub const STAGE_PROC_ATTRS: u32 = 25;
/// Private anonymous VMAs shared copy-on-write with the parent or a
/// child, mapped and filled in the premap area before the task forks its
/// children (see [`CowArgs`]).
pub const STAGE_PREMAP: u32 = 26;
/// The task writes itself into the `cgroup.procs` of each of its cgroups
/// ([`RestoreArgs::cgroup_fds`]), first thing after taking its fds: its
/// pages are then charged there and its children are born there. The
/// root task with a cgroup namespace of its own joins the namespace's
/// roots and unshares it first ([`RestoreArgs::cgns_fds`]).
pub const STAGE_CGROUPS: u32 = 30;
/// The thread's seccomp filters (or strict mode): after the tool's go,
/// while the tool traces the thread with `PTRACE_O_SUSPEND_SECCOMP`, so
/// that nothing after them (the restorer's last calls, `rt_sigreturn`,
/// the tool's injected `munmap` of the region) is filtered before the
/// tool detaches. A thread with seccomp state runs its credentials,
/// attributes, arch state and rseq after them, not before the go (as
/// CRIU: the credentials may take away the right to install filters).
pub const STAGE_SECCOMP: u32 = 27;
/// Added to the thread's place in `index` for failures inside a thread.
pub const THREAD_INDEX_BASE: u32 = 0x1000_0000;

/// Progress of the restored child, written by it, read by the tool.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreStatus {
    /// `STATE_*` (written last, with release ordering).
    pub state: u32,
    /// `STAGE_*` being run (or that failed).
    pub stage: u32,
    /// Positive errno of the failed system call.
    pub errno: i32,
    /// Index of the failing item within the stage's array.
    pub index: u32,
    /// Written by the tool: non-zero lets the child (waiting after
    /// `STATE_DONE`, a shared futex) return into its own code. The tool
    /// runs the post-restore and pre-resume actions before that.
    pub resume: u32,
    /// Written by the task first thing after its fork: it exists (the
    /// tool kills only tasks that say so when a restore fails).
    pub created: u32,
    /// Written by the child before [`STATE_PAGES`]: its userfaultfd, with
    /// every range of [`RestoreArgs::copy_vmas`] registered for missing
    /// pages.
    pub uffd: i32,
    /// Written by the tool: `FILL_*` (a futex word the child waits on in
    /// [`STATE_PAGES`]).
    pub filled: u32,
    /// Written by the tool with [`FILL_FAILED`]: the positive errno.
    pub fill_errno: i32,
    /// Written by the tool once the root task's new UTS and IPC
    /// namespaces are filled: a root made with `CLONE_NEWIPC` or
    /// `CLONE_NEWUTS` ([`RestoreArgs::start_flags`]) waits for it (a
    /// shared futex) before it forks its children or maps its memory, so
    /// that every task finds the SysV segments it attaches
    /// ([`VMA_SHMAT`]).
    pub ns_ready: u32,
}

/// An address range `[start, end)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
}

/// One VMA to `mmap` with `MAP_FIXED`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmaArg {
    pub start: u64,
    pub end: u64,
    /// File offset in bytes (file mappings).
    pub offset: u64,
    /// Protection to map with (the final one plus `PROT_WRITE` while pages
    /// are read in).
    pub map_prot: u32,
    /// `mmap` flags (`MAP_FIXED` is added by the blob).
    pub flags: u32,
    /// File to map, or -1 for anonymous memory.
    pub fd: i32,
    /// Protection once the pages are in.
    pub final_prot: u32,
    /// Non-zero: already in place (moved from the premap area, see
    /// [`CowArgs::moves`]); `STAGE_MAP` does not map it again.
    pub premapped: u32,
    /// [`VMA_MMAP`], or [`VMA_SHMAT`]: a SysV shared memory segment
    /// attached at `start` (`shmat(fd, start, SHM_RDONLY unless
    /// final_prot has PROT_WRITE, SHM_EXEC if it has PROT_EXEC)`, `fd`
    /// holding the segment's id).
    pub kind: u32,
}

/// [`VmaArg::kind`]: `mmap`.
pub const VMA_MMAP: u32 = 0;
/// [`VmaArg::kind`]: `shmat`.
pub const VMA_SHMAT: u32 = 1;
/// `shmat` flags (linux/shm.h, generic: the same on every architecture;
/// linux-raw-sys has none).
pub const SHM_RDONLY: u32 = 0o10000;
pub const SHM_EXEC: u32 = 0o100000;

/// Copy-on-write sharing along the tree (CRIU's premapped private VMAs
/// inherited by the forked children). The tool reserves one premap area
/// for the tree, one slot per distinct VMA range that a parent and its
/// child both have private and anonymous. Before forking its children a
/// task frees the slots it does not use ([`CowArgs::unmap`]), maps its
/// own slots ([`CowArgs::maps`]; an inherited slot is already there,
/// with the parent's contents), writes its dumped pages into them (for an
/// inherited slot only where they differ: equal pages stay shared with
/// the parent) and discards the inherited pages it did not have
/// ([`CowArgs::discard`]). After unmapping the tool it moves the slots to
/// their VMAs' addresses, in an order in which no move lands on a slot
/// not yet moved.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CowArgs {
    /// `[Region]`: parts of the premap area this task does not use.
    pub unmap: Array,
    /// `[Region]`: slots to map fresh (private anonymous, read-write).
    pub maps: Array,
    /// `[PageRun]` into slots mapped fresh: read in.
    pub fill: Array,
    /// `[PageRun]` into inherited slots: read, and written where different.
    pub compare: Array,
    /// `[Region]` of inherited slots: pages the task did not have.
    pub discard: Array,
    /// `[Remap]`: slot to final address, in order.
    pub moves: Array,
    /// Out: bytes of `compare` found equal and left shared.
    pub skipped: u64,
}

/// `pread` `len` bytes at file offset `offset` of the pages image to `addr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageRun {
    pub addr: u64,
    pub len: u64,
    pub offset: u64,
}

/// `mremap` `len` bytes from `from` to `to` (`to == 0`: `munmap` instead).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Remap {
    pub from: u64,
    pub to: u64,
    pub len: u64,
}

/// `dup3(from, to, flags)` (`flags`: 0 or `O_CLOEXEC`; nothing when
/// `from == to`; `from` is closed at the end with every fd not kept).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdMove {
    pub from: i32,
    pub to: i32,
    pub flags: u32,
}

/// `rt_sigaction(sig, {handler, flags, restorer, mask})`, as dumped.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigactionArg {
    pub sig: u64,
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// `setitimer(which, {interval, value})`, times as (seconds, microseconds).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItimerArg {
    pub which: u64,
    pub interval_sec: u64,
    pub interval_usec: u64,
    pub value_sec: u64,
    pub value_usec: u64,
}

/// A POSIX timer: `timer_create(clock, {notify, signo, value, tid})` with
/// the dumped id, then `timer_settime(interval, value)` (relative).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PosixTimerArg {
    pub id: i32,
    pub clock: i32,
    pub signo: i32,
    pub notify: i32,
    pub sival: u64,
    pub tid: i32,
    pub _pad: u32,
    pub interval_sec: u64,
    pub interval_nsec: u64,
    pub value_sec: u64,
    pub value_nsec: u64,
}

/// `prlimit64(0, resource, {cur, max}, NULL)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RlimitArg {
    pub resource: u64,
    pub cur: u64,
    pub max: u64,
}

/// A pending signal to queue again: `rt_sigqueueinfo` (process-wide) or
/// `rt_tgsigqueueinfo` (this thread), with the dumped `siginfo_t` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiginfoArg {
    /// Non-zero: shared (process-wide) pending signal.
    pub shared: u32,
    pub signo: u32,
    pub info: [u8; 128],
}

impl Default for SiginfoArg {
    fn default() -> Self {
        SiginfoArg {
            shared: 0,
            signo: 0,
            info: [0; 128],
        }
    }
}

/// Most supplementary groups restored.
pub const MAX_GROUPS: usize = 64;

/// Credentials, applied last (they may take away the right to do the rest).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredsArg {
    /// Non-zero: restore these credentials.
    pub valid: u32,
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    pub secbits: u32,
    pub ngroups: u32,
    pub groups: [u32; MAX_GROUPS],
    /// Capability sets, two 32-bit words each (`_LINUX_CAPABILITY_VERSION_3`).
    pub cap_eff: [u32; 2],
    pub cap_prm: [u32; 2],
    pub cap_inh: [u32; 2],
    pub cap_bnd: [u32; 2],
    /// Ambient set, a bit per capability.
    pub cap_amb: [u32; 2],
    /// Highest capability number of this kernel (`/proc/sys/kernel/cap_last_cap`).
    pub cap_last: u32,
}

impl Default for CredsArg {
    fn default() -> Self {
        CredsArg {
            valid: 0,
            uid: 0,
            euid: 0,
            suid: 0,
            fsuid: 0,
            gid: 0,
            egid: 0,
            sgid: 0,
            fsgid: 0,
            secbits: 0,
            ngroups: 0,
            groups: [0; MAX_GROUPS],
            cap_eff: [0; 2],
            cap_prm: [0; 2],
            cap_inh: [0; 2],
            cap_bnd: [0; 2],
            cap_amb: [0; 2],
            cap_last: 0,
        }
    }
}

/// A raw system call made just before `rt_sigreturn` (per-arch state the
/// signal frame does not carry, such as x86_64's `arch_prctl(ARCH_SET_FS)`);
/// core chooses them, the blob stays arch-neutral.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSyscall {
    /// The syscall number, with [`RAW_SAVE`] and [`RAW_ARG0_SAVED`]
    /// possibly set.
    pub nr: u64,
    pub args: [u64; 6],
}

/// In [`RawSyscall::nr`]: keep the call's result (an fd it made, say) for
/// the calls after it that have [`RAW_ARG0_SAVED`]: `pidfd_open` saved,
/// then `dup3` of that fd onto its place and `close` of it.
pub const RAW_SAVE: u64 = 1 << 63;
/// In [`RawSyscall::nr`]: the first argument is the last saved result.
pub const RAW_ARG0_SAVED: u64 = 1 << 62;

/// The kernel's `struct prctl_mm_map` (`PR_SET_MM_MAP`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrctlMmMap {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    /// Address of the saved auxv words.
    pub auxv: u64,
    /// Size of the auxv in bytes.
    pub auxv_size: u32,
    /// Fd of the executable.
    pub exe_fd: u32,
}

/// A pointer (an address inside the bootstrap region) and a count.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Array {
    pub addr: u64,
    pub len: u64,
}

/// Argument block of [`CMD_RESTORE`]. Every [`Array`] points into the
/// bootstrap region, which is mapped at the same address in tool and child.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreArgs {
    /// Out: progress of the child.
    pub status: RestoreStatus,
    /// PID to create the task with (`clone3` `set_tid`), 0 for any.
    pub pid: i32,
    /// Non-zero: `setsid()` in the child.
    pub setsid: u32,
    /// Non-zero: `setpgid(0, pgid)` in the child (after `setsid`, if any).
    pub pgid: i32,
    /// `umask` to set, or `u32::MAX` to keep.
    pub umask: u32,
    /// Directory fds for `fchdir` / `chroot`, -1 to keep.
    pub cwd_fd: i32,
    pub root_fd: i32,
    /// `[FdMove]`: the task's fds, opened by the tool above every target.
    pub fd_moves: Array,
    /// `[i32]`, sorted: fds that stay open; all others are closed last.
    pub keep_fds: Array,
    /// Stack for the rest of the restore (reached through a signal handler
    /// on this alternate stack, so no arch code switches stacks).
    pub stack: Region,
    /// Signal used to get onto that stack.
    pub switch_signal: u64,
    /// `[Remap]`: the tool's vDSO/vvar mappings into the parking area of the
    /// bootstrap region (done first, before anything is unmapped).
    pub park: Array,
    /// `[Region]`: ranges to unmap (everything but the bootstrap region).
    pub unmap: Array,
    /// `[VmaArg]`, sorted by address.
    pub vmas: Array,
    /// Fd of `pages-N.img` and the `[PageRun]` read from it.
    pub pages_fd: i32,
    /// Non-zero: call `PR_SET_MM_MAP` with `mm_map`.
    pub set_mm: u32,
    pub page_runs: Array,
    /// `[Remap]`: parked vDSO/vvar to the dumped addresses (`to == 0`: unmap).
    pub unpark: Array,
    pub mm_map: PrctlMmMap,
    /// `[SigactionArg]`.
    pub sigactions: Array,
    /// `[ItimerArg]`.
    pub itimers: Array,
    /// `[PosixTimerArg]`, in id order.
    pub posix_timers: Array,
    pub creds: CredsArg,
    /// `[RlimitArg]`.
    pub rlimits: Array,
    /// `[SiginfoArg]`, queued with every signal blocked.
    pub signals: Array,
    /// The task's name (`PR_SET_NAME`), NUL-terminated; empty: keep.
    pub comm: [u8; 16],
    /// The task's own rseq registration, made right before `rt_sigreturn`.
    pub task_rseq: RseqArg,
    /// Testing: fail on purpose when reaching this stage (0: never).
    pub fault_stage: u32,
    /// Explicit padding (zero), so that no byte of the block is implicit
    /// padding the tool would copy uninitialised.
    pub _pad_fault: u32,
    /// `[RawSyscall]`, made in order right before `rt_sigreturn`.
    pub arch_syscalls: Array,
    /// Stack pointer for `rt_sigreturn`: frame address + `RT_SIGFRAME_OFFSET`.
    pub sigreturn_sp: u64,
    /// The tool's rseq registration, inherited by the child, to undo before
    /// the tool's memory goes (else the kernel's rseq update faults).
    pub tool_rseq: RseqArg,
    /// prctl-level task attributes (personality, scheduling, subreaper,
    /// parent-death signal, no_new_privs, dumpable).
    pub attrs: TaskAttrsArg,
    /// `[ThreadArg]`: the task's other threads, created (with their TIDs)
    /// before the posix timers, which may name them.
    pub threads: Array,
    /// Written by the threads: how many are ready (a futex word the main
    /// thread waits on before its own credentials).
    pub threads_ready: u32,
    /// Non-zero: this task creates a group others join (by `setsid` or
    /// `setpgid(0, pgid)`), counted down in [`TreeWords::groups`].
    pub leads_group: u32,
    /// `[ChildArg]`: the task's children, forked in `STAGE_SESSION`.
    pub children: Array,
    /// Address of the tree's [`TreeWords`], 0 for a task alone.
    pub tree: u64,
    /// Non-zero: once its children are forked and every group exists,
    /// `setpgid(0, join_pgid)` (counted down in [`TreeWords::joins`]).
    pub join_pgid: i32,
    /// `FD_TABLE_*`: whose fd table the task uses.
    pub fd_table: u32,
    /// `[RawSyscall]` of [`STAGE_FD_STATE`] (`epoll_ctl`, `flock`,
    /// `fcntl(F_SETLK)`), their structs inside the bootstrap region.
    pub fd_calls: Array,
    /// The thread pointer no signal frame carries (aarch64 `tpidr_el0`),
    /// written with `criu_arch::set_thread_pointer` right before
    /// `rt_sigreturn`; unused where that is a no-op.
    pub thread_pointer: u64,
    /// `[RawSyscall]`: the VMAs' `madvise` advice, given right after they
    /// are mapped and before their pages are read (so that
    /// MADV_NOHUGEPAGE keeps the reads from faulting in huge pages where
    /// THP is `always`).
    pub madvise: Array,
    /// A shared fd table's pipe (a tool fd): its write end in a task that
    /// shares the table ([`FD_TABLE_SHARED`]), its read end in the table's
    /// owner ([`FD_TABLE_LENT`]); -1 otherwise.
    pub fd_sync: i32,
    /// [`FD_TABLE_LENT`]: how many tasks share the table.
    pub fd_sync_count: u32,
    /// `clone3` flags of the tool's fork of this task (the root only):
    /// `CLONE_PARENT` for `--restore-sibling`, 0 otherwise.
    pub start_flags: u64,
    /// Non-zero: the task takes the tool's files it needs with
    /// `pidfd_getfd` instead of keeping all it inherited (which would cost
    /// every task of a tree the whole tree's files). First thing, it
    /// closes every inherited tool fd (those at or above `tool_fds_from`)
    /// but `tool_pidfd`, then recreates each fd of `pull_fds` at the same
    /// number, so every other fd field of these args holds as the tool
    /// wrote it. A task using its parent's table ([`FD_TABLE_SHARED`])
    /// does neither: the table's owner took its fds with its own.
    pub pull: u32,
    /// A pidfd of the tool (a tool fd itself).
    pub tool_pidfd: i32,
    pub tool_fds_from: i32,
    pub _pad_pull: u32,
    /// `[i32]`: the tool fds to take, ascending (in a shared mapping of
    /// the tool's, outside the bootstrap region, unmapped with the tool).
    pub pull_fds: Array,
    /// `[CodePatch]`: the jumps that make the dumped vDSO a proxy of this
    /// kernel's, written once its pages are read, before the final
    /// protections ([`STAGE_VDSO`]); empty unless proxying.
    pub vdso_patches: Array,
    /// The mark written over this kernel's vDSO at its final place when
    /// proxying (after `unpark`); `addr == 0`: none.
    pub vdso_mark: VdsoMarkArg,
    /// The premap slots this task maps, fills and inherits
    /// ([`STAGE_PREMAP`]).
    pub cow: CowArgs,
    /// `[PageRun]` of the pages image the tool copies in with
    /// `UFFDIO_COPY` (from two threads, into pages it allocates without
    /// zeroing them first) while the child reads `page_runs`: runs in
    /// private anonymous VMAs, when a task has enough of them to pay for
    /// the hand-over. Read by the child itself if the tool answers
    /// [`FILL_SELF`] or the child cannot make a userfaultfd.
    pub copy_runs: Array,
    /// `[Region]`: the VMAs holding `copy_runs`, each registered whole
    /// with the child's userfaultfd (missing pages), unregistered when the
    /// child closes it.
    pub copy_vmas: Array,
    /// `[i32]`: tool fds of `cgroup.procs` files the task writes `0`
    /// (itself) into, in [`STAGE_CGROUPS`]; empty when it stays in the
    /// cgroups it is born in.
    pub cgroup_fds: Array,
    /// The main thread's seccomp state ([`STAGE_SECCOMP`]).
    pub seccomp: SeccompArg,
    /// `[i32]`: the root task's own cgroup namespace: tool fds of the
    /// `cgroup.procs` files of the namespace's root cgroups, which the
    /// task writes itself into in [`STAGE_CGROUPS`] before
    /// `unshare(CLONE_NEWCGROUP)` (the namespace is rooted where the task
    /// is then), and before `cgroup_fds`; empty: no namespace of its own.
    /// A failure's index counts these writes, then the unshare, then the
    /// writes of `cgroup_fds`.
    pub cgns_fds: Array,
}

/// `SECCOMP_MODE_*` of [`SeccompArg::mode`].
pub const SECCOMP_MODE_DISABLED: u32 = 0;
pub const SECCOMP_MODE_STRICT: u32 = 1;
pub const SECCOMP_MODE_FILTER: u32 = 2;

/// One thread's seccomp state: for [`SECCOMP_MODE_FILTER`], `filters`
/// (`[SeccompFilterArg]`, oldest first) installed in order with
/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, ...)`, their instructions
/// one after the other in `insns` (`[u64]`, each a native-order
/// `struct sock_filter`); for [`SECCOMP_MODE_STRICT`],
/// `prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompArg {
    pub mode: u32,
    pub _pad: u32,
    pub filters: Array,
    pub insns: Array,
}

/// One classic-BPF filter of a [`SeccompArg`]: `len` instructions taken
/// from the arg's `insns` after the previous filters' ones.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompFilterArg {
    /// `SECCOMP_FILTER_FLAG_*` (TSYNC, LOG, ...).
    pub flags: u32,
    pub len: u32,
}

/// Most bytes of one [`CodePatch`].
pub const CODE_PATCH_MAX: usize = 32;

/// `len` bytes of `code` written at `addr`, inside a restored VMA that is
/// still writable; the instruction cache is flushed for it once the final
/// protections are set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodePatch {
    pub addr: u64,
    pub len: u64,
    pub code: [u8; CODE_PATCH_MAX],
}

/// CRIU's vDSO mark (core's `vdso::mark`): `words` written at `addr`, the
/// start of this kernel's vDSO at its final place, between
/// `mprotect(addr, len, PROT_READ | PROT_WRITE)` and
/// `mprotect(addr, len, PROT_READ | PROT_EXEC)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VdsoMarkArg {
    pub addr: u64,
    pub len: u64,
    pub words: [u64; 5],
}

/// One non-leader thread: created with `clone3` (`set_tid` = `tid`) on
/// `stack`; it queues its own pending signals, sets its name, credentials,
/// arch state and rseq, reports ready, waits for `status.resume` like the
/// main thread and `rt_sigreturn`s on its own frame (which carries its
/// registers, signal mask and sigaltstack). Under seccomp its filters,
/// credentials, arch state and rseq come after `status.resume` (see
/// [`STAGE_SECCOMP`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadArg {
    pub tid: i32,
    pub _pad: u32,
    /// Its stack while in the restorer (top 16-byte aligned).
    pub stack: Region,
    /// Frame address + `RT_SIGFRAME_OFFSET`.
    pub sigreturn_sp: u64,
    /// `[SiginfoArg]`: its own pending signals (`shared` is 0).
    pub signals: Array,
    /// `[RawSyscall]`: per-thread arch state (TLS base, clear_child_tid,
    /// robust list), made right before `rt_sigreturn`.
    pub arch_syscalls: Array,
    pub rseq: RseqArg,
    /// Its name (`PR_SET_NAME`), NUL-terminated; empty: keep.
    pub comm: [u8; 16],
    pub creds: CredsArg,
    /// Its own scheduling (before the credentials), parent-death signal
    /// and no_new_privs (after them); only those `ATTR_*` bits.
    pub attrs: TaskAttrsArg,
    /// As [`RestoreArgs::thread_pointer`].
    pub thread_pointer: u64,
    /// Its seccomp state ([`STAGE_SECCOMP`]).
    pub seccomp: SeccompArg,
}

// [`TaskAttrsArg::has`] bits: which attributes the images carry.
pub const ATTR_PERSONALITY: u32 = 1 << 0;
pub const ATTR_SCHED: u32 = 1 << 1;
pub const ATTR_SUBREAPER: u32 = 1 << 2;
pub const ATTR_PDEATH_SIG: u32 = 1 << 3;
pub const ATTR_NO_NEW_PRIVS: u32 = 1 << 4;
pub const ATTR_DUMPABLE: u32 = 1 << 5;
pub const ATTR_THP_DISABLE: u32 = 1 << 6;
pub const ATTR_MEMBARRIER: u32 = 1 << 7;
pub const ATTR_OOM_SCORE_ADJ: u32 = 1 << 8;
pub const ATTR_LOGINUID: u32 = 1 << 9;

/// Task attributes, applied in three steps: oom_score_adj, loginuid and
/// the THP-disable flag first ([`STAGE_PROC_ATTRS`], while the task still
/// has the tool's privileges and its memory is not mapped yet);
/// personality, scheduling, the subreaper flag and the membarrier
/// registrations with the task's name ([`STAGE_TASK`]); the parent-death
/// signal, no_new_privs and dumpable after the credentials
/// ([`STAGE_ATTRS`]), since a credential change resets the first and the
/// last, and no_new_privs is one-way.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskAttrsArg {
    /// `ATTR_*` bits: the fields to apply.
    pub has: u32,
    /// `personality(personality)`.
    pub personality: u32,
    /// `sched_setscheduler(0, sched_policy, {sched_prio})`, then
    /// `setpriority(PRIO_PROCESS, 0, sched_nice)`.
    pub sched_policy: u32,
    pub sched_prio: u32,
    pub sched_nice: i32,
    /// `PR_SET_CHILD_SUBREAPER` value.
    pub child_subreaper: u32,
    /// `PR_SET_PDEATHSIG` signal.
    pub pdeath_sig: u32,
    /// `PR_SET_DUMPABLE` value (0 or 1).
    pub dumpable: u32,
    /// `PR_SET_THP_DISABLE` value (0 or 1).
    pub thp_disabled: u32,
    /// membarrier registration commands (`MEMBARRIER_CMD_REGISTER_*`
    /// bits), each issued on its own.
    pub membarrier: u32,
    /// Decimal text for `/proc/self/oom_score_adj`, NUL-padded.
    pub oom_score_adj: [u8; 12],
    /// Decimal text for `/proc/self/loginuid`, NUL-padded.
    pub loginuid: [u8; 12],
}

/// An rseq registration: `rseq(addr, len, flags, sig)`; `addr == 0`: none.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RseqArg {
    pub addr: u64,
    pub len: u32,
    pub sig: u32,
}

// Every argument block is its fields and nothing else (no implicit padding:
// every byte of a value is initialised, so core may copy it out as bytes).
crate::no_padding! {
    PingArgs { i32, u32, i64, u64 },
    ChildArg { i32, u32, u64, u64, i32, u32, u32, i32, u32, i32, u64 },
    TreeWords { u32, u32 },
    RestoreStatus { u32, u32, i32, u32, u32, u32, i32, u32, i32, u32 },
    Region { u64, u64 },
    VmaArg { u64, u64, u64, u32, u32, i32, u32, u32, u32 },
    CowArgs { Array, Array, Array, Array, Array, Array, u64 },
    PageRun { u64, u64, u64 },
    Remap { u64, u64, u64 },
    FdMove { i32, i32, u32 },
    SigactionArg { u64, u64, u64, u64, u64 },
    ItimerArg { u64, u64, u64, u64, u64 },
    PosixTimerArg { i32, i32, i32, i32, u64, i32, u32, u64, u64, u64, u64 },
    RlimitArg { u64, u64, u64 },
    SiginfoArg { u32, u32, [u8; 128] },
    CredsArg { u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, u32, [u32; MAX_GROUPS], [u32; 2], [u32; 2], [u32; 2], [u32; 2], [u32; 2], u32 },
    RawSyscall { u64, [u64; 6] },
    PrctlMmMap { u64, u64, u64, u64, u64, u64, u64, u64, u64, u64, u64, u64, u32, u32 },
    Array { u64, u64 },
    RestoreArgs { RestoreStatus, i32, u32, i32, u32, i32, i32, Array, Array, Region, u64, Array, Array, Array, i32, u32, Array, Array, PrctlMmMap, Array, Array, Array, CredsArg, Array, Array, [u8; 16], RseqArg, u32, u32, Array, u64, RseqArg, TaskAttrsArg, Array, u32, u32, Array, u64, i32, u32, Array, u64, Array, i32, u32, u64, u32, i32, i32, u32, Array, Array, VdsoMarkArg, CowArgs, Array, Array, Array, SeccompArg, Array },
    SeccompArg { u32, u32, Array, Array },
    SeccompFilterArg { u32, u32 },
    CodePatch { u64, u64, [u8; CODE_PATCH_MAX] },
    VdsoMarkArg { u64, u64, [u64; 5] },
    ThreadArg { i32, u32, Region, u64, Array, Array, RseqArg, [u8; 16], CredsArg, TaskAttrsArg, u64, SeccompArg },
    TaskAttrsArg { u32, u32, u32, u32, i32, u32, u32, u32, u32, u32, [u8; 12], [u8; 12] },
    RseqArg { u64, u32, u32 },
}
