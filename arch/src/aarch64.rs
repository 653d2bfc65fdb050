//! aarch64: to be written (same items as x86_64).
