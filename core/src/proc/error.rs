//! Errors of the /proc layer: which file, which line, and what was wrong.

use rustix::io::Errno;

/// What was wrong with one line (or the whole text) of a /proc file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A field the format always has is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field is present but does not parse (bad digits, overflow, unknown
    /// keyword). `text` is a bounded, lossy copy of the offending bytes.
    #[error("bad {what}: {text:?}")]
    Bad { what: &'static str, text: String },
    /// The text does not have the expected shape.
    #[error("{0}")]
    Unexpected(&'static str),
    /// More entries than the bound this parser accepts.
    #[error("more than {0} entries")]
    TooMany(usize),
}

impl ParseError {
    /// A `Bad` error quoting at most [`SNIPPET_MAX`] bytes of `text`.
    pub(crate) fn bad(what: &'static str, text: &[u8]) -> ParseError {
        ParseError::Bad {
            what,
            text: snippet(text),
        }
    }
}

/// Longest quote of input kept in an error, so errors stay small whatever
/// the input.
pub const SNIPPET_MAX: usize = 80;

/// A bounded, lossy rendering of `bytes` for messages.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(SNIPPET_MAX)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > SNIPPET_MAX {
        s.push('…');
    }
    s
}

/// A parse error with the 1-based line it happened on (0: the whole text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextError {
    pub line: usize,
    pub error: ParseError,
}

impl TextError {
    pub(crate) fn new(line: usize, error: ParseError) -> TextError {
        TextError { line, error }
    }

    /// Attach the file this text came from.
    pub fn in_file(self, path: impl Into<String>) -> ProcError {
        ProcError::Parse {
            path: path.into(),
            line: self.line,
            error: self.error,
        }
    }
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

impl std::error::Error for TextError {}

/// An error reading or parsing a file under /proc.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// A system call on the file failed (`ESRCH`/`ENOENT` usually mean the
    /// task is gone, see [`ProcError::is_gone`]).
    #[error("{path}: {errno}")]
    Io { path: String, errno: Errno },
    /// The content did not parse.
    #[error("{path}{}: {error}", line_suffix(*line))]
    Parse {
        path: String,
        line: usize,
        error: ParseError,
    },
    /// The file is larger than this reader accepts.
    #[error("{path}: larger than {limit} bytes")]
    TooLarge { path: String, limit: usize },
    /// One line is longer than the line reader's buffer.
    #[error("{path}:{line}: line longer than {limit} bytes")]
    LineTooLong {
        path: String,
        line: usize,
        limit: usize,
    },
}

fn line_suffix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

impl ProcError {
    pub(crate) fn io(path: impl Into<String>, errno: Errno) -> ProcError {
        ProcError::Io {
            path: path.into(),
            errno,
        }
    }

    pub(crate) fn parse(path: impl Into<String>, line: usize, error: ParseError) -> ProcError {
        ProcError::Parse {
            path: path.into(),
            line,
            error,
        }
    }

    /// The errno of a failed system call, if that is what this is.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            ProcError::Io { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// True when the file is missing because the task exited (or never
    /// existed): `ESRCH` or `ENOENT` from the kernel.
    pub fn is_gone(&self) -> bool {
        matches!(self.errno(), Some(Errno::SRCH) | Some(Errno::NOENT))
    }

    /// The /proc path this error is about.
    pub fn path(&self) -> &str {
        match self {
            ProcError::Io { path, .. }
            | ProcError::Parse { path, .. }
            | ProcError::TooLarge { path, .. }
            | ProcError::LineTooLong { path, .. } => path,
        }
    }
}
