//! membarrier(2) registrations of the process (per mm, kept in
//! `task_core_entry.membarrier_registration_mask`): global expedited,
//! private expedited and private expedited sync-core (where the arch
//! has it). After restore
//! `MEMBARRIER_CMD_GET_REGISTRATIONS` must answer the same mask and a
//! private expedited barrier must work (it fails with EPERM in a process
//! that is not registered).
//!
//! Before Linux 6.3 there is no GET_REGISTRATIONS: the dump then finds
//! the private registrations by trying their barriers (as CRIU does; a
//! global one cannot be seen), so the program registers only those and
//! checks after restore that each registered barrier works.
#[path = "lib.rs"]
mod zdtm;

use criu_arch::{nr, syscall3};

use criu_arch::kernel::general::membarrier_cmd as cmd;

const CMD_REGISTER_GLOBAL_EXPEDITED: usize = cmd::MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED as usize;
const CMD_PRIVATE_EXPEDITED: usize = cmd::MEMBARRIER_CMD_PRIVATE_EXPEDITED as usize;
const CMD_REGISTER_PRIVATE_EXPEDITED: usize =
    cmd::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED as usize;
const CMD_PRIVATE_EXPEDITED_SYNC_CORE: usize =
    cmd::MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE as usize;
const CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: usize =
    cmd::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE as usize;
const CMD_GET_REGISTRATIONS: usize = cmd::MEMBARRIER_CMD_GET_REGISTRATIONS as usize;
const EINVAL: isize = criu_arch::kernel::errno::EINVAL as isize;

fn membarrier(cmd: usize, what: &str) -> Result<usize, String> {
    // SAFETY: integer arguments only.
    zdtm::errno(unsafe { syscall3(nr::MEMBARRIER, cmd, 0, 0) }, what)
}

/// The registrations made, and whether the kernel reports them.
struct State {
    want: usize,
    reported: bool,
}

fn setup(_: &zdtm::Args) -> Result<State, String> {
    // SAFETY: integer arguments only.
    let reported = unsafe { syscall3(nr::MEMBARRIER, CMD_GET_REGISTRATIONS, 0, 0) } != -EINVAL;
    let mut want = 0;
    for (cmd, what) in [
        (CMD_REGISTER_GLOBAL_EXPEDITED, "REGISTER_GLOBAL_EXPEDITED"),
        (CMD_REGISTER_PRIVATE_EXPEDITED, "REGISTER_PRIVATE_EXPEDITED"),
        (
            CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
            "REGISTER_PRIVATE_EXPEDITED_SYNC_CORE",
        ),
    ] {
        if !reported && cmd == CMD_REGISTER_GLOBAL_EXPEDITED {
            continue; // nothing could see it (module doc)
        }
        // SAFETY: integer arguments only.
        let ret = unsafe { syscall3(nr::MEMBARRIER, cmd, 0, 0) };
        // Sync-core exists only where the arch supports it.
        if ret == -EINVAL && cmd == CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE {
            continue;
        }
        zdtm::errno(ret, what)?;
        want |= cmd;
    }
    if reported {
        let got = membarrier(CMD_GET_REGISTRATIONS, "GET_REGISTRATIONS")?;
        zdtm::ensure(got == want, || {
            format!("setup: registrations {got:#x}, want {want:#x}")
        })?;
    }
    Ok(State { want, reported })
}

fn check(s: State) -> Result<(), String> {
    if s.reported {
        let got = membarrier(CMD_GET_REGISTRATIONS, "GET_REGISTRATIONS")?;
        zdtm::ensure(got == s.want, || {
            format!("registrations {got:#x} after restore, want {:#x}", s.want)
        })?;
    }
    membarrier(CMD_PRIVATE_EXPEDITED, "PRIVATE_EXPEDITED after restore")?;
    if s.want & CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE != 0 {
        membarrier(
            CMD_PRIVATE_EXPEDITED_SYNC_CORE,
            "PRIVATE_EXPEDITED_SYNC_CORE after restore",
        )?;
    }
    Ok(())
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
