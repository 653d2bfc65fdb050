//! The IPC namespace as CRIU stores it, under the namespace's id:
//! - `ipcns-var-ID.img`: its sysctls (`kernel/sem`, `msg*`, `shm*`,
//!   `fs/mqueue/*`, and the `*_next_id` ones when set);
//! - `ipcns-shm-ID.img`: each SysV shared memory segment; its contents,
//!   as CRIU 4 writes them (`in_pagemaps`), in `pagemap-shmem-SHMID.img`
//!   (offsets in the segment) and a `pages-N.img`, or (older images) raw
//!   after the entry, padded to 4 bytes;
//! - `ipcns-sem-ID.img`: each semaphore set, its values (u16) after it,
//!   padded to 8 bytes;
//! - `ipcns-msg-ID.img`: each message queue, then each of its messages in
//!   queue order: an `ipc_msg` header and the text, padded to 8 bytes.
//!
//! Semaphore undo lists (`SEM_UNDO`) are neither dumped nor refused, as
//! in CRIU: no kernel interface shows them. kcmp(`KCMP_SYSVSEM`) only
//! tells whether two tasks share one, and every process that ever made a
//! thread has one (`CLONE_SYSVSEM` allocates it), empty or not.
//!
//! Everything here runs on a thread inside the namespace (see
//! [`super::run_in`]): `/proc/sysvipc/*` and `/proc/sys/*` show the
//! calling thread's IPC namespace, and the objects' ids are its own.

use std::io::Write;

use crate::images::{ImageDir, Kind, pb};
use crate::sys::kconst::{IPC_CREAT, IPC_EXCL};
use crate::sys::sysvipc::{self as ipc, IpcKind};

use super::{NsError, read_sysctl, read_sysctl_num, write_sysctl};

/// A shared memory segment and its bytes (`size` of them).
#[derive(Debug, Clone)]
pub struct Segment {
    pub entry: pb::IpcShmEntry,
    pub data: Vec<u8>,
}

/// A semaphore set and its values.
#[derive(Debug, Clone)]
pub struct SemSet {
    pub entry: pb::IpcSemEntry,
    pub values: Vec<u16>,
}

/// A message queue and its messages (type, text), in queue order.
#[derive(Debug, Clone)]
pub struct Queue {
    pub entry: pb::IpcMsgEntry,
    pub messages: Vec<(u64, Vec<u8>)>,
}

/// Everything of one IPC namespace.
#[derive(Debug, Clone)]
pub struct IpcNs {
    pub var: pb::IpcVarEntry,
    pub shm: Vec<Segment>,
    pub sem: Vec<SemSet>,
    pub msg: Vec<Queue>,
}

const MQUEUE_DIR: &str = "/proc/sys/fs/mqueue";

/// The calling thread's IPC namespace: sysctls and every object with its
/// contents. Messages are copied (`MSG_COPY`), not taken off their queue.
pub fn read_current() -> Result<IpcNs, NsError> {
    Ok(IpcNs {
        var: read_var()?,
        shm: read_shm()?,
        sem: read_sem()?,
        msg: read_msg()?,
    })
}

fn read_var() -> Result<pb::IpcVarEntry, NsError> {
    let sem_text = read_sysctl("kernel/sem")?;
    let sem_ctls: Vec<u32> = sem_text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()
        .filter(|v: &Vec<u32>| v.len() == 4)
        .ok_or_else(|| NsError::Parse {
            path: "/proc/sys/kernel/sem".into(),
            text: sem_text.clone(),
        })?;
    // -1 (the initial value, which cannot be written back): not set.
    let next_id = |path: &str| -> Result<Option<u32>, NsError> {
        let v: i64 = read_sysctl_num(path)?;
        Ok(u32::try_from(v).ok())
    };
    let has_mqueue = std::path::Path::new(MQUEUE_DIR).exists();
    let mq = |name: &str| -> Result<u32, NsError> {
        if has_mqueue {
            read_sysctl_num(&format!("fs/mqueue/{name}"))
        } else {
            Ok(0)
        }
    };
    Ok(pb::IpcVarEntry {
        sem_ctls,
        msg_ctlmax: read_sysctl_num("kernel/msgmax")?,
        msg_ctlmnb: read_sysctl_num("kernel/msgmnb")?,
        msg_ctlmni: read_sysctl_num("kernel/msgmni")?,
        // Gone from newer kernels' behaviour (always 0); absent on some.
        auto_msgmni: read_sysctl_num("kernel/auto_msgmni").unwrap_or(0),
        shm_ctlmax: read_sysctl_num("kernel/shmmax")?,
        shm_ctlall: read_sysctl_num("kernel/shmall")?,
        shm_ctlmni: read_sysctl_num("kernel/shmmni")?,
        shm_rmid_forced: read_sysctl_num("kernel/shm_rmid_forced")?,
        mq_queues_max: mq("queues_max")?,
        mq_msg_max: mq("msg_max")?,
        mq_msgsize_max: mq("msgsize_max")?,
        mq_msg_default: Some(mq("msg_default")?),
        mq_msgsize_default: Some(mq("msgsize_default")?),
        msg_next_id: next_id("kernel/msg_next_id")?,
        sem_next_id: next_id("kernel/sem_next_id")?,
        shm_next_id: next_id("kernel/shm_next_id")?,
    })
}

