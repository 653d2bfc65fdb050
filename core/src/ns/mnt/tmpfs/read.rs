//! Reading the tar stream GNU tar writes (and [`super::write`]), never
//! holding more of it than the limits of [`super`] allow: the stream is
//! walked here so that every length read from the archive is checked
//! before it is used; header fields are decoded by the tar crate's types.

use std::io::{self, Read};

use tar::{GnuExtSparseHeader, Header, PaxExtensions};

use super::write::BLOCK;
use super::{MAX_NAME, MAX_PAX, MAX_SPARSE_SEGMENTS, TmpfsError, show, xattr_wanted};

/// What an archive entry makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Fifo,
}

/// A GNU sparse file: its data segments `(offset, length)` in file order
/// (the archive holds their bytes one after the other) and its size.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Sparse {
    pub segments: Vec<(u64, u64)>,
    pub real_size: u64,
}

/// One archive member, its extension headers applied.
#[derive(Debug)]
pub(super) struct Entry {
    pub name: Vec<u8>,
    pub kind: Kind,
    /// Target of a hard link or symlink.
    pub link: Vec<u8>,
    /// Permission bits with set-id and sticky bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub sparse: Option<Sparse>,
    pub rdev: (u32, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What PAX records of one `x` header override or add.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<(i64, u32)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads members from a tar stream, never holding more of it than the
/// limits of the module allow.
pub(super) struct TarReader<R: Read> {
    inp: R,
    offset: u64,
    /// The entry being read, for error messages.
    cur: String,
    /// Data of the current entry not read yet, and its padding.
    remaining: u64,
    padding: u64,
}

impl<R: Read> TarReader<R> {
    pub(super) fn new(inp: R) -> Self {
        TarReader {
            inp,
            offset: 0,
            cur: "the first header".into(),
            remaining: 0,
            padding: 0,
        }
    }

    /// The name of the current entry, for error messages.
    pub(super) fn current(&self) -> &str {
        &self.cur
    }

    fn malformed(&self, what: impl Into<String>) -> TmpfsError {
        TmpfsError::Malformed {
            entry: self.cur.clone(),
            what: what.into(),
        }
    }

    /// Up to `buf.len()` bytes; 0 only at the end of the stream.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, TmpfsError> {
        loop {
            match self.inp.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(TmpfsError::Read {
                        entry: self.cur.clone(),
                        offset: self.offset,
                        source,
                    });
                }
            }
        }
    }

    /// Exactly `buf.len()` bytes, or `Ok(false)` at a clean end of the
    /// stream before the first one; an end in the middle is an error.
    fn exact(&mut self, buf: &mut [u8]) -> Result<bool, TmpfsError> {
        let mut got = 0;
        while got < buf.len() {
            let n = self.fill(&mut buf[got..])?;
            if n == 0 {
                if got == 0 {
                    return Ok(false);
                }
                return Err(self.truncated());
            }
            got += n;
        }
        Ok(true)
    }

    fn truncated(&self) -> TmpfsError {
        TmpfsError::Truncated {
            entry: self.cur.clone(),
            offset: self.offset,
        }
    }

    /// Read and drop `n` bytes.
    fn skip(&mut self, mut n: u64) -> Result<(), TmpfsError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            if !self.exact(&mut buf[..want])? {
                return Err(self.truncated());
            }
            n -= want as u64;
        }
        Ok(())
    }

    /// Data of the current entry: up to `buf.len()` bytes, 0 at its end.
    pub(super) fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TmpfsError> {
        let want = (buf.len() as u64).min(self.remaining) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.fill(&mut buf[..want])?;
        if n == 0 {
            return Err(self.truncated());
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Exactly `buf.len()` bytes of the current entry's data.
    pub(super) fn read_data_exact(&mut self, buf: &mut [u8]) -> Result<(), TmpfsError> {
        if buf.len() as u64 > self.remaining {
            return Err(self.malformed("its data segments are longer than its data"));
        }
        if !self.exact(buf)? && !buf.is_empty() {
            return Err(self.truncated());
        }
        self.remaining -= buf.len() as u64;
        Ok(())
    }

    /// Drop the rest of the current entry's data and its padding.
    fn end_entry(&mut self) -> Result<(), TmpfsError> {
        let n = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(n)
    }

    /// Start reading `size` bytes of data (and their padding).
    fn begin_data(&mut self, size: u64) -> Result<(), TmpfsError> {
        let pad = size
            .checked_next_multiple_of(BLOCK as u64)
            .map(|p| p - size);
        match pad {
            Some(pad) => {
                self.remaining = size;
                self.padding = pad;
                Ok(())
            }
            None => Err(self.malformed(format!("size {size} overflows"))),
        }
    }

    /// All `size` bytes of an extension entry (at most `max`), its padding
    /// skipped.
    fn small_data(&mut self, size: u64, max: u64, what: &str) -> Result<Vec<u8>, TmpfsError> {
        if size > max {
            return Err(self.malformed(format!(
                "its {what} is {size} bytes long, more than the {max} taken"
            )));
        }
        self.begin_data(size)?;
        let mut v = vec![0u8; size as usize];
        self.read_data_exact(&mut v)?;
        self.end_entry()?;
        Ok(v)
    }

    /// The next member, or `None` after the end-of-archive marker. The
    /// data of the previous one is skipped if it was not read.
    pub(super) fn next(&mut self) -> Result<Option<Entry>, TmpfsError> {
        self.end_entry()?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Pax> = None;
        loop {
            let start = self.offset;
            let mut h = Header::new_old();
            if !self.exact(h.as_mut_bytes())? {
                return Err(TmpfsError::Truncated {
                    entry: "the end-of-archive marker".into(),
                    offset: self.offset,
                });
            }
            if h.as_bytes().iter().all(|&b| b == 0) {
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(self.malformed("extension headers without the entry they describe"));
                }
                return Ok(None);
            }
            self.cur = match (&pax, &long_name) {
                (Some(Pax { path: Some(p), .. }), _) | (_, Some(p)) => format!("./{}", show(p)),
                _ => format!("{:?} (header at byte {start})", show(&h.path_bytes())),
            };
            check_sum(&h).map_err(|what| self.malformed(what))?;
            let size = h
                .entry_size()
                .map_err(|_| self.malformed("its size field is no number"))?;
            let t = h.entry_type().as_byte();
            match t {
                b'L' | b'K' => {
                    let slot = if t == b'L' {
                        &mut long_name
                    } else {
                        &mut long_link
                    };
                    if slot.is_some() {
                        return Err(self.malformed("two GNU long names for one entry"));
                    }
                    let mut v = self.small_data(size, MAX_NAME, "GNU long name")?;
                    if let Some(nul) = v.iter().position(|&b| b == 0) {
                        v.truncate(nul);
                    }
                    if t == b'L' {
                        long_name = Some(v);
                    } else {
                        long_link = Some(v);
                    }
                    continue;
                }
                b'x' => {
                    if pax.is_some() {
                        return Err(self.malformed("two PAX headers for one entry"));
                    }
                    let data = self.small_data(size, MAX_PAX, "PAX header")?;
                    pax = Some(self.parse_pax(&data)?);
                    continue;
                }
                // Global PAX headers and volume labels describe no file.
                b'g' | b'V' => {
                    self.begin_data(size)?;
                    self.end_entry()?;
                    continue;
                }
                _ => {}
            }
            return self.member(h, t, size, long_name, long_link, pax).map(Some);
        }
    }

    /// The entry of header `h` (type `t`) with its extensions applied.
    fn member(
        &mut self,
        h: Header,
        t: u8,
        size: u64,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        pax: Option<Pax>,
    ) -> Result<Entry, TmpfsError> {
        let pax = pax.unwrap_or_default();
        let name = pax
            .path
            .or(long_name)
            .unwrap_or_else(|| h.path_bytes().into_owned());
        self.cur = format!("{:?}", show(&name));
        let link = pax
            .linkpath
            .or(long_link)
            .or_else(|| h.link_name_bytes().map(|l| l.into_owned()))
            .unwrap_or_default();
        let kind = match t {
            b'0' | 0 | b'7' if name.ends_with(b"/") => Kind::Dir,
            b'0' | 0 | b'7' | b'S' => Kind::File,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            _ => {
                return Err(self.malformed(format!(
                    "entry type {:?} is not one a tmpfs archive holds",
                    char::from(t)
                )));
            }
        };
        let bad = |what: &str| self.malformed(format!("its {what} field is no number"));
        let mode = h.mode().map_err(|_| bad("mode"))? & 0o7777;
        let num32 = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| self.malformed(format!("its {what} {v} is out of range")))
        };
        let uid = match pax.uid {
            Some(u) => u,
            None => num32(h.uid().map_err(|_| bad("uid"))?, "uid")?,
        };
        let gid = match pax.gid {
            Some(g) => g,
            None => num32(h.gid().map_err(|_| bad("gid"))?, "gid")?,
        };
        let mtime = match pax.mtime {
            Some(m) => m,
            None => {
                let m = h.mtime().map_err(|_| bad("mtime"))?;
                (
                    i64::try_from(m).map_err(|_| self.malformed("its mtime is out of range"))?,
                    0,
                )
            }
        };
        let rdev = if matches!(kind, Kind::Char | Kind::Block) {
            let major = h.device_major().map_err(|_| bad("device major"))?;
            let minor = h.device_minor().map_err(|_| bad("device minor"))?;
            (major.unwrap_or(0), minor.unwrap_or(0))
        } else {
            (0, 0)
        };
        let size = pax.size.unwrap_or(size);
        let sparse = if t == b'S' {
            Some(self.sparse_map(&h, size)?)
        } else {
            None
        };
        self.begin_data(size)?;
        Ok(Entry {
            name,
            kind,
            link,
            mode,
            uid,
            gid,
            mtime,
            sparse,
            rdev,
            xattrs: pax.xattrs,
        })
    }

    /// The records of a PAX header this restore uses.
    fn parse_pax(&self, data: &[u8]) -> Result<Pax, TmpfsError> {
        let mut pax = Pax::default();
        for rec in PaxExtensions::new(data) {
            let rec = rec.map_err(|_| self.malformed("a PAX record is malformed"))?;
            let key = rec.key_bytes();
            let value = rec.value_bytes();
            let text = || {
                std::str::from_utf8(value)
                    .map_err(|_| self.malformed(format!("PAX record {:?} is not text", show(key))))
            };
            let number = |what: &str| -> Result<u64, TmpfsError> {
                text()?.parse().map_err(|_| {
                    self.malformed(format!("PAX {what} {:?} is no number", show(value)))
                })
            };
            let id = |what: &str| -> Result<u32, TmpfsError> {
                let v = number(what)?;
                u32::try_from(v)
                    .map_err(|_| self.malformed(format!("PAX {what} {v} is out of range")))
            };
            match key {
                b"path" => pax.path = Some(value.to_vec()),
                b"linkpath" => pax.linkpath = Some(value.to_vec()),
                b"size" => pax.size = Some(number("size")?),
                b"uid" => pax.uid = Some(id("uid")?),
                b"gid" => pax.gid = Some(id("gid")?),
                b"mtime" => {
                    pax.mtime = Some(parse_time(text()?).ok_or_else(|| {
                        self.malformed(format!("PAX mtime {:?} is no time", show(value)))
                    })?)
                }
                _ if key.starts_with(b"GNU.sparse.") => {
                    return Err(self.malformed(
                        "it is a PAX-format sparse file (GNU tar --posix); only the GNU \
                         format's sparse entries, which CRIU's tar writes, are taken",
                    ));
                }
                _ => {
                    if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                        if xattr_wanted(x) {
                            pax.xattrs.push((x.to_vec(), value.to_vec()));
                        } else {
                            crate::pr_debug!(
                                "tmpfs restore: {}: extended attribute {} left out",
                                self.cur,
                                show(x)
                            );
                        }
                    }
                }
            }
        }
        Ok(pax)
    }

    /// The sparse map of GNU sparse header `h` (with the extension blocks
    /// that follow it), checked against its data size `size`.
    fn sparse_map(&mut self, h: &Header, size: u64) -> Result<Sparse, TmpfsError> {
        let Some(gnu) = h.as_gnu() else {
            return Err(self.malformed("a sparse entry (type S) without a GNU header"));
        };
        let real_size = gnu
            .real_size()
            .map_err(|_| self.malformed("its real size field is no number"))?;
        let mut segments = Vec::new();
        let mut add = |this: &Self, s: &tar::GnuSparseHeader| -> Result<bool, TmpfsError> {
            if s.is_empty() {
                return Ok(false);
            }
            if segments.len() >= MAX_SPARSE_SEGMENTS {
                return Err(this.malformed(format!(
                    "its sparse map has more than {MAX_SPARSE_SEGMENTS} segments"
                )));
            }
            let bad = || this.malformed("a sparse map entry is no number");
            segments.push((
                s.offset().map_err(|_| bad())?,
                s.length().map_err(|_| bad())?,
            ));
            Ok(true)
        };
        for s in &gnu.sparse {
            if !add(self, s)? {
                break;
            }
        }
        let mut extended = gnu.is_extended();
        while extended {
            let mut ext = GnuExtSparseHeader::new();
            if !self.exact(ext.as_mut_bytes())? {
                return Err(self.truncated());
            }
            for s in ext.sparse() {
                if !add(self, s)? {
                    break;
                }
            }
            extended = ext.is_extended();
        }
        let mut end = 0u64;
        let mut stored = 0u64;
        for &(off, len) in &segments {
            let seg_end = off.checked_add(len);
            match seg_end {
                Some(e) if off >= end && e <= real_size => {
                    end = e;
                    stored += len;
                }
                _ => {
                    return Err(self.malformed(format!(
                        "its sparse map has segment {off}+{len} out of order, overlapping or \
                         beyond its size {real_size}"
                    )));
                }
            }
        }
        if stored != size {
            return Err(self.malformed(format!(
                "its sparse map holds {stored} bytes of data, its header says {size}"
            )));
        }
        Ok(Sparse {
            segments,
            real_size,
        })
    }

    /// After the end-of-archive marker: read the rest of the stream (GNU
    /// tar's record padding) so that the compression's end and checksum
    /// are checked.
    pub(super) fn finish(&mut self) -> Result<(), TmpfsError> {
        self.cur = "the padding after the end-of-archive marker".into();
        let mut buf = [0u8; 8192];
        while self.fill(&mut buf)? != 0 {}
        Ok(())
    }
}

