//! x86_64: `thread_info_x86` (`user_x86_regs_entry`, the FXSAVE fields plus
//! the XSAVE components CRIU's image carries, GDT TLS entries).

use criu_arch::{FpRegs, GpRegs, XSAVE_MAX_SIZE, XsaveArea, fill_sigframe};
use rustix::process::Pid;

use super::{Frame, RegsError, set_tid_address};
use crate::blob::restorer_abi::RawSyscall;
use crate::images::pb;
use crate::infect::ExtRegs;
use crate::sys::ptrace::note;

/// `user_x86_regs_mode`: NATIVE.
const MODE_NATIVE: i32 = 1;
// Where XCR0 (the first word of the software-reserved bytes) and
// XSTATE_BV sit in the XSAVE area (Intel SDM vol. 1, 13.4), and the size
// and component number of each extended component CRIU's image carries.
const XCR0_OFF: usize = 464;
const XSTATE_BV_OFF: usize = 512;
const YMM: (usize, u32) = (256, 2);
const BNDREGS: (usize, u32) = (64, 3);
const BNDCSR: (usize, u32) = (64, 4);
const OPMASK: (usize, u32) = (64, 5);
const ZMM_HI256: (usize, u32) = (512, 6);
const HI16_ZMM: (usize, u32) = (1024, 7);
const PKRU: (usize, u32) = (8, 9);

