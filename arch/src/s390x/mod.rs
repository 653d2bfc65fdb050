//! s390x (big-endian, 64-bit tasks only): syscall entry, numbers, registers,
//! signal frame, blob convention.

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
