//! clone3: to be written.
