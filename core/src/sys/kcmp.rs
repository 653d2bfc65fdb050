//! kcmp: to be written.
