//! Who the client is, read once per connection, and the worker taking on
//! the client's rights ([`Client::confine`]).
//!
//! `SO_PEERCRED` gives the pid and the effective uid and gid the client
//! had when it connected (for `criu swrk`, when it made the socketpair).
//! The rest (all four uids and gids, the supplementary groups, the
//! capability sets and the user namespace) comes from the client's
//! `/proc/PID`, opened once as a directory fd: files read through that fd
//! belong to that process or fail with ESRCH, never to a later process
//! that reuses the pid. That the directory is the client's is proven by
//! the client's pidfd (`SO_PEERPIDFD`, the very process that connected):
//! once everything is read, the pidfd must still name a live process with
//! that pid, so the pid was the client's all along. A kernel without
//! `SO_PEERPIDFD` (before 6.5) gets `pidfd_open` of the pid instead,
//! which leaves the window between connect and open. Its effective uid and
//! gid must still be the ones `SO_PEERCRED` reported; otherwise the
//! connection is refused (a client that changed credentials is not
//! guessed at).
//!
//! A client is *full* when it is effectively root, in the service's user
//! namespace, with every capability the service itself has: it may do
//! whatever the service may. Every other client is served by a worker
//! that first becomes the client: its uids, gids and groups, at most its
//! capabilities (and CAP_CHECKPOINT_RESTORE, which the service grants as
//! CRIU's `--unprivileged` mode needs it, like `setcap` on a criu binary),
//! its bounding set and `no_new_privs`. From then on the kernel checks
//! every file, ptrace and credential change against the client's rights;
//! the checks of [`super::rights`] only refuse earlier and say why.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::thread::CapabilitySet;

use crate::proc::status::Status;
use crate::proc::{ProcDir, ProcError};
use crate::{pr_info, pr_warn};

/// `CAP_CHECKPOINT_RESTORE`: granted to confined workers (see the module
/// doc).
const CAP_CHECKPOINT_RESTORE: u64 = CapabilitySet::CHECKPOINT_RESTORE.bits();
pub const CAP_SYS_PTRACE: u64 = CapabilitySet::SYS_PTRACE.bits();

/// Who is on the other end of the socket (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// The credentials of the process on the other end of the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub peer: Peer,
    /// Real, effective, saved, filesystem.
    pub uid: [u32; 4],
    pub gid: [u32; 4],
    pub groups: Vec<u32>,
    pub cap_eff: u64,
    pub cap_prm: u64,
    pub cap_inh: u64,
    pub cap_bnd: u64,
    pub no_new_privs: bool,
    /// Inode of its user namespace (`None`: not readable).
    pub userns: Option<u64>,
    /// Root in the service's user namespace with every capability the
    /// service has: acts with the service's rights.
    pub full: bool,
}

/// Why a connection cannot be served with the client's rights.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("can't read the credentials of client {pid}: {source}")]
    Read { pid: i32, source: ReadError },
    #[error(
        "client {pid} connected as uid {uid} gid {gid} but now runs as uid {now_uid} \
         gid {now_gid}: refusing to guess whose rights to use"
    )]
    Changed {
        pid: i32,
        uid: u32,
        gid: u32,
        now_uid: u32,
        now_gid: u32,
    },
    #[error("can't take on the rights of client {pid} (uid {uid}): {what}: {errno}")]
    Confine {
        pid: i32,
        uid: u32,
        what: &'static str,
        errno: Errno,
    },
    #[error(
        "can't take on the rights of client {pid} (uid {uid}): the worker already runs \
         {threads} threads, and credentials are per thread"
    )]
    Threads { pid: i32, uid: u32, threads: u32 },
}

impl ClientError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            ClientError::Confine { errno, .. } => Some(errno.raw_os_error()),
            ClientError::Changed { .. } | ClientError::Threads { .. } => {
                Some(Errno::PERM.raw_os_error())
            }
            ClientError::Read { .. } => None,
        }
    }
}

/// The inode of `proc`'s user namespace.
pub fn userns_of(proc: &ProcDir) -> Result<u64, Errno> {
    rustix::fs::statat(proc.fd(), "ns/user", rustix::fs::AtFlags::empty()).map(|st| st.st_ino)
}

/// Our own status and user namespace.
fn ourselves() -> Result<(Status, Option<u64>), ReadError> {
    let me = ProcDir::open_self()?;
    let st = me.status()?;
    Ok((st, userns_of(&me).ok()))
}

