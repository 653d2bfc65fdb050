//! Message → wire bytes for `encode`.
//!
//! protobuf-c (what CRIU writes with) emits fields sorted by field number,
//! packed only where the `.proto` says `[packed = true]`; prost-reflect's
//! encoder does the same, so its output is byte-identical to CRIU's. The
//! fixture tests (`tests/images_fixtures.rs`) pin this down.

use prost_reflect::DynamicMessage;
use prost_reflect::prost::Message;

/// The wire encoding of `m`, as protobuf-c would write it.
pub fn encode(m: &DynamicMessage) -> Vec<u8> {
    m.encode_to_vec()
}
