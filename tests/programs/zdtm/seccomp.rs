//! Tasks under seccomp, in every thread, checked after restore.
//!
//! Default: with no_new_privs, the main thread installs filter A
//! (`getppid` fails with errno 77) and then starts two threads, which
//! share it; the second installs filter B of its own (`getsid` fails with
//! errno 78). `tsync`: the main thread starts both threads first and
//! installs A with `SECCOMP_FILTER_FLAG_TSYNC`, so all three share one
//! chain (CRIU keeps it once, on the leader, and TSYNC gives it back).
//! `strict`: a thread enters strict mode and then only echoes bytes over
//! two pipes (read and write are all it may do); the main thread then
//! installs A and starts a thread that shares it.
//!
//! `fork`: the main thread installs A and forks a child, which adds B of
//! its own (filters of one task inherited by another).
//!
//! `no-nnp`: no no_new_privs; A is installed with CAP_SYS_ADMIN, which
//! the main thread then drops (the restore must install the filter
//! before it takes the capability away again).
//!
//! After restore every thread checks, in itself, that its filtered
//! syscalls fail with their errno and an allowed one works, and that its
//! own `Seccomp:` and `Seccomp_filters:` lines are as before; the strict
//! thread must still echo, its status say mode 1.
#[path = "lib.rs"]
mod zdtm;

use std::sync::mpsc::{Receiver, Sender, channel};

use criu_arch::{nr, syscall0, syscall1, syscall2, syscall3, syscall5};
use zdtm::{ensure, errno};

const PR_SET_NO_NEW_PRIVS: usize = 38;
const PR_GET_NO_NEW_PRIVS: usize = 39;
const PR_SET_SECCOMP: usize = 22;
const SECCOMP_MODE_STRICT: usize = 1;
const SECCOMP_SET_MODE_FILTER: usize = 1;
const SECCOMP_FILTER_FLAG_TSYNC: usize = 1;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// `BPF_LD | BPF_W | BPF_ABS`, `BPF_JMP | BPF_JEQ | BPF_K`, `BPF_RET | BPF_K`.
const LD_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
/// Errnos of filters A (getppid) and B (getsid).
const ERRNO_A: u32 = 77;
const ERRNO_B: u32 = 78;

/// `struct sock_filter` (in native byte order).
#[repr(C)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// Installs a filter failing syscall `nr` with `err`, allowing the rest.
fn install(nr: usize, err: u32, flags: usize) -> Result<(), String> {
    let insns = [
        // The syscall number: seccomp_data.nr, at offset 0.
        SockFilter {
            code: LD_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        SockFilter {
            code: JEQ_K,
            jt: 0,
            jf: 1,
            k: nr as u32,
        },
        SockFilter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | err,
        },
        SockFilter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        },
    ];
    let prog = SockFprog {
        len: insns.len() as u16,
        filter: insns.as_ptr(),
    };
    errno(
        // SAFETY: `prog` points at live instructions for the call.
        unsafe {
            syscall3(
                nr::SECCOMP,
                SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const SockFprog as usize,
            )
        },
        "seccomp",
    )
    .map(drop)
}

fn gettid() -> isize {
    // SAFETY: no arguments.
    unsafe { syscall0(nr::GETTID) }
}

/// This thread's `field` of its status.
fn status(field: &str) -> Result<String, String> {
    let path = format!("/proc/self/task/{}/status", gettid());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("no {field} in {path}"))
}

