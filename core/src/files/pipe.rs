//! Pipes (CRIU's `PIPE` file kind, `criu/pipes.c`): a `pipe_entry` per
//! open end in `files.img` (`pipe_id` = the pipe's inode, shared by both
//! ends) and the unread data with the pipe size in `pipes-data.img`.
//!
//! Dump reads the data without consuming it: a copy of the task's fd
//! (the task is frozen) is `tee`d into a tool pipe of the same size and
//! that one is read. Restore creates the pipe in the tool, sets its size,
//! writes the data back and hands out the ends by file id; an end no task
//! holds is closed once the tasks exist.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};

use super::{Dumped, FdCtx, FileError, Opener, restore_err, restore_fail};
use crate::images::pb;

const KIND: &str = "a pipe";
/// The size a new pipe has (16 pages); only other sizes are worth noting
/// when the pipe is empty.
const DEFAULT_PIPE_SIZE: u32 = 65536;
const O_ACCMODE: u32 = linux_raw_sys::general::O_ACCMODE;

/// Pipe ends and data already dumped.
#[derive(Debug, Default)]
pub struct PipeDump {
    /// File id (and the task it was first seen in) of each (pipe inode,
    /// access mode): one end of one pipe is one file, whichever task holds
    /// it (inherited across fork). Within one task, fds that kcmp found to
    /// be different files of one end (reopened through /proc) get ids of
    /// their own.
    ends: HashMap<(u32, u32), (u32, i32)>,
    /// Pipes whose data is dumped.
    data_done: HashSet<u32>,
}

/// What went wrong reading a pipe's (or FIFO's) queued bytes, or putting
/// them back.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// A call on the pipe that failed.
    #[error("{what}: {source}")]
    Sys { what: String, source: Errno },
    /// `tee` took fewer bytes than were queued (one call must copy them
    /// all, a second would start over).
    #[error("tee copied {teed} of {queued} queued bytes")]
    ShortTee { teed: usize, queued: u64 },
    /// The restored pipe is too small for the dumped bytes.
    #[error("its {len} bytes of data do not fit (stuck at {at})")]
    DoesNotFit { len: usize, at: usize },
    /// Which pipe or FIFO an error is about.
    #[error("{what}: {source}")]
    Of {
        what: String,
        source: Box<PipeError>,
    },
}

impl PipeError {
    fn sys(what: impl Into<String>, source: Errno) -> Self {
        Self::Sys {
            what: what.into(),
            source,
        }
    }

    fn call(what: &str) -> impl FnOnce(Errno) -> Self + '_ {
        move |source| Self::sys(what, source)
    }

    /// This error, about pipe or FIFO `what`.
    pub fn of(self, what: impl Into<String>) -> Self {
        Self::Of {
            what: what.into(),
            source: Box::new(self),
        }
    }
}

/// Bytes queued in a pipe and its size, read without consuming them from
/// `readable` (a read end, or the pipe opened for reading).
pub fn peek_data(readable: &OwnedFd) -> Result<(u32, Vec<u8>), PipeError> {
    let size =
        rustix::pipe::fcntl_getpipe_size(readable).map_err(PipeError::call("F_GETPIPE_SZ"))?;
    let queued = rustix::io::ioctl_fionread(readable).map_err(PipeError::call("FIONREAD"))?;
    if queued == 0 {
        return Ok((size as u32, Vec::new()));
    }
    let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)
        .map_err(PipeError::call("pipe"))?;
    // Room for every buffer of the source: tee copies buffers, not bytes,
    // and one call must take them all (a second would start over).
    rustix::pipe::fcntl_setpipe_size(&w, size)
        .map_err(|e| PipeError::sys(format!("F_SETPIPE_SZ({size}) of the copy"), e))?;
    let teed = rustix::pipe::tee(readable, &w, queued as usize, SpliceFlags::NONBLOCK)
        .map_err(PipeError::call("tee"))?;
    if teed as u64 != queued {
        return Err(PipeError::ShortTee { teed, queued });
    }
    let mut data = vec![0u8; teed];
    let mut got = 0;
    while got < teed {
        match rustix::io::read(&r, &mut data[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(PipeError::sys("reading the copy", e)),
        }
    }
    data.truncate(got);
    Ok((size as u32, data))
}

/// A readable open file of the pipe or FIFO behind `ctx.fd`: the task's
/// own file when it is a read end, else the pipe opened anew for reading
/// through /proc (never blocking: the task's end is a writer).
pub fn readable(ctx: &FdCtx, kind: &'static str) -> Result<OwnedFd, FileError> {
    if ctx.flags & O_ACCMODE == 0 {
        return ctx.steal(kind);
    }
    let path = format!("/proc/{}/fd/{}", ctx.pid, ctx.fd);
    rustix::fs::open(
        path.as_str(),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ctx.err(kind, format!("opening it for reading: {e}")))
}

/// Dumps the pipe end `ctx.fd` (inode `ino`): its file id, with the entry
/// to add to `files.img` when the end is new (`id` is the id it gets).
pub fn dump(
    ctx: &FdCtx,
    ino: u64,
    st: &mut Dumped,
    id: u32,
) -> Result<(u32, Option<pb::FileEntry>), FileError> {
    let pipe_id = u32::try_from(ino).map_err(|_| ctx.err(KIND, format!("inode {ino}")))?;
    let key = (pipe_id, ctx.flags & O_ACCMODE);
    if let Some(&(known, pid)) = st.pipes.ends.get(&key)
        && pid != ctx.pid
    {
        return Ok((known, None));
    }
    if st.pipes.data_done.insert(pipe_id) {
        let copy = readable(ctx, KIND)?;
        let (size, data) = peek_data(&copy).map_err(|e| ctx.fail(KIND, e))?;
        if !data.is_empty() || size != DEFAULT_PIPE_SIZE {
            st.pipes_data.push((
                pb::PipeDataEntry {
                    pipe_id,
                    bytes: data.len() as u32,
                    size: Some(size),
                },
                data,
            ));
        }
    }
    st.pipes.ends.entry(key).or_insert((id, ctx.pid));
    let entry = pb::FileEntry {
        r#type: pb::FdTypes::Pipe as i32,
        id,
        pipe: Some(pb::PipeEntry {
            id,
            pipe_id,
            flags: ctx.flags,
            fown: pb::FownEntry::default(),
        }),
        ..Default::default()
    };
    Ok((id, Some(entry)))
}