/// The rows of `/proc/sysvipc/KIND` (after its header), split in columns.
fn sysvipc_rows(kind: &str) -> Result<Vec<Vec<String>>, NsError> {
    let path = format!("/proc/sysvipc/{kind}");
    let text = std::fs::read_to_string(&path).map_err(|source| NsError::Sysctl {
        path: path.clone(),
        source,
    })?;
    Ok(text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .filter(|r: &Vec<String>| !r.is_empty())
        .collect())
}

/// Column `i` of a `/proc/sysvipc` row, parsed (`radix` 8 for perms).
fn col<T: TryFrom<i64>>(kind: &str, row: &[String], i: usize, radix: u32) -> Result<T, NsError> {
    row.get(i)
        .and_then(|c| i64::from_str_radix(c, radix).ok())
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| NsError::Parse {
            path: format!("/proc/sysvipc/{kind}"),
            text: row.join(" "),
        })
}

/// The `ipc_desc_entry` of a row whose key, id and perms are its first
/// three columns and uid, gid, cuid, cgid start at column `uid_at`.
fn desc(kind: &str, row: &[String], uid_at: usize) -> Result<pb::IpcDescEntry, NsError> {
    let key: i32 = col(kind, row, 0, 10)?;
    Ok(pb::IpcDescEntry {
        key: key as u32,
        id: col(kind, row, 1, 10)?,
        mode: col(kind, row, 2, 8)?,
        uid: col(kind, row, uid_at, 10)?,
        gid: col(kind, row, uid_at + 1, 10)?,
        cuid: col(kind, row, uid_at + 2, 10)?,
        cgid: col(kind, row, uid_at + 3, 10)?,
    })
}

/// A shared memory segment of the calling thread's IPC namespace, as
/// `/proc/sysvipc/shm` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmInfo {
    pub id: u32,
    pub size: u64,
    /// Its mode, `SHM_DEST` and `SHM_LOCKED` included.
    pub mode: u32,
}

/// Every shared memory segment of the calling thread's IPC namespace.
pub fn shm_list() -> Result<Vec<ShmInfo>, NsError> {
    sysvipc_rows("shm")?
        .iter()
        .map(|row| {
            let d = desc("shm", row, 7)?;
            Ok(ShmInfo {
                id: d.id,
                size: col("shm", row, 3, 10)?,
                mode: d.mode,
            })
        })
        .collect()
}

/// How many semaphore sets the calling thread's IPC namespace holds.
pub fn sem_count() -> Result<usize, NsError> {
    Ok(sysvipc_rows("sem")?.len())
}

fn read_shm() -> Result<Vec<Segment>, NsError> {
    // key shmid perms size cpid lpid nattch uid gid cuid cgid ...
    let mut out = Vec::new();
    for row in sysvipc_rows("shm")? {
        let desc = desc("shm", &row, 7)?;
        let size: u64 = col("shm", &row, 3, 10)?;
        let id = desc.id as i32;
        let att = ipc::ShmAttach::new(id, size, true)
            .map_err(NsError::sys(format!("shmat(shm id {id}, read-only)")))?;
        let data = att.bytes().to_vec();
        drop(att);
        out.push(Segment {
            entry: pb::IpcShmEntry {
                desc,
                size,
                in_pagemaps: Some(true),
                hugetlb_flag: None,
            },
            data,
        });
    }
    Ok(out)
}

