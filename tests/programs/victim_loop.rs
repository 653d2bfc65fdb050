//! A victim for the infect tests. It sets up state that an infection must
//! not disturb, reports "ready", waits, then checks the state itself and
//! writes its verdict (`PASS` or `FAIL: reason`) to `DIR/result`.
//!
//! Usage: `victim_loop DIR loop [block-trap]` or
//! `victim_loop DIR sleep MILLISECONDS`.
//!
//! - `loop`: spins in a loop that keeps known values live in the registers a
//!   syscall or a function call clobbers (rax, rcx, rdx, rsi, rdi, r8–r11,
//!   xmm0–xmm15 on x86_64; x0–x8, v0–v15 on aarch64; r0, r3–r12, VSR0–13,
//!   VR0–19 on ppc64le; r0–r5, r7–r9, f0–f15 on s390x) and checks them after each round, until the file
//!   `DIR/go` appears. With `block-trap`, SIGTRAP is blocked too (so that a
//!   test can leave one pending).
//! - `sleep`: one `nanosleep` of the given length. An infection while it
//!   sleeps must neither make it return early (EINTR) nor cut it short.
//!
//! Both check at the end: a 4 MiB memory pattern, the blocked-signal mask,
//! the first page of the first executable mapping (where the tool swaps its
//! syscall stub in), the set of open fds, and that no trace of the tool's
//! shared memory is left in `/proc/self/maps`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PATTERN_LEN: usize = 4 << 20;
/// SIGUSR2 and SIGRTMIN+2 (36): blocked from the start, must stay blocked.
const BLOCKED: u64 = (1 << (12 - 1)) | (1 << (36 - 1));
const SIG_BLOCK: usize = 0;
const SIGTRAP_BIT: u64 = 1 << (5 - 1);

/// The state the victim checks at the end.
struct Snapshot {
    pattern_sum: u64,
    sigmask: u64,
    text_sum: u64,
    fds: Vec<String>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).expect("usage: victim_loop DIR MODE [MS]"));
    let mode = args.get(2).map(String::as_str).unwrap_or("loop");
    let verdict = run(&dir, mode, args.get(3).map(String::as_str));
    let text = match verdict {
        Ok(()) => "PASS\n".to_string(),
        Err(reason) => format!("FAIL: {reason}\n"),
    };
    std::fs::write(dir.join("result"), text).expect("write result");
}

fn run(dir: &Path, mode: &str, arg: Option<&str>) -> Result<(), String> {
    // Own session: a terminal's signals must not reach us, nor ours it.
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    close_inherited_fds()?;
    let extra = if mode == "loop" && arg == Some("block-trap") {
        SIGTRAP_BIT
    } else {
        0
    };
    block_signals(BLOCKED | extra)?;
    let pattern = make_pattern(0x1234_5678_9abc_def1);
    let before = snapshot(&pattern)?;

    std::fs::write(dir.join("ready"), format!("{}\n", std::process::id()))
        .map_err(|e| format!("write ready: {e}"))?;

    match mode {
        "loop" => spin_until(&dir.join("go"))?,
        "sleep" => {
            let ms: u64 = arg
                .and_then(|a| a.parse().ok())
                .ok_or("sleep needs MILLISECONDS")?;
            sleep_once(Duration::from_millis(ms))?;
        }
        other => return Err(format!("unknown mode {other:?}")),
    }

    let after = snapshot(&pattern)?;
    compare(&before, &after)?;
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    if let Some(line) = maps
        .lines()
        .find(|l| l.contains("CRIUMFD") || l.contains("memfd:"))
    {
        return Err(format!("shared memory left behind: {line}"));
    }
    Ok(())
}

fn spin_until(go: &Path) -> Result<(), String> {
    let mut round = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !go.exists() {
        let bad = spin_with_live_registers(round, 2_000_000);
        if bad != 0 {
            return Err(format!(
                "registers changed under the loop in round {round}: {bad:#x}"
            ));
        }
        round += 1;
        if Instant::now() > deadline {
            return Err("no go file within 120 s".into());
        }
    }
    Ok(())
}

fn sleep_once(length: Duration) -> Result<(), String> {
    let start = Instant::now();
    let ts = rustix::time::Timespec {
        tv_sec: length.as_secs() as i64,
        tv_nsec: length.subsec_nanos() as i64,
    };
    match rustix::thread::nanosleep(&ts) {
        rustix::thread::NanosleepRelativeResult::Ok => {}
        rustix::thread::NanosleepRelativeResult::Interrupted(left) => {
            return Err(format!("nanosleep interrupted (EINTR), {left:?} left"));
        }
        rustix::thread::NanosleepRelativeResult::Err(e) => {
            return Err(format!("nanosleep: {e}"));
        }
    }
    let slept = start.elapsed();
    if slept < length {
        return Err(format!("slept {slept:?}, less than {length:?}"));
    }
    Ok(())
}

