//! Threads: the main thread and THREADS others (default 4), each counting
//! in a thread-local variable of its own and blocking a signal set of its
//! own. Thread 0 has a thread-directed SIGUSR1 pending (blocked); thread 1
//! has an alternate signal stack; thread 2 has a nice value of its own;
//! thread 3 has a POSIX timer that signals it alone (SIGEV_THREAD_ID)
//! every 5 ms, and the signals must keep coming to it after restore.
//! After restore every thread must have its
//! TID, its mask, its TLS variable at the same address with the count
//! going on, and keep running; thread 0's signal must still be pending for
//! it alone and be delivered to it when unblocked; thread 1's sigaltstack
//! must be the same, and thread 2's nice value too; each thread's glibc
//! rseq area must still be registered with the kernel (registering it
//! again fails with EBUSY, see rseq.rs); and every thread must be joinable (which needs the
//! kernel to clear its clear_child_tid word on exit, as before).
//!
//! Usage: `zdtm_threads DIR [THREADS]`.
#[path = "lib.rs"]
mod zdtm;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criu_arch::sig::{SIGUSR1, SIGUSR2};
use criu_arch::{SIG_BLOCK, SIG_UNBLOCK, StackT, nr, syscall2};

const MAX_THREADS: usize = 16;
const ALT_LEN: usize = 64 * 1024;
/// Thread 2's nice value (the others keep the process's).
const NICE: i32 = 7;
const PRIO_PROCESS: usize = 0;

const EBUSY: isize = 16;

unsafe extern "C" {
    static __rseq_offset: isize;
    static __rseq_size: u32;
}

/// This thread's glibc rseq area and the length it is registered with,
/// if glibc registered one: `rseq(area, len)` gives EBUSY exactly when the
/// kernel has this very registration.
fn rseq_registration() -> Result<Option<(usize, usize)>, String> {
    // SAFETY: glibc's exported constants, set before main.
    let (off, size) = unsafe { (__rseq_offset, __rseq_size) };
    if size == 0 {
        return Ok(None);
    }
    let fs = zdtm::thread_pointer()?;
    let area = fs.wrapping_add_signed(off);
    for len in [32usize, size as usize, 20] {
        // SAFETY: registering glibc's own area of this thread again; if
        // that succeeded the area is valid thread memory anyway.
        let ret = unsafe { criu_arch::syscall4(nr::RSEQ, area, len, 0, zdtm::RSEQ_SIG) };
        if ret == -EBUSY {
            return Ok(Some((area, len)));
        }
    }
    Err(format!("rseq area {area:#x}: no length gives EBUSY"))
}

/// This thread's nice value (`getpriority` with who = 0 is the calling
/// thread; the raw syscall returns 20 - nice).
fn nice() -> Result<i32, String> {
    // SAFETY: integer arguments only.
    let ret = unsafe { criu_arch::syscall2(nr::GETPRIORITY, PRIO_PROCESS, 0) };
    zdtm::errno(ret, "getpriority").map(|v| 20 - v as i32)
}

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// Per thread (main last): its count as last published.
static SEEN: [AtomicU64; MAX_THREADS + 1] = [const { AtomicU64::new(0) }; MAX_THREADS + 1];
static STOP: AtomicBool = AtomicBool::new(false);
/// Who ran the SIGUSR1 handler (TID), and how often it ran.
static HANDLED_BY: AtomicI32 = AtomicI32::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// Who took the timer's SIGUSR2 last (TID), and how often it came.
static TIMER_TID: AtomicI32 = AtomicI32::new(0);
static TIMER_HITS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr2(_sig: i32, _info: usize, _uc: usize) {
    TIMER_TID.store(zdtm::gettid(), Ordering::SeqCst);
    TIMER_HITS.fetch_add(1, Ordering::SeqCst);
}

/// A CLOCK_MONOTONIC timer sending SIGUSR2 to this thread every 5 ms.
fn thread_timer() -> Result<(), String> {
    const CLOCK_MONOTONIC: usize = 1;
    const SIGEV_THREAD_ID: i32 = 4;
    // struct sigevent: value, signo, notify, then the thread id.
    let mut sev = [0i32; 16];
    sev[2] = SIGUSR2 as i32;
    sev[3] = SIGEV_THREAD_ID;
    sev[4] = zdtm::gettid();
    let mut id: i32 = 0;
    // SAFETY: `sev` is a live 64-byte sigevent, `id` a live timer_t.
    let ret = unsafe {
        criu_arch::syscall3(
            nr::TIMER_CREATE,
            CLOCK_MONOTONIC,
            sev.as_ptr() as usize,
            &mut id as *mut i32 as usize,
        )
    };
    zdtm::errno(ret, "timer_create")?;
    let spec: [u64; 4] = [0, 5_000_000, 0, 5_000_000];
    // SAFETY: `spec` is a live struct itimerspec.
    let ret = unsafe {
        criu_arch::syscall4(nr::TIMER_SETTIME, id as usize, 0, spec.as_ptr() as usize, 0)
    };
    zdtm::errno(ret, "timer_settime").map(drop)
}

