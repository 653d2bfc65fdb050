//! ppc64le (ELFv2) `rt_sigframe` (arch/powerpc/kernel/signal_64.c, uapi
//! asm/ucontext.h, asm/sigcontext.h) and helpers to build one for
//! `rt_sigreturn`.
//!
//! `rt_sigreturn` reads the ucontext at r1, so the ucontext comes first and
//! `sp = frame`. The layout below is the kernel's with
//! CONFIG_PPC_TRANSACTIONAL_MEM (distribution kernels), which adds
//! `uc_transact`; without it (and under qemu-user) everything after `uc`
//! sits one ucontext lower, which does not matter for `rt_sigreturn`.
//! Altivec/VSX state lives in `vmx_reserve`, reached through the `v_regs`
//! pointer, which must hold the address the frame has in the task that
//! executes `rt_sigreturn`.

use core::mem::{offset_of, size_of};

use super::regs::{
    ELF_NFPREG, ELF_NGREG, ELF_NVRREG, FpRegs, GpRegs, MSR_VEC, MSR_VSX, VrRegs, VsxRegs,
};
use crate::common::{Siginfo, StackT};

/// `sp` (r1) at `rt_sigreturn` equals the frame address.
pub const RT_SIGFRAME_OFFSET: usize = 0;
/// Alignment of the frame.
pub const SIGFRAME_ALIGN: usize = 16;
/// Size of [`RtSigframe`].
pub const SIGFRAME_SIZE: usize = size_of::<RtSigframe>();
/// `__SIGNAL_FRAMESIZE`: the dummy caller frame the kernel puts below the
/// signal frame for the handler.
pub const SIGNAL_FRAMESIZE: usize = 128;
/// `USER_REDZONE_SIZE` of ELFv2.
pub const USER_REDZONE_SIZE: usize = 512;
/// Words of `sigcontext.vmx_reserve`: two VR sets, one word of alignment
/// slack and 32 VSX low doublewords.
pub const VMX_RESERVE_WORDS: usize = ELF_NVRREG + ELF_NVRREG + 1 + 32;

/// `gp_regs` index of the MSR (`PT_MSR`).
pub const PT_MSR: usize = 33;
/// `gp_regs` index of SOFTE (`PT_SOFTE`).
pub const PT_SOFTE: usize = 39;

/// `struct sigcontext` (ppc64), 1528 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigContext {
    pub _unused: [u64; 4],
    pub signal: i32,
    pub _pad0: i32,
    pub handler: u64,
    pub oldmask: u64,
    /// Address of `gp_regs` (informational).
    pub regs: u64,
    /// `elf_gregset_t`: [`GpRegs`] words then zero padding.
    pub gp_regs: [u64; ELF_NGREG],
    /// FPR0..31 and FPSCR.
    pub fp_regs: [u64; ELF_NFPREG],
    /// Address of the 16-byte aligned VR area inside `vmx_reserve`, or 0.
    pub v_regs: u64,
    pub vmx_reserve: [u64; VMX_RESERVE_WORDS],
}
const _: () = assert!(size_of::<SigContext>() == 1528);
const _: () = assert!(offset_of!(SigContext, gp_regs) == 64);
const _: () = assert!(offset_of!(SigContext, fp_regs) == 448);
const _: () = assert!(offset_of!(SigContext, v_regs) == 712);
const _: () = assert!(offset_of!(SigContext, vmx_reserve) == 720);

impl Default for SigContext {
    fn default() -> Self {
        SigContext {
            _unused: [0; 4],
            signal: 0,
            _pad0: 0,
            handler: 0,
            oldmask: 0,
            regs: 0,
            gp_regs: [0; ELF_NGREG],
            fp_regs: [0; ELF_NFPREG],
            v_regs: 0,
            vmx_reserve: [0; VMX_RESERVE_WORDS],
        }
    }
}

/// `struct ucontext` (ppc64), 1696 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ucontext {
    pub flags: u64,
    /// With TM: the transactional ucontext.
    pub link: u64,
    pub stack: StackT,
    /// Signal mask restored by `rt_sigreturn`.
    pub sigmask: u64,
    pub _unused: [u64; 15],
    pub mcontext: SigContext,
}
const _: () = assert!(size_of::<Ucontext>() == 1696);
const _: () = assert!(offset_of!(Ucontext, sigmask) == 40);
const _: () = assert!(offset_of!(Ucontext, mcontext) == 168);

