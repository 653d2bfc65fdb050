//! aarch64: `thread_info_aarch64` (`user_aarch64_regs_entry` = x0..x30, sp,
//! pc, pstate; `user_aarch64_fpsimd_context_entry` = v0..v31 as two words
//! each, low word first, plus fpsr/fpcr; `tls` = tpidr_el0), laid out as
//! CRIU's `save_task_regs` writes it.
//!
//! The pointer-authentication keys (`pac_keys`, where the CPU has them)
//! are dumped like CRIU's `save_pac_keys` does and written back by ptrace
//! while the restored threads wait in the restorer ([`ptrace_regsets`]): a
//! restored task otherwise runs with the keys of the tool it was forked
//! from, and code that signs return addresses (`-mbranch-protection`)
//! would fail authentication on returns through frames signed before the
//! dump. SVE/SME state beyond the FP/SIMD registers and tpidr2_el0 are not
//! kept (CRIU does not keep them either).

use criu_arch::{FpRegs, GpRegs, fill_sigframe};
use rustix::process::Pid;

use super::{Frame, RegsError, set_tid_address};
use crate::images::pb;
use crate::infect::ExtRegs;
use crate::sys::ptrace::note;

/// `struct user_fpsimd_state` up to and including fpcr (the regset may
/// or may not include the trailing reserved words).
const FPSIMD_LEN: usize = 32 * 16 + 8;

/// `AT_HWCAP` bits: address and generic pointer authentication.
const HWCAP_PACA: usize = linux_raw_sys::ptrace::HWCAP_PACA as usize;
const HWCAP_PACG: usize = linux_raw_sys::ptrace::HWCAP_PACG as usize;

fn hwcap() -> usize {
    rustix::param::linux_hwcap().0
}

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

/// Read regset `note` of `pid`, which must fill `buf` exactly.
fn read_regset(pid: i32, note: u32, what: &'static str, buf: &mut [u8]) -> Result<(), RegsError> {
    let tid = Pid::from_raw(pid).ok_or(RegsError::Invalid(format!("bad pid {pid}")))?;
    let n = crate::sys::ptrace::get_regset(tid, note, buf).map_err(|source| RegsError::Ptrace {
        what,
        pid,
        source,
    })?;
    if n != buf.len() {
        return Err(RegsError::Invalid(format!(
            "task {pid}: {what} gave {n} bytes (want {})",
            buf.len()
        )));
    }
    Ok(())
}

fn le64(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

/// The PAC keys of stopped thread `pid` as CRIU's `save_pac_keys` stores
/// them (each 128-bit key as lo/hi words), `None` without PAC hardware.
fn pac_keys(pid: i32) -> Result<Option<pb::PacKeys>, RegsError> {
    let caps = hwcap();
    if caps & (HWCAP_PACA | HWCAP_PACG) == 0 {
        return Ok(None);
    }
    let mut keys = pb::PacKeys::default();
    if caps & HWCAP_PACA != 0 {
        let mut b = [0u8; 64];
        read_regset(
            pid,
            criu_arch::NT_ARM_PACA_KEYS,
            "GETREGSET(NT_ARM_PACA_KEYS)",
            &mut b,
        )?;
        let mut enabled = [0u8; 8];
        read_regset(
            pid,
            criu_arch::NT_ARM_PAC_ENABLED_KEYS,
            "GETREGSET(NT_ARM_PAC_ENABLED_KEYS)",
            &mut enabled,
        )?;
        keys.pac_address_keys = Some(pb::PacAddressKeys {
            apiakey_lo: le64(&b, 0),
            apiakey_hi: le64(&b, 1),
            apibkey_lo: le64(&b, 2),
            apibkey_hi: le64(&b, 3),
            apdakey_lo: le64(&b, 4),
            apdakey_hi: le64(&b, 5),
            apdbkey_lo: le64(&b, 6),
            apdbkey_hi: le64(&b, 7),
            pac_enabled_key: le64(&enabled, 0),
        });
    }
    if caps & HWCAP_PACG != 0 {
        let mut b = [0u8; 16];
        read_regset(
            pid,
            criu_arch::NT_ARM_PACG_KEYS,
            "GETREGSET(NT_ARM_PACG_KEYS)",
            &mut b,
        )?;
        keys.pac_generic_keys = Some(pb::PacGenericKeys {
            apgakey_lo: le64(&b, 0),
            apgakey_hi: le64(&b, 1),
        });
    }
    Ok(Some(keys))
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
        pac_keys: pac_keys(pid)?,
    });
    Ok(())
}

// ---- restore ----

