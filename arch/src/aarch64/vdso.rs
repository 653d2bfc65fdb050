//! The jump a proxy vDSO symbol gets on restore (see core's `vdso`): the
//! dumped vDSO stays mapped where the task knows it, and each function in it
//! starts with a jump to the same function of this kernel's vDSO.

/// Bytes of [`vdso_jump`].
pub const VDSO_JUMP_LEN: usize = 16;

/// `ldr x16, 1f; br x16; 1: .quad to`. `x16` (IP0) is the register the ABI
/// leaves to veneers between a call and its target.
pub fn vdso_jump(to: u64) -> [u8; VDSO_JUMP_LEN] {
    const LDR_X16_PC_8: u32 = 0x5800_0050;
    const BR_X16: u32 = 0xd61f_0200;
    let mut j = [0u8; VDSO_JUMP_LEN];
    j[0..4].copy_from_slice(&LDR_X16_PC_8.to_le_bytes());
    j[4..8].copy_from_slice(&BR_X16.to_le_bytes());
    j[8..16].copy_from_slice(&to.to_le_bytes());
    j
}

/// Whether `code`, a vDSO function's bytes up to the next symbol, is a
/// lone system call a proxy may keep as dumped instead of jumping (see
/// s390x's). None is recognised here: a function too short for
/// [`vdso_jump`] is refused.
pub fn vdso_is_syscall_stub(_code: &[u8]) -> bool {
    false
}
