//! `/proc/PID/auxv`: the ELF auxiliary vector the task was started with, as
//! raw words in the task's word size and byte order, ending with `AT_NULL`.

use super::ProcDir;
use super::error::{ParseError, ProcError, TextError};

/// `AT_NULL`, the terminating type.
pub const AT_NULL: u64 = linux_raw_sys::auxvec::AT_NULL as u64;

/// Cap on the auxv size: the kernel keeps at most `AT_VECTOR_SIZE` words
/// (about 50-60 depending on the arch); this leaves ample room.
const AUXV_MAX: usize = 4096;

/// The words of an auxv (what CRIU's `mm.mm_saved_auxv` holds), including
/// the terminating `AT_NULL` pair when present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Auxv {
    pub words: Vec<u64>,
}

impl Auxv {
    /// `(type, value)` pairs up to, not including, `AT_NULL`.
    pub fn pairs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.words
            .chunks_exact(2)
            .map(|p| (p[0], p[1]))
            .take_while(|&(t, _)| t != AT_NULL)
    }

    /// The value of entry `at`, if present.
    pub fn get(&self, at: u64) -> Option<u64> {
        self.pairs().find(|&(t, _)| t == at).map(|(_, v)| v)
    }
}

/// Parse auxv bytes of a task with `word` bytes per word (4 or 8) in native
/// byte order. Trailing bytes after `AT_NULL` are dropped.
pub fn parse(bytes: &[u8], word: usize) -> Result<Auxv, TextError> {
    let err = |e| TextError::new(0, e);
    if word != 4 && word != 8 {
        return Err(err(ParseError::Unexpected("word size must be 4 or 8")));
    }
    if !bytes.len().is_multiple_of(2 * word) {
        return Err(err(ParseError::Unexpected(
            "length is not a whole number of pairs",
        )));
    }
    let mut words = Vec::with_capacity(bytes.len() / word);
    for pair in bytes.chunks_exact(2 * word) {
        let (t, v) = pair.split_at(word);
        let (t, v) = (native(t), native(v));
        words.push(t);
        words.push(v);
        if t == AT_NULL {
            break;
        }
    }
    Ok(Auxv { words })
}

fn native(b: &[u8]) -> u64 {
    match b.len() {
        4 => u64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        _ => {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[..8]);
            u64::from_ne_bytes(w)
        }
    }
}

impl ProcDir {
    /// Read `auxv` of a task with our own word size (64-bit tasks on a
    /// 64-bit build; compat tasks are not supported).
    pub fn auxv(&self) -> Result<Auxv, ProcError> {
        let bytes = self.read_capped("auxv", AUXV_MAX)?;
        parse(&bytes, size_of::<usize>()).map_err(|e| e.in_file(self.path_of("auxv")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    #[test]
    fn pairs_and_terminator() {
        let a = parse(&bytes(&[6, 4096, 33, 0x7fff0000, 0, 0, 99, 99]), 8).unwrap();
        assert_eq!(a.words, [6, 4096, 33, 0x7fff0000, 0, 0]);
        assert_eq!(a.get(6), Some(4096));
        assert_eq!(a.get(99), None);
        assert_eq!(a.pairs().count(), 2);
        let w32: Vec<u8> = [6u32, 4096, 0, 0]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        assert_eq!(parse(&w32, 4).unwrap().get(6), Some(4096));
    }

    #[test]
    fn odd_lengths() {
        assert!(parse(&[0; 15], 8).is_err());
        assert!(parse(&[0; 16], 3).is_err());
        assert_eq!(parse(&[], 8).unwrap().words, Vec::<u64>::new());
        // No terminator: everything is kept.
        assert_eq!(parse(&bytes(&[6, 1]), 8).unwrap().words, [6, 1]);
    }
}
