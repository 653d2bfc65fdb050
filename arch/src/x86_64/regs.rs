//! x86_64 register sets as ptrace's regsets lay them out
//! (`arch/x86/include/asm/user_64.h`, `arch/x86/include/asm/fpu/types.h`).

use core::mem::{offset_of, size_of};

use crate::common::{EINTR, reruns_after_restart_block, restart_kind};

/// `EM_X86_64`.
pub const ELF_MACHINE: u16 = 62;
/// `AUDIT_ARCH_X86_64` (as `seccomp_data.arch` reports it).
pub const AUDIT_ARCH: u32 = 0xc000_003e;
/// CRIU core image `march` (`CoreEntry.mtype`): X86_64.
pub const CORE_MTYPE: u32 = 1;

/// The regset that holds the number of the syscall a stopped thread is
/// about to run, where it is not in the general registers; writing -1
/// there skips it. Here: `orig_ax` in the general registers holds it, which every injection sets.
pub const SYSCALL_NR_REGSET: Option<u32> = None;

/// The regset holding the kernel's syscall-restart state of a stopped
/// thread outside the general registers (a u32, 0 = not in a syscall):
/// a tracer saves it at the seize, writes 0 while injected code runs
/// (else the kernel may rewind the injected PSW on resume) and writes it
/// back with the registers. Here: none (`orig_ax` in the general registers carries it).
pub const SYSCALL_RESTART_REGSET: Option<u32> = None;

/// Vector regsets beyond the FP/extended set that infection saves and
/// puts back and the dump reads (ppc64's VMX and VSX); none here.
pub const VECTOR_REGSETS: &[u32] = &[];

/// Whether the user address space ends one page below a power of two:
/// x86_64's TASK_SIZE is 2^47 minus one page (the kernel keeps the top page unmapped).
pub const TASK_SIZE_GUARD_PAGE: bool = true;

/// Whether a task resumed from a syscall-entry stop runs the syscall the
/// injected general registers name (so a pending one must be skipped by
/// stepping it first): no here (every injection sets `orig_ax`, the number the kernel reads, to -1).
pub const ENTRY_STOP_RUNS_INJECTED_SYSCALL: bool = false;

/// `NT_386_TLS`: GDT TLS entries (compat tasks).
pub const NT_386_TLS: u32 = 0x200;
/// `NT_X86_XSTATE`: the XSAVE area.
pub const NT_X86_XSTATE: u32 = 0x202;
/// `NT_X86_SHSTK`: CET shadow-stack pointer.
pub const NT_X86_SHSTK: u32 = 0x204;

/// `X86_EFLAGS_TF`: single-step.
pub const EFLAGS_TF: u64 = 1 << 8;
/// `X86_EFLAGS_IF`.
pub const EFLAGS_IF: u64 = 1 << 9;
/// `X86_EFLAGS_DF`: string direction.
pub const EFLAGS_DF: u64 = 1 << 10;

/// `__USER_CS`: 64-bit user code segment selector.
pub const USER_CS: u64 = 0x33;
/// `__USER_DS`: user data/stack segment selector.
pub const USER_DS: u64 = 0x2b;

/// `struct user_regs_struct` (NT_PRSTATUS / PTRACE_GETREGS), 216 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub bp: u64,
    pub bx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub ax: u64,
    pub cx: u64,
    pub dx: u64,
    pub si: u64,
    pub di: u64,
    /// Syscall number at syscall entry, `-1` when not in a syscall.
    pub orig_ax: u64,
    pub ip: u64,
    pub cs: u64,
    pub flags: u64,
    pub sp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}
const _: () = assert!(size_of::<GpRegs>() == 27 * 8);
const _: () = assert!(offset_of!(GpRegs, ax) == 80);
const _: () = assert!(offset_of!(GpRegs, orig_ax) == 120);
const _: () = assert!(offset_of!(GpRegs, ip) == 128);
const _: () = assert!(offset_of!(GpRegs, sp) == 152);
const _: () = assert!(offset_of!(GpRegs, fs_base) == 168);
const _: () = assert!(offset_of!(GpRegs, gs) == 208);

