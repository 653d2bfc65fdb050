//! Register accessors, syscall set-up, restart fix-up and the blob calling
//! convention, checked without ptrace (qemu-user has none).

use criu_arch::{BlobCallError, GpRegs, MAX_BLOB_ARGS, setup_blob_call};

#[test]
fn pc_sp_roundtrip() {
    let mut r = GpRegs::default();
    r.set_pc(0x1000_2000);
    r.set_sp(0x7fff_0000);
    assert_eq!(r.pc(), 0x1000_2000);
    assert_eq!(r.sp(), 0x7fff_0000);
}

#[test]
fn blob_call_stack_alignment_and_args() {
    let mut r = GpRegs::default();
    let call = setup_blob_call(&mut r, 0x4000, 0x7000_0123, &[1, 2, 3, 4, 5, 6], 0x5000).unwrap();
    assert_eq!(r.pc(), 0x4000);
    assert_eq!(r.sp(), call.sp);
    assert!(call.sp < 0x7000_0123);
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(
            call.sp % 16,
            8,
            "rsp = 8 mod 16 after the pushed return address"
        );
        let w = call.stack_word.unwrap();
        assert_eq!((w.addr, w.value), (call.sp, 0x5000));
        assert_eq!([r.di, r.si, r.dx, r.cx, r.r8, r.r9], [1, 2, 3, 4, 5, 6]);
        assert_eq!(r.orig_ax, u64::MAX);
    }
    #[cfg(target_arch = "powerpc64")]
    {
        assert_eq!(r.gpr[3..9], [1, 2, 3, 4, 5, 6]);
        assert_eq!((r.gpr[12], r.link, r.gpr[1]), (0x4000, 0x5000, call.sp));
        assert_eq!((0x7000_0123 & !15) - call.sp, 32, "minimum frame");
    }
    #[cfg(target_arch = "s390x")]
    {
        assert_eq!(r.gprs[2..8], [1, 2, 3, 4, 5, 6]);
        assert_eq!((r.gprs[14], r.gprs[15]), (0x5000, call.sp));
        assert_eq!((0x7000_0123 & !15) - call.sp, 160, "register save area");
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert_eq!(r.regs[..6], [1, 2, 3, 4, 5, 6]);
        assert_eq!(r.regs[30], 0x5000);
    }
    #[cfg(not(target_arch = "x86_64"))]
    assert_eq!(call.sp % 16, 0);
    #[cfg(any(target_arch = "aarch64", target_arch = "s390x"))]
    assert!(call.stack_word.is_none());
    #[cfg(target_arch = "powerpc64")]
    assert_eq!(
        call.stack_word,
        Some(criu_arch::StackWord {
            addr: call.sp,
            value: 0
        })
    );
    assert_eq!(
        setup_blob_call(&mut r, 0, 0x7000_0000, &[0; MAX_BLOB_ARGS + 1], 0),
        Err(BlobCallError::TooManyArgs(MAX_BLOB_ARGS + 1))
    );
}

