//! Our kernel-ABI types against linux-raw-sys's bindgen output (generated
//! from the kernel's uapi headers) for the arch under test.

use core::mem::{align_of, offset_of, size_of};
use linux_raw_sys::general as g;

#[test]
fn common_signal_types() {
    assert_eq!(
        size_of::<criu_arch::KSigaction>(),
        size_of::<g::kernel_sigaction>()
    );
    assert_eq!(
        offset_of!(criu_arch::KSigaction, flags),
        offset_of!(g::kernel_sigaction, sa_flags)
    );
    assert_eq!(
        offset_of!(criu_arch::KSigaction, restorer),
        offset_of!(g::kernel_sigaction, sa_restorer)
    );
    assert_eq!(
        offset_of!(criu_arch::KSigaction, mask),
        offset_of!(g::kernel_sigaction, sa_mask)
    );
    assert_eq!(size_of::<criu_arch::StackT>(), size_of::<g::stack_t>());
    assert_eq!(
        offset_of!(criu_arch::StackT, flags),
        offset_of!(g::stack_t, ss_flags)
    );
    assert_eq!(
        offset_of!(criu_arch::StackT, size),
        offset_of!(g::stack_t, ss_size)
    );
    assert_eq!(size_of::<criu_arch::Siginfo>(), size_of::<g::siginfo_t>());
    assert_eq!(criu_arch::SA_RESTORER, g::SA_RESTORER as u64);
    assert_eq!(criu_arch::SA_SIGINFO, g::SA_SIGINFO as u64);
    assert_eq!(criu_arch::SA_ONSTACK, g::SA_ONSTACK as u64);
    assert_eq!(criu_arch::SA_RESTART, g::SA_RESTART as u64);
    assert_eq!(criu_arch::SA_NODEFER, g::SA_NODEFER as u64);
    assert_eq!(
        criu_arch::SA_RESETHAND,
        g::SA_RESETHAND as u64 & 0xffff_ffff
    );
    assert_eq!(criu_arch::SS_DISABLE, g::SS_DISABLE as i32);
    assert_eq!(criu_arch::SS_AUTODISARM, g::SS_AUTODISARM as i32);
    assert_eq!(criu_arch::sig::SIGSYS, g::SIGSYS as usize);
    assert_eq!(criu_arch::sig::SIGPWR, g::SIGPWR as usize);
    assert_eq!(criu_arch::sig::SIGSTKFLT, g::SIGSTKFLT as usize);
}

