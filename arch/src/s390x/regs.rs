//! s390x register sets as ptrace lays them out
//! (arch/s390/include/uapi/asm/ptrace.h, asm/elf.h). Big-endian.

use core::mem::{offset_of, size_of};

use crate::common::{EINTR, reruns_after_restart_block, restart_kind};

/// `EM_S390`.
pub const ELF_MACHINE: u16 = 22;
/// `AUDIT_ARCH_S390X`.
pub const AUDIT_ARCH: u32 = 0x8000_0016;
/// CRIU core image `march` (`CoreEntry.mtype`): S390.
pub const CORE_MTYPE: u32 = 5;

/// The regset that holds the number of the syscall a stopped thread is
/// about to run, where it is not in the general registers; writing -1
/// there skips it. Here: the general registers carry it.
pub const SYSCALL_NR_REGSET: Option<u32> = None;

/// The regset holding the kernel's syscall-restart state of a stopped
/// thread outside the general registers (a u32, 0 = not in a syscall):
/// a tracer saves it at the seize, writes 0 while injected code runs
/// (else the kernel may rewind the injected PSW on resume) and writes it
/// back with the registers. Here: `NT_S390_SYSTEM_CALL` (instruction length << 16 | number).
pub const SYSCALL_RESTART_REGSET: Option<u32> = Some(NT_S390_SYSTEM_CALL);

/// Vector regsets beyond the FP/extended set that infection saves and
/// puts back and the dump reads (ppc64's VMX and VSX); none here.
pub const VECTOR_REGSETS: &[u32] = &[];

/// Whether the user address space ends one page below a power of two:
/// the top of the user address space is a power of two (TASK_SIZE has no guard page).
pub const TASK_SIZE_GUARD_PAGE: bool = false;

/// Whether a task resumed from a syscall-entry stop runs the syscall the
/// written general registers name (so a pending one must be cancelled,
/// [`GpRegs::cancel_pending_syscall`], and stepped to its exit first):
/// yes, s390x's ptrace ABI reads the number back from r2 there.
pub const ENTRY_STOP_RUNS_INJECTED_SYSCALL: bool = true;

/// `NT_S390_TIMER`.
pub const NT_S390_TIMER: u32 = 0x301;
/// `NT_S390_TODCMP`.
pub const NT_S390_TODCMP: u32 = 0x302;
/// `NT_S390_TODPREG`.
pub const NT_S390_TODPREG: u32 = 0x303;
/// `NT_S390_CTRS`.
pub const NT_S390_CTRS: u32 = 0x304;
/// `NT_S390_PREFIX`.
pub const NT_S390_PREFIX: u32 = 0x305;
/// `NT_S390_LAST_BREAK`.
pub const NT_S390_LAST_BREAK: u32 = 0x306;
/// `NT_S390_SYSTEM_CALL`: a u32, the interruption code of the syscall the
/// task is in (instruction length << 16 | number), 0 if none.
pub const NT_S390_SYSTEM_CALL: u32 = 0x307;
/// `NT_S390_TDB`: transaction diagnostic block.
pub const NT_S390_TDB: u32 = 0x308;
/// `NT_S390_VXRS_LOW`: right halves of V0..V15 ([`VxrsLow`]).
pub const NT_S390_VXRS_LOW: u32 = 0x309;
/// `NT_S390_VXRS_HIGH`: V16..V31 ([`VxrsHigh`]).
pub const NT_S390_VXRS_HIGH: u32 = 0x30a;
/// `NT_S390_GS_CB`: guarded-storage control block.
pub const NT_S390_GS_CB: u32 = 0x30b;
/// `NT_S390_GS_BC`: guarded-storage broadcast control block.
pub const NT_S390_GS_BC: u32 = 0x30c;
/// `NT_S390_RI_CB`: runtime-instrumentation control block.
pub const NT_S390_RI_CB: u32 = 0x30d;

/// `PSW_MASK_RI`: runtime instrumentation.
pub const PSW_MASK_RI: u64 = 0x0000_0080_0000_0000;
/// `PSW_MASK_EA`: extended addressing (64-bit with BA).
pub const PSW_MASK_EA: u64 = 0x0000_0001_0000_0000;
/// `PSW_MASK_BA`: basic addressing (31-bit alone).
pub const PSW_MASK_BA: u64 = 0x0000_0000_8000_0000;

/// `psw_t`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Psw {
    pub mask: u64,
    pub addr: u64,
}

/// `s390_regs` (NT_PRSTATUS, `elf_gregset_t`), 216 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpRegs {
    pub psw: Psw,
    /// r0..r15 (r14 = return address, r15 = stack pointer).
    pub gprs: [u64; 16],
    /// Access registers (a0:a1 = thread pointer).
    pub acrs: [u32; 16],
    /// r2 at syscall entry (for restarts).
    pub orig_gpr2: u64,
}
const _: () = assert!(size_of::<GpRegs>() == 216);
const _: () = assert!(offset_of!(GpRegs, gprs) == 16);
const _: () = assert!(offset_of!(GpRegs, acrs) == 144);
const _: () = assert!(offset_of!(GpRegs, orig_gpr2) == 208);

