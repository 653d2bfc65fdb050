//! An architecture whose registers are not converted yet (none of the
//! four supported ones):
//! dump and restore say so.

use rustix::process::Pid;

use super::{Frame, RegsError};
use crate::images::pb;
use crate::infect::ExtRegs;

fn unsupported() -> RegsError {
    RegsError::Unsupported(format!(
        "registers of {} are not dumped or restored yet",
        std::env::consts::ARCH
    ))
}

pub fn fill_thread_info(
    _pid: i32,
    _core: &mut pb::CoreEntry,
    _gp: &criu_arch::GpRegs,
    _ext: &ExtRegs,
    _clear_tid_addr: u64,
) -> Result<(), RegsError> {
    Err(unsupported())
}

/// This kernel's FPU state format (not needed until the arch is done).
/// (A struct with a private field, not a unit struct, so that
/// arch-neutral callers build it with `default()` on every arch.)
#[derive(Clone, Copy, Debug, Default)]
pub struct HostFpu {
    _none: (),
}

impl HostFpu {
    pub fn probe(_pid: Pid) -> Result<HostFpu, rustix::io::Errno> {
        Ok(HostFpu::default())
    }
}

/// Nothing to check until registers are restored here ([`frame_for`]
/// refuses).
pub fn validate(_core: &pb::CoreEntry, _task_size: u64) -> Result<(), RegsError> {
    Ok(())
}

pub fn frame_for(
    _core: &pb::CoreEntry,
    _frame_addr: u64,
    _sigmask: u64,
    _host: &HostFpu,
) -> Result<Frame, RegsError> {
    Err(unsupported())
}

/// Register sets to write by ptrace into a restored thread before it runs:
/// none here (everything goes through the frame and raw syscalls).
pub fn ptrace_regsets(_core: &pb::CoreEntry) -> Vec<(u32, Vec<u8>)> {
    Vec::new()
}

/// The notes of one thread in a core file: not written for this architecture yet
/// (`criu coredump` refuses rather than write wrong registers).
pub fn core_thread_notes(
    _core: &pb::CoreEntry,
    _status: &super::ThreadStatus,
) -> Result<Vec<super::CoreNote>, RegsError> {
    Err(super::core_notes_not_done("this architecture"))
}
