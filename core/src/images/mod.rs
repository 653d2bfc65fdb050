//! CRIU image format: to be written.
pub mod pb;
