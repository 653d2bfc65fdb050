//! membarrier(2) registrations of the process (per mm, kept in
//! `task_core_entry.membarrier_registration_mask`): global expedited,
//! private expedited and private expedited sync-core (where the arch
//! has it). After restore
//! `MEMBARRIER_CMD_GET_REGISTRATIONS` must answer the same mask and a
//! private expedited barrier must work (it fails with EPERM in a process
//! that is not registered).
#[path = "lib.rs"]
mod zdtm;

use criu_arch::{nr, syscall3};

const CMD_REGISTER_GLOBAL_EXPEDITED: usize = 1 << 2;
const CMD_PRIVATE_EXPEDITED: usize = 1 << 3;
const CMD_REGISTER_PRIVATE_EXPEDITED: usize = 1 << 4;
const CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: usize = 1 << 6;
const CMD_GET_REGISTRATIONS: usize = 1 << 9;
const EINVAL: isize = 22;

fn membarrier(cmd: usize, what: &str) -> Result<usize, String> {
    // SAFETY: integer arguments only.
    zdtm::errno(unsafe { syscall3(nr::MEMBARRIER, cmd, 0, 0) }, what)
}

fn setup(_: &zdtm::Args) -> Result<usize, String> {
    let mut want = 0;
    for (cmd, what) in [
        (CMD_REGISTER_GLOBAL_EXPEDITED, "REGISTER_GLOBAL_EXPEDITED"),
        (CMD_REGISTER_PRIVATE_EXPEDITED, "REGISTER_PRIVATE_EXPEDITED"),
        (
            CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
            "REGISTER_PRIVATE_EXPEDITED_SYNC_CORE",
        ),
    ] {
        // SAFETY: integer arguments only.
        let ret = unsafe { syscall3(nr::MEMBARRIER, cmd, 0, 0) };
        // Sync-core exists only where the arch supports it.
        if ret == -EINVAL && cmd == CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE {
            continue;
        }
        zdtm::errno(ret, what)?;
        want |= cmd;
    }
    let got = membarrier(CMD_GET_REGISTRATIONS, "GET_REGISTRATIONS")?;
    zdtm::ensure(got == want, || {
        format!("setup: registrations {got:#x}, want {want:#x}")
    })?;
    Ok(want)
}

fn check(want: usize) -> Result<(), String> {
    let got = membarrier(CMD_GET_REGISTRATIONS, "GET_REGISTRATIONS")?;
    zdtm::ensure(got == want, || {
        format!("registrations {got:#x} after restore, want {want:#x}")
    })?;
    membarrier(CMD_PRIVATE_EXPEDITED, "PRIVATE_EXPEDITED after restore").map(drop)
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