#[test]
fn blob_constants() {
    assert_eq!(criu_arch::INJECT_CODE.len(), 8);
    assert!(criu_arch::INJECT_CODE.starts_with(criu_arch::SYSCALL_INSN));
    let tail = &criu_arch::INJECT_CODE[criu_arch::SYSCALL_INSN.len()..];
    assert!(tail.starts_with(criu_arch::TRAP_INSN));
    assert!(criu_arch::MAX_PAGE_SIZE.is_power_of_two());
    assert_eq!(criu_arch::SIGFRAME_SIZE % criu_arch::SIGFRAME_ALIGN, 0);
    assert!(align_of::<criu_arch::RtSigframe>() >= criu_arch::SIGFRAME_ALIGN);
    const { assert!(criu_arch::SIGFRAME_ALIGN >= 8) };
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x86_64_regs() {
    use criu_arch::GpRegs;
    use linux_raw_sys::ptrace::pt_regs;
    // user_regs_struct begins with the 21 words of the uapi pt_regs.
    assert_eq!(size_of::<pt_regs>(), 21 * 8);
    assert_eq!(offset_of!(GpRegs, r15), offset_of!(pt_regs, r15));
    assert_eq!(offset_of!(GpRegs, bp), offset_of!(pt_regs, rbp));
    assert_eq!(offset_of!(GpRegs, ax), offset_of!(pt_regs, rax));
    assert_eq!(offset_of!(GpRegs, di), offset_of!(pt_regs, rdi));
    assert_eq!(offset_of!(GpRegs, orig_ax), offset_of!(pt_regs, orig_rax));
    assert_eq!(offset_of!(GpRegs, ip), offset_of!(pt_regs, rip));
    assert_eq!(offset_of!(GpRegs, flags), offset_of!(pt_regs, eflags));
    assert_eq!(offset_of!(GpRegs, sp), offset_of!(pt_regs, rsp));
    assert_eq!(offset_of!(GpRegs, ss), offset_of!(pt_regs, ss));
    use linux_raw_sys::elf_uapi as e;
    use linux_raw_sys::ptrace as p;
    assert_eq!(criu_arch::ELF_MACHINE as u32, p::EM_X86_64);
    assert_eq!(criu_arch::AUDIT_ARCH, p::AUDIT_ARCH_X86_64);
    assert_eq!(criu_arch::NT_X86_XSTATE, e::NT_X86_XSTATE);
    assert_eq!(criu_arch::NT_X86_SHSTK, e::NT_X86_SHSTK);
    assert_eq!(criu_arch::NT_386_TLS, e::NT_386_TLS);
}

#[test]
fn common_notes() {
    use linux_raw_sys::elf_uapi as e;
    assert_eq!(criu_arch::NT_PRSTATUS, e::NT_PRSTATUS);
    assert_eq!(criu_arch::NT_PRFPREG, e::NT_PRFPREG);
    assert_eq!(criu_arch::NT_PRPSINFO, e::NT_PRPSINFO);
    assert_eq!(criu_arch::NT_AUXV, e::NT_AUXV);
    assert_eq!(criu_arch::NT_SIGINFO, e::NT_SIGINFO);
}

#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_regs() {
    use criu_arch::{FpRegs, GpRegs};
    use linux_raw_sys::elf_uapi as e;
    use linux_raw_sys::ptrace as p;
    assert_eq!(size_of::<GpRegs>(), size_of::<p::user_pt_regs>());
    assert_eq!(offset_of!(GpRegs, sp), offset_of!(p::user_pt_regs, sp));
    assert_eq!(offset_of!(GpRegs, pc), offset_of!(p::user_pt_regs, pc));
    assert_eq!(
        offset_of!(GpRegs, pstate),
        offset_of!(p::user_pt_regs, pstate)
    );
    assert_eq!(size_of::<FpRegs>(), size_of::<p::user_fpsimd_state>());
    assert_eq!(
        offset_of!(FpRegs, fpsr),
        offset_of!(p::user_fpsimd_state, fpsr)
    );
    assert_eq!(
        offset_of!(FpRegs, fpcr),
        offset_of!(p::user_fpsimd_state, fpcr)
    );
    assert_eq!(criu_arch::ELF_MACHINE as u32, p::EM_AARCH64);
    assert_eq!(criu_arch::AUDIT_ARCH, p::AUDIT_ARCH_AARCH64);
    assert_eq!(criu_arch::NT_ARM_TLS, e::NT_ARM_TLS);
    assert_eq!(criu_arch::NT_ARM_HW_BREAK, e::NT_ARM_HW_BREAK);
    assert_eq!(criu_arch::NT_ARM_HW_WATCH, e::NT_ARM_HW_WATCH);
    assert_eq!(criu_arch::NT_ARM_SYSTEM_CALL, e::NT_ARM_SYSTEM_CALL);
    assert_eq!(criu_arch::NT_ARM_SVE, e::NT_ARM_SVE);
    assert_eq!(criu_arch::NT_ARM_PAC_MASK, e::NT_ARM_PAC_MASK);
    assert_eq!(criu_arch::NT_ARM_PACA_KEYS, e::NT_ARM_PACA_KEYS);
    assert_eq!(criu_arch::NT_ARM_PACG_KEYS, e::NT_ARM_PACG_KEYS);
    assert_eq!(
        criu_arch::NT_ARM_TAGGED_ADDR_CTRL,
        e::NT_ARM_TAGGED_ADDR_CTRL
    );
    assert_eq!(
        criu_arch::NT_ARM_PAC_ENABLED_KEYS,
        e::NT_ARM_PAC_ENABLED_KEYS
    );
}

