//! log: to be written.
