//! `/proc/PID/maps` and `/proc/PID/smaps`: the task's VMAs.
//!
//! A header line is `start-end perms offset major:minor inode   name`
//! (`show_map_vma`); smaps follows each with `Key: value kB` lines and a
//! `VmFlags:` line. The name is the rest of the line after the padding, so
//! names with spaces survive; the kernel escapes only `\n` (as `\012`) in
//! file paths and appends ` (deleted)` to unlinked files.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use linux_raw_sys::general::{PROT_EXEC, PROT_READ, PROT_WRITE};

use super::error::{ParseError, ProcError, TextError};
use super::text::{dec_u64, hex_u32, hex_u64, trim};
use super::vm_flags::VmFlags;
use super::{MAX_ENTRIES, ProcDir};

/// One VMA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    /// `PROT_READ | PROT_WRITE | PROT_EXEC` bits.
    pub prot: u32,
    /// `s` (shared) rather than `p` (private) in the perms field.
    pub shared: bool,
    /// File offset in bytes (the kernel prints `vm_pgoff << PAGE_SHIFT`).
    pub offset: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub inode: u64,
    pub name: VmaName,
    /// The smaps details; `None` when read from `maps`.
    pub smaps: Option<SmapsInfo>,
}

impl Vma {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Never true for a parsed VMA (the parser rejects `start >= end`).
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True when `addr` is inside `[start, end)`.
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }

    /// The entry name under `/proc/PID/map_files/` (`%lx-%lx`).
    pub fn map_files_name(&self) -> String {
        format!("{:x}-{:x}", self.start, self.end)
    }

    /// The VMA's flags from smaps (empty when read from `maps`).
    pub fn vm_flags(&self) -> VmFlags {
        self.smaps.as_ref().map_or(VmFlags::EMPTY, |s| s.vm_flags)
    }

    /// The file path, for file-backed VMAs.
    pub fn path(&self) -> Option<&Path> {
        match &self.name {
            VmaName::File { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// What the last column of a VMA line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmaName {
    /// Nothing: anonymous memory.
    Anonymous,
    /// A file path (absolute). `deleted` when the kernel appended
    /// ` (deleted)`; the suffix is removed from `path`. A live file that is
    /// really named `x (deleted)` looks the same: the dump confirms through
    /// `map_files/` (link count) rather than trusting the name.
    File { path: PathBuf, deleted: bool },
    /// A kernel-named special mapping.
    Special(SpecialVma),
    /// `[anon:NAME]`: anonymous memory named with `PR_SET_VMA_ANON_NAME`.
    AnonNamed(Vec<u8>),
    /// `[anon_shmem:NAME]`: shared anonymous memory named the same way.
    AnonShmemNamed(Vec<u8>),
    /// Any other bracketed name (`[vectors]`, `[sigpage]`, `[stack:TID]`
    /// of old kernels, driver-named mappings), brackets removed.
    OtherBracketed(Vec<u8>),
    /// Text that is neither a path nor bracketed (kept as is).
    Other(Vec<u8>),
}

/// Mappings the kernel makes and names itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecialVma {
    Heap,
    Stack,
    Vdso,
    Vvar,
    /// `[vvar_vclock]` (Linux 6.12+ split the vvar area in two).
    VvarVclock,
    Vsyscall,
    /// `[vectors]` (arm), which CRIU treats like `[vsyscall]`.
    Vectors,
    Uprobes,
}

const SPECIALS: &[(&[u8], SpecialVma)] = &[
    (b"[heap]", SpecialVma::Heap),
    (b"[stack]", SpecialVma::Stack),
    (b"[vdso]", SpecialVma::Vdso),
    (b"[vvar]", SpecialVma::Vvar),
    (b"[vvar_vclock]", SpecialVma::VvarVclock),
    (b"[vsyscall]", SpecialVma::Vsyscall),
    (b"[vectors]", SpecialVma::Vectors),
    (b"[uprobes]", SpecialVma::Uprobes),
];

impl VmaName {
    /// Classify the name column (already stripped of the padding).
    pub fn parse(raw: &[u8]) -> VmaName {
        if raw.is_empty() {
            return VmaName::Anonymous;
        }
        if raw[0] == b'/' {
            let unescaped = unescape_newlines(raw);
            let (body, deleted) = match unescaped.strip_suffix(b" (deleted)") {
                Some(b) => (b.to_vec(), true),
                None => (unescaped, false),
            };
            return VmaName::File {
                path: PathBuf::from(OsStr::from_bytes(&body)),
                deleted,
            };
        }
        if let Some((_, s)) = SPECIALS.iter().find(|(n, _)| *n == raw) {
            return VmaName::Special(*s);
        }
        if let Some(inner) = raw.strip_prefix(b"[").and_then(|r| r.strip_suffix(b"]")) {
            if let Some(n) = inner.strip_prefix(b"anon:") {
                return VmaName::AnonNamed(n.to_vec());
            }
            if let Some(n) = inner.strip_prefix(b"anon_shmem:") {
                return VmaName::AnonShmemNamed(n.to_vec());
            }
            return VmaName::OtherBracketed(inner.to_vec());
        }
        VmaName::Other(raw.to_vec())
    }
}

/// maps escapes only the newline in paths (`seq_file_path(m, file, "\n")`).
fn unescape_newlines(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(b"\\012") {
            out.push(b'\n');
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// The smaps lines a dump cares about (sizes in KiB, as the kernel prints).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmapsInfo {
    pub size_kb: u64,
    pub kernel_page_size_kb: u64,
    pub mmu_page_size_kb: u64,
    pub rss_kb: u64,
    pub pss_kb: u64,
    pub shared_clean_kb: u64,
    pub shared_dirty_kb: u64,
    pub private_clean_kb: u64,
    pub private_dirty_kb: u64,
    pub anonymous_kb: u64,
    pub swap_kb: u64,
    pub locked_kb: u64,
    pub vm_flags: VmFlags,
    /// A `Nonlinear` line was present (remap_file_pages of old kernels):
    /// CRIU refuses such VMAs.
    pub nonlinear: bool,
    /// Whether a `VmFlags:` line was seen.
    pub has_vm_flags: bool,
}

/// Parse one VMA header line.
pub fn parse_vma_line(line: &[u8]) -> Result<Vma, ParseError> {
    let (range, rest) = split_field(line).ok_or(ParseError::Missing("address range"))?;
    let dash = range
        .iter()
        .position(|&b| b == b'-')
        .ok_or_else(|| ParseError::bad("address range", range))?;
    let start = hex_u64("start address", &range[..dash])?;
    let end = hex_u64("end address", &range[dash + 1..])?;
    if start >= end {
        return Err(ParseError::bad("address range", range));
    }
    let (perms, rest) = split_field(rest).ok_or(ParseError::Missing("permissions"))?;
    let (prot, shared) = parse_perms(perms)?;
    let (offset, rest) = split_field(rest).ok_or(ParseError::Missing("offset"))?;
    let offset = hex_u64("offset", offset)?;
    let (dev, rest) = split_field(rest).ok_or(ParseError::Missing("device"))?;
    let colon = dev
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| ParseError::bad("device", dev))?;
    let dev_major = hex_u32("device major", &dev[..colon])?;
    let dev_minor = hex_u32("device minor", &dev[colon + 1..])?;
    let (inode, rest) = split_field(rest).ok_or(ParseError::Missing("inode"))?;
    let inode = dec_u64("inode", inode)?;
    // The name starts after the padding spaces; its own spaces are kept.
    let name_start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let name = VmaName::parse(&rest[name_start..]);
    Ok(Vma {
        start,
        end,
        prot,
        shared,
        offset,
        dev_major,
        dev_minor,
        inode,
        name,
        smaps: None,
    })
}

/// The next space-separated field and the text after its one separator.
fn split_field(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = &s[s.iter().position(|&b| b != b' ')?..];
    match s.iter().position(|&b| b == b' ') {
        Some(i) => Some((&s[..i], &s[i + 1..])),
        None => Some((s, &[])),
    }
}

fn parse_perms(p: &[u8]) -> Result<(u32, bool), ParseError> {
    let bad = || ParseError::bad("permissions", p);
    let [r, w, x, s] = <[u8; 4]>::try_from(p).map_err(|_| bad())?;
    let mut prot = 0;
    for (c, yes, bit) in [
        (r, b'r', PROT_READ),
        (w, b'w', PROT_WRITE),
        (x, b'x', PROT_EXEC),
    ] {
        match c {
            b'-' => {}
            c if c == yes => prot |= bit,
            _ => return Err(bad()),
        }
    }
    let shared = match s {
        b's' => true,
        b'p' => false,
        _ => return Err(bad()),
    };
    Ok((prot, shared))
}

/// True when `line` starts like a VMA header (`[0-9a-f]+-`), as opposed to
/// an smaps `Key:` line.
fn is_vma_header(line: &[u8]) -> bool {
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    let n = line.iter().take_while(|b| hex(b)).count();
    n > 0 && line.get(n) == Some(&b'-')
}

/// Incremental parser fed one line at a time (so the live file can be
/// streamed), for either format.
#[derive(Debug)]
pub struct MapsParser {
    smaps: bool,
    vmas: Vec<Vma>,
}

impl MapsParser {
    /// A parser for `smaps` (`true`) or `maps` (`false`) text.
    pub fn new(smaps: bool) -> MapsParser {
        MapsParser {
            smaps,
            vmas: Vec::new(),
        }
    }

    /// Take one line (without its `\n`).
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        if is_vma_header(line) {
            if self.vmas.len() >= MAX_ENTRIES {
                return Err(ParseError::TooMany(MAX_ENTRIES));
            }
            let mut vma = parse_vma_line(line)?;
            if self.smaps {
                vma.smaps = Some(SmapsInfo::default());
            }
            self.vmas.push(vma);
            return Ok(());
        }
        if !self.smaps {
            if trim(line).is_empty() {
                return Ok(());
            }
            return Err(ParseError::Unexpected("line is not a VMA"));
        }
        let info = match self.vmas.last_mut().and_then(|v| v.smaps.as_mut()) {
            Some(info) => info,
            None if trim(line).is_empty() => return Ok(()),
            None => return Err(ParseError::Unexpected("smaps field before the first VMA")),
        };
        push_smaps_field(info, line)
    }

    /// The VMAs parsed so far.
    pub fn finish(self) -> Vec<Vma> {
        self.vmas
    }
}

