//! ppc64le: `thread_info_ppc64` (`user_ppc64_regs_entry` = r0..r31, nip,
//! msr, orig_gpr3, ctr, link, xer, ccr, trap; `fpstate` = FPR0..31 then
//! FPSCR; `vrstate` = VR0..31 and the VSCR quadword as two words each in
//! memory order, plus VRSAVE; `vsxstate` = the low doublewords of
//! VSR0..31), laid out as CRIU's `save_task_regs` writes it: the saved
//! `trap` is 0 (the task resumes in user space), and `msr` carries
//! `MSR_VEC`/`MSR_VSX` when the image has that state, which the restore
//! requires. The thread pointer is r13, an ordinary GPR the signal frame
//! restores.
//!
//! Transactional memory is not handled: a thread inside a transaction
//! (`MSR_TS` bits set) is refused at dump, and an image with `tmstate` at
//! restore.

use criu_arch::{
    FpRegs, GpRegs, MSR_LE, MSR_TS_MASK, MSR_VEC, MSR_VSX, NT_PPC_VMX, NT_PPC_VSX, VrRegs, VsxRegs,
    fill_sigframe,
};
use rustix::process::Pid;

use super::{Frame, RegsError, set_tid_address};
use crate::images::pb;
use crate::infect::ExtRegs;
use crate::sys::ptrace::note;

/// Words in `fpstate`: 32 FPRs and FPSCR.
const FP_WORDS: usize = 33;
/// Words in `vrstate.vrregs`: 32 VRs and the VSCR quadword, two each.
const VR_WORDS: usize = 66;
/// Words in `vsxstate`: the low halves of VSR0..31.
const VSX_WORDS: usize = 32;

fn words(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

// ---- dump ----

/// Fill `core.mtype` and `ti_ppc64` (see the module doc of `regs`).
pub fn fill_thread_info(
    pid: i32,
    core: &mut pb::CoreEntry,
    g: &GpRegs,
    ext: &ExtRegs,
    clear_tid_addr: u64,
) -> Result<(), RegsError> {
    if g.msr & MSR_TS_MASK != 0 {
        return Err(RegsError::Unsupported(format!(
            "task {pid} is inside a hardware transaction (msr {:#x}): \
             transactional memory state is not dumped",
            g.msr
        )));
    }
    if ext.note != note::PRFPREG || ext.bytes.len() < FP_WORDS * 8 {
        return Err(RegsError::Invalid(format!(
            "task {pid}: FP register set of {} bytes (note {:#x})",
            ext.bytes.len(),
            ext.note
        )));
    }
    let mut gpregs = pb::UserPpc64RegsEntry {
        gpr: g.gpr.to_vec(),
        nip: g.nip,
        msr: g.msr,
        orig_gpr3: g.orig_gpr3,
        ctr: g.ctr,
        link: g.link,
        xer: g.xer,
        ccr: g.ccr,
        // Resumed from user space: no syscall to restart (CRIU does so too).
        trap: 0,
        texasr: None,
        tfhar: None,
        tfiar: None,
    };
    let fpstate = pb::UserPpc64FpstateEntry {
        fpregs: words(&ext.bytes[..FP_WORDS * 8]),
    };
    let set = |n: u32| {
        ext.more
            .iter()
            .find(|(note, _)| *note == n)
            .map(|(_, b)| b.as_slice())
    };
    // Altivec: 33 quadwords, then VRSAVE in the first word of the 34th.
    let vrstate = match set(NT_PPC_VMX) {
        Some(b) if b.len() >= VR_WORDS * 8 + 4 => {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[VR_WORDS * 8..VR_WORDS * 8 + 4]);
            Some(pb::UserPpc64VrstateEntry {
                vrregs: words(&b[..VR_WORDS * 8]),
                vrsave: u32::from_ne_bytes(w),
            })
        }
        Some(b) => {
            return Err(RegsError::Invalid(format!(
                "task {pid}: Altivec register set of {} bytes",
                b.len()
            )));
        }
        None => None,
    };
    // VSX only with Altivec (as CRIU: VSX implies it).
    let vsxstate = match (vrstate.is_some(), set(NT_PPC_VSX)) {
        (true, Some(b)) if b.len() >= VSX_WORDS * 8 => Some(pb::UserPpc64VsxstateEntry {
            vsxregs: words(&b[..VSX_WORDS * 8]),
        }),
        (true, Some(b)) => {
            return Err(RegsError::Invalid(format!(
                "task {pid}: VSX register set of {} bytes",
                b.len()
            )));
        }
        _ => None,
    };
    // The kernel restores VR/VSX state from a signal frame only when the
    // frame's MSR says it is there; CRIU records that in the image's msr.
    if vrstate.is_some() {
        gpregs.msr |= MSR_VEC;
    }
    if vsxstate.is_some() {
        gpregs.msr |= MSR_VSX;
    }
    core.mtype = criu_arch::CORE_MTYPE as i32;
    core.ti_ppc64 = Some(pb::ThreadInfoPpc64 {
        clear_tid_addr,
        gpregs,
        fpstate: Some(fpstate),
        vrstate,
        vsxstate,
        tmstate: None,
    });
    Ok(())
}

// ---- restore ----

/// Nothing to probe: the ppc64 signal frame has one format.
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