#[cfg(target_arch = "powerpc64")]
#[test]
fn powerpc64_regs() {
    use criu_arch::GpRegs;
    use linux_raw_sys::elf_uapi as e;
    use linux_raw_sys::ptrace as p;
    assert_eq!(size_of::<GpRegs>(), size_of::<p::pt_regs>());
    assert_eq!(offset_of!(GpRegs, nip), offset_of!(p::pt_regs, nip));
    assert_eq!(
        offset_of!(GpRegs, orig_gpr3),
        offset_of!(p::pt_regs, orig_gpr3)
    );
    assert_eq!(offset_of!(GpRegs, ccr), offset_of!(p::pt_regs, ccr));
    assert_eq!(offset_of!(GpRegs, softe), offset_of!(p::pt_regs, softe));
    assert_eq!(offset_of!(GpRegs, trap), offset_of!(p::pt_regs, trap));
    assert_eq!(offset_of!(GpRegs, result), offset_of!(p::pt_regs, result));
    assert_eq!(criu_arch::ELF_MACHINE as u32, p::EM_PPC64);
    assert_eq!(criu_arch::AUDIT_ARCH, p::AUDIT_ARCH_PPC64LE);
    assert_eq!(criu_arch::NT_PPC_VMX, e::NT_PPC_VMX);
    assert_eq!(criu_arch::NT_PPC_VSX, e::NT_PPC_VSX);
    assert_eq!(criu_arch::NT_PPC_TAR, e::NT_PPC_TAR);
    assert_eq!(criu_arch::NT_PPC_PPR, e::NT_PPC_PPR);
    assert_eq!(criu_arch::NT_PPC_DSCR, e::NT_PPC_DSCR);
    assert_eq!(criu_arch::NT_PPC_TM_CGPR, e::NT_PPC_TM_CGPR);
    assert_eq!(criu_arch::NT_PPC_TM_CFPR, e::NT_PPC_TM_CFPR);
    assert_eq!(criu_arch::NT_PPC_TM_CVMX, e::NT_PPC_TM_CVMX);
    assert_eq!(criu_arch::NT_PPC_TM_CVSX, e::NT_PPC_TM_CVSX);
    assert_eq!(criu_arch::NT_PPC_TM_SPR, e::NT_PPC_TM_SPR);
}

#[cfg(target_arch = "s390x")]
#[test]
fn s390x_regs() {
    use criu_arch::{FpRegs, GpRegs};
    use linux_raw_sys::elf_uapi as e;
    use linux_raw_sys::ptrace as p;
    assert_eq!(size_of::<GpRegs>(), size_of::<p::s390_regs>());
    assert_eq!(offset_of!(GpRegs, gprs), offset_of!(p::s390_regs, gprs));
    assert_eq!(offset_of!(GpRegs, acrs), offset_of!(p::s390_regs, acrs));
    assert_eq!(
        offset_of!(GpRegs, orig_gpr2),
        offset_of!(p::s390_regs, orig_gpr2)
    );
    assert_eq!(size_of::<FpRegs>(), size_of::<p::s390_fp_regs>());
    assert_eq!(offset_of!(FpRegs, fprs), offset_of!(p::s390_fp_regs, fprs));
    assert_eq!(criu_arch::ELF_MACHINE as u32, p::EM_S390);
    assert_eq!(criu_arch::AUDIT_ARCH, p::AUDIT_ARCH_S390X);
    assert_eq!(criu_arch::NT_S390_TIMER, e::NT_S390_TIMER);
    assert_eq!(criu_arch::NT_S390_TODCMP, e::NT_S390_TODCMP);
    assert_eq!(criu_arch::NT_S390_TODPREG, e::NT_S390_TODPREG);
    assert_eq!(criu_arch::NT_S390_CTRS, e::NT_S390_CTRS);
    assert_eq!(criu_arch::NT_S390_PREFIX, e::NT_S390_PREFIX);
    assert_eq!(criu_arch::NT_S390_LAST_BREAK, e::NT_S390_LAST_BREAK);
    assert_eq!(criu_arch::NT_S390_SYSTEM_CALL, e::NT_S390_SYSTEM_CALL);
    assert_eq!(criu_arch::NT_S390_TDB, e::NT_S390_TDB);
    assert_eq!(criu_arch::NT_S390_VXRS_LOW, e::NT_S390_VXRS_LOW);
    assert_eq!(criu_arch::NT_S390_VXRS_HIGH, e::NT_S390_VXRS_HIGH);
    assert_eq!(criu_arch::NT_S390_GS_CB, e::NT_S390_GS_CB);
    assert_eq!(criu_arch::NT_S390_GS_BC, e::NT_S390_GS_BC);
    assert_eq!(criu_arch::NT_S390_RI_CB, e::NT_S390_RI_CB);
}
