//! Pseudo-terminals, restore half (see [`super`] for the images).
//!
//! Each pty is made once, when the first of its file ids is asked for:
//! `/dev/ptmx` (the master's dumped path, so the devpts instance of that
//! mount) is opened until the kernel hands out the dumped index (it gives
//! the lowest free one, so lower free indices are held meanwhile; a taken
//! index is refused, naming it), unlocked, put in raw mode while the
//! queued bytes are written back through the other end (so the line
//! discipline neither echoes nor translates them), then given its dumped
//! termios, window size, locked termios, packet mode and lock. Every slave
//! file id opens the dumped `/dev/pts/N` path; nothing is opened as a
//! controlling terminal here (`O_NOCTTY`): the session leader takes it in
//! its own `STAGE_FD_STATE` ([`super::ctty::task_calls`]).
//!
//! A slave whose master was not dumped is the terminal of the shell the
//! job ran from: with `--shell-job` it becomes criu's own (a duplicate of
//! its stdin, which must be a terminal), as CRIU does; with the RPC option
//! `orphan_pts_master` it is a new pty with the same index instead, whose
//! master the RPC client gets (`orphan-pts-master`).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};

use super::TtyError;
use super::{TERMIOS_NCC, info_id};
use crate::files::{FileError, FileImages, Opener, restore_err, restore_fail};
use crate::images::pb;
use crate::sys::tty as sys;

pub(super) const KIND: &str = "a pseudo-terminal";

/// How many ptmx opens are tried to reach an index (CRIU's limit).
const PTMX_TRIES: usize = 32;

/// Ptys made so far, by index: the master not yet handed out.
#[derive(Default)]
pub struct PtyState {
    masters: HashMap<u32, Option<OwnedFd>>,
    /// Slave file ids opened with their pty (before it is locked again).
    slaves: HashMap<u32, OwnedFd>,
    /// By index: a slave of a pty that is some session's controlling
    /// terminal, for its leader (see [`super::ctty::unheld_ctty`]).
    pub(super) ctty: HashMap<u32, OwnedFd>,
    /// `orphan_pts_master`: masters of new ptys for slaves whose master
    /// was not dumped, for the RPC client.
    pub orphans: Vec<OwnedFd>,
    /// By index: masters of ptys made before the files (for a bind mount
    /// of their slave, see `ns::mnt::build`), taken by the first file of
    /// the pty instead of a new ptmx open.
    pub premade: HashMap<u32, OwnedFd>,
}

impl PtyState {
    /// Masters no file id took (kept open with the rest until the tasks
    /// exist).
    pub fn into_fds(self) -> impl Iterator<Item = OwnedFd> {
        self.masters
            .into_values()
            .flatten()
            .chain(self.slaves.into_values())
            .chain(self.ctty.into_values())
            .chain(self.premade.into_values())
    }
}

/// What a terminal file id is.
pub enum TtyRole<'a> {
    Master(u32),
    Slave(u32),
    /// A slave whose master is not in the images (the shell's terminal).
    External(u32),
    /// A terminal of another kind, reopened by path.
    Other(&'a pb::TtyInfoEntry),
}

impl FileImages {
    /// The `tty_info_entry` of terminal file `f`.
    pub fn tty_info(&self, f: &pb::TtyFileEntry) -> Option<&pb::TtyInfoEntry> {
        self.tty_infos.get(&f.tty_info_id)
    }

    pub fn tty_role(&self, f: &pb::TtyFileEntry) -> Option<TtyRole<'_>> {
        let info = self.tty_info(f)?;
        if info.r#type != pb::TtyType::Pty as i32 {
            return Some(TtyRole::Other(info));
        }
        let index = info.pty.as_ref()?.index;
        if f.tty_info_id & 1 == 1 {
            return Some(TtyRole::Master(index));
        }
        let master = info_id(index, true);
        if self.ttys.values().any(|o| o.tty_info_id == master) {
            Some(TtyRole::Slave(index))
        } else {
            Some(TtyRole::External(index))
        }
    }
}

