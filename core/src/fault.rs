//! Fault injection, for the tests that prove a failure anywhere leaves the
//! dumped task unharmed and a failed restore leaves nothing behind.
//!
//! Two switches, both environment variables read once per process:
//! - `CRIU_FAULT=N` (CRIU's variable) fails the numbered *point* `N`: a
//!   stage boundary of dump or restore, named in [`POINTS`]-style tables
//!   that `dump` and `restore` own (dump steps are numbered from
//!   [`DUMP_BASE`], restore stages from [`RESTORE_BASE`]). The older
//!   by-name variables (`CRIU_DUMP_FAULT=<step>`, `CRIU_RESTORE_FAULT=<stage>`)
//!   still work.
//! - `CRIU_FAULT_SYSCALL=N` fails the `N`th fallible call the tool makes
//!   on the task or the images (every ptrace request, every syscall run
//!   inside the task, every image file created and every image write),
//!   counted from 1 in the order they happen, with the errno such a call
//!   really fails with (`EIO`, `ENOSPC`). Calls made to undo what a dump
//!   did (restoring code and registers, detaching) are not counted: a
//!   failure there is not one a dump can recover from, while every call
//!   before it is. A test walks `N = 1, 2, ...` until the dump succeeds.
//!
//! This module imports nothing of ours but the log, so the syscall layer
//! can use it.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::io::Errno;

/// `CRIU_FAULT` numbers of dump steps start here (`DUMP_BASE + i` is step
/// `i` of `dump::FAULT_STEPS`).
pub const DUMP_BASE: u32 = 1;
/// `CRIU_FAULT` numbers of restore stages start here (`RESTORE_BASE + i`
/// is stage `i` of `restore::FAULT_STAGES`).
pub const RESTORE_BASE: u32 = 101;

/// The `CRIU_FAULT` point number, if set to a number.
pub fn point() -> Option<u32> {
    static POINT: OnceLock<Option<u32>> = OnceLock::new();
    *POINT.get_or_init(|| std::env::var("CRIU_FAULT").ok()?.trim().parse().ok())
}

/// Whether the fault is injected at entry `index` of a point table whose
/// numbers start at `base`, or at the point named `name` through the
/// by-name variable `by_name_env`.
pub fn at(base: u32, index: usize, name: &str, by_name_env: &str) -> bool {
    if point().is_some_and(|n| u64::from(n) == u64::from(base) + index as u64) {
        return true;
    }
    std::env::var(by_name_env).is_ok_and(|v| v == name)
}

/// `CRIU_FILL_FAULT=take|copy` (tests): the tool's filling of a task's
/// memory (`restore/launch/fill.rs`) fails at that step: `take` as if the
/// task's userfaultfd could not be taken (the task then reads its pages
/// itself, and the restore goes on), `copy` as if a copy failed (the
/// restore fails).
pub fn fill(step: &str) -> bool {
    static STEP: OnceLock<Option<String>> = OnceLock::new();
    STEP.get_or_init(|| std::env::var("CRIU_FILL_FAULT").ok())
        .as_deref()
        == Some(step)
}

fn syscall_target() -> Option<u64> {
    static TARGET: OnceLock<Option<u64>> = OnceLock::new();
    *TARGET.get_or_init(|| {
        std::env::var("CRIU_FAULT_SYSCALL")
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

/// Fallible calls counted so far (see the module comment).
static CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Depth of [`Undo`] sections on this thread.
    static UNDOING: Cell<u32> = const { Cell::new(0) };
}

/// Counts one fallible call (`what`, for the log) and fails it with
/// `errno` if it is the one `CRIU_FAULT_SYSCALL` names.
pub fn call(what: &dyn std::fmt::Display, errno: Errno) -> Result<(), Errno> {
    let Some(target) = syscall_target() else {
        return Ok(());
    };
    if UNDOING.with(Cell::get) > 0 {
        return Ok(());
    }
    let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    if n == target {
        crate::pr_warn!("CRIU_FAULT_SYSCALL: failing call {n} ({what}) with {errno}");
        return Err(errno);
    }
    Ok(())
}

/// How many fallible calls were counted (with `CRIU_FAULT_SYSCALL` set).
pub fn calls() -> u64 {
    CALLS.load(Ordering::Relaxed)
}

/// While alive, calls on this thread are undo steps and are not counted
/// nor failed (see the module comment).
#[must_use = "the section ends when this is dropped"]
pub struct Undo(());

impl Undo {
    pub fn enter() -> Self {
        UNDOING.with(|u| u.set(u.get() + 1));
        Undo(())
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        UNDOING.with(|u| u.set(u.get().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_sections_nest() {
        let a = Undo::enter();
        let b = Undo::enter();
        drop(a);
        assert_eq!(UNDOING.with(Cell::get), 1);
        drop(b);
        assert_eq!(UNDOING.with(Cell::get), 0);
    }
}
