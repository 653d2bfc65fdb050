//! The checkpoint/restore library behind the `criu` and `crit` binaries.
//!
//! Layers, bottom to top (a module uses only what is below it):
//! `sys` (the small unsafe syscall layer) → `blob` (embedded parasite/restorer
//! blobs and their loader) → `images` (CRIU's on-disk format) → `check`
//! (kernel feature probes) → `infect` (ptrace injection, the compel part) →
//! object kinds → `dump` / `restore` → `service` → binaries.

pub mod blob;
pub mod check;
pub mod dump;
pub mod fault;
pub mod files;
pub mod hooks;
pub mod images;
pub mod infect;
pub mod log;
pub mod mem;
pub mod opts;
pub mod proc;
pub mod regs;
pub mod restore;
pub mod service;
pub mod sys;
pub mod vdso;
