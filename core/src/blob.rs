//! blob: to be written.
