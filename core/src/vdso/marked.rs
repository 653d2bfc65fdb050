//! Dump of a task whose vDSO is a proxy (restored under another kernel's
//! vDSO by either tool): its `[vdso]` is the runtime one, marked (see
//! [`super::mark`]). Like CRIU, the dump drops the runtime vDSO and vvar
//! (the next restore brings its own kernel's) and records the proxy and
//! the vvar area beside it as the task's vDSO and vvar again.

use std::os::unix::fs::FileExt;

use super::mark::{LEN, Mark};
use crate::proc::vma_kind::status::{VMA_AREA_REGULAR, VMA_AREA_VDSO, VMA_AREA_VVAR};
use crate::proc::vmas::CollectedVma;

/// Apply a mark found in task `pid`'s `[vdso]` to its VMAs; the mark, if
/// there was one.
pub fn fixup(pid: i32, vmas: &mut Vec<CollectedVma>) -> std::io::Result<Option<Mark>> {
    let Some(i) = vmas.iter().position(|v| v.entry.is(VMA_AREA_VDSO)) else {
        return Ok(None);
    };
    let mut head = [0u8; LEN];
    let mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    mem.read_exact_at(&mut head, vmas[i].entry.start)?;
    let Some(mark) = Mark::parse(&head) else {
        return Ok(None);
    };
    let rt_vdso = vmas.remove(i).entry.start;
    if let Some(rt_vvar) = mark.rt_vvar {
        vmas.retain(|v| !(v.entry.start == rt_vvar && v.entry.is(VMA_AREA_VVAR)));
    }
    for v in vmas.iter_mut() {
        if v.entry.start == mark.orig_vdso {
            v.entry.status |= VMA_AREA_REGULAR | VMA_AREA_VDSO;
        } else if Some(v.entry.start) == mark.orig_vvar {
            v.entry.status |= VMA_AREA_REGULAR | VMA_AREA_VVAR;
        }
    }
    crate::pr_info!(
        "task {pid}: its vDSO at {:#x} proxies the runtime one at {rt_vdso:#x} (marked): \
         dumped as its vDSO, the runtime vDSO and vvar dropped",
        mark.orig_vdso
    );
    Ok(Some(mark))
}
