//! This process's own vDSO image, read in place: `/proc/self/mem` is not
//! readable by a non-dumpable process (a capability-enabled binary, as
//! `--unprivileged` uses), and the vDSO is mapped readable in every
//! process anyway.

/// The bytes of this process's `[vdso]` mapping `[start, end)`, as
/// `/proc/self/maps` names it.
///
/// `None` unless `/proc/self/maps` lists exactly that range as a readable
/// `[vdso]` (the kernel keeps the image there for the life of the process).
pub fn read(start: u64, end: u64) -> Option<Vec<u8>> {
    if end <= start || end - start > 1 << 20 {
        return None;
    }
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let listed = maps.lines().any(|l| {
        l.ends_with("[vdso]")
            && l.split_whitespace()
                .nth(1)
                .is_some_and(|p| p.starts_with('r'))
            && l.split_whitespace()
                .next()
                .and_then(|r| r.split_once('-'))
                .is_some_and(|(s, e)| {
                    u64::from_str_radix(s, 16) == Ok(start) && u64::from_str_radix(e, 16) == Ok(end)
                })
    });
    if !listed {
        return None;
    }
    // SAFETY: `[start, end)` is this process's readable `[vdso]` mapping
    // (just checked in /proc/self/maps); the kernel keeps it mapped and
    // unchanged while the process runs, and the tool never moves its own
    // vDSO (only restored children's), so the range stays valid for the
    // copy.
    let bytes =
        unsafe { std::slice::from_raw_parts(start as usize as *const u8, (end - start) as usize) };
    Some(bytes.to_vec())
}
