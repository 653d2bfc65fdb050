//! The dumped registers of a task as the signal frame the restorer returns
//! through, plus the per-arch state a frame does not carry (as raw system
//! calls for the restorer to make). The only arch-dependent file of restore:
//! it converts CRIU's per-arch `thread_info_*` messages into `criu_arch`
//! types, which only makes sense for the arch being built.

use crate::blob::restorer_abi::RawSyscall;
use crate::images::pb;

use super::RestoreError;

/// What [`frame_for`] produced.
pub struct Frame {
    pub frame: Box<criu_arch::RtSigframe>,
    pub arch_syscalls: Vec<RawSyscall>,
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::*;
    use criu_arch::{FpRegs, GpRegs, XSAVE_MAX_SIZE, XsaveArea, fill_sigframe};
    use rustix::process::Pid;

    /// This kernel's XSAVE layout: the size of its XSAVE image and the
    /// features it saves (XCR0), as ptrace's NT_X86_XSTATE reports them (the
    /// regset's length, and XCR0 in the first word of `sw_reserved`), plus
    /// the standard-format offset of each component CRIU's image carries
    /// (from CPUID leaf 0xD: they differ between CPU vendors).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct HostFpu {
        pub xstate: Option<(usize, u64)>,
        /// Offsets of YMM_Hi128, opmask, ZMM_Hi256, Hi16_ZMM and PKRU.
        offsets: [usize; 5],
    }

    /// XSAVE component numbers, in the order of `HostFpu::offsets`.
    const COMPONENTS: [u32; 5] = [2, 5, 6, 7, 9];

    impl HostFpu {
        /// Read from traced task `pid` (a fork of the tool). A kernel
        /// without XSAVE refuses the regset (EINVAL/ENODEV); any other
        /// failure is an error, not "no XSAVE" (frames would lose state).
        pub fn probe(pid: Pid) -> Result<HostFpu, rustix::io::Errno> {
            use rustix::io::Errno;
            let mut buf = vec![0u8; XSAVE_MAX_SIZE];
            let n = match crate::sys::ptrace::get_regset(pid, criu_arch::NT_X86_XSTATE, &mut buf) {
                Ok(n) => n,
                Err(Errno::INVAL | Errno::NODEV) => return Ok(HostFpu::default()),
                Err(e) => return Err(e),
            };
            let mut xcr0 = [0u8; 8];
            xcr0.copy_from_slice(&buf[464..472]);
            let xfeatures = u64::from_le_bytes(xcr0);
            let mut offsets = [0usize; 5];
            for (o, c) in offsets.iter_mut().zip(COMPONENTS) {
                if xfeatures & (1 << c) != 0 {
                    *o = std::arch::x86_64::__cpuid_count(0xd, c).ebx as usize;
                }
            }
            let ok = n > criu_arch::XSAVE_EXT_OFFSET && xfeatures != 0;
            Ok(HostFpu {
                xstate: ok.then_some((n, xfeatures)),
                offsets,
            })
        }
    }

    /// Put `bytes` at standard offset `off` of `xs` if it fits `size`.
    fn put(xs: &mut XsaveArea, size: usize, off: usize, bytes: &[u8]) {
        let ext = criu_arch::XSAVE_EXT_OFFSET;
        if bytes.is_empty() || off + bytes.len() > size || off < ext {
            return;
        }
        if let Some(dst) = xs.extended.get_mut(off - ext..off - ext + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    fn le32(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn le64(v: &[u64]) -> Vec<u8> {
        v.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// The dumped extended state as an XSAVE image of this kernel's layout.
    fn xsave_image(
        fp: &FpRegs,
        x: &pb::UserX86XsaveEntry,
        size: usize,
        host: &HostFpu,
    ) -> XsaveArea {
        let mut xs = XsaveArea {
            i387: *fp,
            ..XsaveArea::default()
        };
        xs.header.xfeatures = x.xstate_bv;
        let [ymm, opmask, zmm_hi256, hi16_zmm, pkru] = host.offsets;
        put(&mut xs, size, ymm, &le32(&x.ymmh_space));
        put(&mut xs, size, opmask, &le64(&x.opmask_reg));
        put(&mut xs, size, zmm_hi256, &le64(&x.zmm_upper));
        put(&mut xs, size, hi16_zmm, &le64(&x.hi16_zmm));
        put(&mut xs, size, pkru, &le32(&x.pkru));
        xs
    }

    const ARCH_SET_GS: u64 = 0x1001;
    const ARCH_SET_FS: u64 = 0x1002;

    fn gp(r: &pb::UserX86RegsEntry) -> GpRegs {
        GpRegs {
            r15: r.r15,
            r14: r.r14,
            r13: r.r13,
            r12: r.r12,
            bp: r.bp,
            bx: r.bx,
            r11: r.r11,
            r10: r.r10,
            r9: r.r9,
            r8: r.r8,
            ax: r.ax,
            cx: r.cx,
            dx: r.dx,
            si: r.si,
            di: r.di,
            orig_ax: r.orig_ax,
            ip: r.ip,
            cs: r.cs,
            flags: r.flags,
            sp: r.sp,
            ss: r.ss,
            fs_base: r.fs_base,
            gs_base: r.gs_base,
            ds: r.ds,
            es: r.es,
            fs: r.fs,
            gs: r.gs,
        }
    }

    fn words<const N: usize>(src: &[u32]) -> [u32; N] {
        let mut out = [0u32; N];
        for (o, s) in out.iter_mut().zip(src) {
            *o = *s;
        }
        out
    }

    fn fp(f: &pb::UserX86FpregsEntry) -> FpRegs {
        FpRegs {
            cwd: f.cwd as u16,
            swd: f.swd as u16,
            twd: f.twd as u16,
            fop: f.fop as u16,
            rip: f.rip,
            rdp: f.rdp,
            mxcsr: f.mxcsr,
            mxcsr_mask: f.mxcsr_mask,
            st_space: words(&f.st_space),
            xmm_space: words(&f.xmm_space),
            padding: words(&f.padding),
            sw_reserved: [0; 12],
        }
    }

    /// The kernel's 64-bit user code and stack selectors (`__USER_CS`,
    /// `__USER_DS`); `__USER32_CS` marks a compat (32-bit) task.
    const USER_CS: u64 = 0x33;
    const USER_DS: u64 = 0x2b;
    const USER32_CS: u64 = 0x23;

    /// Register values rt_sigreturn or arch_prctl would refuse, or that
    /// would make the task fault on its first instruction: another code or
    /// stack selector (a bad `cs` kills the task in the kernel's iret), an
    /// instruction pointer or fs/gs base outside the user address space.
    pub fn validate(core: &pb::CoreEntry, task_size: u64) -> Result<(), String> {
        let Some(ti) = core.thread_info.as_ref() else {
            return Err("no thread_info (x86 registers)".into());
        };
        let r = &ti.gpregs;
        if r.cs == USER32_CS {
            return Err("a 32-bit (compat) task: not restored".into());
        }
        if r.cs != USER_CS || r.ss != USER_DS {
            return Err(format!(
                "code/stack selectors cs={:#x} ss={:#x} are not the user ones ({USER_CS:#x}/{USER_DS:#x})",
                r.cs, r.ss
            ));
        }
        for (what, v) in [("ip", r.ip), ("fs_base", r.fs_base), ("gs_base", r.gs_base)] {
            if v >= task_size {
                return Err(format!(
                    "{what} {v:#x} is outside the user address space (below {task_size:#x})"
                ));
            }
        }
        Ok(())
    }

    pub fn frame_for(
        core: &pb::CoreEntry,
        frame_addr: u64,
        sigmask: u64,
        host: &HostFpu,
    ) -> Result<Frame, RestoreError> {
        let ti = core
            .thread_info
            .as_ref()
            .ok_or_else(|| RestoreError::Invalid {
                file: "core".into(),
                what: "no thread_info (x86 registers)".into(),
            })?;
        let g = gp(&ti.gpregs);
        let f = fp(&ti.fpregs);
        let mut frame = Box::<criu_arch::RtSigframe>::default();
        fill_sigframe(&mut frame, frame_addr, &g, Some(&f), sigmask);
        if let (Some(x), Some((size, xfeatures))) = (&ti.fpregs.xsave, host.xstate) {
            let xs = xsave_image(&f, x, size, host);
            // The features the task had in use, limited to what this kernel
            // saves (XCR0): the frame may not claim more.
            if !frame.set_xstate(frame_addr, &xs, size, xfeatures) {
                return Err(RestoreError::Unsupported(format!(
                    "this kernel's XSAVE size {size} is out of range"
                )));
            }
            frame.fpstate.header.xfeatures &= xfeatures;
        }
        // The frame carries no fs/gs bases: set them right before
        // rt_sigreturn, as CRIU's restore_nonsigframe_gpregs does.
        let prctl = |code: u64, val: u64| RawSyscall {
            nr: criu_arch::nr::ARCH_PRCTL as u64,
            args: [code, val, 0, 0, 0, 0],
        };
        // The futex word the kernel clears when the thread exits.
        let tid_address = RawSyscall {
            nr: criu_arch::nr::SET_TID_ADDRESS as u64,
            args: [ti.clear_tid_addr, 0, 0, 0, 0, 0],
        };
        Ok(Frame {
            frame,
            arch_syscalls: vec![
                prctl(ARCH_SET_FS, g.fs_base),
                prctl(ARCH_SET_GS, g.gs_base),
                tid_address,
            ],
        })
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    use super::*;

    /// This kernel's FPU state format (not needed until the arch is done).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct HostFpu;

    impl HostFpu {
        pub fn probe(_pid: rustix::process::Pid) -> Result<HostFpu, rustix::io::Errno> {
            Ok(HostFpu)
        }
    }

    /// Nothing to check until registers are restored on this arch
    /// ([`frame_for`] refuses).
    pub fn validate(_core: &pb::CoreEntry, _task_size: u64) -> Result<(), String> {
        Ok(())
    }

    pub fn frame_for(
        _core: &pb::CoreEntry,
        _frame_addr: u64,
        _sigmask: u64,
        _host: &HostFpu,
    ) -> Result<Frame, RestoreError> {
        Err(RestoreError::Unsupported(
            "restoring registers is implemented for x86_64 only".into(),
        ))
    }
}

pub use imp::{HostFpu, frame_for, validate};
