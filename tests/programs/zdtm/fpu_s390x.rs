//! s390x registers of `zdtm_fpu`: f0-f15 and a non-default FPC (round
//! toward zero, all five IEEE flags set) always; with the vector facility
//! (`widest`/`vector`) v0-v31 whole (f0-f15 are the left halves of
//! v0-v15). Loaded, kept while spinning, then stored and compared.
//!
//! The vector loads and stores are written as raw instruction words: the
//! baseline s390x target has no vector feature, so the assembler does not
//! take their mnemonics (the words are `vlm`/`vstm` with the base register
//! fixed to r1/r2).

use super::{FLAG, zdtm};

/// Round toward zero (BFP rounding mode 1) with the invalid, divide,
/// overflow, underflow and inexact flags set.
const FPC: u64 = 0x00f8_0001;

/// The FP registers, or the whole vector registers.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Fp,
    Vector,
}

/// Whether the CPU and kernel give this task the vector registers
/// (`vx` among the features of /proc/cpuinfo).
fn has_vector() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| {
        s.lines()
            .filter(|l| l.starts_with("features"))
            .any(|l| l.split_whitespace().any(|w| w == "vx"))
    })
}

/// The registers `arg` asks for.
pub fn kind(arg: Option<&str>) -> Result<Kind, String> {
    match arg {
        Some("fp") => Ok(Kind::Fp),
        None | Some("widest") if has_vector() => Ok(Kind::Vector),
        None | Some("widest") => Ok(Kind::Fp),
        Some("vector") if has_vector() => Ok(Kind::Vector),
        Some(other) => Err(format!("no {other} registers here")),
    }
}

#[repr(C, align(16))]
pub struct Regs {
    /// v`i`'s value at offset 16 * i (f`i` = its first 8 bytes).
    vec_in: [u8; 512],
    vec_out: [u8; 512],
    /// 0: FPC to load (low word); 1: stored back; 2: set to 1 (low word)
    /// once the registers are loaded.
    ctl: [u64; 3],
}

impl Regs {
    pub fn new(seed: u64) -> Box<Regs> {
        let mut r = Box::new(Regs {
            vec_in: [0; 512],
            vec_out: [0; 512],
            // Big-endian: the 32-bit FPC sits in the first half of the word.
            ctl: [FPC << 32, 0, 0],
        });
        zdtm::fill_pattern(&mut r.vec_in, 1234 + seed);
        r
    }

    /// The word the spin loop sets to 1 once the registers are loaded.
    pub fn loaded(&self) -> *mut u32 {
        (&self.ctl[2] as *const u64).cast::<u32>().cast_mut()
    }
}

pub fn check(kind: Kind, r: &Regs) -> Result<(), String> {
    let (regs, width) = match kind {
        Kind::Fp => (16, 8),
        Kind::Vector => (32, 16),
    };
    for i in 0..regs {
        let want = &r.vec_in[i * 16..][..width];
        let got = &r.vec_out[i * 16..][..width];
        if let Some(b) = (0..width).find(|&b| got[b] != want[b]) {
            let name = if kind == Kind::Fp { 'f' } else { 'v' };
            return Err(format!(
                "{name}{i} byte {b}: {:#04x}, want {:#04x} ({name}{i} = {got:02x?})",
                got[b], want[b]
            ));
        }
    }
    let fpc = r.ctl[1] >> 32;
    zdtm::ensure(fpc == FPC, || format!("FPC {fpc:#x}, want {FPC:#x}"))
}

/// Load the registers and FPC, spin until FLAG is set, then store them all
/// and put FPC back to its default.
pub fn spin(kind: Kind, regs: &mut Regs) {
    match kind {
        Kind::Fp => spin_fp(regs),
        Kind::Vector => spin_vector(regs),
    }
}

