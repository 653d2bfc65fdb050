//! The checks on a linked blob (see `blobs.rs` for the list) and the memory
//! image they produce.

use object::elf;
use object::read::elf::{FileHeader, Rela, SectionHeader, Sym};
use object::{Endianness, SectionIndex, SymbolIndex};

use super::{Arch, BlobSpec};

/// Part of the panic handler's (mangled) symbol name; if that symbol
/// survives `--gc-sections`, some code path can panic.
const PANIC_HANDLER_SYMBOL: &str = "rust_begin_unwind";

/// Linker-script symbols bounding the writable part and the whole blob.
const DATA_START_SYMBOL: &str = "__blob_data_start";
const END_SYMBOL: &str = "__blob_end";

/// A checked blob, ready to be emitted.
pub struct Image {
    /// Memory image from offset 0 to the end of initialised data.
    pub bytes: Vec<u8>,
    /// Total memory size, `.bss` included.
    pub size: u64,
    /// Start of the writable part.
    pub data_offset: u64,
    /// (offset, addend) of each RELATIVE relocation.
    pub relocs: Vec<(u64, u64)>,
    /// `__export_*` symbols and their offsets.
    pub symbols: Vec<(String, u64)>,
}

type Elf = elf::FileHeader64<Endianness>;

/// Reads the linked blob and checks it; returns every problem found.
pub fn parse_blob(data: &[u8], arch: &Arch, spec: &BlobSpec) -> Result<Image, Vec<String>> {
    let one = |e: object::read::Error| vec![format!("malformed ELF: {e}")];
    let header = Elf::parse(data).map_err(one)?;
    let endian = header.endian().map_err(one)?;
    if header.e_machine(endian) != arch.machine {
        return Err(vec![format!(
            "ELF machine {} is not the target's ({})",
            header.e_machine(endian),
            arch.machine
        )]);
    }
    if header.e_type(endian) != elf::ET_DYN {
        return Err(vec![
            "not linked as a position-independent executable".into(),
        ]);
    }
    let sections = header.sections(endian, data).map_err(one)?;
    let symtab = sections
        .symbols(endian, data, elf::SHT_SYMTAB)
        .map_err(one)?;
    let mut errors = Vec::new();

    // Symbols: bounds from the linker script, exports, leftovers.
    let (mut data_start, mut end) = (None, None);
    let mut symbols = Vec::new();
    for sym in symtab.iter().skip(1) {
        let name = String::from_utf8_lossy(sym.name(endian, symtab.strings()).unwrap_or(b"?"));
        let value = sym.st_value(endian);
        if sym.is_undefined(endian) {
            errors.push(format!(
                "undefined symbol `{name}`: a blob cannot call or reference anything outside itself"
            ));
        } else if name == DATA_START_SYMBOL {
            data_start = Some(value);
        } else if name == END_SYMBOL {
            end = Some(value);
        } else if name.contains(PANIC_HANDLER_SYMBOL) {
            errors.push(format!(
                "the panic handler (`{name}`) is still linked in, so some code path can panic; \
                 replace indexing/unwrap/overflowing arithmetic on that path"
            ));
        } else if name.starts_with("__export_") {
            symbols.push((name.into_owned(), value));
        }
    }
    let (Some(data_start), Some(end)) = (data_start, end) else {
        errors.push(format!(
            "`{DATA_START_SYMBOL}`/`{END_SYMBOL}` missing: was the blob linked with \
             linker-scripts/{}.ld?",
            arch.script
        ));
        return Err(errors);
    };
    if !data_start.is_multiple_of(arch.max_page_size) {
        errors.push(format!(
            "writable part starts at {data_start:#x}, not aligned to {:#x}",
            arch.max_page_size
        ));
    }
    match symbols.iter().find(|(n, _)| n == spec.entry) {
        Some((_, 0)) => {}
        Some((_, at)) => errors.push(format!("entry `{}` is at {at:#x}, not 0", spec.entry)),
        None => errors.push(format!("entry symbol `{}` not found", spec.entry)),
    }
    symbols.sort();

    // Sections: lay out the memory image and check the W^X split.
    let mut bytes = Vec::new();
    for section in sections.iter() {
        let flags = section.sh_flags(endian);
        if flags & u64::from(elf::SHF_ALLOC) == 0 {
            continue;
        }
        let name = String::from_utf8_lossy(sections.section_name(endian, section).unwrap_or(b"?"));
        let (addr, size) = (section.sh_addr(endian), section.sh_size(endian));
        let sh_end = addr.saturating_add(size);
        if addr >= end {
            continue; // linking metadata, not loaded
        }
        if sh_end > end {
            errors.push(format!("section {name} crosses the end of the blob"));
        }
        if flags & u64::from(elf::SHF_EXECINSTR) != 0 && sh_end > data_start {
            errors.push(format!(
                "executable section {name} lies in the writable part"
            ));
        }
        if flags & u64::from(elf::SHF_WRITE) != 0 && addr < data_start {
            errors.push(format!(
                "writable section {name} lies in the executable part"
            ));
        }
        if section.sh_type(endian) == elf::SHT_NOBITS {
            continue;
        }
        let Ok(contents) = section.data(endian, data) else {
            errors.push(format!("section {name}: contents outside the file"));
            continue;
        };
        let (Ok(start), Ok(stop)) = (usize::try_from(addr), usize::try_from(sh_end)) else {
            errors.push(format!("section {name}: address out of range"));
            continue;
        };
        if bytes.len() < stop {
            bytes.resize(stop, 0);
        }
        bytes[start..stop].copy_from_slice(contents);
    }

    // Dynamic relocations: only RELATIVE, inside the writable part.
    let mut relocs = Vec::new();
    for section in sections.iter() {
        let name = String::from_utf8_lossy(sections.section_name(endian, section).unwrap_or(b"?"));
        match section.sh_type(endian) {
            elf::SHT_RELA => {}
            elf::SHT_REL | elf::SHT_RELR => {
                errors.push(format!(
                    "relocation section {name} has a format the loader does not read (only RELA)"
                ));
                continue;
            }
            _ => continue,
        }
        let Ok(Some((entries, link))) = section.rela(endian, data) else {
            errors.push(format!("relocation section {name} is malformed"));
            continue;
        };
        for rela in entries {
            let r_type = rela.r_type(endian, false);
            let r_sym = rela.r_sym(endian, false);
            let offset = rela.r_offset(endian);
            let addend = rela.r_addend(endian);
            if r_type != arch.relative || r_sym != 0 {
                errors.push(format!(
                    "{} at offset {offset:#x} against symbol `{}` (addend {addend:#x}): only {} \
                     can be applied by the blob loader",
                    arch.reloc_name(r_type),
                    symbol_name(&sections, endian, data, link, r_sym),
                    arch.relative_name
                ));
                continue;
            }
            if offset < data_start || offset.saturating_add(8) > end {
                errors.push(format!(
                    "RELATIVE relocation at {offset:#x} is outside the writable part \
                     [{data_start:#x}, {end:#x})"
                ));
                continue;
            }
            match u64::try_from(addend) {
                Ok(a) if a <= end => relocs.push((offset, a)),
                _ => errors.push(format!(
                    "RELATIVE relocation at {offset:#x} points outside the blob (addend {addend:#x})"
                )),
            }
        }
    }
    relocs.sort_unstable();

    if errors.is_empty() {
        Ok(Image {
            bytes,
            size: end,
            data_offset: data_start,
            relocs,
            symbols,
        })
    } else {
        Err(errors)
    }
}

/// Name of symbol `index` in the symbol table at section `link`, for messages.
fn symbol_name(
    sections: &object::read::elf::SectionTable<'_, Elf>,
    endian: Endianness,
    data: &[u8],
    link: SectionIndex,
    index: u32,
) -> String {
    if index == 0 {
        return "(none)".to_string();
    }
    let Ok(table) = sections.symbol_table_by_index(endian, data, link) else {
        return format!("#{index}");
    };
    table
        .symbol(SymbolIndex(index as usize))
        .ok()
        .and_then(|sym| sym.name(endian, table.strings()).ok())
        .map_or_else(
            || format!("#{index}"),
            |name| String::from_utf8_lossy(name).into_owned(),
        )
}