fn read_sem() -> Result<Vec<SemSet>, NsError> {
    // key semid perms nsems uid gid cuid cgid otime ctime
    let mut out = Vec::new();
    for row in sysvipc_rows("sem")? {
        let desc = desc("sem", &row, 4)?;
        let nsems: u32 = col("sem", &row, 3, 10)?;
        let id = desc.id as i32;
        let mut values = vec![0u16; nsems as usize];
        ipc::sem_getall(id, &mut values)
            .map_err(NsError::sys(format!("semctl(sem id {id}, GETALL)")))?;
        out.push(SemSet {
            entry: pb::IpcSemEntry { desc, nsems },
            values,
        });
    }
    Ok(out)
}

fn read_msg() -> Result<Vec<Queue>, NsError> {
    // key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid ...
    let rows = sysvipc_rows("msg")?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let msgmax: usize = read_sysctl_num("kernel/msgmax")?;
    let mut out = Vec::new();
    for row in rows {
        let desc = desc("msg", &row, 7)?;
        let qnum: u32 = col("msg", &row, 4, 10)?;
        let id = desc.id as i32;
        let ds = ipc::stat(IpcKind::Msg, id)
            .map_err(NsError::sys(format!("msgctl(msg id {id}, IPC_STAT)")))?;
        let qbytes = u64::from_ne_bytes(
            ds[ipc::MSG_QBYTES..ipc::MSG_QBYTES + 8]
                .try_into()
                .unwrap_or_default(),
        );
        let mut messages = Vec::with_capacity(qnum as usize);
        for n in 0..qnum {
            let (mtype, text) = ipc::msg_copy(id, n, msgmax).map_err(NsError::sys(format!(
                "msgrcv(msg id {id}, message {n}, MSG_COPY: needs CONFIG_CHECKPOINT_RESTORE)"
            )))?;
            messages.push((mtype as u64, text));
        }
        out.push(Queue {
            entry: pb::IpcMsgEntry {
                desc,
                qbytes: qbytes as u32,
                qnum,
            },
            messages,
        });
    }
    Ok(out)
}

/// `bytes` padded with zeros to a multiple of `align`.
fn padded(bytes: &[u8], align: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.resize(bytes.len().next_multiple_of(align), 0);
    v
}

/// Write the namespace's images under `id`. Segment contents go to
/// `pagemap-shmem-SHMID.img` and `pages-N.img` from `pages_id` on (one
/// per segment). The pages ids used.
pub fn write(dir: &ImageDir, id: u32, ns: &IpcNs, pages_id: u64) -> Result<u64, NsError> {
    let id64 = u64::from(id);
    dir.write_one(Kind::IpcVar, id64, &ns.var)?;
    let mut w = dir.writer(Kind::IpcnsShm, id64)?;
    let mut used = 0;
    for s in &ns.shm {
        w.write_message(&s.entry)?;
        write_segment_pages(dir, s, pages_id + used)?;
        used += 1;
    }
    w.finish()?;
    let mut w = dir.writer(Kind::IpcnsSem, id64)?;
    for s in &ns.sem {
        w.write_message(&s.entry)?;
        let bytes: Vec<u8> = s.values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        w.write_payload(&padded(&bytes, 8))?;
    }
    w.finish()?;
    let mut w = dir.writer(Kind::IpcnsMsg, id64)?;
    for q in &ns.msg {
        w.write_message(&q.entry)?;
        for (mtype, text) in &q.messages {
            w.write_message(&pb::IpcMsg {
                mtype: *mtype,
                msize: text.len() as u32,
            })?;
            w.write_payload(&padded(text, 8))?;
        }
    }
    w.finish()?;
    Ok(used)
}