fn push_smaps_field(info: &mut SmapsInfo, line: &[u8]) -> Result<(), ParseError> {
    let Some((key, value)) = super::text::key_value(line) else {
        if line.starts_with(b"Nonlinear") {
            info.nonlinear = true;
        }
        // Unknown shapes are future kernel additions: ignore them.
        return Ok(());
    };
    let slot = match key {
        b"VmFlags" => {
            info.vm_flags = VmFlags::parse(value);
            info.has_vm_flags = true;
            return Ok(());
        }
        b"Nonlinear" => {
            info.nonlinear = true;
            return Ok(());
        }
        b"Size" => &mut info.size_kb,
        b"KernelPageSize" => &mut info.kernel_page_size_kb,
        b"MMUPageSize" => &mut info.mmu_page_size_kb,
        b"Rss" => &mut info.rss_kb,
        b"Pss" => &mut info.pss_kb,
        b"Shared_Clean" => &mut info.shared_clean_kb,
        b"Shared_Dirty" => &mut info.shared_dirty_kb,
        b"Private_Clean" => &mut info.private_clean_kb,
        b"Private_Dirty" => &mut info.private_dirty_kb,
        b"Anonymous" => &mut info.anonymous_kb,
        b"Swap" => &mut info.swap_kb,
        b"Locked" => &mut info.locked_kb,
        _ => return Ok(()),
    };
    let num = value.strip_suffix(b"kB").map(trim).unwrap_or(value);
    *slot = dec_u64("smaps size", num)?;
    Ok(())
}

/// Parse `maps` (`smaps == false`) or `smaps` text held in memory.
pub fn parse(text: &[u8], smaps: bool) -> Result<Vec<Vma>, TextError> {
    let mut p = MapsParser::new(smaps);
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        p.push_line(line).map_err(|e| TextError::new(i + 1, e))?;
    }
    Ok(p.finish())
}

impl ProcDir {
    /// The VMAs from `maps` (no smaps details).
    pub fn maps(&self) -> Result<Vec<Vma>, ProcError> {
        self.read_vmas("maps", false)
    }

    /// The VMAs from `smaps`, with sizes and `VmFlags`.
    pub fn smaps(&self) -> Result<Vec<Vma>, ProcError> {
        self.read_vmas("smaps", true)
    }

    fn read_vmas(&self, name: &str, smaps: bool) -> Result<Vec<Vma>, ProcError> {
        let mut reader = self.lines(name)?;
        let mut p = MapsParser::new(smaps);
        while let Some(line) = reader.next_line()? {
            if let Err(e) = p.push_line(line) {
                return Err(reader.error(e));
            }
        }
        Ok(p.finish())
    }
}

#[cfg(test)]
mod tests;
