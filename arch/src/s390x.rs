//! s390x: to be written (same items as x86_64).
