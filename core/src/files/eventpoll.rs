//! epoll instances (`anon_inode:[eventpoll]`) and the files they watch,
//! from fdinfo `tfd: events: data:` lines.
//!
//! An epoll item is keyed by (file, fd number): the instance is created in
//! the tool, and its targets are registered by the restored task itself
//! once its fds have their final numbers (see [`ctl_add_args`]).

use std::os::fd::OwnedFd;

use rustix::process::Pid;

use super::{FileError, SysFail, fail, set_status_flags};
use crate::images::pb;
use crate::proc::fdinfo::FdInfo;
use crate::sys::kcmp::{KcmpEpollSlot, KcmpOrder, kcmp_epoll_tfd};

/// Why an epoll instance cannot be dumped: a target that cannot be
/// registered again as it was.
#[derive(Debug, thiserror::Error)]
pub enum EpollError {
    #[error("bad pid {0}")]
    BadPid(i32),
    #[error("it watches fd {0}, which the task has closed (a closed target still registered)")]
    TargetClosed(i32),
    #[error(
        "it watches a file registered as fd {0}, which is now another file (the target was \
         closed and its number reused)"
    )]
    TargetReused(i32),
    /// As [`EpollError::TargetReused`], found by the inode (no
    /// `KCMP_EPOLL_TFD` in this kernel).
    #[error("it watches fd {0}, which is now another file")]
    TargetReplaced(i32),
}

/// `EPOLL_CTL_ADD`.
pub const EPOLL_CTL_ADD: u64 = linux_raw_sys::general::EPOLL_CTL_ADD as u64;

/// The `files.img` entry of epoll fd `efd` (file id `id`) of task `pid`,
/// whose open fds are `fds`. A target that is not an open fd of the task
/// any more (closed while still registered, or its number reused for
/// another file) cannot be registered again: refused with the reason.
pub fn dump(
    pid: i32,
    efd: i32,
    id: u32,
    flags: u32,
    info: &FdInfo,
    fds: &[i32],
) -> Result<pb::FileEntry, EpollError> {
    let task = Pid::from_raw(pid).ok_or(EpollError::BadPid(pid))?;
    let mut tfds = Vec::with_capacity(info.epoll_targets.len());
    for t in &info.epoll_targets {
        if !fds.contains(&t.tfd) {
            return Err(EpollError::TargetClosed(t.tfd));
        }
        let slot = KcmpEpollSlot {
            efd: efd as u32,
            tfd: t.tfd as u32,
            toff: 0,
        };
        match kcmp_epoll_tfd(task, t.tfd as u32, task, &slot) {
            Ok(KcmpOrder::Equal) => {}
            Ok(_) => {
                return Err(EpollError::TargetReused(t.tfd));
            }
            // No KCMP_EPOLL_TFD here: the inode fdinfo prints must match.
            Err(_) => {
                let st = std::fs::metadata(format!("/proc/{pid}/fd/{}", t.tfd));
                use std::os::unix::fs::MetadataExt;
                if t.ino
                    .is_some_and(|ino| st.map(|m| m.ino()).ok() != Some(ino))
                {
                    return Err(EpollError::TargetReplaced(t.tfd));
                }
            }
        }
        tfds.push(pb::EventpollTfdEntry {
            id,
            tfd: t.tfd as u32,
            events: t.events,
            data: t.data,
            dev: t.sdev,
            inode: t.ino,
            pos: t.pos.map(|p| p as u64),
        });
    }
    Ok(pb::FileEntry {
        r#type: pb::FdTypes::Eventpoll as i32,
        id,
        epfd: Some(pb::EventpollFileEntry {
            id,
            flags,
            fown: pb::FownEntry::default(),
            tfd: tfds,
        }),
        ..Default::default()
    })
}

/// A new, empty epoll instance.
pub fn open(e: &pb::EventpollFileEntry) -> Result<OwnedFd, SysFail> {
    use rustix::event::epoll;
    let fd = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(fail("epoll_create1"))?;
    set_status_flags(&fd, e.flags)?;
    Ok(fd)
}

/// `struct epoll_event` as the kernel reads it: packed on x86_64 (data at
/// offset 4, 12 bytes), naturally aligned elsewhere (data at 8, 16 bytes);
/// linux-raw-sys has each arch's layout.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollEvent(pub [u8; 16]);

impl EpollEvent {
    pub fn new(events: u32, data: u64) -> EpollEvent {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&events.to_ne_bytes());
        type Kernel = linux_raw_sys::general::epoll_event;
        const _: () = assert!(size_of::<Kernel>() <= 16);
        let at = std::mem::offset_of!(Kernel, data);
        b[at..at + 8].copy_from_slice(&data.to_ne_bytes());
        EpollEvent(b)
    }
}

/// The registrations of epoll instance `e`, which the task holds as fd
/// `epfd`: `(target fd, event)`, for `epoll_ctl(epfd, EPOLL_CTL_ADD,
/// target, &event)` in the task.
pub fn ctl_add_args(e: &pb::EventpollFileEntry) -> Vec<(u32, EpollEvent)> {
    e.tfd
        .iter()
        .map(|t| (t.tfd, EpollEvent::new(t.events, t.data)))
        .collect()
}