/// A segment's pages that hold anything but zeros, as CRIU 4 stores them
/// (`pagemap-shmem-SHMID.img`, offsets in the segment as addresses).
fn write_segment_pages(dir: &ImageDir, s: &Segment, pages_id: u64) -> Result<(), NsError> {
    let shmid = u64::from(s.entry.desc.id);
    let pm_path = dir.path(Kind::ShmemPagemap, shmid);
    if pm_path.exists() {
        // An anonymous shared memory object of the tree has that id.
        return Err(NsError::Lost {
            what: format!(
                "{}: already written for another shared memory object; SysV segment {shmid} \
                 cannot be stored beside it",
                pm_path.display()
            ),
        });
    }
    let page = crate::proc::page_size();
    let pages_path = dir.path(Kind::Pages, pages_id);
    let mut pages = std::io::BufWriter::new(crate::images::writer::create_raw(&pages_path)?);
    let io_err = |source| {
        NsError::Image(crate::images::ImageError::io(
            &pages_path.display().to_string(),
            source,
        ))
    };
    let mut runs: Vec<(u64, u64, u32)> = Vec::new();
    for (i, chunk) in s.data.chunks(page).enumerate() {
        if chunk.iter().all(|&b| b == 0) {
            continue;
        }
        pages.write_all(&padded(chunk, page)).map_err(io_err)?;
        runs.push(((i * page) as u64, 1, crate::mem::pe::PRESENT));
    }
    pages.flush().map_err(io_err)?;
    let mut w = dir.writer(Kind::ShmemPagemap, shmid)?;
    w.write_message(&pb::PagemapHead {
        pages_id: pages_id as u32,
    })?;
    for e in crate::images::pagemap::merged(runs, page as u64) {
        w.write_message(&e)?;
    }
    w.finish()?;
    Ok(())
}

/// Read the namespace's images (`id`), checked, with every segment's
/// contents.
pub fn read(dir: &ImageDir, id: u32) -> Result<IpcNs, NsError> {
    let id64 = u64::from(id);
    let var: pb::IpcVarEntry = dir.read_one(Kind::IpcVar, id64)?;
    if var.sem_ctls.len() != 4 {
        return Err(NsError::Invalid {
            file: Kind::IpcVar.file_name(id64),
            what: format!("sem_ctls has {} values, not 4", var.sem_ctls.len()),
        });
    }
    // CRIU writes no ipcns-shm/sem/msg image for a namespace without
    // such objects: a missing one is an empty list.
    let present = |kind: Kind| dir.path(kind, id64).exists();
    let mut shm = Vec::new();
    let mut r = match present(Kind::IpcnsShm) {
        true => Some(dir.reader(Kind::IpcnsShm, id64)?),
        false => None,
    };
    while let Some(r) = r.as_mut()
        && let Some(entry) = r.next_message::<pb::IpcShmEntry>()?
    {
        let data = if entry.in_pagemaps == Some(true) {
            read_segment_pages(dir, &entry)?
        } else {
            let mut d = r.payload(entry.size.next_multiple_of(4))?;
            d.truncate(entry.size as usize);
            d
        };
        shm.push(Segment { entry, data });
    }
    let mut sem = Vec::new();
    let mut r = match present(Kind::IpcnsSem) {
        true => Some(dir.reader(Kind::IpcnsSem, id64)?),
        false => None,
    };
    while let Some(r) = r.as_mut()
        && let Some(entry) = r.next_message::<pb::IpcSemEntry>()?
    {
        let len = (u64::from(entry.nsems) * 2).next_multiple_of(8);
        let bytes = r.payload(len)?;
        let values = bytes
            .chunks_exact(2)
            .take(entry.nsems as usize)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect();
        sem.push(SemSet { entry, values });
    }
    let mut msg = Vec::new();
    let mut r = match present(Kind::IpcnsMsg) {
        true => Some(dir.reader(Kind::IpcnsMsg, id64)?),
        false => None,
    };
    while let Some(r) = r.as_mut()
        && let Some(entry) = r.next_message::<pb::IpcMsgEntry>()?
    {
        let mut messages = Vec::with_capacity(entry.qnum as usize);
        for n in 0..entry.qnum {
            let m = r
                .next_message::<pb::IpcMsg>()?
                .ok_or_else(|| NsError::Invalid {
                    file: Kind::IpcnsMsg.file_name(id64),
                    what: format!(
                        "queue {} ends after {n} of its {} messages",
                        entry.desc.id, entry.qnum
                    ),
                })?;
            let mut text = r.payload(u64::from(m.msize).next_multiple_of(8))?;
            text.truncate(m.msize as usize);
            messages.push((m.mtype, text));
        }
        msg.push(Queue { entry, messages });
    }
    Ok(IpcNs { var, shm, sem, msg })
}