/// Checks the terminal entries before anything is created.
pub fn check(img: &FileImages, reg_names: &dyn Fn(u32) -> bool) -> Result<(), FileError> {
    for (id, f) in &img.ttys {
        let Some(info) = img.tty_info(f) else {
            return Err(restore_err(
                *id,
                KIND,
                format!("tty-info id {} is not in tty-info.img", f.tty_info_id),
            ));
        };
        if let Some(r) = f.regf_id
            && !reg_names(r)
        {
            return Err(restore_err(
                *id,
                KIND,
                format!("its path (file id {r}) is not in files.img"),
            ));
        }
        for t in [&info.termios, &info.termios_locked].into_iter().flatten() {
            if t.c_cc.len() < TERMIOS_NCC {
                return Err(restore_err(
                    *id,
                    KIND,
                    format!("a termios with {} control characters", t.c_cc.len()),
                ));
            }
        }
        let ty = info.r#type;
        if ty == pb::TtyType::Pty as i32 && info.pty.is_none() {
            return Err(restore_err(*id, KIND, "a pty without its index"));
        }
        if ty == pb::TtyType::ExtTty as i32 || ty == pb::TtyType::Unknown as i32 {
            return Err(restore_err(
                *id,
                "a terminal",
                format!("type {ty} (an external terminal) is not restored"),
            ));
        }
    }
    Ok(())
}

/// The fd of terminal file id `id`.
pub fn open(o: &mut Opener<'_>, id: u32, f: &pb::TtyFileEntry) -> Result<OwnedFd, FileError> {
    let img = o.img;
    let role = img
        .tty_role(f)
        .ok_or_else(|| restore_err(id, KIND, "no tty-info entry"))?;
    let flags =
        OFlags::from_bits_retain(f.flags) & !(OFlags::CREATE | OFlags::TRUNC | OFlags::EXCL);
    match role {
        TtyRole::Master(index) => {
            make_pty(o, id, index)?;
            match o.ptys.masters.get_mut(&index).and_then(Option::take) {
                Some(m) => {
                    crate::files::set_status_flags(&m, f.flags)
                        .map_err(|e| restore_err(id, KIND, e.to_string()))?;
                    Ok(m)
                }
                None => Err(restore_err(
                    id,
                    KIND,
                    format!("two masters of pts {index} in the images"),
                )),
            }
        }
        TtyRole::Slave(index) => {
            make_pty(o, id, index)?;
            o.ptys
                .slaves
                .remove(&id)
                .ok_or_else(|| restore_err(id, KIND, format!("pts {index} opened twice")))
        }
        // A hung-up slave (its master was gone at dump time) comes back
        // hung up: a new pty whose master is closed at once, as CRIU does.
        TtyRole::External(index) if img.tty_info(f).is_some_and(|i| i.termios.is_none()) => {
            make_pty(o, id, index)?;
            drop(o.ptys.masters.get_mut(&index).and_then(Option::take));
            o.ptys
                .slaves
                .remove(&id)
                .ok_or_else(|| restore_err(id, KIND, format!("pts {index} opened twice")))
        }
        TtyRole::External(index) if o.orphan_pts_master => {
            make_pty(o, id, index)?;
            if let Some(m) = o.ptys.masters.get_mut(&index).and_then(Option::take) {
                crate::pr_info!("pts {index}: a new pty, its master for the RPC client");
                o.ptys.orphans.push(m);
            }
            o.ptys
                .slaves
                .remove(&id)
                .ok_or_else(|| restore_err(id, KIND, format!("pts {index} opened twice")))
        }
        TtyRole::External(index) => {
            if !o.shell_job {
                return Err(restore_err(
                    id,
                    KIND,
                    format!(
                        "pts {index}: its master is not in the images (the terminal of a \
                         shell job: restore with --shell-job)"
                    ),
                ));
            }
            inherit_stdin(id, index)
        }
        TtyRole::Other(info) => {
            let path = f
                .regf_id
                .and_then(|r| o.reg.get(&r))
                .map(|r| r.name.clone())
                .ok_or_else(|| restore_err(id, "a terminal", "no path in files.img"))?;
            let fd = open_noctty(&path, flags).map_err(|e| restore_fail(id, "a terminal", e))?;
            set_params(&fd, info).map_err(|e| restore_fail(id, "a terminal", e))?;
            Ok(fd)
        }
    }
}

/// `--shell-job`: the job's terminal is criu's, its stdin.
fn inherit_stdin(id: u32, index: u32) -> Result<OwnedFd, FileError> {
    let stdin = std::io::stdin();
    if sys::tcgets(stdin.as_fd()).is_err() {
        return Err(restore_err(
            id,
            KIND,
            format!(
                "pts {index} was the shell's terminal: a --shell-job restore gives the job \
                 criu's own terminal, but criu's stdin is not a terminal"
            ),
        ));
    }
    crate::pr_info!("pts {index} (file id {id}): inheriting criu's terminal");
    rustix::io::fcntl_dupfd_cloexec(stdin.as_fd(), 0)
        .map_err(|e| restore_err(id, KIND, format!("dup(stdin): {e}")))
}

