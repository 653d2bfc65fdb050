//! check: to be written.
