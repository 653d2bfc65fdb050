//! powerpc64 (ppc64le, ELFv2 only): syscall entry, numbers, registers, signal
//! frame, blob convention.

mod call;
pub mod nr;
mod regs;
mod sigframe;
mod syscall;
mod vdso;

pub use crate::common::*;
pub use call::*;
pub use regs::*;
pub use sigframe::*;
pub use syscall::*;
pub use vdso::*;

/// powerpc's ioctl direction bits (`<asm/ioctl.h>`): three bits from 29,
/// and a 13-bit size; [`crate::ioc`] uses these instead of the generic ones
/// (defined here, not in a glob-imported module, so that they shadow
/// `common`'s).
pub const IOC_NONE: u32 = 1;
pub const IOC_WRITE: u32 = 4;
pub const IOC_READ: u32 = 2;
pub const IOC_DIR_SHIFT: u32 = 29;
pub const IOC_SIZE_BITS: u32 = 13;
