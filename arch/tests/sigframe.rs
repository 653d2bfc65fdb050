//! Signal frames against reality: a handler installed with the raw
//! `rt_sigaction` inspects the frame the kernel (or qemu-user) built, using
//! our layout; then a frame built with `fill_sigframe` is entered through
//! `rt_sigreturn`, which is exactly what the restorer relies on.
//!
//! Each test uses its own signal so the two can run in parallel threads; the
//! handlers only record into atomics, and the assertions run afterwards (a
//! panic cannot unwind out of a signal handler).

use core::ffi::c_void;
use core::mem::offset_of;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

use criu_arch::{
    FpRegs, RT_SIGFRAME_OFFSET, RtSigframe, SI_TKILL, Siginfo, Ucontext, fill_sigframe,
    setup_blob_call, sig, sigmask_bit, sigreturn,
};

#[path = "sigframe/fpctl.rs"]
mod fpctl;
#[path = "sigframe/plumbing.rs"]
mod plumbing;

use plumbing::{install, raise, sigprocmask};

/// How much lower than `frame + RT_SIGFRAME_OFFSET` the stack pointer must
/// be at `rt_sigreturn`, measured from inside a handler. Always 0 on Linux.
/// qemu-user's ppc64 emulation differs: it enters handlers with r1 =
/// frame-144 (not frame-128) and its rt_sigreturn reads the frame at
/// r1+144 (not at r1), so there the stack pointer must be frame-144.
#[inline(always)]
fn sigreturn_sp_bias(frame_addr: usize) -> usize {
    #[cfg(target_arch = "powerpc64")]
    {
        // The handler's stack frame back chain holds the r1 it was entered
        // with.
        let r1: usize;
        // SAFETY: reads r1 only.
        unsafe { core::arch::asm!("mr {}, 1", out(reg) r1, options(nomem, nostack)) };
        // SAFETY: r1 points at this function's frame, whose first word is
        // the back chain (ELFv2 ABI).
        let entry_sp = unsafe { *(r1 as *const usize) };
        let below = frame_addr - entry_sp;
        if below == criu_arch::SIGNAL_FRAMESIZE {
            0
        } else {
            below
        }
    }
    #[cfg(not(target_arch = "powerpc64"))]
    {
        let _ = frame_addr;
        0
    }
}

static SP_BIAS: AtomicUsize = AtomicUsize::new(0);

// Only one test at a time may change this thread's mask expectations.
static SERIAL: Mutex<()> = Mutex::new(());

// Test 1: the kernel's frame, read through our layout ---------------------------

static SEEN_SIGNO: AtomicU64 = AtomicU64::new(0);
static SEEN_CODE: AtomicU64 = AtomicU64::new(0);
static SEEN_INFO_DELTA: AtomicU64 = AtomicU64::new(u64::MAX);
static SEEN_PC: AtomicU64 = AtomicU64::new(0);
static SEEN_SP: AtomicU64 = AtomicU64::new(0);
static SEEN_MASK: AtomicU64 = AtomicU64::new(0);
static SEEN_FP: AtomicU64 = AtomicU64::new(0);
static RAISE_LOCAL: AtomicUsize = AtomicUsize::new(0);

extern "C" fn inspect_handler(signo: i32, info: *mut Siginfo, ucv: *mut c_void) {
    let frame_addr = ucv as usize - offset_of!(RtSigframe, uc);
    // SAFETY: the kernel passes a valid siginfo and ucontext for the frame.
    let (uc, si) = unsafe { (&*(ucv as *const Ucontext), &*info) };
    SEEN_SIGNO.store(signo as u64 | ((si.signo as u64) << 32), SeqCst);
    SEEN_CODE.store(si.code as u32 as u64, SeqCst);
    let delta = (info as usize).wrapping_sub(frame_addr);
    SEEN_INFO_DELTA.store(delta as u64, SeqCst);
    let gp = uc.gpregs();
    SEEN_PC.store(gp.pc(), SeqCst);
    SEEN_SP.store(gp.sp(), SeqCst);
    SEEN_MASK.store(uc.sigmask(), SeqCst);
    // SAFETY: the frame is live while the handler runs.
    let fp = unsafe { uc.fpregs() };
    SEEN_FP.store(fp.map_or(u64::MAX, |f| fpctl::marker_of(&f)), SeqCst);
}

