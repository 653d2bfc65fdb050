//! The object kinds, one module per kind, each registered by one line in
//! [`KINDS`] (the table the dump and restore pipelines go through; see
//! [`kind::FileKind`]): regular files ([`reg`]), memfds ([`memfd`]), pipes
//! ([`pipe`]), FIFOs ([`fifo`]), unix sockets ([`unix`]), TCP and UDP sockets over
//! IPv4 and IPv6 and raw ones ([`inet`]), netlink sockets ([`netlink`]),
//! packet sockets ([`packet`]) (the options all sockets share:
//! [`sockopts`]; other families' names for their refusals: [`sockets`]),
//! eventfd, eventpoll,
//! signalfd, timerfd, inotify, pidfds ([`pidfd`]), pseudo-terminals ([`tty`]), unlinked
//! ("ghost") files and file locks, and shared memory objects ([`shmem`]),
//! each with its dump half (fd of a frozen task → `files.img` entry + data
//! image) and its restore half (file id → an fd opened in the tool,
//! independently of which task holds it).
//!
//! Dump reads each fd of a task ([`task_fds`]) and hands it to the first
//! kind that claims it. It keeps its per-dump state in [`Dumped`] (one per dump, shared by
//! every task of it, so that one pipe or socket seen from several tasks
//! gets one `pipe_id`/inode and each open file one id). Restore opens
//! objects through an [`Opener`], which creates each kernel object once
//! (a pipe's two ends, a socketpair's two sides, a FIFO's keeper) and
//! hands out the fd of any file id, whichever task holds it.

pub mod eventfd;
pub mod eventpoll;
pub mod fifo;
pub mod file_ids;
pub mod fown;
pub mod ghost;
pub mod inet;
pub mod inotify;
pub mod kind;
pub mod locks;
pub mod memfd;
pub mod netlink;
pub mod packet;
pub mod pidfd;
pub mod pipe;
pub mod reg;
pub mod shmem;
pub mod signalfd;
pub mod sockets;
pub mod sockopts;
pub mod table;
pub mod task_fds;
pub mod timerfd;
pub mod tty;
pub mod unix;

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use rustix::io::Errno;

use crate::images::pb;
pub use crate::images::set::files::FileImages;
use crate::images::typed::ImageDir;
use crate::images::{ImageError, Kind};
use kind::FileKind;
use table::FdView;

/// Every kind, in the order dump asks them to claim an fd.
pub static KINDS: &[&dyn FileKind] = &[
    &memfd::Memfd,
    &fifo::Fifo,
    &tty::Tty,
    &reg::Reg,
    &pipe::Pipe,
    &unix::Unix,
    &inet::Inet,
    &netlink::Netlink,
    &packet::Packet,
    &eventfd::Eventfd,
    &signalfd::Signalfd,
    &timerfd::Timerfd,
    &eventpoll::Eventpoll,
    &inotify::Inotify,
    &pidfd::Pidfd,
];

/// The kind that dumps fd `fd`, if any does.
pub fn claiming(fd: &FdView<'_>) -> Option<&'static dyn FileKind> {
    KINDS.iter().copied().find(|k| k.claims(fd))
}

/// The kind of `fd_types` value `ty` (`file_entry.type`), if one restores
/// it.
pub fn of_type(ty: i32) -> Option<&'static dyn FileKind> {
    KINDS.iter().copied().find(|k| k.fd_type() as i32 == ty)
}

/// Dump: once every task's fds are in `files`, each kind's work over
/// the whole tree ([`kind::FileKind::finish`]), then the owners of files.
pub fn finish_dump(
    files: &mut table::FileTable,
    opts: &table::FdOpts,
) -> Result<(), table::FilesError> {
    for k in KINDS {
        k.finish(files, opts)?;
    }
    fown::apply(&mut files.entries, &files.fowns);
    Ok(())
}

