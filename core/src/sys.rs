//! sys: to be written.
