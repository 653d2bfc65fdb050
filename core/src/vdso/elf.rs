//! The dynamic symbols of a vDSO image (an ELF shared object the kernel
//! maps into every task), read from its program headers as the dynamic
//! loader does: `PT_DYNAMIC` gives the symbol and string tables, the hash
//! table their length. Works on a dumped vDSO's bytes as well as on this
//! kernel's; every offset is checked against the image (it comes from
//! image files: bad input is an error, never a panic).

/// A defined function symbol: its name and offset from the image start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub offset: u64,
}

/// The function symbols of one vDSO, sorted by offset (then name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Symtab {
    pub symbols: Vec<Symbol>,
}

impl Symtab {
    /// The offset of symbol `name`, if the vDSO has it.
    pub fn offset_of(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.offset)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF image (magic {0:02x?})")]
    Magic([u8; 4]),
    #[error("not a 64-bit ELF image of this machine's byte order")]
    Class,
    #[error("{what} at {off:#x} (+{len}) lies outside the {size}-byte image")]
    Bounds {
        what: &'static str,
        off: u64,
        len: u64,
        size: usize,
    },
    #[error("no {0}")]
    Missing(&'static str),
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_GNU_HASH: u64 = 0x6fff_fef5;
const STT_NOTYPE: u8 = 0;
const STT_FUNC: u8 = 2;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const SHN_UNDEF: u16 = 0;
const SHN_ABS: u16 = 0xfff1;
const SYM_SIZE: u64 = 24;
/// Machines whose 64-bit `DT_HASH` entries are 8 bytes, not the ELF
/// specification's 4 (binutils' hash-entry size for s390x and alpha; the
/// kernel's vDSO selftest parser reads them so too).
const EM_S390: u16 = 22;
const EM_ALPHA: u16 = 0x9026;
/// More symbols than any vDSO has: a bound on what a damaged hash table
/// can make us read.
const MAX_SYMBOLS: u64 = 4096;

/// Reads native-endian integers at checked offsets.
struct Image<'a>(&'a [u8]);

impl Image<'_> {
    fn bytes(&self, what: &'static str, off: u64, len: u64) -> Result<&[u8], ElfError> {
        let err = || ElfError::Bounds {
            what,
            off,
            len,
            size: self.0.len(),
        };
        let start = usize::try_from(off).map_err(|_| err())?;
        let end = start
            .checked_add(usize::try_from(len).map_err(|_| err())?)
            .ok_or_else(err)?;
        self.0.get(start..end).ok_or_else(err)
    }

    fn u16(&self, what: &'static str, off: u64) -> Result<u16, ElfError> {
        let b = self.bytes(what, off, 2)?;
        Ok(u16::from_ne_bytes([b[0], b[1]]))
    }

    fn u32(&self, what: &'static str, off: u64) -> Result<u32, ElfError> {
        let b = self.bytes(what, off, 4)?;
        Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&self, what: &'static str, off: u64) -> Result<u64, ElfError> {
        let b = self.bytes(what, off, 8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_ne_bytes(w))
    }
}