impl GpRegs {
    /// Program counter (rip).
    pub fn pc(&self) -> u64 {
        self.ip
    }
    /// Set the program counter.
    pub fn set_pc(&mut self, pc: u64) {
        self.ip = pc;
    }
    /// Stack pointer (rsp).
    pub fn sp(&self) -> u64 {
        self.sp
    }
    /// Set the stack pointer.
    pub fn set_sp(&mut self, sp: u64) {
        self.sp = sp;
    }
    /// Number of the syscall the task is in (`orig_ax`), negative if none.
    pub fn syscall_nr(&self) -> i64 {
        self.orig_ax as i64
    }
    /// The return-value register (rax), raw.
    pub fn retval(&self) -> u64 {
        self.ax
    }
    /// Set the return-value register.
    pub fn set_retval(&mut self, v: u64) {
        self.ax = v;
    }
    /// Result of a syscall that just completed: `-errno` on failure.
    pub fn syscall_result(&self) -> i64 {
        self.ax as i64
    }
    /// At a syscall-entry stop: make the pending syscall one no kernel has
    /// (`orig_ax`, which the kernel reads after the stop).
    pub fn cancel_pending_syscall(&mut self) {
        self.orig_ax = u64::MAX;
    }
    /// Load a syscall for injection: number in rax, arguments in rdi, rsi,
    /// rdx, r10, r8, r9. `orig_ax = -1` keeps the kernel from treating the
    /// state as an interrupted syscall to restart, and TF/DF are cleared so
    /// the injected code neither single-steps nor runs string ops backwards.
    pub fn set_syscall(&mut self, nr: u64, args: [u64; 6]) {
        self.ax = nr;
        self.di = args[0];
        self.si = args[1];
        self.dx = args[2];
        self.r10 = args[3];
        self.r8 = args[4];
        self.r9 = args[5];
        self.orig_ax = u64::MAX;
        self.flags &= !(EFLAGS_TF | EFLAGS_DF);
    }
    /// Do what the kernel does to a task stopped inside a syscall before
    /// it returns to user space without running a handler: for
    /// `-ERESTARTSYS`/`-ERESTARTNOINTR`/`-ERESTARTNOHAND` re-arm the syscall
    /// (rax = orig_ax, rip back over the 2-byte `syscall`); for
    /// `-ERESTART_RESTARTBLOCK` report `-EINTR` (the kernel's restart block
    /// cannot be carried over), unless the call made again is the same
    /// (`poll` without a timeout, see [`reruns_after_restart_block`]). The
    /// frame built from the result is resumed by `rt_sigreturn`, which
    /// disables restarts itself.
    pub fn restart_syscall_fixup(&mut self) {
        if (self.orig_ax as i64) < 0 {
            return;
        }
        let again = reruns_after_restart_block(self.orig_ax, super::nr::POLL, self.dx);
        // The kernel compares the low 32 bits sign-extended.
        match restart_kind(self.ax as i32 as i64) {
            Some(b) if b || again => {
                self.ax = self.orig_ax;
                self.ip = self.ip.wrapping_sub(2);
            }
            Some(_) => self.ax = (-EINTR) as u64,
            None => {}
        }
    }
}

/// `struct user_i387_struct` / `user_fpregs_struct` (NT_PRFPREG,
/// PTRACE_GETFPREGS): the 512-byte FXSAVE image.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpRegs {
    pub cwd: u16,
    pub swd: u16,
    /// Abridged tag word.
    pub twd: u16,
    pub fop: u16,
    pub rip: u64,
    pub rdp: u64,
    pub mxcsr: u32,
    pub mxcsr_mask: u32,
    /// 8 x87/MMX registers, 16 bytes each.
    pub st_space: [u32; 32],
    /// 16 XMM registers, 16 bytes each.
    pub xmm_space: [u32; 64],
    pub padding: [u32; 12],
    /// `fpx_sw_bytes` in signal frames (software-reserved in FXSAVE).
    pub sw_reserved: [u32; 12],
}
const _: () = assert!(size_of::<FpRegs>() == 512);
const _: () = assert!(offset_of!(FpRegs, mxcsr) == 24);
const _: () = assert!(offset_of!(FpRegs, st_space) == 32);
const _: () = assert!(offset_of!(FpRegs, xmm_space) == 160);
const _: () = assert!(offset_of!(FpRegs, sw_reserved) == 464);

impl Default for FpRegs {
    /// The FINIT/reset state: control word 0x37f, MXCSR 0x1f80.
    fn default() -> Self {
        FpRegs {
            cwd: 0x37f,
            swd: 0,
            twd: 0,
            fop: 0,
            rip: 0,
            rdp: 0,
            mxcsr: 0x1f80,
            mxcsr_mask: 0,
            st_space: [0; 32],
            xmm_space: [0; 64],
            padding: [0; 12],
            sw_reserved: [0; 12],
        }
    }
}