impl Ucontext {
    /// Signal mask `rt_sigreturn` installs.
    pub fn sigmask(&self) -> u64 {
        self.sigmask
    }

    /// Registers the frame resumes with.
    pub fn gpregs(&self) -> GpRegs {
        let g = &self.mcontext.gp_regs;
        let mut gpr = [0u64; 32];
        gpr.copy_from_slice(&g[..32]);
        GpRegs {
            gpr,
            nip: g[32],
            msr: g[33],
            orig_gpr3: g[34],
            ctr: g[35],
            link: g[36],
            xer: g[37],
            ccr: g[38],
            softe: g[39],
            trap: g[40],
            dar: g[41],
            dsisr: g[42],
            result: g[43],
        }
    }

    /// FPR0..31 and FPSCR from the frame.
    ///
    /// # Safety
    /// None beyond holding `&self`; `unsafe` only to match x86_64, where the
    /// FP state lives behind a pointer.
    pub unsafe fn fpregs(&self) -> Option<FpRegs> {
        let f = &self.mcontext.fp_regs;
        let mut fpr = [0u64; 32];
        fpr.copy_from_slice(&f[..32]);
        Some(FpRegs { fpr, fpscr: f[32] })
    }
}

/// The ppc64 `rt_sigframe` (with transactional-memory support), 4096 bytes.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtSigframe {
    pub uc: Ucontext,
    pub uc_transact: Ucontext,
    pub _unused: [u64; 2],
    /// Return trampoline (unused when the vDSO provides one).
    pub tramp: [u32; 7],
    pub _pad: u32,
    /// Address of `info`.
    pub pinfo: u64,
    /// Address of `uc`.
    pub puc: u64,
    pub info: Siginfo,
    /// The ABI's red zone below the interrupted stack pointer.
    pub abigap: [u8; USER_REDZONE_SIZE],
}
const _: () = assert!(offset_of!(RtSigframe, uc) == 0);
const _: () = assert!(offset_of!(RtSigframe, tramp) == 3408);
const _: () = assert!(offset_of!(RtSigframe, pinfo) == 3440);
const _: () = assert!(offset_of!(RtSigframe, info) == 3456);
const _: () = assert!(size_of::<RtSigframe>() == 4096);

impl Default for RtSigframe {
    fn default() -> Self {
        RtSigframe {
            uc: Ucontext::default(),
            uc_transact: Ucontext::default(),
            _unused: [0; 2],
            tramp: [0; 7],
            _pad: 0,
            pinfo: 0,
            puc: 0,
            info: Siginfo::default(),
            abigap: [0; USER_REDZONE_SIZE],
        }
    }
}

/// Offset of `uc.mcontext.vmx_reserve` in the frame.
const VMX_OFF: u64 = (offset_of!(RtSigframe, uc)
    + offset_of!(Ucontext, mcontext)
    + offset_of!(SigContext, vmx_reserve)) as u64;

/// Index in `vmx_reserve` of the first 16-byte aligned word when the frame
/// is at `frame_addr` (the kernel's `sigcontext_vmx_regs`).
fn vmx_index(frame_addr: u64) -> usize {
    let start = frame_addr + VMX_OFF;
    (((start + 15) & !15) - start) as usize / 8
}

