//! `/proc/self/loginuid` set to 4321 (as the audit subsystem's login
//! would; setting it needs CAP_AUDIT_CONTROL); after restore it must read
//! 4321 again, not the restoring tool's (usually unset) value.
#[path = "lib.rs"]
mod zdtm;

fn main() {
    zdtm::run_proc_value("/proc/self/loginuid", "4321");
}
