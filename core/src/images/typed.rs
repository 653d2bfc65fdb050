//! Typed helpers for dump and restore: whole images as prost messages.

use std::path::{Path, PathBuf};

use prost_reflect::prost::Message;

use super::error::{ImageError, Result};
use super::kinds::Kind;
use super::reader::ImageReader;
use super::writer::ImageWriter;

/// Reads the first entry of the image at `path`; an image without entries
/// is an error (CRIU's `pb_read_one`).
pub fn read_one<T: Message + Default>(path: &Path, kind: Kind) -> Result<T> {
    let mut r = ImageReader::open(path, kind)?;
    r.next_message()?.ok_or_else(|| ImageError::Empty {
        file: r.file().to_string(),
        message: kind.desc().message.unwrap_or("entry").to_string(),
    })
}

/// Reads every entry of an entry-framed image.
pub fn read_all<T: Message + Default>(path: &Path, kind: Kind) -> Result<Vec<T>> {
    let mut r = ImageReader::open(path, kind)?;
    let mut out = Vec::new();
    while let Some(m) = r.next_message()? {
        out.push(m);
    }
    Ok(out)
}

/// Writes an image holding the single entry `msg`.
pub fn write_one<T: Message>(path: &Path, kind: Kind, msg: &T) -> Result<()> {
    write_all(path, kind, std::slice::from_ref(msg))
}

/// Writes an image holding `msgs` in order.
pub fn write_all<T: Message>(path: &Path, kind: Kind, msgs: &[T]) -> Result<()> {
    let mut w = ImageWriter::create(path, kind)?;
    for m in msgs {
        w.write_message(m)?;
    }
    w.finish().map(drop)
}

/// An images directory (`criu dump -D DIR`): names files after their kind.
#[derive(Clone, Debug)]
pub struct ImageDir {
    root: PathBuf,
}

impl ImageDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ImageDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of the image of `kind` for `id` (pid, files id, …; ignored by
    /// kinds with a fixed name).
    pub fn path(&self, kind: Kind, id: u64) -> PathBuf {
        self.root.join(kind.file_name(id))
    }

    pub fn read_one<T: Message + Default>(&self, kind: Kind, id: u64) -> Result<T> {
        read_one(&self.path(kind, id), kind)
    }

    pub fn read_all<T: Message + Default>(&self, kind: Kind, id: u64) -> Result<Vec<T>> {
        read_all(&self.path(kind, id), kind)
    }

    pub fn write_one<T: Message>(&self, kind: Kind, id: u64, msg: &T) -> Result<()> {
        write_one(&self.path(kind, id), kind, msg)
    }

    pub fn write_all<T: Message>(&self, kind: Kind, id: u64, msgs: &[T]) -> Result<()> {
        write_all(&self.path(kind, id), kind, msgs)
    }

    pub fn reader(
        &self,
        kind: Kind,
        id: u64,
    ) -> Result<ImageReader<std::io::BufReader<std::fs::File>>> {
        ImageReader::open(&self.path(kind, id), kind)
    }

    pub fn writer(
        &self,
        kind: Kind,
        id: u64,
    ) -> Result<ImageWriter<std::io::BufWriter<std::fs::File>>> {
        ImageWriter::create(&self.path(kind, id), kind)
    }
}
