//! x86_64: syscall entry, numbers, registers, signal frame, blob convention.

mod call;
/// CPU capabilities for `cpuinfo.img` (x86_64 only: other arches record
/// the kernel's hwcaps, or nothing).
pub mod cpu;
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