/// The function symbols of the vDSO image `data` (its mapped bytes).
pub fn symbols(data: &[u8]) -> Result<Symtab, ElfError> {
    let img = Image(data);
    let magic = img.bytes("ELF header", 0, 16)?;
    if magic[..4] != *b"\x7fELF" {
        return Err(ElfError::Magic([magic[0], magic[1], magic[2], magic[3]]));
    }
    let native = if cfg!(target_endian = "little") { 1 } else { 2 };
    if magic[4] != 2 || magic[5] != native {
        return Err(ElfError::Class);
    }
    let hash_entry = match img.u16("e_machine", 0x12)? {
        EM_S390 | EM_ALPHA => 8,
        _ => 4,
    };
    let phoff = img.u64("e_phoff", 0x20)?;
    let phentsize = u64::from(img.u16("e_phentsize", 0x36)?);
    let phnum = u64::from(img.u16("e_phnum", 0x38)?);
    // Addresses in the dynamic section are link-time ones: the first
    // PT_LOAD maps file offset p_offset at p_vaddr.
    let (mut bias, mut dynamic) = (None, None);
    for i in 0..phnum {
        let ph = phoff.saturating_add(i.saturating_mul(phentsize));
        let p_type = img.u32("program header", ph)?;
        let p_offset = img.u64("program header", ph + 8)?;
        let p_vaddr = img.u64("program header", ph + 16)?;
        let p_filesz = img.u64("program header", ph + 32)?;
        match p_type {
            PT_LOAD if bias.is_none() => bias = Some(p_vaddr.wrapping_sub(p_offset)),
            PT_DYNAMIC => dynamic = Some((p_offset, p_filesz)),
            _ => {}
        }
    }
    let bias = bias.ok_or(ElfError::Missing("PT_LOAD program header"))?;
    let (dyn_off, dyn_len) = dynamic.ok_or(ElfError::Missing("PT_DYNAMIC program header"))?;
    let at = |vaddr: u64| vaddr.wrapping_sub(bias);
    let (mut symtab, mut strtab, mut strsz, mut syment) = (None, None, None, SYM_SIZE);
    let (mut hash, mut gnu_hash) = (None, None);
    for i in 0..dyn_len / 16 {
        let e = dyn_off + 16 * i;
        let (tag, val) = (
            img.u64("dynamic entry", e)?,
            img.u64("dynamic entry", e + 8)?,
        );
        match tag {
            DT_NULL => break,
            DT_SYMTAB => symtab = Some(at(val)),
            DT_STRTAB => strtab = Some(at(val)),
            DT_STRSZ => strsz = Some(val),
            DT_SYMENT => syment = val,
            DT_HASH => hash = Some(at(val)),
            DT_GNU_HASH => gnu_hash = Some(at(val)),
            _ => {}
        }
    }
    let symtab = symtab.ok_or(ElfError::Missing("DT_SYMTAB"))?;
    let strtab = strtab.ok_or(ElfError::Missing("DT_STRTAB"))?;
    let strsz = strsz.ok_or(ElfError::Missing("DT_STRSZ"))?;
    let strings = img.bytes("string table", strtab, strsz)?;
    let count = match (hash, gnu_hash) {
        // nchain (after nbucket): one chain entry per symbol.
        (Some(h), _) if hash_entry == 8 => img.u64("DT_HASH nchain", h + 8)?,
        (Some(h), _) => u64::from(img.u32("DT_HASH nchain", h + 4)?),
        (None, Some(g)) => gnu_hash_count(&img, g)?,
        (None, None) => return Err(ElfError::Missing("DT_HASH or DT_GNU_HASH")),
    }
    .min(MAX_SYMBOLS);
    if syment < SYM_SIZE {
        return Err(ElfError::Missing("DT_SYMENT of a 64-bit symbol"));
    }
    let mut out = Vec::new();
    for i in 0..count {
        let s = symtab + i * syment;
        let name_off = u64::from(img.u32("symbol", s)?);
        let info = img.bytes("symbol", s + 4, 1)?[0];
        let shndx = img.u16("symbol", s + 6)?;
        let value = img.u64("symbol", s + 8)?;
        let (bind, kind) = (info >> 4, info & 0xf);
        if shndx == SHN_UNDEF
            || shndx == SHN_ABS
            || !matches!(bind, STB_GLOBAL | STB_WEAK)
            || !matches!(kind, STT_FUNC | STT_NOTYPE)
        {
            continue;
        }
        let name = strings
            .get(name_off as usize..)
            .and_then(|s| s.split(|&b| b == 0).next())
            .ok_or(ElfError::Bounds {
                what: "symbol name",
                off: name_off,
                len: 1,
                size: strings.len(),
            })?;
        if name.is_empty() {
            continue;
        }
        out.push(Symbol {
            name: String::from_utf8_lossy(name).into_owned(),
            offset: at(value),
        });
    }
    out.sort_by(|a, b| (a.offset, &a.name).cmp(&(b.offset, &b.name)));
    out.dedup();
    Ok(Symtab { symbols: out })
}

/// Symbols a `DT_GNU_HASH` table covers: past the last bucket's chain end.
fn gnu_hash_count(img: &Image, g: u64) -> Result<u64, ElfError> {
    let nbuckets = u64::from(img.u32("DT_GNU_HASH", g)?);
    let symoffset = u64::from(img.u32("DT_GNU_HASH", g + 4)?);
    let bloom_size = u64::from(img.u32("DT_GNU_HASH", g + 8)?);
    let buckets = g + 16 + bloom_size * 8;
    let chains = buckets + nbuckets * 4;
    let mut last = 0u64;
    for b in 0..nbuckets.min(MAX_SYMBOLS) {
        last = last.max(u64::from(img.u32("DT_GNU_HASH bucket", buckets + 4 * b)?));
    }
    if last < symoffset {
        return Ok(symoffset);
    }
    // Walk the last chain to its end (low bit set).
    while last < MAX_SYMBOLS {
        let h = img.u32("DT_GNU_HASH chain", chains + 4 * (last - symoffset))?;
        last += 1;
        if h & 1 != 0 {
            break;
        }
    }
    Ok(last)
}
