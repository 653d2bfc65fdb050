//! s390x: `thread_info_s390` as CRIU's `save_task_regs` writes it:
//! `gpregs` = PSW mask and address, r0..r15, a0..a15, orig_gpr2 and the
//! `NT_S390_SYSTEM_CALL` word; `fpregs` = FPC and F0..F15; `vxrs_low`
//! (the right halves of V0..V15) and `vxrs_high` (V16..V31, two words
//! each, the leftmost 64 bits first, i.e. the registers' big-endian
//! memory image) where the CPU has the vector facility; the
//! guarded-storage (`gs_cb`, `gs_bc`) and runtime-instrumentation
//! (`ri_cb`) control blocks where the CPU has them and the task set them
//! up. The thread pointer lives in the access registers a0:a1, which the
//! signal frame carries.
//!
//! On restore the signal frame carries the general, access, FP and vector
//! registers; the control blocks are written by ptrace while the restored
//! threads wait in the restorer ([`ptrace_regsets`]), as CRIU's
//! `set_task_regs_nosigrt` does after its restorer.

use criu_arch::{FpRegs, GpRegs, Psw, VxrsHigh, VxrsLow, fill_sigframe};
use rustix::io::Errno;
use rustix::process::Pid;

use super::{Frame, RegsError, set_tid_address};
use crate::images::pb;
use crate::infect::ExtRegs;
use crate::sys::ptrace::note;

/// Bytes of the guarded-storage control blocks (4 words) and of the
/// runtime-instrumentation control block (8 words).
const GS_CB_LEN: usize = 32;
const RI_CB_LEN: usize = 64;

fn tid_of(pid: i32) -> Result<Pid, RegsError> {
    Pid::from_raw(pid).ok_or(RegsError::Invalid(format!("bad pid {pid}")))
}

fn words(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_ne_bytes(w)
        })
        .collect()
}

