//! The freestanding runtime of the blobs (parasite and restorer): the
//! memory functions the compiler may call, the panic handler, and [`sys`],
//! the typed system calls the blobs make.
//!
//! Built only inside the nested blob build (`core/build/blobs.rs`), never for
//! the host tool: its panic handler and unmangled memory functions would
//! clash with std's. Both blobs depend on it, so they follow the same rules:
//!
//! - This crate is `#![no_builtins]`: otherwise LLVM may recognise the loops
//!   below as `memcpy`/`memset` idioms and turn them into calls to
//!   themselves. For the same reason they are written as plain byte loops,
//!   never with `copy_nonoverlapping`/`write_bytes` (which lower to those
//!   very calls).
//! - `compiler_builtins` provides no memory functions on `-linux-gnu`
//!   targets, and a blob links no libc, so these are the only ones.
//! - A blob must have no reachable panic. The build (`core/build/blobs.rs`)
//!   fails if the panic handler survives dead-code elimination, so the
//!   handler below only exists to satisfy the language; should it ever run,
//!   it stops the thread with the architecture's trap instruction, which the
//!   tool sees as a `SIGTRAP` instead of the victim running on in a bad state.
#![no_std]
#![no_builtins]

pub mod sys;

/// `memcpy`, as the compiler expects it. Regions must not overlap.
///
/// # Safety
/// `dst` and `src` are valid for `n` bytes and do not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and the caller guarantees both ranges are valid.
        unsafe { *dst.add(i) = *src.add(i) };
        i += 1;
    }
    dst
}

/// `memmove`: like [`memcpy`], but the regions may overlap.
///
/// # Safety
/// `dst` and `src` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) {
        // Copying forwards never overwrites a source byte not yet read.
        let mut i = 0;
        while i < n {
            // SAFETY: i < n and the caller guarantees both ranges are valid.
            unsafe { *dst.add(i) = *src.add(i) };
            i += 1;
        }
    } else {
        // dst is above src: copy backwards for the same reason.
        let mut i = n;
        while i > 0 {
            i -= 1;
            // SAFETY: i < n and the caller guarantees both ranges are valid.
            unsafe { *dst.add(i) = *src.add(i) };
        }
    }
    dst
}

/// `memset`: fill `n` bytes at `dst` with the low byte of `c`.
///
/// # Safety
/// `dst` is valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and the caller guarantees the range is valid.
        unsafe { *dst.add(i) = c as u8 };
        i += 1;
    }
    dst
}

/// `memcmp`: compare `n` bytes as unsigned chars.
///
/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and the caller guarantees both ranges are valid.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// `bcmp`: LLVM emits it for equality-only comparisons on gnu targets.
///
/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {
        trap();
    }
}

/// Executes the architecture's breakpoint instruction (the same ones the
/// tool uses as the return trap of a blob call): the thread stops with
/// `SIGTRAP` under ptrace, or dies of it otherwise.
#[inline(always)]
fn trap() {
    // SAFETY: a trap instruction touches no memory; if it returns at all
    // (a debugger resumed us) the caller loops.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!("int3", options(nomem, nostack));
        #[cfg(target_arch = "aarch64")]
        core::arch::asm!("brk #0", options(nomem, nostack));
        #[cfg(target_arch = "powerpc64")]
        core::arch::asm!("trap", options(nomem, nostack));
        #[cfg(target_arch = "s390x")]
        core::arch::asm!(".short 0x0001", options(nomem, nostack));
    }
}
