//! The vDSO across dump and restore, as CRIU handles it.
//!
//! A task holds the kernel's vDSO (code) and vvar (the data the code
//! reads: `[vvar]`, and since Linux 6.13 `[vvar_vclock]` beside it), and
//! has pointers into the vDSO (libc's resolved `clock_gettime`, the
//! auxv's `AT_SYSINFO_EHDR`, return addresses). The dump records both areas
//! and saves the vDSO's pages; the restore maps this kernel's vDSO and vvar
//! where the dumped ones were when they fit (same sizes, order and symbol
//! offsets: [`Mode::InPlace`]). Otherwise the dumped vDSO is restored from
//! its pages as ordinary memory and becomes a *proxy*: each of its
//! functions starts with a jump to the same function of this kernel's vDSO
//! ([`trampolines`]; the jump itself is `criu_arch::vdso_jump`), which is
//! mapped elsewhere and marked ([`mark`]) so that the next dump records
//! the proxy as the task's vDSO again ([`Mode::Proxy`]).
//!
//! This module decides and computes; the restorer blob moves the mappings
//! and writes the jumps and the mark.

pub mod elf;
pub mod mark;
pub mod marked;

use criu_arch::{VDSO_JUMP_LEN, vdso_jump};
pub use elf::{ElfError, Symtab};

/// A vDSO and its vvar data: `[start, end)` of each. The vvar area is one
/// span (its parts lie side by side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub vdso: (u64, u64),
    pub vvar: Option<(u64, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum VdsoError {
    #[error("{what}: {source}")]
    Elf {
        what: String,
        #[source]
        source: ElfError,
    },
    #[error("{0}")]
    Layout(String),
    #[error(
        "vDSO symbol {name} at {offset:#x} has {room} bytes before the next one: \
         too few for the {VDSO_JUMP_LEN}-byte jump into this kernel's vDSO"
    )]
    TooSmall {
        name: String,
        offset: u64,
        room: u64,
    },
}

impl Layout {
    /// The layout of areas `vdso` and `vvar` (in address order, several
    /// when the kernel shows vvar in parts); `None` without a vDSO.
    pub fn from_areas(
        vdso: &[(u64, u64)],
        vvar: &[(u64, u64)],
    ) -> Result<Option<Layout>, VdsoError> {
        let vdso = match vdso {
            [] if vvar.is_empty() => return Ok(None),
            [] => return Err(VdsoError::Layout("vvar areas without a vDSO".into())),
            [one] => *one,
            more => {
                return Err(VdsoError::Layout(format!(
                    "{} vDSO areas {more:x?}",
                    more.len()
                )));
            }
        };
        let mut sorted = vvar.to_vec();
        sorted.sort_unstable();
        let span = match (sorted.first(), sorted.last()) {
            (Some(f), Some(l)) => {
                if sorted.windows(2).any(|w| w[0].1 != w[1].0) {
                    return Err(VdsoError::Layout(format!(
                        "vvar areas {sorted:x?} are not side by side"
                    )));
                }
                Some((f.0, l.1))
            }
            _ => None,
        };
        Ok(Some(Layout { vdso, vvar: span }))
    }

    pub fn vdso_len(&self) -> u64 {
        self.vdso.1 - self.vdso.0
    }

    pub fn vvar_len(&self) -> u64 {
        self.vvar.map_or(0, |v| v.1 - v.0)
    }

    /// The lowest address of both areas.
    pub fn start(&self) -> u64 {
        self.vvar.map_or(self.vdso.0, |v| v.0.min(self.vdso.0))
    }

    fn vdso_first(&self) -> bool {
        self.vvar.is_none_or(|v| self.vdso.0 < v.0)
    }
}

/// How the restore maps the vDSO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// This kernel's vDSO and vvar go where the dumped ones were.
    InPlace,
    /// The dumped vDSO stays as a proxy (see the module comment); `why`
    /// names the first difference.
    Proxy { why: String },
}

