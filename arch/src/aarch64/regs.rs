//! aarch64 register sets as ptrace's regsets lay them out
//! (arch/arm64/include/uapi/asm/ptrace.h).

use core::mem::{offset_of, size_of};

/// `EM_AARCH64`.
pub const ELF_MACHINE: u16 = 183;
/// `AUDIT_ARCH_AARCH64`.
pub const AUDIT_ARCH: u32 = 0xc000_00b7;
/// CRIU core image `march` (`CoreEntry.mtype`): AARCH64.
pub const CORE_MTYPE: u32 = 3;

/// The regset that holds the number of the syscall a stopped thread is
/// about to run, where it is not in the general registers; writing -1
/// there skips it. Here: the pending syscall number is its own regset (`syscallno`), not x8.
pub const SYSCALL_NR_REGSET: Option<u32> = Some(NT_ARM_SYSTEM_CALL);

/// The regset holding the kernel's syscall-restart state of a stopped
/// thread outside the general registers (a u32, 0 = not in a syscall):
/// a tracer saves it at the seize, writes 0 while injected code runs
/// (else the kernel may rewind the injected PSW on resume) and writes it
/// back with the registers. Here: none (arm64 rewinds an interrupted syscall before the stop).
pub const SYSCALL_RESTART_REGSET: Option<u32> = None;

/// Vector regsets beyond the FP/extended set that infection saves and
/// puts back and the dump reads (ppc64's VMX and VSX); none here.
pub const VECTOR_REGSETS: &[u32] = &[];

/// Whether the user address space ends one page below a power of two:
/// the top of the user address space is a power of two (TASK_SIZE has no guard page).
pub const TASK_SIZE_GUARD_PAGE: bool = false;

/// Whether a task resumed from a syscall-entry stop runs the syscall the
/// injected general registers name (so a pending one must be skipped by
/// stepping it first): no here (the number comes from `SYSCALL_NR_REGSET`).
pub const ENTRY_STOP_RUNS_INJECTED_SYSCALL: bool = false;

/// `NT_ARM_TLS`: tpidr_el0 (and tpidr2_el0).
pub const NT_ARM_TLS: u32 = 0x401;
/// `NT_ARM_HW_BREAK`: hardware breakpoints.
pub const NT_ARM_HW_BREAK: u32 = 0x402;
/// `NT_ARM_HW_WATCH`: hardware watchpoints.
pub const NT_ARM_HW_WATCH: u32 = 0x403;
/// `NT_ARM_SYSTEM_CALL`: the syscall number (`syscallno`).
pub const NT_ARM_SYSTEM_CALL: u32 = 0x404;
/// `NT_ARM_SVE`.
pub const NT_ARM_SVE: u32 = 0x405;
/// `NT_ARM_PAC_MASK`.
pub const NT_ARM_PAC_MASK: u32 = 0x406;
/// `NT_ARM_PACA_KEYS`.
pub const NT_ARM_PACA_KEYS: u32 = 0x407;
/// `NT_ARM_PACG_KEYS`.
pub const NT_ARM_PACG_KEYS: u32 = 0x408;
/// `NT_ARM_TAGGED_ADDR_CTRL`.
pub const NT_ARM_TAGGED_ADDR_CTRL: u32 = 0x409;
/// `NT_ARM_PAC_ENABLED_KEYS`.
pub const NT_ARM_PAC_ENABLED_KEYS: u32 = 0x40a;

/// `struct user_pt_regs` (NT_PRSTATUS), 272 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpRegs {
    /// x0..x30 (x29 = frame pointer, x30 = link register).
    pub regs: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    /// NZCV, DAIF, ... (SPSR_EL1 as the task sees it).
    pub pstate: u64,
}
const _: () = assert!(size_of::<GpRegs>() == 272);
const _: () = assert!(offset_of!(GpRegs, sp) == 248);
const _: () = assert!(offset_of!(GpRegs, pc) == 256);
const _: () = assert!(offset_of!(GpRegs, pstate) == 264);

impl GpRegs {
    /// Program counter.
    pub fn pc(&self) -> u64 {
        self.pc
    }
    /// Set the program counter.
    pub fn set_pc(&mut self, pc: u64) {
        self.pc = pc;
    }
    /// Stack pointer.
    pub fn sp(&self) -> u64 {
        self.sp
    }
    /// Set the stack pointer.
    pub fn set_sp(&mut self, sp: u64) {
        self.sp = sp;
    }
    /// Syscall number register (x8). The number of the syscall a task is
    /// stopped in is only available through NT_ARM_SYSTEM_CALL.
    pub fn syscall_nr(&self) -> i64 {
        self.regs[8] as i64
    }
    /// The return-value register (x0), raw.
    pub fn retval(&self) -> u64 {
        self.regs[0]
    }
    /// Set the return-value register.
    pub fn set_retval(&mut self, v: u64) {
        self.regs[0] = v;
    }
    /// Result of a syscall that just completed: `-errno` on failure.
    pub fn syscall_result(&self) -> i64 {
        self.regs[0] as i64
    }
    /// At a syscall-entry stop the pending syscall's number is not in the
    /// general registers here but in `NT_ARM_SYSTEM_CALL`
    /// ([`SYSCALL_NR_REGSET`]): nothing to change.
    pub fn cancel_pending_syscall(&mut self) {}
    /// Load a syscall for injection: number in x8, arguments in x0..x5.
    pub fn set_syscall(&mut self, nr: u64, args: [u64; 6]) {
        self.regs[8] = nr;
        self.regs[..6].copy_from_slice(&args);
    }
    /// Nothing to do on arm64: the kernel applies the restart decision
    /// (x0 = orig_x0, pc -= 4) *before* it stops the task for ptrace in
    /// `get_signal`, so the registers a tracer reads already describe a
    /// task about to re-execute the `svc`. (`-ERESTART_RESTARTBLOCK` is then
    /// re-executed as the original syscall instead of `restart_syscall`.)
    pub fn restart_syscall_fixup(&mut self) {}
}

/// `struct user_fpsimd_state` (NT_PRFPREG), 528 bytes.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FpRegs {
    /// v0..v31.
    pub vregs: [u128; 32],
    pub fpsr: u32,
    pub fpcr: u32,
    pub reserved: [u32; 2],
}
const _: () = assert!(size_of::<FpRegs>() == 528);
const _: () = assert!(offset_of!(FpRegs, fpsr) == 512);
const _: () = assert!(offset_of!(FpRegs, fpcr) == 516);
