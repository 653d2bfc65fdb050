//! CRIU's on-disk image format.
//!
//! - [`kinds`]: the one table of image kinds (file name, magic, message,
//!   framing);
//! - [`reader`] / [`writer`]: headers, u32-length-prefixed entries, raw
//!   payloads, with errors naming file and offset;
//! - [`order`]: the byte order of an image (the dumping machine's);
//! - [`typed`]: whole images as prost messages, for dump and restore;
//! - [`json`]: crit's JSON form, generic over every message through the
//!   compiled descriptors;
//! - [`pb`]: the generated message types;
//! - [`vma`]: VMAs and page runs (status bits, guard regions, checks);
//! - [`check`]: the checks of single images made before a restore
//!   creates anything;
//! - [`set`]: a tree's whole image set, read, validated and cross-checked,
//!   as restore takes it.

pub mod check;
pub mod dedup;
pub mod error;
pub mod json;
pub mod kinds;
pub mod magic;
pub mod order;
pub mod pagemap;
pub mod pb;
pub mod personality;
pub mod reader;
pub mod set;
pub mod termios;
pub mod typed;
pub mod vma;
pub mod writer;

/// The most words of `mm.mm_saved_auxv` CRIU accepts (its `AT_VECTOR_SIZE`,
/// 44 on every arch it supports): it dumps the first 44 words of
/// `/proc/PID/auxv` and refuses a longer saved auxv on restore ("Image
/// corrupted on pid").
pub const MM_SAVED_AUXV_MAX: usize = 44;

pub use error::{ImageError, Result};
pub use kinds::{Framing, Header, ImageKind, KINDS, Kind, Payload};
pub use order::ByteOrder;
pub use reader::{Entry, ImageReader};
pub use typed::{ImageDir, read_all, read_one, write_all, write_one};
pub use writer::ImageWriter;
