//! x86_64 `rt_sigframe` (arch/x86/include/asm/sigframe.h, uapi
//! asm/sigcontext.h, asm-generic/ucontext.h) and helpers to build one for
//! `rt_sigreturn`.
//!
//! The kernel frame is `{ pretcode, ucontext, siginfo }`; the FPU state lives
//! elsewhere and `sigcontext.fpstate` points to it. [`RtSigframe`] appends a
//! 64-byte aligned XSAVE area after the kernel part so one object holds
//! everything; the pointer must then be the address the frame has *in the
//! task that will execute `rt_sigreturn`*, which is why the fill functions
//! take `frame_addr`.

use core::mem::{offset_of, size_of};

use super::regs::{
    FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2, FP_XSTATE_MAGIC2_SIZE, FpRegs, FpxSwBytes, GpRegs,
    XSAVE_MAX_SIZE, XsaveArea,
};
use crate::common::{Siginfo, StackT};

/// `UC_FP_XSTATE`: the fpstate holds XSAVE data described by `fpx_sw_bytes`.
pub const UC_FP_XSTATE: u64 = 0x1;
/// `UC_SIGCONTEXT_SS`: `sigcontext.ss` is meaningful.
pub const UC_SIGCONTEXT_SS: u64 = 0x2;
/// `UC_STRICT_RESTORE_SS`: restore ss exactly, do not repair it.
pub const UC_STRICT_RESTORE_SS: u64 = 0x4;

/// `sp` at `rt_sigreturn` is the frame address plus this (the handler's
/// `ret` has popped `pretcode`).
pub const RT_SIGFRAME_OFFSET: usize = 8;
/// Alignment of [`RtSigframe`] (XSAVE needs 64).
pub const SIGFRAME_ALIGN: usize = 64;
/// Size of [`RtSigframe`] including the XSAVE area.
pub const SIGFRAME_SIZE: usize = size_of::<RtSigframe>();
/// Offset of the XSAVE area inside [`RtSigframe`].
pub const FPSTATE_OFFSET: usize = offset_of!(RtSigframe, fpstate);

/// `struct sigcontext` (64-bit), 256 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigContext {
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub di: u64,
    pub si: u64,
    pub bp: u64,
    pub bx: u64,
    pub dx: u64,
    pub ax: u64,
    pub cx: u64,
    pub sp: u64,
    pub ip: u64,
    pub flags: u64,
    pub cs: u16,
    pub gs: u16,
    pub fs: u16,
    pub ss: u16,
    pub err: u64,
    pub trapno: u64,
    pub oldmask: u64,
    pub cr2: u64,
    /// User address of the FXSAVE/XSAVE area, 0 for "reset the FPU".
    pub fpstate: u64,
    pub reserved1: [u64; 8],
}
const _: () = assert!(size_of::<SigContext>() == 256);
const _: () = assert!(offset_of!(SigContext, ip) == 128);
const _: () = assert!(offset_of!(SigContext, cs) == 144);
const _: () = assert!(offset_of!(SigContext, err) == 152);
const _: () = assert!(offset_of!(SigContext, fpstate) == 184);

/// `struct ucontext` (asm-generic layout used by x86_64), 304 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ucontext {
    /// `UC_*` flags.
    pub flags: u64,
    /// `uc_link`, unused by the kernel.
    pub link: u64,
    /// Alternate signal stack restored by `rt_sigreturn`.
    pub stack: StackT,
    /// Registers.
    pub mcontext: SigContext,
    /// Signal mask restored by `rt_sigreturn`.
    pub sigmask: u64,
}
const _: () = assert!(size_of::<Ucontext>() == 304);
const _: () = assert!(offset_of!(Ucontext, mcontext) == 40);
const _: () = assert!(offset_of!(Ucontext, sigmask) == 296);

impl Ucontext {
    /// Signal mask `rt_sigreturn` installs.
    pub fn sigmask(&self) -> u64 {
        self.sigmask
    }

