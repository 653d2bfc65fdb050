//! An alternate signal stack with SS_AUTODISARM, a SA_ONSTACK handler
//! and a handler without it. After restore `sigaltstack` must report the
//! same stack and flags; the SA_ONSTACK handler must run on that stack,
//! see it disarmed while it runs, and find it armed again afterwards; the
//! other handler must run on the ordinary stack.
//!
//! With the argument `inside`, the dump happens while a SA_ONSTACK
//! handler runs (and waits for `go`) on the alternate stack: the stack is
//! disarmed then, and must still be after restore; when the handler
//! returns, the kernel re-arms it from the signal frame on that stack.
//! The handler writes `DIR/inside` once it runs; the harness dumps after
//! that.
#[path = "lib.rs"]
mod zdtm;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criu_arch::sig::{SIGUSR1, SIGUSR2, SIGWINCH};
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

/// The handler the dump interrupts (`inside`): where its local lives,
/// the stack flags it saw before and after the dump, how often it ran.
static GO: OnceLock<PathBuf> = OnceLock::new();
static WAIT_LOCAL_AT: AtomicU64 = AtomicU64::new(0);
static WAIT_FLAGS: [AtomicU64; 2] = [const { AtomicU64::new(u64::MAX) }; 2];
static WAIT_RUNS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_wait(_sig: i32, _info: usize, _uc: usize) {
    let local = 0u8;
    WAIT_LOCAL_AT.store(
        std::hint::black_box(&local) as *const u8 as u64,
        Ordering::SeqCst,
    );
    let flags = || altstack().map_or(u64::MAX, |ss| ss.flags as u32 as u64);
    WAIT_FLAGS[0].store(flags(), Ordering::SeqCst);
    // The main thread is inside tgkill, holding no lock: the standard
    // library is usable here. `DIR/inside` tells the harness to dump now.
    let go = GO.get().expect("go path");
    let _ = zdtm::write_atomic(&go.with_file_name("inside"), "1\n");
    let start = std::time::Instant::now();
    while !go.exists() && !zdtm::waited_too_long(start) {
        std::thread::sleep(Duration::from_millis(1));
    }
    WAIT_FLAGS[1].store(flags(), Ordering::SeqCst);
    WAIT_RUNS.fetch_add(1, Ordering::SeqCst);
}

fn altstack() -> Result<StackT, String> {
    let mut old = StackT::default();
    // SAFETY: the kernel writes one stack_t into `old`.
    let ret = unsafe { syscall2(nr::SIGALTSTACK, 0, &mut old as *mut StackT as usize) };
    zdtm::errno(ret, "sigaltstack query").map(|_| old)
}

struct State {
    stack: StackT,
    inside: bool,
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let inside = args.rest.iter().any(|a| a == "inside");
    GO.set(args.dir.join("go"))
        .map_err(|_| "go path set twice")?;
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
    let wait = on_wait as *const () as usize;
    zdtm::set_sigaction(SIGWINCH, &zdtm::action(wait, SA_SIGINFO | SA_ONSTACK, 0))?;
    let got = altstack()?;
    zdtm::ensure(got == ss, || {
        format!("setup: sigaltstack {got:x?}, want {ss:x?}")
    })?;
    Ok(State { stack: got, inside })
}

/// `inside`: the first tick enters the handler that waits for `go`.
fn tick(s: &mut State) {
    if s.inside && WAIT_RUNS.load(Ordering::SeqCst) == 0 {
        let _ = zdtm::raise(SIGWINCH);
    }
}

fn check(s: State) -> Result<(), String> {
    let before = s.stack;
    if s.inside {
        let (runs, at) = (
            WAIT_RUNS.load(Ordering::SeqCst),
            WAIT_LOCAL_AT.load(Ordering::SeqCst),
        );
        let on_alt = (before.sp..before.sp + before.size).contains(&at);
        zdtm::ensure(runs == 1 && on_alt, || {
            format!("waiting handler: {runs} runs, local at {at:#x}, not on {before:x?}")
        })?;
        let flags = [0, 1].map(|i| WAIT_FLAGS[i].load(Ordering::SeqCst));
        zdtm::ensure(flags == [SS_DISABLE as u64; 2], || {
            format!(
                "waiting handler saw alternate stack flags {:#x} before the dump and {:#x} \
                 after restore, want SS_DISABLE (disarmed) both times",
                flags[0], flags[1]
            )
        })?;
    }
    check_handlers(before)
}

fn check_handlers(before: StackT) -> Result<(), String> {
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
    zdtm::run(setup, tick, check);
}