#[test]
fn kernel_frame_matches_our_layout() {
    let _g = SERIAL.lock().unwrap();
    install(sig::SIGUSR1, inspect_handler);
    // A recognisable mask in force when the signal arrives.
    let extra = sigmask_bit(sig::SIGWINCH) | sigmask_bit(sig::SIGURG);
    let old = sigprocmask(criu_arch::SIG_BLOCK, Some(extra));
    let in_force = sigprocmask(criu_arch::SIG_BLOCK, None);
    raise(sig::SIGUSR1, &RAISE_LOCAL);
    sigprocmask(criu_arch::SIG_SETMASK, Some(old));

    let signo = SEEN_SIGNO.load(SeqCst);
    assert_eq!(signo & 0xffff_ffff, sig::SIGUSR1 as u64, "handler signo");
    assert_eq!(signo >> 32, sig::SIGUSR1 as u64, "siginfo.si_signo");
    assert_eq!(SEEN_CODE.load(SeqCst) as u32 as i32, SI_TKILL, "si_code");
    let info_off = offset_of!(RtSigframe, info) as u64;
    // ppc64: kernels without transactional memory have no `uc_transact`, so
    // siginfo sits one ucontext lower; qemu-user also keeps the older 6-word
    // trampoline (8 bytes less). Only `uc` matters for rt_sigreturn.
    #[cfg(target_arch = "powerpc64")]
    let info_ok = {
        let no_tm = info_off - core::mem::size_of::<Ucontext>() as u64;
        [info_off, no_tm, no_tm - 8]
    };
    #[cfg(not(target_arch = "powerpc64"))]
    let info_ok = [info_off];
    let delta = SEEN_INFO_DELTA.load(SeqCst);
    assert!(
        info_ok.contains(&delta),
        "info at frame+{delta}, expected one of {info_ok:?}"
    );
    let pc = SEEN_PC.load(SeqCst);
    let start = raise as *const () as usize as u64;
    assert!(
        pc > start && pc < start + 4096,
        "pc {pc:#x} not in raise() at {start:#x}"
    );
    let sp = SEEN_SP.load(SeqCst);
    let local = RAISE_LOCAL.load(SeqCst) as u64;
    assert!(
        sp <= local && local - sp < 64 * 1024,
        "sp {sp:#x} far from local {local:#x}"
    );
    assert_eq!(SEEN_MASK.load(SeqCst), in_force, "uc_sigmask");
    assert_eq!(
        SEEN_FP.load(SeqCst),
        fpctl::current_marker(),
        "FP control register"
    );
}

// Test 2: rt_sigreturn through a frame built by fill_sigframe -------------------

const MAGIC: u64 = 0x5eed_c0de_1234_5678;
const LANDING_STACK: usize = 128 * 1024;

#[repr(C, align(64))]
struct Aligned<T>(T);

static mut STACK: Aligned<[u8; LANDING_STACK]> = Aligned([0; LANDING_STACK]);
static mut FRAME: Option<Box<Aligned<RtSigframe>>> = None;

static LANDED_MAGIC: AtomicU64 = AtomicU64::new(0);
static LANDED_MASK: AtomicU64 = AtomicU64::new(0);
static LANDED_FP: AtomicU64 = AtomicU64::new(0);
static LANDED_SP: AtomicU64 = AtomicU64::new(0);

fn chosen_mask() -> u64 {
    sigmask_bit(sig::SIGUSR2) | sigmask_bit(sig::SIGPWR) | sigmask_bit(sig::SIGURG)
}