/// Upper bound of the XSAVE area we handle (NT_X86_XSTATE buffers and the
/// signal-frame fpstate). Covers x87..AVX-512 and PKRU (2696 bytes on
/// current CPUs); AMX tile data (8 KiB more) is not supported.
pub const XSAVE_MAX_SIZE: usize = 4096;
/// Offset of the XSAVE header in the XSAVE area.
pub const XSAVE_HDR_OFFSET: usize = 512;
/// Size of the XSAVE header.
pub const XSAVE_HDR_SIZE: usize = 64;
/// Offset of the extended (YMM, ...) state in standard format.
pub const XSAVE_EXT_OFFSET: usize = XSAVE_HDR_OFFSET + XSAVE_HDR_SIZE;
/// Offset of the AVX (YMM high halves) component in the standard format.
pub const XSAVE_YMM_OFFSET: usize = 576;
/// Size of the AVX component (16 x 16 bytes).
pub const XSAVE_YMM_SIZE: usize = 256;

/// XSAVE feature bits (`XFEATURE_MASK_*`).
pub mod xfeature {
    pub const FP: u64 = 1 << 0;
    pub const SSE: u64 = 1 << 1;
    pub const YMM: u64 = 1 << 2;
    pub const BNDREGS: u64 = 1 << 3;
    pub const BNDCSR: u64 = 1 << 4;
    pub const OPMASK: u64 = 1 << 5;
    pub const ZMM_HI256: u64 = 1 << 6;
    pub const HI16_ZMM: u64 = 1 << 7;
    pub const PKRU: u64 = 1 << 9;
}

/// `FP_XSTATE_MAGIC1`: `fpx_sw_bytes.magic1` of a signal frame with XSAVE data.
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
/// `FP_XSTATE_MAGIC2`: 4 bytes placed right after the XSAVE data in a frame.
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Size of `FP_XSTATE_MAGIC2`.
pub const FP_XSTATE_MAGIC2_SIZE: usize = 4;

/// The XSAVE header (`struct xstate_header`), at offset 512.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsaveHeader {
    /// XSTATE_BV: which components hold non-init state.
    pub xfeatures: u64,
    /// XCOMP_BV: compacted-format flags (0 for the standard format ptrace uses).
    pub xcomp_bv: u64,
    pub reserved: [u64; 6],
}
const _: () = assert!(size_of::<XsaveHeader>() == XSAVE_HDR_SIZE);

/// `struct _fpx_sw_bytes`: software data in `FpRegs::sw_reserved` of a
/// signal frame telling the kernel that XSAVE data follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FpxSwBytes {
    /// [`FP_XSTATE_MAGIC1`].
    pub magic1: u32,
    /// Bytes from the start of fpstate to the end incl. MAGIC2.
    pub extended_size: u32,
    /// Feature bits present.
    pub xfeatures: u64,
    /// XSAVE data size (without MAGIC2).
    pub xstate_size: u32,
    pub padding: [u32; 7],
}
const _: () = assert!(size_of::<FpxSwBytes>() == 48);

/// An XSAVE area in the standard (non-compacted) format, as NT_X86_XSTATE
/// returns it and as the signal frame's fpstate holds it.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsaveArea {
    /// The legacy FXSAVE part.
    pub i387: FpRegs,
    /// XSAVE header.
    pub header: XsaveHeader,
    /// Extended components, at their standard offsets minus 576.
    pub extended: [u8; XSAVE_MAX_SIZE - XSAVE_EXT_OFFSET],
}
const _: () = assert!(size_of::<XsaveArea>() == XSAVE_MAX_SIZE);
const _: () = assert!(offset_of!(XsaveArea, header) == XSAVE_HDR_OFFSET);

impl Default for XsaveArea {
    fn default() -> Self {
        XsaveArea {
            i387: FpRegs::default(),
            header: XsaveHeader::default(),
            extended: [0; XSAVE_MAX_SIZE - XSAVE_EXT_OFFSET],
        }
    }
}

/// The offset of XSAVE component `component` (an `xfeature` bit number,
/// 2..=9) in the standard (non-compacted) format that `NT_X86_XSTATE` and
/// signal frames use, from CPUID leaf 0xD sub-leaf `component` (EBX). The
/// offsets differ between vendors (AMD has no MPX, so its AVX-512 state sits
/// 256 bytes lower than Intel's); 0 if the CPU does not describe it.
pub fn xstate_component_offset(component: u32) -> usize {
    if !(2..64).contains(&component) {
        return 0;
    }
    // CPUID is unprivileged and has no side effects; leaf 0xD exists on
    // every CPU with XSAVE (an unknown sub-leaf reads as zeroes).
    core::arch::x86_64::__cpuid_count(0xd, component).ebx as usize
}