/// A restored pipe: both ends, owned here until the tasks exist.
pub struct PipeObj {
    r: OwnedFd,
    w: OwnedFd,
    /// Ends already given to a file id (a second id of one end gets an
    /// open file of its own).
    r_taken: bool,
    w_taken: bool,
}

impl PipeObj {
    pub fn into_fds(self) -> [OwnedFd; 2] {
        [self.r, self.w]
    }
}

/// Puts `data` into the pipe through `w` and sizes it for `size`.
pub fn fill(w: &OwnedFd, size: Option<u32>, data: &[u8]) -> Result<(), PipeError> {
    if let Some(size) = size.filter(|&s| s != 0) {
        rustix::pipe::fcntl_setpipe_size(w, size as usize)
            .map_err(|e| PipeError::sys(format!("F_SETPIPE_SZ({size})"), e))?;
    }
    let mut off = 0;
    while off < data.len() {
        match rustix::io::write(w, &data[off..]) {
            Ok(n) => off += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                return Err(PipeError::DoesNotFit {
                    len: data.len(),
                    at: off,
                });
            }
            Err(e) => return Err(PipeError::sys("writing its data", e)),
        }
    }
    Ok(())
}

/// Sets the status flags of the file (`O_NONBLOCK`, …) to those dumped.
pub fn set_status_flags(fd: impl AsFd, flags: u32) -> Result<(), Errno> {
    let keep = flags & !(O_ACCMODE | OFlags::CLOEXEC.bits());
    rustix::fs::fcntl_setfl(fd, OFlags::from_bits_retain(keep))
}

/// Reopens the pipe end `fd` as a new open file (`/proc/self/fd`).
fn reopen(fd: &OwnedFd, flags: OFlags) -> Result<OwnedFd, Errno> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(path.as_str(), flags | OFlags::CLOEXEC, Mode::empty())
}

pub(super) fn open(o: &mut Opener<'_>, id: u32, e: &pb::PipeEntry) -> Result<OwnedFd, FileError> {
    let err = |what: String| restore_err(id, KIND, what);
    if !o.pipes.contains_key(&e.pipe_id) {
        let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)
            .map_err(|x| err(format!("pipe: {x}")))?;
        if let Some((d, data)) = o.img.pipe_data.get(&e.pipe_id) {
            fill(&w, d.size, data)
                .map_err(|x| restore_fail(id, KIND, x.of(format!("pipe {}", e.pipe_id))))?;
        }
        // Blocking unless an end's entry says otherwise (set per id).
        for end in [&r, &w] {
            rustix::fs::fcntl_setfl(end, OFlags::empty())
                .map_err(|x| err(format!("F_SETFL: {x}")))?;
        }
        o.pipes.insert(
            e.pipe_id,
            PipeObj {
                r,
                w,
                r_taken: false,
                w_taken: false,
            },
        );
    }
    let Some(p) = o.pipes.get_mut(&e.pipe_id) else {
        return Err(err("pipe vanished".into()));
    };
    let write_end = e.flags & O_ACCMODE != 0;
    let (end, taken, mode) = if write_end {
        (&p.w, &mut p.w_taken, OFlags::WRONLY)
    } else {
        (&p.r, &mut p.r_taken, OFlags::RDONLY)
    };
    let fd = if *taken {
        // Opening a second reader or writer never blocks: the pipe has
        // both ends open in the tool.
        reopen(end, mode).map_err(|x| err(format!("reopening pipe {}: {x}", e.pipe_id)))?
    } else {
        *taken = true;
        rustix::io::fcntl_dupfd_cloexec(end, 0).map_err(|x| err(format!("dup: {x}")))?
    };
    set_status_flags(&fd, e.flags).map_err(|x| err(format!("F_SETFL: {x}")))?;
    Ok(fd)
}

/// The `PIPE` kind: `pipe:[INO]` fds.
pub struct Pipe;

impl super::kind::FileKind for Pipe {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Pipe
    }

    fn claims(&self, fd: &super::table::FdView<'_>) -> bool {
        matches!(fd.target, crate::proc::task::FdTarget::Pipe(_))
    }

    fn dump(
        &self,
        files: &mut super::table::FileTable,
        v: &super::table::FdView<'_>,
    ) -> Result<u32, super::table::FilesError> {
        let crate::proc::task::FdTarget::Pipe(ino) = v.target else {
            return Err(v.unsupported());
        };
        let next = files.next_id();
        let (id, entry) = dump(&v.ctx, *ino, &mut files.kinds, next)?;
        files.entries.extend(entry);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &super::FileImages) -> Option<(pb::FownEntry, u32)> {
        e.pipe.as_ref().map(|x| (x.fown, x.flags))
    }

    fn open(&self, o: &mut Opener<'_>, e: &pb::FileEntry) -> Result<OwnedFd, FileError> {
        let p = e
            .pipe
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, KIND))?;
        open(o, e.id, p)
    }
}
