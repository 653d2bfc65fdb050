//! ppc64le registers of `zdtm_fpu`: VSR0-63 (128 bits each: FPR0-31 with
//! their low halves, and VR0-31), a non-default FPSCR (round toward zero,
//! the inexact sticky bit), VSCR (saturation) and VRSAVE, loaded, kept
//! while spinning, then stored and compared.

use super::{FLAG, zdtm};

/// RN = round toward zero, XX (inexact, sticky).
const FPSCR: u64 = 0x0200_0001;
/// The FPSCR bits compared (RN and XX; the summary bits follow the
/// others).
const FPSCR_MASK: u64 = 0x0200_0003;
/// NJ (non-Java mode, the Linux default) | SAT (saturation, sticky).
const VSCR: u32 = 0x0001_0001;
/// VRSAVE: an SPR the ABI lets programs use freely.
const VRSAVE: u64 = 0x5a5a_a5a5;

/// Only one kind: the VSX registers (which include the FP and Altivec
/// ones).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Vsx,
}

/// The registers `arg` asks for.
pub fn kind(arg: Option<&str>) -> Result<Kind, String> {
    match arg {
        None | Some("widest") | Some("vsx") => Ok(Kind::Vsx),
        Some(other) => Err(format!("no {other} registers here")),
    }
}

#[repr(C, align(16))]
pub struct Regs {
    /// VSR`i`'s value at offset 16 * i.
    vec_in: [u8; 1024],
    vec_out: [u8; 1024],
    /// VSCR to load, in every word (`mtvscr` takes one of them).
    vscr_in: [u32; 4],
    /// VSCR as `mfvscr` stores it (in one of the words).
    vscr_out: [u32; 4],
    /// The VSCR the program had before, put back at the end.
    vscr_saved: [u32; 4],
    /// 0: FPSCR, 1: VRSAVE to load; 2, 3: the same stored back; 4: set to
    /// 1 (low word) once the registers are loaded; 5: zero (FPSCR reset).
    ctl: [u64; 6],
}