/// The dumped path of terminal file `f` (or the usual one of pty `index`
/// for images without a `REG` entry).
fn path_of(o: &Opener<'_>, f: &pb::TtyFileEntry, index: u32, master: bool) -> String {
    match f.regf_id.and_then(|r| o.reg.get(&r)) {
        Some(r) => r.name.clone(),
        None if master => "/dev/ptmx".into(),
        None => format!("/dev/pts/{index}"),
    }
}

fn open_noctty(path: &str, flags: OFlags) -> Result<OwnedFd, TtyError> {
    rustix::fs::open(
        path,
        flags | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| TtyError::sys(format!("open {path}"), e))
}

/// Makes pty `index` (once): its master is kept for its file id.
pub(super) fn make_pty(o: &mut Opener<'_>, id: u32, index: u32) -> Result<(), FileError> {
    if o.ptys.masters.contains_key(&index) {
        return Ok(());
    }
    let img = o.img;
    let mid = info_id(index, true);
    let sid = info_id(index, false);
    let mfile = img.ttys.values().find(|t| t.tty_info_id == mid);
    let minfo = img.tty_infos.get(&mid);
    let sinfo = img.tty_infos.get(&sid);
    // Without a dumped master: the ptmx of the restored tree's root.
    let ptmx = match mfile {
        Some(f) => path_of(o, f, index, true),
        None => o.root.join("dev/ptmx").to_string_lossy().into_owned(),
    };
    let err = |e: TtyError| {
        restore_fail(
            id,
            KIND,
            TtyError::Pty {
                index,
                source: Box::new(e),
            },
        )
    };
    let master = match o.ptys.premade.remove(&index) {
        Some(m) => m,
        None => open_ptmx_index(&ptmx, index).map_err(err)?,
    };
    sys::set_int(&master, sys::TIOCSPTLCK, 0).map_err(|e| err(TtyError::sys("unlock", e)))?;
    // The slave's path: a dumped slave's, else the usual place beside ptmx.
    let spath = img
        .ttys
        .values()
        .find(|t| t.tty_info_id == sid)
        .map(|f| path_of(o, f, index, false))
        .unwrap_or_else(|| {
            o.root
                .join(format!("dev/pts/{index}"))
                .to_string_lossy()
                .into_owned()
        });
    let slave = open_noctty(&spath, OFlags::RDWR | OFlags::NONBLOCK).map_err(err)?;
    // The owner the program gave the slave (chown, grantpt).
    if let Some(s) = sinfo
        && let (Some(uid), Some(gid)) = (s.uid, s.gid)
        && rustix::fs::fstat(&slave).is_ok_and(|st| (st.st_uid, st.st_gid) != (uid, gid))
    {
        rustix::fs::fchown(
            &slave,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| err(TtyError::sys(format!("fchown to {uid}:{gid}"), e)))?;
    }
    let info = sinfo.or(minfo);
    if let Some(t) = info.and_then(|i| i.termios.as_ref()) {
        // Raw while the queued bytes go back, so they arrive unchanged.
        let mut raw = termios_of(t);
        raw.c_iflag = 0;
        raw.c_oflag = 0;
        raw.c_lflag = 0;
        sys::tcsets(&slave, &raw).map_err(|e| err(TtyError::sys("TCSETS", e)))?;
    }
    // Bytes read from the master were written by the slave: back through
    // the slave; and the other way round.
    for (from, to) in [(mid, &slave), (sid, &master)] {
        if let Some(data) = img.tty_data.get(&from) {
            put_data(to, data).map_err(err)?;
        }
    }
    if let Some(i) = info {
        set_params(&slave, i).map_err(err)?;
    }
    // A session's controlling terminal: a slave for its leader, opened
    // while the pty is still unlocked.
    if sinfo.or(minfo).is_some_and(|i| i.sid != 0) {
        let fd = open_noctty(&spath, OFlags::RDWR).map_err(err)?;
        o.ptys.ctty.insert(index, fd);
    }
    // Every slave file of this pty, opened while it is still unlocked.
    for (fid, f) in img.ttys.iter().filter(|(_, t)| t.tty_info_id == sid) {
        let flags =
            OFlags::from_bits_retain(f.flags) & !(OFlags::CREATE | OFlags::TRUNC | OFlags::EXCL);
        let fd = open_noctty(&path_of(o, f, index, false), flags)
            .map_err(|e| restore_fail(*fid, KIND, e))?;
        o.ptys.slaves.insert(*fid, fd);
    }
    if let Some(m) = minfo {
        if m.packet_mode {
            sys::set_int(&master, sys::TIOCPKT, 1).map_err(|e| err(TtyError::sys("TIOCPKT", e)))?;
        }
        if m.exclusive {
            sys::set_exclusive(&master).map_err(|e| err(TtyError::sys("TIOCEXCL", e)))?;
        }
        if m.locked {
            sys::set_int(&master, sys::TIOCSPTLCK, 1).map_err(|e| err(TtyError::sys("lock", e)))?;
        }
    }
    if sinfo.is_some_and(|s| s.exclusive) {
        sys::set_exclusive(&slave).map_err(|e| err(TtyError::sys("TIOCEXCL", e)))?;
    }
    // The slave stays open until the tasks exist (a pty whose slave was
    // never reopened would hang up the master's reader otherwise).
    o.keep.push(slave);
    o.ptys.masters.insert(index, Some(master));
    Ok(())
}

