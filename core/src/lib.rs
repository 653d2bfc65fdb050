//! The checkpoint/restore library behind the `criu` and `crit` binaries.
//!
//! Layers, bottom to top. A module uses only modules of lower layers (and
//! its own submodules): never one of its own layer or above.
//! `tests/layers.rs` reads this list and fails on any `crate::` path
//! against it, and on files that import each other in a circle (here, in
//! the blobs and in `arch`).
//!
//! 1. `log` (records and the `pr_*!` macros)
//! 2. `fault` (fault injection for the tests)
//! 3. `opts`, `hooks` (configuration values; action scripts)
//! 4. `sys` (the small unsafe syscall layer)
//! 5. `blob` (the embedded parasite/restorer blobs, their ABIs from `criu-blob-abi`, and loader)
//! 6. `images` (CRIU's on-disk format)
//! 7. `proc`, `netlock` (reading /proc; locking the network with nftables or iptables)
//! 8. `vdso`, `page_server` (the vDSO's layout and symbols; CRIU's page server protocol, its sender and receiver)
//! 9. `check` (kernel feature probes)
//! 10. `infect` (ptrace injection, the compel part)
//! 11. `regs` (register sets to and from images)
//! 12. `mem` (memory: VMAs, pagemaps, page pipes)
//! 13. `files`, `ns`, `cgroups` (the object kinds; the namespaces and cgroups a dump takes)
//! 14. `dump`, `restore`, `coredump` (the two pipelines; core files from images)
//! 15. `service` (CRIU's RPC: `swrk` and the service daemon)
//!
//! The binaries (`bin/`) sit on top of all of them.
//!
//! Below the library, crates with one job each: `criu-arch` (per-arch
//! syscalls, registers, frames), `criu-blob-abi` (the blobs' commands and
//! argument blocks, shared with the blobs), and, for the blobs only,
//! `criu-blob-rt` (their runtime and typed system calls); `tests/layers.rs`
//! checks that graph too.
//!
//! `unsafe` is confined to `sys` and `blob` (and the `arch` crate, the blobs
//! and their runtime): the lint below refuses it anywhere else.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod blob;
pub mod cgroups;
pub mod check;
pub mod coredump;
pub mod dump;
pub mod fault;
pub mod files;
pub mod hooks;
pub mod images;
pub mod infect;
pub mod log;
pub mod mem;
pub mod netlock;
pub mod ns;
pub mod opts;
pub mod page_server;
pub mod proc;
pub mod regs;
pub mod restore;
pub mod service;
#[allow(unsafe_code)]
pub mod sys;
pub mod vdso;
