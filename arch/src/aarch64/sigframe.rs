//! aarch64 `rt_sigframe` (arch/arm64/kernel/signal.c, uapi asm/sigcontext.h,
//! asm/ucontext.h) and helpers to build one for `rt_sigreturn`.
//!
//! The frame is `{ siginfo, ucontext }` followed by a frame record
//! `{ fp, lr }`; `sp` at `rt_sigreturn` is the frame address itself (16-byte
//! aligned). The FP/SIMD state lives in `mcontext.__reserved` as a list of
//! `{magic, size}`-headed records ended by a zero header; the kernel refuses
//! a frame without the FPSIMD record.

use core::mem::{offset_of, size_of};

use super::regs::{FpRegs, GpRegs};
use crate::common::{Siginfo, StackT};

/// `sp` at `rt_sigreturn` equals the frame address.
pub const RT_SIGFRAME_OFFSET: usize = 0;
/// Alignment the kernel checks for the frame (`sp & 15`).
pub const SIGFRAME_ALIGN: usize = 16;
/// Size of [`RtSigframe`].
pub const SIGFRAME_SIZE: usize = size_of::<RtSigframe>();

/// `FPSIMD_MAGIC`: header magic of the FP/SIMD record.
pub const FPSIMD_MAGIC: u32 = 0x4650_8001;
/// `ESR_MAGIC`: fault syndrome record.
pub const ESR_MAGIC: u32 = 0x4553_5201;
/// `EXTRA_MAGIC`: pointer to records that did not fit in `__reserved`.
pub const EXTRA_MAGIC: u32 = 0x4558_5401;
/// `SVE_MAGIC`: SVE register record.
pub const SVE_MAGIC: u32 = 0x5356_4501;
/// Size of `mcontext.__reserved`.
pub const SIGCONTEXT_RESERVED_SIZE: usize = 4096;

/// `struct _aarch64_ctx`: header of every record in `__reserved`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aarch64Ctx {
    pub magic: u32,
    pub size: u32,
}

/// `struct fpsimd_context`, 528 bytes.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FpsimdContext {
    pub head: Aarch64Ctx,
    pub fpsr: u32,
    pub fpcr: u32,
    pub vregs: [u128; 32],
}
const _: () = assert!(size_of::<FpsimdContext>() == 528);
const _: () = assert!(offset_of!(FpsimdContext, vregs) == 16);

/// `mcontext.__reserved`, viewed as the FPSIMD record the kernel always
/// puts first plus the remaining bytes.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigReserved {
    pub fpsimd: FpsimdContext,
    pub rest: [u8; SIGCONTEXT_RESERVED_SIZE - size_of::<FpsimdContext>()],
}
const _: () = assert!(size_of::<SigReserved>() == SIGCONTEXT_RESERVED_SIZE);

impl Default for SigReserved {
    fn default() -> Self {
        SigReserved {
            fpsimd: FpsimdContext::default(),
            rest: [0; SIGCONTEXT_RESERVED_SIZE - size_of::<FpsimdContext>()],
        }
    }
}

/// `struct sigcontext`, 4384 bytes.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigContext {
    pub fault_address: u64,
    pub regs: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    pub pstate: u64,
    /// Padding to the 16-byte aligned `__reserved`.
    pub _pad: u64,
    pub reserved: SigReserved,
}
const _: () = assert!(size_of::<SigContext>() == 4384);
const _: () = assert!(offset_of!(SigContext, sp) == 256);
const _: () = assert!(offset_of!(SigContext, pstate) == 272);
const _: () = assert!(offset_of!(SigContext, reserved) == 288);

/// `struct ucontext` (arm64), 4560 bytes.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ucontext {
    pub flags: u64,
    pub link: u64,
    pub stack: StackT,
    /// Signal mask restored by `rt_sigreturn`.
    pub sigmask: u64,
    /// Room for a larger sigset_t (1024 bits in total).
    pub _unused: [u8; 120],
    /// Padding to the 16-byte aligned mcontext.
    pub _pad: u64,
    pub mcontext: SigContext,
}
const _: () = assert!(size_of::<Ucontext>() == 4560);
const _: () = assert!(offset_of!(Ucontext, sigmask) == 40);
const _: () = assert!(offset_of!(Ucontext, mcontext) == 176);