/// What one thread checks in itself: its filter count, and whether
/// `getsid` is filtered too (B).
fn check_self(who: &str, filters: &str, with_b: bool, nnp_wanted: isize) -> Result<(), String> {
    let tid = gettid();
    let ctx = |what: String| format!("{who} (tid {tid}): {what}");
    ensure(status("Seccomp:")? == "2", || {
        ctx("seccomp filter mode lost".into())
    })?;
    let n = status("Seccomp_filters:")?;
    ensure(n == filters, || ctx(format!("{n} filters, not {filters}")))?;
    // SAFETY: no arguments.
    let ppid = unsafe { syscall0(nr::GETPPID) };
    ensure(ppid == -(ERRNO_A as isize), || {
        ctx(format!("getppid gave {ppid}, not -{ERRNO_A}"))
    })?;
    // SAFETY: integer argument.
    let sid = unsafe { syscall1(nr::GETSID, 0) };
    if with_b {
        ensure(sid == -(ERRNO_B as isize), || {
            ctx(format!("getsid gave {sid}, not -{ERRNO_B}"))
        })?;
    } else {
        ensure(sid > 0, || ctx(format!("getsid gave {sid}: filtered")))?;
    }
    // SAFETY: integer arguments only.
    let nnp = unsafe { syscall5(nr::PRCTL, PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    ensure(nnp == nnp_wanted, || ctx(format!("no_new_privs is {nnp}")))
}

/// A thread that checks itself when asked.
struct Worker {
    ask: Sender<()>,
    answer: Receiver<Result<(), String>>,
}

fn worker(
    setup: impl FnOnce() -> Result<(), String> + Send + 'static,
    check: impl Fn() -> Result<(), String> + Send + 'static,
) -> Result<Worker, String> {
    let (ask, asked) = channel::<()>();
    let (tell, answer) = channel();
    let (ready_tx, ready) = channel();
    std::thread::spawn(move || {
        let _ = ready_tx.send(setup());
        while asked.recv().is_ok() {
            let _ = tell.send(check());
        }
    });
    ready
        .recv()
        .map_err(|_| "a thread died in its set-up".to_string())??;
    Ok(Worker { ask, answer })
}

impl Worker {
    fn check(&self) -> Result<(), String> {
        self.ask
            .send(())
            .map_err(|_| "a thread is gone".to_string())?;
        self.answer
            .recv()
            .map_err(|_| "a thread did not answer".to_string())?
    }
}

/// The strict thread's pipes: it reads a byte from `to[0]` and writes it
/// plus one to `from[1]`.
struct Strict {
    to: [i32; 2],
    from: [i32; 2],
    tid: i32,
}

fn pipe() -> Result<[i32; 2], String> {
    let mut fds = [0i32; 2];
    errno(
        // SAFETY: pipe2 writes two ints into `fds`.
        unsafe { syscall3(nr::PIPE2, fds.as_mut_ptr() as usize, 0, 0) },
        "pipe2",
    )?;
    Ok(fds)
}

fn strict_thread() -> Result<Strict, String> {
    let (to, from) = (pipe()?, pipe()?);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(gettid());
        // SAFETY: integer arguments only.
        let ret = unsafe { syscall5(nr::PRCTL, PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) };
        if ret != 0 {
            // Not in strict mode: the check reports the mode.
            loop {
                std::thread::park();
            }
        }
        // Only read and write from here on (anything else kills us).
        let mut b = [0u8; 1];
        loop {
            // SAFETY: one byte into `b`, a live local.
            let n = unsafe { syscall3(nr::READ, to[0] as usize, b.as_mut_ptr() as usize, 1) };
            if n == 1 {
                b[0] = b[0].wrapping_add(1);
                // SAFETY: one byte from `b`.
                unsafe { syscall3(nr::WRITE, from[1] as usize, b.as_ptr() as usize, 1) };
            }
        }
    });
    let tid = rx.recv().map_err(|_| "strict thread died".to_string())? as i32;
    // Wait until it is in strict mode.
    let path = format!("/proc/self/task/{tid}/status");
    let start = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        if text.lines().any(|l| l == "Seccomp:\t1") {
            break;
        }
        if zdtm::waited_too_long(start) {
            return Err("the strict thread never entered strict mode".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(Strict { to, from, tid })
}

fn check_strict(s: &Strict) -> Result<(), String> {
    let path = format!("/proc/self/task/{}/status", s.tid);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    ensure(text.lines().any(|l| l == "Seccomp:\t1"), || {
        "the strict thread lost strict mode".into()
    })?;
    let b = [41u8];
    errno(
        // SAFETY: one byte from `b`.
        unsafe { syscall3(nr::WRITE, s.to[1] as usize, b.as_ptr() as usize, 1) },
        "write to the strict thread",
    )?;
    let mut r = [0u8; 1];
    // SAFETY: one byte into `r`.
    let n = unsafe { syscall3(nr::READ, s.from[0] as usize, r.as_mut_ptr() as usize, 1) };
    ensure(n == 1 && r[0] == 42, || {
        format!("the strict thread answered {n} bytes, {}", r[0])
    })
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_V3: u32 = 0x2008_0522;

/// Drops CAP_SYS_ADMIN from the main thread's effective and permitted
/// sets: it can install no filter any more without no_new_privs.
fn drop_sys_admin() -> Result<(), String> {
    let header: [u32; 2] = [CAP_V3, 0];
    let mut data = [0u32; 6];
    errno(
        // SAFETY: a live header and room for two cap_user_data structs.
        unsafe {
            syscall2(
                nr::CAPGET,
                header.as_ptr() as usize,
                data.as_mut_ptr() as usize,
            )
        },
        "capget",
    )?;
    // eff, prm of the low word (CAP_SYS_ADMIN is 21).
    data[0] &= !(1 << CAP_SYS_ADMIN);
    data[1] &= !(1 << CAP_SYS_ADMIN);
    errno(
        // SAFETY: a live header and two cap_user_data structs.
        unsafe { syscall2(nr::CAPSET, header.as_ptr() as usize, data.as_ptr() as usize) },
        "capset",
    )
    .map(drop)
}

struct State {
    workers: Vec<Worker>,
    strict: Option<Strict>,
    /// The forked child (mode `fork`).
    child: Option<(i32, std::path::PathBuf)>,
    /// The main thread's no_new_privs.
    nnp: isize,
}

fn main() {
    zdtm::run(
        |args| {
            let mode = args.rest.first().map(String::as_str).unwrap_or("");
            if mode != "no-nnp" {
                errno(
                    // SAFETY: integer arguments only.
                    unsafe { syscall5(nr::PRCTL, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
                    "PR_SET_NO_NEW_PRIVS",
                )?;
            }
            let mut workers = Vec::new();
            let mut strict = None;
            let mut child = None;
            match mode {
                "tsync" => {
                    workers.push(worker(|| Ok(()), || check_self("thread 1", "1", false, 1))?);
                    workers.push(worker(|| Ok(()), || check_self("thread 2", "1", false, 1))?);
                    install(nr::GETPPID, ERRNO_A, SECCOMP_FILTER_FLAG_TSYNC)?;
                }
                "strict" => {
                    // Strict mode cannot follow a filter: started first.
                    strict = Some(strict_thread()?);
                    install(nr::GETPPID, ERRNO_A, 0)?;
                    workers.push(worker(|| Ok(()), || check_self("thread 1", "1", false, 1))?);
                }
                "" => {
                    install(nr::GETPPID, ERRNO_A, 0)?;
                    workers.push(worker(|| Ok(()), || check_self("thread 1", "1", false, 1))?);
                    workers.push(worker(
                        || install(nr::GETSID, ERRNO_B, 0),
                        || check_self("thread 2", "2", true, 1),
                    )?);
                }
                "fork" => {
                    install(nr::GETPPID, ERRNO_A, 0)?;
                    // Forked while single-threaded: the child shares A
                    // and adds B of its own.
                    let dir = args.dir.clone();
                    let pid = zdtm::child(&args.dir, move || {
                        install(nr::GETSID, ERRNO_B, 0)?;
                        zdtm::wait_go(&dir)?;
                        check_self("child", "2", true, 1)
                    })?;
                    child = Some((pid, args.dir.clone()));
                    workers.push(worker(|| Ok(()), || check_self("thread 1", "1", false, 1))?);
                }
                "no-nnp" => {
                    install(nr::GETPPID, ERRNO_A, 0)?;
                    workers.push(worker(|| Ok(()), || check_self("thread 1", "1", false, 0))?);
                    drop_sys_admin()?;
                }
                m => return Err(format!("unknown mode {m:?}")),
            }
            Ok(State {
                workers,
                strict,
                child,
                nnp: if mode == "no-nnp" { 0 } else { 1 },
            })
        },
        |_| {},
        |s| {
            check_self("main thread", "1", false, s.nnp)?;
            if s.nnp == 0 {
                let eff = status("CapEff:")?;
                let eff =
                    u64::from_str_radix(&eff, 16).map_err(|e| format!("CapEff {eff}: {e}"))?;
                ensure(eff & 1 << CAP_SYS_ADMIN == 0, || {
                    format!("the main thread has CAP_SYS_ADMIN again (CapEff {eff:#x})")
                })?;
            }
            for w in &s.workers {
                w.check()?;
            }
            s.strict.as_ref().map_or(Ok(()), check_strict)?;
            s.child
                .map_or(Ok(()), |(pid, dir)| zdtm::reap_ok(&dir, pid, "child"))
        },
    );
}
