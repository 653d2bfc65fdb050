//! Memory that changes between the rounds of an iterative dump (pre-dump,
//! pre-dump, final dump). The harness asks for each change by creating
//! `DIR/phaseN`; the program makes it and answers with `DIR/phaseN.done`.
//! At `go` it reads `DIR/phases` (how many phases the harness ran, not
//! taken from its own memory) and checks every page against what those
//! phases leave:
//!
//! - `A`, 64 pages, each with pattern (page, generation): all gen 0 at
//!   the start; phase 1 writes pages 0-7 (gen 1); phase 2 writes 4-11 and
//!   60 (gen 2) and drops page 30 (`MADV_DONTNEED`: zero after).
//! - `B`, 16 pages: unmapped in phase 1 (must stay unmapped).
//! - `C`, 16 pages: made read-only in phase 1 (no writes), read-write
//!   again in phase 2, page 3 written (gen 2).
//! - `D`, 8 pages: mapped in phase 1 (gen 1), page 2 rewritten in phase 2.
//! - `E`, 8 pages: unmapped and mapped again at the same address in
//!   phase 2 with new contents (gen 3): a VMA the parent never saw at an
//!   address it had.
//! - `F`, 8 pages: moved with `mremap` in phase 1 (same contents, gen 0).
#[path = "lib.rs"]
mod zdtm;

use zdtm::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_EXEC, PROT_READ, PROT_WRITE, page};

const MADV_NOHUGEPAGE: usize = 15;
const MADV_DONTNEED: usize = 4;
const MREMAP_MAYMOVE: usize = 1;
const MREMAP_FIXED: usize = 2;

const A: usize = 64;
const B: usize = 16;
const C: usize = 16;
const D: usize = 8;
const E: usize = 8;
const F: usize = 8;

/// Pattern seed of page `p` of region `r` at generation `g`.
fn seed(r: u64, p: usize, g: u64) -> u64 {
    r << 32 | (p as u64) << 8 | g
}

struct State {
    a: usize,
    b: usize,
    c: usize,
    /// Where D goes (reserved execute-only until phase 1).
    d: usize,
    e: usize,
    f: usize,
    /// Where F moves in phase 1.
    f_to: usize,
    phase: u32,
    dir: std::path::PathBuf,
}

fn pages(addr: usize, n: usize) -> &'static mut [u8] {
    // SAFETY: a read-write region of this program, mapped for its whole
    // life (or until a phase unmaps it, after which it is never used).
    unsafe { zdtm::region(addr, n * page()) }
}

fn fill(addr: usize, r: u64, p: usize, g: u64) {
    zdtm::fill_pattern(&mut pages(addr, p + 1)[p * page()..], seed(r, p, g));
}

fn madvise(addr: usize, len: usize, advice: usize) -> Result<(), String> {
    // SAFETY: advice on this program's own mappings.
    let ret = unsafe { criu_arch::syscall3(criu_arch::nr::MADVISE, addr, len, advice) };
    zdtm::errno(ret, "madvise").map(drop)
}

fn setup(dir: std::path::PathBuf) -> Result<State, String> {
    let pg = page();
    // Guards (execute-only) keep the regions from merging; D and F's
    // target are reserved execute-only for now.
    let r = zdtm::map_separate(
        &[A * pg, B * pg, C * pg, D * pg, E * pg, F * pg, F * pg],
        MAP_PRIVATE | MAP_ANONYMOUS,
    )?;
    let s = State {
        a: r[0],
        b: r[1],
        c: r[2],
        d: r[3],
        e: r[4],
        f: r[5],
        f_to: r[6],
        phase: 0,
        dir,
    };
    zdtm::mmap(
        s.d,
        D * pg,
        PROT_EXEC,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        -1,
        0,
    )?;
    zdtm::mmap(
        s.f_to,
        F * pg,
        PROT_EXEC,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        -1,
        0,
    )?;
    for (addr, n, region) in [
        (s.a, A, 0),
        (s.b, B, 1),
        (s.c, C, 2),
        (s.e, E, 4),
        (s.f, F, 5),
    ] {
        madvise(addr, n * pg, MADV_NOHUGEPAGE)?;
        for p in 0..n {
            fill(addr, region, p, 0);
        }
    }
    Ok(s)
}

