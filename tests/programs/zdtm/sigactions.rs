//! Signal actions: handlers with varied flags (SA_SIGINFO, SA_RESTART,
//! SA_ONSTACK, SA_NODEFER, SA_RESETHAND) and masks, SIG_IGN with and
//! without flags, SIG_DFL with a flag, and a blocked mask. After restore
//! every action (all 64 signals) and the blocked mask must read back
//! exactly as before the dump; then raised signals must run their
//! handlers with the right mask in force, SA_RESETHAND must reset its
//! action, and ignored signals must stay ignored.
//!
//! With the argument `inside`, the dump happens while a handler runs (and
//! waits for `go`) with its own mask added to the blocked set: that mask
//! must be in force after restore, and the one before the signal must be
//! back once the handler returns (from the frame on the task's stack).
//! The handler writes `DIR/inside` once it runs; the harness dumps after
//! that.
#[path = "lib.rs"]
mod zdtm;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use criu_arch::sig::*;
use criu_arch::{
    KSigaction, SA_NOCLDSTOP, SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_SIGINFO,
    SIG_DFL, SIG_IGN, Siginfo, sigmask_bit as bit,
};

const NSIG: usize = 64;
const SIGRT3: usize = SIGRTMIN + 3;
const SIGRT8: usize = SIGRTMIN + 8;
const SIGRTMAX: usize = 64;
const SIGWAIT: usize = SIGRTMIN + 12;

/// `inside`: the go file, the blocked mask the waiting handler saw before
/// the dump and after restore, and how often it ran.
static GO: OnceLock<PathBuf> = OnceLock::new();
static WAIT_MASK: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static WAIT_RUNS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_wait(_sig: i32, _info: usize, _uc: usize) {
    WAIT_MASK[0].store(zdtm::blocked().unwrap_or(0), Ordering::SeqCst);
    // The main thread is inside tgkill, holding no lock: the standard
    // library is usable here.
    let go = GO.get().expect("go path");
    let _ = zdtm::write_atomic(&go.with_file_name("inside"), "1\n");
    let start = std::time::Instant::now();
    while !go.exists() && !zdtm::waited_too_long(start) {
        std::thread::sleep(Duration::from_millis(1));
    }
    WAIT_MASK[1].store(zdtm::blocked().unwrap_or(0), Ordering::SeqCst);
    WAIT_RUNS.fetch_add(1, Ordering::SeqCst);
}

fn wait_mask() -> u64 {
    bit(SIGUSR1) | bit(SIGRTMIN + 20)
}

/// Per signal: how often a handler ran, the blocked mask inside it and
/// the si_code it saw (SA_SIGINFO handlers).
static COUNT: [AtomicU32; NSIG + 1] = [const { AtomicU32::new(0) }; NSIG + 1];
static MASK_IN: [AtomicU64; NSIG + 1] = [const { AtomicU64::new(0) }; NSIG + 1];
static CODE_IN: [AtomicI32; NSIG + 1] = [const { AtomicI32::new(i32::MIN) }; NSIG + 1];

fn record(sig: i32) {
    let s = (sig as usize).min(NSIG);
    COUNT[s].fetch_add(1, Ordering::SeqCst);
    MASK_IN[s].store(zdtm::blocked().unwrap_or(0), Ordering::SeqCst);
}

extern "C" fn on_plain(sig: i32) {
    record(sig);
}

extern "C" fn on_info(sig: i32, info: *const Siginfo, _uc: usize) {
    // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers.
    let code = unsafe { (*info).code };
    CODE_IN[(sig as usize).min(NSIG)].store(code, Ordering::SeqCst);
    record(sig);
}

fn plain() -> usize {
    on_plain as *const () as usize
}

fn info() -> usize {
    on_info as *const () as usize
}

/// The actions set up: (signal, action). Signals 32 and 33 are left to
/// the C library.
fn wanted() -> Vec<(usize, KSigaction)> {
    let ign = |flags| KSigaction {
        handler: SIG_IGN,
        flags,
        restorer: 0,
        mask: 0,
    };
    vec![
        (
            SIGHUP,
            zdtm::action(info(), SA_SIGINFO | SA_RESTART, bit(SIGUSR2) | bit(SIGTERM)),
        ),
        (SIGINT, ign(0)),
        (SIGQUIT, zdtm::action(plain(), SA_NODEFER, bit(SIGRT8))),
        (SIGUSR1, zdtm::action(info(), SA_SIGINFO | SA_RESETHAND, 0)),
        (
            SIGUSR2,
            zdtm::action(plain(), SA_ONSTACK | SA_RESTART, bit(SIGHUP) | bit(SIGALRM)),
        ),
        (SIGPIPE, ign(SA_RESTART)),
        (
            SIGTERM,
            zdtm::action(
                info(),
                SA_SIGINFO | SA_NODEFER | SA_RESTART | SA_ONSTACK,
                bit(SIGRT3) | bit(SIGRTMAX) | bit(SIGQUIT),
            ),
        ),
        (
            SIGCHLD,
            KSigaction {
                handler: SIG_DFL,
                flags: SA_NOCLDSTOP | SA_RESTART,
                restorer: 0,
                mask: bit(SIGUSR1),
            },
        ),
        (SIGWINCH, zdtm::action(plain(), 0, u64::MAX)),
        (SIGRT3, zdtm::action(info(), SA_SIGINFO, bit(SIGRTMAX))),
        (SIGRT8, zdtm::action(plain(), SA_RESETHAND | SA_NODEFER, 0)),
        (SIGRTMAX, ign(SA_SIGINFO)),
        (
            SIGWAIT,
            zdtm::action(
                on_wait as *const () as usize,
                SA_SIGINFO | SA_RESTART,
                wait_mask(),
            ),
        ),
    ]
}

