//! Unix98 pseudo-terminals (CRIU's `TTY` kind, `criu/tty.c`), dump half:
//! a `tty_file_entry` per open file in `files.img` whose `regf_id` names a
//! `REG` entry with the path (`/dev/ptmx`, `/dev/pts/N`), one
//! `tty_info_entry` per terminal side in `tty-info.img` (id `2 * index`
//! for the slave, `2 * index + 1` for the master: termios, locked termios,
//! window size, session, foreground group, lock, packet and exclusive
//! modes) and the bytes queued in each direction in `tty-data.img`.
//!
//! `/dev/console` and `/dev/tty` are `TTY` entries too, as CRIU writes
//! them (types `CONSOLE`, `CTTY`, tty-info ids of CRIU's driver indices,
//! no pty part): reopened by path on restore, with their termios and
//! window size. (As plain `REG` files CRIU's restore refuses them: it
//! seeks to the dumped position, and a terminal cannot seek.) Virtual
//! consoles and serial lines are refused by the dump
//! (`crate::dump::files`).
//!
//! Session and foreground group come from `/proc/PID/stat` of the task
//! holding the fd (its `tty_nr` is the terminal's device if the terminal
//! is its controlling one), or, for a master, from `TIOCGSID`/`TIOCGPGRP`,
//! which the kernel answers for any holder of the master.
//!
//! Queued data can only be read by consuming it: it is read once every
//! task is collected (both ends known) and written back through the other
//! end when the dump ends ([`TtyDump`]'s drop), which matters when the
//! tasks go on (`--leave-running`, or a failed dump).
//!
//! The parts: `device` (what a device number says), `queued` (the queued
//! bytes, read and written back) and [`restore`] (the restore half).

pub mod ctty;
mod device;
mod error;
mod queued;
pub mod restore;

pub use device::{PtySide, info_id, is_pty, is_tty, major_minor, other_terminal, pty_side};
pub use error::TtyError;
use queued::read_queue;

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

use super::{FdCtx, FileError};
use crate::images::pb;
use crate::sys::tty as sys;

const KIND: &str = "a pseudo-terminal";

/// `TERMIOS_NCC`: the control characters the kernel's termios has.
pub const TERMIOS_NCC: usize = 19;

/// One terminal side met in the dump, with a descriptor of it for the
/// queued data.
#[derive(Debug)]
struct End {
    info_id: u32,
    index: u32,
    master: bool,
    /// The task and fd it was first seen at (for messages).
    pid: i32,
    fd: i32,
    packet: bool,
    hung: bool,
    own: OwnedFd,
    /// Its path in the dumped task (for a master: where its slaves are).
    path: String,
}

/// Terminals of one dump.
#[derive(Debug, Default)]
pub struct TtyDump {
    /// `tty-info.img`.
    pub infos: Vec<pb::TtyInfoEntry>,
    /// `tty-data.img`.
    pub data: Vec<pb::TtyDataEntry>,
    ends: Vec<End>,
    /// `--shell-job`: a terminal whose other end or session is outside
    /// the dump is allowed (restore gives the job criu's terminal).
    pub shell_job: bool,
    /// RPC `orphan_pts_master`: one pts whose master is outside the dump
    /// is allowed, its session still dumped (a container's console).
    pub orphan_pts_master: bool,
}

/// Dumps pty fd `ctx.fd` (whose stat is `meta`) as the two entries it
/// needs: the TTY entry with id `id` and its path's `REG` entry with id
/// `id + 1` (`reg` fills in the path, flags and mode).
pub fn dump(
    ctx: &FdCtx,
    meta: &std::fs::Metadata,
    st: &mut TtyDump,
    id: u32,
    mut reg: pb::RegFileEntry,
) -> Result<[pb::FileEntry; 2], FileError> {
    let own = ctx.steal(KIND)?;
    if let Some((kind, index)) = other_terminal(meta.rdev()) {
        let info_id = info_id(index, false);
        if !st.infos.iter().any(|i| i.id == info_id) {
            st.infos.push(other_info(ctx, meta, &own, kind, info_id)?);
        }
        let (regf_id, path) = super::path_entry(id, reg);
        return Ok([tty_file(ctx, id, info_id, regf_id), path]);
    }
    let (index, master) = match pty_side(meta.rdev()) {
        Some(PtySide::Master) => {
            let n = sys::get_int(&own, sys::TIOCGPTN)
                .map_err(|e| ctx.err(KIND, format!("TIOCGPTN: {e}")))?;
            (n as u32, true)
        }
        Some(PtySide::Slave(n)) => (n, false),
        None => return Err(ctx.err(KIND, "not a pty end")),
    };
    let info_id = info_id(index, master);
    if !st.ends.iter().any(|e| e.info_id == info_id) {
        let (info, end) = info_of(ctx, meta, own, index, master, &reg.name)?;
        st.infos.push(info);
        st.ends.push(end);
    }
    // The node of a hung-up pts is gone from devpts: its path is the one
    // the pty gets again on restore.
    if let Some(name) = reg.name.strip_suffix(" (deleted)") {
        reg.name = name.to_string();
    }
    let (regf_id, path) = super::path_entry(id, reg);
    Ok([tty_file(ctx, id, info_id, regf_id), path])
}

