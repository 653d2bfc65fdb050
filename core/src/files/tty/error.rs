//! What goes wrong making a terminal again, for [`crate::files::FileError`]
//! to name the file id it happened to.

use rustix::io::Errno;

/// What went wrong making a terminal again.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    /// A call on the terminal (or its open) that failed.
    #[error("{what}: {source}")]
    Sys { what: String, source: Errno },
    #[error("index {index} is in use ({ptmx} gave {got}): free /dev/pts/{index} first")]
    IndexInUse { ptmx: String, index: u32, got: i32 },
    #[error("{ptmx} did not give index {index} in {tries} tries")]
    IndexNotGiven {
        ptmx: String,
        index: u32,
        tries: usize,
    },
    /// A step of making pty `index` that failed.
    #[error("pts {index}: {source}")]
    Pty { index: u32, source: Box<TtyError> },
}

impl TtyError {
    pub(super) fn sys(what: impl Into<String>, source: Errno) -> Self {
        Self::Sys {
            what: what.into(),
            source,
        }
    }

    pub(super) fn call(what: &str) -> impl FnOnce(Errno) -> Self + '_ {
        move |source| Self::sys(what, source)
    }
}