/// The client's pidfd: `SO_PEERPIDFD`, else `pidfd_open` of its pid.
fn pidfd_of(sk: BorrowedFd<'_>, pid: i32) -> Result<OwnedFd, ReadError> {
    const SOL_SOCKET: u32 = linux_raw_sys::net::SOL_SOCKET;
    const SO_PEERPIDFD: u32 = linux_raw_sys::net::SO_PEERPIDFD;
    match crate::sys::sockopt::get_int(sk, SOL_SOCKET, SO_PEERPIDFD) {
        Ok(raw) => crate::sys::fds::adopt(raw).map_err(ReadError::PeerPidfd),
        Err(e) => {
            pr_info!("No SO_PEERPIDFD ({e}): pidfd_open of the client's pid instead");
            let pid = rustix::process::Pid::from_raw(pid).ok_or(ReadError::NoPid)?;
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
                .map_err(ReadError::PidfdOpen)
        }
    }
}

/// Why the credentials of a client (or the service's own) cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("SO_PEERPIDFD: {0}")]
    PeerPidfd(#[source] Errno),
    #[error("no pid")]
    NoPid,
    #[error("pidfd_open: {0}")]
    PidfdOpen(#[source] Errno),
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("it exited while its credentials were read")]
    Exited,
}

/// Why a confined worker does not exec a program for its client.
#[derive(Debug, thiserror::Error)]
pub enum ExecRefused {
    #[error(
        "{who} is not a full root (its capabilities are {cap_eff:#x}): a program exec'ed \
         as uid 0 would get back what it lacks, so exec_cmd is refused"
    )]
    PartialRoot { who: String, cap_eff: u64 },
    #[error("can't drop the capabilities before exec_cmd: {0}")]
    DropCaps(#[source] Errno),
}

/// The pid the pidfd `fd` names now (`Pid:` of its fdinfo; `None` once
/// the process is gone).
fn pidfd_pid(fd: &OwnedFd) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
        .filter(|&p: &i32| p > 0)
}

impl Client {
    /// Reads the credentials of `peer`, the other end of `sk` (see the
    /// module doc).
    pub fn read(sk: BorrowedFd<'_>, peer: Peer) -> Result<Client, ClientError> {
        let err = |source: ReadError| ClientError::Read {
            pid: peer.pid,
            source,
        };
        let pidfd = pidfd_of(sk.as_fd(), peer.pid).map_err(err)?;
        let proc = ProcDir::open(peer.pid).map_err(|e| err(e.into()))?;
        let st = proc.status().map_err(|e| err(e.into()))?;
        if st.uid[1] != peer.uid || st.gid[1] != peer.gid {
            return Err(ClientError::Changed {
                pid: peer.pid,
                uid: peer.uid,
                gid: peer.gid,
                now_uid: st.uid[1],
                now_gid: st.gid[1],
            });
        }
        let userns = userns_of(&proc).ok();
        // Still alive with that pid: what was read is the client's.
        if pidfd_pid(&pidfd) != Some(peer.pid) {
            return Err(err(ReadError::Exited));
        }
        let (ours, our_ns) = ourselves().map_err(err)?;
        let full = peer.uid == 0
            && st.uid[1] == 0
            && st.cap_eff & ours.cap_eff == ours.cap_eff
            && userns.is_some()
            && userns == our_ns;
        Ok(Client {
            peer,
            uid: st.uid,
            gid: st.gid,
            groups: st.groups,
            cap_eff: st.cap_eff,
            cap_prm: st.cap_prm,
            cap_inh: st.cap_inh,
            cap_bnd: st.cap_bnd,
            no_new_privs: st.no_new_privs.unwrap_or(false),
            userns,
            full,
        })
    }

    /// A full client: the service's own tests and callers that are root.
    pub fn root(pid: i32) -> Client {
        Client {
            peer: Peer {
                pid,
                uid: 0,
                gid: 0,
            },
            uid: [0; 4],
            gid: [0; 4],
            groups: Vec::new(),
            cap_eff: u64::MAX,
            cap_prm: u64::MAX,
            cap_inh: 0,
            cap_bnd: u64::MAX,
            no_new_privs: false,
            userns: None,
            full: true,
        }
    }

    /// `pid N (uid U)`, the client as refusals name it.
    pub fn who(&self) -> String {
        format!("client {} (uid {})", self.peer.pid, self.uid[0])
    }

