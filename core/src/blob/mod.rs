//! The parasite and restorer blobs embedded in the tool, and how to place
//! them in memory.
//!
//! A blob is position-independent code and data built by `build.rs`
//! (`core/build/blobs.rs`) for the target architecture. The build checked
//! that the only relocations are the arch's `*_RELATIVE` ones, so placing a
//! blob at address `base` takes three steps, all done by
//! [`Blob::relocate_into`]: copy [`Blob::bytes`], zero the rest up to
//! [`Blob::mem_size`] (`.bss`), and store `base + addend` as a native-endian
//! `u64` at every [`Reloc::offset`].
//!
//! Memory layout of a placed blob, as offsets from `base`:
//!
//! ```text
//! 0 (entry_offset)  code and read-only data      -> map read + exec
//! data_offset       relocated pointers, data, bss -> map read + write
//! mem_size          end
//! ```
//!
//! `data_offset` is a multiple of [`Blob::max_page_size`], the largest page
//! size the architecture's kernels use, so the two parts can always get
//! different page protections.
//!
//! Calling a blob: `entry_offset` is `extern "C" fn(cmd: usize, args: *mut u8)
//! -> isize`; the commands and their argument blocks are defined in
//! [`parasite_abi`] and [`restorer_abi`] (the `criu-blob-abi` crate, which the
//! blobs compile too).
//! Use:
//! - in another process (the infect module): map `mem_size` bytes shared,
//!   [`Blob::relocate_into`] the local view with the *remote* base, and start
//!   a thread of the task at `base + entry_offset()` with the arch's blob call
//!   convention (`criu_arch::setup_blob_call`);
//! - in this process (self-tests): [`LoadedBlob::load`] then
//!   [`LoadedBlob::run`].

pub mod bootstrap;
mod loader;

pub use loader::{InProcessCommand, LoadError, LoadedBlob};

/// The parasite's commands and argument blocks (the `criu-blob-abi` crate,
/// which the blob compiles too).
pub use criu_blob_abi::parasite as parasite_abi;

/// The restorer's commands and argument blocks (the `criu-blob-abi` crate,
/// which the blob compiles too).
pub use criu_blob_abi::restorer as restorer_abi;

/// `Plain` for the blobs' argument blocks: `#[repr(C)]` structs of integer
/// fields, integer arrays and other such blocks only, so any bit pattern is
/// a valid value, and without implicit padding (`criu-blob-abi` asserts
/// each block's size is the sum of its fields').
mod plain_impls {
    use super::{parasite_abi as p, restorer_abi as r};
    use crate::sys::plain::Plain;
    macro_rules! plain {
        ($($t:ty),* $(,)?) => {$(
            // SAFETY: see the module: integers only, any bits are valid,
            // no padding.
            unsafe impl Plain for $t {}
        )*};
    }
    plain!(
        p::PingArgs,
        p::CtlMsg,
        p::InitDaemonArgs,
        p::MiscArgs,
        p::Creds,
        p::ThreadArgs,
        p::Sigaction,
        p::SigactsArgs,
        p::Itimerval,
        p::ItimersArgs,
        p::PosixTimersArgs,
        p::PosixTimer,
        p::MprotectArgs,
        p::MprotectRegion,
        p::DumpPagesArgs,
        p::IoVec,
        p::DrainFdsArgs,
        r::PingArgs,
        r::ChildArg,
        r::TreeWords,
        r::RestoreStatus,
        r::Region,
        r::VmaArg,
        r::CowArgs,
        r::PageRun,
        r::Remap,
        r::FdMove,
        r::SigactionArg,
        r::ItimerArg,
        r::PosixTimerArg,
        r::RlimitArg,
        r::SiginfoArg,
        r::CredsArg,
        r::RawSyscall,
        r::PrctlMmMap,
        r::Array,
        r::RestoreArgs,
        r::CodePatch,
        r::VdsoMarkArg,
        r::ThreadArg,
        r::TaskAttrsArg,
        r::RseqArg,
        r::SeccompArg,
        r::SeccompFilterArg,
    );
}

/// One blob, as emitted by the build.
#[derive(Debug)]
pub struct Blob {
    /// `"parasite"` or `"restorer"`, for messages.
    pub name: &'static str,
    /// Memory image from offset 0 to the end of initialised data; the memory
    /// after it, up to `mem_size`, is zero.
    pub bytes: &'static [u8],
    /// Total memory the blob occupies, `.bss` included.
    pub size: usize,
    /// Where the writable part (relocated pointers, data, `.bss`) starts.
    pub data_offset: usize,
    /// The alignment of `data_offset`: the largest page size of the arch.
    pub max_page_size: usize,
    /// Where to store the load address plus an addend.
    pub relocs: &'static [Reloc],
    /// The blob's `__export_*` symbols.
    pub symbols: &'static [Symbol],
}

/// One RELATIVE relocation: store `base + addend` (a native-endian `u64`) at
/// `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloc {
    pub offset: usize,
    pub addend: u64,
}

/// An exported symbol and its offset from the start of the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: &'static str,
    pub offset: usize,
}

/// Why a blob could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("the {blob} blob needs {need} bytes, the destination has {got}")]
    DestinationTooSmall {
        blob: &'static str,
        need: usize,
        got: usize,
    },
    #[error("the {blob} blob cannot be placed at {base:#x}: its addresses would overflow")]
    BadBase { blob: &'static str, base: u64 },
}

// `pub static PARASITE: Blob` and `pub static RESTORER: Blob`.
include!(concat!(env!("OUT_DIR"), "/blobs.rs"));

impl Blob {
    /// Offset of an exported symbol (`__export_*`), if the blob has it.
    pub fn symbol(&self, name: &str) -> Option<usize> {
        self.symbols
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.offset)
    }

    /// Offset of the entry point; the build guarantees it is 0.
    pub fn entry_offset(&self) -> usize {
        0
    }

    /// Bytes of memory the placed blob occupies (`.bss` included).
    pub fn mem_size(&self) -> usize {
        self.size
    }

    /// Start of the writable part (see the module docs).
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// Writes the blob into `dst` as it must look when `dst[0]` is at address
    /// `base`: image copied, `.bss` zeroed, relocations applied. Only the
    /// first [`mem_size`](Self::mem_size) bytes of `dst` are touched.
    pub fn relocate_into(&self, dst: &mut [u8], base: u64) -> Result<(), BlobError> {
        let need = self.size;
        let Some(dst) = dst.get_mut(..need) else {
            return Err(BlobError::DestinationTooSmall {
                blob: self.name,
                need,
                got: dst.len(),
            });
        };
        let end_address = u64::try_from(need).ok().and_then(|n| base.checked_add(n));
        if end_address.is_none() {
            return Err(BlobError::BadBase {
                blob: self.name,
                base,
            });
        }
        let (image, bss) = dst.split_at_mut(self.bytes.len().min(need));
        image.copy_from_slice(&self.bytes[..image.len()]);
        bss.fill(0);
        for reloc in self.relocs {
            // The build checked offset + 8 <= size and addend <= size, and
            // base + size does not overflow (above), so neither fails.
            let value = base.wrapping_add(reloc.addend).to_ne_bytes();
            if let Some(slot) = dst.get_mut(reloc.offset..reloc.offset.saturating_add(value.len()))
            {
                slot.copy_from_slice(&value);
            }
        }
        Ok(())
    }
}
