//! signalfd (`anon_inode:[signalfd]`): its signal mask (fdinfo `sigmask`)
//! and flags.

use std::os::fd::OwnedFd;

use super::{SysFail, fail, set_status_flags};
use crate::images::pb;
use crate::proc::fdinfo::FdInfo;

/// `SFD_CLOEXEC` (= `O_CLOEXEC`).
// `SFD_CLOEXEC` is defined as `O_CLOEXEC` (linux/signalfd.h).
const SFD_CLOEXEC: u32 = linux_raw_sys::general::O_CLOEXEC;

/// The `files.img` entry of a signalfd with id `id`; `flags` are the
/// file's `O_*` flags without `O_CLOEXEC`.
pub fn dump(id: u32, flags: u32, info: &FdInfo) -> Option<pb::FileEntry> {
    let sigmask = info.signalfd_sigmask?;
    Some(pb::FileEntry {
        r#type: pb::FdTypes::Signalfd as i32,
        id,
        sgfd: Some(pb::SignalfdEntry {
            id,
            flags,
            fown: pb::FownEntry::default(),
            sigmask,
        }),
        ..Default::default()
    })
}

/// A new signalfd for the dumped mask.
pub fn open(e: &pb::SignalfdEntry) -> Result<OwnedFd, SysFail> {
    let fd = crate::sys::anonfd::signalfd(e.sigmask, SFD_CLOEXEC).map_err(fail("signalfd4"))?;
    set_status_flags(&fd, e.flags)?;
    Ok(fd)
}

/// The `SIGNALFD` kind: `anon_inode:[signalfd]` fds.
pub struct Signalfd;

impl super::kind::FileKind for Signalfd {
    fn fd_type(&self) -> pb::FdTypes {
        pb::FdTypes::Signalfd
    }

    fn claims(&self, fd: &super::table::FdView<'_>) -> bool {
        fd.anon_name() == Some("[signalfd]")
    }

    fn dump(
        &self,
        files: &mut super::table::FileTable,
        v: &super::table::FdView<'_>,
    ) -> Result<u32, super::table::FilesError> {
        let id = files.next_id();
        let e = dump(id, v.ctx.flags, v.info).ok_or_else(|| v.fdinfo_lacks("a signalfd"))?;
        files.entries.push(e);
        Ok(id)
    }

    fn owner(&self, e: &pb::FileEntry, _: &super::FileImages) -> Option<(pb::FownEntry, u32)> {
        e.sgfd.as_ref().map(|x| (x.fown, x.flags))
    }

    fn open(
        &self,
        _: &mut super::Opener<'_>,
        e: &pb::FileEntry,
    ) -> Result<OwnedFd, super::FileError> {
        let x = e
            .sgfd
            .as_ref()
            .ok_or_else(|| super::kind::no_body(e, "a signalfd"))?;
        open(x).map_err(|f| super::restore_err(e.id, "a signalfd", f.to_string()))
    }
}