/// The `EVENTPOLL` kind: `anon_inode:[eventpoll]` fds. Their targets are
/// registered by the restored task itself, under the final fd numbers
/// (see the restore's fd-state stage).
pub struct Eventpoll;

impl super::kind::FileKind for Eventpoll {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Eventpoll
    }

    fn claims(&self, fd: &super::table::FdView<'_>) -> bool {
        fd.anon_name() == Some("[eventpoll]")
    }

    fn dump(
        &self,
        files: &mut super::table::FileTable,
        v: &super::table::FdView<'_>,
    ) -> Result<u32, super::table::FilesError> {
        let id = files.next_id();
        let e = dump(v.ctx.pid, v.ctx.fd, id, v.ctx.flags, v.info, v.task_fds)
            .map_err(|why| v.ctx.fail("an epoll instance", why))?;
        files.entries.push(e);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &super::FileImages) -> Option<(pb::FownEntry, u32)> {
        e.epfd.as_ref().map(|x| (x.fown, x.flags))
    }

    fn open(
        &self,
        _: &mut super::Opener<'_>,
        e: &pb::FileEntry,
    ) -> Result<OwnedFd, super::FileError> {
        let x = e
            .epfd
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, "an epoll instance"))?;
        open(x).map_err(|f| super::restore_err(e.id, "an epoll instance", f.to_string()))
    }
}

/// The restorer's `epoll_ctl(EPOLL_CTL_ADD)` of each (epoll fd, target
/// fd) of `regs`, their events laid out one after the other from `events`
/// (an address in the task).
pub fn ctl_add_calls(
    regs: &[(u32, u32)],
    events: u64,
) -> impl Iterator<Item = crate::blob::restorer_abi::RawSyscall> + '_ {
    regs.iter().enumerate().map(
        move |(i, &(epfd, tfd))| crate::blob::restorer_abi::RawSyscall {
            nr: criu_arch::nr::EPOLL_CTL as u64,
            args: [
                u64::from(epfd),
                EPOLL_CTL_ADD,
                u64::from(tfd),
                events + (i * size_of::<EpollEvent>()) as u64,
                0,
                0,
            ],
        },
    )
}

/// An epoll instance shared by several tasks (inherited across fork) is
/// one file: its targets are registered once, by the first task (in
/// pstree order) that holds it and an fd under every target number, like
/// CRIU, whose dump reads the targets in one task holding it. A shared
/// instance no such task holds cannot be restored.
pub fn owners<'t>(
    tasks: impl IntoIterator<Item = &'t crate::images::set::TaskImages>,
) -> Result<std::collections::HashMap<u32, u32>, FileError> {
    let mut owners = std::collections::HashMap::new();
    let mut missing = std::collections::BTreeMap::new();
    for t in tasks {
        let has_fd = |fd: u32| t.fdinfo.iter().any(|f| f.fd == fd);
        for fi in &t.fdinfo {
            let Some(ep) = epoll_of(t, fi.id) else {
                continue;
            };
            if owners.contains_key(&fi.id) {
                continue;
            }
            match ep.tfd.iter().find(|x| !has_fd(x.tfd)) {
                None => {
                    owners.insert(fi.id, t.pstree.pid);
                    missing.remove(&fi.id);
                }
                Some(x) => {
                    missing.entry(fi.id).or_insert((t.pstree.pid, x.tfd));
                }
            }
        }
    }
    if let Some((id, (pid, tfd))) = missing.into_iter().next() {
        return Err(FileError::Image {
            file: "files.img".into(),
            what: format!(
                "epoll instance {id} watches fd {tfd}, which task {pid} holding it \
             does not hold, nor does any other task holding it (a closed target still \
             registered)"
            ),
        });
    }
    Ok(owners)
}

/// The epoll instance file `id` of task `t` is, if it is one.
fn epoll_of(t: &crate::images::set::TaskImages, id: u32) -> Option<&pb::EventpollFileEntry> {
    t.other_files.entries.get(&id).and_then(|f| f.epfd.as_ref())
}

/// The epoll registrations task `t` makes: their events, and (epoll fd,
/// target fd) of each, in order. One file, one set of registrations
/// (under its first fd), in one task of the tree.
/// `owners`: see [`owners`].
pub fn registrations(
    t: &crate::images::set::TaskImages,
    owners: &std::collections::HashMap<u32, u32>,
) -> (Vec<EpollEvent>, Vec<(u32, u32)>) {
    let (mut events, mut epoll) = (Vec::new(), Vec::new());
    let mut done = std::collections::HashSet::new();
    for fi in &t.fdinfo {
        let Some(ep) = epoll_of(t, fi.id) else {
            continue;
        };
        if owners.get(&fi.id) != Some(&t.pstree.pid) || !done.insert(fi.id) {
            continue;
        }
        for (tfd, ev) in ctl_add_args(ep) {
            epoll.push((fi.fd, tfd));
            events.push(ev);
        }
    }
    (events, epoll)
}
