//! The plan's vDSO step: where this kernel's vDSO goes from the parking
//! area, and a proxy's jumps into it.

use super::{SelfMaps, TaskImages};
use crate::blob::restorer_abi::{CODE_PATCH_MAX, CodePatch, Remap, VdsoMarkArg};
use crate::restore::RestoreError;

/// The proxy vDSO's jumps into this kernel's vDSO mapped at `rt_vdso`
/// (none unless the task's vDSO is a proxy).
pub(super) fn vdso_patches(
    t: &TaskImages,
    vdso: crate::restore::vdso::TaskVdso<'_>,
    rt_vdso: u64,
) -> Result<Vec<CodePatch>, RestoreError> {
    let crate::restore::vdso::VdsoPlan::Proxy { dumped, syms, code } = vdso.plan else {
        return Ok(Vec::new());
    };
    let mm_file = format!("mm-{}.img", t.pstree.pid);
    let tr = crate::vdso::trampolines(syms, code, dumped, &vdso.rt.syms, rt_vdso)
        .map_err(|e| RestoreError::Unsupported(format!("{mm_file}: {e}")))?;
    if !tr.missing.is_empty() {
        crate::pr_warn!(
            "{mm_file}: this kernel's vDSO lacks {}: the dumped code stays there",
            tr.missing.join(", ")
        );
    }
    if !tr.stubs.is_empty() {
        crate::pr_info!(
            "{mm_file}: {} of the dumped vDSO are lone system calls, too short for a \
             jump: kept as dumped",
            tr.stubs.join(", ")
        );
    }
    Ok(tr
        .patches
        .iter()
        .map(|p| {
            let mut code = [0u8; CODE_PATCH_MAX];
            code[..p.code.len()].copy_from_slice(&p.code);
            CodePatch {
                addr: p.addr,
                len: p.code.len() as u64,
                code,
            }
        })
        .collect())
}

/// Where this kernel's vDSO goes from the parking area at `park` (see
/// [`crate::restore::vdso::VdsoPlan`]), the proxy's jumps and the mark: in place,
/// over the dumped areas; for a proxy, to a gap of the task's layout
/// below the dumped vDSO (free of its VMAs and of the bootstrap region),
/// marked as CRIU marks it.
pub(super) fn vdso_moves(
    t: &TaskImages,
    maps: &SelfMaps,
    vdso: crate::restore::vdso::TaskVdso<'_>,
    park: u64,
    region: (u64, u64),
    page: u64,
) -> Result<(Vec<Remap>, Vec<CodePatch>, VdsoMarkArg), RestoreError> {
    use crate::restore::vdso::VdsoPlan;
    match vdso.plan {
        VdsoPlan::Nothing => Ok((
            maps.unpark_to(park, None)?,
            Vec::new(),
            VdsoMarkArg::default(),
        )),
        VdsoPlan::InPlace(dumped) => Ok((
            maps.unpark_to(park, Some(dumped))?,
            Vec::new(),
            VdsoMarkArg::default(),
        )),
        VdsoPlan::Proxy { dumped, .. } => {
            let rt_layout = vdso
                .rt
                .layout
                .ok_or_else(|| RestoreError::Unsupported("this kernel maps no vDSO".into()))?;
            let span = rt_layout.vdso.1.max(rt_layout.vvar.map_or(0, |v| v.1)) - rt_layout.start();
            let mut busy: Vec<(u64, u64)> = t.mm.vmas.iter().map(|v| (v.start, v.end)).collect();
            busy.push(region);
            let at = SelfMaps::free_gap(&busy, span, dumped.start(), page).ok_or_else(|| {
                RestoreError::Unsupported(format!(
                    "mm-{}.img: no free place for this kernel's vDSO",
                    t.pstree.pid
                ))
            })?;
            let shift =
                |(s, e): (u64, u64)| (s - rt_layout.start() + at, e - rt_layout.start() + at);
            let dest = crate::vdso::Layout {
                vdso: shift(rt_layout.vdso),
                vvar: rt_layout.vvar.map(shift),
            };
            crate::pr_info!(
                "mm-{}.img: this kernel's vDSO at {:#x}, the dumped one at {:#x} proxies it",
                t.pstree.pid,
                dest.vdso.0,
                dumped.vdso.0
            );
            let mark = crate::vdso::mark::Mark {
                orig_vdso: dumped.vdso.0,
                orig_vvar: dumped.vvar.map(|v| v.0),
                rt_vvar: dest.vvar.map(|v| v.0),
            };
            Ok((
                maps.unpark_to(park, Some(&dest))?,
                vdso_patches(t, vdso, dest.vdso.0)?,
                VdsoMarkArg {
                    addr: dest.vdso.0,
                    len: dest.vdso.1 - dest.vdso.0,
                    words: mark.words(),
                },
            ))
        }
    }
}
