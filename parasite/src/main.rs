//! The parasite blob: code the tool injects into a seized task to collect
//! state from inside it.
//!
//! It is linked as a position-independent executable with one entry at offset
//! 0 (see `linker-scripts/`), and the tool copies it to an arbitrary address
//! and only adds that address at each `*_RELATIVE` relocation. That shapes
//! the rules for everything in this crate (and in `criu-arch` as compiled
//! here):
//!
//! - No calls out of the blob: no libc, no allocator, no `std`. System calls
//!   go through `criu_blob_rt::sys` (one function per system call, over
//!   `criu_arch::syscall*`: inline `syscall`/`svc`/`sc`).
//! - Pointers stored in statics are fine (the loader relocates them), but
//!   nothing may need a relocation other than the arch's RELATIVE one; the
//!   build fails otherwise, naming the relocation and the symbol.
//! - No reachable panics: index with `get`, no `unwrap`, no overflow traps.
//!   The build fails if the panic handler is still linked in.
//! - The memory functions the compiler calls come from `criu_blob_rt` as
//!   plain loops (`#![no_builtins]` keeps LLVM from turning them back into
//!   calls).
//! - Commands and argument blocks are `criu_blob_abi::parasite`, which core
//!   compiles too.
//! - The blob runs on a stack the tool provides; it keeps no state between
//!   commands except its own `.bss`.
#![no_std]
#![no_main]
#![no_builtins]

mod area;
mod cmds;
mod daemon;
mod sock;
mod uffd;

use core::hint::black_box;
use core::ptr::{addr_of, read_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use criu_blob_abi::parasite as abi;
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
pub unsafe extern "C" fn __export_parasite_entry(cmd: usize, args: *mut u8) -> isize {
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
        abi::CMD_INIT_DAEMON => daemon::run(args),
        abi::CMD_TRAP_DUMP_THREAD => {
            let mut area = area::Area {
                ptr: args,
                len: core::mem::size_of::<abi::ThreadArgs>(),
            };
            match area.get::<abi::ThreadArgs>() {
                Some(a) => cmds::dump_thread(a),
                None => abi::ERR_BAD_ARGS,
            }
        }
        // Only in the bad-relocation experiment: makes the bad slot reachable.
        #[cfg(criu_blob_bad_reloc)]
        0xbad => bad_reloc::read_slot() as isize,
        _ => abi::ERR_NO_COMMAND,
    }
}

pub(crate) fn ping(args: &mut abi::PingArgs) -> isize {
    // Volatile loads make the compiler read the pointers from the blob's data
    // instead of folding the statics' known initialisers into the code.
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

/// Compiled in only for the bad-relocation experiment
/// (`CRIU_BLOB_TEST_BAD_RELOC=1`, see README): a data word holding the
/// address of an undefined weak symbol. The loader could not resolve it, so
/// the build must fail naming the relocation and `criu_blob_bad_reloc_target`.
#[cfg(criu_blob_bad_reloc)]
mod bad_reloc {
    core::arch::global_asm!(
        ".weak criu_blob_bad_reloc_target",
        ".pushsection .data.criu_blob_bad_reloc,\"aw\"",
        ".balign 8",
        ".globl criu_blob_bad_reloc_slot",
        "criu_blob_bad_reloc_slot:",
        ".8byte criu_blob_bad_reloc_target",
        ".popsection",
    );

    unsafe extern "C" {
        static criu_blob_bad_reloc_slot: usize;
    }

    pub fn read_slot() -> usize {
        // SAFETY: the slot is an initialised 8-byte word defined above.
        unsafe { core::ptr::read_volatile(&raw const criu_blob_bad_reloc_slot) }
    }
}
