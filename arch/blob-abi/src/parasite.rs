//! The parasite's calling interface: command numbers, argument blocks and
//! result codes.
//!
//! Compiled into the parasite blob and into core (both depend on this crate),
//! so both sides agree on every number and layout by construction. It holds
//! plain data only (constants and `#[repr(C)]` structs of fixed-size
//! integers), no code. The calling convention and the result codes are the
//! crate's (see its root).

pub use crate::{ERR_BAD_ARGS, ERR_NO_COMMAND};

/// Name of the exported entry symbol; the build checks that it is at offset 0.
pub const ENTRY_SYMBOL: &str = "__export_parasite_entry";

/// `PING`: write [`PING_MESSAGE`] to `PingArgs::fd` with a raw `write`, and
/// return entry `PingArgs::index` of the blob's table of pointers to
/// [`PING_VALUES`]. Both the message and the values are reached through
/// pointers stored in the blob's data, so a correct answer proves that the
/// blob was relocated for the address it runs at.
pub const CMD_PING: usize = 1;

/// What `PING` writes.
pub const PING_MESSAGE: &[u8] = b"criu parasite: ping\n";

/// The values `PING` returns, by index. All positive as `isize`, so they
/// cannot be mistaken for an error.
pub const PING_VALUES: [u64; 3] = [
    0x5041_5241_0000_0001,
    0x5041_5241_0000_0002,
    0x5041_5241_0000_0003,
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

// ---------------------------------------------------------------------------
// Daemon mode (CRIU's `parasite_init_daemon` + compel's RPC).
//
// The tool starts the blob with `entry(CMD_INIT_DAEMON, args)` where `args`
// points to an [`InitDaemonArgs`] at the start of the shared argument area.
// The parasite connects a `SOCK_SEQPACKET` unix socket to the address given
// there, acks, and then serves [`CtlMsg`] commands until [`CMD_FINI`], after
// which it returns to the task's original context with `rt_sigreturn`
// through the frame the tool prepared. Arguments and results of each daemon
// command live in the argument area (the same one that held the init args).
// If it cannot connect it returns `-errno` from the entry (to the trap).

/// Entry command: become a daemon (see above).
pub const CMD_INIT_DAEMON: usize = 2;

/// Entry command (trap mode, for threads other than the daemon's):
/// `DUMP_THREAD` into the [`ThreadArgs`] at `args`.
pub const CMD_TRAP_DUMP_THREAD: usize = 5;

/// Daemon command: acknowledge nothing, return through the signal frame.
pub const CMD_FINI: u32 = 3;
/// Daemon command: `PING` over the socket (same arguments as the entry one).
pub const CMD_DAEMON_PING: u32 = 4;
/// First command specific to dumping (CRIU's `PARASITE_USER_CMDS`).
pub const CMD_USER_FIRST: u32 = 64;
/// [`MiscArgs`].
pub const CMD_DUMP_MISC: u32 = 64;
/// [`ThreadArgs`].
pub const CMD_DUMP_THREAD: u32 = 65;
/// [`SigactsArgs`].
pub const CMD_DUMP_SIGACTS: u32 = 66;
/// [`ItimersArgs`].
pub const CMD_DUMP_ITIMERS: u32 = 67;
/// [`PosixTimersArgs`] followed by `nr` [`PosixTimer`] entries.
pub const CMD_DUMP_POSIX_TIMERS: u32 = 68;
/// [`MprotectArgs`] followed by `nr` [`MprotectRegion`] entries.
pub const CMD_MPROTECT_VMAS: u32 = 69;
/// [`DumpPagesArgs`] followed by `nr_iovs` [`IoVec`] entries; the pipe's
/// write end follows the control message with `SCM_RIGHTS`.
pub const CMD_DUMPPAGES: u32 = 70;
/// [`DrainFdsArgs`] followed by `nr` `i32` fds; the parasite writes each
/// fd's `F_GETFD` flags over the fd numbers (in place) and sends the fds
/// back with `SCM_RIGHTS`, at most [`SCM_MAX_FD`] per message, before its
/// ack.
pub const CMD_DRAIN_FDS: u32 = 71;
/// [`UffdWpArgs`] followed by `nr` [`IoVec`] ranges: memory dirty tracking
/// (see the tool's `mem::dirty`). With `op == UFFD_WP_TRACK` the parasite
/// makes a new userfaultfd (async write-protect), puts it at fd `fd`
/// (replacing whatever was there: the previous round's tracker), registers
/// each range for write-protection and write-protects it; `registered`
/// says how many ranges were. With `op == UFFD_WP_CLOSE` it closes `fd`.
pub const CMD_UFFD_WP: u32 = 72;
/// [`UffdWpArgs::op`]: start tracking afresh.
pub const UFFD_WP_TRACK: u32 = 0;
/// [`UffdWpArgs::op`]: stop tracking (close the tracker).
pub const UFFD_WP_CLOSE: u32 = 1;
/// [`UffdWpArgs::op`]: register and write-protect more ranges with the
/// tracker at `fd` (more than one argument block holds).
pub const UFFD_WP_ADD: u32 = 2;

/// Most fds one `SCM_RIGHTS` message carries (the kernel's `SCM_MAX_FD` is
/// 253; CRIU uses 252).
pub const SCM_MAX_FD: usize = 252;
/// Most iovecs one `vmsplice` takes (`UIO_MAXIOV`).
pub const UIO_MAXIOV: usize = 1024;

/// The 12-byte control message of the RPC (compel's `ctl_msg`). The tool
/// sends `{cmd, 0, 0}`; the parasite answers `{cmd, cmd, err}` where `err`
/// is 0 or `-errno`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtlMsg {
    pub cmd: u32,
    pub ack: u32,
    pub err: i32,
}

