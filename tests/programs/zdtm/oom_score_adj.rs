//! `/proc/self/oom_score_adj` raised to 345 (raising needs no privilege);
//! after restore it must read 345 again, not the restoring tool's value.
#[path = "lib.rs"]
mod zdtm;

fn main() {
    zdtm::run_proc_value("/proc/self/oom_score_adj", "345");
}