extern "C" fn on_usr1(_sig: i32, _info: usize, _uc: usize) {
    HANDLED_BY.store(zdtm::gettid(), Ordering::SeqCst);
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// The mask thread `i` blocks (the main thread is `MAX_THREADS`): two
/// real-time signals of its own, and SIGUSR1 for thread 0.
fn mask_of(i: usize) -> u64 {
    let rt = |n: usize| 1u64 << (40 + n - 1);
    let mut m = rt(i % 12) | rt(12 + i % 12);
    if i == 0 {
        m |= 1 << (SIGUSR1 - 1);
    }
    m
}

fn tick(i: usize) -> u64 {
    COUNT.with(|c| {
        c.set(c.get() + 1);
        SEEN[i].store(c.get(), Ordering::SeqCst);
        c.get()
    })
}

fn tls_addr() -> usize {
    COUNT.with(|c| c as *const Cell<u64> as usize)
}

fn altstack() -> Result<StackT, String> {
    let mut old = StackT::default();
    // SAFETY: the kernel writes one stack_t into `old`.
    let ret = unsafe { syscall2(nr::SIGALTSTACK, 0, &mut old as *mut StackT as usize) };
    zdtm::errno(ret, "sigaltstack query").map(|_| old)
}

/// A hex signal-set line (`SigPnd:`, `ShdPnd:`) of this thread's status.
fn status_set(tid: i32, key: &str) -> Result<u64, String> {
    let path = format!("/proc/self/task/{tid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .ok_or_else(|| format!("{path}: no {key}"))?;
    u64::from_str_radix(v.trim(), 16).map_err(|e| format!("{path}: {key} {v}: {e}"))
}

/// What one thread sets up before `ready` and checks once told to stop.
fn thread_body(i: usize, ready: std::sync::mpsc::Sender<()>) -> Result<(), String> {
    let tid = zdtm::gettid();
    let tls = tls_addr();
    zdtm::sigprocmask(SIG_BLOCK, Some(mask_of(i)))?;
    let mut alt = None;
    if i == 0 {
        zdtm::raise(SIGUSR1)?;
    }
    if i == 1 {
        let stack = vec![0u8; ALT_LEN].leak();
        let ss = StackT {
            sp: stack.as_ptr() as u64,
            flags: 0,
            _pad: 0,
            size: ALT_LEN as u64,
        };
        // SAFETY: `ss` is a live stack_t describing leaked memory.
        let ret = unsafe { syscall2(nr::SIGALTSTACK, &ss as *const StackT as usize, 0) };
        zdtm::errno(ret, "sigaltstack")?;
        alt = Some(altstack()?);
    }
    if i == 2 {
        // SAFETY: integer arguments only (who = 0: this thread).
        let ret = unsafe { criu_arch::syscall3(nr::SETPRIORITY, PRIO_PROCESS, 0, NICE as usize) };
        zdtm::errno(ret, "setpriority")?;
    }
    if i == 3 {
        thread_timer()?;
    }
    let my_nice = nice()?;
    let rseq = rseq_registration()?;
    tick(i);
    ready.send(()).map_err(|e| e.to_string())?;
    while !STOP.load(Ordering::SeqCst) {
        tick(i);
        std::thread::sleep(Duration::from_millis(1));
    }
    let me = format!("thread {i} (tid {tid})");
    zdtm::ensure(zdtm::gettid() == tid, || {
        format!("{me}: tid is {} now", zdtm::gettid())
    })?;
    zdtm::ensure(tls_addr() == tls, || {
        format!("{me}: TLS at {:#x}, was {tls:#x}", tls_addr())
    })?;
    let count = COUNT.with(|c| c.get());
    let seen = SEEN[i].load(Ordering::SeqCst);
    zdtm::ensure(count == seen, || {
        format!("{me}: TLS count {count}, published {seen}")
    })?;
    let blocked = zdtm::blocked()?;
    zdtm::ensure(blocked == mask_of(i), || {
        format!("{me}: mask {blocked:#x}, want {:#x}", mask_of(i))
    })?;
    let now_rseq = rseq_registration()?;
    zdtm::ensure(now_rseq == rseq, || {
        format!("{me}: rseq {now_rseq:x?}, was {rseq:x?}")
    })?;
    let now_nice = nice()?;
    zdtm::ensure(now_nice == my_nice && (i != 2 || now_nice == NICE), || {
        format!("{me}: nice {now_nice}, was {my_nice}")
    })?;
    if let Some(alt) = alt {
        let now = altstack()?;
        zdtm::ensure(now == alt, || {
            format!("{me}: sigaltstack {now:x?}, was {alt:x?}")
        })?;
    }
    if i == 0 {
        let bit = 1u64 << (SIGUSR1 - 1);
        let own = status_set(tid, "SigPnd:")?;
        let shared = status_set(tid, "ShdPnd:")?;
        zdtm::ensure(own & bit != 0 && shared & bit == 0, || {
            format!(
                "{me}: SIGUSR1 not pending for the thread alone (SigPnd {own:#x} ShdPnd {shared:#x})"
            )
        })?;
        zdtm::ensure(HANDLED.load(Ordering::SeqCst) == 0, || {
            format!("{me}: SIGUSR1 handled while blocked")
        })?;
        zdtm::sigprocmask(SIG_UNBLOCK, Some(bit))?;
        let by = HANDLED_BY.load(Ordering::SeqCst);
        let n = HANDLED.load(Ordering::SeqCst);
        zdtm::ensure(n == 1 && by == tid, || {
            format!("{me}: SIGUSR1 handled {n} times, by tid {by}")
        })?;
    }
    Ok(())
}

struct State {
    threads: Vec<(i32, JoinHandle<Result<(), String>>)>,
    tids: Vec<i32>,
    main_tid: i32,
    main_tls: usize,
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let n: usize = match args.rest.first() {
        Some(s) => s.parse().map_err(|e| format!("THREADS {s}: {e}"))?,
        None => 4,
    };
    if n == 0 || n > MAX_THREADS {
        return Err(format!("THREADS must be 1..={MAX_THREADS}"));
    }
    zdtm::set_sigaction(
        SIGUSR1,
        &zdtm::action(on_usr1 as *const () as usize, criu_arch::SA_SIGINFO, 0),
    )?;
    zdtm::set_sigaction(
        SIGUSR2,
        &zdtm::action(
            on_usr2 as *const () as usize,
            criu_arch::SA_SIGINFO | criu_arch::SA_RESTART,
            0,
        ),
    )?;
    let mut threads = Vec::new();
    for i in 0..n {
        let (tx, rx) = std::sync::mpsc::channel();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let _ = tid_tx.send(zdtm::gettid());
            thread_body(i, tx)
        });
        let tid = tid_rx.recv().map_err(|e| e.to_string())?;
        if rx.recv().is_err() {
            let why = h.join().map_err(|_| "panicked".to_string())?;
            return Err(format!("thread {i} failed in setup: {why:?}"));
        }
        threads.push((tid, h));
    }
    // After the threads, which would inherit it.
    zdtm::sigprocmask(SIG_BLOCK, Some(mask_of(MAX_THREADS)))?;
    let tids = threads.iter().map(|t| t.0).collect();
    Ok(State {
        threads,
        tids,
        main_tid: zdtm::gettid(),
        main_tls: tls_addr(),
    })
}