/// Longest `sun_path` of a `sockaddr_un`.
pub const SUN_PATH_MAX: usize = 108;

/// Arguments of [`CMD_INIT_DAEMON`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitDaemonArgs {
    /// Socket address path (abstract: starts with a NUL byte).
    pub sun_path: [u8; SUN_PATH_MAX],
    /// Bytes of `sun_path` in use.
    pub sun_len: u32,
    /// Stack pointer for `rt_sigreturn` at FINI (frame address + the arch's
    /// `RT_SIGFRAME_OFFSET`).
    pub sigreturn_sp: u64,
    /// Size of the argument area (bounds for variable-length commands).
    pub args_len: u64,
    /// Address of the frame's `uc_stack`: the parasite stores the task's
    /// alternate signal stack there just before `rt_sigreturn`, which
    /// installs it again (otherwise it would reset it).
    pub altstack_addr: u64,
    /// Out, valid when the INIT_DAEMON ack arrives: the parasite's socket
    /// fd in the task (so that the tool can close it should the parasite
    /// be unable to).
    pub sock_fd: i32,
    pub _pad: u32,
}

/// Results of [`CMD_DUMP_MISC`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MiscArgs {
    /// `brk(0)`: the current program break.
    pub brk: u64,
    pub pid: i32,
    pub sid: i32,
    pub pgid: i32,
    pub umask: u32,
    pub dumpable: i32,
    pub thp_disabled: i32,
    pub child_subreaper: i32,
    /// The process's membarrier registrations as
    /// `MEMBARRIER_CMD_REGISTER_*` bits (CRIU's
    /// `membarrier_registration_mask`).
    pub membarrier: u32,
}

/// Credentials as the task sees them (CRIU's `creds_entry` inputs).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Creds {
    /// Capability sets as two 32-bit words each (capget v3).
    pub cap_inh: [u32; 2],
    pub cap_prm: [u32; 2],
    pub cap_eff: [u32; 2],
    /// Bounding set (`PR_CAPBSET_READ`), bit per cap.
    pub cap_bnd: [u32; 2],
    /// Ambient set (`PR_CAP_AMBIENT_IS_SET`), bit per cap.
    pub cap_amb: [u32; 2],
    /// Number of caps the kernel knows (first that `PR_CAPBSET_READ` rejects).
    pub cap_last: u32,
    pub no_new_privs: u32,
    pub secbits: u32,
    /// real, effective, saved, fs.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    pub ngroups: u32,
    pub groups: [u32; CREDS_MAX_GROUPS],
}

/// Supplementary groups we collect.
pub const CREDS_MAX_GROUPS: usize = 256;

/// Results of [`CMD_DUMP_THREAD`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadArgs {
    /// `PR_GET_TID_ADDRESS`: the `clear_child_tid` pointer.
    pub tid_addr: u64,
    /// `sigaltstack`: sp, flags, size.
    pub sas_sp: u64,
    pub sas_flags: i32,
    pub pdeath_sig: i32,
    pub sas_size: u64,
    /// `PR_GET_NAME` (NUL padded).
    pub comm: [u8; 16],
    /// `gettid` inside (the namespace tid).
    pub tid: i32,
    /// `PR_MCE_KILL_GET`: the thread's machine-check kill policy.
    pub mce_kill: i32,
    /// `PR_GET_TIMERSLACK`: the thread's timer slack in ns.
    pub timer_slack: u64,
    /// `PR_GET_TSC` (x86 only; 0 where the kernel has no such prctl).
    pub tsc: i32,
    pub _pad: u32,
    pub creds: Creds,
}

