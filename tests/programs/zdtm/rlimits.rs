//! Resource limits: every limit is set to a distinctive value (soft below
//! hard, some hard limits lowered, some unlimited) and all sixteen must be
//! exactly the same after restore.
#[path = "lib.rs"]
mod zdtm;

use criu_arch::{nr, syscall4};
use zdtm::{ensure, errno};

const RLIM_NLIMITS: usize = 16;
const INFINITY: u64 = u64::MAX;

fn prlimit(resource: usize, new: Option<[u64; 2]>) -> Result<[u64; 2], String> {
    let mut old = [0u64; 2];
    let new_ptr = new.as_ref().map_or(0, |n| n.as_ptr() as usize);
    // SAFETY: prlimit64 on ourselves reads `new` (if any) and writes `old`,
    // both local arrays of two u64 (struct rlimit64).
    let ret = unsafe {
        syscall4(
            nr::PRLIMIT64,
            0,
            resource,
            new_ptr,
            old.as_mut_ptr() as usize,
        )
    };
    errno(ret, &format!("prlimit64({resource})"))?;
    Ok(old)
}

fn all() -> Result<Vec<[u64; 2]>, String> {
    (0..RLIM_NLIMITS).map(|r| prlimit(r, None)).collect()
}

fn setup() -> Result<Vec<[u64; 2]>, String> {
    // (resource, soft, hard); None keeps the hard limit as it is.
    let want: [(usize, u64, Option<u64>); 9] = [
        (0, 3_600, Some(7_200)),          // CPU seconds
        (1, 1 << 30, None),               // FSIZE
        (3, 6 << 20, None),               // STACK (soft only: the running stack is below it)
        (4, 0, Some(1 << 20)),            // CORE: hard lowered
        (7, 777, Some(1_000)),            // NOFILE
        (8, 64 << 10, None),              // MEMLOCK
        (9, INFINITY, None),              // AS
        (11, 100, None),                  // SIGPENDING
        (15, 2_000_000, Some(3_000_000)), // RTTIME
    ];
    for (res, soft, hard) in want {
        let hard = match hard {
            Some(h) => h,
            None => prlimit(res, None)?[1],
        };
        prlimit(res, Some([soft.min(hard), hard]))?;
    }
    all()
}

fn main() {
    zdtm::run(
        |_| setup(),
        |_| {},
        |before| {
            let now = all()?;
            for (r, (b, n)) in before.iter().zip(&now).enumerate() {
                ensure(b == n, || format!("rlimit {r}: {n:?}, was {b:?}"))?;
            }
            Ok(())
        },
    );
}
