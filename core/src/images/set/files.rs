//! The images of the tree's files, read once for every task: `files.img`
//! (and the older per-kind images CRIU wrote before it), the data images
//! of pipes, FIFOs, unix socket queues, terminals and TCP streams,
//! `remap-fpath.img` and `filelocks.img`. The object kinds (`crate::files`)
//! restore from these.

use std::collections::HashMap;
use std::sync::Arc;

use crate::images::check::{CheckError, invalid, validate_path};
use crate::images::kinds::Kind;
use crate::images::pb;
use crate::images::typed::ImageDir;
use crate::sys::kconst::IPPROTO_TCP;

/// The images of the tree's files (`files.img` and what its kinds read,
/// `remap-fpath.img`, `filelocks.img`): read and checked once, shared by
/// every task (each task's own part of them is picked by id).
pub(super) struct TreeFiles {
    pub(super) has_files_img: bool,
    pub(super) reg_files: Arc<HashMap<u32, pb::RegFileEntry>>,
    pub(super) memfd_files: Arc<HashMap<u32, pb::MemfdFileEntry>>,
    pub(super) other_files: Arc<FileImages>,
    pub(super) remaps: Arc<Vec<pb::RemapFilePathEntry>>,
    /// File locks by the PID that holds them.
    pub(super) locks: HashMap<i32, Vec<pb::FileLockEntry>>,
    /// The filters of `seccomp.img` (tree-wide, like the file images;
    /// each thread's core picks its chain by index).
    pub(super) seccomp: Vec<pb::SeccompFilter>,
}

pub(super) fn read_tree_files(dir: &ImageDir, tcp_close: bool) -> Result<TreeFiles, CheckError> {
    let mut reg_files = HashMap::new();
    let mut memfd_files = HashMap::new();
    let mut all_files = Vec::new();
    let has_files_img = dir.path(Kind::Files, 0).exists();
    if has_files_img {
        all_files = dir.read_all::<pb::FileEntry>(Kind::Files, 0)?;
        for f in &all_files {
            if let Some(reg) = &f.reg {
                reg_files.insert(f.id, reg.clone());
            } else if let Some(m) = &f.memfd {
                memfd_files.insert(f.id, *m);
            }
        }
    }
    let mut other_files = FileImages::read(dir, &all_files)?;
    other_files.dumped_tcp_close = tcp_close;
    drop(all_files);
    if dir.path(Kind::RegFiles, 0).exists() {
        for reg in dir.read_all::<pb::RegFileEntry>(Kind::RegFiles, 0)? {
            other_files.entries.insert(
                reg.id,
                pb::FileEntry {
                    r#type: pb::FdTypes::Reg as i32,
                    id: reg.id,
                    reg: Some(reg.clone()),
                    ..Default::default()
                },
            );
            reg_files.insert(reg.id, reg);
        }
    }
    for reg in reg_files.values() {
        validate_path(&reg.name, "files.img", reg.id)?;
    }
    let remaps = if dir.path(Kind::RemapFpath, 0).exists() {
        dir.read_all::<pb::RemapFilePathEntry>(Kind::RemapFpath, 0)?
    } else {
        Vec::new()
    };
    for r in &remaps {
        if !reg_files.contains_key(&r.orig_id) {
            return Err(invalid(
                "remap-fpath.img",
                format!("file id {} is not a regular file of files.img", r.orig_id),
            ));
        }
    }
    let mut locks: HashMap<i32, Vec<pb::FileLockEntry>> = HashMap::new();
    if dir.path(Kind::FileLocks, 0).exists() {
        for l in dir.read_all::<pb::FileLockEntry>(Kind::FileLocks, 0)? {
            locks.entry(l.pid).or_default().push(l);
        }
    }
    Ok(TreeFiles {
        has_files_img,
        reg_files: Arc::new(reg_files),
        memfd_files: Arc::new(memfd_files),
        other_files: Arc::new(other_files),
        remaps: Arc::new(remaps),
        locks,
        seccomp: super::seccomp::read_filters(dir)?,
    })
}

