//! Registers into the per-arch `thread_info` of `core_entry`. This is the
//! one place dump depends on the register layout; other arches report that
//! they are not supported yet.

use crate::images::pb;
use crate::infect::ExtRegs;

/// Why the registers could not be stored.
#[derive(Debug, thiserror::Error)]
#[error("registers of this architecture cannot be dumped yet: {0}")]
pub struct RegsError(pub &'static str);

/// Fill `core.mtype` and its thread_info from the (fixed-up) registers,
/// the extended state and the `clear_child_tid` address.
pub fn fill_thread_info(
    pid: i32,
    core: &mut pb::CoreEntry,
    gp: &criu_arch::GpRegs,
    ext: &ExtRegs,
    clear_tid_addr: u64,
) -> Result<(), RegsError> {
    imp::fill(pid, core, gp, ext, clear_tid_addr)
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::RegsError;
    use crate::images::pb;
    use crate::infect::ExtRegs;
    use crate::sys::ptrace::note;

    /// `user_x86_regs_mode`: NATIVE.
    const MODE_NATIVE: i32 = 1;
    // Where XCR0 and XSTATE_BV sit in the XSAVE area (Intel SDM vol. 1,
    // 13.4), and the size and XCR0 bit of each extended component CRIU's
    // image carries. The components' offsets in the standard format that
    // ptrace's NT_X86_XSTATE uses come from CPUID leaf 0xD: they differ
    // between vendors (AMD has no MPX, so its AVX-512 state sits 256 bytes
    // lower than Intel's).
    const XCR0_OFF: usize = 464;
    const XSTATE_BV_OFF: usize = 512;
    const YMM: (usize, u32) = (256, 2);
    const BNDREGS: (usize, u32) = (64, 3);
    const BNDCSR: (usize, u32) = (64, 4);
    const OPMASK: (usize, u32) = (64, 5);
    const ZMM_HI256: (usize, u32) = (512, 6);
    const HI16_ZMM: (usize, u32) = (1024, 7);
    const PKRU: (usize, u32) = (8, 9);

    fn u32s(b: &[u8]) -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn u64s(b: &[u8]) -> Vec<u64> {
        b.chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    }

    /// GDT TLS entries (`GDT_ENTRY_TLS_MIN`..=`MAX`) as CRIU stores them.
    fn tls(pid: i32) -> Result<Vec<pb::UserDescT>, RegsError> {
        let tid = rustix::process::Pid::from_raw(pid).ok_or(RegsError("bad pid"))?;
        (12..=14u32)
            .map(|idx| {
                let [entry, base, limit, bits] = crate::sys::ptrace::get_thread_area(tid, idx)
                    .map_err(|_| RegsError("PTRACE_GET_THREAD_AREA failed"))?;
                let bit = |n: u32| bits & (1 << n) != 0;
                Ok(pb::UserDescT {
                    entry_number: entry,
                    base_addr: base,
                    limit,
                    seg_32bit: bit(0),
                    contents_h: bit(2),
                    contents_l: bit(1),
                    read_exec_only: bit(3),
                    limit_in_pages: bit(4),
                    seg_not_present: bit(5),
                    usable: bit(6),
                })
            })
            .collect()
    }

    pub fn fill(
        pid: i32,
        core: &mut pb::CoreEntry,
        gp: &criu_arch::GpRegs,
        ext: &ExtRegs,
        clear_tid_addr: u64,
    ) -> Result<(), RegsError> {
        core.mtype = criu_arch::CORE_MTYPE as i32;
        let g = gp;
        let gpregs = pb::UserX86RegsEntry {
            r15: g.r15,
            r14: g.r14,
            r13: g.r13,
            r12: g.r12,
            bp: g.bp,
            bx: g.bx,
            r11: g.r11,
            r10: g.r10,
            r9: g.r9,
            r8: g.r8,
            ax: g.ax,
            cx: g.cx,
            dx: g.dx,
            si: g.si,
            di: g.di,
            orig_ax: g.orig_ax,
            ip: g.ip,
            cs: g.cs,
            flags: g.flags,
            sp: g.sp,
            ss: g.ss,
            fs_base: g.fs_base,
            gs_base: g.gs_base,
            ds: g.ds,
            es: g.es,
            fs: g.fs,
            gs: g.gs,
            mode: Some(MODE_NATIVE),
        };
        let b = &ext.bytes;
        if b.len() < 512 {
            return Err(RegsError("short FP register set"));
        }
        let h16 = |o: usize| u32::from(u16::from_ne_bytes([b[o], b[o + 1]]));
        let w64 = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let w32 = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        let mut fpregs = pb::UserX86FpregsEntry {
            cwd: h16(0),
            swd: h16(2),
            twd: h16(4),
            fop: h16(6),
            rip: w64(8),
            rdp: w64(16),
            mxcsr: w32(24),
            mxcsr_mask: w32(28),
            st_space: u32s(&b[32..160]),
            xmm_space: u32s(&b[160..416]),
            padding: Vec::new(),
            xsave: None,
        };
        if ext.note == note::X86_XSTATE && b.len() >= 576 {
            let xcr0 = w64(XCR0_OFF);
            let part = |(len, bit): (usize, u32)| -> Option<&[u8]> {
                if xcr0 & (1 << bit) == 0 {
                    return None;
                }
                let off = std::arch::x86_64::__cpuid_count(0xd, bit).ebx as usize;
                (off >= 576 && b.len() >= off + len).then(|| &b[off..off + len])
            };
            fpregs.xsave = Some(pb::UserX86XsaveEntry {
                xstate_bv: w64(XSTATE_BV_OFF),
                ymmh_space: part(YMM).map(u32s).unwrap_or_default(),
                bndreg_state: part(BNDREGS).map(u64s).unwrap_or_default(),
                bndcsr_state: part(BNDCSR).map(u64s).unwrap_or_default(),
                opmask_reg: part(OPMASK).map(u64s).unwrap_or_default(),
                zmm_upper: part(ZMM_HI256).map(u64s).unwrap_or_default(),
                hi16_zmm: part(HI16_ZMM).map(u64s).unwrap_or_default(),
                pkru: part(PKRU).map(u32s).unwrap_or_default(),
                cet: None,
            });
        }
        core.thread_info = Some(pb::ThreadInfoX86 {
            clear_tid_addr,
            gpregs,
            fpregs,
            tls: tls(pid)?,
        });
        Ok(())
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    use super::RegsError;
    use crate::images::pb;
    use crate::infect::ExtRegs;

    pub fn fill(
        _pid: i32,
        _core: &mut pb::CoreEntry,
        _gp: &criu_arch::GpRegs,
        _ext: &ExtRegs,
        _clear_tid_addr: u64,
    ) -> Result<(), RegsError> {
        Err(RegsError("only x86_64 is supported so far"))
    }
}