/// A segment's contents from `pagemap-shmem-SHMID.img` and its pages.
fn read_segment_pages(dir: &ImageDir, e: &pb::IpcShmEntry) -> Result<Vec<u8>, NsError> {
    let shmid = u64::from(e.desc.id);
    let page = crate::proc::page_size() as u64;
    let pm = crate::images::pagemap::read(&dir.path(Kind::ShmemPagemap, shmid), page)?;
    let file = Kind::ShmemPagemap.file_name(shmid);
    if pm.in_parent {
        return Err(NsError::Invalid {
            file,
            what: "pages in a parent image are not restored yet".into(),
        });
    }
    let pages_path = dir.path(Kind::Pages, u64::from(pm.pages_id));
    let pages = std::fs::read(&pages_path).map_err(|source| {
        crate::images::ImageError::io(&pages_path.display().to_string(), source)
    })?;
    let mut data = vec![0u8; e.size as usize];
    for run in &pm.runs {
        let len = run.nr_pages * page;
        let (start, off) = (run.vaddr, run.offset);
        let in_pages = off
            .checked_add(len)
            .is_some_and(|end| end <= pages.len() as u64);
        if start % page != 0 || !in_pages || start >= e.size {
            return Err(NsError::Invalid {
                file: file.clone(),
                what: format!(
                    "run of {} pages at {start:#x} does not fit segment {shmid} of {} bytes \
                     or {}",
                    run.nr_pages,
                    e.size,
                    pages_path.display()
                ),
            });
        }
        let n = len.min(e.size - start) as usize;
        data[start as usize..start as usize + n]
            .copy_from_slice(&pages[off as usize..off as usize + n]);
    }
    Ok(data)
}

/// Fill the calling thread's (new, empty) IPC namespace: its sysctls,
/// then every object with its id, key, mode, owner and contents (the
/// `*_next_id` sysctl set before each is created, as CRIU does), then
/// the `*_next_id` values the namespace had.
pub fn restore_current(ns: &IpcNs) -> Result<(), NsError> {
    restore_var(&ns.var)?;
    for s in &ns.shm {
        restore_shm(s)?;
    }
    for s in &ns.sem {
        restore_sem(s)?;
    }
    for q in &ns.msg {
        restore_msg(q)?;
    }
    for (path, v) in [
        ("kernel/msg_next_id", ns.var.msg_next_id),
        ("kernel/sem_next_id", ns.var.sem_next_id),
        ("kernel/shm_next_id", ns.var.shm_next_id),
    ] {
        if let Some(v) = v {
            write_sysctl(path, &v.to_string())?;
        }
    }
    Ok(())
}

fn restore_var(v: &pb::IpcVarEntry) -> Result<(), NsError> {
    let sem: Vec<String> = v.sem_ctls.iter().map(u32::to_string).collect();
    write_sysctl("kernel/sem", &sem.join(" "))?;
    write_sysctl("kernel/msgmax", &v.msg_ctlmax.to_string())?;
    write_sysctl("kernel/msgmnb", &v.msg_ctlmnb.to_string())?;
    if std::path::Path::new("/proc/sys/kernel/auto_msgmni").exists() {
        write_sysctl("kernel/auto_msgmni", &v.auto_msgmni.to_string())?;
    }
    write_sysctl("kernel/msgmni", &v.msg_ctlmni.to_string())?;
    write_sysctl("kernel/shmmax", &v.shm_ctlmax.to_string())?;
    write_sysctl("kernel/shmall", &v.shm_ctlall.to_string())?;
    write_sysctl("kernel/shmmni", &v.shm_ctlmni.to_string())?;
    write_sysctl("kernel/shm_rmid_forced", &v.shm_rmid_forced.to_string())?;
    if std::path::Path::new(MQUEUE_DIR).exists() {
        write_sysctl("fs/mqueue/queues_max", &v.mq_queues_max.to_string())?;
        write_sysctl("fs/mqueue/msg_max", &v.mq_msg_max.to_string())?;
        write_sysctl("fs/mqueue/msgsize_max", &v.mq_msgsize_max.to_string())?;
        if let (Some(m), Some(s)) = (v.mq_msg_default, v.mq_msgsize_default) {
            write_sysctl("fs/mqueue/msg_default", &m.to_string())?;
            write_sysctl("fs/mqueue/msgsize_default", &s.to_string())?;
        }
    }
    Ok(())
}

