//! A task's fds for `fdinfo-<id>.img`, their file objects added to the
//! dump's [`FileTable`] by the kind of [`crate::files::KINDS`] that
//! claims each; fds sharing one open file description (dup, inherited
//! across fork) share one object, found with kcmp. An fd no kind claims
//! is refused, naming it.

use crate::files::file_ids::{FdKey, Lookup};
pub use crate::files::table::FdOpts;
use crate::files::table::{FdView, FileTable, FilesError};
use crate::files::task_fds::{FdRead, read_fds};
use crate::images::pb;
use crate::proc::ProcDir;

/// `O_CLOEXEC`: per-fd, stored in `fdinfo_entry.flags` as `FD_CLOEXEC`.
const O_CLOEXEC: u32 = linux_raw_sys::general::O_CLOEXEC;
const FD_CLOEXEC: u32 = linux_raw_sys::general::FD_CLOEXEC;

/// The task's fds as `fdinfo` entries, their file objects added to `files`.
/// Fds sharing one open file description (dup, inherited) share its id.
pub fn collect_fds(
    proc: &ProcDir,
    files: &mut FileTable,
    opts: FdOpts,
) -> Result<Vec<pb::FdinfoEntry>, FilesError> {
    let pid = proc.pid();
    let mut out: Vec<pb::FdinfoEntry> = Vec::new();
    let mut fds = proc.fds()?;
    // The dirty tracker of an iterative dump is ours, not the task's: it
    // is not saved (a restored task has none).
    fds.retain(|&fd| {
        let ours = crate::mem::dirty::is_tracker(pid, fd);
        if ours {
            crate::pr_debug!("Skipping fd {fd} of task {pid}: its memory dirty tracker");
        }
        !ours
    });
    for r in read_fds(proc, &fds)? {
        let FdRead {
            fd,
            target,
            info,
            meta,
            family,
            fown,
        } = r;
        // What a description shows alike in all its fds groups candidates;
        // kcmp tells the open files apart.
        let key = FdKey {
            ino: info.ino.unwrap_or(0),
            pos: info.pos,
            flags: info.flags & !O_CLOEXEC,
        };
        let (shared, slot) = match files.seen_fds.find(pid, fd, key) {
            Lookup::Shared(id) => (Some(id), None),
            Lookup::New(slot) => (None, Some(slot)),
        };
        let fd_flags = if info.flags & O_CLOEXEC != 0 {
            FD_CLOEXEC
        } else {
            0
        };
        let (id, kind) = match shared {
            Some(id) => (id, files.file_kind(id)),
            None => {
                let view = FdView {
                    ctx: crate::files::FdCtx {
                        pid,
                        fd,
                        flags: info.flags & !O_CLOEXEC,
                    },
                    target: &target,
                    info: &info,
                    meta: meta.as_ref(),
                    family,
                    task_fds: &fds,
                    opts,
                };
                let Some(kind) = crate::files::claiming(&view) else {
                    // A copy of the fd that could not be taken says more
                    // than "unknown".
                    fown?;
                    return Err(view.unsupported());
                };
                let id = kind.dump(files, &view)?;
                if let Some(fown) = fown? {
                    files.fowns.push((id, fown));
                }
                (id, kind.fd_type() as i32)
            }
        };
        files.locks.note(
            pid,
            fd,
            id,
            info.ino.unwrap_or(0),
            &info.locks,
            opts.file_locks,
        )?;
        files.seen_fds.insert(pid, fd, key, id, slot);
        out.push(pb::FdinfoEntry {
            id,
            flags: fd_flags,
            r#type: kind,
            fd: fd as u32,
            ..Default::default()
        });
    }
    Ok(out)
}
