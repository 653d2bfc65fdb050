//! Loading a blob into this very process and calling it: used by the
//! self-tests that check the blob pipeline on every architecture (under
//! qemu-user there is no ptrace, so this is how the blobs are exercised
//! there), and usable for any blob command that only touches its arguments.
//!
//! The mapping is placed at a random page-aligned address, so the blob runs
//! where it was not linked and every relocation matters. Code pages are
//! never writable and executable at the same time: the image is written while
//! the mapping is read+write, then the code part becomes read+exec and the
//! data part stays read+write.

use std::collections::hash_map::RandomState;
use std::ffi::c_void;
use std::hash::{BuildHasher, Hasher};
use std::ptr::{self, NonNull};

use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use super::{Blob, BlobError, PARASITE, RESTORER, parasite_abi, restorer_abi};

/// How often a random address is tried before letting the kernel choose.
const RANDOM_TRIES: usize = 32;
/// Random addresses are drawn from [LOW, HIGH): above the usual program and
/// heap, and below 2^39 so that every supported kernel/VA size accepts them.
const RANDOM_LOW: u64 = 1 << 32;
const RANDOM_HIGH: u64 = 1 << 39;

/// Why a blob could not be loaded or called in this process.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot map {len} bytes for the {blob} blob: {source}")]
    Map {
        blob: &'static str,
        len: usize,
        source: rustix::io::Errno,
    },
    #[error("cannot make the {blob} blob's code executable: {source}")]
    Protect {
        blob: &'static str,
        source: rustix::io::Errno,
    },
    #[error(transparent)]
    Place(#[from] BlobError),
    #[error("command {cmd} belongs to the {wanted} blob, not the loaded {loaded} blob")]
    WrongBlob {
        cmd: usize,
        wanted: &'static str,
        loaded: &'static str,
    },
}

/// A blob command whose argument block is `Self` and that may safely run in
/// this process (it only reads and writes its argument block and the blob's
/// own memory, and makes no system call with lasting effect on the caller
/// beyond those documented for it).
///
/// # Safety
/// Implementors vouch that `Self` is exactly the `#[repr(C)]` argument block
/// the blob's command [`CMD`](Self::CMD) expects and that the command has the
/// property above.
pub unsafe trait InProcessCommand {
    /// The command number.
    const CMD: usize;
    /// The blob that implements the command.
    fn blob() -> &'static Blob;
}

// SAFETY: PING writes a constant message to `fd` and fills the block.
unsafe impl InProcessCommand for parasite_abi::PingArgs {
    const CMD: usize = parasite_abi::CMD_PING;
    fn blob() -> &'static Blob {
        &PARASITE
    }
}

// SAFETY: PING writes a constant message to `fd` and fills the block.
unsafe impl InProcessCommand for restorer_abi::PingArgs {
    const CMD: usize = restorer_abi::CMD_PING;
    fn blob() -> &'static Blob {
        &RESTORER
    }
}

/// A blob mapped, relocated and executable in this process; unmapped on drop.
#[derive(Debug)]
pub struct LoadedBlob {
    blob: &'static Blob,
    base: NonNull<c_void>,
    len: usize,
    wx: bool,
}

impl LoadedBlob {
    /// Maps `blob` at a random page-aligned address and prepares it to run.
    pub fn load(blob: &'static Blob) -> Result<LoadedBlob, LoadError> {
        let page = rustix::param::page_size();
        let len = blob.mem_size().next_multiple_of(page);
        let base = map_at_random_address(len).map_err(|source| LoadError::Map {
            blob: blob.name,
            len,
            source,
        })?;
        // From here on, dropping `loaded` unmaps the area.
        let mut loaded = LoadedBlob {
            blob,
            base,
            len,
            wx: false,
        };
        // SAFETY: the mapping is `len` bytes, readable and writable, and
        // owned by `loaded` alone; nothing else refers to it yet.
        let mem = unsafe { std::slice::from_raw_parts_mut(base.as_ptr().cast::<u8>(), len) };
        blob.relocate_into(mem, loaded.base())?;

        // The code part becomes read+exec. If the kernel's pages are larger
        // than the arch's documented maximum (never expected), code and data
        // share a page and the whole area must be read+write+exec instead.
        let (exec_len, flags) = if blob.data_offset().is_multiple_of(page) {
            loaded.wx = true;
            (
                blob.data_offset(),
                MprotectFlags::READ | MprotectFlags::EXEC,
            )
        } else {
            (
                len,
                MprotectFlags::READ | MprotectFlags::WRITE | MprotectFlags::EXEC,
            )
        };
        if exec_len > 0 {
            // SAFETY: changes protections inside our own mapping only; no
            // reference into it is alive (`mem` is not used again).
            unsafe { rustix::mm::mprotect(base.as_ptr(), exec_len, flags) }.map_err(|source| {
                LoadError::Protect {
                    blob: blob.name,
                    source,
                }
            })?;
        }
        criu_arch::flush_icache(base.as_ptr() as usize, exec_len);
        Ok(loaded)
    }

