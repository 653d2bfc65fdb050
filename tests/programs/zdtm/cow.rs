//! Copy-on-write sharing between a parent and its children (CRIU's
//! ZDTM `cow00`/`cow01` in spirit, on a pre-fork server's scale).
//!
//! The root fills 16 MiB of private anonymous memory, each page with its
//! own pattern, and forks two children; child A forks grandchild G. Each
//! of A, B and G changes a few pages of the inherited area after its
//! fork (a pattern of its own); A also drops one page (MADV_DONTNEED, so
//! it reads zero in A and G). After restore:
//! - every task finds every byte as it was (the root its pattern, each
//!   child the parent's pages with its own changes);
//! - in every child, each page it did not change is the very page of its
//!   parent (same page frame in `/proc/PID/pagemap`, read as root), and
//!   each page it changed is a page of its own: the memory is shared
//!   copy-on-write as before the dump, not copied once per task;
//! - a write after restore is still private: each child writes pages it
//!   shares, and the root then finds its own pattern everywhere;
//! - the heap (`[heap]`, grown by malloc in the root before the forks)
//!   is shared too: most of its pages are the parent's frames.
#[path = "lib.rs"]
mod zdtm;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use criu_arch::nr;
use zdtm::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, page};

/// 16 MiB: 4096 pages of 4 KiB, 256 of 64 KiB (ppc64le). Filled and
/// checked byte by byte in every task, which under TCG (the VM tests)
/// takes long enough: 64 MiB missed the harness's 30 s ready wait.
const AREA: usize = 16 << 20;
/// The page indices below are under 256, the fewest pages the area has;
/// `LAST` stands for the area's last page.
const LAST: usize = usize::MAX;
const ROOT_SEED: u64 = 1;
const MADV_DONTNEED: usize = 4;
const PFN_MASK: u64 = (1 << 55) - 1;
const PRESENT: u64 = 1 << 63;

/// A task of the tree: its name, the pages it changed (with `seed`),
/// the page it dropped (if any), and its parent's own changes it sees.
#[derive(Clone, Copy)]
struct Role {
    name: &'static str,
    seed: u64,
    changed: &'static [usize],
    dropped: Option<usize>,
}

const A: Role = Role {
    name: "child A",
    seed: 11,
    changed: &[0, 1, 2, 100, LAST],
    dropped: Some(50),
};
const B: Role = Role {
    name: "child B",
    seed: 12,
    changed: &[3, 150],
    dropped: None,
};
const G: Role = Role {
    name: "grandchild G",
    seed: 13,
    changed: &[1, 200],
    dropped: None,
};

fn pages() -> usize {
    AREA / page()
}

impl Role {
    /// The pages it changed, `LAST` resolved.
    fn changed_pages(&self) -> impl Iterator<Item = usize> {
        self.changed
            .iter()
            .map(|&i| if i == LAST { pages() - 1 } else { i })
    }

    fn changes(&self, i: usize) -> bool {
        self.changed_pages().any(|c| c == i)
    }
}

/// The page `i` of the area.
fn page_at(area: usize, i: usize) -> &'static mut [u8] {
    // SAFETY: the area is our private read-write mapping for the whole
    // program; callers touch one page at a time.
    unsafe { zdtm::region(area + i * page(), page()) }
}

/// Whose pattern page `i` holds in a task whose ancestry (root first) is
/// `line`: a task's seed, or none for a dropped (zero) page.
fn expected_seed(line: &[Role], i: usize) -> Option<u64> {
    let mut seed = Some(ROOT_SEED);
    for r in line {
        if r.changes(i) {
            seed = Some(r.seed);
        } else if r.dropped == Some(i) {
            seed = None;
        }
    }
    seed
}

fn fill_page(area: usize, i: usize, seed: Option<u64>) {
    match seed {
        Some(s) => zdtm::fill_pattern(page_at(area, i), s * 100_000 + i as u64),
        None => page_at(area, i).fill(0),
    }
}