fn bytes_of(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// Read regset `note` of `pid` into `buf`: `Ok(false)` when the kernel or
/// the CPU lacks it (EINVAL, ENODEV) or the task has not set it up
/// (ENODATA), as CRIU's `get_vx_regs`/`get_gs_cb`/`get_ri_cb` treat them.
fn optional_regset(
    pid: i32,
    note: u32,
    what: &'static str,
    buf: &mut [u8],
) -> Result<bool, RegsError> {
    match crate::sys::ptrace::get_regset(tid_of(pid)?, note, buf) {
        Ok(n) if n == buf.len() => Ok(true),
        Ok(n) => Err(RegsError::Invalid(format!(
            "task {pid}: {what} gave {n} bytes (want {})",
            buf.len()
        ))),
        Err(Errno::INVAL | Errno::NODEV | Errno::NODATA) => Ok(false),
        Err(source) => Err(RegsError::Ptrace { what, pid, source }),
    }
}

// ---- dump ----

/// FPC and F0..F15 from the `NT_PRFPREG` bytes.
fn fpregs(pid: i32, ext: &ExtRegs) -> Result<pb::UserS390FpregsEntry, RegsError> {
    let b = &ext.bytes;
    if ext.note != note::PRFPREG || b.len() < size_of::<FpRegs>() {
        return Err(RegsError::Invalid(format!(
            "task {pid}: FP register set of {} bytes (note {:#x})",
            b.len(),
            ext.note
        )));
    }
    Ok(pb::UserS390FpregsEntry {
        fpc: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        fprs: words(&b[8..size_of::<FpRegs>()]),
    })
}

/// The vector registers, `None` without the vector facility.
#[allow(clippy::type_complexity)]
fn vxrs(
    pid: i32,
) -> Result<Option<(pb::UserS390VxrsLowEntry, pb::UserS390VxrsHighEntry)>, RegsError> {
    let mut low = [0u8; size_of::<VxrsLow>()];
    if !optional_regset(
        pid,
        criu_arch::NT_S390_VXRS_LOW,
        "GETREGSET(NT_S390_VXRS_LOW)",
        &mut low,
    )? {
        return Ok(None);
    }
    let mut high = [0u8; size_of::<VxrsHigh>()];
    if !optional_regset(
        pid,
        criu_arch::NT_S390_VXRS_HIGH,
        "GETREGSET(NT_S390_VXRS_HIGH)",
        &mut high,
    )? {
        return Err(RegsError::Invalid(format!(
            "task {pid}: NT_S390_VXRS_LOW without NT_S390_VXRS_HIGH"
        )));
    }
    Ok(Some((
        pb::UserS390VxrsLowEntry { regs: words(&low) },
        pb::UserS390VxrsHighEntry { regs: words(&high) },
    )))
}

/// A guarded-storage control block, `None` if absent or not set up.
fn gs_block(
    pid: i32,
    note: u32,
    what: &'static str,
) -> Result<Option<pb::UserS390GsCbEntry>, RegsError> {
    let mut b = [0u8; GS_CB_LEN];
    Ok(
        optional_regset(pid, note, what, &mut b)?
            .then(|| pb::UserS390GsCbEntry { regs: words(&b) }),
    )
}

/// The runtime-instrumentation control block, `None` if absent or not
/// set up; `ri_on` from the PSW as seized (the parasite ran with it off).
fn ri_block(pid: i32, psw_mask: u64) -> Result<Option<pb::UserS390RiEntry>, RegsError> {
    let mut b = [0u8; RI_CB_LEN];
    Ok(optional_regset(
        pid,
        criu_arch::NT_S390_RI_CB,
        "GETREGSET(NT_S390_RI_CB)",
        &mut b,
    )?
    .then(|| pb::UserS390RiEntry {
        ri_on: u32::from(psw_mask & criu_arch::PSW_MASK_RI != 0),
        regs: words(&b),
    }))
}

/// Fill `core.mtype` and `ti_s390` (see the module doc of `regs`).
pub fn fill_thread_info(
    pid: i32,
    core: &mut pb::CoreEntry,
    g: &GpRegs,
    ext: &ExtRegs,
    clear_tid_addr: u64,
) -> Result<(), RegsError> {
    if g.psw.mask & (criu_arch::PSW_MASK_EA | criu_arch::PSW_MASK_BA)
        != criu_arch::PSW_MASK_EA | criu_arch::PSW_MASK_BA
    {
        return Err(RegsError::Unsupported(format!(
            "task {pid} does not run in 64-bit addressing mode (PSW mask {:#x})",
            g.psw.mask
        )));
    }
    let system_call = crate::sys::ptrace::get_syscall_restart(tid_of(pid)?).map_err(|source| {
        RegsError::Ptrace {
            what: "GETREGSET(NT_S390_SYSTEM_CALL)",
            pid,
            source,
        }
    })?;
    let (vxrs_low, vxrs_high) = vxrs(pid)?.unzip();
    core.mtype = criu_arch::CORE_MTYPE as i32;
    core.ti_s390 = Some(pb::ThreadInfoS390 {
        clear_tid_addr,
        gpregs: pb::UserS390RegsEntry {
            psw_mask: g.psw.mask,
            psw_addr: g.psw.addr,
            gprs: g.gprs.to_vec(),
            acrs: g.acrs.to_vec(),
            orig_gpr2: g.orig_gpr2,
            system_call,
        },
        fpregs: fpregs(pid, ext)?,
        vxrs_low,
        vxrs_high,
        gs_cb: gs_block(pid, criu_arch::NT_S390_GS_CB, "GETREGSET(NT_S390_GS_CB)")?,
        gs_bc: gs_block(pid, criu_arch::NT_S390_GS_BC, "GETREGSET(NT_S390_GS_BC)")?,
        ri_cb: ri_block(pid, g.psw.mask)?,
    });
    Ok(())
}

// ---- restore ----

/// Whether this kernel and CPU have the vector registers, as ptrace of a
/// traced fork of the tool reports them (`NT_S390_VXRS_LOW`); `None` until
/// probed (then nothing is refused).
#[derive(Clone, Copy, Debug, Default)]
pub struct HostFpu {
    vxrs: Option<bool>,
}

impl HostFpu {
    pub fn probe(pid: Pid) -> Result<HostFpu, rustix::io::Errno> {
        let low = crate::sys::ptrace::get_optional_regset(
            pid,
            criu_arch::NT_S390_VXRS_LOW,
            size_of::<VxrsLow>(),
        )?;
        Ok(HostFpu {
            vxrs: Some(low.is_some()),
        })
    }
}

fn thread_info(core: &pb::CoreEntry) -> Result<&pb::ThreadInfoS390, RegsError> {
    let ti = core
        .ti_s390
        .as_ref()
        .ok_or_else(|| RegsError::Invalid("no ti_s390 (s390x registers)".into()))?;
    let g = &ti.gpregs;
    let want = |what: &str, len: usize, n: usize| -> Result<(), RegsError> {
        if len == n {
            Ok(())
        } else {
            Err(RegsError::Invalid(format!(
                "ti_s390 has {len} {what} (want {n})"
            )))
        }
    };
    want("general registers", g.gprs.len(), 16)?;
    want("access registers", g.acrs.len(), 16)?;
    want("FP registers", ti.fpregs.fprs.len(), 16)?;
    if let Some(v) = &ti.vxrs_low {
        want("vxrs_low words", v.regs.len(), 16)?;
    }
    if let Some(v) = &ti.vxrs_high {
        want("vxrs_high words", v.regs.len(), 32)?;
    }
    if ti.vxrs_low.is_some() != ti.vxrs_high.is_some() {
        return Err(RegsError::Invalid(
            "ti_s390 has only one half of the vector registers".into(),
        ));
    }
    for (what, b) in [("gs_cb", &ti.gs_cb), ("gs_bc", &ti.gs_bc)] {
        if let Some(b) = b {
            want(what, b.regs.len(), GS_CB_LEN / 8)?;
        }
    }
    if let Some(r) = &ti.ri_cb {
        want("ri_cb words", r.regs.len(), RI_CB_LEN / 8)?;
    }
    Ok(ti)
}

/// What rt_sigreturn would refuse or what would fault at once: a PSW that
/// is not 64-bit user mode, an address outside user space. (Vector
/// registers this CPU lacks are refused by [`frame_for`] once the host is
/// probed.)
pub fn validate(core: &pb::CoreEntry, task_size: u64) -> Result<(), RegsError> {
    let ti = thread_info(core)?;
    let g = &ti.gpregs;
    let ea_ba = criu_arch::PSW_MASK_EA | criu_arch::PSW_MASK_BA;
    if g.psw_mask & ea_ba != ea_ba {
        return Err(RegsError::Invalid(format!(
            "PSW mask {:#x} is not 64-bit addressing (only 64-bit tasks are restored)",
            g.psw_mask
        )));
    }
    if g.psw_addr >= task_size {
        return Err(RegsError::Invalid(format!(
            "PSW address {:#x} is outside the user address space (below {task_size:#x})",
            g.psw_addr
        )));
    }
    Ok(())
}

/// The frame at `frame_addr` that resumes the thread of `core` with
/// `sigmask`: PSW, general, access (the thread pointer), FP and vector
/// registers; the clear_child_tid address goes beside it.
pub fn frame_for(
    core: &pb::CoreEntry,
    frame_addr: u64,
    sigmask: u64,
    host: &HostFpu,
) -> Result<Frame, RegsError> {
    let ti = thread_info(core)?;
    if ti.vxrs_low.is_some() && host.vxrs == Some(false) {
        return Err(RegsError::Unsupported(
            "the image has vector registers; this CPU or kernel has none".into(),
        ));
    }
    let src = &ti.gpregs;
    let mut g = GpRegs {
        psw: Psw {
            mask: src.psw_mask,
            addr: src.psw_addr,
        },
        orig_gpr2: src.orig_gpr2,
        ..GpRegs::default()
    };
    g.gprs.copy_from_slice(&src.gprs);
    g.acrs.copy_from_slice(&src.acrs);
    let mut f = FpRegs {
        fpc: ti.fpregs.fpc,
        ..FpRegs::default()
    };
    f.fprs.copy_from_slice(&ti.fpregs.fprs);
    let mut frame = Box::<criu_arch::RtSigframe>::default();
    fill_sigframe(&mut frame, frame_addr, &g, Some(&f), sigmask);
    if let (Some(lo), Some(hi)) = (&ti.vxrs_low, &ti.vxrs_high) {
        let mut low = VxrsLow::default();
        low.vxrs_low.copy_from_slice(&lo.regs);
        let mut high = VxrsHigh::default();
        for (v, w) in high.vxrs_high.iter_mut().zip(hi.regs.chunks_exact(2)) {
            // Leftmost word first: the big-endian 32-bit parts in order.
            *v = [
                (w[0] >> 32) as u32,
                w[0] as u32,
                (w[1] >> 32) as u32,
                w[1] as u32,
            ];
        }
        frame.set_vxrs(&low, &high);
    }
    Ok(Frame {
        frame,
        arch_syscalls: vec![set_tid_address(ti.clear_tid_addr)],
        // a0:a1 are in the frame.
        thread_pointer: 0,
    })
}

/// The register sets to write by ptrace into the restored thread while it
/// waits in the restorer, as `(note, bytes)`: the guarded-storage and
/// runtime-instrumentation control blocks, which the frame does not carry.
pub fn ptrace_regsets(core: &pb::CoreEntry) -> Vec<(u32, Vec<u8>)> {
    let Some(ti) = core.ti_s390.as_ref() else {
        return Vec::new();
    };
    let mut sets = Vec::new();
    if let Some(b) = &ti.gs_cb {
        sets.push((criu_arch::NT_S390_GS_CB, bytes_of(&b.regs)));
    }
    if let Some(b) = &ti.gs_bc {
        sets.push((criu_arch::NT_S390_GS_BC, bytes_of(&b.regs)));
    }
    if let Some(r) = &ti.ri_cb {
        sets.push((criu_arch::NT_S390_RI_CB, bytes_of(&r.regs)));
    }
    sets
}

/// The notes of one thread in a core file: not written for s390x yet
/// (`criu coredump` refuses rather than write wrong registers).
pub fn core_thread_notes(
    _core: &pb::CoreEntry,
    _status: &super::ThreadStatus,
) -> Result<Vec<super::CoreNote>, RegsError> {
    Err(super::core_notes_not_done("s390x"))
}