fn spin_fp(regs: &mut Regs) {
    // SAFETY: loads and stores only `regs`' buffers and reads FLAG; every
    // FP register is declared clobbered, and FPC is left at zero, its
    // state at program start.
    unsafe {
        std::arch::asm!(
            "ld %f0, 0(%r1)",
            "ld %f1, 16(%r1)",
            "ld %f2, 32(%r1)",
            "ld %f3, 48(%r1)",
            "ld %f4, 64(%r1)",
            "ld %f5, 80(%r1)",
            "ld %f6, 96(%r1)",
            "ld %f7, 112(%r1)",
            "ld %f8, 128(%r1)",
            "ld %f9, 144(%r1)",
            "ld %f10, 160(%r1)",
            "ld %f11, 176(%r1)",
            "ld %f12, 192(%r1)",
            "ld %f13, 208(%r1)",
            "ld %f14, 224(%r1)",
            "ld %f15, 240(%r1)",
            "lfpc 0(%r3)",
            "mvhi 0(%r4), 1",
            "2:",
            "l %r0, 0(%r5)",
            "ltr %r0, %r0",
            "jz 2b",
            "std %f0, 0(%r2)",
            "std %f1, 16(%r2)",
            "std %f2, 32(%r2)",
            "std %f3, 48(%r2)",
            "std %f4, 64(%r2)",
            "std %f5, 80(%r2)",
            "std %f6, 96(%r2)",
            "std %f7, 112(%r2)",
            "std %f8, 128(%r2)",
            "std %f9, 144(%r2)",
            "std %f10, 160(%r2)",
            "std %f11, 176(%r2)",
            "std %f12, 192(%r2)",
            "std %f13, 208(%r2)",
            "std %f14, 224(%r2)",
            "std %f15, 240(%r2)",
            "stfpc 8(%r3)",
            "lhi %r0, 0",
            "sfpc %r0",
            in("r1") regs.vec_in.as_ptr(),
            in("r2") regs.vec_out.as_mut_ptr(),
            in("r3") regs.ctl.as_mut_ptr(),
            in("r4") &mut regs.ctl[2] as *mut u64,
            in("r5") FLAG.as_ptr(),
            out("r0") _,
            out("f8") _,
            out("f9") _,
            out("f10") _,
            out("f11") _,
            out("f12") _,
            out("f13") _,
            out("f14") _,
            out("f15") _,
            clobber_abi("C"),
        );
    }
}

fn spin_vector(regs: &mut Regs) {
    // SAFETY: as in spin_fp; the vector registers' right halves and
    // v16-v31 are not used by code of this (non-vector) target.
    unsafe {
        std::arch::asm!(
            // vlm %v0, %v15, 0(%r1); vlm %v16, %v31, 256(%r1)
            ".4byte 0xe70f1000",
            ".2byte 0x0036",
            ".4byte 0xe70f1100",
            ".2byte 0x0c36",
            "lfpc 0(%r3)",
            "mvhi 0(%r4), 1",
            "2:",
            "l %r0, 0(%r5)",
            "ltr %r0, %r0",
            "jz 2b",
            // vstm %v0, %v15, 0(%r2); vstm %v16, %v31, 256(%r2)
            ".4byte 0xe70f2000",
            ".2byte 0x003e",
            ".4byte 0xe70f2100",
            ".2byte 0x0c3e",
            "stfpc 8(%r3)",
            "lhi %r0, 0",
            "sfpc %r0",
            in("r1") regs.vec_in.as_ptr(),
            in("r2") regs.vec_out.as_mut_ptr(),
            in("r3") regs.ctl.as_mut_ptr(),
            in("r4") &mut regs.ctl[2] as *mut u64,
            in("r5") FLAG.as_ptr(),
            out("r0") _,
            out("f8") _,
            out("f9") _,
            out("f10") _,
            out("f11") _,
            out("f12") _,
            out("f13") _,
            out("f14") _,
            out("f15") _,
            clobber_abi("C"),
        );
    }
}
