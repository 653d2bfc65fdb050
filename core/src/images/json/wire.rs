//! Message → wire bytes for `encode`.
//!
//! protobuf-c (what CRIU writes with) packs fields in the order of its
//! generated field descriptors, which `protoc-c` sorts by field number
//! (`c_message.cc`: `qsort(..., compare_pfields_by_number)`), whatever the
//! declaration order in the `.proto` (e.g. `core_entry` declares
//! `ti_aarch64 = 8` before `tc = 3`). Repeated fields are packed only where
//! the `.proto` says `[packed = true]`. prost-reflect's encoder does the
//! same, so its output is byte-identical to CRIU's; the fixture tests
//! (`tests/images_fixtures.rs`) pin this down.

use prost_reflect::DynamicMessage;
use prost_reflect::prost::Message;

/// The wire encoding of `m`, as protobuf-c would write it.
pub fn encode(m: &DynamicMessage) -> Vec<u8> {
    m.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use prost_reflect::{DynamicMessage, Value};

    #[test]
    fn fields_go_out_in_number_order_not_declaration_order() {
        let desc = super::super::schema::message("core_entry").unwrap();
        let mut m = DynamicMessage::new(desc.clone());
        let set = |m: &mut DynamicMessage, name: &str| {
            let f = desc.get_field_by_name(name).unwrap();
            let sub = f.kind().as_message().unwrap().clone();
            m.set_field(&f, Value::Message(DynamicMessage::new(sub)));
        };
        m.set_field_by_name("mtype", Value::EnumNumber(3));
        set(&mut m, "ti_aarch64");
        set(&mut m, "ids");
        let bytes = super::encode(&m);
        // mtype (1), ids (4), ti_aarch64 (8): tags 0x08, 0x22, 0x42.
        assert_eq!(bytes, [0x08, 3, 0x22, 0, 0x42, 0]);
    }
}