/// Every page of the area as a task of ancestry `line` should see it.
fn check_content(area: usize, line: &[Role], who: &str) -> Result<(), String> {
    for i in 0..pages() {
        let what = format!("{who}: page {i}");
        match expected_seed(line, i) {
            Some(s) => zdtm::check_pattern(&what, page_at(area, i), s * 100_000 + i as u64)?,
            None => zdtm::ensure(page_at(area, i).iter().all(|&b| b == 0), || {
                format!("{what}: dropped page is not zero")
            })?,
        }
    }
    Ok(())
}

/// Page frame numbers of the area in task `pid` (0: not present).
fn pfns(pid: u32, area: usize) -> Result<Vec<u64>, String> {
    pfns_of(pid, area, pages())
}

/// Page frame numbers of `n` pages from `start` in task `pid`.
fn pfns_of(pid: u32, start: usize, n: usize) -> Result<Vec<u64>, String> {
    let path = format!("/proc/{pid}/pagemap");
    let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut raw = vec![0u8; n * 8];
    f.read_exact_at(&mut raw, (start / page() * 8) as u64)
        .map_err(|e| format!("read {path}: {e}"))?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| {
            let e = u64::from_ne_bytes(c.try_into().unwrap());
            if e & PRESENT != 0 { e & PFN_MASK } else { 0 }
        })
        .collect())
}

/// The child `me` shares every page it did not change with its parent
/// and has its own copy of each one it changed.
fn check_shared(area: usize, me: &Role, parent: u32) -> Result<(), String> {
    let mine = pfns(std::process::id(), area)?;
    let theirs = pfns(parent, area)?;
    let mut copied = Vec::new();
    for i in 0..pages() {
        let changed = me.changes(i) || me.dropped == Some(i);
        if changed {
            zdtm::ensure(mine[i] == 0 || mine[i] != theirs[i], || {
                format!("{}: page {i} it changed is its parent's frame", me.name)
            })?;
        } else if theirs[i] != 0 && mine[i] != theirs[i] {
            copied.push(i);
        }
    }
    zdtm::ensure(theirs.iter().any(|&p| p != 0), || {
        format!("{}: no page frames in /proc/{parent}/pagemap", me.name)
    })?;
    zdtm::ensure(copied.is_empty(), || {
        format!(
            "{}: {} of {} unchanged pages are copies, not shared with parent {parent} (first: {:?})",
            me.name,
            copied.len(),
            pages(),
            &copied[..copied.len().min(8)]
        )
    })
}

/// Bytes the root puts on the heap before its forks. Through libc's
/// `sbrk`, so that malloc knows the break moved (a raw `brk` leaves its
/// cached break behind, and its next growth would cut the heap back).
const HEAP_BYTES: usize = 4 << 20;

unsafe extern "C" {
    fn sbrk(increment: isize) -> *mut std::ffi::c_void;
}

/// Grow the heap and fill what was added.
fn fill_heap() -> Result<(), String> {
    // SAFETY: sbrk(0) only reports the break.
    let cur = unsafe { sbrk(0) } as usize;
    let pad = cur.next_multiple_of(page()) - cur;
    // SAFETY: grows this process's heap by what we use; malloc keeps out
    // of it (it takes the break as moved by someone else).
    let got = unsafe { sbrk((pad + HEAP_BYTES) as isize) } as usize;
    zdtm::ensure(got == cur, || {
        format!("sbrk gave {got:#x}, break was {cur:#x}")
    })?;
    // SAFETY: the range just added to our heap, ours alone.
    zdtm::fill_pattern(unsafe { zdtm::region(cur + pad, HEAP_BYTES) }, 7_000_000);
    Ok(())
}

/// The `[heap]` range of this process.
fn heap_range() -> Result<(usize, usize), String> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    let line = maps
        .lines()
        .find(|l| l.ends_with("[heap]"))
        .ok_or("no [heap] in /proc/self/maps")?;
    let range = line.split(' ').next().unwrap_or("");
    let (a, b) = range.split_once('-').ok_or("bad maps line")?;
    let hex = |x: &str| usize::from_str_radix(x, 16).map_err(|e| e.to_string());
    Ok((hex(a)?, hex(b)?))
}

