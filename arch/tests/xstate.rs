//! x86_64 only: `RtSigframe::set_xstate` carries AVX state through
//! `rt_sigreturn`. A handler copies the kernel's XSAVE image, plants a marker
//! in the upper half of YMM15, and returns through a frame of ours to a
//! landing function that reads YMM15 back before going home through the
//! kernel's original frame.
#![cfg(target_arch = "x86_64")]

use core::ffi::c_void;
use core::mem::offset_of;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

use criu_arch::{
    FP_XSTATE_MAGIC1, FpxSwBytes, RT_SIGFRAME_OFFSET, RtSigframe, Siginfo, Ucontext,
    XSAVE_EXT_OFFSET, XSAVE_MAX_SIZE, XSAVE_YMM_OFFSET, XsaveArea, fill_sigframe, setup_blob_call,
    sig, sigreturn, xfeature,
};

#[path = "sigframe/plumbing.rs"]
#[allow(dead_code)] // shared helpers, not all used here
mod plumbing;

const MARKER: u64 = 0x0123_4567_89ab_cdef;
const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(64))]
struct Aligned<T>(T);

static mut STACK: Aligned<[u8; STACK_SIZE]> = Aligned([0; STACK_SIZE]);
static mut FRAME: Option<Box<Aligned<RtSigframe>>> = None;

/// 0 = not run, 1 = kernel frame had no XSAVE data, 2 = redirected.
static OUTCOME: AtomicU64 = AtomicU64::new(0);
static SEEN_YMM15_HI: AtomicU64 = AtomicU64::new(0);
static SEEN_XSTATE_SIZE: AtomicUsize = AtomicUsize::new(0);

extern "C" fn landing(orig_frame: u64) -> ! {
    let hi: u64;
    // SAFETY: AVX is present (checked before raising); reads ymm15 only.
    unsafe {
        core::arch::asm!(
            "vextractf128 xmm0, ymm15, 1",
            "vmovq {}, xmm0",
            out(reg) hi,
            out("xmm0") _,
            options(nomem, nostack),
        );
    }
    SEEN_YMM15_HI.store(hi, SeqCst);
    OUTCOME.store(2, SeqCst);
    // SAFETY: the kernel's frame is intact on the interrupted stack.
    unsafe { sigreturn(orig_frame as usize + RT_SIGFRAME_OFFSET) }
}

extern "C" fn handler(_signo: i32, _info: *mut Siginfo, ucv: *mut c_void) {
    let orig_frame = ucv as usize - offset_of!(RtSigframe, uc);
    // SAFETY: the kernel passes a valid ucontext.
    let uc = unsafe { &*(ucv as *const Ucontext) };
    let fpstate = uc.mcontext.fpstate as usize;
    if fpstate == 0 {
        OUTCOME.store(1, SeqCst);
        return;
    }
    // SAFETY: the kernel's fpstate starts with the 512-byte FXSAVE area,
    // whose bytes 464.. hold `fpx_sw_bytes`.
    let sw = unsafe { ((fpstate + 464) as *const FpxSwBytes).read_unaligned() };
    let size = sw.xstate_size as usize;
    SEEN_XSTATE_SIZE.store(size, SeqCst);
    if sw.magic1 != FP_XSTATE_MAGIC1 || !(XSAVE_EXT_OFFSET + 256..=XSAVE_MAX_SIZE).contains(&size) {
        OUTCOME.store(1, SeqCst);
        return;
    }
    let mut xs = XsaveArea::default();
    // SAFETY: the kernel wrote `size` bytes of XSAVE data at `fpstate`;
    // `xs` is XSAVE_MAX_SIZE >= size bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(
            fpstate as *const u8,
            &mut xs as *mut XsaveArea as *mut u8,
            size,
        );
    }
    // Upper half of YMM15: the last 16 bytes of the AVX component.
    let off = XSAVE_YMM_OFFSET - XSAVE_EXT_OFFSET + 15 * 16;
    xs.extended[off..off + 8].copy_from_slice(&MARKER.to_le_bytes());
    xs.header.xfeatures |= xfeature::YMM;

    let mut gp = uc.gpregs();
    // SAFETY: only this handler touches STACK/FRAME while the test runs.
    let (top, frame) = unsafe {
        let slot = &raw mut FRAME;
        (
            (&raw mut STACK) as u64 + STACK_SIZE as u64,
            &mut (*slot).as_mut().unwrap().0,
        )
    };
    let entry = landing as *const () as u64;
    let call = setup_blob_call(&mut gp, entry, top, &[orig_frame as u64], 0).unwrap();
    let w = call.stack_word.unwrap();
    // SAFETY: the word lies inside STACK.
    unsafe { (w.addr as usize as *mut u64).write(w.value) };
    let frame_addr = frame as *mut RtSigframe as u64;
    fill_sigframe(frame, frame_addr, &gp, None, uc.sigmask());
    assert!(frame.set_xstate(frame_addr, &xs, size, sw.xfeatures));
    // SAFETY: FRAME describes a call of `landing`.
    unsafe { sigreturn(frame_addr as usize + RT_SIGFRAME_OFFSET) }
}

#[test]
fn avx_state_survives_our_frame() {
    if !std::arch::is_x86_feature_detected!("avx") {
        eprintln!("skipped: no AVX on this CPU");
        return;
    }
    // SAFETY: single test in this binary touching FRAME.
    unsafe {
        let slot = &raw mut FRAME;
        *slot = Some(Box::new(Aligned(RtSigframe::default())));
    }
    plumbing::install(sig::SIGUSR1, handler);
    let local = AtomicUsize::new(0);
    plumbing::raise(sig::SIGUSR1, &local);
    match OUTCOME.load(SeqCst) {
        1 => eprintln!(
            "skipped: kernel frame without XSAVE data (size {})",
            SEEN_XSTATE_SIZE.load(SeqCst)
        ),
        2 => assert_eq!(SEEN_YMM15_HI.load(SeqCst), MARKER, "YMM15 upper half"),
        o => panic!("handler outcome {o}"),
    }
}
