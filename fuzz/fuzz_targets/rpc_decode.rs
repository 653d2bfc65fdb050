//! RPC messages (`criu_req` from clients, `criu_resp` from criu) through
//! the generated prost types and the reflective decoder.

#![no_main]

use criu_core::images::json;
use criu_core::images::pb::rpc::{CriuReq, CriuResp};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = CriuReq::decode(data) {
        let again =
            CriuReq::decode(req.encode_to_vec().as_slice()).expect("re-encoded request decodes");
        assert_eq!(again, req);
    }
    if let Ok(resp) = CriuResp::decode(data) {
        let again =
            CriuResp::decode(resp.encode_to_vec().as_slice()).expect("re-encoded response decodes");
        assert_eq!(again, resp);
    }
    let _ = json::decode_message("criu_req", data, true);
    let _ = json::decode_message("criu_resp", data, false);
});