fn make_pattern(seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..PATTERN_LEN / 8)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

fn checksum(words: impl Iterator<Item = u64>) -> u64 {
    words.fold(0xcbf2_9ce4_8422_2325, |h, w| {
        (h ^ w).wrapping_mul(0x100_0000_01b3)
    })
}

fn snapshot(pattern: &[u64]) -> Result<Snapshot, String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // The directory listing itself holds one fd while it runs; it differs
    // between calls only if something else changed.
    fds.sort();
    Ok(Snapshot {
        pattern_sum: checksum(pattern.iter().copied()),
        sigmask: blocked_signals()?,
        text_sum: text_checksum()?,
        fds,
    })
}

fn compare(before: &Snapshot, after: &Snapshot) -> Result<(), String> {
    if before.pattern_sum != after.pattern_sum {
        return Err("memory pattern changed".into());
    }
    if after.sigmask != before.sigmask || after.sigmask & BLOCKED != BLOCKED {
        return Err(format!(
            "signal mask changed: {:#x} -> {:#x}",
            before.sigmask, after.sigmask
        ));
    }
    if before.text_sum != after.text_sum {
        return Err("first executable page changed".into());
    }
    if before.fds != after.fds {
        return Err(format!(
            "open fds changed: {:?} -> {:?}",
            before.fds, after.fds
        ));
    }
    Ok(())
}

/// Checksum of the first page of the first executable mapping, read through
/// /proc/self/mem.
fn text_checksum() -> Result<u64, String> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    let start = maps
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            (perms.as_bytes().get(2) == Some(&b'x') && !l.contains('['))
                .then(|| u64::from_str_radix(range.split('-').next()?, 16).ok())?
        })
        .ok_or("no executable mapping")?;
    let mem = std::fs::File::open("/proc/self/mem").map_err(|e| e.to_string())?;
    let mut page = [0u8; 4096];
    rustix::io::pread(&mem, &mut page, start).map_err(|e| format!("pread mem: {e}"))?;
    Ok(checksum(page.chunks_exact(8).map(|c| {
        u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))
    })))
}

fn sigprocmask(how: usize, set: Option<u64>) -> Result<u64, String> {
    let mut old = 0u64;
    let set_ptr = set.as_ref().map_or(0, |s| s as *const u64 as usize);
    // SAFETY: rt_sigprocmask reads 8 bytes from `set_ptr` (our local or
    // null) and writes 8 bytes to `old`, our local.
    let ret = unsafe {
        criu_arch::syscall4(
            criu_arch::nr::RT_SIGPROCMASK,
            how,
            set_ptr,
            &mut old as *mut u64 as usize,
            8,
        )
    };
    if ret < 0 {
        return Err(format!("rt_sigprocmask: errno {}", -ret));
    }
    Ok(old)
}

/// Close every fd above stdio that the test runner let us inherit, so the fd
/// check sees only what this program and an infection do.
/// It runs before this program opens any file.
fn close_inherited_fds() -> Result<(), String> {
    criu_core::sys::fds::close_fds_from(3).map_err(|e| format!("close_range: {e}"))
}

fn block_signals(mask: u64) -> Result<(), String> {
    sigprocmask(SIG_BLOCK, Some(mask)).map(drop)
}

fn blocked_signals() -> Result<u64, String> {
    sigprocmask(SIG_BLOCK, None)
}