/// Entered by `rt_sigreturn` from `redirect_handler`, with arguments set by
/// `setup_blob_call`; leaves by `rt_sigreturn` through the kernel's original
/// frame, back into `raise`.
extern "C" fn landing(orig_frame: u64, magic: u64) -> ! {
    let probe = 0u8;
    LANDED_SP.store(&probe as *const u8 as u64, SeqCst);
    LANDED_FP.store(fpctl::current_marker(), SeqCst);
    LANDED_MAGIC.store(magic, SeqCst);
    LANDED_MASK.store(sigprocmask(criu_arch::SIG_BLOCK, None), SeqCst);
    // SAFETY: the kernel frame of the redirected signal is still intact on
    // the interrupted stack (we ran on another stack since).
    unsafe { sigreturn(orig_frame as usize + RT_SIGFRAME_OFFSET - SP_BIAS.load(SeqCst)) }
}

extern "C" fn redirect_handler(_signo: i32, _info: *mut Siginfo, ucv: *mut c_void) {
    let orig_frame = ucv as usize - offset_of!(RtSigframe, uc);
    let bias = sigreturn_sp_bias(orig_frame);
    SP_BIAS.store(bias, SeqCst);
    // SAFETY: the kernel passes a valid ucontext.
    let uc = unsafe { &*(ucv as *const Ucontext) };
    let mut gp = uc.gpregs();
    // SAFETY: the kernel's frame is live.
    let mut fp: FpRegs = unsafe { uc.fpregs() }.unwrap_or_default();
    fpctl::set_marker(&mut fp, fpctl::TEST_MARKER);

    // SAFETY: only this handler touches STACK/FRAME, and only one redirect
    // test runs at a time (SERIAL).
    let (stack_top, frame) = unsafe {
        let top = (&raw mut STACK) as usize + LANDING_STACK;
        let slot = &raw mut FRAME;
        let frame = (*slot).as_mut().unwrap();
        (top as u64, &mut frame.0)
    };
    let call = setup_blob_call(
        &mut gp,
        landing as *const () as usize as u64,
        stack_top,
        &[orig_frame as u64, MAGIC],
        0,
    )
    .expect("setup_blob_call");
    if let Some(w) = call.stack_word {
        // SAFETY: the word lies inside STACK.
        unsafe { (w.addr as usize as *mut u64).write(w.value) };
    }
    let frame_addr = frame as *mut RtSigframe as u64;
    fill_sigframe(frame, frame_addr, &gp, Some(&fp), chosen_mask());
    // SAFETY: FRAME holds a complete frame describing a call of `landing`.
    unsafe { sigreturn(frame_addr as usize + RT_SIGFRAME_OFFSET - bias) }
}

#[test]
fn sigreturn_into_filled_frame() {
    let _g = SERIAL.lock().unwrap();
    // SAFETY: SERIAL keeps other users away while we set the frame buffer.
    unsafe {
        let slot = &raw mut FRAME;
        *slot = Some(Box::new(Aligned(RtSigframe::default())));
    }
    install(sig::SIGUSR2, redirect_handler);
    let before_mask = sigprocmask(criu_arch::SIG_BLOCK, None);
    let before_fp = fpctl::current_marker();
    let local = AtomicUsize::new(0);
    raise(sig::SIGUSR2, &local);

    assert_eq!(
        LANDED_MAGIC.load(SeqCst),
        MAGIC,
        "landing() did not get its argument"
    );
    // SIGKILL/SIGSTOP cannot be blocked; our mask has neither.
    assert_eq!(
        LANDED_MASK.load(SeqCst),
        chosen_mask(),
        "mask installed by rt_sigreturn"
    );
    assert_eq!(
        LANDED_FP.load(SeqCst),
        fpctl::TEST_MARKER,
        "FP control from our frame"
    );
    let sp = LANDED_SP.load(SeqCst);
    let stack = (&raw const STACK) as u64;
    assert!(
        sp > stack && sp < stack + LANDING_STACK as u64,
        "landing ran on sp {sp:#x}"
    );
    // And back in the original state.
    assert_eq!(
        sigprocmask(criu_arch::SIG_BLOCK, None),
        before_mask,
        "mask after return"
    );
    assert_eq!(
        fpctl::current_marker(),
        before_fp,
        "FP control after return"
    );
    let bias = SP_BIAS.load(SeqCst);
    assert!(
        bias == 0 || cfg!(target_arch = "powerpc64") && bias == 144,
        "unexpected sigreturn sp bias {bias}"
    );
}