    /// Registers the frame resumes with (`fs_base`/`gs_base`, which the frame
    /// does not carry, are zero; `orig_ax` is -1 as after `rt_sigreturn`).
    pub fn gpregs(&self) -> GpRegs {
        let sc = &self.mcontext;
        GpRegs {
            r15: sc.r15,
            r14: sc.r14,
            r13: sc.r13,
            r12: sc.r12,
            bp: sc.bp,
            bx: sc.bx,
            r11: sc.r11,
            r10: sc.r10,
            r9: sc.r9,
            r8: sc.r8,
            ax: sc.ax,
            cx: sc.cx,
            dx: sc.dx,
            si: sc.si,
            di: sc.di,
            orig_ax: u64::MAX,
            ip: sc.ip,
            cs: sc.cs as u64,
            flags: sc.flags,
            sp: sc.sp,
            ss: sc.ss as u64,
            ..GpRegs::default()
        }
    }

    /// The FXSAVE part of the FPU state `mcontext.fpstate` points to, or
    /// `None` if the pointer is null.
    ///
    /// # Safety
    /// `mcontext.fpstate` must be null or point to readable memory holding
    /// at least 512 bytes (true for a frame the kernel wrote and that is
    /// still live).
    pub unsafe fn fpregs(&self) -> Option<FpRegs> {
        let p = self.mcontext.fpstate as usize as *const FpRegs;
        if p.is_null() {
            return None;
        }
        // SAFETY: the caller guarantees that a non-null pointer is readable;
        // read_unaligned does not rely on the 16-byte alignment.
        Some(unsafe { p.read_unaligned() })
    }
}

/// `struct rt_sigframe` followed by the FPU area.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtSigframe {
    /// Return address of the handler (the `sa_restorer` trampoline).
    pub pretcode: u64,
    pub uc: Ucontext,
    pub info: Siginfo,
    /// Pads the kernel part (440 bytes) to the 64-byte aligned fpstate.
    pub _pad: [u8; 8],
    /// FXSAVE/XSAVE area `uc.mcontext.fpstate` points to.
    pub fpstate: XsaveArea,
    /// Room for `FP_XSTATE_MAGIC2` after a full-size XSAVE area.
    pub fpstate_tail: [u8; 64],
}
const _: () = assert!(offset_of!(RtSigframe, uc) == 8);
const _: () = assert!(offset_of!(RtSigframe, info) == 312);
const _: () = assert!(offset_of!(RtSigframe, fpstate) == 448);
const _: () = assert!(FPSTATE_OFFSET.is_multiple_of(64));

impl Default for RtSigframe {
    fn default() -> Self {
        RtSigframe {
            pretcode: 0,
            uc: Ucontext::default(),
            info: Siginfo::default(),
            _pad: [0; 8],
            fpstate: XsaveArea::default(),
            fpstate_tail: [0; 64],
        }
    }
}

