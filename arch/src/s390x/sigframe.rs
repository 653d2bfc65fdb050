//! s390x `rt_sigframe` (arch/s390/kernel/signal.c, uapi asm/sigcontext.h,
//! asm/ucontext.h) and helpers to build one for `rt_sigreturn`.
//!
//! The frame is `{ 160-byte callee save area, svc_insn, siginfo,
//! ucontext_extended }`; `rt_sigreturn` reads it at r15, so `sp = frame`.
//! The vector registers live in `_sigregs_ext` after the signal mask.

use core::mem::{offset_of, size_of};

use super::regs::{
    FpRegs, GpRegs, NT_S390_VXRS_HIGH, NT_S390_VXRS_LOW, PSW_MASK_BA, PSW_MASK_EA, Psw, VxrsHigh,
    VxrsLow,
};
use crate::common::{Siginfo, StackT};

/// `r15` at `rt_sigreturn` equals the frame address.
pub const RT_SIGFRAME_OFFSET: usize = 0;
/// Alignment of the frame.
pub const SIGFRAME_ALIGN: usize = 8;
/// Size of [`RtSigframe`].
pub const SIGFRAME_SIZE: usize = size_of::<RtSigframe>();
/// `__SIGNAL_FRAMESIZE`: the register save area a callee may use.
pub const SIGNAL_FRAMESIZE: usize = 160;
/// `UC_VXRS`: `uc_mcontext_ext` holds vector registers.
pub const UC_VXRS: u64 = 2;

/// `_s390_regs_common` + `_s390_fp_regs` = `_sigregs`, 344 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigRegs {
    pub psw: Psw,
    pub gprs: [u64; 16],
    pub acrs: [u32; 16],
    pub fpc: u32,
    pub fpc_pad: u32,
    /// F0..F15, raw bits.
    pub fprs: [u64; 16],
}
const _: () = assert!(size_of::<SigRegs>() == 344);
const _: () = assert!(offset_of!(SigRegs, fpc) == 208);

/// `_sigregs_ext` (64-bit), 512 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigRegsExt {
    /// Right halves of V0..V15.
    pub vxrs_low: [u64; 16],
    /// V16..V31.
    pub vxrs_high: [[u32; 4]; 16],
    pub reserved: [u8; 128],
}
const _: () = assert!(size_of::<SigRegsExt>() == 512);

impl Default for SigRegsExt {
    fn default() -> Self {
        SigRegsExt {
            vxrs_low: [0; 16],
            vxrs_high: [[0; 4]; 16],
            reserved: [0; 128],
        }
    }
}

/// `struct ucontext_extended`, 1024 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ucontext {
    pub flags: u64,
    pub link: u64,
    pub stack: StackT,
    pub mcontext: SigRegs,
    /// Signal mask restored by `rt_sigreturn`.
    pub sigmask: u64,
    pub _unused: [u8; 120],
    pub mcontext_ext: SigRegsExt,
}
const _: () = assert!(size_of::<Ucontext>() == 1024);
const _: () = assert!(offset_of!(Ucontext, mcontext) == 40);
const _: () = assert!(offset_of!(Ucontext, sigmask) == 384);
const _: () = assert!(offset_of!(Ucontext, mcontext_ext) == 512);

impl Default for Ucontext {
    fn default() -> Self {
        Ucontext {
            flags: 0,
            link: 0,
            stack: StackT::default(),
            mcontext: SigRegs::default(),
            sigmask: 0,
            _unused: [0; 120],
            mcontext_ext: SigRegsExt::default(),
        }
    }
}

impl Ucontext {
    /// Signal mask `rt_sigreturn` installs.
    pub fn sigmask(&self) -> u64 {
        self.sigmask
    }

    /// Registers the frame resumes with (`orig_gpr2` is not in the frame:
    /// it is taken from r2).
    pub fn gpregs(&self) -> GpRegs {
        let m = &self.mcontext;
        GpRegs {
            psw: m.psw,
            gprs: m.gprs,
            acrs: m.acrs,
            orig_gpr2: m.gprs[2],
        }
    }

    /// FPC and F0..F15 from the frame.
    ///
    /// # Safety
    /// None beyond holding `&self`; `unsafe` only to match x86_64, where the
    /// FP state lives behind a pointer.
    pub unsafe fn fpregs(&self) -> Option<FpRegs> {
        let m = &self.mcontext;
        Some(FpRegs {
            fpc: m.fpc,
            pad: 0,
            fprs: m.fprs,
        })
    }
}

