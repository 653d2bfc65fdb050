//! The dumped registers of a task as the signal frame the restorer returns
//! through, plus the per-arch state a frame does not carry. The conversion
//! from CRIU's per-arch `thread_info_*` messages is the arch part of core,
//! in `crate::regs`; this adds restore's error type.

use crate::images::pb;
use crate::regs::RegsError;

use super::RestoreError;

pub use crate::regs::{Frame, HostFpu};

/// The frame at `frame_addr` that resumes the thread of `core` with
/// `sigmask` (see `crate::regs::frame_for`).
pub fn frame_for(
    core: &pb::CoreEntry,
    frame_addr: u64,
    sigmask: u64,
    host: &HostFpu,
) -> Result<Frame, RestoreError> {
    crate::regs::frame_for(core, frame_addr, sigmask, host).map_err(|e| match e {
        RegsError::Invalid(what) => RestoreError::Invalid {
            file: "core".into(),
            what,
        },
        other => RestoreError::Unsupported(other.to_string()),
    })
}
