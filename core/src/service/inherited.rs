//! Taking ownership of a file descriptor inherited by number (`criu swrk FD`,
//! `--status-fd FD`).
//!
//! This is the one `unsafe` of the service layer; it belongs in core's
//! syscall layer (`core/src/sys`) and should move there.

use std::os::fd::{FromRawFd, OwnedFd};

use rustix::io::Errno;

/// Adopts fd `raw`, which the process that exec'ed us left open for us.
/// The standard streams are refused (they are not ours to close), as is a
/// number with no open file behind it.
pub fn adopt(raw: i32) -> Result<OwnedFd, Errno> {
    if raw <= 2 {
        return Err(Errno::BADF);
    }
    // Only an fd that is really open may be adopted: /proc/self/fd/N is a
    // symlink exactly for the open ones.
    std::fs::symlink_metadata(format!("/proc/self/fd/{raw}")).map_err(|_| Errno::BADF)?;
    // SAFETY: `raw` is open (checked above) and was inherited across exec:
    // nothing in this process has wrapped it in an owning type (std and our
    // code open everything close-on-exec, so no inherited number is in use by
    // them), and the caller adopts each inherited number once, from argv.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
