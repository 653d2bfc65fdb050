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