    /// The address the blob was placed and relocated at.
    pub fn base(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// The blob this is a copy of.
    pub fn blob(&self) -> &'static Blob {
        self.blob
    }

    /// Whether code and data got separate protections (never writable and
    /// executable at once).
    pub fn is_w_xor_x(&self) -> bool {
        self.wx
    }

    /// Runs the command whose argument block is `args`; returns the blob's
    /// return value (`-errno` on failure).
    pub fn run<A: InProcessCommand>(&self, args: &mut A) -> Result<isize, LoadError> {
        if !ptr::eq(A::blob(), self.blob) {
            return Err(LoadError::WrongBlob {
                cmd: A::CMD,
                wanted: A::blob().name,
                loaded: self.blob.name,
            });
        }
        // SAFETY: the blob is relocated for this address and its code part is
        // executable (`load`); `A`'s contract says it is the argument block of
        // `A::CMD` and that the command is harmless to run here; `args` is a
        // live exclusive reference for the duration of the call.
        Ok(unsafe { self.call(A::CMD, ptr::from_mut(args).cast::<u8>()) })
    }

    /// Calls the blob's entry with a raw command and argument pointer.
    ///
    /// # Safety
    /// `args` must point to the argument block `cmd` expects, and the command
    /// must be safe to run inside this process.
    pub unsafe fn call(&self, cmd: usize, args: *mut u8) -> isize {
        type Entry = unsafe extern "C" fn(usize, *mut u8) -> isize;
        let entry_ptr = self
            .base
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(self.blob.entry_offset());
        // SAFETY: `load` placed the blob's entry, an `extern "C" fn(usize,
        // *mut u8) -> isize` compiled for this arch, at this address in an
        // executable mapping that lives as long as `self`.
        let entry = unsafe { std::mem::transmute::<*mut u8, Entry>(entry_ptr) };
        // SAFETY: the caller vouches for `cmd` and `args`.
        unsafe { entry(cmd, args) }
    }
}

impl Drop for LoadedBlob {
    fn drop(&mut self) {
        // SAFETY: the mapping was created by `load` with this length, and no
        // reference into it outlives `self`. An error here could only mean a
        // bad range, which we never pass; there is nothing to do about it.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr(), self.len) };
    }
}

/// Maps `len` bytes of anonymous read+write memory at a random page-aligned
/// address; after [`RANDOM_TRIES`] collisions, wherever the kernel likes.
fn map_at_random_address(len: usize) -> rustix::io::Result<NonNull<c_void>> {
    let page = rustix::param::page_size() as u64;
    let prot = ProtFlags::READ | ProtFlags::WRITE;
    let slots = (RANDOM_HIGH - RANDOM_LOW) / page;
    for _ in 0..RANDOM_TRIES {
        let hint = RANDOM_LOW + (random_u64() % slots) * page;
        let hint_ptr = ptr::without_provenance_mut::<c_void>(hint as usize);
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so
        // this cannot invalidate any memory we use; the new area is ours.
        let got = unsafe {
            rustix::mm::mmap_anonymous(
                hint_ptr,
                len,
                prot,
                MapFlags::PRIVATE | MapFlags::FIXED_NOREPLACE,
            )
        };
        match got {
            Ok(p) if p == hint_ptr => return nonnull(p),
            // A kernel (or emulator) that ignores the flag treats the address
            // as a hint and maps elsewhere: undo and try another address.
            Ok(p) => {
                // SAFETY: `p` is the mapping just created, unused.
                let _ = unsafe { rustix::mm::munmap(p, len) };
            }
            Err(_) => {}
        }
    }
    // SAFETY: a fresh mapping at an address of the kernel's choosing.
    let p = unsafe { rustix::mm::mmap_anonymous(ptr::null_mut(), len, prot, MapFlags::PRIVATE)? };
    nonnull(p)
}

/// mmap never returns address 0 for a request without MAP_FIXED
/// (mmap_min_addr), nor for our hints, which are all above 4 GiB; should it
/// ever, report it instead of using the mapping.
fn nonnull(p: *mut c_void) -> rustix::io::Result<NonNull<c_void>> {
    NonNull::new(p).ok_or(rustix::io::Errno::NOMEM)
}

/// 64 random bits from the standard library's per-process random keys (each
/// `RandomState` gets fresh ones), without another dependency.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x6372_6975);
    hasher.finish()
}