/// Nothing to probe: the FP/SIMD record of arm64 frames has one format.
/// (A struct with a private field, not a unit struct, so that
/// arch-neutral callers build it with `default()` on every arch.)
#[derive(Clone, Copy, Debug, Default)]
pub struct HostFpu {
    _none: (),
}

impl HostFpu {
    pub fn probe(_pid: Pid) -> Result<HostFpu, rustix::io::Errno> {
        Ok(HostFpu::default())
    }
}

/// `PSR_MODE_MASK` and friends: the exception level and register width
/// bits of pstate. rt_sigreturn accepts only AArch64 EL0 (`PSR_MODE_EL0t`
/// = 0, `PSR_MODE32_BIT` clear).
const PSR_MODE_MASK: u64 = 0x1f;

fn thread_info(core: &pb::CoreEntry) -> Result<&pb::ThreadInfoAarch64, RegsError> {
    let ti = core
        .ti_aarch64
        .as_ref()
        .ok_or_else(|| RegsError::Invalid("no ti_aarch64 (aarch64 registers)".into()))?;
    if ti.gpregs.regs.len() != 31 {
        return Err(RegsError::Invalid(format!(
            "ti_aarch64 has {} general registers (want 31)",
            ti.gpregs.regs.len()
        )));
    }
    if !ti.fpsimd.vregs.is_empty() && ti.fpsimd.vregs.len() != 64 {
        return Err(RegsError::Invalid(format!(
            "ti_aarch64 has {} FP/SIMD words (want 64)",
            ti.fpsimd.vregs.len()
        )));
    }
    Ok(ti)
}

/// What rt_sigreturn would refuse (a pstate that is not AArch64 EL0) or
/// what would fault on the first instruction (pc outside user space).
pub fn validate(core: &pb::CoreEntry, task_size: u64) -> Result<(), RegsError> {
    let ti = thread_info(core)?;
    let r = &ti.gpregs;
    if r.pstate & PSR_MODE_MASK != 0 {
        return Err(RegsError::Invalid(format!(
            "pstate {:#x} is not AArch64 EL0 (mode bits {:#x})",
            r.pstate,
            r.pstate & PSR_MODE_MASK
        )));
    }
    if let Some(k) = &ti.pac_keys {
        let caps = hwcap();
        if k.pac_address_keys.is_some() && caps & HWCAP_PACA == 0 {
            return Err(RegsError::Invalid(
                "the image has PAC address keys; this CPU has no address authentication".into(),
            ));
        }
        if k.pac_generic_keys.is_some() && caps & HWCAP_PACG == 0 {
            return Err(RegsError::Invalid(
                "the image has a PAC generic key; this CPU has no generic authentication".into(),
            ));
        }
    }
    if r.pc >= task_size {
        return Err(RegsError::Invalid(format!(
            "pc {:#x} is outside the user address space (below {task_size:#x})",
            r.pc
        )));
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
    let ti = thread_info(core)?;
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

/// The register sets to write by ptrace into the restored thread while it
/// waits in the restorer, as `(note, bytes)`: the PAC keys (as CRIU's
/// `arch_ptrace_restore`), which neither a frame nor a syscall can set.
pub fn ptrace_regsets(core: &pb::CoreEntry) -> Vec<(u32, Vec<u8>)> {
    let Some(k) = core.ti_aarch64.as_ref().and_then(|t| t.pac_keys.as_ref()) else {
        return Vec::new();
    };
    let words = |w: &[u64]| -> Vec<u8> { w.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut sets = Vec::new();
    if let Some(a) = &k.pac_address_keys {
        let keys = [
            a.apiakey_lo,
            a.apiakey_hi,
            a.apibkey_lo,
            a.apibkey_hi,
            a.apdakey_lo,
            a.apdakey_hi,
            a.apdbkey_lo,
            a.apdbkey_hi,
        ];
        sets.push((criu_arch::NT_ARM_PACA_KEYS, words(&keys)));
        sets.push((
            criu_arch::NT_ARM_PAC_ENABLED_KEYS,
            words(&[a.pac_enabled_key]),
        ));
    }
    if let Some(g) = &k.pac_generic_keys {
        sets.push((
            criu_arch::NT_ARM_PACG_KEYS,
            words(&[g.apgakey_lo, g.apgakey_hi]),
        ));
    }
    sets
}

/// The notes of one thread in a core file: not written for aarch64 yet
/// (`criu coredump` refuses rather than write wrong registers).
pub fn core_thread_notes(
    _core: &pb::CoreEntry,
    _status: &super::ThreadStatus,
) -> Result<Vec<super::CoreNote>, RegsError> {
    Err(super::core_notes_not_done("aarch64"))
}