/// Fill `frame` so that `rt_sigreturn` with `r1 = frame_addr +
/// RT_SIGFRAME_OFFSET` resumes the task in state `gp` with FPRs/FPSCR from
/// `fp` (zero if `None`), signal mask `sigmask` and no alternate signal
/// stack. Altivec and VSX registers are cleared unless set afterwards with
/// [`RtSigframe::set_vrregs`] / [`RtSigframe::set_vsxregs`]. The kernel
/// takes only the LE bit of `gp.msr`, so `gp` must come from a
/// little-endian task. Transactional state is not carried.
pub fn fill_sigframe(
    frame: &mut RtSigframe,
    frame_addr: u64,
    gp: &GpRegs,
    fp: Option<&FpRegs>,
    sigmask: u64,
) {
    *frame = RtSigframe::default();
    frame.pinfo = frame_addr + offset_of!(RtSigframe, info) as u64;
    frame.puc = frame_addr + offset_of!(RtSigframe, uc) as u64;
    let uc = &mut frame.uc;
    uc.stack = StackT::disabled();
    uc.sigmask = sigmask;
    let sc = &mut uc.mcontext;
    sc.oldmask = sigmask;
    sc.regs =
        frame_addr + (offset_of!(Ucontext, mcontext) + offset_of!(SigContext, gp_regs)) as u64;
    let g = &mut sc.gp_regs;
    g[..32].copy_from_slice(&gp.gpr);
    g[32] = gp.nip;
    // VEC/VSX in the frame's MSR mean "vector data present"; set by the
    // setters below once there is some.
    g[PT_MSR] = gp.msr & !(MSR_VEC | MSR_VSX);
    g[34] = gp.orig_gpr3;
    g[35] = gp.ctr;
    g[36] = gp.link;
    g[37] = gp.xer;
    g[38] = gp.ccr;
    g[PT_SOFTE] = 1;
    g[40] = 0;
    g[41] = gp.dar;
    g[42] = gp.dsisr;
    g[43] = gp.result;
    if let Some(fp) = fp {
        sc.fp_regs[..32].copy_from_slice(&fp.fpr);
        sc.fp_regs[32] = fp.fpscr;
    }
    sc.v_regs = frame_addr + VMX_OFF + 8 * vmx_index(frame_addr) as u64;
}

/// Register sets besides the general and FP ones that a frame built from a
/// live task must carry (read by ptrace, put in with
/// [`RtSigframe::set_extra_regset`]). Here: none.
pub const FRAME_EXTRA_REGSETS: &[u32] = &[];

impl RtSigframe {
    /// Put register set `note` (as ptrace returned it) into the frame:
    /// nothing here (see [`FRAME_EXTRA_REGSETS`]).
    pub fn set_extra_regset(&mut self, note: u32, bytes: &[u8]) {
        let _ = (note, bytes);
    }

    /// Put Altivec state into the frame (after [`fill_sigframe`] with the
    /// same `frame_addr`) and flag it in the frame's MSR.
    pub fn set_vrregs(&mut self, frame_addr: u64, vr: &VrRegs) {
        let base = vmx_index(frame_addr);
        let sc = &mut self.uc.mcontext;
        let mut put = |q: usize, bytes: [u8; 16]| {
            let (lo, hi) = bytes.split_at(8);
            sc.vmx_reserve[base + 2 * q] = u64::from_ne_bytes(lo.try_into().unwrap_or([0; 8]));
            sc.vmx_reserve[base + 2 * q + 1] = u64::from_ne_bytes(hi.try_into().unwrap_or([0; 8]));
        };
        for (q, v) in vr.vr.iter().enumerate() {
            put(q, v.to_ne_bytes());
        }
        put(32, words_to_bytes(vr.vscr));
        put(33, words_to_bytes(vr.vrsave));
        sc.gp_regs[PT_MSR] |= MSR_VEC;
    }

    /// Put the VSX low doublewords into the frame (after [`fill_sigframe`]
    /// with the same `frame_addr`) and flag them in the frame's MSR.
    pub fn set_vsxregs(&mut self, frame_addr: u64, vsx: &VsxRegs) {
        let base = vmx_index(frame_addr) + 2 * ELF_NVRREG;
        let sc = &mut self.uc.mcontext;
        sc.vmx_reserve[base..base + 32].copy_from_slice(&vsx.vsr_low);
        sc.gp_regs[PT_MSR] |= MSR_VSX;
    }

    /// Set the alternate signal stack `rt_sigreturn` installs.
    pub fn set_altstack(&mut self, stack: StackT) {
        self.uc.stack = stack;
    }
}

/// Four native-endian words as 16 bytes.
fn words_to_bytes(w: [u32; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (i, x) in w.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&x.to_ne_bytes());
    }
    b
}