/// Whether the header's checksum is right: the sum of its bytes with the
/// checksum field taken as spaces, unsigned (POSIX) or signed (what some
/// old tars wrote, and GNU tar accepts).
fn check_sum(h: &Header) -> Result<(), String> {
    let want = h
        .cksum()
        .map_err(|_| "its checksum field is no number".to_string())?;
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &b) in h.as_bytes().iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i32::from(b as i8);
    }
    if want == unsigned || want as i32 == signed {
        Ok(())
    } else {
        Err(format!(
            "its header checksum is {want}, its bytes sum to {unsigned}: not a tar header, or damaged"
        ))
    }
}

/// A PAX time, `SECONDS[.FRACTION]`, possibly negative.
fn parse_time(s: &str) -> Option<(i64, u32)> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nsec = 0u32;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nsec += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    if !neg {
        return Some((secs, nsec));
    }
    if nsec == 0 {
        Some((secs.checked_neg()?, 0))
    } else {
        Some((secs.checked_neg()?.checked_sub(1)?, 1_000_000_000 - nsec))
    }
}

#[cfg(test)]
mod tests {
    use tar::EntryType;

    use super::super::write::{RECORD, TarWriter, pax_record, set_field};
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(
            parse_time("1796662151.899412886"),
            Some((1796662151, 899412886))
        );
        assert_eq!(parse_time("12"), Some((12, 0)));
        assert_eq!(parse_time("12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_time("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_time("-3"), Some((-3, 0)));
        assert_eq!(parse_time("1.1234567891"), Some((1, 123456789)));
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("x"), None);
        assert_eq!(parse_time("1.x"), None);
        assert_eq!(parse_time("99999999999999999999999"), None);
    }

    fn archive(f: impl FnOnce(&mut TarWriter<&mut Vec<u8>>)) -> Vec<u8> {
        let mut v = Vec::new();
        let mut w = TarWriter::new(&mut v);
        f(&mut w);
        w.finish().unwrap();
        v
    }

    fn file_header(size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o4755);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(1000);
        h.set_size(size);
        h
    }

    #[test]
    fn long_names_and_pax_round_trip() {
        let long: Vec<u8> = std::iter::repeat_n(&b"abcdefghi/"[..], 30)
            .flatten()
            .copied()
            .chain(*b"file")
            .collect();
        let link = vec![b'l'; 150];
        let records = [
            pax_record(b"SCHILY.xattr.user.a", b"\x00\x01bin"),
            pax_record(b"SCHILY.xattr.system.posix_acl_access", b"x"),
        ]
        .concat();
        let v = archive(|w| {
            let mut h = file_header(3);
            w.header(&mut h, &long, None, &records).unwrap();
            w.data(b"abc").unwrap();
            w.pad().unwrap();
            let mut h = file_header(0);
            h.set_entry_type(EntryType::Symlink);
            w.header(&mut h, b"./s", Some(&link), &[]).unwrap();
        });
        assert_eq!(v.len() % RECORD as usize, 0);
        let mut r = TarReader::new(&v[..]);
        let e = r.next().unwrap().unwrap();
        assert_eq!(e.name, long);
        assert_eq!(e.kind, Kind::File);
        assert_eq!(
            (e.mode, e.uid, e.gid, e.mtime),
            (0o4755, 1234, 5678, (1000, 0))
        );
        assert_eq!(
            e.xattrs,
            vec![(b"user.a".to_vec(), b"\x00\x01bin".to_vec())]
        );
        let mut buf = [0u8; 10];
        assert_eq!(r.read_data(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(r.read_data(&mut buf).unwrap(), 0);
        let e = r.next().unwrap().unwrap();
        assert_eq!(
            (e.kind, &e.name[..], &e.link[..]),
            (Kind::Symlink, &b"./s"[..], &link[..])
        );
        assert!(r.next().unwrap().is_none());
        r.finish().unwrap();
    }

    fn err_of(v: &[u8]) -> TmpfsError {
        let mut r = TarReader::new(v);
        loop {
            match r.next() {
                Ok(Some(_)) => {}
                Ok(None) => match r.finish() {
                    Ok(()) => panic!("archive accepted"),
                    Err(e) => return e,
                },
                Err(e) => return e,
            }
        }
    }

    #[test]
    fn hostile_headers_are_refused_cleanly() {
        // A long name longer than the limit: refused before reading it.
        let mut h = Header::new_gnu();
        set_field(&mut h.as_old_mut().name, b"././@LongLink");
        h.set_size(MAX_NAME + 1);
        h.set_entry_type(EntryType::GNULongName);
        h.set_cksum();
        let e = err_of(h.as_bytes());
        assert!(e.to_string().contains("GNU long name"), "{e}");

        // A PAX header claiming 1 TiB.
        let mut h = Header::new_ustar();
        h.set_size(1 << 40);
        h.set_entry_type(EntryType::XHeader);
        h.set_cksum();
        let e = err_of(h.as_bytes());
        assert!(matches!(e, TmpfsError::Malformed { .. }), "{e}");

        // A file claiming far more data than the stream holds.
        let v = archive(|w| {
            let mut h = file_header(u64::MAX / 2);
            w.header(&mut h, b"./big", None, &[]).unwrap();
        });
        let mut r = TarReader::new(&v[..]);
        assert_eq!(r.next().unwrap().unwrap().kind, Kind::File);
        let mut buf = vec![0u8; 1 << 16];
        let err = loop {
            match r.read_data(&mut buf) {
                Ok(0) => panic!("data ended"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(matches!(err, TmpfsError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("./big"), "{err}");

        // A size so big its padding overflows.
        let v = archive(|w| {
            let mut h = file_header(u64::MAX);
            w.header(&mut h, b"./huge", None, &[]).unwrap();
        });
        let e = err_of(&v);
        assert!(e.to_string().contains("./huge"), "{e}");

        // A damaged checksum.
        let mut v = archive(|w| {
            let mut h = file_header(0);
            w.header(&mut h, b"./f", None, &[]).unwrap();
        });
        v[0] ^= 1;
        let e = err_of(&v);
        assert!(e.to_string().contains("checksum"), "{e}");

        // No end-of-archive marker.
        let v = archive(|w| {
            let mut h = file_header(0);
            w.header(&mut h, b"./f", None, &[]).unwrap();
        });
        let e = err_of(&v[..BLOCK]);
        assert!(matches!(e, TmpfsError::Truncated { .. }), "{e}");

        // An unknown entry type.
        let v = archive(|w| {
            let mut h = file_header(0);
            h.set_entry_type(EntryType::new(b'D'));
            w.header(&mut h, b"./dumpdir", None, &[]).unwrap();
        });
        let e = err_of(&v);
        assert!(e.to_string().contains("./dumpdir"), "{e}");

        // Garbage.
        let e = err_of(&[0x55u8; 4096]);
        assert!(matches!(e, TmpfsError::Malformed { .. }), "{e}");
    }

    fn sparse_header(segs: &[(u64, u64)], real: u64, stored: u64) -> Header {
        let mut h = file_header(stored);
        h.set_entry_type(EntryType::GNUSparse);
        let g = h.as_gnu_mut().unwrap();
        g.set_real_size(real);
        for (s, &(o, l)) in g.sparse.iter_mut().zip(segs) {
            s.set_offset(o);
            s.set_length(l);
        }
        h
    }

    #[test]
    fn sparse_maps_are_checked() {
        let ok = archive(|w| {
            let mut h = sparse_header(&[(4096, 3), (10000, 0)], 10000, 3);
            w.header(&mut h, b"./s", None, &[]).unwrap();
            w.data(b"xyz").unwrap();
            w.pad().unwrap();
        });
        let mut r = TarReader::new(&ok[..]);
        let e = r.next().unwrap().unwrap();
        assert_eq!(
            e.sparse,
            Some(Sparse {
                segments: vec![(4096, 3), (10000, 0)],
                real_size: 10000
            })
        );
        for (segs, real, stored) in [
            (&[(4096u64, 3u64), (0, 3)][..], 10000, 6), // out of order
            (&[(0, 3), (2, 3)][..], 10000, 6),          // overlapping
            (&[(9999, 3)][..], 10000, 3),               // beyond the size
            (&[(0, 3)][..], 10000, 4),                  // data size differs
            (&[(u64::MAX / 2, u64::MAX / 2 + 10)][..], u64::MAX, 0),
        ] {
            let v = archive(|w| {
                let mut h = sparse_header(segs, real, stored);
                w.header(&mut h, b"./bad", None, &[]).unwrap();
            });
            let e = err_of(&v);
            assert!(
                matches!(&e, TmpfsError::Malformed { entry, .. } if entry.contains("./bad")),
                "{segs:?}: {e}"
            );
        }
    }
}
