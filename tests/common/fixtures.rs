//! The CRIU 4.2 image fixtures, kept in the repository
//! (`tests/fixtures/criu-4.2-images`, see its README). Their absence is a
//! broken checkout, not a reason to skip: every caller panics.
//!
//! Test files that do not use the rest of `common` include this module
//! alone (`#[path = "common/fixtures.rs"] mod fixtures;`).
#![allow(dead_code)] // Each test binary uses a different part of it.

use std::path::PathBuf;

/// `tests/fixtures/criu-4.2-images`, which must exist.
pub fn criu_images() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/criu-4.2-images");
    assert!(
        dir.is_dir(),
        "the fixture images are missing: {} (they are part of the repository)",
        dir.display()
    );
    dir
}

/// One fixture image directory (`loop`, `fds`, `tree`, `signals`).
pub fn criu_image_dir(name: &str) -> PathBuf {
    let dir = criu_images().join(name);
    assert!(dir.is_dir(), "fixture {} is missing", dir.display());
    dir
}

/// The fixtures were made on x86_64, so their magics and length prefixes
/// are little-endian, and CRIU (and we) write in the host's order. This
/// gives an entry-framed fixture (no payloads after its entries) the bytes
/// the same image has when written on this machine, by swapping its header
/// words and length prefixes on a big-endian host. It walks the framing by
/// hand, independently of the code under test.
pub fn in_native_order(img: &[u8]) -> Vec<u8> {
    let mut out = img.to_vec();
    if cfg!(target_endian = "little") {
        return out;
    }
    const INVENTORY: u32 = 0x5831_3116;
    let word = |at: usize| u32::from_le_bytes(img[at..at + 4].try_into().unwrap());
    let mut swap = |at: usize| out[at..at + 4].reverse();
    let mut at = if word(0) == INVENTORY { 4 } else { 8 };
    for header in (0..at).step_by(4) {
        swap(header);
    }
    while at < img.len() {
        let len = word(at) as usize;
        swap(at);
        at += 4 + len;
    }
    assert_eq!(at, img.len(), "not an entry-framed image");
    out
}