/// One signal's action as `rt_sigaction` reports it (the kernel layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sigaction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// Results of [`CMD_DUMP_SIGACTS`]: entry `n - 1` is signal `n` (SIGKILL
/// and SIGSTOP stay zero).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigactsArgs {
    pub acts: [Sigaction; 64],
}

/// `struct itimerval` as four longs: interval (sec, usec), value (sec, usec).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Itimerval {
    pub interval_sec: i64,
    pub interval_usec: i64,
    pub value_sec: i64,
    pub value_usec: i64,
}

/// Results of [`CMD_DUMP_ITIMERS`]: REAL, VIRTUAL, PROF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItimersArgs {
    pub timers: [Itimerval; 3],
}

/// Header of [`CMD_DUMP_POSIX_TIMERS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PosixTimersArgs {
    pub nr: u64,
}

/// One POSIX timer: `id` in, the rest out (`timer_gettime`, `timer_getoverrun`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PosixTimer {
    pub id: i32,
    pub overrun: i32,
    pub interval_sec: i64,
    pub interval_nsec: i64,
    pub value_sec: i64,
    pub value_nsec: i64,
}

/// Header of [`CMD_MPROTECT_VMAS`]. With `undo == 0` each region gets
/// `prot` and the parasite remembers `orig` (at most [`MPROTECT_MAX`]
/// regions); with `undo != 0` (or at FINI) every remembered region gets its
/// `orig` back and the list is emptied.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MprotectArgs {
    pub nr: u32,
    pub undo: u32,
}

/// Most regions [`CMD_MPROTECT_VMAS`] remembers.
pub const MPROTECT_MAX: usize = 512;

/// One `mprotect(start, len, prot)`, undone with `orig`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MprotectRegion {
    pub start: u64,
    pub len: u64,
    pub prot: u64,
    pub orig: u64,
}

/// Header of [`CMD_DUMPPAGES`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpPagesArgs {
    pub nr_iovs: u64,
    /// Sum of the iovecs' lengths, which `vmsplice` must move exactly.
    pub total: u64,
}

/// `struct iovec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoVec {
    pub base: u64,
    pub len: u64,
}

/// Header of [`CMD_UFFD_WP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UffdWpArgs {
    /// Where the tracker lives in the task.
    pub fd: i32,
    pub op: u32,
    /// `UFFD_FEATURE_*` asked for.
    pub features: u64,
    /// Ranges following the header.
    pub nr: u64,
    /// Out: ranges registered and write-protected (the first that failed
    /// stops the command with its error).
    pub registered: u64,
}

/// Header of [`CMD_DRAIN_FDS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainFdsArgs {
    pub nr: u64,
}

// Every argument block is its fields and nothing else (no implicit padding:
// every byte of a value is initialised, so core may copy it out as bytes).
crate::no_padding! {
    PingArgs { i32, u32, i64, u64 },
    CtlMsg { u32, u32, i32 },
    InitDaemonArgs { [u8; SUN_PATH_MAX], u32, u64, u64, u64, i32, u32 },
    MiscArgs { u64, i32, i32, i32, u32, i32, i32, i32, u32 },
    Creds { [u32; 2], [u32; 2], [u32; 2], [u32; 2], [u32; 2], u32, u32, u32, [u32; 4], [u32; 4], u32, [u32; CREDS_MAX_GROUPS] },
    ThreadArgs { u64, u64, i32, i32, u64, [u8; 16], i32, i32, u64, i32, u32, Creds },
    Sigaction { u64, u64, u64, u64 },
    SigactsArgs { [Sigaction; 64] },
    Itimerval { i64, i64, i64, i64 },
    ItimersArgs { [Itimerval; 3] },
    PosixTimersArgs { u64 },
    PosixTimer { i32, i32, i64, i64, i64, i64 },
    MprotectArgs { u32, u32 },
    MprotectRegion { u64, u64, u64, u64 },
    DumpPagesArgs { u64, u64 },
    IoVec { u64, u64 },
    DrainFdsArgs { u64 },
    UffdWpArgs { i32, u32, u64, u64, u64 },
}