fn thread_info(core: &pb::CoreEntry) -> Result<&pb::ThreadInfoPpc64, RegsError> {
    let ti = core
        .ti_ppc64
        .as_ref()
        .ok_or_else(|| RegsError::Invalid("no ti_ppc64 (ppc64 registers)".into()))?;
    let g = &ti.gpregs;
    if g.gpr.len() != 32 {
        return Err(RegsError::Invalid(format!(
            "ti_ppc64 has {} general registers (want 32)",
            g.gpr.len()
        )));
    }
    if let Some(f) = &ti.fpstate
        && f.fpregs.len() != FP_WORDS
    {
        return Err(RegsError::Invalid(format!(
            "ti_ppc64 has {} FP words (want {FP_WORDS})",
            f.fpregs.len()
        )));
    }
    match &ti.vrstate {
        Some(v) if v.vrregs.len() != VR_WORDS => {
            return Err(RegsError::Invalid(format!(
                "ti_ppc64 has {} Altivec words (want {VR_WORDS})",
                v.vrregs.len()
            )));
        }
        None if g.msr & MSR_VEC != 0 => {
            return Err(RegsError::Invalid(
                "ti_ppc64: msr has MSR_VEC but there is no vrstate".into(),
            ));
        }
        _ => {}
    }
    match &ti.vsxstate {
        Some(v) if v.vsxregs.len() != VSX_WORDS => {
            return Err(RegsError::Invalid(format!(
                "ti_ppc64 has {} VSX words (want {VSX_WORDS})",
                v.vsxregs.len()
            )));
        }
        Some(_) if ti.vrstate.is_none() => {
            return Err(RegsError::Invalid(
                "ti_ppc64 has vsxstate without vrstate".into(),
            ));
        }
        None if g.msr & MSR_VSX != 0 => {
            return Err(RegsError::Invalid(
                "ti_ppc64: msr has MSR_VSX but there is no vsxstate".into(),
            ));
        }
        _ => {}
    }
    Ok(ti)
}

/// What this restore cannot bring back (transactional state, a
/// big-endian task) or what would fault on the first instruction (nip
/// outside user space).
pub fn validate(core: &pb::CoreEntry, task_size: u64) -> Result<(), RegsError> {
    let ti = thread_info(core)?;
    let g = &ti.gpregs;
    if ti.tmstate.is_some() || g.msr & MSR_TS_MASK != 0 {
        return Err(RegsError::Invalid(format!(
            "the thread was inside a hardware transaction (msr {:#x}): \
             transactional memory state is not restored",
            g.msr
        )));
    }
    if g.msr & MSR_LE == 0 {
        return Err(RegsError::Invalid(format!(
            "msr {:#x} is big-endian: only little-endian tasks are restored",
            g.msr
        )));
    }
    if g.nip >= task_size {
        return Err(RegsError::Invalid(format!(
            "nip {:#x} is outside the user address space (below {task_size:#x})",
            g.nip
        )));
    }
    Ok(())
}

/// The frame at `frame_addr` that resumes the thread of `core` with
/// `sigmask` (r13, the thread pointer, included); the clear_child_tid
/// address goes beside it.
pub fn frame_for(
    core: &pb::CoreEntry,
    frame_addr: u64,
    sigmask: u64,
    _host: &HostFpu,
) -> Result<Frame, RegsError> {
    let ti = thread_info(core)?;
    let r = &ti.gpregs;
    let mut g = GpRegs {
        nip: r.nip,
        // The frame's VEC/VSX bits are set below with the state itself.
        msr: r.msr & !(MSR_TS_MASK | MSR_VEC | MSR_VSX),
        orig_gpr3: r.orig_gpr3,
        ctr: r.ctr,
        link: r.link,
        xer: r.xer,
        ccr: r.ccr,
        ..GpRegs::default()
    };
    g.gpr.copy_from_slice(&r.gpr);
    let fp = ti.fpstate.as_ref().map(|f| {
        let mut fp = FpRegs {
            fpscr: f.fpregs[32],
            ..FpRegs::default()
        };
        fp.fpr.copy_from_slice(&f.fpregs[..32]);
        fp
    });
    let mut frame = Box::<criu_arch::RtSigframe>::default();
    fill_sigframe(&mut frame, frame_addr, &g, fp.as_ref(), sigmask);
    if let Some(v) = &ti.vrstate {
        // Back to the regset's bytes: 33 quadwords in memory order, then
        // VRSAVE.
        let mut vr = VrRegs::default();
        let bytes: Vec<u8> = v.vrregs.iter().flat_map(|w| w.to_ne_bytes()).collect();
        for (q, chunk) in vr.vr.iter_mut().zip(bytes.chunks_exact(16)) {
            *q = u128::from_ne_bytes(chunk.try_into().unwrap_or([0; 16]));
        }
        for (w, chunk) in vr.vscr.iter_mut().zip(bytes[512..528].chunks_exact(4)) {
            *w = u32::from_ne_bytes(chunk.try_into().unwrap_or([0; 4]));
        }
        vr.vrsave[0] = v.vrsave;
        frame.set_vrregs(frame_addr, &vr);
    }
    if let Some(v) = &ti.vsxstate {
        let mut vsx = VsxRegs::default();
        vsx.vsr_low.copy_from_slice(&v.vsxregs);
        frame.set_vsxregs(frame_addr, &vsx);
    }
    Ok(Frame {
        frame,
        arch_syscalls: vec![set_tid_address(ti.clear_tid_addr)],
        // r13 comes back with the frame; set_thread_pointer is a no-op.
        thread_pointer: r.gpr[13],
    })
}

/// Register sets to write by ptrace into a restored thread before it runs:
/// none (everything goes through the frame and raw syscalls).
pub fn ptrace_regsets(_core: &pb::CoreEntry) -> Vec<(u32, Vec<u8>)> {
    Vec::new()
}

/// The notes of one thread in a core file: not written for ppc64le yet
/// (`criu coredump` refuses rather than write wrong registers).
pub fn core_thread_notes(
    _core: &pb::CoreEntry,
    _status: &super::ThreadStatus,
) -> Result<Vec<super::CoreNote>, RegsError> {
    Err(super::core_notes_not_done("ppc64le"))
}