fn check(st: State) -> Result<(), String> {
    // Every thread still runs: its count goes on.
    let before: Vec<u64> = (0..st.threads.len())
        .map(|i| SEEN[i].load(Ordering::SeqCst))
        .collect();
    let start = Instant::now();
    while (0..st.threads.len()).any(|i| SEEN[i].load(Ordering::SeqCst) <= before[i]) {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "threads stopped counting: {before:?} then {:?}",
                (0..st.threads.len())
                    .map(|i| SEEN[i].load(Ordering::SeqCst))
                    .collect::<Vec<_>>()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(&(tid, _)) = st.threads.get(3) {
        // The timer's signals keep coming, to thread 3 alone.
        let hits = TIMER_HITS.load(Ordering::SeqCst);
        let start = Instant::now();
        while TIMER_HITS.load(Ordering::SeqCst) < hits + 5 {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("timer of thread 3 stopped at {hits} signals"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let by = TIMER_TID.load(Ordering::SeqCst);
        zdtm::ensure(by == tid, || {
            format!("timer signal taken by {by}, not thread 3 ({tid})")
        })?;
    }
    let mut listed: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    listed.sort_unstable();
    let mut want = st.tids.clone();
    want.push(st.main_tid);
    want.sort_unstable();
    zdtm::ensure(listed == want, || {
        format!("threads {listed:?}, want {want:?}")
    })?;
    zdtm::ensure(zdtm::gettid() == st.main_tid, || "main tid changed".into())?;
    zdtm::ensure(tls_addr() == st.main_tls, || "main TLS moved".into())?;
    let count = COUNT.with(|c| c.get());
    zdtm::ensure(
        count == SEEN[MAX_THREADS].load(Ordering::SeqCst) && count > 0,
        || format!("main TLS count {count}"),
    )?;
    let blocked = zdtm::blocked()?;
    zdtm::ensure(blocked == mask_of(MAX_THREADS), || {
        format!("main mask {blocked:#x}, want {:#x}", mask_of(MAX_THREADS))
    })?;
    STOP.store(true, Ordering::SeqCst);
    for (i, (_, h)) in st.threads.into_iter().enumerate() {
        h.join()
            .map_err(|_| format!("thread {i} panicked"))?
            .map_err(|e| format!("thread {i}: {e}"))?;
    }
    Ok(())
}

fn main() {
    zdtm::run(
        setup,
        |_| {
            tick(MAX_THREADS);
        },
        check,
    );
}
