//! How CRIU stores a termios' control characters in `termios_entry.c_cc`
//! (19 `uint32`s, the kernel's `NCCS`): every CRIU copies them with
//! `memcpy` from and to glibc's `struct termios`, whose `c_cc` is 32 bytes,
//! so the image holds those 32 bytes packed in memory order into its first
//! 8 words (the rest is whatever its buffer held). Both tools' images must
//! mean the same: ours are written that way (the rest zero) and read back
//! the same way.

/// Words in `c_cc` (`TERMIOS_NCC`).
pub const CC_WORDS: usize = 19;
/// glibc's `NCCS`: the bytes packed into the first words.
pub const GLIBC_NCCS: usize = 32;

/// The `c_cc` words for control characters `cc` (the kernel's, 19 of them;
/// glibc pads to 32 with `_POSIX_VDISABLE`, 0).
pub fn pack_cc(cc: &[u8]) -> Vec<u32> {
    let mut bytes = [0u8; GLIBC_NCCS];
    let n = cc.len().min(GLIBC_NCCS);
    bytes[..n].copy_from_slice(&cc[..n]);
    let mut words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    words.resize(CC_WORDS, 0);
    words
}

/// The control characters `c_cc` words stand for (glibc's 32; the kernel
/// takes the first of them).
pub fn unpack_cc(words: &[u32]) -> [u8; GLIBC_NCCS] {
    let mut bytes = [0u8; GLIBC_NCCS];
    for (i, w) in words.iter().take(GLIBC_NCCS / 4).enumerate() {
        bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_packed_as_criu_copies_them() {
        // What CRIU 4.1.1 wrote for a pty with the default characters (on
        // a little-endian machine; the words past the 8th are its garbage).
        let criu: [u32; 19] = [
            360_651_781,
            65_542,
            1_708_817,
            370_609_938,
            0,
            0,
            0,
            0,
            2_214_730_432,
            21_845,
            49,
            0,
            1_345_289_024,
            32_736,
            1_345_289_024,
            32_736,
            2_214_730_464,
            21_845,
            2_214_730_464,
        ];
        let cc = [
            5u8, 28, 127, 21, 6, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0,
        ];
        if cfg!(target_endian = "little") {
            assert_eq!(unpack_cc(&criu)[..19], cc);
            assert_eq!(pack_cc(&cc)[..8], criu[..8]);
        }
        assert_eq!(unpack_cc(&pack_cc(&cc))[..19], cc);
        assert_eq!(pack_cc(&cc).len(), CC_WORDS);
        assert_eq!(pack_cc(&cc)[8..], [0; 11]);
    }
}