/// Blocked across the dump (none of them is raised).
fn blocked_set() -> u64 {
    bit(SIGTSTP) | bit(SIGXCPU) | bit(SIGRTMIN + 5) | bit(SIGRTMAX - 1)
}

struct State {
    /// Every signal's action as read back after setup (index = signal).
    actions: Vec<Option<KSigaction>>,
    blocked: u64,
    inside: bool,
}

fn all_actions() -> Result<Vec<Option<KSigaction>>, String> {
    (0..=NSIG)
        .map(|s| match s {
            0 | SIGKILL | SIGSTOP => Ok(None),
            s => zdtm::get_sigaction(s).map(Some),
        })
        .collect()
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    GO.set(args.dir.join("go"))
        .map_err(|_| "go path set twice")?;
    for (sig, act) in wanted() {
        zdtm::set_sigaction(sig, &act)?;
        let got = zdtm::get_sigaction(sig)?;
        // The kernel drops SIGKILL/SIGSTOP from masks; nothing else differs.
        let mut want = act;
        want.mask &= !(bit(SIGKILL) | bit(SIGSTOP));
        zdtm::ensure(got == want, || {
            format!("setup: signal {sig}: set {want:x?}, kernel says {got:x?}")
        })?;
    }
    zdtm::sigprocmask(criu_arch::SIG_SETMASK, Some(blocked_set()))?;
    Ok(State {
        actions: all_actions()?,
        blocked: zdtm::blocked()?,
        inside: args.rest.iter().any(|a| a == "inside"),
    })
}

/// `inside`: the first tick enters the handler that waits for `go`.
fn tick(s: &mut State) {
    if s.inside && WAIT_RUNS.load(Ordering::SeqCst) == 0 {
        let _ = zdtm::raise(SIGWAIT);
    }
}

fn check(s: State) -> Result<(), String> {
    if s.inside {
        let runs = WAIT_RUNS.load(Ordering::SeqCst);
        let masks = [0, 1].map(|i| WAIT_MASK[i].load(Ordering::SeqCst));
        let want = s.blocked | wait_mask() | bit(SIGWAIT);
        zdtm::ensure(runs == 1 && masks == [want; 2], || {
            format!(
                "waiting handler: {runs} runs, blocked mask {:#x} before the dump and {:#x} \
                 after restore, want {want:#x}",
                masks[0], masks[1]
            )
        })?;
    }
    let now = all_actions()?;
    for (sig, (before, after)) in s.actions.iter().zip(&now).enumerate() {
        zdtm::ensure(before == after, || {
            format!("signal {sig}: action {before:x?} before the dump, {after:x?} after")
        })?;
    }
    let blocked = zdtm::blocked()?;
    zdtm::ensure(blocked == s.blocked, || {
        format!(
            "blocked mask {blocked:#x} after restore, {:#x} before",
            s.blocked
        )
    })?;
    zdtm::ensure(COUNT.iter().all(|c| c.load(Ordering::SeqCst) == 0), || {
        "a handler ran before any signal was raised".into()
    })?;

    // Handlers run, with their masks (plus the signal itself unless
    // SA_NODEFER) added to the blocked set.
    let expect_run = |sig: usize, extra_mask: u64, code: Option<i32>| -> Result<(), String> {
        zdtm::raise(sig)?;
        let n = COUNT[sig].load(Ordering::SeqCst);
        zdtm::ensure(n == 1, || {
            format!("signal {sig}: handler ran {n} times, not once")
        })?;
        let inside = MASK_IN[sig].load(Ordering::SeqCst);
        let want = s.blocked | extra_mask;
        zdtm::ensure(inside == want, || {
            format!("signal {sig}: blocked mask {inside:#x} in the handler, want {want:#x}")
        })?;
        if let Some(c) = code {
            let got = CODE_IN[sig].load(Ordering::SeqCst);
            zdtm::ensure(got == c, || {
                format!("signal {sig}: si_code {got} in the handler, want {c}")
            })?;
        }
        Ok(())
    };
    let tkill = Some(criu_arch::SI_TKILL);
    let mask_of = |sig: usize| s.actions[sig].map_or(0, |a| a.mask);
    expect_run(SIGHUP, mask_of(SIGHUP) | bit(SIGHUP), tkill)?;
    expect_run(SIGQUIT, mask_of(SIGQUIT), None)?;
    expect_run(SIGUSR2, mask_of(SIGUSR2) | bit(SIGUSR2), None)?;
    expect_run(SIGTERM, mask_of(SIGTERM), tkill)?;
    expect_run(SIGRT3, mask_of(SIGRT3) | bit(SIGRT3), tkill)?;
    let all = !(bit(SIGKILL) | bit(SIGSTOP));
    expect_run(SIGWINCH, all, None)?;
    // SA_RESETHAND: the handler runs once, then the action is SIG_DFL.
    expect_run(SIGUSR1, bit(SIGUSR1), tkill)?;
    expect_run(SIGRT8, mask_of(SIGRT8), None)?;
    for sig in [SIGUSR1, SIGRT8] {
        let a = zdtm::get_sigaction(sig)?;
        zdtm::ensure(a.handler == SIG_DFL, || {
            format!("signal {sig}: SA_RESETHAND did not reset the action: {a:x?}")
        })?;
    }
    // Ignored signals do nothing (the program would die otherwise).
    for sig in [SIGINT, SIGPIPE, SIGRTMAX] {
        zdtm::raise(sig)?;
    }
    let ran: u32 = COUNT.iter().map(|c| c.load(Ordering::SeqCst)).sum();
    zdtm::ensure(ran == 8, || format!("{ran} handler runs in all, want 8"))
}

fn main() {
    zdtm::run(setup, tick, check);
}