#[test]
fn set_syscall_and_result() {
    let mut r = GpRegs::default();
    r.set_syscall(39, [10, 20, 30, 40, 50, 60]);
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(r.ax, 39);
        assert_eq!(
            [r.di, r.si, r.dx, r.r10, r.r8, r.r9],
            [10, 20, 30, 40, 50, 60]
        );
        r.ax = (-22i64) as u64;
        assert_eq!(r.syscall_result(), -22);
    }
    #[cfg(target_arch = "powerpc64")]
    {
        assert_eq!(r.gpr[0], 39);
        assert_eq!(r.gpr[3..9], [10, 20, 30, 40, 50, 60]);
        // `sc` error: positive errno with CR0.SO.
        r.trap = criu_arch::TRAP_SC;
        r.gpr[3] = 22;
        r.ccr = criu_arch::CR0_SO;
        assert_eq!(r.syscall_result(), -22);
        r.ccr = 0;
        assert_eq!(r.syscall_result(), 22);
        // Stopped at the trap after an injected `sc`: the program-check
        // vector replaced 0xc00, CR0.SO still tells.
        r.trap = 0x700;
        r.ccr = criu_arch::CR0_SO;
        assert_eq!(r.syscall_result(), -22);
        // `scv` returns -errno itself.
        r.trap = criu_arch::TRAP_SCV;
        r.gpr[3] = (-22i64) as u64;
        assert_eq!(r.syscall_result(), -22);
    }
    #[cfg(target_arch = "s390x")]
    {
        assert_eq!(r.gprs[1], 39);
        assert_eq!(r.gprs[2..8], [10, 20, 30, 40, 50, 60]);
        r.gprs[2] = (-22i64) as u64;
        assert_eq!(r.syscall_result(), -22);
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert_eq!(r.regs[8], 39);
        assert_eq!(r.regs[..6], [10, 20, 30, 40, 50, 60]);
        r.regs[0] = (-22i64) as u64;
        assert_eq!(r.syscall_result(), -22);
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x86_restart_fixup() {
    let base = GpRegs {
        orig_ax: 7,
        ip: 0x1002,
        ..GpRegs::default()
    };
    for e in [512i64, 513, 514] {
        let mut r = GpRegs {
            ax: (-e) as u64,
            ..base
        };
        r.restart_syscall_fixup();
        assert_eq!((r.ax, r.ip), (7, 0x1000), "errno {e}");
    }
    let mut r = GpRegs {
        ax: (-516i64) as u64,
        ..base
    };
    r.restart_syscall_fixup();
    assert_eq!((r.ax as i64, r.ip), (-4, 0x1002));
    // poll (7) without a timeout: its restart block is the call again.
    let mut r = GpRegs {
        ax: (-516i64) as u64,
        dx: (-1i64) as u64,
        ..base
    };
    r.restart_syscall_fixup();
    assert_eq!((r.ax, r.ip), (7, 0x1000), "poll(fds, n, -1) is made again");
    // Another call with a restart block (nanosleep, 35): EINTR.
    let mut r = GpRegs {
        ax: (-516i64) as u64,
        orig_ax: 35,
        dx: (-1i64) as u64,
        ..base
    };
    r.restart_syscall_fixup();
    assert_eq!((r.ax as i64, r.ip), (-4, 0x1002));
    // Not in a syscall: untouched.
    let mut r = GpRegs {
        ax: (-512i64) as u64,
        orig_ax: u64::MAX,
        ..base
    };
    r.restart_syscall_fixup();
    assert_eq!((r.ax as i64, r.ip), (-512, 0x1002));
    // Other errors: untouched.
    let mut r = GpRegs {
        ax: (-4i64) as u64,
        ..base
    };
    r.restart_syscall_fixup();
    assert_eq!((r.ax as i64, r.ip), (-4, 0x1002));
}

#[cfg(target_arch = "powerpc64")]
#[test]
fn ppc64_restart_fixup() {
    use criu_arch::{CR0_SO, TRAP_SC, TRAP_SCV};
    let mut base = GpRegs {
        orig_gpr3: 7,
        nip: 0x1004,
        trap: TRAP_SC,
        ccr: CR0_SO,
        ..GpRegs::default()
    };
    for e in [512u64, 513, 514] {
        let mut r = base;
        r.gpr[3] = e;
        r.restart_syscall_fixup();
        assert_eq!((r.gpr[3], r.nip, r.trap), (7, 0x1000, 0), "errno {e}");
    }
    let mut r = base;
    r.gpr[3] = 516;
    r.restart_syscall_fixup();
    // EINTR as `sc` reports it: positive errno, CR0.SO still set.
    assert_eq!((r.gpr[3], r.nip, r.syscall_result()), (4, 0x1004, -4));
    // Success (no SO): untouched.
    let mut r = base;
    r.ccr = 0;
    r.gpr[3] = 512;
    r.restart_syscall_fixup();
    assert_eq!((r.gpr[3], r.nip), (512, 0x1004));
    // scv: negative errno.
    base.trap = TRAP_SCV;
    base.ccr = 0;
    let mut r = base;
    r.gpr[3] = (-512i64) as u64;
    r.restart_syscall_fixup();
    assert_eq!((r.gpr[3], r.nip), (7, 0x1000));
    let mut r = base;
    r.gpr[3] = (-516i64) as u64;
    r.restart_syscall_fixup();
    assert_eq!(r.gpr[3] as i64, -4);
    // poll (167) without a timeout (r5): made again.
    let mut r = base;
    r.gpr[0] = 167;
    r.gpr[5] = (-1i64) as u64;
    r.gpr[3] = (-516i64) as u64;
    r.restart_syscall_fixup();
    assert_eq!((r.gpr[3], r.nip), (7, 0x1000));
    // With a timeout: EINTR.
    let mut r = base;
    r.gpr[0] = 167;
    r.gpr[5] = 1000;
    r.gpr[3] = (-516i64) as u64;
    r.restart_syscall_fixup();
    assert_eq!((r.gpr[3] as i64, r.nip), (-4, 0x1004));
}

#[cfg(target_arch = "s390x")]
#[test]
fn s390x_restart_fixup() {
    use criu_arch::{PSW_MASK_BA, PSW_MASK_EA, Psw};
    let mut base = GpRegs {
        psw: Psw {
            mask: PSW_MASK_EA | PSW_MASK_BA,
            addr: 0x1002,
        },
        orig_gpr2: 7,
        ..GpRegs::default()
    };
    for e in [512i64, 513, 514] {
        let mut r = base;
        r.gprs[2] = (-e) as u64;
        r.restart_syscall_fixup_with(2 << 16 | 162);
        assert_eq!((r.gprs[2], r.psw.addr), (7, 0x1000), "errno {e}");
        let mut r2 = base;
        r2.gprs[2] = (-e) as u64;
        r2.restart_syscall_fixup();
        assert_eq!(r2, r);
    }
    base.gprs[2] = (-516i64) as u64;
    let mut r = base;
    r.restart_syscall_fixup_with(2 << 16 | 162);
    assert_eq!((r.gprs[2] as i64, r.psw.addr), (-4, 0x1002));
    // poll (168) without a timeout (r4): made again; with one: EINTR.
    let mut r = base;
    r.gprs[4] = (-1i64) as u64;
    r.restart_syscall_fixup_with(2 << 16 | 168);
    assert_eq!((r.gprs[2], r.psw.addr), (7, 0x1000));
    let mut r = base;
    r.gprs[4] = 1000;
    r.restart_syscall_fixup_with(2 << 16 | 168);
    assert_eq!((r.gprs[2] as i64, r.psw.addr), (-4, 0x1002));
    // Not in a syscall.
    let mut r = base;
    r.restart_syscall_fixup_with(0);
    assert_eq!(r, base);
}
