//! What a kind of file is (CRIU's `fdtype_ops`): every kind of open file
//! is one module under `files/` holding its dump half and its restore
//! half, registered by one line in [`super::KINDS`]. The dump and restore
//! pipelines iterate that table and never name a kind: a new kind is a
//! new module implementing [`FileKind`] plus its line in the table.

use std::os::fd::OwnedFd;

use super::table::{FdOpts, FdView, FileTable, FilesError};
use super::{FileError, FileImages, Opener};
use crate::blob::restorer_abi::RawSyscall;
use crate::images::pb;

/// One kind of file object.
pub trait FileKind: Sync {
    /// Its `fd_types` value, in `fdinfo_entry.type` and `file_entry.type`.
    fn fd_type(&self) -> pb::FdTypes;

    /// Dump: is fd `fd` of this kind? The first kind of [`KINDS`] that
    /// says yes dumps it, so a kind listed earlier may take fds a later,
    /// more general one would also take (a memfd before a regular file).
    fn claims(&self, fd: &FdView<'_>) -> bool;

    /// Dump: fd `fd` is a file not seen before in this dump; adds its
    /// object (and whatever the object needs, data images included) to
    /// `files` and returns its file id. A kind may return the id of an
    /// object it already holds (one pipe end seen from two tasks).
    fn dump(&self, files: &mut FileTable, fd: &FdView<'_>) -> Result<u32, FilesError>;

    /// Restore: the owner (`F_SETOWN`/`F_SETSIG`) and status flags of
    /// entry `e` (`img` for entries whose path lives in another entry).
    fn owner(&self, e: &pb::FileEntry, img: &FileImages) -> Option<(pb::FownEntry, u32)>;

    /// Restore: checks what can be checked of the kind's entries in
    /// `img` before anything is created (a damaged or hand-made image);
    /// `reg_names` tells whether a file id is a regular file's entry.
    fn check(&self, img: &FileImages, reg_names: &dyn Fn(u32) -> bool) -> Result<(), FileError> {
        let _ = (img, reg_names);
        Ok(())
    }

    /// Restore: creates the object of entry `e` in the tool and returns
    /// its fd (one call per file id; objects shared by several ids, like
    /// a pipe's two ends, are made once through `opener`).
    fn open(&self, opener: &mut Opener<'_>, e: &pb::FileEntry) -> Result<OwnedFd, FileError>;

    /// Restore: for an object that can only be made once every task of
    /// the tree exists (a pidfd needs its process), the call that makes
    /// it, which the task itself runs at `STAGE_FD_STATE` and puts at the
    /// place of the fd [`FileKind::open`] gave as a placeholder.
    fn late_fd(&self, e: &pb::FileEntry) -> Result<Option<LateFd>, FileError> {
        let _ = e;
        Ok(None)
    }

    /// Dump: once every task's fds are in `files`, what the kind can only
    /// do over the whole tree (match sockets with their peers, terminals
    /// with their sessions).
    fn finish(&self, files: &mut FileTable, opts: &FdOpts) -> Result<(), FilesError> {
        let _ = (files, opts);
        Ok(())
    }
}

/// A syscall that returns a new fd (see [`FileKind::late_fd`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LateFd {
    pub nr: u64,
    pub args: [u64; 6],
}

impl LateFd {
    /// The restorer's calls making fd `fd` with this call: the new fd is
    /// saved, put in its placeholder's place (`dup3` replaces it) and
    /// closed where it was made.
    pub fn calls(self, fd: u32, cloexec: bool) -> [RawSyscall; 3] {
        use crate::blob::restorer_abi::{RAW_ARG0_SAVED, RAW_SAVE};
        [
            RawSyscall {
                nr: self.nr | RAW_SAVE,
                args: self.args,
            },
            RawSyscall {
                nr: criu_arch::nr::DUP3 as u64 | RAW_ARG0_SAVED,
                args: [0, u64::from(fd), dup3_flags(cloexec), 0, 0, 0],
            },
            RawSyscall {
                nr: criu_arch::nr::CLOSE as u64 | RAW_ARG0_SAVED,
                args: [0; 6],
            },
        ]
    }
}

/// The restorer's call making fd `fd` another fd of the open file made
/// just before at `first`.
pub fn late_dup(first: u32, fd: u32, cloexec: bool) -> RawSyscall {
    RawSyscall {
        nr: criu_arch::nr::DUP3 as u64,
        args: [
            u64::from(first),
            u64::from(fd),
            dup3_flags(cloexec),
            0,
            0,
            0,
        ],
    }
}

fn dup3_flags(cloexec: bool) -> u64 {
    if cloexec {
        u64::from(linux_raw_sys::general::O_CLOEXEC)
    } else {
        0
    }
}

/// The error for an entry whose type says one kind but whose body is
/// missing (a damaged or hand-made `files.img`).
pub fn no_body(e: &pb::FileEntry, kind: &'static str) -> FileError {
    super::restore_err(
        e.id,
        kind,
        format!("its entry has type {} but no {kind} body", e.r#type),
    )
}

#[cfg(test)]
mod tests {
    use super::super::{KINDS, of_type};
    use super::*;

    #[test]
    fn every_kind_has_one_fd_type() {
        let mut seen = std::collections::HashSet::new();
        for k in KINDS.iter().filter(|k| k.fd_type() != pb::FdTypes::Unixsk) {
            assert!(seen.insert(k.fd_type() as i32), "{:?} twice", k.fd_type());
        }
        assert!(of_type(pb::FdTypes::Pipe as i32).is_some());
        assert!(of_type(pb::FdTypes::Packetsk as i32).is_some());
        assert!(of_type(pb::FdTypes::Tunf as i32).is_none());
    }
}
