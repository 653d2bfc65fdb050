//! A minimal vDSO-like ELF image for tests: an ELF header, one `PT_LOAD`
//! and a `PT_DYNAMIC` naming a `DT_HASH`, symbol and string table, and
//! each symbol's "code" filled with its index.

const EHDR: usize = 64;
const PHDR: usize = 56;

fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

/// An image of `size` bytes whose function symbols are `syms`
/// (name, offset); tables live in its first 0x400 bytes.
pub fn image(size: usize, syms: &[(&str, u64)]) -> Vec<u8> {
    let mut b = vec![0u8; size];
    let native = if cfg!(target_endian = "little") { 1 } else { 2 };
    put(&mut b, 0, b"\x7fELF");
    b[4] = 2;
    b[5] = native;
    b[6] = 1;
    put(&mut b, 0x20, &(EHDR as u64).to_ne_bytes()); // e_phoff
    put(&mut b, 0x36, &(PHDR as u16).to_ne_bytes());
    put(&mut b, 0x38, &2u16.to_ne_bytes());
    let (dynamic, hash, symtab, strtab) = (0x100usize, 0x180usize, 0x200usize, 0x340usize);
    // PT_LOAD of the whole image at vaddr 0.
    let ph = EHDR;
    put(&mut b, ph, &1u32.to_ne_bytes());
    put(&mut b, ph + 32, &(size as u64).to_ne_bytes());
    // PT_DYNAMIC.
    let ph = EHDR + PHDR;
    put(&mut b, ph, &2u32.to_ne_bytes());
    put(&mut b, ph + 8, &(dynamic as u64).to_ne_bytes());
    put(&mut b, ph + 16, &(dynamic as u64).to_ne_bytes());
    put(&mut b, ph + 32, &0x80u64.to_ne_bytes());
    let mut strings = vec![0u8];
    let mut sym = symtab + 24; // entry 0 is the null symbol
    for (i, (name, off)) in syms.iter().enumerate() {
        let name_off = strings.len() as u32;
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        put(&mut b, sym, &name_off.to_ne_bytes());
        b[sym + 4] = (1 << 4) | 2; // GLOBAL FUNC
        put(&mut b, sym + 6, &7u16.to_ne_bytes()); // some section
        put(&mut b, sym + 8, &off.to_ne_bytes());
        sym += 24;
        let at = *off as usize;
        for x in &mut b[at..(at + 16).min(size)] {
            *x = i as u8 + 1;
        }
    }
    put(&mut b, strtab, &strings);
    // DT_HASH: nbucket 1, nchain = symbols + 1.
    put(&mut b, hash, &1u32.to_ne_bytes());
    put(&mut b, hash + 4, &(syms.len() as u32 + 1).to_ne_bytes());
    let dyns: [(u64, u64); 6] = [
        (4, hash as u64),
        (5, strtab as u64),
        (6, symtab as u64),
        (10, strings.len() as u64),
        (11, 24),
        (0, 0),
    ];
    for (i, (tag, val)) in dyns.iter().enumerate() {
        put(&mut b, dynamic + 16 * i, &tag.to_ne_bytes());
        put(&mut b, dynamic + 16 * i + 8, &val.to_ne_bytes());
    }
    b
}