/// A file kind's failure, naming what it was working on.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Dump: an fd that cannot be dumped (the task is left untouched).
    #[error("fd {fd} of task {pid} is {kind}: {what}")]
    Dump {
        pid: i32,
        fd: i32,
        kind: &'static str,
        what: String,
    },
    /// Restore: a file id whose object cannot be created.
    #[error("{kind} (file id {id} of files.img): {what}")]
    Restore {
        id: u32,
        kind: &'static str,
        what: String,
    },
    #[error("{file}: {what}")]
    Image { file: String, what: String },
    #[error(transparent)]
    Read(#[from] ImageError),
    /// Restore: a file that could not be opened by its path.
    #[error("cannot open {path}: {errno}")]
    Open { path: String, errno: Errno },
    /// Restore: a call on a new object that failed.
    #[error("{call}: {errno}")]
    Sys { call: &'static str, errno: Errno },
    /// Dump: an fd a kind failed on, with the kind's own error as cause.
    #[error("fd {fd} of task {pid} is {kind}: {source}")]
    DumpKind {
        pid: i32,
        fd: i32,
        kind: &'static str,
        source: KindError,
    },
    /// Restore: a file id whose object a kind failed to create, with the
    /// kind's own error as cause.
    #[error("{kind} (file id {id} of files.img): {source}")]
    RestoreKind {
        id: u32,
        kind: &'static str,
        source: KindError,
    },
}

/// The errors of the kinds that have their own, as the cause of a
/// [`FileError`] (the message is theirs; [`FileError`] adds the fd or file
/// id).
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error(transparent)]
    Sock(#[from] sockets::SockError),
    #[error(transparent)]
    Pipe(#[from] pipe::PipeError),
    #[error(transparent)]
    Tty(#[from] tty::TtyError),
    #[error(transparent)]
    Inotify(#[from] inotify::InotifyError),
    #[error(transparent)]
    Epoll(#[from] eventpoll::EpollError),
}

/// What dump learns about one fd before it is handed to a kind.
#[derive(Clone, Copy, Debug)]
pub struct FdCtx {
    pub pid: i32,
    pub fd: i32,
    /// Status flags of the open file (`O_*`, without `O_CLOEXEC`).
    pub flags: u32,
}

impl FdCtx {
    /// Dump: `source`, a kind's own error, on this fd.
    pub fn fail(&self, kind: &'static str, source: impl Into<KindError>) -> FileError {
        FileError::DumpKind {
            pid: self.pid,
            fd: self.fd,
            kind,
            source: source.into(),
        }
    }

    pub fn err(&self, kind: &'static str, what: impl Into<String>) -> FileError {
        FileError::Dump {
            pid: self.pid,
            fd: self.fd,
            kind,
            what: what.into(),
        }
    }

    /// A copy of the task's fd in the tool (`pidfd_getfd`): the same open
    /// file, usable while the task is frozen.
    pub fn steal(&self, kind: &'static str) -> Result<OwnedFd, FileError> {
        use rustix::process::{PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};
        let e = |what: &str, errno: Errno| self.err(kind, format!("{what}: {errno}"));
        let pid =
            rustix::process::Pid::from_raw(self.pid).ok_or_else(|| self.err(kind, "bad pid"))?;
        // The fds of a task come one after the other: its pidfd is kept
        // for the next (a stale one, of an earlier process with the same
        // PID, fails with ESRCH and is opened again).
        STOLEN_FROM.with_borrow_mut(|cached| {
            if let Some((p, pidfd)) = cached.as_ref()
                && *p == self.pid
            {
                match pidfd_getfd(pidfd, self.fd, PidfdGetfdFlags::empty()) {
                    Err(Errno::SRCH) => {}
                    r => return r.map_err(|x| e("pidfd_getfd", x)),
                }
            }
            let pidfd = pidfd_open(pid, PidfdFlags::empty()).map_err(|x| e("pidfd_open", x))?;
            let got = pidfd_getfd(&pidfd, self.fd, PidfdGetfdFlags::empty())
                .map_err(|x| e("pidfd_getfd", x));
            *cached = Some((self.pid, pidfd));
            got
        })
    }
}

thread_local! {
    /// The pidfd [`FdCtx::steal`] used last, and its PID.
    static STOLEN_FROM: std::cell::RefCell<Option<(i32, OwnedFd)>> =
        const { std::cell::RefCell::new(None) };
}

/// Close the pidfd [`FdCtx::steal`] keeps (at the end of a dump).
pub fn forget_stolen() {
    STOLEN_FROM.with_borrow_mut(|c| *c = None);
}

/// Per-dump state of every kind, and the data images they fill.
#[derive(Debug, Default)]
pub struct Dumped {
    pub pipes: pipe::PipeDump,
    pub fifos: fifo::FifoDump,
    pub unix: unix::UnixDump,
    pub inet: inet::InetDump,
    pub netlink: netlink::NetlinkDump,
    pub packet: packet::PacketDump,
    /// `pipes-data.img`: one entry + bytes per pipe with data.
    pub pipes_data: Vec<(pb::PipeDataEntry, Vec<u8>)>,
    /// `fifo-data.img`, the same for FIFOs.
    pub fifo_data: Vec<(pb::PipeDataEntry, Vec<u8>)>,
    /// `sk-queues.img`: one entry + bytes per queued message.
    pub sk_queues: Vec<(pb::SkPacketEntry, Vec<u8>)>,
    /// Pseudo-terminals (`tty-info.img`, `tty-data.img`).
    pub ttys: tty::TtyDump,
}

impl Dumped {
    /// Before the dumped tasks are let go (`dead`: killed): what the dump
    /// held in a state the tasks cannot use goes back to normal. TCP
    /// connections leave repair mode before the tasks run on (their reads
    /// and writes would fail in it); a killed tree's stay in it, so that
    /// closing them sends nothing.
    pub fn before_release(&mut self, dead: bool) {
        if !dead {
            self.inet.repair.resume_all();
        }
    }

    /// Once the tasks are let go: the dump lets go of the connections, and
    /// of the network lock unless the tree was killed (its lock stays, so
    /// that nothing reaches the peers).
    pub fn after_release(&mut self, dead: bool) -> Result<(), crate::netlock::NetLockError> {
        self.inet.repair.dismiss();
        match self.inet.lock.take() {
            Some(l) if dead => l.keep(),
            Some(l) => l.release()?,
            None => {}
        }
        Ok(())
    }

    /// Writes the data images that have something to hold.
    pub fn write_images(&self, dir: &ImageDir) -> Result<(), ImageError> {
        write_payloads(dir, Kind::PipesData, &self.pipes_data)?;
        write_payloads(dir, Kind::FifoData, &self.fifo_data)?;
        write_payloads(dir, Kind::SkQueues, &self.sk_queues)?;
        for (ino, entry, queues) in &self.inet.streams {
            let mut w = dir.writer(Kind::TcpStream, u64::from(*ino))?;
            w.write_message(entry)?;
            w.write_payload(queues)?;
            w.finish()?;
        }
        if !self.ttys.infos.is_empty() {
            dir.write_all(Kind::TtyInfo, 0, &self.ttys.infos)?;
        }
        if !self.ttys.data.is_empty() {
            dir.write_all(Kind::TtyData, 0, &self.ttys.data)?;
        }
        Ok(())
    }
}

fn write_payloads<T: prost::Message>(
    dir: &ImageDir,
    kind: Kind,
    items: &[(T, Vec<u8>)],
) -> Result<(), ImageError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut w = dir.writer(kind, 0)?;
    for (entry, data) in items {
        w.write_message(entry)?;
        w.write_payload(data)?;
    }
    w.finish().map(drop)
}

impl FileImages {
    /// Is `id` a file object of a kind that restores it?
    pub fn restorable(&self, id: u32) -> bool {
        self.entries
            .get(&id)
            .is_some_and(|e| of_type(e.r#type).is_some())
    }

    /// The owner (`F_SETOWN`/`F_SETSIG`) and status flags of file object
    /// `id`, if it has an owner, a signal or `O_ASYNC` to set.
    pub fn owner(&self, id: u32) -> Option<(pb::FownEntry, u32)> {
        let e = self.entries.get(&id)?;
        let (fown, flags) = of_type(e.r#type)?.owner(e, self)?;
        (fown.pid != 0 || fown.signum != 0 || flags & fown::O_ASYNC != 0).then_some((fown, flags))
    }

    /// Is `id` a pipe end whose other end no file of the images holds
    /// (a pipe to the outside, like a shell pipeline's)?
    pub fn half_pipe(&self, id: u32) -> bool {
        let Some(p) = self.pipes.get(&id) else {
            return false;
        };
        let write = p.flags & 3 != 0;
        !self
            .pipes
            .values()
            .any(|o| o.pipe_id == p.pipe_id && (o.flags & 3 != 0) != write)
    }

    /// Checks what can be checked before anything is created.
    pub fn check(&self, reg_names: &dyn Fn(u32) -> bool) -> Result<(), FileError> {
        for k in KINDS {
            k.check(self, reg_names)?;
        }
        tty::restore::check(self, reg_names)?;
        inet::restore::check(self)?;
        netlink::check(self)?;
        packet::check(self)?;
        unix::check(self)
    }
}

/// Restore: `source`, a kind's own error, on file `id`.
pub(crate) fn restore_fail(id: u32, kind: &'static str, source: impl Into<KindError>) -> FileError {
    FileError::RestoreKind {
        id,
        kind,
        source: source.into(),
    }
}

pub(crate) fn restore_err(id: u32, kind: &'static str, what: impl Into<String>) -> FileError {
    FileError::Restore {
        id,
        kind,
        what: what.into(),
    }
}

/// Creates the objects of the file ids of [`FileImages`], each kernel
/// object once, and hands out one fd per file id.
pub struct Opener<'a> {
    pub(crate) img: &'a FileImages,
    /// Regular file entries (FIFO paths).
    pub(crate) reg: &'a HashMap<u32, pb::RegFileEntry>,
    pub(crate) pipes: HashMap<u32, pipe::PipeObj>,
    pub(crate) fifos: HashMap<u32, OwnedFd>,
    pub(crate) unix: Option<HashMap<u32, OwnedFd>>,
    pub(crate) inet: Option<HashMap<u32, OwnedFd>>,
    /// `--tcp-established`, `--tcp-close`: how TCP connections come back.
    pub(crate) tcp: inet::ConnOpts,
    /// Connections restored in repair mode, to leave it once the tree is
    /// complete.
    pub(crate) tcp_repaired: inet::tcp_repair::Repaired,
    /// `--ext-unix-sk`: sockets connected outside the dump are allowed.
    pub(crate) ext_unix_sk: bool,
    /// `--shell-job`: a terminal from outside the dump becomes criu's.
    pub(crate) shell_job: bool,
    /// RPC `orphan_pts_master`: such a terminal is a new pty instead.
    pub(crate) orphan_pts_master: bool,
    /// Pseudo-terminals made so far.
    pub(crate) ptys: tty::restore::PtyState,
    /// The restored tree's `/` as the tool sees it (below the mount
    /// namespace being built, when the tree has its own): where a pty
    /// without a dumped master is made.
    pub(crate) root: std::path::PathBuf,
    /// Objects kept open until the restored tasks exist (a FIFO's keeper,
    /// a pipe end no task holds).
    pub(crate) keep: Vec<OwnedFd>,
    /// Regular files opened through their ghost copy: the path of each.
    pub(crate) ghost_paths: HashMap<u32, std::path::PathBuf>,
    /// The memfds the memory code created, by `inode_id`: (shmid, fd).
    pub(crate) memfds: HashMap<u64, (u64, OwnedFd)>,
    /// memfds (shmids) whose created description an fd already uses.
    pub(crate) memfd_claimed: std::collections::HashSet<u64>,
    /// Every fd handed out is at or above this (clear of the task's fds).
    pub(crate) min_fd: i32,
}

impl<'a> Opener<'a> {
    pub fn new(
        img: &'a FileImages,
        reg: &'a HashMap<u32, pb::RegFileEntry>,
        ext_unix_sk: bool,
    ) -> Opener<'a> {
        Opener {
            img,
            reg,
            pipes: HashMap::new(),
            fifos: HashMap::new(),
            unix: None,
            inet: None,
            tcp: inet::ConnOpts::default(),
            tcp_repaired: inet::tcp_repair::Repaired::default(),
            ext_unix_sk,
            shell_job: false,
            orphan_pts_master: false,
            ptys: tty::restore::PtyState::default(),
            root: "/".into(),
            keep: Vec::new(),
            ghost_paths: HashMap::new(),
            memfds: HashMap::new(),
            memfd_claimed: std::collections::HashSet::new(),
            min_fd: 0,
        }
    }

    /// Fds handed out are at or above `min_fd`; regular files with a
    /// ghost copy are opened at `ghost_paths`.
    pub fn with_fds(mut self, min_fd: i32, ghost_paths: HashMap<u32, std::path::PathBuf>) -> Self {
        self.min_fd = min_fd;
        self.ghost_paths = ghost_paths;
        self
    }

    /// memfd inode `inode_id` (shared memory object `shmid`) was created
    /// as `fd` (the opener keeps a descriptor of it).
    pub fn note_memfd(&mut self, inode_id: u64, shmid: u64, fd: &OwnedFd) -> Result<(), FileError> {
        if self.memfds.contains_key(&inode_id) {
            return Ok(());
        }
        let dup =
            rustix::io::fcntl_dupfd_cloexec(fd, self.min_fd).map_err(|errno| FileError::Sys {
                call: "fcntl(F_DUPFD) (memfd)",
                errno,
            })?;
        self.memfds.insert(inode_id, (shmid, dup));
        Ok(())
    }

    /// Is file id `id` in the images, of a kind that restores it?
    pub fn restorable(&self, id: u32) -> bool {
        self.img.restorable(id)
    }

    /// How `--inherit-fd` names file id `id` (see
    /// [`FileImages::inherit_key`]).
    pub fn inherit_key(&self, id: u32) -> Option<String> {
        self.img.inherit_key(id, self.reg)
    }

    /// Is `id` a pipe end to the outside (see [`FileImages::half_pipe`])?
    pub fn outside_pipe(&self, id: u32) -> bool {
        self.img.half_pipe(id)
    }

    /// `--tcp-established`, `--tcp-close`: how TCP connections of the
    /// images come back.
    pub fn with_tcp(mut self, tcp: inet::ConnOpts) -> Opener<'a> {
        self.tcp = tcp;
        self
    }

    /// The connections restored in repair mode (see
    /// [`inet::tcp_repair::Repaired`]), taken out of the opener.
    pub fn take_tcp_repaired(&mut self) -> inet::tcp_repair::Repaired {
        std::mem::take(&mut self.tcp_repaired)
    }

    /// `--shell-job`: a terminal whose master is outside the images is
    /// criu's own terminal (its stdin).
    pub fn with_shell_job(mut self, on: bool) -> Opener<'a> {
        self.shell_job = on;
        self
    }

    /// The fd of file id `id` (its own open file; call once per id), at or
    /// above the opener's `min_fd`, made by the kind its entry names.
    pub fn open(&mut self, id: u32) -> Result<OwnedFd, FileError> {
        let img = self.img;
        let Some(e) = img.entries.get(&id) else {
            return Err(restore_err(id, "a file", "not in files.img"));
        };
        let Some(kind) = of_type(e.r#type) else {
            return Err(restore_err(
                id,
                "a file",
                format!("of type {}, a kind that is not restored yet", e.r#type),
            ));
        };
        let fd = kind.open(self, e)?;
        if std::os::fd::AsRawFd::as_raw_fd(&fd) >= self.min_fd {
            return Ok(fd);
        }
        rustix::io::fcntl_dupfd_cloexec(&fd, self.min_fd).map_err(|errno| FileError::Sys {
            call: "fcntl(F_DUPFD)",
            errno,
        })
    }

    /// The tree's own root (see [`Opener::root`]) and the ptys made while
    /// its mounts were (by index, their masters).
    pub fn with_root(mut self, root: &std::path::Path, ptys: Vec<(u32, OwnedFd)>) -> Opener<'a> {
        self.root = root.to_path_buf();
        self.ptys.premade.extend(ptys);
        self
    }

    /// RPC `orphan_pts_master`: see [`Opener::take_orphan_masters`].
    pub fn with_orphan_pts_master(mut self, on: bool) -> Opener<'a> {
        self.orphan_pts_master = on;
        self
    }

    /// The masters of the new ptys made for slaves whose master was not
    /// dumped (`orphan_pts_master`), for the RPC client.
    pub fn take_orphan_masters(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.ptys.orphans)
    }

    /// Everything that must stay open until the tasks exist.
    pub fn into_keep(self) -> Vec<OwnedFd> {
        let mut keep = self.keep;
        for (_, p) in self.pipes {
            keep.extend(p.into_fds());
        }
        keep.extend(self.fifos.into_values());
        keep.extend(self.unix.into_iter().flat_map(|m| m.into_values()));
        keep.extend(self.inet.into_iter().flat_map(|m| m.into_values()));
        keep.extend(self.ptys.into_fds());
        keep.extend(self.memfds.into_values().map(|(_, fd)| fd));
        keep
    }
}

