//! FPU/vector register state: the program loads known values into every
//! vector register it has (x86_64: xmm0-15; ymm0-15 with AVX; zmm0-31 and
//! k0-7 with AVX-512, plus a non-default MXCSR and x87 control word and two
//! x87 stack values; aarch64: v0-v31 and non-default FPCR and FPSR;
//! ppc64le: VSR0-63 and non-default FPSCR, VSCR and VRSAVE; s390x: f0-f15
//! and a non-default FPC, v0-v31 with the vector facility), then
//! spins in inline assembly on a memory flag, so the
//! dump and restore happen while the values live only in registers. A
//! SIGALRM handler (a 10 ms ITIMER_REAL, and the harness sends SIGALRM
//! too) sets the flag once `DIR/go` exists; the kernel saves and restores
//! the registers around the handler. The loop then stores the registers
//! and the check compares them with what was loaded.
//!
//! Usage: `zdtm_fpu DIR [sse|avx|avx512|simd|vsx|fp|vector|widest [THREADS]]`
//! (default: the widest registers there are, one thread; `simd` is
//! aarch64's, `vsx` ppc64le's, `fp` and `vector` s390x's). With THREADS,
//! that many threads spin at once, each with values of its own in its
//! registers.
// Elsewhere only `main` saying so is compiled of the program.
#![cfg_attr(
    not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "powerpc64",
        target_arch = "s390x"
    )),
    allow(dead_code, unused_imports)
)]

#[path = "lib.rs"]
mod zdtm;

use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

#[cfg(target_arch = "x86_64")]
use x86 as imp;

#[cfg(target_arch = "aarch64")]
#[path = "fpu_aarch64.rs"]
mod aarch64;
#[cfg(target_arch = "aarch64")]
use aarch64 as imp;

#[cfg(target_arch = "powerpc64")]
#[path = "fpu_powerpc64.rs"]
mod powerpc64;
#[cfg(target_arch = "powerpc64")]
use powerpc64 as imp;

#[cfg(target_arch = "s390x")]
#[path = "fpu_s390x.rs"]
mod s390x;
#[cfg(target_arch = "s390x")]
use s390x as imp;

/// Set by the SIGALRM handler once `DIR/go` exists.
static FLAG: AtomicU32 = AtomicU32::new(0);
/// `DIR/go` as a C string, for the handler's access().
static GO_PATH: AtomicPtr<std::ffi::c_char> = AtomicPtr::new(std::ptr::null_mut());

const SIGALRM: i32 = 14;
const ITIMER_REAL: usize = 0;

unsafe extern "C" {
    /// glibc's signal(): installs a handler with BSD semantics (it stays
    /// installed, SA_RESTART).
    fn signal(sig: i32, handler: extern "C" fn(i32)) -> usize;
}

extern "C" fn on_alarm(_sig: i32) {
    let path = GO_PATH.load(Ordering::Acquire);
    if path.is_null() {
        return;
    }
    // SAFETY: faccessat() only reads the NUL-terminated path, which is
    // leaked and so lives forever.
    let ret = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::FACCESSAT,
            AT_FDCWD as usize,
            path as usize,
            0,
        )
    };
    if ret == 0 {
        FLAG.store(1, Ordering::Release);
    }
}

/// `AT_FDCWD`: paths relative to the working directory.
const AT_FDCWD: isize = -100;