impl Default for Ucontext {
    fn default() -> Self {
        Ucontext {
            flags: 0,
            link: 0,
            stack: StackT::default(),
            sigmask: 0,
            _unused: [0; 120],
            _pad: 0,
            mcontext: SigContext::default(),
        }
    }
}

impl Ucontext {
    /// Signal mask `rt_sigreturn` installs.
    pub fn sigmask(&self) -> u64 {
        self.sigmask
    }

    /// Registers the frame resumes with.
    pub fn gpregs(&self) -> GpRegs {
        let sc = &self.mcontext;
        GpRegs {
            regs: sc.regs,
            sp: sc.sp,
            pc: sc.pc,
            pstate: sc.pstate,
        }
    }

    /// The FP/SIMD state from the FPSIMD record in `__reserved` (searched
    /// through the record list), or `None` if there is none.
    ///
    /// # Safety
    /// None beyond holding `&self`; `unsafe` only to match the other arches,
    /// where the FP state may live behind a pointer.
    pub unsafe fn fpregs(&self) -> Option<FpRegs> {
        let r = &self.mcontext.reserved;
        if r.fpsimd.head.magic == FPSIMD_MAGIC {
            let f = &r.fpsimd;
            return Some(FpRegs {
                vregs: f.vregs,
                fpsr: f.fpsr,
                fpcr: f.fpcr,
                reserved: [0; 2],
            });
        }
        // Walk the records after the first one, in the byte tail.
        let mut off = r.fpsimd.head.size as usize;
        let first = size_of::<FpsimdContext>();
        while off >= first && off + 8 <= SIGCONTEXT_RESERVED_SIZE {
            let at = |o: usize| {
                let b = &r.rest[o - first..o - first + 4];
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
            };
            let (magic, size) = (at(off), at(off + 4) as usize);
            if magic == 0 || size < 8 {
                return None;
            }
            if magic == FPSIMD_MAGIC && size >= first && off + first <= SIGCONTEXT_RESERVED_SIZE {
                let mut f = FpRegs {
                    fpsr: at(off + 8),
                    fpcr: at(off + 12),
                    ..FpRegs::default()
                };
                for (i, v) in f.vregs.iter_mut().enumerate() {
                    let s = off + 16 + i * 16 - first;
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&r.rest[s..s + 16]);
                    *v = u128::from_ne_bytes(b);
                }
                return Some(f);
            }
            off += size;
        }
        None
    }
}

/// The arm64 `rt_sigframe` plus the frame record the kernel puts after it.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtSigframe {
    pub info: Siginfo,
    pub uc: Ucontext,
    /// Frame record: saved x29.
    pub fp: u64,
    /// Frame record: saved x30.
    pub lr: u64,
}
const _: () = assert!(offset_of!(RtSigframe, uc) == 128);
const _: () = assert!(size_of::<RtSigframe>() == 4704);

/// Fill `frame` so that `rt_sigreturn` with `sp = frame_addr +
/// RT_SIGFRAME_OFFSET` resumes the task in state `gp` with FP/SIMD state
/// `fp` (zeroes with default FPSR/FPCR if `None`), signal mask `sigmask` and
/// no alternate signal stack. `frame_addr` must be 16-byte aligned; it is
/// not otherwise needed on arm64 (nothing in the frame points into it).
pub fn fill_sigframe(
    frame: &mut RtSigframe,
    frame_addr: u64,
    gp: &GpRegs,
    fp: Option<&FpRegs>,
    sigmask: u64,
) {
    let _ = frame_addr;
    *frame = RtSigframe::default();
    frame.uc.stack = StackT::disabled();
    frame.uc.sigmask = sigmask;
    let sc = &mut frame.uc.mcontext;
    sc.regs = gp.regs;
    sc.sp = gp.sp;
    sc.pc = gp.pc;
    sc.pstate = gp.pstate;
    let fp = fp.copied().unwrap_or_default();
    sc.reserved.fpsimd = FpsimdContext {
        head: Aarch64Ctx {
            magic: FPSIMD_MAGIC,
            size: size_of::<FpsimdContext>() as u32,
        },
        fpsr: fp.fpsr,
        fpcr: fp.fpcr,
        vregs: fp.vregs,
    };
    // `rest` starts with the zero header that terminates the record list.
    frame.fp = gp.regs[29];
    frame.lr = gp.regs[30];
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

    /// Set the alternate signal stack `rt_sigreturn` installs.
    pub fn set_altstack(&mut self, stack: StackT) {
        self.uc.stack = stack;
    }
}