/// The images of the kinds here, read for restore.
#[derive(Clone, Debug, Default)]
pub struct FileImages {
    /// Every file object of the tree by id (`files.img`, and the entries
    /// of the older per-kind images made into `file_entry`s): what the
    /// kinds of [`KINDS`] open.
    pub entries: HashMap<u32, pb::FileEntry>,
    pub pipes: HashMap<u32, pb::PipeEntry>,
    pub fifos: HashMap<u32, pb::FifoEntry>,
    pub unix: HashMap<u32, pb::UnixSkEntry>,
    /// Pipe data by `pipe_id`.
    pub pipe_data: HashMap<u32, (pb::PipeDataEntry, Vec<u8>)>,
    pub fifo_data: HashMap<u32, (pb::PipeDataEntry, Vec<u8>)>,
    /// Queued messages in image order (their order in the queue).
    pub sk_queues: Vec<(pb::SkPacketEntry, Vec<u8>)>,
    /// Terminal files by id, their `tty-info.img` entries by id, and the
    /// queued bytes of each (`tty-data.img`) by tty-info id.
    pub ttys: HashMap<u32, pb::TtyFileEntry>,
    pub tty_infos: HashMap<u32, pb::TtyInfoEntry>,
    pub tty_data: HashMap<u32, Vec<u8>>,
    /// TCP connections' `tcp-stream-<ino>.img` by socket inode: the entry
    /// and the queues' bytes (receive queue, then send queue).
    pub tcp_streams: HashMap<u32, (pb::TcpStreamEntry, Vec<u8>)>,
    /// The dump was made with `--tcp-close` (the inventory says so): the
    /// restore must be asked for it too.
    pub dumped_tcp_close: bool,
}

impl FileImages {
    /// Picks this module's entries out of `files.img` (and the older
    /// per-kind images) and reads the data images.
    /// How `--inherit-fd` names file object `id` (CRIU's keys): a pipe
    /// `pipe:[INODE]`, a unix socket `socket:[INODE]`, a regular file or
    /// FIFO its path (`reg` holds the regular files' entries).
    pub fn inherit_key(&self, id: u32, reg: &HashMap<u32, pb::RegFileEntry>) -> Option<String> {
        if let Some(p) = self.pipes.get(&id) {
            return Some(format!("pipe:[{}]", p.pipe_id));
        }
        if let Some(u) = self.unix.get(&id) {
            return Some(format!("socket:[{}]", u.ino));
        }
        if let Some(f) = self.fifos.get(&id) {
            return Some(format!("pipe:[{}]", f.pipe_id));
        }
        reg.get(&id).map(|r| r.name.clone())
    }

    pub fn read(dir: &ImageDir, files: &[pb::FileEntry]) -> Result<FileImages, CheckError> {
        let mut f = FileImages::default();
        for e in files {
            f.entries.insert(e.id, e.clone());
            if let Some(p) = &e.pipe {
                f.pipes.insert(e.id, *p);
            } else if let Some(x) = &e.fifo {
                f.fifos.insert(e.id, *x);
            } else if let Some(u) = &e.usk {
                f.unix.insert(e.id, u.clone());
            } else if let Some(t) = &e.tty {
                f.ttys.insert(e.id, *t);
            }
        }
        // Older CRIU wrote one image per kind instead of files.img.
        if dir.path(Kind::Pipes, 0).exists() {
            for p in dir.read_all::<pb::PipeEntry>(Kind::Pipes, 0)? {
                f.entries.insert(
                    p.id,
                    pb::FileEntry {
                        r#type: pb::FdTypes::Pipe as i32,
                        id: p.id,
                        pipe: Some(p),
                        ..Default::default()
                    },
                );
                f.pipes.insert(p.id, p);
            }
        }
        if dir.path(Kind::Fifo, 0).exists() {
            for x in dir.read_all::<pb::FifoEntry>(Kind::Fifo, 0)? {
                f.entries.insert(
                    x.id,
                    pb::FileEntry {
                        r#type: pb::FdTypes::Fifo as i32,
                        id: x.id,
                        fifo: Some(x),
                        ..Default::default()
                    },
                );
                f.fifos.insert(x.id, x);
            }
        }
        if dir.path(Kind::Unixsk, 0).exists() {
            for u in dir.read_all::<pb::UnixSkEntry>(Kind::Unixsk, 0)? {
                f.entries.insert(
                    u.id,
                    pb::FileEntry {
                        r#type: pb::FdTypes::Unixsk as i32,
                        id: u.id,
                        usk: Some(u.clone()),
                        ..Default::default()
                    },
                );
                f.unix.insert(u.id, u);
            }
        }
        read_old_inet_image(dir, &mut f.entries)?;
        f.tcp_streams = read_tcp_streams(dir, &f.entries)?;
        if dir.path(Kind::TtyFiles, 0).exists() {
            for t in dir.read_all::<pb::TtyFileEntry>(Kind::TtyFiles, 0)? {
                f.entries.insert(
                    t.id,
                    pb::FileEntry {
                        r#type: pb::FdTypes::Tty as i32,
                        id: t.id,
                        tty: Some(t),
                        ..Default::default()
                    },
                );
                f.ttys.insert(t.id, t);
            }
        }
        if dir.path(Kind::TtyInfo, 0).exists() {
            for i in dir.read_all::<pb::TtyInfoEntry>(Kind::TtyInfo, 0)? {
                f.tty_infos.insert(i.id, i);
            }
        }
        if dir.path(Kind::TtyData, 0).exists() {
            for d in dir.read_all::<pb::TtyDataEntry>(Kind::TtyData, 0)? {
                f.tty_data.entry(d.tty_id).or_default().extend(d.data);
            }
        }
        f.pipe_data = read_pipe_data(dir, Kind::PipesData)?;
        f.fifo_data = read_pipe_data(dir, Kind::FifoData)?;
        f.sk_queues = read_payloads(dir, Kind::SkQueues, |e: &pb::SkPacketEntry| {
            u64::from(e.length)
        })?;
        Ok(f)
    }
}