/// The REG entry a FIFO or tty entry points at (`regf_id`, the id after
/// `id`): its path and open flags, without position or size (CRIU's
/// layout). Returns that id and the entry.
pub(crate) fn path_entry(id: u32, mut reg: pb::RegFileEntry) -> (u32, pb::FileEntry) {
    let regf_id = id + 1;
    reg.id = regf_id;
    reg.pos = 0;
    reg.size = None;
    let entry = pb::FileEntry {
        r#type: pb::FdTypes::Reg as i32,
        id: regf_id,
        reg: Some(reg),
        ..Default::default()
    };
    (regf_id, entry)
}

/// A system call that failed while re-creating a file object.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {errno}")]
pub struct SysFail {
    pub call: &'static str,
    pub errno: rustix::io::Errno,
}

/// Wraps an errno with the name of the call that returned it.
pub fn fail(call: &'static str) -> impl FnOnce(rustix::io::Errno) -> SysFail {
    move |errno| SysFail { call, errno }
}

/// The status flags of a new object that `F_SETFL` sets again:
/// `O_APPEND` and `O_NONBLOCK` (the same bits on every arch we build for).
pub fn set_status_flags(fd: &std::os::fd::OwnedFd, flags: u32) -> Result<(), SysFail> {
    const SETFL_MASK: u32 = 0o2000 | 0o4000;
    let f = rustix::fs::OFlags::from_bits_retain(flags & SETFL_MASK);
    if f.is_empty() {
        return Ok(());
    }
    rustix::fs::fcntl_setfl(fd, f).map_err(fail("fcntl(F_SETFL)"))
}
