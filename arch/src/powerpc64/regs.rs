//! ppc64le register sets as ptrace lays them out
//! (arch/powerpc/include/uapi/asm/ptrace.h, asm/elf.h).

use core::mem::{offset_of, size_of};

use crate::common::{EINTR, reruns_after_restart_block, restart_kind};

/// `EM_PPC64`.
pub const ELF_MACHINE: u16 = 21;
/// `AUDIT_ARCH_PPC64LE`.
pub const AUDIT_ARCH: u32 = 0xc000_0015;
/// CRIU core image `march` (`CoreEntry.mtype`): PPC64.
pub const CORE_MTYPE: u32 = 4;

/// The regset that holds the number of the syscall a stopped thread is
/// about to run, where it is not in the general registers; writing -1
/// there skips it. Here: the general registers carry it.
pub const SYSCALL_NR_REGSET: Option<u32> = None;

/// The regset holding the kernel's syscall-restart state of a stopped
/// thread outside the general registers (a u32, 0 = not in a syscall):
/// a tracer saves it at the seize, writes 0 while injected code runs
/// (else the kernel may rewind the injected PSW on resume) and writes it
/// back with the registers. Here: none (the general registers carry it).
pub const SYSCALL_RESTART_REGSET: Option<u32> = None;

/// Vector regsets beyond the FP set (NT_PRFPREG) that infection saves and
/// puts back and the dump reads: Altivec and the VSX low doublewords,
/// which the parasite's code may change and a signal frame without them
/// would zero.
pub const VECTOR_REGSETS: &[u32] = &[NT_PPC_VMX, NT_PPC_VSX];

/// Whether the user address space ends one page below a power of two:
/// the top of the user address space is a power of two (TASK_SIZE has no guard page).
pub const TASK_SIZE_GUARD_PAGE: bool = false;

/// Whether a task resumed from a syscall-entry stop runs the syscall the
/// injected general registers name: yes, the kernel reads r0 after the
/// stop, and then returns to the injected `sc`, which runs the syscall a
/// second time with the first one's result as argument. A pending syscall
/// is skipped first (r0 = -1, stepped to its exit stop).
pub const ENTRY_STOP_RUNS_INJECTED_SYSCALL: bool = true;

/// `NT_PPC_VMX`: Altivec registers ([`VrRegs`]).
pub const NT_PPC_VMX: u32 = 0x100;
/// `NT_PPC_VSX`: low doublewords of VSR0..31 ([`VsxRegs`]).
pub const NT_PPC_VSX: u32 = 0x102;
/// `NT_PPC_TAR`: target address register.
pub const NT_PPC_TAR: u32 = 0x103;
/// `NT_PPC_PPR`: program priority register.
pub const NT_PPC_PPR: u32 = 0x104;
/// `NT_PPC_DSCR`: data stream control register.
pub const NT_PPC_DSCR: u32 = 0x105;
/// `NT_PPC_TM_CGPR`: checkpointed GPRs (transactional memory).
pub const NT_PPC_TM_CGPR: u32 = 0x108;
/// `NT_PPC_TM_CFPR`: checkpointed FPRs.
pub const NT_PPC_TM_CFPR: u32 = 0x109;
/// `NT_PPC_TM_CVMX`: checkpointed VMX registers.
pub const NT_PPC_TM_CVMX: u32 = 0x10a;
/// `NT_PPC_TM_CVSX`: checkpointed VSX registers.
pub const NT_PPC_TM_CVSX: u32 = 0x10b;
/// `NT_PPC_TM_SPR`: TM special-purpose registers.
pub const NT_PPC_TM_SPR: u32 = 0x10c;

/// `ELF_NGREG`: words in an `elf_gregset_t` (NT_PRSTATUS, signal frames);
/// [`GpRegs`] covers the first 44, the rest are zero padding.
pub const ELF_NGREG: usize = 48;
/// `ELF_NFPREG`: 32 FPRs plus FPSCR.
pub const ELF_NFPREG: usize = 33;
/// `ELF_NVRREG`: 32 VRs, VSCR and VRSAVE, 16 bytes each.
pub const ELF_NVRREG: usize = 34;

/// `MSR_LE`: little-endian mode.
pub const MSR_LE: u64 = 1 << 0;
/// `MSR_FP`: FP available.
pub const MSR_FP: u64 = 1 << 13;
/// `MSR_VSX`: VSX available / VSX data present in a signal frame.
pub const MSR_VSX: u64 = 1 << 23;
/// `MSR_VEC`: Altivec available / VMX data present in a signal frame.
pub const MSR_VEC: u64 = 1 << 25;
/// `MSR_TS_MASK`: transaction state bits.
pub const MSR_TS_MASK: u64 = 3 << 33;
/// CR0.SO in `ccr`: the `sc` error flag.
pub const CR0_SO: u64 = 0x1000_0000;
/// `trap` value of a task that entered the kernel through `sc`.
pub const TRAP_SC: u64 = 0xc00;
/// `trap` value of a task that entered the kernel through `scv 0`.
pub const TRAP_SCV: u64 = 0x3000;

