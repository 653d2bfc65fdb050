//! Arches where CRIU records no CPU capabilities (aarch64): nothing is
//! written, nothing checked.

use super::CpuinfoError;
use crate::images::pb;
use crate::opts::CpuCap;

pub const RECORDS: bool = false;

pub fn describe() -> Result<Option<pb::CpuinfoEntry>, CpuinfoError> {
    Ok(None)
}

pub fn validate(_: &pb::CpuinfoEntry, _: CpuCap) -> Result<(), CpuinfoError> {
    Ok(())
}
