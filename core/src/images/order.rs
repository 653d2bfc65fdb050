//! The byte order of an image file.
//!
//! CRIU writes its magics, length prefixes and the few raw numbers in
//! payloads (SysV semaphore values) in the order of the machine that dumps,
//! so images made on s390x are big-endian and those made on x86_64, arm64
//! and ppc64le little-endian. We write the same way, so CRIU on any of
//! these machines reads what we write there, and we read either order: the
//! first word of every image with a header is a known magic, which tells
//! the order before anything else is read. Protobuf messages and page
//! contents have no byte order of their own.

/// How the fixed-width numbers of one image file are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    /// The order of the machine we run on: the one we write in.
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "big") {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };

    pub fn u32_bytes(self, v: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }

    pub fn read_u32(self, b: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }

    pub fn u16_bytes(self, v: u16) -> [u8; 2] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }

    pub fn read_u16(self, b: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }

    /// The order in which `word` reads as one of `known`, trying little
    /// endian first (a magic and its byte swap are never both magics, which
    /// a unit test checks over the whole table).
    pub fn detect(word: [u8; 4], known: impl Fn(u32) -> bool) -> Option<ByteOrder> {
        [ByteOrder::Little, ByteOrder::Big]
            .into_iter()
            .find(|o| known(o.read_u32(word)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::{KINDS, magic};

    #[test]
    fn no_magic_is_another_magic_byte_swapped() {
        let mut all: Vec<u32> = KINDS.iter().map(|k| k.magic).collect();
        all.extend([magic::IMG_COMMON, magic::IMG_SERVICE]);
        all.retain(|&m| m != magic::RAW);
        for &m in &all {
            assert!(
                !all.contains(&m.swap_bytes()),
                "{m:#x} swapped is a magic too: the byte order would be ambiguous"
            );
        }
    }

    #[test]
    fn detects_both_orders() {
        let is_core = |w| w == magic::CORE;
        let le = ByteOrder::Little.u32_bytes(magic::CORE);
        let be = ByteOrder::Big.u32_bytes(magic::CORE);
        assert_eq!(ByteOrder::detect(le, is_core), Some(ByteOrder::Little));
        assert_eq!(ByteOrder::detect(be, is_core), Some(ByteOrder::Big));
        assert_eq!(ByteOrder::detect([1, 2, 3, 4], is_core), None);
        assert_eq!(
            ByteOrder::Big.read_u16(ByteOrder::Big.u16_bytes(0x1234)),
            0x1234
        );
        assert_eq!(ByteOrder::Little.u16_bytes(0x1234), [0x34, 0x12]);
    }
}
