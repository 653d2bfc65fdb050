//! Registers into the per-arch `thread_info` of `core_entry`: the
//! conversion is the arch part of core, in `crate::regs`.

pub use crate::regs::{RegsError, fill_thread_info};