fn tty_file(ctx: &FdCtx, id: u32, info_id: u32, regf_id: u32) -> pb::FileEntry {
    pb::FileEntry {
        r#type: pb::FdTypes::Tty as i32,
        id,
        tty: Some(pb::TtyFileEntry {
            id,
            tty_info_id: info_id,
            flags: ctx.flags,
            fown: pb::FownEntry::default(),
            regf_id: Some(regf_id),
        }),
        ..Default::default()
    }
}

/// The `tty_info_entry` of a terminal that is no pty (see
/// [`other_terminal`]): its termios, locked termios and window size, and
/// session and group if it is the task's controlling terminal.
fn other_info(
    ctx: &FdCtx,
    meta: &std::fs::Metadata,
    own: &OwnedFd,
    kind: pb::TtyType,
    info_id: u32,
) -> Result<pb::TtyInfoEntry, FileError> {
    let (sid, pgrp) = ctty_of(ctx.pid, meta.rdev());
    let mut info = pb::TtyInfoEntry {
        id: info_id,
        r#type: kind as i32,
        sid,
        pgrp,
        rdev: meta.rdev() as u32,
        dev: Some(meta.dev() as u32),
        ..Default::default()
    };
    const WHAT: &str = "a terminal";
    if let Ok(t) = sys::tcgets(own) {
        let locked =
            sys::get_locked(own).map_err(|e| ctx.err(WHAT, format!("TIOCGLCKTRMIOS: {e}")))?;
        let w = sys::get_winsize(own).map_err(|e| ctx.err(WHAT, format!("TIOCGWINSZ: {e}")))?;
        info.termios = Some(termios_entry(&t));
        info.termios_locked = Some(termios_entry(&locked));
        info.winsize = Some(pb::WinsizeEntry {
            ws_row: w.ws_row.into(),
            ws_col: w.ws_col.into(),
            ws_xpixel: w.ws_xpixel.into(),
            ws_ypixel: w.ws_ypixel.into(),
        });
    }
    Ok(info)
}

