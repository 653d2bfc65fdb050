//! The whole address space: after restore /proc/self/maps must list the
//! same VMAs as before the dump (same bounds, permissions, offsets, files),
//! with nothing of the restorer left behind. Tolerated, as with CRIU: the
//! `[stack]` VMA may start one page lower (no more) (the recorded guard page of a
//! grows-down VMA), and the `[heap]` may end elsewhere (the check itself
//! allocates).
#[path = "lib.rs"]
mod zdtm;

/// The maps lines (with the tolerated differences taken out) and where
/// the `[stack]` starts.
fn layout() -> Result<(Vec<String>, usize), String> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    let mut stack = 0;
    let lines = maps
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (start, end) = f[0].split_once('-').unwrap_or(("", ""));
            let rest = f[1..].join(" ");
            if l.ends_with("[stack]") {
                stack = usize::from_str_radix(start, 16).unwrap_or(0);
                format!("?-{end} {rest}")
            } else if l.ends_with("[heap]") {
                format!("{start}-? {rest}")
            } else {
                format!("{start}-{end} {rest}")
            }
        })
        .collect();
    Ok((lines, stack))
}

fn main() {
    zdtm::run(
        |_| {
            // Take the picture twice so that the first read's allocations
            // have settled.
            let _ = layout()?;
            layout()
        },
        |_| {},
        |(before, stack_before)| {
            let (after, stack_after) = layout()?;
            let gone: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
            let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
            zdtm::ensure(gone.is_empty() && new.is_empty(), || {
                format!("VMAs changed: gone {gone:?}, new {new:?}")
            })?;
            zdtm::ensure(
                stack_after == stack_before || stack_after == stack_before - zdtm::page(),
                || format!("[stack] starts at {stack_after:#x}, was {stack_before:#x}"),
            )
        },
    );
}