/// Most of the heap's pages are the parent's frames: at least three
/// quarters of what the root put there (the rest may have been written
/// by either since the fork).
fn check_heap_shared(me: &Role, parent: u32) -> Result<(), String> {
    let (start, end) = heap_range()?;
    let n = (end - start) / page();
    let mine = pfns_of(std::process::id(), start, n)?;
    let theirs = pfns_of(parent, start, n)?;
    let shared = mine
        .iter()
        .zip(&theirs)
        .filter(|(m, t)| **m != 0 && m == t)
        .count();
    let want = HEAP_BYTES / page() * 3 / 4;
    zdtm::ensure(shared >= want, || {
        format!(
            "{}: {shared} of {n} heap pages shared with parent {parent}, want at least {want}",
            me.name
        )
    })
}

/// After the checks: write shared pages; the parent must not see it.
fn write_after_restore(area: usize, me: &Role) {
    for i in [7, 120, pages() - 2] {
        page_at(area, i).fill(me.seed as u8);
    }
}

/// Fork a task of ancestry `line` (its own role last): it makes its
/// changes, forks `kids`, then after restore checks, writes, reaps.
fn spawn(dir: &Path, area: usize, line: &[Role], kids: &[Role]) -> Result<i32, String> {
    // SAFETY: this program is single-threaded: the child may do anything.
    let pid = unsafe { zdtm::fork(0) }?;
    if pid != 0 {
        return Ok(pid);
    }
    let me = *line.last().unwrap();
    let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
    let body = || -> Result<(), String> {
        for i in me.changed_pages() {
            fill_page(area, i, expected_seed(line, i));
        }
        if let Some(i) = me.dropped {
            // SAFETY: drops one page of our own private mapping.
            let r = unsafe {
                criu_arch::syscall3(nr::MADVISE, area + i * page(), page(), MADV_DONTNEED)
            };
            zdtm::errno(r, "madvise(MADV_DONTNEED)")?;
        }
        let mut pids = Vec::new();
        for k in kids {
            pids.push((spawn(dir, area, &[line, &[*k]].concat(), &[])?, k.name));
        }
        check_shared(area, &me, parent).map_err(|e| format!("before dump: {e}"))?;
        check_heap_shared(&me, parent).map_err(|e| format!("before dump: {e}"))?;
        // Set up (nothing of the check left open): the root may say ready.
        zdtm::write_atomic(&dir.join(format!("set-{}", me.seed)), "")?;
        zdtm::wait_go(dir)?;
        check_content(area, line, me.name)?;
        check_shared(area, &me, parent)?;
        check_heap_shared(&me, parent)?;
        // Its children check against it first; then it writes.
        for (pid, name) in pids {
            zdtm::reap_ok(dir, pid, name)?;
        }
        write_after_restore(area, &me);
        Ok(())
    };
    let code = match body() {
        Ok(()) => 0,
        Err(e) => {
            let me = std::process::id();
            let _ = zdtm::write_atomic(&dir.join(format!("fail-{me}")), &e);
            1
        }
    };
    // SAFETY: ends this (forked) process only.
    unsafe { criu_arch::syscall1(nr::EXIT_GROUP, code) };
    unreachable!("exit_group returned")
}

struct State {
    dir: std::path::PathBuf,
    area: usize,
    kids: Vec<(i32, &'static str)>,
}

fn main() {
    zdtm::run(
        |args| {
            let area = zdtm::mmap(
                0,
                AREA,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
                -1,
                0,
            )?;
            for i in 0..pages() {
                fill_page(area, i, Some(ROOT_SEED));
            }
            fill_heap()?;
            let a = spawn(&args.dir, area, &[A], &[G])?;
            let b = spawn(&args.dir, area, &[B], &[])?;
            let start = Instant::now();
            for r in [A, B, G] {
                let set = args.dir.join(format!("set-{}", r.seed));
                while !set.exists() {
                    zdtm::ensure(start.elapsed() < Duration::from_secs(60), || {
                        format!("{} not set up within 60 s", r.name)
                    })?;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(State {
                dir: args.dir.clone(),
                area,
                kids: vec![(a, A.name), (b, B.name)],
            })
        },
        |_| {},
        |s| {
            check_content(s.area, &[], "root")?;
            for (pid, name) in &s.kids {
                zdtm::reap_ok(&s.dir, *pid, name)?;
            }
            // The children wrote shared pages after restore: not here.
            check_content(s.area, &[], "root after the children wrote")
        },
    );
}
