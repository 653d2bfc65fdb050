//! crit's JSON form of images (pycriu `pb2dict.py` + `images.py`).

mod convert;
mod image;
mod message;
pub mod pyjson;
mod schema;
mod wire;

pub use image::{DecodeOptions, Decoded, decode_image, encode_image, encode_image_in};
pub use schema::{CriuOpts, message as message_descriptor, opts as field_opts};

/// Decodes one protobuf message by its proto name (`criu_req`, …) to
/// crit-style JSON; used by tools and fuzz targets.
pub fn decode_message(name: &str, data: &[u8], pretty: bool) -> super::Result<serde_json::Value> {
    let desc = schema::message(name)?;
    let m = prost_reflect::DynamicMessage::decode(desc, data).map_err(|e| {
        super::ImageError::Decode {
            file: "<message>".into(),
            message: name.to_string(),
            offset: 0,
            reason: e.to_string(),
        }
    })?;
    Ok(message::to_json(&m, pretty, false))
}
