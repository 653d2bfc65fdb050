//! aarch64 registers of `zdtm_fpu`: v0-v31 (128 bits each), FPCR (default
//! NaN, flush-to-zero, round toward zero) and FPSR (cumulative exception
//! flags and QC), loaded, kept while spinning, then stored and compared.

use super::{FLAG, zdtm};

/// DN | FZ | RMode = round toward zero: control bits every arm64 FPU has
/// (no trap-enable bits, which read as zero where traps are unsupported).
const FPCR: u64 = 0x03c0_0000;
/// QC | IDC | IXC | UFC | OFC | DZC | IOC.
const FPSR: u64 = 0x0800_009f;

/// Only one kind: the FP/SIMD registers (SVE is not dumped).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Simd,
}

/// The registers `arg` asks for.
pub fn kind(arg: Option<&str>) -> Result<Kind, String> {
    match arg {
        None | Some("widest") | Some("simd") => Ok(Kind::Simd),
        Some(other) => Err(format!("no {other} registers here")),
    }
}

#[repr(C, align(16))]
pub struct Regs {
    /// v`i`'s value at offset 16 * i.
    vec_in: [u8; 512],
    vec_out: [u8; 512],
    /// 0: FPCR, 1: FPSR to load; 2, 3: the same stored back; 4: set to 1
    /// (low word) once the registers are loaded.
    ctl: [u64; 5],
}

impl Regs {
    pub fn new(seed: u64) -> Box<Regs> {
        let mut r = Box::new(Regs {
            vec_in: [0; 512],
            vec_out: [0; 512],
            ctl: [FPCR, FPSR, 0, 0, 0],
        });
        zdtm::fill_pattern(&mut r.vec_in, 1234 + seed);
        r
    }

    /// The word the spin loop sets to 1 once the registers are loaded.
    pub fn loaded(&self) -> *mut u32 {
        (&self.ctl[4] as *const u64).cast::<u32>().cast_mut()
    }
}

pub fn check(_kind: Kind, r: &Regs) -> Result<(), String> {
    for i in 0..32 {
        let want = &r.vec_in[i * 16..][..16];
        let got = &r.vec_out[i * 16..][..16];
        if let Some(b) = (0..16).find(|&b| got[b] != want[b]) {
            return Err(format!(
                "v{i} byte {b}: {:#04x}, want {:#04x} (v{i} = {got:02x?})",
                got[b], want[b]
            ));
        }
    }
    let (fpcr, fpsr) = (r.ctl[2], r.ctl[3]);
    zdtm::ensure(fpcr == FPCR, || format!("FPCR {fpcr:#x}, want {FPCR:#x}"))?;
    zdtm::ensure(fpsr == FPSR, || format!("FPSR {fpsr:#x}, want {FPSR:#x}"))
}

/// Load v0-v31, FPCR and FPSR, spin until FLAG is set, then store them
/// all and put FPCR and FPSR back to their defaults.
pub fn spin(_kind: Kind, regs: &mut Regs) {
    // SAFETY: loads and stores only `regs`' buffers and reads FLAG; every
    // vector register is declared clobbered (clobber_abi for the
    // caller-saved ones, v8-v15 explicitly), and FPCR/FPSR are left at
    // zero, their state at program start.
    unsafe {
        std::arch::asm!(
            "ldp q0, q1, [{inp}, #0]",
            "ldp q2, q3, [{inp}, #32]",
            "ldp q4, q5, [{inp}, #64]",
            "ldp q6, q7, [{inp}, #96]",
            "ldp q8, q9, [{inp}, #128]",
            "ldp q10, q11, [{inp}, #160]",
            "ldp q12, q13, [{inp}, #192]",
            "ldp q14, q15, [{inp}, #224]",
            "ldp q16, q17, [{inp}, #256]",
            "ldp q18, q19, [{inp}, #288]",
            "ldp q20, q21, [{inp}, #320]",
            "ldp q22, q23, [{inp}, #352]",
            "ldp q24, q25, [{inp}, #384]",
            "ldp q26, q27, [{inp}, #416]",
            "ldp q28, q29, [{inp}, #448]",
            "ldp q30, q31, [{inp}, #480]",
            "ldr x9, [{ctl}]",
            "msr fpcr, x9",
            "ldr x9, [{ctl}, #8]",
            "msr fpsr, x9",
            "mov x9, #1",
            "stlr w9, [{loaded}]",
            "2:",
            "yield",
            "ldar w9, [{flag}]",
            "cbz w9, 2b",
            "stp q0, q1, [{out}, #0]",
            "stp q2, q3, [{out}, #32]",
            "stp q4, q5, [{out}, #64]",
            "stp q6, q7, [{out}, #96]",
            "stp q8, q9, [{out}, #128]",
            "stp q10, q11, [{out}, #160]",
            "stp q12, q13, [{out}, #192]",
            "stp q14, q15, [{out}, #224]",
            "stp q16, q17, [{out}, #256]",
            "stp q18, q19, [{out}, #288]",
            "stp q20, q21, [{out}, #320]",
            "stp q22, q23, [{out}, #352]",
            "stp q24, q25, [{out}, #384]",
            "stp q26, q27, [{out}, #416]",
            "stp q28, q29, [{out}, #448]",
            "stp q30, q31, [{out}, #480]",
            "mrs x9, fpcr",
            "str x9, [{ctl}, #16]",
            "mrs x9, fpsr",
            "str x9, [{ctl}, #24]",
            "msr fpcr, xzr",
            "msr fpsr, xzr",
            inp = in(reg) regs.vec_in.as_ptr(),
            out = in(reg) regs.vec_out.as_mut_ptr(),
            ctl = in(reg) regs.ctl.as_mut_ptr(),
            loaded = in(reg) &mut regs.ctl[4] as *mut u64,
            flag = in(reg) FLAG.as_ptr(),
            out("x9") _,
            out("v8") _,
            out("v9") _,
            out("v10") _,
            out("v11") _,
            out("v12") _,
            out("v13") _,
            out("v14") _,
            out("v15") _,
            clobber_abi("C"),
        );
    }
}
