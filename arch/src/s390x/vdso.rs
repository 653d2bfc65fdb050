//! The jump a proxy vDSO symbol gets on restore (see core's `vdso`): the
//! dumped vDSO stays mapped where the task knows it, and each function in it
//! starts with a jump to the same function of this kernel's vDSO.

/// Bytes of [`vdso_jump`].
pub const VDSO_JUMP_LEN: usize = 14;

/// `iihf %r1, to@hi; iilf %r1, to@lo; br %r1`. `%r1` is a scratch register
/// of the ABI (what PLT stubs use), free at a function's entry.
pub fn vdso_jump(to: u64) -> [u8; VDSO_JUMP_LEN] {
    let mut j = [0u8; VDSO_JUMP_LEN];
    j[0] = 0xc0;
    j[1] = 0x18; // iihf %r1
    j[2..6].copy_from_slice(&((to >> 32) as u32).to_be_bytes());
    j[6] = 0xc0;
    j[7] = 0x19; // iilf %r1
    j[8..12].copy_from_slice(&(to as u32).to_be_bytes());
    j[12] = 0x07;
    j[13] = 0xf1; // br %r1
    j
}

/// `svc`: the supervisor call, `0a NN` (NN the syscall number).
const SVC: u8 = 0x0a;

/// Whether `code`, a vDSO function's bytes up to the next symbol, is a
/// lone system call: `svc NN` followed only by zeros and `0707` padding.
/// Linux's `vdso_user_wrapper.S` makes `__kernel_restart_syscall`,
/// `__kernel_sigreturn` and `__kernel_rt_sigreturn` so (`svc`, then an
/// illegal `.word 0` to catch a return), 8 bytes apart in 6.1: too few for
/// [`vdso_jump`]. Such code does the same under any kernel wherever it is
/// mapped (the syscall numbers are ABI), so a proxy keeps it as dumped.
pub fn vdso_is_syscall_stub(code: &[u8]) -> bool {
    match code {
        [SVC, _, rest @ ..] => rest.iter().all(|&b| b == 0 || b == 0x07),
        _ => false,
    }
}
