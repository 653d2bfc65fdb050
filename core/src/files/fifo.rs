//! FIFOs (named pipes; CRIU's `FIFO` kind, `criu/fifo.c`): a `fifo_entry`
//! per open file in `files.img` whose `regf_id` names a `REG` entry with
//! the path and open flags, and the unread data in `fifo-data.img`
//! (`pipe_id` = the FIFO's inode).
//!
//! Restore first opens the path `O_RDWR` (which never blocks, and keeps
//! the pipe alive with a reader and a writer), puts the data back through
//! it, then opens the path with the dumped mode.

use std::collections::HashSet;
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};

use super::pipe::{fill, peek_data, readable, set_status_flags};
use super::{Dumped, FdCtx, FileError, Opener, restore_err, restore_fail};
use crate::images::pb;

const KIND: &str = "a FIFO";

/// FIFOs whose data is dumped.
#[derive(Debug, Default)]
pub struct FifoDump {
    data_done: HashSet<u32>,
}

/// Dumps FIFO fd `ctx.fd` (inode `ino`) as the two entries it needs: the
/// FIFO entry with id `id` and its path's `REG` entry with id `id + 1`
/// (`reg` fills in the path, flags and mode).
pub fn dump(
    ctx: &FdCtx,
    ino: u64,
    st: &mut Dumped,
    id: u32,
    reg: pb::RegFileEntry,
) -> Result<[pb::FileEntry; 2], FileError> {
    let pipe_id = u32::try_from(ino).map_err(|_| ctx.err(KIND, format!("inode {ino}")))?;
    if st.fifos.data_done.insert(pipe_id) {
        let copy = readable(ctx, KIND)?;
        let (size, data) = peek_data(&copy).map_err(|e| ctx.fail(KIND, e))?;
        st.fifo_data.push((
            pb::PipeDataEntry {
                pipe_id,
                bytes: data.len() as u32,
                size: Some(size),
            },
            data,
        ));
    }
    let (regf_id, path) = super::path_entry(id, reg);
    Ok([
        pb::FileEntry {
            r#type: pb::FdTypes::Fifo as i32,
            id,
            fifo: Some(pb::FifoEntry {
                id,
                pipe_id,
                regf_id: Some(regf_id),
            }),
            ..Default::default()
        },
        path,
    ])
}

pub(super) fn open(o: &mut Opener<'_>, id: u32, f: &pb::FifoEntry) -> Result<OwnedFd, FileError> {
    let err = |what: String| restore_err(id, KIND, what);
    let reg = f
        .regf_id
        .and_then(|r| o.reg.get(&r))
        .ok_or_else(|| err("its path entry is missing".into()))?;
    let path = reg.name.as_str();
    if !o.fifos.contains_key(&f.pipe_id) {
        let st = rustix::fs::stat(path).map_err(|e| err(format!("{path}: {e}")))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Fifo {
            return Err(err(format!("{path} is no longer a FIFO")));
        }
        let keeper = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(format!("opening {path}: {e}")))?;
        if let Some((d, data)) = o.img.fifo_data.get(&f.pipe_id) {
            fill(&keeper, d.size, data).map_err(|e| restore_fail(id, KIND, e.of(path)))?;
        }
        o.fifos.insert(f.pipe_id, keeper);
    }
    // Non-blocking while opening (the keeper is reader and writer, so
    // nothing would wait anyway), then the dumped status flags.
    let mode = OFlags::from_bits_retain(
        reg.flags & !(OFlags::CREATE | OFlags::TRUNC | OFlags::EXCL).bits(),
    );
    let fd = rustix::fs::open(
        path,
        mode | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(format!("opening {path}: {e}")))?;
    set_status_flags(&fd, reg.flags).map_err(|e| err(format!("F_SETFL: {e}")))?;
    Ok(fd)
}

/// The `FIFO` kind: fds opened by path on a FIFO. Its entry points at a
/// `REG` entry holding the path (and the owner and flags).
pub struct Fifo;

impl super::kind::FileKind for Fifo {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Fifo
    }

    fn claims(&self, fd: &super::table::FdView<'_>) -> bool {
        use std::os::unix::fs::FileTypeExt;
        fd.path().is_some() && fd.meta.is_some_and(|m| m.file_type().is_fifo())
    }

    fn dump(
        &self,
        files: &mut super::table::FileTable,
        v: &super::table::FdView<'_>,
    ) -> Result<u32, super::table::FilesError> {
        use std::os::unix::fs::MetadataExt;
        let Some(m) = v.meta else {
            return Err(v.unsupported());
        };
        let reg = pb::RegFileEntry {
            flags: v.ctx.flags,
            name: v.path_string(),
            mode: Some(m.mode()),
            ..Default::default()
        };
        let id = files.next_id();
        let entries = dump(&v.ctx, m.ino(), &mut files.kinds, id, reg)?;
        files.entries.extend(entries);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, img: &super::FileImages) -> Option<(pb::FownEntry, u32)> {
        let regf = e.fifo.as_ref()?.regf_id?;
        let r = img.entries.get(&regf)?.reg.as_ref()?;
        Some((r.fown, r.flags))
    }

    fn check(
        &self,
        img: &super::FileImages,
        reg_names: &dyn Fn(u32) -> bool,
    ) -> Result<(), FileError> {
        for (id, f) in &img.fifos {
            let Some(regf) = f.regf_id else {
                return Err(restore_err(*id, "a FIFO", "no regf_id (path) in its entry"));
            };
            if !reg_names(regf) {
                return Err(restore_err(
                    *id,
                    "a FIFO",
                    format!("its path (file id {regf}) is not in files.img"),
                ));
            }
        }
        Ok(())
    }

    fn open(&self, o: &mut Opener<'_>, e: &pb::FileEntry) -> Result<OwnedFd, FileError> {
        let f = e
            .fifo
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, KIND))?;
        open(o, e.id, f)
    }
}
