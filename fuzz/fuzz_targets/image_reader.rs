//! Image bytes → crit JSON, and the streaming reader with the generated
//! types. Oracle: whatever decodes must encode, and the encoding must
//! decode to the same JSON (it need not be the same bytes: the input may
//! use non-canonical protobuf, such as overlong varints or repeated fields).

#![no_main]

use std::io::Cursor;

use criu_core::images::json::{self, DecodeOptions};
use criu_core::images::{ImageReader, KINDS, pb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, img)) = data.split_first() else {
        return;
    };
    let opts = DecodeOptions {
        pretty: sel & 1 == 1,
        nopl: sel & 2 == 2,
    };
    let _ = json::decode_image(img, "fuzz", opts);

    if let Ok(d) = json::decode_image(img, "fuzz", DecodeOptions::default())
        && d.warnings.is_empty()
    {
        let bytes = json::encode_image(&d.json, "fuzz").expect("decoded JSON must encode");
        let again = json::decode_image(&bytes, "fuzz", DecodeOptions::default())
            .expect("our encoding must decode");
        assert_eq!(again.json, d.json, "decode(encode(json)) != json");
    }

    // The typed, streaming path used by dump and restore.
    let kind = KINDS[usize::from(sel) % KINDS.len()].kind;
    if let Ok(mut r) = ImageReader::new(Cursor::new(img), "fuzz", None, kind) {
        while let Ok(Some(_)) = r.next_message::<pb::CoreEntry>() {}
    }
    if let Ok(mut r) = ImageReader::new(Cursor::new(img), "fuzz", Some(img.len() as u64), kind) {
        while let Ok(Some(e)) = r.next_entry() {
            if r.payload(u64::from(e.data.first().copied().unwrap_or(0)))
                .is_err()
            {
                break;
            }
        }
    }
});
