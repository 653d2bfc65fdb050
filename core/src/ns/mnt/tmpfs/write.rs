//! Writing the tar stream: GNU-format entries with GNU long names, GNU
//! old sparse maps and PAX extended headers, as GNU tar writes them. The
//! header fields are encoded by the tar crate's header types.

use std::io::{self, Write};

use tar::{EntryType, Header};

pub(super) const BLOCK: usize = 512;
/// GNU tar writes records of 20 blocks and pads the last one with zeros.
pub(super) const RECORD: u64 = 20 * BLOCK as u64;
/// The name and link fields of a header.
const NAME_FIELD: usize = 100;

/// One PAX record: `LEN KEY=VALUE\n`, LEN counting the whole record, its
/// own digits included.
pub(super) fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = Vec::with_capacity(len);
    r.extend_from_slice(len.to_string().as_bytes());
    r.push(b' ');
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Writes tar blocks, counting them for the padding.
pub(super) struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    pub(super) fn new(out: W) -> Self {
        TarWriter { out, written: 0 }
    }

    fn raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    /// Zeros up to the next block boundary (after an entry's data).
    pub(super) fn pad(&mut self) -> io::Result<()> {
        let rem = (self.written % BLOCK as u64) as usize;
        if rem != 0 {
            self.raw(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// An entry's data (or part of it).
    pub(super) fn data(&mut self, b: &[u8]) -> io::Result<()> {
        self.raw(b)
    }

    /// A whole block (a GNU sparse extension header).
    pub(super) fn block(&mut self, b: &[u8; BLOCK]) -> io::Result<()> {
        self.raw(b)
    }

    /// A GNU `././@LongLink` entry (type `L` for names, `K` for link
    /// targets) holding `name` and a NUL, as GNU tar writes them.
    fn long(&mut self, kind: EntryType, name: &[u8]) -> io::Result<()> {
        let mut h = Header::new_gnu();
        set_field(&mut h.as_old_mut().name, b"././@LongLink");
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(name.len() as u64 + 1);
        h.set_entry_type(kind);
        h.set_cksum();
        self.raw(h.as_bytes())?;
        self.raw(name)?;
        self.raw(&[0])?;
        self.pad()
    }

    /// A PAX extended header (type `x`) with these records, named as GNU
    /// tar names them (`DIR/PaxHeaders/BASE`).
    fn pax(&mut self, name: &[u8], mtime: u64, records: &[u8]) -> io::Result<()> {
        let trimmed = name.strip_suffix(b"/").unwrap_or(name);
        let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (&b"."[..], trimmed),
        };
        let mut pname = dir.to_vec();
        pname.extend_from_slice(b"/PaxHeaders/");
        pname.extend_from_slice(base);
        let mut h = Header::new_ustar();
        set_field(&mut h.as_old_mut().name, &pname);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_size(records.len() as u64);
        h.set_entry_type(EntryType::XHeader);
        h.set_cksum();
        self.raw(h.as_bytes())?;
        self.raw(records)?;
        self.pad()
    }

    /// Header `h` of entry `name` (link target `link`), after the PAX
    /// records `pax` and the GNU long name entries it needs. Sets the
    /// name, link and checksum fields of `h`.
    pub(super) fn header(
        &mut self,
        h: &mut Header,
        name: &[u8],
        link: Option<&[u8]>,
        pax: &[u8],
    ) -> io::Result<()> {
        if !pax.is_empty() {
            self.pax(name, h.mtime().unwrap_or(0), pax)?;
        }
        if let Some(link) = link {
            if link.len() > NAME_FIELD {
                self.long(EntryType::GNULongLink, link)?;
            }
            set_field(&mut h.as_old_mut().linkname, link);
        }
        if name.len() > NAME_FIELD {
            self.long(EntryType::GNULongName, name)?;
        }
        set_field(&mut h.as_old_mut().name, name);
        h.set_cksum();
        self.raw(h.as_bytes())
    }

    /// The end-of-archive marker (two zero blocks) and the padding of the
    /// last record; the writer given to [`TarWriter::new`].
    pub(super) fn finish(mut self) -> io::Result<W> {
        self.raw(&[0u8; 2 * BLOCK])?;
        let rem = self.written % RECORD;
        if rem != 0 {
            let zeros = vec![0u8; (RECORD - rem) as usize];
            self.raw(&zeros)?;
        }
        Ok(self.out)
    }
}

/// As much of `v` as fits in `field` (a name field needs no NUL when full).
pub(super) fn set_field(field: &mut [u8], v: &[u8]) {
    let n = v.len().min(field.len());
    field[..n].copy_from_slice(&v[..n]);
    field[n..].fill(0);
}

#[cfg(test)]
mod tests {
    use tar::PaxExtensions;

    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record(b"path", b"a"), b"9 path=a\n");
        assert_eq!(pax_record(b"k", b"0123"), b"9 k=0123\n");
        // One more byte and the length needs two digits.
        assert_eq!(pax_record(b"k", b"01234"), b"11 k=01234\n");
        for n in 0..300 {
            let v = vec![b'v'; n];
            let r = pax_record(b"SCHILY.xattr.user.x", &v);
            let (len, _) = std::str::from_utf8(&r[..4])
                .unwrap()
                .split_once(' ')
                .unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), r.len(), "value of {n}");
            let parsed: Vec<_> = PaxExtensions::new(&r).collect();
            assert_eq!(parsed.len(), 1);
            assert_eq!(parsed[0].as_ref().unwrap().value_bytes(), &v[..]);
        }
    }
}
