//! Who may run dump and restore: root, or (with `--unprivileged`) any user
//! whose criu holds CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN), as CRIU
//! checks before it starts.

use criu_core::{pr_err, pr_msg};

const CAP_SYS_ADMIN: u32 = linux_raw_sys::general::CAP_SYS_ADMIN;
const CAP_CHECKPOINT_RESTORE: u32 = linux_raw_sys::general::CAP_CHECKPOINT_RESTORE;

/// `Err(())` after saying what is missing and how to get it.
pub fn check(unprivileged: bool) -> Result<(), ()> {
    if !unprivileged {
        if !rustix::process::geteuid().is_root() {
            pr_err!("Running as non-root requires '--unprivileged'");
            return Err(());
        }
        return Ok(());
    }
    let eff = effective_caps().unwrap_or(0);
    if eff & (1 << CAP_CHECKPOINT_RESTORE) != 0 || eff & (1 << CAP_SYS_ADMIN) != 0 {
        return Ok(());
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "criu".into());
    pr_msg!("CRIU needs to have the CAP_SYS_ADMIN or the CAP_CHECKPOINT_RESTORE capability: ");
    pr_msg!("setcap cap_checkpoint_restore+eip {exe}");
    Err(())
}

/// The effective capability set (`CapEff` of /proc/self/status).
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}
