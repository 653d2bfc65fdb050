//! The one way a test skips: [`skip`] names the test and the reason.
//!
//! Every skip is printed (`SKIPPED test: why`, on stderr directly: libtest
//! captures only the print macros, and a skip must show even when the test
//! passes) and, when `CRIU_SKIP_LOG` names a file, appended to it as
//! `ARCH<TAB>TEST<TAB>WHY` so that `tests/run` can count the skips of each
//! architecture.
//!
//! In strict mode (`CRIU_STRICT_SKIPS=1`, which `tests/run` sets in CI) a
//! skip whose reason is not on the reviewed list `tests/skips-allowed.txt`
//! for this architecture fails the test: a test that passes by skipping
//! proves nothing, so it may skip only for a reason someone has accepted.
//!
//! Test files that do not use the rest of `common` include this module
//! alone (`#[path = "common/skipping.rs"] mod skipping;`).
#![allow(dead_code)] // Each test binary uses a different part of it.

use std::io::Write;

/// The reviewed list: `SCOPE | REASON PREFIX | WHY IT IS ACCEPTABLE`.
const ALLOWED: &str = include_str!("../skips-allowed.txt");

/// One accepted skip reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Allowed<'a> {
    /// `*`, an architecture (`std::env::consts::ARCH`), or `!ARCH`.
    pub scope: &'a str,
    /// A skip reason starting with this is accepted.
    pub reason: &'a str,
    /// Why it is acceptable (reviewed text, not used by the check).
    pub why: &'a str,
}

/// The entries of the list (comments and blank lines left out). A line
/// without three `|`-separated fields is a broken list: it panics.
pub fn allowed_list(text: &str) -> Vec<Allowed<'_>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut f = l.splitn(3, '|').map(str::trim);
            match (f.next(), f.next(), f.next()) {
                (Some(scope), Some(reason), Some(why))
                    if !scope.is_empty() && !reason.is_empty() && !why.is_empty() =>
                {
                    Allowed { scope, reason, why }
                }
                _ => panic!("tests/skips-allowed.txt: bad line (want SCOPE | REASON | WHY): {l}"),
            }
        })
        .collect()
}

fn scope_matches(scope: &str, arch: &str) -> bool {
    match scope.strip_prefix('!') {
        Some(not) => not != arch,
        None => scope == "*" || scope == arch,
    }
}

/// Whether a skip for `why` on `arch` is on the reviewed list.
pub fn is_allowed(text: &str, arch: &str, why: &str) -> bool {
    allowed_list(text)
        .iter()
        .any(|a| scope_matches(a.scope, arch) && why.starts_with(a.reason))
}

fn strict() -> bool {
    std::env::var_os("CRIU_STRICT_SKIPS").is_some_and(|v| v == "1")
}

/// Skip `test` because of `why` (see the module docs): say so, record it,
/// and in strict mode fail unless the reason is on the reviewed list.
pub fn skip(test: &str, why: &str) {
    let arch = std::env::consts::ARCH;
    // One write: `writeln!` on the unbuffered stderr writes each piece
    // separately, and the harness's `test NAME ... ok` lines (stdout, the
    // same console in the VMs) landed between them.
    let _ = std::io::stderr().write_all(format!("SKIPPED {test}: {why}\n").as_bytes());
    if let Some(path) = std::env::var_os("CRIU_SKIP_LOG") {
        let line = format!("{arch}\t{test}\t{}\n", why.replace(['\t', '\n'], " "));
        // One write of one short line to an O_APPEND file: lines of tests
        // running in parallel do not interleave.
        let logged = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = logged {
            panic!("{test}: cannot record the skip in {path:?}: {e}");
        }
    }
    if strict() && !is_allowed(ALLOWED, arch, why) {
        panic!(
            "{test} skipped on {arch} for a reason not on tests/skips-allowed.txt \
             (strict mode, CRIU_STRICT_SKIPS=1): {why}"
        );
    }
}
