//! A counting loop: a counter in a static, one on the stack and one on the
//! heap advance together while the program waits, and every 64th value is
//! written to `DIR/progress`. After restore the three must still agree and
//! counting must go on (the harness checks that `progress` moves on from
//! the value it had at the dump).
#[path = "lib.rs"]
mod zdtm;

use std::sync::atomic::{AtomicU64, Ordering};

static COUNT: AtomicU64 = AtomicU64::new(0);

struct State {
    stack_count: u64,
    heap_count: Box<u64>,
    progress: std::path::PathBuf,
}

fn main() {
    zdtm::run(
        |args| {
            Ok(State {
                stack_count: 0,
                heap_count: Box::new(0),
                progress: args.dir.join("progress"),
            })
        },
        |s| {
            let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
            s.stack_count += 1;
            *s.heap_count += 1;
            if n == 1 || n.is_multiple_of(64) {
                let _ = zdtm::write_atomic(&s.progress, &n.to_string());
            }
        },
        |s| {
            let n = COUNT.load(Ordering::Relaxed);
            zdtm::ensure(s.stack_count == n && *s.heap_count == n, || {
                format!(
                    "counters disagree: static {n}, stack {}, heap {}",
                    s.stack_count, s.heap_count
                )
            })?;
            let before: u64 = std::fs::read_to_string(&s.progress)
                .map_err(|e| format!("read progress: {e}"))?
                .trim()
                .parse()
                .map_err(|e| format!("progress: {e}"))?;
            zdtm::ensure(n >= before, || {
                format!("count {n} went back below {before}")
            })?;
            // And it still counts.
            let mut x = s.stack_count;
            for _ in 0..1000 {
                x = std::hint::black_box(x) + 1;
            }
            zdtm::ensure(x == n + 1000, || "counting is broken".into())
        },
    );
}
