//! Reading image files: header check, length-prefixed entries, raw payloads.
//!
//! Memory use is bounded by the data actually present: a length prefix is
//! checked against what remains of the file when its size is known, and
//! bytes are read through `Read::take`, which grows the buffer only as data
//! arrives, so a lying prefix on a pipe cannot make us allocate 4 GiB.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use prost_reflect::prost::Message;

use super::error::{ImageError, Result};
use super::kinds::{Header, ImageKind, Kind};
use super::magic;
use super::order::ByteOrder;

/// One length-prefixed entry: where it starts (its length prefix) and the
/// message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub data: Vec<u8>,
}

/// A reader positioned after the header of an image.
pub struct ImageReader<R> {
    inner: R,
    file: String,
    offset: u64,
    size: Option<u64>,
    kind: &'static ImageKind,
    order: ByteOrder,
}

impl ImageReader<BufReader<File>> {
    /// Opens `path` and checks that it is an image of `kind`.
    pub fn open(path: &Path, kind: Kind) -> Result<Self> {
        let (file, size, name) = open_file(path)?;
        ImageReader::new(BufReader::new(file), name, Some(size), kind)
    }

    /// Opens `path` and tells its kind from its magic (as crit does).
    pub fn open_any(path: &Path) -> Result<Self> {
        let (file, size, name) = open_file(path)?;
        ImageReader::detect(BufReader::new(file), name, Some(size))
    }
}

fn open_file(path: &Path) -> Result<(File, u64, String)> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| ImageError::io(&name, e))?;
    let size = file.metadata().map_err(|e| ImageError::io(&name, e))?.len();
    Ok((file, size, name))
}

impl<R: Read> ImageReader<R> {
    /// Reads and checks the header of an image of `kind`. `file` names the
    /// image in errors; `size` is its total length when known. The first
    /// magic tells the file's byte order (see [`ByteOrder`]).
    pub fn new(inner: R, file: impl Into<String>, size: Option<u64>, kind: Kind) -> Result<Self> {
        let desc = kind.desc();
        let mut r = ImageReader {
            inner,
            file: file.into(),
            offset: 0,
            size,
            kind: desc,
            order: ByteOrder::NATIVE,
        };
        let first = match desc.header {
            Header::Raw => return Ok(r),
            Header::Inventory => desc.magic,
            Header::Common => magic::IMG_COMMON,
            Header::Service => magic::IMG_SERVICE,
        };
        let word = r.header_word()?;
        r.order = ByteOrder::detect(word, |w| w == first)
            .ok_or_else(|| r.wrong_magic(0, first, ByteOrder::NATIVE.read_u32(word)))?;
        if desc.header != Header::Inventory {
            let at = r.offset;
            let found = r.order.read_u32(r.header_word()?);
            if found != desc.magic {
                return Err(r.wrong_magic(at, desc.magic, found));
            }
        }
        Ok(r)
    }

    /// Reads the header and finds the image kind from its magic, the way
    /// crit does: an optional common/service magic, then the type magic.
    pub fn detect(inner: R, file: impl Into<String>, size: Option<u64>) -> Result<Self> {
        let mut r = ImageReader {
            inner,
            file: file.into(),
            offset: 0,
            size,
            kind: Kind::Inventory.desc(),
            order: ByteOrder::NATIVE,
        };
        let word = r.header_word()?;
        let known = |w| {
            w == magic::IMG_COMMON || w == magic::IMG_SERVICE || ImageKind::by_magic(w).is_some()
        };
        r.order = ByteOrder::detect(word, known).unwrap_or(ByteOrder::NATIVE);
        let mut at = 0;
        let mut found = r.order.read_u32(word);
        if found == magic::IMG_COMMON || found == magic::IMG_SERVICE {
            at = r.offset;
            found = r.order.read_u32(r.header_word()?);
        }
        r.kind = ImageKind::by_magic(found).ok_or_else(|| ImageError::UnknownMagic {
            file: r.file.clone(),
            offset: at,
            found,
        })?;
        Ok(r)
    }