    /// Whether `gid` is one of the client's groups (primary or
    /// supplementary), as the kernel's `in_group_p` sees it.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid[3] == gid || self.groups.contains(&gid)
    }

    /// The capabilities a confined worker keeps: what the client has
    /// (only when it lives in our user namespace: capabilities of another
    /// namespace mean nothing here), and CAP_CHECKPOINT_RESTORE.
    fn kept_caps(&self, ours: &Status, our_ns: Option<u64>) -> u64 {
        let client = if self.userns.is_some() && self.userns == our_ns {
            self.cap_prm
        } else {
            0
        };
        (client | CAP_CHECKPOINT_RESTORE) & ours.cap_prm
    }

    /// Makes this process (the worker serving the client) act with the
    /// client's rights; nothing to do for a full client. Must run while
    /// the process has a single thread: credentials are per thread.
    pub fn confine(&self) -> Result<(), ClientError> {
        if self.full {
            return Ok(());
        }
        let fail = |what: &'static str| {
            let (pid, uid) = (self.peer.pid, self.uid[0]);
            move |errno| ClientError::Confine {
                pid,
                uid,
                what,
                errno,
            }
        };
        let (ours, our_ns) = ourselves().map_err(|source| ClientError::Read {
            pid: self.peer.pid,
            source,
        })?;
        if ours.threads != 1 {
            return Err(ClientError::Threads {
                pid: self.peer.pid,
                uid: self.uid[0],
                threads: ours.threads,
            });
        }
        let keep = self.kept_caps(&ours, our_ns);
        // What an exec'ed program could gain is bounded as the client's.
        for cap in 0..64u32 {
            let bit = 1u64 << cap;
            if ours.cap_bnd & bit != 0 && self.cap_bnd & bit == 0 {
                rustix::thread::remove_capability_from_bounding_set(
                    CapabilitySet::from_bits_retain(bit),
                )
                .map_err(fail("dropping from the bounding set"))?;
            }
        }
        rustix::thread::set_keep_capabilities(true).map_err(fail("PR_SET_KEEPCAPS"))?;
        let gid = |g: u32| rustix::process::Gid::from_raw(g);
        let uid = |u: u32| rustix::process::Uid::from_raw(u);
        let mut have = ours.groups.clone();
        let mut want = self.groups.clone();
        have.sort_unstable();
        want.sort_unstable();
        if have != want {
            let groups: Vec<_> = self.groups.iter().map(|&g| gid(g)).collect();
            rustix::thread::set_thread_groups(&groups).map_err(fail("setgroups"))?;
        }
        if ours.gid != self.gid {
            rustix::thread::set_thread_res_gid(
                gid(self.gid[0]),
                gid(self.gid[1]),
                gid(self.gid[2]),
            )
            .map_err(fail("setresgid"))?;
        }
        if ours.uid != self.uid {
            rustix::thread::set_thread_res_uid(
                uid(self.uid[0]),
                uid(self.uid[1]),
                uid(self.uid[2]),
            )
            .map_err(fail("setresuid"))?;
        }
        let keep = CapabilitySet::from_bits_retain(keep);
        rustix::thread::set_capabilities(
            None,
            rustix::thread::CapabilitySets {
                effective: keep,
                permitted: keep,
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(fail("capset"))?;
        rustix::thread::set_keep_capabilities(false).map_err(fail("PR_SET_KEEPCAPS"))?;
        if self.no_new_privs {
            rustix::thread::set_no_new_privs(true).map_err(fail("PR_SET_NO_NEW_PRIVS"))?;
        }
        pr_info!(
            "Serving {} with its rights: uids {:?}, gids {:?}, groups {:?}, capabilities {keep:?}",
            self.who(),
            self.uid,
            self.gid,
            self.groups
        );
        Ok(())
    }

    /// Before a confined worker execs a program for the client (`exec_cmd`):
    /// no capability goes with it. A client whose uids include 0 would get
    /// root's capabilities back at exec, so it is refused instead.
    pub fn before_exec(&self) -> Result<(), ExecRefused> {
        if self.full {
            return Ok(());
        }
        if self.uid.contains(&0) {
            return Err(ExecRefused::PartialRoot {
                who: self.who(),
                cap_eff: self.cap_eff,
            });
        }
        rustix::thread::set_capabilities(
            None,
            rustix::thread::CapabilitySets {
                effective: CapabilitySet::empty(),
                permitted: CapabilitySet::empty(),
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(ExecRefused::DropCaps)?;
        if let Err(e) = rustix::thread::clear_ambient_capability_set() {
            pr_warn!("can't clear the ambient capabilities: {e}");
        }
        Ok(())
    }
}
