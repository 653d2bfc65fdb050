//! Errors of the image layer. Each names the file and, where it matters,
//! the byte offset, so that a user can find the broken spot with `xxd`.

use std::io;

/// Everything that can go wrong reading or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("{file}: file ends inside the image header (offset {offset})")]
    ShortHeader { file: String, offset: u64 },
    #[error("{file}: wrong magic at offset {offset}: expected {expected}, found {found}")]
    WrongMagic {
        file: String,
        offset: u64,
        expected: String,
        found: String,
    },
    #[error(
        "{file}: unknown magic {found:#x} at offset {offset}; maybe a raw image (pages-*.img)?"
    )]
    UnknownMagic {
        file: String,
        offset: u64,
        found: u32,
    },
    #[error("{file}: image {name} has no entries (raw data), nothing to decode")]
    RawImage { file: String, name: &'static str },
    #[error("{file}: truncated entry length at offset {offset}: {got} of 4 bytes")]
    TruncatedLength { file: String, offset: u64, got: u64 },
    #[error(
        "{file}: entry at offset {offset} claims {len} bytes but only {remaining} remain in the file"
    )]
    EntryTooLong {
        file: String,
        offset: u64,
        len: u64,
        remaining: u64,
    },
    #[error("{file}: truncated {what} at offset {offset}: {len} bytes expected, {got} present")]
    Truncated {
        file: String,
        what: &'static str,
        offset: u64,
        len: u64,
        got: u64,
    },
    #[error("{file}: cannot decode {message} at offset {offset}: {reason}")]
    Decode {
        file: String,
        message: String,
        offset: u64,
        reason: String,
    },
    #[error("{file}: no {message} entry in the image")]
    Empty { file: String, message: String },
    #[error("{file}: entry of {len} bytes does not fit the u32 length prefix")]
    EntryTooBig { file: String, len: u64 },
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("{file}: {at}: {reason}")]
    Json {
        file: String,
        at: String,
        reason: String,
    },
    #[error("protobuf descriptors unusable: {0}")]
    Schema(String),
}

impl ImageError {
    pub(crate) fn io(file: &str, source: io::Error) -> Self {
        ImageError::Io {
            file: file.to_string(),
            source,
        }
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;
