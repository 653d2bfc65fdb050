//! Writes an initramfs: an uncompressed cpio archive in the "newc" format
//! (the one the kernel unpacks into its rootfs at boot, see the kernel's
//! Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Usage: `mkinitramfs OUTPUT < LIST`, where each line of LIST is one of
//!
//! ```text
//! file /path/in/archive /path/on/host     (mode copied from the host file)
//! dir  /path/in/archive
//! nod  /path/in/archive c|b MAJOR MINOR   (mode 0600)
//! slink /path/in/archive TARGET           (a symbolic link)
//! ```
//!
//! Blank lines and lines starting with `#` are ignored. Parent directories
//! are added automatically (the kernel does not create them), each once.
//! Everything is owned by root; the kernel needs nothing else.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const S_IFLNK: u32 = 0o120000;

/// What went wrong, with the line or file it concerns.
enum Error {
    Usage,
    BadLine { line: usize, text: String },
    Input { path: PathBuf, err: io::Error },
    Output { path: PathBuf, err: io::Error },
    ReadList(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage => write!(f, "usage: mkinitramfs OUTPUT < LIST"),
            Error::BadLine { line, text } => write!(f, "list line {line}: cannot parse {text:?}"),
            Error::Input { path, err } => write!(f, "reading {}: {err}", path.display()),
            Error::Output { path, err } => write!(f, "writing {}: {err}", path.display()),
            Error::ReadList(err) => write!(f, "reading the list from stdin: {err}"),
        }
    }
}

/// One archive member, in the order it is written.
enum Entry {
    Dir,
    File(PathBuf),
    Node { block: bool, major: u32, minor: u32 },
    Symlink(String),
}

/// The archive being assembled: members by path (without the leading `/`).
struct Archive {
    entries: Vec<(String, Entry)>,
    dirs: BTreeSet<String>,
}

impl Archive {
    fn new() -> Self {
        Archive {
            entries: Vec::new(),
            dirs: BTreeSet::new(),
        }
    }

    /// Adds `path` after its parent directories; `None` for a bad path.
    fn add(&mut self, path: &str, entry: Entry) -> Option<()> {
        let mut parts = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => parts.push(part.to_str()?),
                Component::ParentDir | Component::Prefix(_) => return None,
            }
        }
        let (last, parents) = parts.split_last()?;
        let mut prefix = String::new();
        for part in parents {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.dirs.insert(prefix.clone()) {
                self.entries.push((prefix.clone(), Entry::Dir));
            }
        }
        let name = if prefix.is_empty() {
            last.to_string()
        } else {
            format!("{prefix}/{last}")
        };
        if let Entry::Dir = entry
            && !self.dirs.insert(name.clone())
        {
            return Some(());
        }
        self.entries.push((name, entry));
        Some(())
    }
}

fn parse_list(input: impl BufRead) -> Result<Archive, Error> {
    let mut archive = Archive::new();
    for (index, line) in input.lines().enumerate() {
        let text = line.map_err(Error::ReadList)?;
        let words: Vec<&str> = text.split_whitespace().collect();
        let bad = || Error::BadLine {
            line: index + 1,
            text: text.clone(),
        };
        let added = match words.as_slice() {
            [] => Some(()),
            [first, ..] if first.starts_with('#') => Some(()),
            ["dir", path] => archive.add(path, Entry::Dir),
            ["slink", path, target] => archive.add(path, Entry::Symlink(target.to_string())),
            ["file", path, src] => archive.add(path, Entry::File(PathBuf::from(src))),
            ["nod", path, kind @ ("c" | "b"), major, minor] => {
                let major = major.parse().map_err(|_| bad())?;
                let minor = minor.parse().map_err(|_| bad())?;
                archive.add(
                    path,
                    Entry::Node {
                        block: *kind == "b",
                        major,
                        minor,
                    },
                )
            }
            _ => None,
        };
        added.ok_or_else(bad)?;
    }
    Ok(archive)
}

/// Writes one newc header and the name, padded to 4 bytes.
#[allow(clippy::too_many_arguments)]
fn write_header(
    out: &mut impl Write,
    ino: u32,
    mode: u32,
    nlink: u32,
    size: u32,
    rdev: (u32, u32),
    name: &str,
) -> io::Result<()> {
    let namesize = name.len() + 1;
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
    // devminor, rdevmajor, rdevminor, namesize, check
    write!(
        out,
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
        0, 0, 0, 0, 0, rdev.0, rdev.1, 0
    )?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    pad(out, 110 + namesize)
}

fn pad(out: &mut impl Write, written: usize) -> io::Result<()> {
    let zeros = [0u8; 3];
    out.write_all(&zeros[..(4 - written % 4) % 4])
}

fn write_archive(archive: &Archive, output: &Path) -> Result<(), Error> {
    let out_err = |err| Error::Output {
        path: output.to_path_buf(),
        err,
    };
    let mut out = BufWriter::new(File::create(output).map_err(out_err)?);
    for (index, (name, entry)) in archive.entries.iter().enumerate() {
        let ino = index as u32 + 1;
        match entry {
            Entry::Dir => write_header(&mut out, ino, S_IFDIR | 0o755, 2, 0, (0, 0), name),
            Entry::Node {
                block,
                major,
                minor,
            } => {
                let kind = if *block { S_IFBLK } else { S_IFCHR };
                write_header(&mut out, ino, kind | 0o600, 1, 0, (*major, *minor), name)
            }
            Entry::Symlink(target) => {
                let size = target.len() as u32;
                write_header(&mut out, ino, S_IFLNK | 0o777, 1, size, (0, 0), name)
                    .and_then(|()| out.write_all(target.as_bytes()))
                    .and_then(|()| pad(&mut out, target.len()))
            }
            Entry::File(src) => {
                let in_err = |err| Error::Input {
                    path: src.clone(),
                    err,
                };
                let mut file = File::open(src).map_err(in_err)?;
                let meta = file.metadata().map_err(in_err)?;
                // newc sizes are 32-bit: nothing we pack comes near 4 GiB.
                let size = u32::try_from(meta.len()).map_err(|_| {
                    in_err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "larger than 4 GiB",
                    ))
                })?;
                let mode = S_IFREG | (meta.permissions().mode() & 0o7777);
                write_header(&mut out, ino, mode, 1, size, (0, 0), name).map_err(out_err)?;
                let copied = io::copy(&mut file, &mut out).map_err(in_err)?;
                if copied != u64::from(size) {
                    let changed = io::Error::new(io::ErrorKind::UnexpectedEof, "changed size");
                    return Err(in_err(changed));
                }
                pad(&mut out, size as usize)
            }
        }
        .map_err(out_err)?;
    }
    write_header(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!").map_err(out_err)?;
    out.flush().map_err(out_err)
}

fn run() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [output] = args.as_slice() else {
        return Err(Error::Usage);
    };
    let archive = parse_list(io::stdin().lock())?;
    write_archive(&archive, Path::new(output))
}

fn main() {
    if let Err(err) = run() {
        eprintln!("mkinitramfs: {err}");
        std::process::exit(1);
    }
}
