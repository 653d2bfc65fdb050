//! The dumped registers of a task as the signal frame the restorer returns
//! through, plus the per-arch state a frame does not carry (as raw system
//! calls for the restorer to make). The only arch-dependent file of restore:
//! it converts CRIU's per-arch `thread_info_*` messages into `criu_arch`
//! types, which only makes sense for the arch being built.

use crate::blob::restorer_abi::RawSyscall;
use crate::images::pb;

use super::RestoreError;

/// What [`frame_for`] produced.
pub struct Frame {
    pub frame: Box<criu_arch::RtSigframe>,
    pub arch_syscalls: Vec<RawSyscall>,
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::*;
    use criu_arch::{FpRegs, GpRegs, fill_sigframe};

    const ARCH_SET_GS: u64 = 0x1001;
    const ARCH_SET_FS: u64 = 0x1002;

    fn gp(r: &pb::UserX86RegsEntry) -> GpRegs {
        GpRegs {
            r15: r.r15,
            r14: r.r14,
            r13: r.r13,
            r12: r.r12,
            bp: r.bp,
            bx: r.bx,
            r11: r.r11,
            r10: r.r10,
            r9: r.r9,
            r8: r.r8,
            ax: r.ax,
            cx: r.cx,
            dx: r.dx,
            si: r.si,
            di: r.di,
            orig_ax: r.orig_ax,
            ip: r.ip,
            cs: r.cs,
            flags: r.flags,
            sp: r.sp,
            ss: r.ss,
            fs_base: r.fs_base,
            gs_base: r.gs_base,
            ds: r.ds,
            es: r.es,
            fs: r.fs,
            gs: r.gs,
        }
    }

    fn words<const N: usize>(src: &[u32]) -> [u32; N] {
        let mut out = [0u32; N];
        for (o, s) in out.iter_mut().zip(src) {
            *o = *s;
        }
        out
    }

    fn fp(f: &pb::UserX86FpregsEntry) -> FpRegs {
        FpRegs {
            cwd: f.cwd as u16,
            swd: f.swd as u16,
            twd: f.twd as u16,
            fop: f.fop as u16,
            rip: f.rip,
            rdp: f.rdp,
            mxcsr: f.mxcsr,
            mxcsr_mask: f.mxcsr_mask,
            st_space: words(&f.st_space),
            xmm_space: words(&f.xmm_space),
            padding: words(&f.padding),
            sw_reserved: [0; 12],
        }
    }

    pub fn frame_for(
        core: &pb::CoreEntry,
        frame_addr: u64,
        sigmask: u64,
    ) -> Result<Frame, RestoreError> {
        let ti = core
            .thread_info
            .as_ref()
            .ok_or_else(|| RestoreError::Invalid {
                file: "core".into(),
                what: "no thread_info (x86 registers)".into(),
            })?;
        let g = gp(&ti.gpregs);
        let f = fp(&ti.fpregs);
        let mut frame = Box::<criu_arch::RtSigframe>::default();
        fill_sigframe(&mut frame, frame_addr, &g, Some(&f), sigmask);
        // The frame carries no fs/gs bases: set them right before
        // rt_sigreturn, as CRIU's restore_nonsigframe_gpregs does.
        let prctl = |code: u64, val: u64| RawSyscall {
            nr: criu_arch::nr::ARCH_PRCTL as u64,
            args: [code, val, 0, 0, 0, 0],
        };
        Ok(Frame {
            frame,
            arch_syscalls: vec![prctl(ARCH_SET_FS, g.fs_base), prctl(ARCH_SET_GS, g.gs_base)],
        })
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    use super::*;

    pub fn frame_for(
        _core: &pb::CoreEntry,
        _frame_addr: u64,
        _sigmask: u64,
    ) -> Result<Frame, RestoreError> {
        Err(RestoreError::Unsupported(
            "restoring registers is implemented for x86_64 only".into(),
        ))
    }
}

pub use imp::frame_for;
