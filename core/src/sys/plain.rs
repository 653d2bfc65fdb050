//! Plain data: values that are nothing but bytes, so that they can be read
//! from and written as bytes without `unsafe` at the call site. The blob
//! argument blocks, the arrays the restorer reads and signal frames are
//! exchanged with the blobs and the kernel this way.

/// A `#[repr(C)]` type made only of integers and arrays of them, with no
/// implicit padding.
///
/// # Safety
/// Implementors must be valid for every bit pattern of their size (so
/// [`read_plain`] may make one from any bytes) and have no padding bytes (so
/// every byte of a value is initialised and [`bytes_of`] may expose it).
/// The blob ABI's blocks are checked for padding where they are defined
/// (`criu-blob-abi`'s `no_padding!`).
pub unsafe trait Plain: Copy {}

macro_rules! plain_integers {
    ($($t:ty),*) => {$(
        // SAFETY: an integer has no padding and any bits are a valid value.
        unsafe impl Plain for $t {}
    )*};
}
plain_integers!(u8, u16, u32, u64, i8, i16, i32, i64, usize, isize);

// SAFETY: array elements follow each other without padding (an element's
// size is a multiple of its alignment), and each is `Plain`.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

/// Read a [`Plain`] value from the start of `bytes` (any alignment).
pub fn read_plain<T: Plain>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: `T: Plain` is valid for any bytes, `bytes` holds enough of
    // them, and read_unaligned copes with the alignment.
    Some(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// The bytes of a [`Plain`] value, borrowed from it.
pub fn bytes_of<T: Plain>(v: &T) -> &[u8] {
    // SAFETY: `T: Plain` has no padding, so all `size_of::<T>()` bytes of
    // `v` are initialised; the slice borrows `v`.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
}

/// An all-zero signal frame on the heap (frames are several KiB), ready for
/// `criu_arch::fill_sigframe`. Starting from zeroed memory also zeroes the
/// padding bytes that [`sigframe_bytes`] later reads.
pub fn zeroed_sigframe() -> Box<criu_arch::RtSigframe> {
    let frame = Box::<criu_arch::RtSigframe>::new_zeroed();
    // SAFETY: `RtSigframe` consists of integers and arrays of integers on
    // every arch, for which all-zero bytes are a valid value.
    unsafe { frame.assume_init() }
}

/// A signal frame as the bytes to store in the task's memory.
pub fn sigframe_bytes(frame: &criu_arch::RtSigframe) -> &[u8] {
    // SAFETY: `RtSigframe` is a `#[repr(C)]` struct of integers with no
    // padding the compiler may leave uninitialised other than explicit pad
    // fields (all are named fields, zeroed by its constructors); the slice
    // borrows `frame` for its size.
    unsafe {
        std::slice::from_raw_parts(
            (frame as *const criu_arch::RtSigframe).cast::<u8>(),
            size_of::<criu_arch::RtSigframe>(),
        )
    }
}

// SAFETY: `elf_prpsinfo` is integers and byte arrays with its one hole
// named (`pad0`); its layout is pinned in `criu_arch`.
unsafe impl Plain for criu_arch::ElfPrpsinfo {}

// SAFETY: x86_64's `user_regs_struct` is 27 `u64`s.
#[cfg(target_arch = "x86_64")]
unsafe impl Plain for criu_arch::GpRegs {}

// SAFETY: x86_64's FXSAVE image is integers and arrays of them filling
// its 512 bytes exactly (pinned in `criu_arch`).
#[cfg(target_arch = "x86_64")]
unsafe impl Plain for criu_arch::FpRegs {}

// SAFETY: `elf_prstatus` names its holes (`pad0`, `pad1`); with a
// register set of `u64`s (x86_64) nothing else is padding, which the
// size check below confirms.
#[cfg(target_arch = "x86_64")]
unsafe impl Plain for criu_arch::ElfPrstatus<criu_arch::GpRegs> {}
#[cfg(target_arch = "x86_64")]
const _: () = assert!(
    size_of::<criu_arch::ElfPrstatus<criu_arch::GpRegs>>()
        == 112 + size_of::<criu_arch::GpRegs>() + 8
);