// The register programs exist for the four supported arches; elsewhere
// the program only says so (the examples are built for every target).
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
fn main() {
    eprintln!("zdtm_fpu runs on x86_64, aarch64, ppc64le and s390x only");
    std::process::exit(2);
}

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
))]
struct State {
    kind: imp::Kind,
    regs: Box<imp::Regs>,
    done: bool,
    /// The other threads, each spinning with registers of its own.
    threads: Vec<std::thread::JoinHandle<Box<imp::Regs>>>,
}

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
))]
fn main() {
    zdtm::run(
        |args| {
            let kind = imp::kind(args.rest.first().map(String::as_str))?;
            let go = CString::new(args.dir.join("go").to_string_lossy().into_owned())
                .map_err(|e| e.to_string())?;
            GO_PATH.store(go.into_raw(), Ordering::Release);
            // SAFETY: on_alarm is async-signal-safe (an atomic load, a raw
            // syscall and an atomic store).
            let old = unsafe { signal(SIGALRM, on_alarm) };
            zdtm::ensure(old != usize::MAX, || "signal(SIGALRM) failed".into())?;
            // it_interval and it_value: 10 ms each.
            let timer: [i64; 4] = [0, 10_000, 0, 10_000];
            // SAFETY: setitimer reads `timer`; no old value wanted.
            let ret = unsafe {
                criu_arch::syscall3(
                    criu_arch::nr::SETITIMER,
                    ITIMER_REAL,
                    timer.as_ptr() as usize,
                    0,
                )
            };
            zdtm::errno(ret, "setitimer")?;
            let nthreads: u64 = match args.rest.get(1) {
                Some(n) => n.parse().map_err(|e| format!("thread count {n}: {e}"))?,
                None => 1,
            };
            let mut threads = Vec::new();
            for t in 1..nthreads {
                let mut regs = imp::Regs::new(t);
                let started = regs.loaded() as usize;
                threads.push(std::thread::spawn(move || {
                    imp::spin(kind, &mut regs);
                    regs
                }));
                // Wait until its registers are loaded, so that the dump
                // finds the values in them.
                // SAFETY: the word is 4-aligned and lives until the thread
                // returns the Box, which cannot happen before FLAG is set.
                let flag = unsafe { AtomicU32::from_ptr(started as *mut u32) };
                while flag.load(Ordering::Acquire) == 0 {
                    std::thread::yield_now();
                }
            }
            Ok(State {
                kind,
                regs: imp::Regs::new(0),
                done: false,
                threads,
            })
        },
        |s| {
            if s.done {
                return;
            }
            imp::spin(s.kind, &mut s.regs);
            s.done = true;
        },
        |s| {
            let off: [i64; 4] = [0; 4];
            // SAFETY: setitimer reads `off`; it stops the timer.
            let ret = unsafe {
                criu_arch::syscall3(
                    criu_arch::nr::SETITIMER,
                    ITIMER_REAL,
                    off.as_ptr() as usize,
                    0,
                )
            };
            zdtm::errno(ret, "setitimer off")?;
            zdtm::ensure(s.done, || "the spin loop never ran".into())?;
            imp::check(s.kind, &s.regs)?;
            for (t, h) in s.threads.into_iter().enumerate() {
                let regs = h.join().map_err(|_| format!("thread {} panicked", t + 1))?;
                imp::check(s.kind, &regs).map_err(|e| format!("thread {}: {e}", t + 1))?;
            }
            Ok(())
        },
    );
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{FLAG, zdtm};

    const MXCSR: u32 = 0xffc0; // FTZ, DAZ, round toward zero, all masked.
    const FCW: u16 = 0x0e7f; // Round toward zero, double precision.
    const F64: f64 = -1234.5678e-90;
    /// A normal 80-bit value whose 64-bit mantissa no f64 can hold.
    const F80: [u8; 10] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xff, 0x3f];

    #[derive(Clone, Copy, PartialEq, Debug)]
    pub enum Kind {
        Sse,
        Avx,
        Avx512,
    }

    #[repr(C, align(64))]
    pub struct Regs {
        /// Register i's value at offset 64 * i (as much of it as it has).
        vec_in: [u8; 2048],
        vec_out: [u8; 2048],
        k_in: [u16; 8],
        k_out: [u16; 8],
        /// 0: MXCSR, 4: x87 CW, 8: f64, 16: f80 to load; 32, 36, 40, 48: the
        /// same stored back; 64, 68: the default MXCSR and CW to leave; 72: set
        /// to 1 once the registers are loaded.
        ctl: [u8; 80],
    }

    // The "loaded" flag at ctl[72] is read as an AtomicU32.
    const _: () = assert!(std::mem::offset_of!(Regs, ctl) % 4 == 0);

    /// Spin with the `kind` registers holding `regs`' values.
    pub fn spin(kind: Kind, regs: &mut Regs) {
        // SAFETY: each variant runs only where the CPU and kernel support its
        // registers (detected in setup).
        unsafe {
            match kind {
                Kind::Sse => spin_sse(regs),
                Kind::Avx => spin_avx(regs),
                Kind::Avx512 => spin_avx512(regs),
            }
        }
    }

    impl Regs {
        pub fn new(seed: u64) -> Box<Regs> {
            let mut r = Box::new(Regs {
                vec_in: [0; 2048],
                vec_out: [0; 2048],
                k_in: [0; 8],
                k_out: [0; 8],
                ctl: [0; 80],
            });
            zdtm::fill_pattern(&mut r.vec_in, 1234 + seed);
            for (i, k) in r.k_in.iter_mut().enumerate() {
                *k = 0x1111u16.wrapping_mul(i as u16 + 1) ^ 0x8421 ^ seed as u16;
            }
            r.ctl[0..4].copy_from_slice(&MXCSR.to_ne_bytes());
            r.ctl[4..6].copy_from_slice(&FCW.to_ne_bytes());
            r.ctl[8..16].copy_from_slice(&F64.to_ne_bytes());
            r.ctl[16..26].copy_from_slice(&F80);
            r.ctl[64..68].copy_from_slice(&0x1f80u32.to_ne_bytes());
            r.ctl[68..70].copy_from_slice(&0x037fu16.to_ne_bytes());
            r
        }

        /// The word the spin loop sets to 1 once the registers are loaded.
        pub fn loaded(&self) -> *mut u32 {
            // ctl[72..76] is 4-aligned (Regs is 64-aligned and ctl sits at
            // 4128).
            self.ctl[72..].as_ptr() as *mut u32
        }
    }

    /// The registers `arg` asks for (the widest there are by default).
    pub fn kind(arg: Option<&str>) -> Result<Kind, String> {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        let avx = std::arch::is_x86_feature_detected!("avx");
        Ok(match arg {
            None | Some("widest") if avx512 => Kind::Avx512,
            None | Some("widest") if avx => Kind::Avx,
            None | Some("widest") | Some("sse") => Kind::Sse,
            Some("avx") if avx => Kind::Avx,
            Some("avx512") if avx512 => Kind::Avx512,
            Some(other) => return Err(format!("no {other} registers here")),
        })
    }

    pub fn check(kind: Kind, r: &Regs) -> Result<(), String> {
        let (name, count, width) = match kind {
            Kind::Sse => ("xmm", 16, 16),
            Kind::Avx => ("ymm", 16, 32),
            Kind::Avx512 => ("zmm", 32, 64),
        };
        for i in 0..count {
            let want = &r.vec_in[i * 64..][..width];
            let got = &r.vec_out[i * 64..][..width];
            if let Some(b) = (0..width).find(|&b| got[b] != want[b]) {
                return Err(format!(
                    "{name}{i} byte {b}: {:#04x}, want {:#04x} ({kind:?}; {name}{i} = {got:02x?})",
                    got[b], want[b]
                ));
            }
        }
        if kind == Kind::Avx512 {
            for i in 0..8 {
                zdtm::ensure(r.k_out[i] == r.k_in[i], || {
                    format!("k{i}: {:#06x}, want {:#06x}", r.k_out[i], r.k_in[i])
                })?;
            }
        }
        let mxcsr = u32::from_ne_bytes(r.ctl[32..36].try_into().unwrap());
        zdtm::ensure(mxcsr == MXCSR, || {
            format!("MXCSR {mxcsr:#x}, want {MXCSR:#x}")
        })?;
        let fcw = u16::from_ne_bytes(r.ctl[36..38].try_into().unwrap());
        zdtm::ensure(fcw == FCW, || {
            format!("x87 control word {fcw:#x}, want {FCW:#x}")
        })?;
        let f64v = f64::from_ne_bytes(r.ctl[40..48].try_into().unwrap());
        zdtm::ensure(f64v.to_bits() == F64.to_bits(), || {
            format!("x87 st(1) {f64v:e}, want {F64:e}")
        })?;
        zdtm::ensure(r.ctl[48..58] == F80, || {
            format!("x87 st(0) {:02x?}, want {F80:02x?}", &r.ctl[48..58])
        })
    }

    /// Load the SSE registers (and MXCSR, the x87 CW and stack), spin until
    /// FLAG is set, then store them all.
    ///
    /// # Safety
    /// The CPU and the kernel must support SSE (checked by the caller).
    unsafe fn spin_sse(regs: &mut Regs) {
        // SAFETY: loads and stores only `regs`' buffers and reads FLAG; every
        // vector, mask and x87 register it touches is declared clobbered
        // (clobber_abi), and it leaves MXCSR, the x87 control word and the
        // x87 stack as the ABI wants them.
        unsafe {
            std::arch::asm!(
                "movdqu xmm0, [{inp} + 0]",
                "movdqu xmm1, [{inp} + 64]",
                "movdqu xmm2, [{inp} + 128]",
                "movdqu xmm3, [{inp} + 192]",
                "movdqu xmm4, [{inp} + 256]",
                "movdqu xmm5, [{inp} + 320]",
                "movdqu xmm6, [{inp} + 384]",
                "movdqu xmm7, [{inp} + 448]",
                "movdqu xmm8, [{inp} + 512]",
                "movdqu xmm9, [{inp} + 576]",
                "movdqu xmm10, [{inp} + 640]",
                "movdqu xmm11, [{inp} + 704]",
                "movdqu xmm12, [{inp} + 768]",
                "movdqu xmm13, [{inp} + 832]",
                "movdqu xmm14, [{inp} + 896]",
                "movdqu xmm15, [{inp} + 960]",
                "ldmxcsr [{ctl}]",
                "fldcw [{ctl} + 4]",
                "fld qword ptr [{ctl} + 8]",
                "fld tbyte ptr [{ctl} + 16]",
                "mov dword ptr [{ctl} + 72], 1",
                "2:",
                "pause",
                "cmp dword ptr [{flag}], 0",
                "je 2b",
                "movdqu [{out} + 0], xmm0",
                "movdqu [{out} + 64], xmm1",
                "movdqu [{out} + 128], xmm2",
                "movdqu [{out} + 192], xmm3",
                "movdqu [{out} + 256], xmm4",
                "movdqu [{out} + 320], xmm5",
                "movdqu [{out} + 384], xmm6",
                "movdqu [{out} + 448], xmm7",
                "movdqu [{out} + 512], xmm8",
                "movdqu [{out} + 576], xmm9",
                "movdqu [{out} + 640], xmm10",
                "movdqu [{out} + 704], xmm11",
                "movdqu [{out} + 768], xmm12",
                "movdqu [{out} + 832], xmm13",
                "movdqu [{out} + 896], xmm14",
                "movdqu [{out} + 960], xmm15",
                "stmxcsr [{ctl} + 32]",
                "fnstcw [{ctl} + 36]",
                "fstp tbyte ptr [{ctl} + 48]",
                "fstp qword ptr [{ctl} + 40]",
                "ldmxcsr [{ctl} + 64]",
                "fldcw [{ctl} + 68]",
                inp = in(reg) regs.vec_in.as_ptr(),
                out = in(reg) regs.vec_out.as_mut_ptr(),
                ctl = in(reg) regs.ctl.as_mut_ptr(),
                flag = in(reg) FLAG.as_ptr(),
                clobber_abi("C"),
            );
        }
    }

    /// Load the AVX registers (and MXCSR, the x87 CW and stack), spin until
    /// FLAG is set, then store them all.
    ///
    /// # Safety
    /// The CPU and the kernel must support AVX (checked by the caller).
    #[target_feature(enable = "avx")]
    unsafe fn spin_avx(regs: &mut Regs) {
        // SAFETY: loads and stores only `regs`' buffers and reads FLAG; every
        // vector, mask and x87 register it touches is declared clobbered
        // (clobber_abi), and it leaves MXCSR, the x87 control word and the
        // x87 stack as the ABI wants them.
        unsafe {
            std::arch::asm!(
                "vmovdqu ymm0, [{inp} + 0]",
                "vmovdqu ymm1, [{inp} + 64]",
                "vmovdqu ymm2, [{inp} + 128]",
                "vmovdqu ymm3, [{inp} + 192]",
                "vmovdqu ymm4, [{inp} + 256]",
                "vmovdqu ymm5, [{inp} + 320]",
                "vmovdqu ymm6, [{inp} + 384]",
                "vmovdqu ymm7, [{inp} + 448]",
                "vmovdqu ymm8, [{inp} + 512]",
                "vmovdqu ymm9, [{inp} + 576]",
                "vmovdqu ymm10, [{inp} + 640]",
                "vmovdqu ymm11, [{inp} + 704]",
                "vmovdqu ymm12, [{inp} + 768]",
                "vmovdqu ymm13, [{inp} + 832]",
                "vmovdqu ymm14, [{inp} + 896]",
                "vmovdqu ymm15, [{inp} + 960]",
                "ldmxcsr [{ctl}]",
                "fldcw [{ctl} + 4]",
                "fld qword ptr [{ctl} + 8]",
                "fld tbyte ptr [{ctl} + 16]",
                "mov dword ptr [{ctl} + 72], 1",
                "2:",
                "pause",
                "cmp dword ptr [{flag}], 0",
                "je 2b",
                "vmovdqu [{out} + 0], ymm0",
                "vmovdqu [{out} + 64], ymm1",
                "vmovdqu [{out} + 128], ymm2",
                "vmovdqu [{out} + 192], ymm3",
                "vmovdqu [{out} + 256], ymm4",
                "vmovdqu [{out} + 320], ymm5",
                "vmovdqu [{out} + 384], ymm6",
                "vmovdqu [{out} + 448], ymm7",
                "vmovdqu [{out} + 512], ymm8",
                "vmovdqu [{out} + 576], ymm9",
                "vmovdqu [{out} + 640], ymm10",
                "vmovdqu [{out} + 704], ymm11",
                "vmovdqu [{out} + 768], ymm12",
                "vmovdqu [{out} + 832], ymm13",
                "vmovdqu [{out} + 896], ymm14",
                "vmovdqu [{out} + 960], ymm15",
                "stmxcsr [{ctl} + 32]",
                "fnstcw [{ctl} + 36]",
                "fstp tbyte ptr [{ctl} + 48]",
                "fstp qword ptr [{ctl} + 40]",
                "ldmxcsr [{ctl} + 64]",
                "fldcw [{ctl} + 68]",
                "vzeroupper",
                inp = in(reg) regs.vec_in.as_ptr(),
                out = in(reg) regs.vec_out.as_mut_ptr(),
                ctl = in(reg) regs.ctl.as_mut_ptr(),
                flag = in(reg) FLAG.as_ptr(),
                clobber_abi("C"),
            );
        }
    }

    /// Load the AVX512 registers (and MXCSR, the x87 CW and stack), spin until
    /// FLAG is set, then store them all.
    ///
    /// # Safety
    /// The CPU and the kernel must support AVX512 (checked by the caller).
    #[target_feature(enable = "avx512f")]
    unsafe fn spin_avx512(regs: &mut Regs) {
        // SAFETY: loads and stores only `regs`' buffers and reads FLAG; every
        // vector, mask and x87 register it touches is declared clobbered
        // (clobber_abi), and it leaves MXCSR, the x87 control word and the
        // x87 stack as the ABI wants them.
        unsafe {
            std::arch::asm!(
                "vmovdqu64 zmm0, [{inp} + 0]",
                "vmovdqu64 zmm1, [{inp} + 64]",
                "vmovdqu64 zmm2, [{inp} + 128]",
                "vmovdqu64 zmm3, [{inp} + 192]",
                "vmovdqu64 zmm4, [{inp} + 256]",
                "vmovdqu64 zmm5, [{inp} + 320]",
                "vmovdqu64 zmm6, [{inp} + 384]",
                "vmovdqu64 zmm7, [{inp} + 448]",
                "vmovdqu64 zmm8, [{inp} + 512]",
                "vmovdqu64 zmm9, [{inp} + 576]",
                "vmovdqu64 zmm10, [{inp} + 640]",
                "vmovdqu64 zmm11, [{inp} + 704]",
                "vmovdqu64 zmm12, [{inp} + 768]",
                "vmovdqu64 zmm13, [{inp} + 832]",
                "vmovdqu64 zmm14, [{inp} + 896]",
                "vmovdqu64 zmm15, [{inp} + 960]",
                "vmovdqu64 zmm16, [{inp} + 1024]",
                "vmovdqu64 zmm17, [{inp} + 1088]",
                "vmovdqu64 zmm18, [{inp} + 1152]",
                "vmovdqu64 zmm19, [{inp} + 1216]",
                "vmovdqu64 zmm20, [{inp} + 1280]",
                "vmovdqu64 zmm21, [{inp} + 1344]",
                "vmovdqu64 zmm22, [{inp} + 1408]",
                "vmovdqu64 zmm23, [{inp} + 1472]",
                "vmovdqu64 zmm24, [{inp} + 1536]",
                "vmovdqu64 zmm25, [{inp} + 1600]",
                "vmovdqu64 zmm26, [{inp} + 1664]",
                "vmovdqu64 zmm27, [{inp} + 1728]",
                "vmovdqu64 zmm28, [{inp} + 1792]",
                "vmovdqu64 zmm29, [{inp} + 1856]",
                "vmovdqu64 zmm30, [{inp} + 1920]",
                "vmovdqu64 zmm31, [{inp} + 1984]",
                "kmovw k0, [{kin} + 0]",
                "kmovw k1, [{kin} + 2]",
                "kmovw k2, [{kin} + 4]",
                "kmovw k3, [{kin} + 6]",
                "kmovw k4, [{kin} + 8]",
                "kmovw k5, [{kin} + 10]",
                "kmovw k6, [{kin} + 12]",
                "kmovw k7, [{kin} + 14]",
                "ldmxcsr [{ctl}]",
                "fldcw [{ctl} + 4]",
                "fld qword ptr [{ctl} + 8]",
                "fld tbyte ptr [{ctl} + 16]",
                "mov dword ptr [{ctl} + 72], 1",
                "2:",
                "pause",
                "cmp dword ptr [{flag}], 0",
                "je 2b",
                "vmovdqu64 [{out} + 0], zmm0",
                "vmovdqu64 [{out} + 64], zmm1",
                "vmovdqu64 [{out} + 128], zmm2",
                "vmovdqu64 [{out} + 192], zmm3",
                "vmovdqu64 [{out} + 256], zmm4",
                "vmovdqu64 [{out} + 320], zmm5",
                "vmovdqu64 [{out} + 384], zmm6",
                "vmovdqu64 [{out} + 448], zmm7",
                "vmovdqu64 [{out} + 512], zmm8",
                "vmovdqu64 [{out} + 576], zmm9",
                "vmovdqu64 [{out} + 640], zmm10",
                "vmovdqu64 [{out} + 704], zmm11",
                "vmovdqu64 [{out} + 768], zmm12",
                "vmovdqu64 [{out} + 832], zmm13",
                "vmovdqu64 [{out} + 896], zmm14",
                "vmovdqu64 [{out} + 960], zmm15",
                "vmovdqu64 [{out} + 1024], zmm16",
                "vmovdqu64 [{out} + 1088], zmm17",
                "vmovdqu64 [{out} + 1152], zmm18",
                "vmovdqu64 [{out} + 1216], zmm19",
                "vmovdqu64 [{out} + 1280], zmm20",
                "vmovdqu64 [{out} + 1344], zmm21",
                "vmovdqu64 [{out} + 1408], zmm22",
                "vmovdqu64 [{out} + 1472], zmm23",
                "vmovdqu64 [{out} + 1536], zmm24",
                "vmovdqu64 [{out} + 1600], zmm25",
                "vmovdqu64 [{out} + 1664], zmm26",
                "vmovdqu64 [{out} + 1728], zmm27",
                "vmovdqu64 [{out} + 1792], zmm28",
                "vmovdqu64 [{out} + 1856], zmm29",
                "vmovdqu64 [{out} + 1920], zmm30",
                "vmovdqu64 [{out} + 1984], zmm31",
                "kmovw [{kout} + 0], k0",
                "kmovw [{kout} + 2], k1",
                "kmovw [{kout} + 4], k2",
                "kmovw [{kout} + 6], k3",
                "kmovw [{kout} + 8], k4",
                "kmovw [{kout} + 10], k5",
                "kmovw [{kout} + 12], k6",
                "kmovw [{kout} + 14], k7",
                "stmxcsr [{ctl} + 32]",
                "fnstcw [{ctl} + 36]",
                "fstp tbyte ptr [{ctl} + 48]",
                "fstp qword ptr [{ctl} + 40]",
                "ldmxcsr [{ctl} + 64]",
                "fldcw [{ctl} + 68]",
                "vzeroupper",
                inp = in(reg) regs.vec_in.as_ptr(),
                out = in(reg) regs.vec_out.as_mut_ptr(),
                ctl = in(reg) regs.ctl.as_mut_ptr(),
                flag = in(reg) FLAG.as_ptr(),
            kin = in(reg) regs.k_in.as_ptr(),
            kout = in(reg) regs.k_out.as_mut_ptr(),
                clobber_abi("C"),
            );
        }
    }
}
