//! Keeping the tool's own private memory out of a fork (`MADV_DONTFORK`).
//!
//! A restore forks the tree's root from the tool; every task then forks
//! its children from a copy of that address space and unmaps it again.
//! The tool's heap (the images of every task) is of no use to any of
//! them, yet each fork would copy its page tables and each task would
//! tear them down: a cost per task that grows with the tree. Marked
//! `MADV_DONTFORK` around the fork, those mappings are simply absent in
//! the child. The advice changes nothing in this process's memory.

use rustix::io::Errno;
use rustix::mm::Advice;

/// Mappings marked `MADV_DONTFORK`; marked inheritable again on drop.
#[derive(Debug, Default)]
pub struct DontFork {
    ranges: Vec<(u64, u64)>,
}

fn advise(start: u64, end: u64, advice: Advice) -> Result<(), Errno> {
    let addr = std::ptr::without_provenance_mut::<core::ffi::c_void>(start as usize);
    // SAFETY: MADV_DONTFORK / MADV_DOFORK only change whether the range
    // is copied into a child by fork; this process's memory, its contents
    // and every reference into it stay as they are.
    unsafe { rustix::mm::madvise(addr, (end - start) as usize, advice) }
}

impl DontFork {
    /// Marks each `[start, end)` of `ranges` (whole mappings) so that a
    /// fork does not copy it. A range the kernel refuses (a special
    /// mapping) is left as it is: it is only copied, as before.
    pub fn mark(ranges: &[(u64, u64)]) -> DontFork {
        let mut out = DontFork::default();
        for &(s, e) in ranges.iter().filter(|(s, e)| s < e) {
            if advise(s, e, Advice::LinuxDontFork).is_ok() {
                out.ranges.push((s, e));
            }
        }
        out
    }
}

impl Drop for DontFork {
    fn drop(&mut self) {
        for &(s, e) in &self.ranges {
            let _ = advise(s, e, Advice::LinuxDoFork);
        }
    }
}