/// Fill `frame` so that `rt_sigreturn` with `sp = frame_addr +
/// RT_SIGFRAME_OFFSET` resumes the task in state `gp` with signal mask
/// `sigmask` and no alternate signal stack.
///
/// `frame_addr` is the address `frame` will have in the task executing
/// `rt_sigreturn`. With `fp`, the legacy FXSAVE state is restored (upper
/// XSAVE components are reset; use [`RtSigframe::set_xstate`] for them);
/// without it, the FPU is reset to its initial state.
pub fn fill_sigframe(
    frame: &mut RtSigframe,
    frame_addr: u64,
    gp: &GpRegs,
    fp: Option<&FpRegs>,
    sigmask: u64,
) {
    frame.pretcode = 0;
    frame.info = Siginfo::default();
    frame.uc.flags = UC_SIGCONTEXT_SS;
    frame.uc.link = 0;
    frame.uc.stack = StackT::disabled();
    frame.uc.sigmask = sigmask;
    let sc = &mut frame.uc.mcontext;
    *sc = SigContext {
        r8: gp.r8,
        r9: gp.r9,
        r10: gp.r10,
        r11: gp.r11,
        r12: gp.r12,
        r13: gp.r13,
        r14: gp.r14,
        r15: gp.r15,
        di: gp.di,
        si: gp.si,
        bp: gp.bp,
        bx: gp.bx,
        dx: gp.dx,
        ax: gp.ax,
        cx: gp.cx,
        sp: gp.sp,
        ip: gp.ip,
        flags: gp.flags,
        // Selectors are 16 bits wide; ptrace reports them zero-extended.
        cs: gp.cs as u16,
        gs: 0,
        fs: 0,
        ss: gp.ss as u16,
        ..SigContext::default()
    };
    match fp {
        Some(fp) => {
            frame.fpstate = XsaveArea::default();
            frame.fpstate.i387 = *fp;
            // No FP_XSTATE_MAGIC1: the kernel restores the FXSAVE part only.
            frame.fpstate.i387.sw_reserved = [0; 12];
            frame.uc.mcontext.fpstate = frame_addr + FPSTATE_OFFSET as u64;
        }
        None => frame.uc.mcontext.fpstate = 0,
    }
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

    /// Put a full XSAVE image (standard format, `xstate_size` bytes, features
    /// `xfeatures` = the task's XCR0 user mask) into the frame, so that
    /// `rt_sigreturn` restores AVX and later components too. Returns false
    /// (frame unchanged) if `xstate_size` is outside 576..=XSAVE_MAX_SIZE.
    pub fn set_xstate(
        &mut self,
        frame_addr: u64,
        xsave: &XsaveArea,
        xstate_size: usize,
        xfeatures: u64,
    ) -> bool {
        if !(super::regs::XSAVE_EXT_OFFSET..=XSAVE_MAX_SIZE).contains(&xstate_size) {
            return false;
        }
        self.fpstate = *xsave;
        self.fpstate.header.xcomp_bv = 0;
        let sw = FpxSwBytes {
            magic1: FP_XSTATE_MAGIC1,
            extended_size: (xstate_size + FP_XSTATE_MAGIC2_SIZE) as u32,
            xfeatures,
            xstate_size: xstate_size as u32,
            padding: [0; 7],
        };
        self.fpstate.i387.sw_reserved = sw_words(&sw);
        self.set_fpstate_byte_range(xstate_size, &FP_XSTATE_MAGIC2.to_ne_bytes());
        self.uc.mcontext.fpstate = frame_addr + FPSTATE_OFFSET as u64;
        self.uc.flags |= UC_FP_XSTATE;
        true
    }

    /// Set the alternate signal stack `rt_sigreturn` installs.
    pub fn set_altstack(&mut self, stack: StackT) {
        self.uc.stack = stack;
    }

    /// Write `bytes` at `off` bytes into the fpstate area (which continues
    /// into `fpstate_tail`).
    fn set_fpstate_byte_range(&mut self, off: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let pos = off + i;
            if pos < XSAVE_MAX_SIZE {
                set_xsave_byte(&mut self.fpstate, pos, *b);
            } else if let Some(t) = self.fpstate_tail.get_mut(pos - XSAVE_MAX_SIZE) {
                *t = *b;
            }
        }
    }
}

/// Store one byte at `pos` of an XSAVE area viewed as bytes.
fn set_xsave_byte(x: &mut XsaveArea, pos: usize, b: u8) {
    const EXT: usize = super::regs::XSAVE_EXT_OFFSET;
    if pos >= EXT {
        x.extended[pos - EXT] = b;
    } else {
        // Only MAGIC2 goes through here, and it lies past the XSAVE
        // header (xstate_size >= 576), so smaller offsets never occur.
    }
}

/// `fpx_sw_bytes` as the 12 words of `FpRegs::sw_reserved`.
fn sw_words(sw: &FpxSwBytes) -> [u32; 12] {
    [
        sw.magic1,
        sw.extended_size,
        sw.xfeatures as u32,
        (sw.xfeatures >> 32) as u32,
        sw.xstate_size,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]
}