/// In place when this kernel's vDSO is the dumped one (same size and the
/// same symbols at the same offsets) and its vvar has the dumped vvar's
/// size and side; a proxy otherwise, or whenever `force_proxy`.
pub fn choose(
    dumped: &Layout,
    dumped_syms: &Symtab,
    rt: &Layout,
    rt_syms: &Symtab,
    force_proxy: bool,
) -> Mode {
    let why = if force_proxy {
        "proxy forced (CRIU_VDSO_TRAMPOLINES)".to_string()
    } else if dumped.vdso_len() != rt.vdso_len() {
        format!(
            "vDSO size {:#x} != {:#x} (this kernel's)",
            dumped.vdso_len(),
            rt.vdso_len()
        )
    } else if dumped_syms != rt_syms {
        let diff = dumped_syms
            .symbols
            .iter()
            .find(|s| rt_syms.offset_of(&s.name) != Some(s.offset))
            .or_else(|| {
                rt_syms
                    .symbols
                    .iter()
                    .find(|s| dumped_syms.offset_of(&s.name).is_none())
            })
            .map_or("?".into(), |s| s.name.clone());
        format!("the symbols differ (first: {diff})")
    } else if dumped.vvar_len() != rt.vvar_len() {
        format!(
            "vvar size {:#x} != {:#x} (this kernel's)",
            dumped.vvar_len(),
            rt.vvar_len()
        )
    } else if dumped.vdso_first() != rt.vdso_first() {
        "vDSO and vvar lie the other way round".to_string()
    } else {
        return Mode::InPlace;
    };
    Mode::Proxy { why }
}

/// One jump written over the start of a proxy vDSO function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patch {
    pub addr: u64,
    pub code: [u8; VDSO_JUMP_LEN],
}

/// What [`trampolines`] makes of a dumped vDSO.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trampolines {
    /// The jumps to write.
    pub patches: Vec<Patch>,
    /// Dumped functions this kernel's vDSO lacks (left as they were, as
    /// CRIU leaves them).
    pub missing: Vec<String>,
    /// Functions too short for a jump that are lone system calls
    /// (`criu_arch::vdso_is_syscall_stub`): they do the same as this
    /// kernel's and stay as dumped.
    pub stubs: Vec<String>,
}

/// The jumps that make the dumped vDSO (`dumped_syms`, its bytes
/// `dumped_code`, mapped at `dumped.vdso`) a proxy of this kernel's
/// (`rt_syms`, mapped at `rt_vdso`): every dumped function this kernel's
/// vDSO also has jumps there, by name. A function too short to hold the
/// jump (the next symbol starts within it) stays as dumped if it is a lone
/// system call, and is an error otherwise.
pub fn trampolines(
    dumped_syms: &Symtab,
    dumped_code: &[u8],
    dumped: &Layout,
    rt_syms: &Symtab,
    rt_vdso: u64,
) -> Result<Trampolines, VdsoError> {
    let len = dumped.vdso_len();
    let mut out = Trampolines::default();
    for (i, s) in dumped_syms.symbols.iter().enumerate() {
        let Some(to) = rt_syms.offset_of(&s.name) else {
            out.missing.push(s.name.clone());
            continue;
        };
        // Aliases share an offset: one jump covers them all.
        if out
            .patches
            .last()
            .is_some_and(|p: &Patch| p.addr == dumped.vdso.0 + s.offset)
        {
            continue;
        }
        let next = dumped_syms.symbols[i + 1..]
            .iter()
            .map(|n| n.offset)
            .find(|&o| o > s.offset)
            .unwrap_or(len);
        let room = next.min(len).saturating_sub(s.offset);
        if room < VDSO_JUMP_LEN as u64 {
            let code = usize::try_from(s.offset)
                .ok()
                .and_then(|at| dumped_code.get(at..at.checked_add(room as usize)?));
            if code.is_some_and(criu_arch::vdso_is_syscall_stub) {
                out.stubs.push(s.name.clone());
                continue;
            }
            return Err(VdsoError::TooSmall {
                name: s.name.clone(),
                offset: s.offset,
                room,
            });
        }
        out.patches.push(Patch {
            addr: dumped.vdso.0 + s.offset,
            code: vdso_jump(rt_vdso + to),
        });
    }
    Ok(out)
}

/// Symbols of the vDSO image `data`, errors naming `what` it is.
pub fn symbols_of(what: &str, data: &[u8]) -> Result<Symtab, VdsoError> {
    elf::symbols(data).map_err(|source| VdsoError::Elf {
        what: what.to_string(),
        source,
    })
}

#[cfg(test)]
pub(crate) mod synthetic;

/// How a task's vDSO is restored (decided by the restore, per task, before
/// anything is created).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum VdsoPlan {
    /// No vDSO in the images: this kernel's is unmapped.
    #[default]
    Nothing,
    /// This kernel's vDSO and vvar go where the dumped ones were.
    InPlace(Layout),
    /// The dumped vDSO (`dumped`, with its function symbols `syms` and
    /// its bytes `code`) is restored from its pages and patched into a
    /// proxy; its VMAs are now ordinary memory in the task's images.
    Proxy {
        dumped: Layout,
        syms: Symtab,
        code: Vec<u8>,
    },
}

#[cfg(test)]
mod tests;
