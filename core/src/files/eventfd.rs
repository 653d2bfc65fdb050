//! eventfd (`anon_inode:[eventfd]`): its counter and flags, from fdinfo
//! (`eventfd-count`, `eventfd-semaphore`).

use std::os::fd::OwnedFd;

use rustix::event::EventfdFlags;

use super::{SysFail, fail, set_status_flags};
use crate::images::pb;
use crate::proc::fdinfo::FdInfo;

/// `EFD_SEMAPHORE`. It is not an `f_flags` bit, but bit 0 (`O_WRONLY`) is
/// never set on an eventfd (always `O_RDWR`), so the entry's `flags`
/// carries it there, as `eventfd()` takes it.
pub const EFD_SEMAPHORE: u32 = linux_raw_sys::general::EFD_SEMAPHORE;

/// The `files.img` entry of an eventfd with id `id`; `flags` are the
/// file's `O_*` flags without `O_CLOEXEC`.
pub fn dump(id: u32, flags: u32, info: &FdInfo) -> Option<pb::FileEntry> {
    let e = info.eventfd?;
    let sem = match e.semaphore {
        Some(true) => EFD_SEMAPHORE,
        Some(false) => 0,
        None => {
            crate::pr_warn!(
                "eventfd (file {id}): this kernel's fdinfo does not show eventfd-semaphore; \
                 an EFD_SEMAPHORE flag is not kept"
            );
            0
        }
    };
    Some(pb::FileEntry {
        r#type: pb::FdTypes::Eventfd as i32,
        id,
        efd: Some(pb::EventfdFileEntry {
            id,
            flags: flags | sem,
            fown: pb::FownEntry::default(),
            counter: e.count,
        }),
        ..Default::default()
    })
}

/// A new eventfd (close-on-exec in the tool) with the dumped counter.
pub fn open(e: &pb::EventfdFileEntry) -> Result<OwnedFd, SysFail> {
    let mut flags = EventfdFlags::CLOEXEC;
    if e.flags & EFD_SEMAPHORE != 0 {
        flags |= EventfdFlags::SEMAPHORE;
    }
    // eventfd() takes a 32-bit start value; the counter is 64 bits, so it
    // is added with a write (at most 2^64 - 2, as the kernel keeps it).
    let fd = rustix::event::eventfd(0, flags).map_err(fail("eventfd"))?;
    if e.counter != 0 {
        rustix::io::write(&fd, &e.counter.to_ne_bytes()).map_err(fail("write(eventfd)"))?;
    }
    set_status_flags(&fd, e.flags)?;
    Ok(fd)
}

/// The `EVENTFD` kind: `anon_inode:[eventfd]` fds.
pub struct Eventfd;

impl super::kind::FileKind for Eventfd {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Eventfd
    }

    fn claims(&self, fd: &super::table::FdView<'_>) -> bool {
        fd.anon_name() == Some("[eventfd]")
    }

    fn dump(
        &self,
        files: &mut super::table::FileTable,
        v: &super::table::FdView<'_>,
    ) -> Result<u32, super::table::FilesError> {
        let id = files.next_id();
        let e = dump(id, v.ctx.flags, v.info).ok_or_else(|| v.fdinfo_lacks("an eventfd"))?;
        files.entries.push(e);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &super::FileImages) -> Option<(pb::FownEntry, u32)> {
        e.efd.as_ref().map(|x| (x.fown, x.flags))
    }

    fn open(
        &self,
        _: &mut super::Opener<'_>,
        e: &pb::FileEntry,
    ) -> Result<OwnedFd, super::FileError> {
        let x = e
            .efd
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, "an eventfd"))?;
        open(x).map_err(|f| super::restore_err(e.id, "an eventfd", f.to_string()))
    }
}