fn read_payloads<T: prost_reflect::prost::Message + Default>(
    dir: &ImageDir,
    kind: Kind,
    len: impl Fn(&T) -> u64,
) -> Result<Vec<(T, Vec<u8>)>, CheckError> {
    let mut out = Vec::new();
    if !dir.path(kind, 0).exists() {
        return Ok(out);
    }
    let mut r = dir.reader(kind, 0)?;
    while let Some(e) = r.next_message::<T>()? {
        let n = len(&e);
        // The reader refuses a payload longer than what is left.
        let data = r.payload(n)?;
        out.push((e, data));
    }
    Ok(out)
}

fn read_pipe_data(
    dir: &ImageDir,
    kind: Kind,
) -> Result<HashMap<u32, (pb::PipeDataEntry, Vec<u8>)>, CheckError> {
    let mut map = HashMap::new();
    for (e, data) in read_payloads(dir, kind, |e: &pb::PipeDataEntry| u64::from(e.bytes))? {
        if map.insert(e.pipe_id, (e, data)).is_some() {
            return Err(CheckError::Invalid {
                file: kind.file_name(0),
                what: "two data entries for one pipe".into(),
            });
        }
    }
    Ok(map)
}

/// Older CRIU wrote `inetsk.img` instead of entries in `files.img`: they
/// become `file_entry`s in `into`.
fn read_old_inet_image(
    dir: &ImageDir,
    into: &mut HashMap<u32, pb::FileEntry>,
) -> Result<(), CheckError> {
    if dir.path(Kind::Inetsk, 0).exists() {
        for i in dir.read_all::<pb::InetSkEntry>(Kind::Inetsk, 0)? {
            let e = pb::FileEntry {
                r#type: pb::FdTypes::Inetsk as i32,
                id: i.id,
                isk: Some(i),
                ..Default::default()
            };
            into.insert(e.id, e);
        }
    }
    Ok(())
}

/// Is entry `i` a TCP connection (CRIU's `tcp_connection`: a TCP socket
/// with a peer)?
pub fn is_connection(i: &pb::InetSkEntry) -> bool {
    i.proto == u32::from(IPPROTO_TCP) && i.dst_port != 0
}

/// The `tcp-stream-<ino>.img` of every TCP connection of `entries` that
/// has one (a `--tcp-close` dump writes none), by inode. A queue length
/// beyond the end of the file is refused here.
fn read_tcp_streams(
    dir: &ImageDir,
    entries: &HashMap<u32, pb::FileEntry>,
) -> Result<HashMap<u32, (pb::TcpStreamEntry, Vec<u8>)>, CheckError> {
    let mut out = HashMap::new();
    for i in entries.values().filter_map(|e| e.isk.as_ref()) {
        if !is_connection(i) || !dir.path(Kind::TcpStream, u64::from(i.ino)).exists() {
            continue;
        }
        let mut r = dir.reader(Kind::TcpStream, u64::from(i.ino))?;
        let file = Kind::TcpStream.file_name(u64::from(i.ino));
        let e: pb::TcpStreamEntry = r.next_message()?.ok_or_else(|| CheckError::Invalid {
            file: file.clone(),
            what: "no tcp_stream_entry".into(),
        })?;
        let queues = r.payload(u64::from(e.inq_len) + u64::from(e.outq_len))?;
        out.insert(i.ino, (e, queues));
    }
    Ok(out)
}
