//! The THP-disable prctl of the process (`PR_SET_THP_DISABLE`, kept in
//! `mm_entry.thp_disabled`): after restore `PR_GET_THP_DISABLE` must
//! answer 1 again.
//!
//! Usage: `zdtm_thp_disable DIR [except-advised]`: with `except-advised`
//! THP is disabled except where `MADV_HUGEPAGE` asks for it (Linux 6.18's
//! `PR_THP_DISABLE_EXCEPT_ADVISED`, answered as 3), which CRIU's images
//! cannot describe: the dump must refuse it by name.
#[path = "lib.rs"]
mod zdtm;

use criu_arch::{nr, syscall5};

const PR_SET_THP_DISABLE: usize = 41;
const PR_GET_THP_DISABLE: usize = 42;
const PR_THP_DISABLE_EXCEPT_ADVISED: usize = 1 << 1;

fn get() -> Result<usize, String> {
    // SAFETY: integer arguments only.
    zdtm::errno(
        unsafe { syscall5(nr::PRCTL, PR_GET_THP_DISABLE, 0, 0, 0, 0) },
        "PR_GET_THP_DISABLE",
    )
}

fn setup(args: &zdtm::Args) -> Result<usize, String> {
    let flags = if args.rest.iter().any(|a| a == "except-advised") {
        PR_THP_DISABLE_EXCEPT_ADVISED
    } else {
        0
    };
    // SAFETY: integer arguments only.
    let ret = unsafe { syscall5(nr::PRCTL, PR_SET_THP_DISABLE, 1, flags, 0, 0) };
    zdtm::errno(ret, "PR_SET_THP_DISABLE")?;
    let v = get()?;
    let want = if flags != 0 { 3 } else { 1 };
    zdtm::ensure(v == want, || {
        format!("setup: PR_GET_THP_DISABLE {v}, want {want}")
    })?;
    Ok(v)
}

fn check(want: usize) -> Result<(), String> {
    let v = get()?;
    zdtm::ensure(v == want, || {
        format!("PR_GET_THP_DISABLE {v} after restore, want {want}")
    })
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
