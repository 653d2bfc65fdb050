//! Per-arch access to an FP control register used as a marker: its value
//! travels through signal frames and nothing in ordinary code changes it.

use criu_arch::FpRegs;

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::FpRegs;
    /// MXCSR with all exceptions masked and rounding toward zero.
    pub const TEST_MARKER: u64 = 0x7f80;
    pub fn current_marker() -> u64 {
        let mut v: u32 = 0;
        // SAFETY: stmxcsr stores 4 bytes into `v`.
        unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack)) };
        v as u64
    }
    pub fn marker_of(f: &FpRegs) -> u64 {
        f.mxcsr as u64
    }
    pub fn set_marker(f: &mut FpRegs, v: u64) {
        f.mxcsr = v as u32;
    }
}

#[cfg(target_arch = "aarch64")]
mod imp {
    use super::FpRegs;
    /// FPCR with RMode = round toward zero (bits 23:22 = 0b11).
    pub const TEST_MARKER: u64 = 3 << 22;
    pub fn current_marker() -> u64 {
        let v: u64;
        // SAFETY: reading FPCR has no side effects.
        unsafe { core::arch::asm!("mrs {}, fpcr", out(reg) v, options(nomem, nostack)) };
        v
    }
    pub fn marker_of(f: &FpRegs) -> u64 {
        f.fpcr as u64
    }
    pub fn set_marker(f: &mut FpRegs, v: u64) {
        f.fpcr = v as u32;
    }
}

#[cfg(target_arch = "powerpc64")]
mod imp {
    use super::FpRegs;
    /// FPSCR with RN = round toward zero (0b01).
    pub const TEST_MARKER: u64 = 1;
    pub fn current_marker() -> u64 {
        let v: f64;
        // SAFETY: mffs copies FPSCR into an FPR.
        unsafe { core::arch::asm!("mffs {}", out(freg) v, options(nomem, nostack)) };
        v.to_bits() & 0xffff_ffff
    }
    pub fn marker_of(f: &FpRegs) -> u64 {
        f.fpscr & 0xffff_ffff
    }
    pub fn set_marker(f: &mut FpRegs, v: u64) {
        f.fpscr = v;
    }
}

#[cfg(target_arch = "s390x")]
mod imp {
    use super::FpRegs;
    /// FPC with BFP rounding mode = round toward zero (1).
    pub const TEST_MARKER: u64 = 1;
    pub fn current_marker() -> u64 {
        let v: u64;
        // SAFETY: efpc copies the FP control register into a GPR.
        unsafe { core::arch::asm!("efpc {}", out(reg) v, options(nomem, nostack)) };
        v & 0xffff_ffff
    }
    pub fn marker_of(f: &FpRegs) -> u64 {
        f.fpc as u64
    }
    pub fn set_marker(f: &mut FpRegs, v: u64) {
        f.fpc = v as u32;
    }
}

pub use imp::*;