/// `struct pt_regs` / `user_pt_regs` (PTRACE_GETREGS, NT_PRSTATUS), 352 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpRegs {
    /// r0..r31 (r1 = sp, r2 = TOC, r13 = thread pointer).
    pub gpr: [u64; 32],
    /// Next instruction address (pc).
    pub nip: u64,
    pub msr: u64,
    /// r3 at syscall entry (for restarts).
    pub orig_gpr3: u64,
    pub ctr: u64,
    /// Link register.
    pub link: u64,
    pub xer: u64,
    /// Condition register.
    pub ccr: u64,
    pub softe: u64,
    /// Exception vector the task entered the kernel with (0xc00 = `sc`).
    pub trap: u64,
    pub dar: u64,
    pub dsisr: u64,
    pub result: u64,
}
const _: () = assert!(size_of::<GpRegs>() == 44 * 8);
const _: () = assert!(offset_of!(GpRegs, nip) == 32 * 8);
const _: () = assert!(offset_of!(GpRegs, orig_gpr3) == 34 * 8);
const _: () = assert!(offset_of!(GpRegs, ccr) == 38 * 8);
const _: () = assert!(offset_of!(GpRegs, trap) == 40 * 8);
const _: () = assert!(offset_of!(GpRegs, result) == 43 * 8);

impl GpRegs {
    /// Program counter (nip).
    pub fn pc(&self) -> u64 {
        self.nip
    }
    /// Set the program counter.
    pub fn set_pc(&mut self, pc: u64) {
        self.nip = pc;
    }
    /// Stack pointer (r1).
    pub fn sp(&self) -> u64 {
        self.gpr[1]
    }
    /// Set the stack pointer.
    pub fn set_sp(&mut self, sp: u64) {
        self.gpr[1] = sp;
    }
    /// Syscall number register (r0).
    pub fn syscall_nr(&self) -> i64 {
        self.gpr[0] as i64
    }
    /// The return-value register (r3), raw.
    pub fn retval(&self) -> u64 {
        self.gpr[3]
    }
    /// Set the return-value register.
    pub fn set_retval(&mut self, v: u64) {
        self.gpr[3] = v;
    }
    /// Result of a syscall that just completed, as `-errno` on failure:
    /// `sc` reports errors as a positive r3 with CR0.SO set (the kernel
    /// clears SO on entry, so it is the syscall's own). `trap` is not
    /// required to say `sc`: after an injected `sc; trap` the task stops
    /// at the trap, whose vector (0x700) replaced it; only `scv`, which
    /// returns `-errno` itself, is told apart.
    pub fn syscall_result(&self) -> i64 {
        if self.trap & !0xf != TRAP_SCV && self.ccr & CR0_SO != 0 {
            (self.gpr[3] as i64).wrapping_neg()
        } else {
            self.gpr[3] as i64
        }
    }
    /// At a syscall-entry stop: make the pending syscall one no kernel has
    /// (it then fails with ENOSYS): the kernel reads r0 after the stop.
    pub fn cancel_pending_syscall(&mut self) {
        self.set_syscall(u64::MAX, [0; 6]);
    }
    /// Load a syscall for injection: number in r0, arguments in r3..r8.
    /// `trap` is cleared so the kernel does not see a syscall to restart.
    pub fn set_syscall(&mut self, nr: u64, args: [u64; 6]) {
        self.gpr[0] = nr;
        self.gpr[3..9].copy_from_slice(&args);
        self.trap = 0;
    }
    /// Do what the kernel does when it resumes a task stopped inside a
    /// syscall without running a handler (`check_syscall_restart`): for
    /// `ERESTARTSYS`/`ERESTARTNOINTR`/`ERESTARTNOHAND` restore r3 and step
    /// nip back over the 4-byte `sc`; for `ERESTART_RESTARTBLOCK` report
    /// `EINTR`, unless the call made again is the same (`poll` without a
    /// timeout, see [`reruns_after_restart_block`]: r0 still holds its
    /// number, r5 its timeout). Handles both `sc` (positive errno + CR0.SO)
    /// and `scv` (negative errno). `trap` is cleared afterwards.
    pub fn restart_syscall_fixup(&mut self) {
        let ret = match self.trap & !0xf {
            TRAP_SC if self.ccr & CR0_SO != 0 => (self.gpr[3] as i64).wrapping_neg(),
            TRAP_SCV => self.gpr[3] as i64,
            _ => return,
        };
        let scv = self.trap & !0xf == TRAP_SCV;
        let again = reruns_after_restart_block(self.gpr[0], super::nr::POLL, self.gpr[5]);
        match restart_kind(ret) {
            Some(b) if b || again => {
                self.gpr[3] = self.orig_gpr3;
                self.nip = self.nip.wrapping_sub(4);
                // The re-executed `sc` reports its own status.
                self.ccr &= !CR0_SO;
            }
            Some(_) => self.gpr[3] = if scv { (-EINTR) as u64 } else { EINTR as u64 },
            None => {}
        }
        self.trap = 0;
    }
}

/// FP registers (PTRACE_GETFPREGS, NT_PRFPREG): FPR0..31 and FPSCR, 264 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FpRegs {
    /// FPR0..31 (the upper doublewords of VSR0..31), as raw bits.
    pub fpr: [u64; 32],
    pub fpscr: u64,
}
const _: () = assert!(size_of::<FpRegs>() == ELF_NFPREG * 8);

/// Altivec registers (PTRACE_GETVRREGS, NT_PPC_VMX), 544 bytes: VR0..31,
/// VSCR (in the last word of its quadword) and VRSAVE (first word of the
/// last quadword).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VrRegs {
    pub vr: [u128; 32],
    /// VSCR quadword, raw.
    pub vscr: [u32; 4],
    /// VRSAVE and padding, raw.
    pub vrsave: [u32; 4],
}
const _: () = assert!(size_of::<VrRegs>() == ELF_NVRREG * 16);

/// VSX registers (PTRACE_GETVSRREGS, NT_PPC_VSX): the low doublewords of
/// VSR0..31, 256 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VsxRegs {
    pub vsr_low: [u64; 32],
}
const _: () = assert!(size_of::<VsxRegs>() == 256);
