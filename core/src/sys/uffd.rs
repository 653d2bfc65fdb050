//! uffd: to be written.
