//! pagemap_scan: to be written.
