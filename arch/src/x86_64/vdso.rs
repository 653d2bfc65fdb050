//! The jump a proxy vDSO symbol gets on restore (see core's `vdso`): the
//! dumped vDSO stays mapped where the task knows it, and each function in it
//! starts with a jump to the same function of this kernel's vDSO.

/// Bytes of [`vdso_jump`].
pub const VDSO_JUMP_LEN: usize = 12;

/// `movabs $to, %rax; jmp *%rax`. `rax` is free at a function's entry (it
/// only carries the vector register count of a variadic call).
pub fn vdso_jump(to: u64) -> [u8; VDSO_JUMP_LEN] {
    let mut j = [0u8; VDSO_JUMP_LEN];
    j[0] = 0x48;
    j[1] = 0xb8;
    j[2..10].copy_from_slice(&to.to_le_bytes());
    j[10] = 0xff;
    j[11] = 0xe0;
    j
}

/// Whether `code`, a vDSO function's bytes up to the next symbol, is a
/// lone system call a proxy may keep as dumped instead of jumping (see
/// s390x's). None is recognised here: a function too short for
/// [`vdso_jump`] is refused.
pub fn vdso_is_syscall_stub(_code: &[u8]) -> bool {
    false
}
