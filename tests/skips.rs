//! The reviewed list of skip reasons (tests/skips-allowed.txt) parses, and
//! its scopes mean what the strict mode takes them for.

#[path = "common/skipping.rs"]
mod skipping;

use skipping::{allowed_list, is_allowed};

#[test]
fn the_reviewed_list_parses_and_is_short() {
    let text = include_str!("skips-allowed.txt");
    let list = allowed_list(text);
    assert!(!list.is_empty());
    // "Short": every entry needs a reviewer's reason; keep it that way.
    assert!(list.len() <= 40, "{} entries", list.len());
    for a in &list {
        let arch_ok = a.scope == "*"
            || ["x86_64", "aarch64", "powerpc64", "s390x"]
                .iter()
                .any(|arch| a.scope == *arch || a.scope == format!("!{arch}"));
        assert!(arch_ok, "unknown scope {:?} for {:?}", a.scope, a.reason);
    }
    // Nothing that would let a root x86_64 run pass by skipping for lack
    // of privilege or of a tool tests/run installs.
    for why in [
        "needs root",
        "criu check needs root",
        "CRIU's crit is not installed (Debian package criu)",
    ] {
        assert!(!is_allowed(text, "x86_64", why), "{why}");
    }
}

#[test]
fn scopes_select_architectures() {
    let text = "!x86_64 | qemu | why\naarch64 | pac | why\n* | any | why\n";
    assert!(is_allowed(text, "aarch64", "qemu says no"));
    assert!(!is_allowed(text, "x86_64", "qemu says no"));
    assert!(is_allowed(text, "aarch64", "pac missing"));
    assert!(!is_allowed(text, "s390x", "pac missing"));
    assert!(is_allowed(text, "x86_64", "anything"));
    assert!(!is_allowed(text, "x86_64", "something else"));
}

#[test]
#[should_panic(expected = "bad line")]
fn a_line_without_a_reason_is_rejected() {
    allowed_list("x86_64 | no reason given\n");
}