impl GpRegs {
    /// Program counter (PSW address).
    pub fn pc(&self) -> u64 {
        self.psw.addr
    }
    /// Set the program counter.
    pub fn set_pc(&mut self, pc: u64) {
        self.psw.addr = pc;
    }
    /// Stack pointer (r15).
    pub fn sp(&self) -> u64 {
        self.gprs[15]
    }
    /// Set the stack pointer.
    pub fn set_sp(&mut self, sp: u64) {
        self.gprs[15] = sp;
    }
    /// Syscall number register for `svc 0` (r1). The syscall a task is
    /// stopped in is reported by NT_S390_SYSTEM_CALL.
    pub fn syscall_nr(&self) -> i64 {
        self.gprs[1] as i64
    }
    /// The return-value register (r2), raw.
    pub fn retval(&self) -> u64 {
        self.gprs[2]
    }
    /// Set the return-value register.
    pub fn set_retval(&mut self, v: u64) {
        self.gprs[2] = v;
    }
    /// Result of a syscall that just completed: `-errno` on failure.
    pub fn syscall_result(&self) -> i64 {
        self.gprs[2] as i64
    }
    /// Load a syscall for injection: number in r1, arguments in r2..r7.
    /// (s390x's `mmap` wants a pointer to an argument block in memory.)
    /// Tracers should also write 0 to NT_S390_SYSTEM_CALL so that the
    /// kernel does not consider restarting the syscall the task was in.
    pub fn set_syscall(&mut self, nr: u64, args: [u64; 6]) {
        self.gprs[1] = nr;
        self.gprs[2..8].copy_from_slice(&args);
    }
    /// At a syscall-entry stop: make the pending syscall one no kernel has
    /// (it then fails with ENOSYS): the number is read back from r2.
    pub fn cancel_pending_syscall(&mut self) {
        self.gprs[2] = u64::MAX;
    }
    /// Restart fix-up without the NT_S390_SYSTEM_CALL word: if r2 holds a
    /// restart code, assume the task is in a syscall entered with the
    /// 2-byte `svc` and apply [`restart_syscall_fixup_with`](Self::restart_syscall_fixup_with).
    pub fn restart_syscall_fixup(&mut self) {
        if restart_kind(self.gprs[2] as i64).is_some() {
            self.restart_syscall_fixup_with(2 << 16);
        }
    }
    /// Do what the kernel does when it resumes a task stopped inside a
    /// syscall without running a handler, given the NT_S390_SYSTEM_CALL
    /// word (instruction length << 16 | number; 0 = not in a syscall):
    /// for `-ERESTARTSYS`/`-ERESTARTNOINTR`/`-ERESTARTNOHAND` restore r2 and
    /// rewind the PSW over the `svc`; for `-ERESTART_RESTARTBLOCK` report
    /// `-EINTR`, unless the call made again is the same (`poll` without a
    /// timeout, see [`reruns_after_restart_block`]: the word's low half is
    /// its number, r4 its timeout).
    pub fn restart_syscall_fixup_with(&mut self, system_call: u32) {
        if system_call == 0 {
            return;
        }
        let nr = u64::from(system_call & 0xffff);
        let again = reruns_after_restart_block(nr, super::nr::POLL, self.gprs[4]);
        match restart_kind(self.gprs[2] as i64) {
            Some(b) if b || again => {
                self.gprs[2] = self.orig_gpr2;
                let ilen = u64::from(system_call >> 16);
                self.psw.addr = self.psw.addr.wrapping_sub(ilen) & self.address_mask();
            }
            Some(_) => self.gprs[2] = (-EINTR) as u64,
            None => {}
        }
    }
    /// Mask of valid instruction-address bits for the PSW's addressing mode.
    fn address_mask(&self) -> u64 {
        if self.psw.mask & PSW_MASK_EA != 0 {
            u64::MAX
        } else if self.psw.mask & PSW_MASK_BA != 0 {
            (1 << 31) - 1
        } else {
            (1 << 24) - 1
        }
    }
}

/// `s390_fp_regs` (NT_PRFPREG), 136 bytes: FPC and F0..F15.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FpRegs {
    /// Floating-point control register.
    pub fpc: u32,
    pub pad: u32,
    /// F0..F15 (the left halves of V0..V15), as raw bits.
    pub fprs: [u64; 16],
}
const _: () = assert!(size_of::<FpRegs>() == 136);
const _: () = assert!(offset_of!(FpRegs, fprs) == 8);

/// NT_S390_VXRS_LOW: the right halves (bytes 8..16) of V0..V15, 128 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VxrsLow {
    pub vxrs_low: [u64; 16],
}
const _: () = assert!(size_of::<VxrsLow>() == 128);

/// NT_S390_VXRS_HIGH: V16..V31, 256 bytes. Each register is four
/// big-endian words (`__vector128`, 4-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VxrsHigh {
    pub vxrs_high: [[u32; 4]; 16],
}
const _: () = assert!(size_of::<VxrsHigh>() == 256);