/// The s390x `rt_sigframe`, 1320 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtSigframe {
    /// Register save area of the handler's caller.
    pub callee_used_stack: [u8; SIGNAL_FRAMESIZE],
    /// `svc rt_sigreturn` the kernel may use as return code.
    pub svc_insn: u16,
    pub _pad: [u16; 3],
    pub info: Siginfo,
    pub uc: Ucontext,
}
const _: () = assert!(offset_of!(RtSigframe, info) == 168);
const _: () = assert!(offset_of!(RtSigframe, uc) == 296);
const _: () = assert!(size_of::<RtSigframe>() == 1320);

impl Default for RtSigframe {
    fn default() -> Self {
        RtSigframe {
            callee_used_stack: [0; SIGNAL_FRAMESIZE],
            svc_insn: 0,
            _pad: [0; 3],
            info: Siginfo::default(),
            uc: Ucontext::default(),
        }
    }
}

/// Fill `frame` so that `rt_sigreturn` with `r15 = frame_addr +
/// RT_SIGFRAME_OFFSET` resumes the task in state `gp` with FPC/F0..F15 from
/// `fp` (zero if `None`), signal mask `sigmask` and no alternate signal
/// stack. The PSW is forced to 64-bit addressing (the only mode we restore).
/// Vector registers are zero unless set with [`RtSigframe::set_vxrs`]. Nothing
/// in the frame points into it, so `frame_addr` is unused on s390x.
pub fn fill_sigframe(
    frame: &mut RtSigframe,
    frame_addr: u64,
    gp: &GpRegs,
    fp: Option<&FpRegs>,
    sigmask: u64,
) {
    let _ = frame_addr;
    *frame = RtSigframe::default();
    let uc = &mut frame.uc;
    uc.stack = StackT::disabled();
    uc.sigmask = sigmask;
    let m = &mut uc.mcontext;
    m.psw = Psw {
        mask: gp.psw.mask | PSW_MASK_EA | PSW_MASK_BA,
        addr: gp.psw.addr,
    };
    m.gprs = gp.gprs;
    m.acrs = gp.acrs;
    if let Some(fp) = fp {
        m.fpc = fp.fpc;
        m.fprs = fp.fprs;
    }
}

/// Register sets besides the general and FP ones that a frame built from a
/// live task must carry (read by ptrace, put in with
/// [`RtSigframe::set_extra_regset`]): the vector registers, which
/// `rt_sigreturn` loads from every frame on a CPU that has them.
pub const FRAME_EXTRA_REGSETS: &[u32] = &[NT_S390_VXRS_LOW, NT_S390_VXRS_HIGH];

impl RtSigframe {
    /// Put register set `note` (as ptrace returned it, native words)
    /// into the frame; other notes and short sets are ignored.
    pub fn set_extra_regset(&mut self, note: u32, bytes: &[u8]) {
        let ext = &mut self.uc.mcontext_ext;
        match note {
            NT_S390_VXRS_LOW if bytes.len() >= 128 => {
                for (w, b) in ext.vxrs_low.iter_mut().zip(bytes.chunks_exact(8)) {
                    *w = u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                }
            }
            NT_S390_VXRS_HIGH if bytes.len() >= 256 => {
                for (v, b) in ext
                    .vxrs_high
                    .iter_mut()
                    .flatten()
                    .zip(bytes.chunks_exact(4))
                {
                    *v = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            _ => return,
        }
        self.uc.flags |= UC_VXRS;
    }

    /// Put the vector registers into the frame (V0..V15 right halves and
    /// V16..V31; the left halves of V0..V15 are the FP registers).
    pub fn set_vxrs(&mut self, low: &VxrsLow, high: &VxrsHigh) {
        self.uc.mcontext_ext.vxrs_low = low.vxrs_low;
        self.uc.mcontext_ext.vxrs_high = high.vxrs_high;
        self.uc.flags |= UC_VXRS;
    }

    /// Set the alternate signal stack `rt_sigreturn` installs.
    pub fn set_altstack(&mut self, stack: StackT) {
        self.uc.stack = stack;
    }
}