/// Opens `ptmx` until it gives pty `index`, holding the lower indices
/// it hands out meanwhile.
fn open_ptmx_index(ptmx: &str, index: u32) -> Result<OwnedFd, TtyError> {
    let mut held = Vec::new();
    for _ in 0..PTMX_TRIES {
        let fd = open_noctty(ptmx, OFlags::RDWR)?;
        let got = sys::get_int(&fd, sys::TIOCGPTN).map_err(TtyError::call("TIOCGPTN"))?;
        if got as u32 == index {
            crate::pr_debug!("{ptmx} gave pts {index}");
            return Ok(fd);
        }
        if (got as u32) > index {
            return Err(TtyError::IndexInUse {
                ptmx: ptmx.into(),
                index,
                got,
            });
        }
        held.push(fd);
    }
    Err(TtyError::IndexNotGiven {
        ptmx: ptmx.into(),
        index,
        tries: PTMX_TRIES,
    })
}

fn put_data(fd: &OwnedFd, data: &[u8]) -> Result<(), TtyError> {
    let mut off = 0;
    while off < data.len() {
        match rustix::io::write(fd, &data[off..]) {
            Ok(0) => break,
            Ok(n) => off += n,
            Err(e) => {
                return Err(TtyError::sys(
                    format!("writing {} queued bytes", data.len()),
                    e,
                ));
            }
        }
    }
    Ok(())
}

fn termios_of(e: &pb::TermiosEntry) -> sys::Termios {
    let mut t = sys::zero_termios();
    t.c_iflag = e.c_iflag;
    t.c_oflag = e.c_oflag;
    t.c_cflag = e.c_cflag;
    t.c_lflag = e.c_lflag;
    t.c_line = e.c_line as u8;
    // Packed as CRIU packs them (see images::termios).
    let cc = crate::images::termios::unpack_cc(&e.c_cc);
    for (d, s) in t.c_cc.iter_mut().zip(cc) {
        *d = s;
    }
    t
}

/// Termios, locked termios (only if any is set: it needs CAP_SYS_ADMIN)
/// and window size of `info` on `fd`, with SIGTTOU blocked (`fd` may be
/// our controlling terminal, see [`sys::with_sigttou_blocked`]).
fn set_params(fd: &OwnedFd, info: &pb::TtyInfoEntry) -> Result<(), TtyError> {
    sys::with_sigttou_blocked(|| set_params_now(fd, info))
}

fn set_params_now(fd: &OwnedFd, info: &pb::TtyInfoEntry) -> Result<(), TtyError> {
    if let Some(l) = &info.termios_locked {
        let t = termios_of(l);
        let any = t.c_iflag | t.c_oflag | t.c_cflag | t.c_lflag != 0
            || t.c_line != 0
            || t.c_cc.iter().any(|&c| c != 0);
        if any {
            sys::set_locked(fd, &t).map_err(TtyError::call("TIOCSLCKTRMIOS"))?;
        }
    }
    if let Some(t) = &info.termios {
        sys::tcsets(fd, &termios_of(t)).map_err(TtyError::call("TCSETS"))?;
    }
    if let Some(w) = &info.winsize {
        let ws = sys::Winsize {
            ws_row: w.ws_row as u16,
            ws_col: w.ws_col as u16,
            ws_xpixel: w.ws_xpixel as u16,
            ws_ypixel: w.ws_ypixel as u16,
        };
        sys::set_winsize(fd, &ws).map_err(TtyError::call("TIOCSWINSZ"))?;
    }
    Ok(())
}