/// The `tty_info_entry` of one side, read through `own`.
fn info_of(
    ctx: &FdCtx,
    meta: &std::fs::Metadata,
    own: OwnedFd,
    index: u32,
    master: bool,
    path: &str,
) -> Result<(pb::TtyInfoEntry, End), FileError> {
    let info_id = info_id(index, master);
    let flag = |req| sys::get_int(&own, req).map(|v| v != 0).unwrap_or(false);
    let (sid, pgrp) = if master {
        // The slave's session and foreground group, if it has them.
        let q = |req| sys::get_int(&own, req).unwrap_or(0).max(0) as u32;
        (q(sys::TIOCGSID), q(sys::TIOCGPGRP))
    } else {
        ctty_of(ctx.pid, meta.rdev())
    };
    let mut info = pb::TtyInfoEntry {
        id: info_id,
        r#type: pb::TtyType::Pty as i32,
        locked: master && flag(sys::TIOCGPTLCK),
        exclusive: flag(sys::TIOCGEXCL),
        packet_mode: master && flag(sys::TIOCGPKT),
        sid,
        pgrp,
        rdev: meta.rdev() as u32,
        dev: Some(meta.dev() as u32),
        pty: Some(pb::TtyPtyEntry { index }),
        // The owner of the node (a slave's is whoever grantpt or a chown
        // made it; a new pty's is the restoring tool's).
        uid: Some(meta.uid()),
        gid: Some(meta.gid()),
        ..Default::default()
    };
    // A hung-up terminal (its other end gone) answers EIO: only the
    // identity is kept, as CRIU does.
    let hung = match sys::tcgets(&own) {
        Ok(t) => {
            let locked =
                sys::get_locked(&own).map_err(|e| ctx.err(KIND, format!("TIOCGLCKTRMIOS: {e}")))?;
            let w =
                sys::get_winsize(&own).map_err(|e| ctx.err(KIND, format!("TIOCGWINSZ: {e}")))?;
            info.termios = Some(termios_entry(&t));
            info.termios_locked = Some(termios_entry(&locked));
            info.winsize = Some(pb::WinsizeEntry {
                ws_row: w.ws_row.into(),
                ws_col: w.ws_col.into(),
                ws_xpixel: w.ws_xpixel.into(),
                ws_ypixel: w.ws_ypixel.into(),
            });
            false
        }
        Err(rustix::io::Errno::IO) => true,
        Err(e) => return Err(ctx.err(KIND, format!("TCGETS: {e}"))),
    };
    let end = End {
        info_id,
        index,
        master,
        pid: ctx.pid,
        fd: ctx.fd,
        packet: info.packet_mode,
        hung,
        own,
        path: path.to_string(),
    };
    Ok((info, end))
}

/// Session and foreground group of the terminal `rdev` if it is the
/// controlling terminal of task `pid` (else 0, 0: CRIU's parasite gets
/// ENOTTY there).
fn ctty_of(pid: i32, rdev: u64) -> (u32, u32) {
    let Ok(st) = crate::proc::ProcDir::open(pid).and_then(|p| p.stat()) else {
        return (0, 0);
    };
    if st.tty_nr == 0 || u64::from(st.tty_nr as u32) != rdev {
        return (0, 0);
    }
    (st.session.max(0) as u32, st.tpgid.max(0) as u32)
}

pub fn termios_entry(t: &sys::Termios) -> pb::TermiosEntry {
    pb::TermiosEntry {
        c_iflag: t.c_iflag,
        c_oflag: t.c_oflag,
        c_cflag: t.c_cflag,
        c_lflag: t.c_lflag,
        c_line: t.c_line.into(),
        c_ispeed: 0,
        c_ospeed: 0,
        // Packed as CRIU packs them (see images::termios).
        c_cc: crate::images::termios::pack_cc(&t.c_cc),
    }
}

/// Once every task's fds are known: refuses terminals whose other end or
/// session is outside the dump (unless `--shell-job`), then reads the data
/// queued in each pty whose two ends are both dumped. `pids` are the
/// dumped tasks.
pub fn finish(st: &mut TtyDump, pids: &[i32]) -> Result<(), FileError> {
    let mut unpaired = 0;
    for e in &st.ends {
        let name = pts_name(e);
        let err = |what: String| FileError::Dump {
            pid: e.pid,
            fd: e.fd,
            kind: KIND,
            what,
        };
        let info = st.infos.iter().find(|i| i.id == e.info_id);
        let sid = info.map_or(0, |i| i.sid);
        if sid != 0 && !pids.contains(&(sid as i32)) && !st.shell_job {
            return Err(err(format!(
                "{name} is the controlling terminal of session {sid}, whose leader is \
                 not dumped (a job of a shell: use --shell-job)"
            )));
        }
        if e.master || e.hung || has_end(st, e.index, true) {
            continue;
        }
        if !st.shell_job && !st.orphan_pts_master {
            return Err(err(format!(
                "{name}: its master is not in the dump (a terminal of the shell: use \
                 --shell-job)"
            )));
        }
        unpaired += 1;
        if unpaired > 1 {
            return Err(err(format!(
                "{name}: only one terminal from outside the dump is allowed"
            )));
        }
    }
    add_unopened_slaves(st);
    // Queued data of each pair, read now that nothing else runs.
    let mut data = Vec::new();
    for e in st
        .ends
        .iter()
        .filter(|e| !e.hung && has_end(st, e.index, !e.master))
    {
        let bytes = read_queue(&e.own, e.packet);
        if !bytes.is_empty() {
            crate::pr_debug!("{}: {} queued bytes", pts_name(e), bytes.len());
            data.push(pb::TtyDataEntry {
                tty_id: e.info_id,
                data: bytes,
            });
        }
    }
    st.data = data;
    Ok(())
}