fn phase1(s: &mut State) -> Result<(), String> {
    let pg = page();
    for p in 0..8 {
        fill(s.a, 0, p, 1);
    }
    zdtm::munmap(s.b, B * pg)?;
    // Unmapped but reserved, so nothing else lands there.
    zdtm::mmap(
        s.b,
        B * pg,
        PROT_EXEC,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        -1,
        0,
    )?;
    zdtm::mprotect(s.c, C * pg, PROT_READ)?;
    zdtm::mmap(
        s.d,
        D * pg,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        -1,
        0,
    )?;
    madvise(s.d, D * pg, MADV_NOHUGEPAGE)?;
    for p in 0..D {
        fill(s.d, 3, p, 1);
    }
    // SAFETY: moves this program's own F onto its own reservation.
    let ret = unsafe {
        criu_arch::syscall5(
            criu_arch::nr::MREMAP,
            s.f,
            F * pg,
            F * pg,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            s.f_to,
        )
    };
    zdtm::errno(ret, "mremap")?;
    zdtm::mmap(
        s.f,
        F * pg,
        PROT_EXEC,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        -1,
        0,
    )?;
    Ok(())
}

fn phase2(s: &mut State) -> Result<(), String> {
    let pg = page();
    for p in (4..12).chain([60]) {
        fill(s.a, 0, p, 2);
    }
    madvise(s.a + 30 * pg, pg, MADV_DONTNEED)?;
    zdtm::mprotect(s.c, C * pg, PROT_READ | PROT_WRITE)?;
    fill(s.c, 2, 3, 2);
    fill(s.d, 3, 2, 2);
    zdtm::munmap(s.e, E * pg)?;
    zdtm::mmap(
        s.e,
        E * pg,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        -1,
        0,
    )?;
    madvise(s.e, E * pg, MADV_NOHUGEPAGE)?;
    for p in 0..E {
        fill(s.e, 4, p, 3);
    }
    Ok(())
}

/// The generation page `p` of region `r` has after `phases` phases (0:
/// zero page).
fn expected(r: u64, p: usize, phases: u32) -> Option<u64> {
    match (r, phases) {
        (0, 2..) if p == 30 => None,
        (0, 2..) if (4..12).contains(&p) || p == 60 => Some(2),
        (0, 1..) if p < 8 => Some(1),
        (2, 2..) if p == 3 => Some(2),
        (3, 2..) if p == 2 => Some(2),
        (3, _) => Some(1),
        (4, 2..) => Some(3),
        _ => Some(0),
    }
}

fn check_region(what: &str, addr: usize, n: usize, r: u64, phases: u32) -> Result<(), String> {
    let mem = pages(addr, n);
    for p in 0..n {
        let buf = &mem[p * page()..][..page()];
        match expected(r, p, phases) {
            Some(g) => {
                zdtm::check_pattern(&format!("{what} page {p} (gen {g})"), buf, seed(r, p, g))?
            }
            None => zdtm::ensure(buf.iter().all(|&b| b == 0), || {
                format!("{what} page {p} not zero")
            })?,
        }
    }
    Ok(())
}

fn check(s: State) -> Result<(), String> {
    let phases: u32 = std::fs::read_to_string(s.dir.join("phases"))
        .map_err(|e| format!("phases: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("phases: {e}"))?;
    zdtm::ensure(phases == s.phase, || {
        format!("harness ran {phases} phases, program {}", s.phase)
    })?;
    let pg = page();
    zdtm::expect_vma("A", s.a, A * pg, "rw-p")?;
    check_region("A", s.a, A, 0, phases)?;
    if phases >= 1 {
        // Its reservation merges with the guards around it.
        let b = zdtm::vma_at(s.b)?;
        zdtm::ensure(b.perms == "--xp" && b.end >= s.b + B * pg, || {
            format!(
                "B: {:#x}-{:#x} {}, want unmapped (--xp)",
                b.start, b.end, b.perms
            )
        })?;
        zdtm::expect_vma("F (moved)", s.f_to, F * pg, "rw-p")?;
        check_region("F", s.f_to, F, 5, phases)?;
        check_region("D", s.d, D, 3, phases)?;
    } else {
        check_region("B", s.b, B, 1, phases)?;
        check_region("F", s.f, F, 5, phases)?;
    }
    let c_prot = if phases == 1 { "r--p" } else { "rw-p" };
    zdtm::expect_vma("C", s.c, C * pg, c_prot)?;
    check_region("C", s.c, C, 2, phases)?;
    check_region("E", s.e, E, 4, phases)?;
    Ok(())
}

fn main() {
    zdtm::run(
        |args| setup(args.dir.clone()),
        |s| {
            let next = s.phase + 1;
            let dir = s.dir.clone();
            let ask = dir.join(format!("phase{next}"));
            if !ask.exists() {
                return;
            }
            let r = match next {
                1 => phase1(s),
                2 => phase2(s),
                _ => Err(format!("no phase {next}")),
            };
            s.phase = next;
            let text = match r {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("FAIL: {e}"),
            };
            let _ = zdtm::write_atomic(&dir.join(format!("phase{next}.done")), &text);
        },
        check,
    );
}