    fn header_word(&mut self) -> Result<[u8; 4]> {
        let mut buf = [0u8; 4];
        let got = self.fill(&mut buf)?;
        if got < buf.len() {
            return Err(ImageError::ShortHeader {
                file: self.file.clone(),
                offset: self.offset,
            });
        }
        Ok(buf)
    }

    fn wrong_magic(&self, offset: u64, expected: u32, found: u32) -> ImageError {
        ImageError::WrongMagic {
            file: self.file.clone(),
            offset,
            expected: magic::describe(expected),
            found: magic::describe(found),
        }
    }

    /// Reads as much of `buf` as the input has; returns how much it read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ImageError::io(&self.file, e)),
            }
        }
        self.offset += got as u64;
        Ok(got)
    }

    /// The image kind (from the expected kind or the detected magic).
    pub fn kind(&self) -> &'static ImageKind {
        self.kind
    }

    /// The byte order of the file's magics, length prefixes and raw
    /// numbers (the native order for raw images, which have no magic).
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    /// The file name used in errors.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Byte offset of the next read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes left in the file, when its size is known.
    pub fn remaining(&self) -> Option<u64> {
        self.size.map(|s| s.saturating_sub(self.offset))
    }

    /// The next length-prefixed entry, or `None` at a clean end of file.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        let offset = self.offset;
        let mut len = [0u8; 4];
        let got = self.fill(&mut len)?;
        if got == 0 {
            return Ok(None);
        }
        if got < len.len() {
            return Err(ImageError::TruncatedLength {
                file: self.file.clone(),
                offset,
                got: got as u64,
            });
        }
        let len = u64::from(self.order.read_u32(len));
        if let Some(remaining) = self.remaining()
            && len > remaining
        {
            return Err(ImageError::EntryTooLong {
                file: self.file.clone(),
                offset,
                len,
                remaining,
            });
        }
        let data = self.read_exact_bounded(len, "entry", offset)?;
        Ok(Some(Entry { offset, data }))
    }

    /// The next entry decoded as `T`, or `None` at a clean end of file.
    pub fn next_message<T: Message + Default>(&mut self) -> Result<Option<T>> {
        let Some(entry) = self.next_entry()? else {
            return Ok(None);
        };
        T::decode(entry.data.as_slice())
            .map(Some)
            .map_err(|e| ImageError::Decode {
                file: self.file.clone(),
                message: self.kind.message.unwrap_or("entry").to_string(),
                offset: entry.offset,
                reason: e.to_string(),
            })
    }

    /// Exactly `len` raw bytes (a payload after an entry).
    pub fn payload(&mut self, len: u64) -> Result<Vec<u8>> {
        let offset = self.offset;
        if let Some(remaining) = self.remaining()
            && len > remaining
        {
            return Err(ImageError::Truncated {
                file: self.file.clone(),
                what: "payload",
                offset,
                len,
                got: remaining,
            });
        }
        self.read_exact_bounded(len, "payload", offset)
    }

    /// Copies exactly `len` raw bytes to `out` without holding them all.
    pub fn copy_payload(&mut self, len: u64, out: &mut impl Write) -> Result<()> {
        let offset = self.offset;
        let copied = io::copy(&mut (&mut self.inner).take(len), out)
            .map_err(|e| ImageError::io(&self.file, e))?;
        self.offset += copied;
        if copied < len {
            return Err(ImageError::Truncated {
                file: self.file.clone(),
                what: "payload",
                offset,
                len,
                got: copied,
            });
        }
        Ok(())
    }

    /// Everything up to end of file (raw images, ghost file contents).
    pub fn rest(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let n = self
            .inner
            .read_to_end(&mut buf)
            .map_err(|e| ImageError::io(&self.file, e))?;
        self.offset += n as u64;
        Ok(buf)
    }

    fn read_exact_bounded(&mut self, len: u64, what: &'static str, offset: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let got = (&mut self.inner)
            .take(len)
            .read_to_end(&mut buf)
            .map_err(|e| ImageError::io(&self.file, e))?;
        self.offset += got as u64;
        if (got as u64) < len {
            return Err(ImageError::Truncated {
                file: self.file.clone(),
                what,
                offset,
                len,
                got: got as u64,
            });
        }
        Ok(buf)
    }

    /// Gives the underlying reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}
