//! Generated protobuf types: to be written.
