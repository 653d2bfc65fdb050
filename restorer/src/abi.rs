//! The restorer's calling interface: command numbers, argument blocks and
//! result codes.
//!
//! This one file is compiled twice: into the restorer blob and into core
//! (`#[path = "../../restorer/src/abi.rs"]`), so both sides agree on every
//! number and layout by construction. It holds plain data only (constants and
//! `#[repr(C)]` structs of fixed-size integers), no code and no imports.
//!
//! Calling convention: the blob's entry (offset 0, exported as
//! [`ENTRY_SYMBOL`]) is `extern "C" fn(cmd: usize, args: *mut u8) -> isize`.
//! `args` points to the argument block of `cmd`, aligned for it; the blob may
//! write results into it. A negative return value is `-errno`.

/// Name of the exported entry symbol; the build checks that it is at offset 0.
pub const ENTRY_SYMBOL: &str = "__export_restorer_entry";

/// Returned for a command number the restorer does not know (`-ENOSYS`).
pub const ERR_NO_COMMAND: isize = -38;
/// Returned when the argument block is null or misaligned, or a field is out
/// of range (`-EINVAL`).
pub const ERR_BAD_ARGS: isize = -22;

/// `PING`: write [`PING_MESSAGE`] to `PingArgs::fd` with a raw `write`, and
/// return entry `PingArgs::index` of the blob's table of pointers to
/// [`PING_VALUES`]. Both the message and the values are reached through
/// pointers stored in the blob's data, so a correct answer proves that the
/// blob was relocated for the address it runs at.
pub const CMD_PING: usize = 1;

/// What `PING` writes.
pub const PING_MESSAGE: &[u8] = b"criu restorer: ping\n";

/// The values `PING` returns, by index. All positive as `isize`, so they
/// cannot be mistaken for an error.
pub const PING_VALUES: [u64; 3] = [
    0x5245_5354_0000_0001,
    0x5245_5354_0000_0002,
    0x5245_5354_0000_0003,
];

/// Argument block of [`CMD_PING`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PingArgs {
    /// In: file descriptor to write the message to.
    pub fd: i32,
    /// In: index into [`PING_VALUES`].
    pub index: u32,
    /// Out: raw result of the `write` system call (bytes written or `-errno`).
    pub written: i64,
    /// Out: how many times `PING` has run in this copy of the blob, this call
    /// included (a counter in the blob's `.bss`).
    pub count: u64,
}
