//! The plan's layout step: where each part of the bootstrap region lies
//! (restorer, vDSO parking area, stacks, frames, args, arrays), and the
//! region's place, free in the tool and in the task.

use rustix::io::Errno;

use super::{STACK_SIZE, SelfMaps, THREAD_STACK_SIZE};
use crate::blob::RESTORER;
use crate::blob::restorer_abi::{Array, RestoreArgs};
use crate::images::pb;
use crate::restore::RestoreError;

/// Offsets in the bootstrap region. Sizes first: the region's address
/// depends on its size.
pub(super) struct Layout {
    pub blob_len: usize,
    pub stack_off: usize,
    pub frame_off: usize,
    /// Each other thread: its stack, then its frame (the stack's top).
    pub threads_off: usize,
    pub thread_len: usize,
    pub args_off: usize,
    pub arrays_off: usize,
}

impl Layout {
    pub fn new(nr_threads: usize, maps: &SelfMaps, page_size: u64) -> Layout {
        let blob_len = (RESTORER.mem_size() as u64).next_multiple_of(page_size) as usize;
        let park_len = maps.vdso_span() as usize;
        let frame_size = criu_arch::SIGFRAME_SIZE.next_multiple_of(64);
        let stack_off = blob_len + park_len;
        let frame_off = stack_off + STACK_SIZE;
        let threads_off = frame_off + frame_size;
        let thread_len = THREAD_STACK_SIZE + frame_size;
        let args_off = threads_off + nr_threads * thread_len;
        let arrays_off = (args_off + size_of::<RestoreArgs>()).next_multiple_of(64);
        Layout {
            blob_len,
            stack_off,
            frame_off,
            threads_off,
            thread_len,
            args_off,
            arrays_off,
        }
    }

    /// Array `a` of the arena at its address in the region at `base`.
    pub fn at(&self, base: u64, a: Array) -> Array {
        Array {
            addr: if a.len == 0 {
                0
            } else {
                base + self.arrays_off as u64 + a.addr
            },
            len: a.len,
        }
    }
}

/// Chooses the region's place (free in the tool and in the task) and holds
/// it at once. `maps` was read before this task's plan (and the earlier
/// ones') allocated memory, which may sit where it shows a gap: a place
/// found taken is chosen again with the tool's mappings as they are now.
pub(super) fn hold_region(
    maps: &SelfMaps,
    total: u64,
    vmas: &[pb::VmaEntry],
    page_size: u64,
) -> Result<(u64, crate::blob::bootstrap::Reservation), RestoreError> {
    const TRIES: usize = 8;
    let mut now = maps.clone();
    for _ in 0..TRIES {
        let base = now.free_region(total, vmas, page_size)?;
        match crate::blob::bootstrap::Reservation::at(base, total) {
            Ok(hold) => return Ok((base, hold)),
            Err(Errno::EXIST) => {
                let fresh = SelfMaps::read()?;
                now.all.extend(fresh.all);
                now.all.sort_unstable();
            }
            Err(e) => return Err(RestoreError::Sys("mmap(bootstrap region)", e)),
        }
    }
    Err(RestoreError::Sys("mmap(bootstrap region)", Errno::EXIST))
}
