//! ioctl request numbers as `_IOC(dir, type, nr, size)` builds them. The
//! bits are `<asm-generic/ioctl.h>`'s here; an arch that lays them out
//! otherwise (powerpc) defines its own `IOC_*` in its module, which take
//! the place of these (explicit items shadow the glob re-export).
// Unused, and so dead, where the arch has its own.
#![allow(dead_code)]

/// `_IOC_NONE`, `_IOC_WRITE`, `_IOC_READ`.
pub const IOC_NONE: u32 = 0;
pub const IOC_WRITE: u32 = 1;
pub const IOC_READ: u32 = 2;
/// Where the direction bits start, and how many bits the size has.
pub const IOC_DIR_SHIFT: u32 = 30;
pub const IOC_SIZE_BITS: u32 = 14;

/// `_IOC(dir, ty, nr, size)` with this arch's bits.
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    (dir << crate::IOC_DIR_SHIFT)
        | (((size as u32) & ((1 << crate::IOC_SIZE_BITS) - 1)) << 16)
        | (ty << 8)
        | nr
}