/// A pty whose master is dumped but none of whose slave fds is still has
/// a slave: its `tty_info_entry` (no file refers to it) carries what only
/// the slave has, its owner, and the master's session, group and
/// settings, which a restore would give it anyway. (A session whose
/// controlling terminal it is finds it there.) The slave's node is found
/// beside the master's `ptmx`; without it only the owner is missing.
fn add_unopened_slaves(st: &mut TtyDump) {
    for e in st.ends.iter().filter(|e| e.master) {
        let sid = info_id(e.index, false);
        if st.infos.iter().any(|i| i.id == sid) {
            continue;
        }
        let Some(mut info) = st.infos.iter().find(|i| i.id == e.info_id).cloned() else {
            continue;
        };
        let dir = std::path::Path::new(&e.path)
            .parent()
            .unwrap_or(std::path::Path::new("/dev"));
        let pts = if dir.ends_with("pts") {
            dir.to_path_buf()
        } else {
            dir.join("pts")
        };
        let node = std::fs::metadata(pts.join(e.index.to_string()))
            .ok()
            .filter(|m| pty_side(m.rdev()) == Some(PtySide::Slave(e.index)));
        info.id = sid;
        info.locked = false;
        info.packet_mode = false;
        info.exclusive = false;
        info.rdev = node.as_ref().map_or(0, |m| m.rdev() as u32);
        info.dev = node.as_ref().map(|m| m.dev() as u32);
        info.uid = node.as_ref().map(|m| m.uid());
        info.gid = node.as_ref().map(|m| m.gid());
        st.infos.push(info);
    }
}

/// Whether a dumped terminal has device number `rdev` (as `tty_nr` of
/// `/proc/PID/stat` gives it).
pub fn dumps_terminal(st: &TtyDump, rdev: u32) -> bool {
    st.infos.iter().any(|i| i.rdev == rdev)
}

fn has_end(st: &TtyDump, index: u32, master: bool) -> bool {
    st.ends
        .iter()
        .any(|o| o.index == index && o.master == master)
}

fn pts_name(e: &End) -> String {
    if e.master {
        format!("the master of pts {}", e.index)
    } else {
        format!("pts {}", e.index)
    }
}

/// The `TTY` kind: fds opened by path on a terminal. Its entry points at
/// a `REG` entry holding the path; the terminal itself is in
/// `tty-info.img` (restored by [`restore`]).
pub struct Tty;

impl super::kind::FileKind for Tty {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Tty
    }

    fn claims(&self, fd: &super::table::FdView<'_>) -> bool {
        fd.path().is_some() && fd.meta.is_some_and(is_tty)
    }

    fn dump(
        &self,
        files: &mut super::table::FileTable,
        v: &super::table::FdView<'_>,
    ) -> Result<u32, super::table::FilesError> {
        let Some(m) = v.meta else {
            return Err(v.unsupported());
        };
        let id = files.next_id();
        let reg = pb::RegFileEntry {
            flags: v.ctx.flags,
            name: v.path_string(),
            mode: Some(m.mode()),
            ..Default::default()
        };
        files.kinds.ttys.shell_job = v.opts.shell_job;
        files.kinds.ttys.orphan_pts_master = v.opts.orphan_pts_master;
        let entries = dump(&v.ctx, m, &mut files.kinds.ttys, id, reg)?;
        files.entries.extend(entries);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &super::FileImages) -> Option<(pb::FownEntry, u32)> {
        e.tty.as_ref().map(|x| (x.fown, x.flags))
    }

    fn finish(
        &self,
        files: &mut super::table::FileTable,
        _: &super::table::FdOpts,
    ) -> Result<(), super::table::FilesError> {
        Ok(finish(&mut files.kinds.ttys, files.seen_fds.pids())?)
    }

    fn open(
        &self,
        o: &mut super::Opener<'_>,
        e: &pb::FileEntry,
    ) -> Result<std::os::fd::OwnedFd, FileError> {
        let t = e
            .tty
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, KIND))?;
        restore::open(o, e.id, t)
    }
}
