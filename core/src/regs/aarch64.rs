//! aarch64: `thread_info_aarch64` (`user_aarch64_regs_entry` = x0..x30, sp,
//! pc, pstate; `user_aarch64_fpsimd_context_entry` = v0..v31 as two words
//! each, low word first, plus fpsr/fpcr; `tls` = tpidr_el0), laid out as
//! CRIU's `save_task_regs` writes it.
//!
//! Not carried: the pointer-authentication keys (`pac_keys`). A restored
//! task runs with the keys of the tool it was forked from, so a dumped
//! task whose code signs return addresses (`-mbranch-protection`) would
//! fail authentication on returns through frames signed before the dump.
//! SVE/SME state beyond the FP/SIMD registers and tpidr2_el0 are not kept
//! either (CRIU does not keep them).

use criu_arch::{FpRegs, GpRegs, fill_sigframe};
use rustix::process::Pid;

use super::{Frame, RegsError, set_tid_address};
use crate::images::pb;
use crate::infect::ExtRegs;
use crate::sys::ptrace::note;

/// `struct user_fpsimd_state` up to and including fpcr (the regset may
/// or may not include the trailing reserved words).
const FPSIMD_LEN: usize = 32 * 16 + 8;

// ---- dump ----

/// tpidr_el0 of stopped thread `pid` (`NT_ARM_TLS`; newer kernels append
/// tpidr2_el0, which is ignored).
fn tls(pid: i32) -> Result<u64, RegsError> {
    let tid = Pid::from_raw(pid).ok_or(RegsError::Invalid(format!("bad pid {pid}")))?;
    let mut buf = [0u8; 16];
    let ptrace_err = |source| RegsError::Ptrace {
        what: "GETREGSET(NT_ARM_TLS)",
        pid,
        source,
    };
    let n =
        crate::sys::ptrace::get_regset(tid, criu_arch::NT_ARM_TLS, &mut buf).map_err(ptrace_err)?;
    if n < 8 {
        return Err(RegsError::Invalid(format!(
            "task {pid}: NT_ARM_TLS is {n} bytes"
        )));
    }
    let mut w = [0u8; 8];
    w.copy_from_slice(&buf[..8]);
    Ok(u64::from_le_bytes(w))
}

/// The FP/SIMD registers from the `NT_PRFPREG` bytes.
fn fpsimd(pid: i32, ext: &ExtRegs) -> Result<pb::UserAarch64FpsimdContextEntry, RegsError> {
    let b = &ext.bytes;
    if ext.note != note::PRFPREG || b.len() < FPSIMD_LEN {
        return Err(RegsError::Invalid(format!(
            "task {pid}: FP/SIMD register set of {} bytes (note {:#x})",
            b.len(),
            ext.note
        )));
    }
    let word = |o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(w)
    };
    let half = |o: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[o..o + 4]);
        u32::from_le_bytes(w)
    };
    Ok(pb::UserAarch64FpsimdContextEntry {
        // v[i] as (low 64 bits, high 64 bits), as CRIU stores it.
        vregs: (0..64).map(|i| word(i * 8)).collect(),
        fpsr: half(512),
        fpcr: half(516),
    })
}

/// Fill `core.mtype` and `ti_aarch64` (see the module doc of `regs`).
pub fn fill_thread_info(
    pid: i32,
    core: &mut pb::CoreEntry,
    g: &GpRegs,
    ext: &ExtRegs,
    clear_tid_addr: u64,
) -> Result<(), RegsError> {
    core.mtype = criu_arch::CORE_MTYPE as i32;
    core.ti_aarch64 = Some(pb::ThreadInfoAarch64 {
        clear_tid_addr,
        tls: tls(pid)?,
        gpregs: pb::UserAarch64RegsEntry {
            regs: g.regs.to_vec(),
            sp: g.sp,
            pc: g.pc,
            pstate: g.pstate,
        },
        fpsimd: fpsimd(pid, ext)?,
        pac_keys: None,
    });
    Ok(())
}

// ---- restore ----

/// Nothing to probe: the FP/SIMD record of arm64 frames has one format.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostFpu;

impl HostFpu {
    pub fn probe(_pid: Pid) -> HostFpu {
        HostFpu
    }
}

/// `PSR_MODE_MASK` and friends: the exception level and register width
/// bits of pstate. rt_sigreturn accepts only AArch64 EL0 (`PSR_MODE_EL0t`
/// = 0, `PSR_MODE32_BIT` clear).
const PSR_MODE_MASK: u64 = 0x1f;

fn thread_info(core: &pb::CoreEntry) -> Result<&pb::ThreadInfoAarch64, String> {
    let ti = core
        .ti_aarch64
        .as_ref()
        .ok_or("no ti_aarch64 (aarch64 registers)")?;
    if ti.gpregs.regs.len() != 31 {
        return Err(format!(
            "ti_aarch64 has {} general registers (want 31)",
            ti.gpregs.regs.len()
        ));
    }
    if !ti.fpsimd.vregs.is_empty() && ti.fpsimd.vregs.len() != 64 {
        return Err(format!(
            "ti_aarch64 has {} FP/SIMD words (want 64)",
            ti.fpsimd.vregs.len()
        ));
    }
    Ok(ti)
}

/// What rt_sigreturn would refuse (a pstate that is not AArch64 EL0) or
/// what would fault on the first instruction (pc outside user space).
pub fn validate(core: &pb::CoreEntry, task_size: u64) -> Result<(), String> {
    let ti = thread_info(core)?;
    let r = &ti.gpregs;
    if r.pstate & PSR_MODE_MASK != 0 {
        return Err(format!(
            "pstate {:#x} is not AArch64 EL0 (mode bits {:#x})",
            r.pstate,
            r.pstate & PSR_MODE_MASK
        ));
    }
    if r.pc >= task_size {
        return Err(format!(
            "pc {:#x} is outside the user address space (below {task_size:#x})",
            r.pc
        ));
    }
    Ok(())
}

/// The frame at `frame_addr` that resumes the thread of `core` with
/// `sigmask`; tpidr_el0 and the clear_child_tid address go beside it.
pub fn frame_for(
    core: &pb::CoreEntry,
    frame_addr: u64,
    sigmask: u64,
    _host: &HostFpu,
) -> Result<Frame, RegsError> {
    let ti = thread_info(core).map_err(RegsError::Invalid)?;
    let mut g = GpRegs {
        sp: ti.gpregs.sp,
        pc: ti.gpregs.pc,
        pstate: ti.gpregs.pstate,
        ..GpRegs::default()
    };
    g.regs.copy_from_slice(&ti.gpregs.regs);
    let mut f = FpRegs {
        fpsr: ti.fpsimd.fpsr,
        fpcr: ti.fpsimd.fpcr,
        ..FpRegs::default()
    };
    for (v, w) in f.vregs.iter_mut().zip(ti.fpsimd.vregs.chunks_exact(2)) {
        *v = u128::from(w[0]) | (u128::from(w[1]) << 64);
    }
    let mut frame = Box::<criu_arch::RtSigframe>::default();
    fill_sigframe(&mut frame, frame_addr, &g, Some(&f), sigmask);
    Ok(Frame {
        frame,
        arch_syscalls: vec![set_tid_address(ti.clear_tid_addr)],
        thread_pointer: ti.tls,
    })
}
