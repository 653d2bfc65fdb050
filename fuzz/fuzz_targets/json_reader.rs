//! JSON text → image bytes (crit encode). Oracle: what encodes must decode,
//! and to JSON that encodes to the very same bytes.

#![no_main]

use criu_core::images::json::{self, DecodeOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(bytes) = json::encode_image(&value, "fuzz") else {
        return;
    };
    for pretty in [false, true] {
        let d = json::decode_image(
            &bytes,
            "fuzz",
            DecodeOptions {
                pretty,
                nopl: false,
            },
        )
        .expect("our own encoding must decode");
        let again = json::encode_image(&d.json, "fuzz").expect("decoded JSON must encode");
        assert!(
            again == bytes,
            "encode(decode(bytes)) != bytes (pretty={pretty})"
        );
    }
});
