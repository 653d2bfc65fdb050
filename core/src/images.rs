//! images: to be written.