/// Create an object with `desc`'s id through `create` (after setting
/// the kind's `*_next_id`), then give it `desc`'s owner (and `patch`
/// what else `IPC_SET` takes).
fn create_with_id(
    kind: IpcKind,
    desc: &pb::IpcDescEntry,
    create: impl FnOnce(u32) -> Result<i32, rustix::io::Errno>,
    patch: impl FnOnce(&mut [u8; ipc::DS_LEN]),
) -> Result<i32, NsError> {
    let (name, sysctl) = match kind {
        IpcKind::Shm => ("shm", "kernel/shm_next_id"),
        IpcKind::Sem => ("sem", "kernel/sem_next_id"),
        IpcKind::Msg => ("msg", "kernel/msg_next_id"),
    };
    write_sysctl(sysctl, &desc.id.to_string())?;
    let flags = (desc.mode & 0o777) | IPC_CREAT | IPC_EXCL;
    let id = create(flags).map_err(NsError::sys(format!(
        "create {name} id {} (key {:#x})",
        desc.id, desc.key
    )))?;
    if id as u32 != desc.id {
        return Err(NsError::Lost {
            what: format!("{name} id {} was created as id {id}", desc.id),
        });
    }
    let mut ds = ipc::stat(kind, id).map_err(NsError::sys(format!("{name} id {id}: IPC_STAT")))?;
    ds[ipc::PERM_UID..ipc::PERM_UID + 4].copy_from_slice(&desc.uid.to_ne_bytes());
    ds[ipc::PERM_GID..ipc::PERM_GID + 4].copy_from_slice(&desc.gid.to_ne_bytes());
    patch(&mut ds);
    ipc::set(kind, id, &ds).map_err(NsError::sys(format!("{name} id {id}: IPC_SET")))?;
    Ok(id)
}

fn restore_shm(s: &Segment) -> Result<(), NsError> {
    let d = &s.entry.desc;
    let size = s.entry.size;
    let id = create_with_id(
        IpcKind::Shm,
        d,
        |flags| ipc::shmget(d.key, size, flags),
        |_| {},
    )?;
    if s.data.iter().any(|&b| b != 0) {
        let mut att = ipc::ShmAttach::new(id, size, false)
            .map_err(NsError::sys(format!("shmat(shm id {id})")))?;
        let n = s.data.len().min(size as usize);
        att.bytes_mut()[..n].copy_from_slice(&s.data[..n]);
    }
    Ok(())
}

fn restore_sem(s: &SemSet) -> Result<(), NsError> {
    let d = &s.entry.desc;
    let nsems = s.entry.nsems;
    let id = create_with_id(
        IpcKind::Sem,
        d,
        |flags| ipc::semget(d.key, nsems, flags),
        |_| {},
    )?;
    ipc::sem_setall(id, &s.values).map_err(NsError::sys(format!("semctl(sem id {id}, SETALL)")))
}

fn restore_msg(q: &Queue) -> Result<(), NsError> {
    let d = &q.entry.desc;
    let qbytes = u64::from(q.entry.qbytes);
    let id = create_with_id(
        IpcKind::Msg,
        d,
        |flags| ipc::msgget(d.key, flags),
        |ds| ds[ipc::MSG_QBYTES..ipc::MSG_QBYTES + 8].copy_from_slice(&qbytes.to_ne_bytes()),
    )?;
    for (n, (mtype, text)) in q.messages.iter().enumerate() {
        ipc::msgsnd(id, *mtype as i64, text)
            .map_err(NsError::sys(format!("msgsnd(msg id {id}, message {n})")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_as_the_kernel_prints_them() {
        let row: Vec<String> = "      4660          0   640       5000  100  100 0 1000 1001 0 0"
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let d = desc("shm", &row, 7).unwrap();
        assert_eq!(
            (d.key, d.id, d.mode, d.uid, d.gid),
            (4660, 0, 0o640, 1000, 1001)
        );
        let neg: Vec<String> = ["-1", "32768", "600", "3", "0", "0", "0", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let d = desc("sem", &neg, 4).unwrap();
        assert_eq!((d.key, d.id, d.mode), (u32::MAX, 32768, 0o600));
        assert!(desc("sem", &neg[..5], 4).is_err());
    }

    #[test]
    fn payloads_are_padded() {
        assert_eq!(padded(b"first\0", 8).len(), 8);
        assert_eq!(padded(b"12345678", 8).len(), 8);
        assert_eq!(padded(b"", 8).len(), 0);
    }
}
