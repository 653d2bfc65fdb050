//! An alternate signal stack with SS_AUTODISARM, a SA_ONSTACK handler
//! and a handler without it. After restore `sigaltstack` must report the
//! same stack and flags; the SA_ONSTACK handler must run on that stack,
//! see it disarmed while it runs, and find it armed again afterwards; the
//! other handler must run on the ordinary stack.
#[path = "lib.rs"]
mod zdtm;

use std::sync::atomic::{AtomicU64, Ordering};

use criu_arch::sig::{SIGUSR1, SIGUSR2};
use criu_arch::{SA_ONSTACK, SA_SIGINFO, SS_AUTODISARM, SS_DISABLE, StackT, nr, syscall2};

const STACK_LEN: usize = 64 * 1024;

/// Per handler (0: SIGUSR1 on the alternate stack, 1: SIGUSR2): runs, the
/// address of a local, and the alternate stack's flags seen inside.
static RUNS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static LOCAL_AT: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static FLAGS_IN: [AtomicU64; 2] = [const { AtomicU64::new(u64::MAX) }; 2];

extern "C" fn on_signal(sig: i32, _info: usize, _uc: usize) {
    let i = usize::from(sig as usize == SIGUSR2);
    let local = 0u8;
    LOCAL_AT[i].store(
        std::hint::black_box(&local) as *const u8 as u64,
        Ordering::SeqCst,
    );
    if let Ok(ss) = altstack() {
        FLAGS_IN[i].store(ss.flags as u32 as u64, Ordering::SeqCst);
    }
    RUNS[i].fetch_add(1, Ordering::SeqCst);
}

fn altstack() -> Result<StackT, String> {
    let mut old = StackT::default();
    // SAFETY: the kernel writes one stack_t into `old`.
    let ret = unsafe { syscall2(nr::SIGALTSTACK, 0, &mut old as *mut StackT as usize) };
    zdtm::errno(ret, "sigaltstack query").map(|_| old)
}

fn setup() -> Result<StackT, String> {
    let base = zdtm::mmap(0, STACK_LEN, 3, 0x22, -1, 0)?;
    let ss = StackT {
        sp: base as u64,
        flags: SS_AUTODISARM,
        _pad: 0,
        size: STACK_LEN as u64,
    };
    // SAFETY: `ss` is a live stack_t describing memory we mapped.
    let ret = unsafe { syscall2(nr::SIGALTSTACK, &ss as *const StackT as usize, 0) };
    zdtm::errno(ret, "sigaltstack")?;
    let handler = on_signal as *const () as usize;
    zdtm::set_sigaction(SIGUSR1, &zdtm::action(handler, SA_SIGINFO | SA_ONSTACK, 0))?;
    zdtm::set_sigaction(SIGUSR2, &zdtm::action(handler, SA_SIGINFO, 0))?;
    let got = altstack()?;
    zdtm::ensure(got == ss, || {
        format!("setup: sigaltstack {got:x?}, want {ss:x?}")
    })?;
    Ok(got)
}

fn check(before: StackT) -> Result<(), String> {
    let now = altstack()?;
    zdtm::ensure(now == before, || {
        format!("sigaltstack {now:x?} after restore, {before:x?} before the dump")
    })?;
    let on_alt = |a: u64| (before.sp..before.sp + before.size).contains(&a);
    zdtm::raise(SIGUSR1)?;
    let (runs, at, flags) = (
        RUNS[0].load(Ordering::SeqCst),
        LOCAL_AT[0].load(Ordering::SeqCst),
        FLAGS_IN[0].load(Ordering::SeqCst),
    );
    zdtm::ensure(runs == 1 && on_alt(at), || {
        format!("SA_ONSTACK handler: {runs} runs, local at {at:#x}, not on {before:x?}")
    })?;
    // Disarmed while it ran (SS_AUTODISARM), so the query says disabled.
    zdtm::ensure(flags == SS_DISABLE as u64, || {
        format!("SA_ONSTACK handler saw alternate stack flags {flags:#x}, want SS_DISABLE")
    })?;
    let after = altstack()?;
    zdtm::ensure(after == before, || {
        format!("sigaltstack {after:x?} after the handler, want {before:x?} again")
    })?;
    zdtm::raise(SIGUSR2)?;
    let (runs, at) = (
        RUNS[1].load(Ordering::SeqCst),
        LOCAL_AT[1].load(Ordering::SeqCst),
    );
    zdtm::ensure(runs == 1 && at != 0 && !on_alt(at), || {
        format!("plain handler: {runs} runs, local at {at:#x} (on the alternate stack?)")
    })
}

fn main() {
    zdtm::run(|_| setup(), |_| {}, check);
}
