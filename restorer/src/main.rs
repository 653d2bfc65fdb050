//! The restorer blob: the code a restored task jumps into once the tool has
//! set up its files; it unmaps the tool, maps the task's memory back, and
//! ends in `rt_sigreturn` into the restored registers.
//!
//! Commands (see `abi`): `RESTORE` (module `restore`: fork the task with its
//! PID and rebuild it), and `PING`, which exercises the whole pipeline:
//! build, relocation at an arbitrary address, a raw system call, data
//! reached through relocated pointers, and writable `.bss`.
//!
//! The rules are the parasite's (see `parasite/src/main.rs`): no calls out of
//! the blob, only RELATIVE relocations, no reachable panics, memory functions
//! from `criu_blob_rt` as plain loops, system calls through
//! `criu_blob_rt::sys`, and a stack provided by the caller. Commands and
//! argument blocks are `criu_blob_abi::restorer`, which core compiles too.
#![no_std]
#![no_main]
#![no_builtins]

mod restore;

use core::hint::black_box;
use core::ptr::{addr_of, read_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use criu_blob_abi::restorer as abi;
use criu_blob_rt::sys;

/// The message `PING` writes, behind a pointer stored in data (so reaching it
/// needs the relocation of that pointer).
static PING_MESSAGE: &[u8] = abi::PING_MESSAGE;

static PING_VALUE_0: u64 = abi::PING_VALUES[0];
static PING_VALUE_1: u64 = abi::PING_VALUES[1];
static PING_VALUE_2: u64 = abi::PING_VALUES[2];

/// A table of pointers to statics: each entry is a RELATIVE relocation.
static PING_TABLE: [&u64; 3] = [&PING_VALUE_0, &PING_VALUE_1, &PING_VALUE_2];

/// How many times `PING` ran in this copy of the blob (lives in `.bss`).
static PING_COUNT: AtomicU64 = AtomicU64::new(0);

/// The blob's only entry point, placed at offset 0 by the linker script.
///
/// # Safety
/// `args` points to the argument block `cmd` expects (see `abi`), valid for
/// reads and writes for the duration of the call.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".head.text")]
pub unsafe extern "C" fn __export_restorer_entry(cmd: usize, args: *mut u8) -> isize {
    match cmd {
        abi::CMD_PING => {
            let args = args.cast::<abi::PingArgs>();
            if args.is_null() || !args.is_aligned() {
                return abi::ERR_BAD_ARGS;
            }
            // SAFETY: non-null and aligned, and the caller passes a valid
            // PingArgs for CMD_PING.
            ping(unsafe { &mut *args })
        }
        abi::CMD_RESTORE => {
            let args = args.cast::<abi::RestoreArgs>();
            if args.is_null() || !args.is_aligned() {
                return abi::ERR_BAD_ARGS;
            }
            // SAFETY: non-null and aligned; the tool passes a RestoreArgs
            // inside the bootstrap region for CMD_RESTORE.
            restore::start(unsafe { &mut *args })
        }
        abi::CMD_RESTORE_CHILD => {
            let args = args.cast::<abi::RestoreArgs>();
            if args.is_null() || !args.is_aligned() {
                return abi::ERR_BAD_ARGS;
            }
            // SAFETY: non-null and aligned; the parent's restorer passes
            // the RestoreArgs of this task's own region.
            restore::start_child(unsafe { &mut *args })
        }
        _ => abi::ERR_NO_COMMAND,
    }
}

fn ping(args: &mut abi::PingArgs) -> isize {
    // A volatile load makes the compiler read the pointer from the blob's
    // data instead of folding the static's known initialiser into the code.
    // SAFETY: reading an initialised immutable static.
    let message: &[u8] = unsafe { read_volatile(addr_of!(PING_MESSAGE)) };
    // SAFETY: write(2) reads `message.len()` bytes of a live slice; a bad fd
    // only makes the kernel return -EBADF.
    let written = unsafe { sys::write(args.fd as usize, message.as_ptr() as usize, message.len()) };
    args.written = written as i64;
    args.count = PING_COUNT.fetch_add(1, Ordering::Relaxed).wrapping_add(1);

    // Hiding the table's address keeps LLVM from rewriting it into a table
    // of link-time offsets: the pointers must be loaded as relocated.
    let table: &[&u64; 3] = black_box(&PING_TABLE);
    match table.get(args.index as usize) {
        Some(value) => **value as isize,
        None => abi::ERR_BAD_ARGS,
    }
}
