//! Mappings with per-VMA advice and mapping types that a restore must
//! bring back (`vma_entry.madv` and `flags`), in a task with a child
//! forked before the dump (CRIU's maps11, extended):
//!
//! - `MADV_WIPEONFORK` (`wf`), `MADV_DONTFORK` (`dc`), `MADV_DONTDUMP`
//!   (`dd`), `MADV_HUGEPAGE` (`hg`), `MADV_NOHUGEPAGE` (`nh`),
//!   `MADV_MERGEABLE` (`mg`), `MADV_SEQUENTIAL` (`sr`), `MADV_RANDOM`
//!   (`rr`) and an `mlock`ed region (`lo`): each region keeps its VmFlag
//!   and its data;
//! - a `MAP_DROPPABLE` region (`dp`, Linux 6.11+; given as the first
//!   argument `droppable`): a droppable mapping again, and empty, as CRIU
//!   4.2 restores it (its pages are never dumped: the kernel may drop them
//!   at any time anyway);
//! - guard regions (`MADV_GUARD_INSTALL`, Linux 6.13+; argument `guard`),
//!   each in a 4-page region with pattern data: page 1 of a private
//!   anonymous one; pages 1-2 of one whose last two pages are don't-dump
//!   (two VMAs: the guard run crosses from one into the next);
//!   page 2 of a shared anonymous one (6.15+; argument `guard-shared`).
//!   After restore the guard pages still fault (a `write` from them fails
//!   with EFAULT), the others keep their data and the VMAs are unchanged.
//!
//! Child 1 is forked before the dump: its wipe-on-fork region was wiped
//! by that fork, then it wrote a pattern of its own there, which must come
//! back; its copy has no don't-fork region. After restore the root forks
//! child 2, which must find the wipe-on-fork and droppable regions zeroed
//! and no don't-fork region: the advice acts again.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::AsRawFd;

use criu_arch::nr;
use linux_raw_sys::general::MADV_DONTDUMP;
use linux_raw_sys::general::MADV_GUARD_INSTALL;
use zdtm::{MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, page};

const PAGES: usize = 4;
const MAP_DROPPABLE: usize = 0x08;

/// (name, madvise advice or `MLOCK`, VmFlag).
const ADVICE: &[(&str, usize, &str)] = &[
    ("wipeonfork", 18, "wf"),
    ("dontfork", 10, "dc"),
    ("dontdump", 16, "dd"),
    ("hugepage", 14, "hg"),
    ("nohugepage", 15, "nh"),
    ("mergeable", 12, "mg"),
    ("sequential", 2, "sr"),
    ("random", 1, "rr"),
    ("mlock", MLOCK, "lo"),
];
/// Not an advice: the region is `mlock`ed.
const MLOCK: usize = usize::MAX;
const WIPE: usize = 0;
const DONTFORK: usize = 1;
/// Child 1's pattern in its wipe-on-fork region.
const CHILD_SEED: u64 = 990;
/// The guarded regions' patterns are this plus their index.
const GUARD_SEED: u64 = 991;

const DONTDUMP: usize = MADV_DONTDUMP as usize;

/// A 4-page region with guard pages.
struct Guarded {
    what: &'static str,
    addr: usize,
    /// The guard pages (indices).
    guards: std::ops::Range<usize>,
    /// The VMAs the region is made of: (first page, pages, perms).
    vmas: &'static [(usize, usize, &'static str)],
}

struct State {
    dir: std::path::PathBuf,
    regions: Vec<usize>,
    droppable: Option<usize>,
    guarded: Vec<Guarded>,
    child: i32,
}

fn len() -> usize {
    PAGES * page()
}