impl Regs {
    pub fn new(seed: u64) -> Box<Regs> {
        let mut r = Box::new(Regs {
            vec_in: [0; 1024],
            vec_out: [0; 1024],
            vscr_in: [VSCR; 4],
            vscr_out: [0; 4],
            vscr_saved: [0; 4],
            ctl: [FPSCR, VRSAVE, 0, 0, 0, 0],
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
    for i in 0..64 {
        let want = &r.vec_in[i * 16..][..16];
        let got = &r.vec_out[i * 16..][..16];
        if let Some(b) = (0..16).find(|&b| got[b] != want[b]) {
            return Err(format!(
                "vs{i} byte {b}: {:#04x}, want {:#04x} (vs{i} = {got:02x?})",
                got[b], want[b]
            ));
        }
    }
    let (fpscr, vrsave) = (r.ctl[2], r.ctl[3]);
    zdtm::ensure(fpscr & FPSCR_MASK == FPSCR, || {
        format!("FPSCR {fpscr:#x}, want {FPSCR:#x} in {FPSCR_MASK:#x}")
    })?;
    zdtm::ensure(r.vscr_out.contains(&VSCR), || {
        format!("VSCR {:x?}, want {VSCR:#x}", r.vscr_out)
    })?;
    zdtm::ensure(vrsave == VRSAVE, || {
        format!("VRSAVE {vrsave:#x}, want {VRSAVE:#x}")
    })
}

/// Load FPSCR, VSCR, VRSAVE and VSR0-63, spin until FLAG is set, then
/// store them all and put FPSCR, VSCR and VRSAVE back to their defaults.
pub fn spin(_kind: Kind, regs: &mut Regs) {
    // SAFETY: loads and stores only `regs`' buffers and reads FLAG; every
    // FP and vector register is declared clobbered, and FPSCR, VSCR (NJ)
    // and VRSAVE are left as the program started with them.
    unsafe {
        std::arch::asm!(
            "mfvscr 0",
            "stvx 0, 0, {vscr_saved}",
            "lfd 0, 0({ctl})",
            "mtfsf 0xff, 0",
            "lvx 0, 0, {vscr}",
            "mtvscr 0",
            "ld {t}, 8({ctl})",
            "mtspr 256, {t}",
            "li {off}, 0",
            "lxvd2x 0, {inp}, {off}",
            "li {off}, 16",
            "lxvd2x 1, {inp}, {off}",
            "li {off}, 32",
            "lxvd2x 2, {inp}, {off}",
            "li {off}, 48",
            "lxvd2x 3, {inp}, {off}",
            "li {off}, 64",
            "lxvd2x 4, {inp}, {off}",
            "li {off}, 80",
            "lxvd2x 5, {inp}, {off}",
            "li {off}, 96",
            "lxvd2x 6, {inp}, {off}",
            "li {off}, 112",
            "lxvd2x 7, {inp}, {off}",
            "li {off}, 128",
            "lxvd2x 8, {inp}, {off}",
            "li {off}, 144",
            "lxvd2x 9, {inp}, {off}",
            "li {off}, 160",
            "lxvd2x 10, {inp}, {off}",
            "li {off}, 176",
            "lxvd2x 11, {inp}, {off}",
            "li {off}, 192",
            "lxvd2x 12, {inp}, {off}",
            "li {off}, 208",
            "lxvd2x 13, {inp}, {off}",
            "li {off}, 224",
            "lxvd2x 14, {inp}, {off}",
            "li {off}, 240",
            "lxvd2x 15, {inp}, {off}",
            "li {off}, 256",
            "lxvd2x 16, {inp}, {off}",
            "li {off}, 272",
            "lxvd2x 17, {inp}, {off}",
            "li {off}, 288",
            "lxvd2x 18, {inp}, {off}",
            "li {off}, 304",
            "lxvd2x 19, {inp}, {off}",
            "li {off}, 320",
            "lxvd2x 20, {inp}, {off}",
            "li {off}, 336",
            "lxvd2x 21, {inp}, {off}",
            "li {off}, 352",
            "lxvd2x 22, {inp}, {off}",
            "li {off}, 368",
            "lxvd2x 23, {inp}, {off}",
            "li {off}, 384",
            "lxvd2x 24, {inp}, {off}",
            "li {off}, 400",
            "lxvd2x 25, {inp}, {off}",
            "li {off}, 416",
            "lxvd2x 26, {inp}, {off}",
            "li {off}, 432",
            "lxvd2x 27, {inp}, {off}",
            "li {off}, 448",
            "lxvd2x 28, {inp}, {off}",
            "li {off}, 464",
            "lxvd2x 29, {inp}, {off}",
            "li {off}, 480",
            "lxvd2x 30, {inp}, {off}",
            "li {off}, 496",
            "lxvd2x 31, {inp}, {off}",
            "li {off}, 512",
            "lxvd2x 32, {inp}, {off}",
            "li {off}, 528",
            "lxvd2x 33, {inp}, {off}",
            "li {off}, 544",
            "lxvd2x 34, {inp}, {off}",
            "li {off}, 560",
            "lxvd2x 35, {inp}, {off}",
            "li {off}, 576",
            "lxvd2x 36, {inp}, {off}",
            "li {off}, 592",
            "lxvd2x 37, {inp}, {off}",
            "li {off}, 608",
            "lxvd2x 38, {inp}, {off}",
            "li {off}, 624",
            "lxvd2x 39, {inp}, {off}",
            "li {off}, 640",
            "lxvd2x 40, {inp}, {off}",
            "li {off}, 656",
            "lxvd2x 41, {inp}, {off}",
            "li {off}, 672",
            "lxvd2x 42, {inp}, {off}",
            "li {off}, 688",
            "lxvd2x 43, {inp}, {off}",
            "li {off}, 704",
            "lxvd2x 44, {inp}, {off}",
            "li {off}, 720",
            "lxvd2x 45, {inp}, {off}",
            "li {off}, 736",
            "lxvd2x 46, {inp}, {off}",
            "li {off}, 752",
            "lxvd2x 47, {inp}, {off}",
            "li {off}, 768",
            "lxvd2x 48, {inp}, {off}",
            "li {off}, 784",
            "lxvd2x 49, {inp}, {off}",
            "li {off}, 800",
            "lxvd2x 50, {inp}, {off}",
            "li {off}, 816",
            "lxvd2x 51, {inp}, {off}",
            "li {off}, 832",
            "lxvd2x 52, {inp}, {off}",
            "li {off}, 848",
            "lxvd2x 53, {inp}, {off}",
            "li {off}, 864",
            "lxvd2x 54, {inp}, {off}",
            "li {off}, 880",
            "lxvd2x 55, {inp}, {off}",
            "li {off}, 896",
            "lxvd2x 56, {inp}, {off}",
            "li {off}, 912",
            "lxvd2x 57, {inp}, {off}",
            "li {off}, 928",
            "lxvd2x 58, {inp}, {off}",
            "li {off}, 944",
            "lxvd2x 59, {inp}, {off}",
            "li {off}, 960",
            "lxvd2x 60, {inp}, {off}",
            "li {off}, 976",
            "lxvd2x 61, {inp}, {off}",
            "li {off}, 992",
            "lxvd2x 62, {inp}, {off}",
            "li {off}, 1008",
            "lxvd2x 63, {inp}, {off}",
            "li {t}, 1",
            "lwsync",
            "stw {t}, 32({ctl})",
            "2:",
            "lwz {t}, 0({flag})",
            "cmpwi {t}, 0",
            "beq 2b",
            "lwsync",
            "li {off}, 0",
            "stxvd2x 0, {out}, {off}",
            "li {off}, 16",
            "stxvd2x 1, {out}, {off}",
            "li {off}, 32",
            "stxvd2x 2, {out}, {off}",
            "li {off}, 48",
            "stxvd2x 3, {out}, {off}",
            "li {off}, 64",
            "stxvd2x 4, {out}, {off}",
            "li {off}, 80",
            "stxvd2x 5, {out}, {off}",
            "li {off}, 96",
            "stxvd2x 6, {out}, {off}",
            "li {off}, 112",
            "stxvd2x 7, {out}, {off}",
            "li {off}, 128",
            "stxvd2x 8, {out}, {off}",
            "li {off}, 144",
            "stxvd2x 9, {out}, {off}",
            "li {off}, 160",
            "stxvd2x 10, {out}, {off}",
            "li {off}, 176",
            "stxvd2x 11, {out}, {off}",
            "li {off}, 192",
            "stxvd2x 12, {out}, {off}",
            "li {off}, 208",
            "stxvd2x 13, {out}, {off}",
            "li {off}, 224",
            "stxvd2x 14, {out}, {off}",
            "li {off}, 240",
            "stxvd2x 15, {out}, {off}",
            "li {off}, 256",
            "stxvd2x 16, {out}, {off}",
            "li {off}, 272",
            "stxvd2x 17, {out}, {off}",
            "li {off}, 288",
            "stxvd2x 18, {out}, {off}",
            "li {off}, 304",
            "stxvd2x 19, {out}, {off}",
            "li {off}, 320",
            "stxvd2x 20, {out}, {off}",
            "li {off}, 336",
            "stxvd2x 21, {out}, {off}",
            "li {off}, 352",
            "stxvd2x 22, {out}, {off}",
            "li {off}, 368",
            "stxvd2x 23, {out}, {off}",
            "li {off}, 384",
            "stxvd2x 24, {out}, {off}",
            "li {off}, 400",
            "stxvd2x 25, {out}, {off}",
            "li {off}, 416",
            "stxvd2x 26, {out}, {off}",
            "li {off}, 432",
            "stxvd2x 27, {out}, {off}",
            "li {off}, 448",
            "stxvd2x 28, {out}, {off}",
            "li {off}, 464",
            "stxvd2x 29, {out}, {off}",
            "li {off}, 480",
            "stxvd2x 30, {out}, {off}",
            "li {off}, 496",
            "stxvd2x 31, {out}, {off}",
            "li {off}, 512",
            "stxvd2x 32, {out}, {off}",
            "li {off}, 528",
            "stxvd2x 33, {out}, {off}",
            "li {off}, 544",
            "stxvd2x 34, {out}, {off}",
            "li {off}, 560",
            "stxvd2x 35, {out}, {off}",
            "li {off}, 576",
            "stxvd2x 36, {out}, {off}",
            "li {off}, 592",
            "stxvd2x 37, {out}, {off}",
            "li {off}, 608",
            "stxvd2x 38, {out}, {off}",
            "li {off}, 624",
            "stxvd2x 39, {out}, {off}",
            "li {off}, 640",
            "stxvd2x 40, {out}, {off}",
            "li {off}, 656",
            "stxvd2x 41, {out}, {off}",
            "li {off}, 672",
            "stxvd2x 42, {out}, {off}",
            "li {off}, 688",
            "stxvd2x 43, {out}, {off}",
            "li {off}, 704",
            "stxvd2x 44, {out}, {off}",
            "li {off}, 720",
            "stxvd2x 45, {out}, {off}",
            "li {off}, 736",
            "stxvd2x 46, {out}, {off}",
            "li {off}, 752",
            "stxvd2x 47, {out}, {off}",
            "li {off}, 768",
            "stxvd2x 48, {out}, {off}",
            "li {off}, 784",
            "stxvd2x 49, {out}, {off}",
            "li {off}, 800",
            "stxvd2x 50, {out}, {off}",
            "li {off}, 816",
            "stxvd2x 51, {out}, {off}",
            "li {off}, 832",
            "stxvd2x 52, {out}, {off}",
            "li {off}, 848",
            "stxvd2x 53, {out}, {off}",
            "li {off}, 864",
            "stxvd2x 54, {out}, {off}",
            "li {off}, 880",
            "stxvd2x 55, {out}, {off}",
            "li {off}, 896",
            "stxvd2x 56, {out}, {off}",
            "li {off}, 912",
            "stxvd2x 57, {out}, {off}",
            "li {off}, 928",
            "stxvd2x 58, {out}, {off}",
            "li {off}, 944",
            "stxvd2x 59, {out}, {off}",
            "li {off}, 960",
            "stxvd2x 60, {out}, {off}",
            "li {off}, 976",
            "stxvd2x 61, {out}, {off}",
            "li {off}, 992",
            "stxvd2x 62, {out}, {off}",
            "li {off}, 1008",
            "stxvd2x 63, {out}, {off}",
            "mffs 0",
            "stfd 0, 16({ctl})",
            "mfspr {t}, 256",
            "std {t}, 24({ctl})",
            "mfvscr 0",
            "stvx 0, 0, {vscr_out}",
            "lfd 0, 40({ctl})",
            "mtfsf 0xff, 0",
            "lvx 0, 0, {vscr_saved}",
            "mtvscr 0",
            "li {t}, 0",
            "mtspr 256, {t}",
            inp = in(reg_nonzero) regs.vec_in.as_ptr(),
            out = in(reg_nonzero) regs.vec_out.as_mut_ptr(),
            ctl = in(reg_nonzero) regs.ctl.as_mut_ptr(),
            vscr = in(reg_nonzero) regs.vscr_in.as_ptr(),
            vscr_out = in(reg_nonzero) regs.vscr_out.as_mut_ptr(),
            vscr_saved = in(reg_nonzero) regs.vscr_saved.as_mut_ptr(),
            flag = in(reg_nonzero) FLAG.as_ptr(),
            t = out(reg_nonzero) _,
            off = out(reg_nonzero) _,
            out("f0") _, out("f1") _, out("f2") _, out("f3") _, out("f4") _, out("f5") _, out("f6") _, out("f7") _, out("f8") _, out("f9") _, out("f10") _, out("f11") _, out("f12") _, out("f13") _, out("f14") _, out("f15") _, out("f16") _, out("f17") _, out("f18") _, out("f19") _, out("f20") _, out("f21") _, out("f22") _, out("f23") _, out("f24") _, out("f25") _, out("f26") _, out("f27") _, out("f28") _, out("f29") _, out("f30") _, out("f31") _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            out("cr0") _,
        );
    }
}
