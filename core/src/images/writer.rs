//! Writing image files: header, length-prefixed entries, raw payloads.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use prost_reflect::prost::Message;

use super::error::{ImageError, Result};
use super::kinds::{Header, Kind};
use super::magic;

/// A writer positioned after the header of a new image.
pub struct ImageWriter<W: Write> {
    inner: W,
    file: String,
    offset: u64,
}

impl ImageWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` with mode 0600, as CRIU does, and
    /// writes the header of `kind`.
    pub fn create(path: &Path, kind: Kind) -> Result<Self> {
        let name = path.display().to_string();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| ImageError::io(&name, e))?;
        ImageWriter::new(BufWriter::new(file), name, kind)
    }
}

impl<W: Write> ImageWriter<W> {
    /// Writes the header of `kind` to `inner`; `file` names it in errors.
    pub fn new(inner: W, file: impl Into<String>, kind: Kind) -> Result<Self> {
        let desc = kind.desc();
        let mut w = ImageWriter {
            inner,
            file: file.into(),
            offset: 0,
        };
        match desc.header {
            Header::Raw => {}
            Header::Inventory => w.put(&desc.magic.to_le_bytes())?,
            Header::Common | Header::Service => {
                let first = if desc.header == Header::Common {
                    magic::IMG_COMMON
                } else {
                    magic::IMG_SERVICE
                };
                w.put(&first.to_le_bytes())?;
                w.put(&desc.magic.to_le_bytes())?;
            }
        }
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner
            .write_all(bytes)
            .map_err(|e| ImageError::io(&self.file, e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes one entry: its u32 LE length, then `data`.
    pub fn write_entry(&mut self, data: &[u8]) -> Result<()> {
        let len = u32::try_from(data.len()).map_err(|_| ImageError::EntryTooBig {
            file: self.file.clone(),
            len: data.len() as u64,
        })?;
        self.put(&len.to_le_bytes())?;
        self.put(data)
    }

    /// Encodes `msg` and writes it as one entry.
    pub fn write_message<T: Message>(&mut self, msg: &T) -> Result<()> {
        self.write_entry(&msg.encode_to_vec())
    }

    /// Writes raw bytes (the payload after an entry, or a raw image).
    pub fn write_payload(&mut self, data: &[u8]) -> Result<()> {
        self.put(data)
    }

    /// Bytes written so far, header included.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Flushes and gives the underlying writer back.
    pub fn finish(mut self) -> Result<W> {
        self.inner
            .flush()
            .map_err(|e| ImageError::io(&self.file, e))?;
        Ok(self.inner)
    }
}
