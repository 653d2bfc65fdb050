//! The jump a proxy vDSO symbol gets on restore (see core's `vdso`): the
//! dumped vDSO stays mapped where the task knows it, and each function in it
//! starts with a jump to the same function of this kernel's vDSO.

/// Bytes of [`vdso_jump`].
pub const VDSO_JUMP_LEN: usize = 28;

/// Load `to` into r12, `mtctr r12; bctr`: r12 holding the entry address is
/// the ELFv2 convention for a function's global entry point, and both r12
/// and CTR are volatile across calls.
pub fn vdso_jump(to: u64) -> [u8; VDSO_JUMP_LEN] {
    let hi = (to >> 32) as u32;
    let lo = to as u32;
    // D-form with rD = rA = r12 (lis: rA = 0).
    let d = |op: u32, ra: u32, imm: u32| (op << 26) | (12 << 21) | (ra << 16) | (imm & 0xffff);
    let insns: [u32; 7] = [
        d(15, 0, hi >> 16),  // lis r12, hi@h
        d(24, 12, hi),       // ori r12, r12, hi@l
        0x798c_07c6,         // sldi r12, r12, 32 (rldicr r12, r12, 32, 31)
        d(25, 12, lo >> 16), // oris r12, r12, lo@h
        d(24, 12, lo),       // ori r12, r12, lo@l
        0x7d89_03a6,         // mtctr r12
        0x4e80_0420,         // bctr
    ];
    let mut j = [0u8; VDSO_JUMP_LEN];
    for (i, w) in insns.iter().enumerate() {
        j[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    j
}

/// Whether `code`, a vDSO function's bytes up to the next symbol, is a
/// lone system call a proxy may keep as dumped instead of jumping (see
/// s390x's). None is recognised here: a function too short for
/// [`vdso_jump`] is refused.
pub fn vdso_is_syscall_stub(_code: &[u8]) -> bool {
    false
}
