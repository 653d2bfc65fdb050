//! The vDSO of each restored task (see [`crate::vdso`]): in place when
//! this kernel's fits the dumped one, else the dumped one kept as a proxy.
//! Decided per task before anything is created; [`super::plan`] turns the
//! decision into the restorer's remaps, jumps and mark.

use std::os::unix::fs::FileExt;

use crate::proc::vma_kind::status::{VMA_AREA_VDSO, VMA_AREA_VVAR};
pub use crate::vdso::VdsoPlan;
use crate::vdso::{self, Layout, Mode, Symtab};

use super::RestoreError;
use super::images::TaskImages;
use super::layout::SelfMaps;

/// Environment switch that makes every restore with a vDSO take the proxy
/// path even when this kernel's would fit (for tests, like CRIU's fault
/// point 127, `FI_VDSO_TRAMPOLINES`).
pub const FORCE_PROXY_ENV: &str = "CRIU_VDSO_TRAMPOLINES";

/// This kernel's vDSO and how one task's comes back (its [`plan`]).
#[derive(Clone, Copy)]
pub struct TaskVdso<'a> {
    pub rt: &'a Runtime,
    pub plan: &'a VdsoPlan,
}

/// This kernel's vDSO: where the tool has it and its symbols.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub layout: Option<Layout>,
    pub syms: Symtab,
}

impl Runtime {
    pub fn read(maps: &SelfMaps) -> Result<Runtime, RestoreError> {
        let layout = maps.rt_layout()?;
        let syms = match layout {
            Some(l) => {
                let data = read_self(l.vdso)?;
                vdso::symbols_of("this kernel's vDSO", &data)
                    .map_err(|e| RestoreError::Unsupported(e.to_string()))?
            }
            None => Symtab::default(),
        };
        Ok(Runtime { layout, syms })
    }
}

fn read_self((start, end): (u64, u64)) -> Result<Vec<u8>, RestoreError> {
    crate::sys::own_vdso::read(start, end).ok_or_else(|| {
        RestoreError::Unsupported(format!(
            "cannot read this kernel's vDSO at {start:#x}-{end:#x} in the tool"
        ))
    })
}

/// Decide task `t`'s vDSO against this kernel's `rt`. A proxy turns the
/// dumped vDSO and vvar VMAs of `t.mm` into ordinary memory (mapped and
/// filled from the pages image like any other).
pub fn plan(t: &mut TaskImages, rt: &Runtime, force_proxy: bool) -> Result<VdsoPlan, RestoreError> {
    let mm_file = format!("mm-{}.img", t.pstree.pid);
    let bad = |what: String| RestoreError::Invalid {
        file: mm_file.clone(),
        what,
    };
    let areas = |mask: u32| -> Vec<(u64, u64)> {
        t.mm.vmas
            .iter()
            .filter(|v| v.status & mask != 0)
            .map(|v| (v.start, v.end))
            .collect()
    };
    let Some(dumped) = Layout::from_areas(&areas(VMA_AREA_VDSO), &areas(VMA_AREA_VVAR))
        .map_err(|e| bad(e.to_string()))?
    else {
        return Ok(VdsoPlan::Nothing);
    };
    let Some(rt_layout) = rt.layout else {
        return Err(RestoreError::Unsupported(format!(
            "{mm_file}: the task has a vDSO, this kernel maps none"
        )));
    };
    let Some(data) = dumped_pages(t, dumped.vdso)? else {
        // Images that left the vDSO's pages out (CRIU always saves them):
        // nothing to proxy with, but a layout of the same shape can take
        // this kernel's vDSO in place.
        let same_shape = dumped.vdso_len() == rt_layout.vdso_len()
            && dumped.vvar_len() == rt_layout.vvar_len()
            && (dumped.vvar.is_none_or(|v| v.0 > dumped.vdso.0)
                == rt_layout.vvar.is_none_or(|v| v.0 > rt_layout.vdso.0));
        if same_shape && !force_proxy {
            crate::pr_warn!(
                "{mm_file}: the dumped vDSO's pages are not in the images; its layout \
                 matches this kernel's, which is mapped in place"
            );
            return Ok(VdsoPlan::InPlace(dumped));
        }
        return Err(bad(format!(
            "the pages of the dumped vDSO {:#x}-{:#x} are not in the images, and its \
             layout differs from this kernel's: it cannot be proxied",
            dumped.vdso.0, dumped.vdso.1
        )));
    };
    let syms = vdso::symbols_of("the dumped vDSO", &data).map_err(|e| bad(e.to_string()))?;
    match vdso::choose(&dumped, &syms, &rt_layout, &rt.syms, force_proxy) {
        Mode::InPlace => {
            crate::pr_info!(
                "{mm_file}: this kernel's vDSO matches the dumped one: remapped in place"
            );
            Ok(VdsoPlan::InPlace(dumped))
        }
        Mode::Proxy { why } => {
            crate::pr_info!("{mm_file}: the dumped vDSO becomes a proxy of this kernel's: {why}");
            for v in &mut t.mm.vmas {
                if v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR) != 0 {
                    v.status &= !(VMA_AREA_VDSO | VMA_AREA_VVAR);
                }
            }
            Ok(VdsoPlan::Proxy {
                dumped,
                syms,
                code: data,
            })
        }
    }
}

/// The dumped bytes of `[start, end)` from the task's pages image, if every
/// page of it is there.
fn dumped_pages(t: &TaskImages, (start, end): (u64, u64)) -> Result<Option<Vec<u8>>, RestoreError> {
    let page = rustix::param::page_size() as u64;
    let mut data = vec![0u8; (end - start) as usize];
    let mut covered = 0u64;
    let file = std::fs::File::open(&t.pages_path).map_err(|e| {
        RestoreError::Open(
            t.pages_path.display().to_string(),
            rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
        )
    })?;
    for r in &t.pages {
        let r_end = r.vaddr.saturating_add(r.nr_pages.saturating_mul(page));
        let (s, e) = (r.vaddr.max(start), r_end.min(end));
        if s >= e {
            continue;
        }
        let dst = &mut data[(s - start) as usize..(e - start) as usize];
        file.read_exact_at(dst, r.offset + (s - r.vaddr))
            .map_err(|e| RestoreError::Invalid {
                file: t.pages_path.display().to_string(),
                what: format!("reading the dumped vDSO: {e}"),
            })?;
        covered += e - s;
    }
    Ok((covered == end - start).then_some(data))
}
