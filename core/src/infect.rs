//! infect: to be written.