/// Spin `iters` times with known values in the registers that syscalls and
/// calls clobber, and return a bit mask of those that changed.
#[cfg(target_arch = "x86_64")]
fn spin_with_live_registers(round: u64, iters: u64) -> u64 {
    // SAFETY: SSE2 is part of the x86_64 baseline, so the CPU has it.
    unsafe { spin_sse2(round, iters) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn spin_sse2(round: u64, iters: u64) -> u64 {
    use std::arch::asm;
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x};

    let value = |i: u64| {
        (round ^ 0x5eed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(i as u32)
            ^ i
    };
    let gp_in: [u64; 9] = std::array::from_fn(|i| value(i as u64));
    let x_in: [__m128i; 16] = std::array::from_fn(|i| {
        _mm_set_epi64x(value(100 + i as u64) as i64, value(200 + i as u64) as i64)
    });
    let mut gp = gp_in;
    let mut x = x_in;
    // SAFETY: the asm only counts `n` down; every register it names is an
    // operand, so the compiler knows about all of them.
    unsafe {
        asm!(
            "2:",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) iters.max(1) => _,
            inout("rax") gp[0], inout("rcx") gp[1], inout("rdx") gp[2],
            inout("rsi") gp[3], inout("rdi") gp[4], inout("r8") gp[5],
            inout("r9") gp[6], inout("r10") gp[7], inout("r11") gp[8],
            inout("xmm0") x[0], inout("xmm1") x[1], inout("xmm2") x[2],
            inout("xmm3") x[3], inout("xmm4") x[4], inout("xmm5") x[5],
            inout("xmm6") x[6], inout("xmm7") x[7], inout("xmm8") x[8],
            inout("xmm9") x[9], inout("xmm10") x[10], inout("xmm11") x[11],
            inout("xmm12") x[12], inout("xmm13") x[13], inout("xmm14") x[14],
            inout("xmm15") x[15],
            options(nostack, nomem),
        );
    }
    let mut bad = 0u64;
    for i in 0..9 {
        if gp[i] != gp_in[i] {
            bad |= 1 << i;
        }
    }
    for i in 0..16 {
        if _mm_movemask_epi8(_mm_cmpeq_epi8(x[i], x_in[i])) != 0xffff {
            bad |= 1 << (16 + i);
        }
    }
    bad
}

/// aarch64: x0-x8 and v0-v15 hold known values while the loop spins.
#[cfg(target_arch = "aarch64")]
fn spin_with_live_registers(round: u64, iters: u64) -> u64 {
    use std::arch::aarch64::uint8x16_t;
    use std::arch::asm;

    let value = |i: u64| {
        (round ^ 0x5eed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(i as u32)
            ^ i
    };
    let gp_in: [u64; 9] = std::array::from_fn(|i| value(i as u64));
    let v_in: [u128; 16] = std::array::from_fn(|i| {
        (u128::from(value(100 + i as u64)) << 64) | u128::from(value(200 + i as u64))
    });
    let mut gp = gp_in;
    // SAFETY: 16 u128 and 16 uint8x16_t are the same 256 bytes, and any
    // bit pattern is valid for both.
    let mut v: [uint8x16_t; 16] = unsafe { std::mem::transmute(v_in) };
    // SAFETY: the asm only counts `n` down; every register it names is an
    // operand, so the compiler knows about all of them.
    unsafe {
        asm!(
            "2:",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            n = inout(reg) iters.max(1) => _,
            inout("x0") gp[0], inout("x1") gp[1], inout("x2") gp[2],
            inout("x3") gp[3], inout("x4") gp[4], inout("x5") gp[5],
            inout("x6") gp[6], inout("x7") gp[7], inout("x8") gp[8],
            inout("v0") v[0], inout("v1") v[1], inout("v2") v[2],
            inout("v3") v[3], inout("v4") v[4], inout("v5") v[5],
            inout("v6") v[6], inout("v7") v[7], inout("v8") v[8],
            inout("v9") v[9], inout("v10") v[10], inout("v11") v[11],
            inout("v12") v[12], inout("v13") v[13], inout("v14") v[14],
            inout("v15") v[15],
            options(nostack, nomem),
        );
    }
    // SAFETY: as above.
    let v_out: [u128; 16] = unsafe { std::mem::transmute(v) };
    let mut bad = 0u64;
    for i in 0..9 {
        if gp[i] != gp_in[i] {
            bad |= 1 << i;
        }
    }
    for i in 0..16 {
        if v_out[i] != v_in[i] {
            bad |= 1 << (16 + i);
        }
    }
    bad
}

/// ppc64le: r0 and r3-r12 hold known values while the loop spins, and so
/// do VSR0-13 (FPR0-13 and their low halves) and VR0-19 (VSR32-51),
/// loaded from and stored back to `vs` around the loop.
#[cfg(target_arch = "powerpc64")]
fn spin_with_live_registers(round: u64, iters: u64) -> u64 {
    use std::arch::asm;

    let value = |i: u64| {
        (round ^ 0x5eed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(i as u32)
            ^ i
    };
    let gp_in: [u64; 11] = std::array::from_fn(|i| value(i as u64));
    let vs_in: [[u64; 2]; 34] =
        std::array::from_fn(|i| [value(100 + i as u64), value(200 + i as u64)]);
    let mut gp = gp_in;
    let mut vs = vs_in;
    // SAFETY: the asm reads and writes the 34 quadwords of `vs` (through
    // `a`) and counts `n` down; every register it names is an operand or
    // declared clobbered.
    unsafe {
        asm!(
            "li {o}, 0",
            "lxvd2x 0, {a}, {o}",
            "li {o}, 16",
            "lxvd2x 1, {a}, {o}",
            "li {o}, 32",
            "lxvd2x 2, {a}, {o}",
            "li {o}, 48",
            "lxvd2x 3, {a}, {o}",
            "li {o}, 64",
            "lxvd2x 4, {a}, {o}",
            "li {o}, 80",
            "lxvd2x 5, {a}, {o}",
            "li {o}, 96",
            "lxvd2x 6, {a}, {o}",
            "li {o}, 112",
            "lxvd2x 7, {a}, {o}",
            "li {o}, 128",
            "lxvd2x 8, {a}, {o}",
            "li {o}, 144",
            "lxvd2x 9, {a}, {o}",
            "li {o}, 160",
            "lxvd2x 10, {a}, {o}",
            "li {o}, 176",
            "lxvd2x 11, {a}, {o}",
            "li {o}, 192",
            "lxvd2x 12, {a}, {o}",
            "li {o}, 208",
            "lxvd2x 13, {a}, {o}",
            "li {o}, 224",
            "lxvd2x 32, {a}, {o}",
            "li {o}, 240",
            "lxvd2x 33, {a}, {o}",
            "li {o}, 256",
            "lxvd2x 34, {a}, {o}",
            "li {o}, 272",
            "lxvd2x 35, {a}, {o}",
            "li {o}, 288",
            "lxvd2x 36, {a}, {o}",
            "li {o}, 304",
            "lxvd2x 37, {a}, {o}",
            "li {o}, 320",
            "lxvd2x 38, {a}, {o}",
            "li {o}, 336",
            "lxvd2x 39, {a}, {o}",
            "li {o}, 352",
            "lxvd2x 40, {a}, {o}",
            "li {o}, 368",
            "lxvd2x 41, {a}, {o}",
            "li {o}, 384",
            "lxvd2x 42, {a}, {o}",
            "li {o}, 400",
            "lxvd2x 43, {a}, {o}",
            "li {o}, 416",
            "lxvd2x 44, {a}, {o}",
            "li {o}, 432",
            "lxvd2x 45, {a}, {o}",
            "li {o}, 448",
            "lxvd2x 46, {a}, {o}",
            "li {o}, 464",
            "lxvd2x 47, {a}, {o}",
            "li {o}, 480",
            "lxvd2x 48, {a}, {o}",
            "li {o}, 496",
            "lxvd2x 49, {a}, {o}",
            "li {o}, 512",
            "lxvd2x 50, {a}, {o}",
            "li {o}, 528",
            "lxvd2x 51, {a}, {o}",
            "2:",
            "addi {n}, {n}, -1",
            "cmpdi {n}, 0",
            "bne 2b",
            "li {o}, 0",
            "stxvd2x 0, {a}, {o}",
            "li {o}, 16",
            "stxvd2x 1, {a}, {o}",
            "li {o}, 32",
            "stxvd2x 2, {a}, {o}",
            "li {o}, 48",
            "stxvd2x 3, {a}, {o}",
            "li {o}, 64",
            "stxvd2x 4, {a}, {o}",
            "li {o}, 80",
            "stxvd2x 5, {a}, {o}",
            "li {o}, 96",
            "stxvd2x 6, {a}, {o}",
            "li {o}, 112",
            "stxvd2x 7, {a}, {o}",
            "li {o}, 128",
            "stxvd2x 8, {a}, {o}",
            "li {o}, 144",
            "stxvd2x 9, {a}, {o}",
            "li {o}, 160",
            "stxvd2x 10, {a}, {o}",
            "li {o}, 176",
            "stxvd2x 11, {a}, {o}",
            "li {o}, 192",
            "stxvd2x 12, {a}, {o}",
            "li {o}, 208",
            "stxvd2x 13, {a}, {o}",
            "li {o}, 224",
            "stxvd2x 32, {a}, {o}",
            "li {o}, 240",
            "stxvd2x 33, {a}, {o}",
            "li {o}, 256",
            "stxvd2x 34, {a}, {o}",
            "li {o}, 272",
            "stxvd2x 35, {a}, {o}",
            "li {o}, 288",
            "stxvd2x 36, {a}, {o}",
            "li {o}, 304",
            "stxvd2x 37, {a}, {o}",
            "li {o}, 320",
            "stxvd2x 38, {a}, {o}",
            "li {o}, 336",
            "stxvd2x 39, {a}, {o}",
            "li {o}, 352",
            "stxvd2x 40, {a}, {o}",
            "li {o}, 368",
            "stxvd2x 41, {a}, {o}",
            "li {o}, 384",
            "stxvd2x 42, {a}, {o}",
            "li {o}, 400",
            "stxvd2x 43, {a}, {o}",
            "li {o}, 416",
            "stxvd2x 44, {a}, {o}",
            "li {o}, 432",
            "stxvd2x 45, {a}, {o}",
            "li {o}, 448",
            "stxvd2x 46, {a}, {o}",
            "li {o}, 464",
            "stxvd2x 47, {a}, {o}",
            "li {o}, 480",
            "stxvd2x 48, {a}, {o}",
            "li {o}, 496",
            "stxvd2x 49, {a}, {o}",
            "li {o}, 512",
            "stxvd2x 50, {a}, {o}",
            "li {o}, 528",
            "stxvd2x 51, {a}, {o}",
            n = inout(reg) iters.max(1) => _,
            a = in(reg_nonzero) vs.as_mut_ptr(),
            o = out(reg_nonzero) _,
            inout("r0") gp[0], inout("r3") gp[1], inout("r4") gp[2],
            inout("r5") gp[3], inout("r6") gp[4], inout("r7") gp[5],
            inout("r8") gp[6], inout("r9") gp[7], inout("r10") gp[8],
            inout("r11") gp[9], inout("r12") gp[10],
            out("f0") _, out("f1") _, out("f2") _, out("f3") _, out("f4") _,
            out("f5") _, out("f6") _, out("f7") _, out("f8") _, out("f9") _,
            out("f10") _, out("f11") _, out("f12") _, out("f13") _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _,
            out("v5") _, out("v6") _, out("v7") _, out("v8") _, out("v9") _,
            out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _,
            out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("cr0") _,
            options(nostack),
        );
    }
    let mut bad = 0u64;
    for i in 0..11 {
        if gp[i] != gp_in[i] {
            bad |= 1 << i;
        }
    }
    for i in 0..34 {
        if vs[i] != vs_in[i] {
            bad |= 1 << (16 + i);
        }
    }
    bad
}

/// s390x: r0-r5, r7-r9 and f0-f15 (the left halves of v0-v15) hold
/// known values while the loop spins.
#[cfg(target_arch = "s390x")]
fn spin_with_live_registers(round: u64, iters: u64) -> u64 {
    use std::arch::asm;

    let value = |i: u64| {
        (round ^ 0x5eed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(i as u32)
            ^ i
    };
    let gp_in: [u64; 9] = std::array::from_fn(|i| value(i as u64));
    let f_in: [u64; 16] = std::array::from_fn(|i| value(100 + i as u64));
    let mut gp = gp_in;
    let mut f: [f64; 16] = f_in.map(f64::from_bits);
    // SAFETY: the asm only counts `n` down; every register it names is an
    // operand, so the compiler knows about all of them.
    unsafe {
        asm!(
            "2:",
            "brctg {n}, 2b",
            n = inout(reg) iters.max(1) => _,
            inout("r0") gp[0], inout("r1") gp[1], inout("r2") gp[2],
            inout("r3") gp[3], inout("r4") gp[4], inout("r5") gp[5],
            inout("r7") gp[6], inout("r8") gp[7], inout("r9") gp[8],
            inout("f0") f[0], inout("f1") f[1], inout("f2") f[2],
            inout("f3") f[3], inout("f4") f[4], inout("f5") f[5],
            inout("f6") f[6], inout("f7") f[7], inout("f8") f[8],
            inout("f9") f[9], inout("f10") f[10], inout("f11") f[11],
            inout("f12") f[12], inout("f13") f[13], inout("f14") f[14],
            inout("f15") f[15],
            options(nostack, nomem),
        );
    }
    let mut bad = 0u64;
    for i in 0..9 {
        if gp[i] != gp_in[i] {
            bad |= 1 << i;
        }
    }
    for i in 0..16 {
        if f[i].to_bits() != f_in[i] {
            bad |= 1 << (16 + i);
        }
    }
    bad
}

/// Elsewhere: a floating-point loop whose result is known.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
fn spin_with_live_registers(round: u64, iters: u64) -> u64 {
    let _ = round;
    let mut acc = 0f64;
    for i in 0..iters.min(1 << 20) {
        acc += std::hint::black_box((i % 7) as f64);
    }
    let n = iters.min(1 << 20);
    let expected: f64 = (0..n).map(|i| (i % 7) as f64).sum();
    u64::from(acc != expected)
}
