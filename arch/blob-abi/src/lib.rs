//! The interface between the tool and its two blobs: command numbers,
//! argument blocks and result codes of the parasite ([`parasite`]) and the
//! restorer ([`restorer`]).
//!
//! Core and both blob crates depend on this crate, so every number and
//! layout is the same on both sides by construction. It is `no_std`, has no
//! dependencies and holds plain data only (constants and `#[repr(C)]` structs
//! of fixed-size integers): it is also compiled inside the nested, offline
//! blob build, where it must need no relocation and no runtime support.
//!
//! Calling convention (both blobs): the blob's entry (offset 0, exported as
//! the module's `ENTRY_SYMBOL`) is `extern "C" fn(cmd: usize, args: *mut u8)
//! -> isize`. `args` points to the argument block of `cmd`, aligned for it;
//! the blob may write results into it. A negative return value is `-errno`.
//!
//! The two modules define some items of the same name and layout (`CMD_PING`,
//! `PingArgs`) as separate items on purpose: the tool picks the blob a
//! command runs in by the argument block's type.
#![no_std]

/// Asserts at compile time that each struct's size is the sum of its
/// fields' sizes (listed in order): no implicit padding, so every byte of a
/// value is initialised and the tool may copy a block out as bytes. A field
/// added without being listed here fails the assertion.
macro_rules! no_padding {
    ($($t:ident { $($f:ty),* $(,)? }),* $(,)?) => {$(
        const _: () = assert!(
            core::mem::size_of::<$t>() == 0 $(+ core::mem::size_of::<$f>())*,
            concat!(stringify!($t), " has padding between or after its fields")
        );
    )*};
}
pub(crate) use no_padding;

pub mod parasite;
pub mod restorer;

/// Returned for a command number the blob does not know (`-ENOSYS`).
pub const ERR_NO_COMMAND: isize = -38;
/// Returned when the argument block is null or misaligned, or a field is out
/// of range (`-EINVAL`).
pub const ERR_BAD_ARGS: isize = -22;
