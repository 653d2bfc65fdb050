//! Writing image files: header, length-prefixed entries, raw payloads.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use prost_reflect::prost::Message;
use rustix::io::Errno;

use super::error::{ImageError, Result};
use super::kinds::{Header, Kind};
use super::magic;
use super::order::ByteOrder;

/// A writer positioned after the header of a new image.
pub struct ImageWriter<W: Write> {
    inner: W,
    file: String,
    offset: u64,
    order: ByteOrder,
}

/// Creates `path` as a new file that only its owner can read or write.
///
/// Images hold a process's memory, registers and credentials, so they are
/// private whatever the umask, and never written through a link somebody
/// planted in the directory: an old entry of that name (a previous image,
/// or a symlink) is unlinked first (which removes the link, not its
/// target), then the file is created with `O_EXCL | O_NOFOLLOW`. If
/// anything recreates the name in between, creation fails rather than
/// following it. The mode is set with `fchmod` because the umask could
/// have taken the owner's bits away too.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::PermissionsExt;
    crate::fault::call(&format_args!("creating {}", path.display()), Errno::NOSPC)?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Create a raw image (no header: the pages images), private like the
/// others.
pub fn create_raw(path: &Path) -> Result<File> {
    create_private(path).map_err(|e| ImageError::io(&path.display().to_string(), e))
}

/// Why an images directory may not receive images.
#[derive(Debug, thiserror::Error)]
pub enum ImagesDirError {
    #[error("can't use images directory {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
    #[error("{dir} is not a directory")]
    NotADirectory { dir: String },
    #[error(
        "images directory {dir} is writable by other users (mode {mode:04o}): \
         they could plant or replace image files; use a directory only its owner can write"
    )]
    WritableByOthers { dir: String, mode: u32 },
}

/// Refuses an images directory that other users can write to (group- or
/// world-writable, sticky or not): whoever can write there can plant
/// symlinks or swap image files between dump and restore.
pub fn check_private_dir(dir: &Path) -> std::result::Result<(), ImagesDirError> {
    use std::os::unix::fs::PermissionsExt;
    let name = dir.display().to_string();
    let meta = std::fs::metadata(dir).map_err(|source| ImagesDirError::Io {
        dir: name.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ImagesDirError::NotADirectory { dir: name });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(ImagesDirError::WritableByOthers { dir: name, mode });
    }
    Ok(())
}

/// Open flags for [`create_private`], from the kernel's headers.
mod libc_flags {
    pub const O_NOFOLLOW: i32 = linux_raw_sys::general::O_NOFOLLOW as i32;
    pub const O_CLOEXEC: i32 = linux_raw_sys::general::O_CLOEXEC as i32;
}

impl ImageWriter<BufWriter<File>> {
    /// Creates `path` as a private new file (see [`create_private`]) and
    /// writes the header of `kind`.
    pub fn create(path: &Path, kind: Kind) -> Result<Self> {
        let name = path.display().to_string();
        let file = create_private(path).map_err(|e| ImageError::io(&name, e))?;
        ImageWriter::new(BufWriter::new(file), name, kind)
    }
}

impl<W: Write> ImageWriter<W> {
    /// Writes the header of `kind` to `inner`; `file` names it in errors.
    /// Numbers are in this machine's byte order, as CRIU writes them.
    pub fn new(inner: W, file: impl Into<String>, kind: Kind) -> Result<Self> {
        ImageWriter::with_order(inner, file, kind, ByteOrder::NATIVE)
    }

    /// Like [`ImageWriter::new`] in a given byte order (to reproduce an
    /// image made on a machine of the other order).
    pub fn with_order(
        inner: W,
        file: impl Into<String>,
        kind: Kind,
        order: ByteOrder,
    ) -> Result<Self> {
        let desc = kind.desc();
        let mut w = ImageWriter {
            inner,
            file: file.into(),
            offset: 0,
            order,
        };
        match desc.header {
            Header::Raw => {}
            Header::Inventory => w.put(&order.u32_bytes(desc.magic))?,
            Header::Common | Header::Service => {
                let first = if desc.header == Header::Common {
                    magic::IMG_COMMON
                } else {
                    magic::IMG_SERVICE
                };
                w.put(&order.u32_bytes(first))?;
                w.put(&order.u32_bytes(desc.magic))?;
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

    /// Writes one entry: its u32 length, then `data`.
    pub fn write_entry(&mut self, data: &[u8]) -> Result<()> {
        crate::fault::call(&format_args!("writing {}", self.file), Errno::NOSPC)
            .map_err(|e| ImageError::io(&self.file, e.into()))?;
        let len = u32::try_from(data.len()).map_err(|_| ImageError::EntryTooBig {
            file: self.file.clone(),
            len: data.len() as u64,
        })?;
        self.put(&self.order.u32_bytes(len))?;
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

    /// The byte order this image is written in.
    pub fn order(&self) -> ByteOrder {
        self.order
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
