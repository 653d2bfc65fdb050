//! `cpuinfo.img`: the dumping CPU's capabilities, written at dump and
//! checked at restore when `--cpu-cap` asks for it (its `IMAGE` bit), and
//! by `criu cpuinfo dump|check`. A task whose saved register state (the
//! FPU/XSAVE components, instructions it may use) this CPU cannot give back
//! is refused before anything is created, with CRIU's messages.
//!
//! What is recorded and compared is per arch, as in CRIU: x86_64 records
//! CPUID capability words and the XSAVE layout (`x86_64.rs`); ppc64 and
//! s390x record the kernel's hwcaps (`hwcap.rs`); aarch64 records nothing
//! and checks nothing (CRIU's `cpu.c` there is empty).

use std::path::Path;

use crate::images::typed::ImageDir;
use crate::images::{Kind, pb};
use crate::opts::CpuCap;

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
use x86_64 as imp;

#[cfg(any(target_arch = "powerpc64", target_arch = "s390x"))]
mod hwcap;
#[cfg(any(target_arch = "powerpc64", target_arch = "s390x"))]
use hwcap as imp;

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
mod none;
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
use none as imp;

/// Why the CPU cannot be described or does not match the image. The
/// texts are CRIU's (with its `cpu: ` prefix).
#[derive(Debug, thiserror::Error)]
pub enum CpuinfoError {
    #[error(transparent)]
    Image(#[from] crate::images::error::ImageError),
    /// This CPU cannot be described (unknown vendor, no FPU).
    #[error("cpu: {0}")]
    Host(String),
    /// The image is not one this arch can read.
    #[error("cpu: {0}")]
    BadImage(String),
    /// The image asks for something this CPU lacks.
    #[error("cpu: {0}")]
    Mismatch(String),
}

/// The image's path in `dir`.
fn path(dir: &Path) -> std::path::PathBuf {
    ImageDir::new(dir).path(Kind::Cpuinfo, 0)
}

/// Writes `cpuinfo.img` into `dir` (CRIU's `cpu_dump_cpuinfo`); nothing
/// on an arch where CRIU records nothing.
pub fn dump(dir: &Path) -> Result<(), CpuinfoError> {
    let Some(entry) = imp::describe()? else {
        return Ok(());
    };
    crate::pr_info!("Writing cpuinfo.img");
    crate::images::write_one(&path(dir), Kind::Cpuinfo, &entry)?;
    Ok(())
}

/// Checks `cpuinfo.img` in `dir` against this CPU for the checks `cap`
/// asks for (CRIU's `cpu_validate_cpuinfo`).
pub fn validate(dir: &Path, cap: CpuCap) -> Result<(), CpuinfoError> {
    if !imp::RECORDS {
        return Ok(());
    }
    let p = path(dir);
    if !p.exists() {
        return Err(CpuinfoError::BadImage("No cpuinfo image".into()));
    }
    let entry: pb::CpuinfoEntry = crate::images::read_one(&p, Kind::Cpuinfo)?;
    imp::validate(&entry, cap)
}

/// At dump: `cpuinfo.img` when `cap` has the image bit.
pub fn dump_if_asked(dir: &Path, cap: CpuCap) -> Result<(), CpuinfoError> {
    if cap.0 & CpuCap::IMAGE != 0 {
        dump(dir)?;
    }
    Ok(())
}

/// At restore: the check when `cap` has the image bit.
pub fn validate_if_asked(dir: &Path, cap: CpuCap) -> Result<(), CpuinfoError> {
    if cap.0 & CpuCap::IMAGE != 0 {
        validate(dir, cap)?;
    }
    Ok(())
}

/// `criu cpuinfo check`: with no capability asked for, everything is
/// checked (CRIU's `cpuinfo_check`).
pub fn check_command(dir: &Path, cap: CpuCap) -> Result<(), CpuinfoError> {
    let cap = if cap.0 == CpuCap::NONE {
        CpuCap(CpuCap::ALL)
    } else {
        cap
    };
    validate(dir, cap)
}

/// Whether `criu cpuinfo dump|check` exist on this arch (not on aarch64,
/// as in CRIU).
pub const COMMANDS: bool = imp::RECORDS;
