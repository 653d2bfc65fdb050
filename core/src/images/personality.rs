//! How CRIU stores a task's personality in `core.tc.personality`: every
//! CRIU reads `/proc/PID/personality` (hexadecimal, `00240000`) with
//! `atoi`, so the image holds the hex digits read as a decimal number
//! (240000 for 0x240000). Both tools' images must mean the same, so ours
//! are written that way too and read back by the inverse. Hex digits
//! `a`-`f` cannot be written so (`atoi` stops at them): no personality
//! Linux defines with a flag has them, and such a value is refused by name
//! rather than stored wrong.

/// The image value of personality `p`, if CRIU's form can hold it.
pub fn to_image(p: u32) -> Option<u32> {
    format!("{p:x}").parse().ok()
}

/// The personality an image value stands for (the inverse of
/// [`to_image`]; a value whose decimal digits are no hex number, which no
/// dump writes, is taken as it is).
pub fn from_image(v: u32) -> u32 {
    u32::from_str_radix(&v.to_string(), 16).unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personalities_are_stored_as_criu_reads_them() {
        // ADDR_NO_RANDOMIZE | ADDR_COMPAT_LAYOUT: CRIU wrote 240000.
        assert_eq!(to_image(0x24_0000), Some(240_000));
        assert_eq!(from_image(240_000), 0x24_0000);
        for p in [0, 8, 0x40000, 0x0400_0003, 0x0800_0000] {
            assert_eq!(from_image(to_image(p).unwrap()), p);
        }
        // PER_IRIX64 (0x0b) has a hex letter: not representable.
        assert_eq!(to_image(0x0b), None);
    }
}