fn seed(i: usize) -> u64 {
    900 + i as u64
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let regions = zdtm::map_separate(&vec![len(); ADVICE.len()], MAP_PRIVATE | MAP_ANONYMOUS)?;
    for (i, (&(name, advice, _), &addr)) in ADVICE.iter().zip(&regions).enumerate() {
        // SAFETY: our fresh read-write mapping.
        zdtm::fill_pattern(unsafe { zdtm::region(addr, len()) }, seed(i));
        let ret = if advice == MLOCK {
            // SAFETY: locks pages of our own mapping.
            unsafe { criu_arch::syscall2(nr::MLOCK, addr, len()) }
        } else {
            // SAFETY: advice on our own mapping; none of these discards data.
            unsafe { criu_arch::syscall3(nr::MADVISE, addr, len(), advice) }
        };
        zdtm::errno(ret, name)?;
    }
    let guarded = guarded_regions(args)?;
    let droppable = if args.rest.iter().any(|a| a == "droppable") {
        let addr = zdtm::map_separate(&[len()], MAP_DROPPABLE | MAP_ANONYMOUS)?[0];
        // SAFETY: our fresh read-write mapping.
        zdtm::fill_pattern(unsafe { zdtm::region(addr, len()) }, 999);
        Some(addr)
    } else {
        None
    };
    let dir = args.dir.clone();
    let (wipe, dontfork) = (regions[WIPE], regions[DONTFORK]);
    let child = zdtm::child(&args.dir, move || {
        // SAFETY: the wipe-on-fork region, inherited (wiped) by this fork.
        let mem = unsafe { zdtm::region(wipe, len()) };
        zero("child 1's wipe-on-fork region after its fork", mem)?;
        zdtm::fill_pattern(mem, CHILD_SEED);
        zdtm::wait_go(&dir)?;
        zdtm::check_pattern("child 1's own wipe-on-fork data", mem, CHILD_SEED)?;
        has_flag("child 1's wipe-on-fork region", wipe, "wf")?;
        not_mapped("child 1", dontfork)
    })?;
    for (&(name, _, flag), &addr) in ADVICE.iter().zip(&regions) {
        has_flag(name, addr, flag)?;
    }
    if let Some(d) = droppable {
        has_flag("droppable", d, "dp")?;
    }
    Ok(State {
        dir: args.dir.clone(),
        regions,
        droppable,
        guarded,
        child,
    })
}

/// The guarded regions the arguments ask for, set up and checked once.
fn guarded_regions(args: &zdtm::Args) -> Result<Vec<Guarded>, String> {
    let has = |a: &str| args.rest.iter().any(|x| x == a);
    let mut out = Vec::new();
    if has("guard") {
        let private = zdtm::map_separate(&[len()], MAP_PRIVATE | MAP_ANONYMOUS)?[0];
        out.push(Guarded {
            what: "private guarded region",
            addr: private,
            guards: 1..2,
            vmas: &[(0, PAGES, "rw-p")],
        });
        let split = zdtm::map_separate(&[len()], MAP_PRIVATE | MAP_ANONYMOUS)?[0];
        out.push(Guarded {
            what: "guarded region across two VMAs",
            addr: split,
            guards: 1..3,
            vmas: &[(0, 2, "rw-p"), (2, 2, "rw-p")],
        });
    }
    if has("guard-shared") {
        let shared = zdtm::map_separate(&[len()], MAP_SHARED | MAP_ANONYMOUS)?[0];
        out.push(Guarded {
            what: "shared guarded region",
            addr: shared,
            guards: 2..3,
            vmas: &[(0, PAGES, "rw-s")],
        });
    }
    for (i, g) in out.iter().enumerate() {
        // SAFETY: our fresh read-write mapping.
        zdtm::fill_pattern(
            unsafe { zdtm::region(g.addr, len()) },
            GUARD_SEED + i as u64,
        );
        // Later VMAs are split off the first by an advice.
        for &(first, pages, _) in g.vmas.iter().skip(1) {
            // SAFETY: advice on pages of our own mapping; it discards nothing.
            let ret = unsafe {
                criu_arch::syscall3(
                    nr::MADVISE,
                    g.addr + first * page(),
                    pages * page(),
                    DONTDUMP,
                )
            };
            zdtm::errno(ret, &format!("{}: MADV_DONTDUMP", g.what))?;
        }
        let at = g.addr + g.guards.start * page();
        let guard_len = g.guards.len() * page();
        // SAFETY: turns pages of our own mapping into guard pages.
        let ret =
            unsafe { criu_arch::syscall3(nr::MADVISE, at, guard_len, MADV_GUARD_INSTALL as usize) };
        zdtm::errno(ret, &format!("{}: MADV_GUARD_INSTALL", g.what))?;
        check_guarded(g, GUARD_SEED + i as u64)?;
    }
    Ok(out)
}