// ---- dump ----

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
    let tid = Pid::from_raw(pid).ok_or(RegsError::Invalid(format!("bad pid {pid}")))?;
    (12..=14u32)
        .map(|idx| {
            let [entry, base, limit, bits] = crate::sys::ptrace::get_thread_area(tid, idx)
                .map_err(|source| RegsError::Ptrace {
                    what: "PTRACE_GET_THREAD_AREA",
                    pid,
                    source,
                })?;
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

/// Fill `core.mtype` and `thread_info` (see the module doc of `regs`).
pub fn fill_thread_info(
    pid: i32,
    core: &mut pb::CoreEntry,
    g: &GpRegs,
    ext: &ExtRegs,
    clear_tid_addr: u64,
) -> Result<(), RegsError> {
    core.mtype = criu_arch::CORE_MTYPE as i32;
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
        return Err(RegsError::Invalid(format!(
            "task {pid}: short FP register set ({} bytes)",
            b.len()
        )));
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
            let off = criu_arch::xstate_component_offset(bit);
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

// ---- restore ----

/// This kernel's XSAVE layout: the size of its XSAVE image and the
/// features it saves (XCR0), as ptrace's NT_X86_XSTATE reports them (the
/// regset's length, and XCR0 in the first word of `sw_reserved`), plus
/// the standard-format offset of each component CRIU's image carries.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostFpu {
    pub xstate: Option<(usize, u64)>,
    /// Offsets of YMM_Hi128, opmask, ZMM_Hi256, Hi16_ZMM and PKRU.
    offsets: [usize; 5],
}

/// XSAVE component numbers, in the order of `HostFpu::offsets`.
const COMPONENTS: [u32; 5] = [YMM.1, OPMASK.1, ZMM_HI256.1, HI16_ZMM.1, PKRU.1];

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
        xcr0.copy_from_slice(&buf[XCR0_OFF..XCR0_OFF + 8]);
        let xfeatures = u64::from_le_bytes(xcr0);
        let mut offsets = [0usize; 5];
        for (o, c) in offsets.iter_mut().zip(COMPONENTS) {
            if xfeatures & (1 << c) != 0 {
                *o = criu_arch::xstate_component_offset(c);
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
fn xsave_image(fp: &FpRegs, x: &pb::UserX86XsaveEntry, size: usize, host: &HostFpu) -> XsaveArea {
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

const ARCH_SET_GS: u64 = crate::sys::kconst::ARCH_SET_GS as u64;
const ARCH_SET_FS: u64 = linux_raw_sys::general::ARCH_SET_FS as u64;

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

/// `__USER32_CS` marks a compat (32-bit) task.
const USER32_CS: u64 = 0x23;

/// Register values rt_sigreturn or arch_prctl would refuse, or that would
/// make the task fault on its first instruction: another code or stack
/// selector (a bad `cs` kills the task in the kernel's iret), an
/// instruction pointer or fs/gs base outside the user address space.
pub fn validate(core: &pb::CoreEntry, task_size: u64) -> Result<(), RegsError> {
    let Some(ti) = core.thread_info.as_ref() else {
        return Err(RegsError::Invalid("no thread_info (x86 registers)".into()));
    };
    let r = &ti.gpregs;
    let (user_cs, user_ds) = (criu_arch::USER_CS, criu_arch::USER_DS);
    if r.cs == USER32_CS {
        return Err(RegsError::Invalid(
            "a 32-bit (compat) task: not restored".into(),
        ));
    }
    if r.cs != user_cs || r.ss != user_ds {
        return Err(RegsError::Invalid(format!(
            "code/stack selectors cs={:#x} ss={:#x} are not the user ones ({user_cs:#x}/{user_ds:#x})",
            r.cs, r.ss
        )));
    }
    for (what, v) in [("ip", r.ip), ("fs_base", r.fs_base), ("gs_base", r.gs_base)] {
        if v >= task_size {
            return Err(RegsError::Invalid(format!(
                "{what} {v:#x} is outside the user address space (below {task_size:#x})"
            )));
        }
    }
    Ok(())
}

/// The frame at `frame_addr` that resumes the thread of `core` with
/// `sigmask`, and the fs/gs bases and clear_child_tid address to set
/// before (as CRIU's `restore_nonsigframe_gpregs` does).
pub fn frame_for(
    core: &pb::CoreEntry,
    frame_addr: u64,
    sigmask: u64,
    host: &HostFpu,
) -> Result<Frame, RegsError> {
    let ti = core
        .thread_info
        .as_ref()
        .ok_or_else(|| RegsError::Invalid("no thread_info (x86 registers)".into()))?;
    let g = gp(&ti.gpregs);
    let f = fp(&ti.fpregs);
    let mut frame = Box::<criu_arch::RtSigframe>::default();
    fill_sigframe(&mut frame, frame_addr, &g, Some(&f), sigmask);
    if let (Some(x), Some((size, xfeatures))) = (&ti.fpregs.xsave, host.xstate) {
        let xs = xsave_image(&f, x, size, host);
        // The features the task had in use, limited to what this kernel
        // saves (XCR0): the frame may not claim more.
        if !frame.set_xstate(frame_addr, &xs, size, xfeatures) {
            return Err(RegsError::Unsupported(format!(
                "this kernel's XSAVE size {size} is out of range"
            )));
        }
        frame.fpstate.header.xfeatures &= xfeatures;
    }
    let prctl = |code: u64, val: u64| RawSyscall {
        nr: criu_arch::nr::ARCH_PRCTL as u64,
        args: [code, val, 0, 0, 0, 0],
    };
    Ok(Frame {
        frame,
        arch_syscalls: vec![
            prctl(ARCH_SET_FS, g.fs_base),
            prctl(ARCH_SET_GS, g.gs_base),
            set_tid_address(ti.clear_tid_addr),
        ],
        thread_pointer: 0,
    })
}

/// Register sets to write by ptrace into a restored thread before it runs:
/// none here (everything goes through the frame and raw syscalls).
pub fn ptrace_regsets(_core: &pb::CoreEntry) -> Vec<(u32, Vec<u8>)> {
    Vec::new()
}

// ---- core files (`criu coredump`) ----

/// The notes of one thread in a core file, as the kernel writes them for
/// a 64-bit task: NT_PRSTATUS (status and general registers), NT_PRFPREG
/// (the FXSAVE image) and NT_X86_XSTATE. The XSAVE note carries what
/// CRIU's `criu-coredump` puts there: x87/SSE, the XSAVE header and the
/// AVX upper halves, 832 bytes in the standard format, with XCR0 in the
/// software-reserved bytes so that gdb knows the layout.
pub fn core_thread_notes(
    core: &pb::CoreEntry,
    status: &super::ThreadStatus,
) -> Result<Vec<super::CoreNote>, RegsError> {
    use crate::sys::plain::bytes_of;
    use criu_arch::xfeature;

    let ti = core
        .thread_info
        .as_ref()
        .ok_or_else(|| RegsError::Invalid("no thread_info (x86 registers)".into()))?;
    if ti.gpregs.mode.is_some_and(|m| m != MODE_NATIVE) || ti.gpregs.cs == USER32_CS {
        return Err(RegsError::Unsupported(
            "a 32-bit (compat) task: its core file is not written".into(),
        ));
    }
    let prstatus = criu_arch::ElfPrstatus {
        pid: status.pid,
        ppid: status.ppid,
        pgrp: status.pgrp,
        sid: status.sid,
        sigpend: status.sigpend,
        sighold: status.sighold,
        cursig: status.cursig as i16,
        reg: gp(&ti.gpregs),
        fpvalid: 1,
        ..Default::default()
    };
    let f = fp(&ti.fpregs);
    let mut xstate = bytes_of(&f).to_vec();
    let x = ti.fpregs.xsave.as_ref();
    let ymm = x.map(|x| le32(&x.ymmh_space)).unwrap_or_default();
    let mut xcr0 = xfeature::FP | xfeature::SSE;
    let mut xstate_bv = x.map_or(xcr0, |x| x.xstate_bv) & (xcr0 | xfeature::YMM);
    if ymm.len() == criu_arch::XSAVE_YMM_SIZE {
        xcr0 |= xfeature::YMM;
    } else {
        xstate_bv &= !xfeature::YMM;
    }
    xstate[XCR0_OFF..XCR0_OFF + 8].copy_from_slice(&xcr0.to_ne_bytes());
    let mut header = [0u8; criu_arch::XSAVE_HDR_SIZE];
    header[..8].copy_from_slice(&xstate_bv.to_ne_bytes());
    xstate.extend_from_slice(&header);
    let mut ymm_area = vec![0u8; criu_arch::XSAVE_YMM_SIZE];
    if xcr0 & xfeature::YMM != 0 {
        ymm_area.copy_from_slice(&ymm);
    }
    xstate.extend_from_slice(&ymm_area);
    debug_assert_eq!(xstate.len(), XSTATE_NOTE_SIZE);
    Ok(vec![
        super::CoreNote {
            name: "CORE",
            n_type: criu_arch::NT_PRSTATUS,
            desc: bytes_of(&prstatus).to_vec(),
        },
        super::CoreNote {
            name: "CORE",
            n_type: criu_arch::NT_PRFPREG,
            desc: bytes_of(&f).to_vec(),
        },
        super::CoreNote {
            name: "LINUX",
            n_type: criu_arch::NT_X86_XSTATE,
            desc: xstate,
        },
    ])
}

/// FXSAVE image, XSAVE header, AVX upper halves.
const XSTATE_NOTE_SIZE: usize = criu_arch::XSAVE_YMM_OFFSET + criu_arch::XSAVE_YMM_SIZE;
const _: () = assert!(XSTATE_NOTE_SIZE == 832);