/// The guard pages of `g` fault, the others hold pattern `seed`, and the
/// VMAs are as they were made.
fn check_guarded(g: &Guarded, seed: u64) -> Result<(), String> {
    for &(first, pages, perms) in g.vmas {
        zdtm::expect_vma(g.what, g.addr + first * page(), pages * page(), perms)?;
    }
    let mut want = vec![0u8; len()];
    zdtm::fill_pattern(&mut want, seed);
    for p in 0..PAGES {
        let at = g.addr + p * page();
        if g.guards.contains(&p) {
            guard_faults(at).map_err(|e| format!("{}: page {p}: {e}", g.what))?;
            continue;
        }
        // SAFETY: a page of our mapping that is not a guard.
        let mem = unsafe { zdtm::region(at, page()) };
        zdtm::ensure(mem == &want[p * page()..][..page()], || {
            format!("{}: page {p} lost its data", g.what)
        })?;
    }
    Ok(())
}

/// A `write` from the guard page at `addr` fails with EFAULT.
fn guard_faults(addr: usize) -> Result<(), String> {
    let (_r, w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the kernel reads one byte at `addr` (it faults: a guard).
    let ret = unsafe { criu_arch::syscall3(nr::WRITE, w.as_raw_fd() as usize, addr, 1) };
    zdtm::ensure(ret == -14, || {
        format!("a write from the guard page returned {ret}, want -EFAULT")
    })
}

fn check(s: State) -> Result<(), String> {
    for (i, (&(name, _, flag), &addr)) in ADVICE.iter().zip(&s.regions).enumerate() {
        zdtm::expect_vma(name, addr, len(), "rw-p")?;
        has_flag(name, addr, flag)?;
        // SAFETY: checked above: our read-write mapping.
        zdtm::check_pattern(name, unsafe { zdtm::region(addr, len()) }, seed(i))?;
    }
    if let Some(d) = s.droppable {
        zdtm::expect_vma("droppable", d, len(), "rw-p")?;
        has_flag("droppable", d, "dp")?;
        // SAFETY: checked above: our read-write mapping.
        zero("droppable region after restore", unsafe {
            zdtm::region(d, len())
        })?;
        // Usable again: what is written now stays (no memory pressure).
        // SAFETY: as above.
        zdtm::fill_pattern(unsafe { zdtm::region(d, len()) }, 998);
    }
    for (i, g) in s.guarded.iter().enumerate() {
        check_guarded(g, GUARD_SEED + i as u64)?;
    }
    zdtm::reap_ok(&s.dir, s.child, "child 1")?;
    // A fork now: the advice must act.
    let (wipe, dontfork, droppable) = (s.regions[WIPE], s.regions[DONTFORK], s.droppable);
    let c2 = zdtm::child(&s.dir, move || {
        // SAFETY: the inherited wipe-on-fork region.
        zero("child 2's wipe-on-fork region", unsafe {
            zdtm::region(wipe, len())
        })?;
        if let Some(d) = droppable {
            // SAFETY: the inherited droppable region (wiped on fork too).
            zero("child 2's droppable region", unsafe {
                zdtm::region(d, len())
            })?;
        }
        not_mapped("child 2", dontfork)
    })?;
    zdtm::reap_ok(&s.dir, c2, "child 2")?;
    // The fork did not touch the parent's data.
    // SAFETY: our read-write mapping, checked above.
    zdtm::check_pattern(
        "wipe-on-fork region after a fork",
        unsafe { zdtm::region(wipe, len()) },
        seed(WIPE),
    )
}

fn has_flag(what: &str, addr: usize, flag: &str) -> Result<(), String> {
    let flags = zdtm::vm_flags(addr).map_err(|e| format!("{what}: {e}"))?;
    zdtm::ensure(flags.iter().any(|f| f == flag), || {
        format!("{what}: VmFlags {flags:?} lack {flag}")
    })
}

fn zero(what: &str, mem: &[u8]) -> Result<(), String> {
    match mem.iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: byte {i} is {:#04x}, want 0", mem[i])),
    }
}

fn not_mapped(who: &str, addr: usize) -> Result<(), String> {
    match zdtm::vma_at(addr) {
        Err(_) => Ok(()),
        Ok(v) => Err(format!(
            "{who}: the don't-fork region is mapped ({:#x}-{:#x} {})",
            v.start, v.end, v.perms
        )),
    }
}
