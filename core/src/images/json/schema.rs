//! The message descriptors (compiled from `core/proto` at build time) and
//! the `(criu)` field options crit uses for pretty printing.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost_reflect::{DescriptorError, DescriptorPool, FieldDescriptor, MessageDescriptor, Value};

use super::super::error::{ImageError, Result};
use super::super::pb::FILE_DESCRIPTOR_SET;

/// The custom options of one field (`opts.proto`'s `CRIU_Opts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CriuOpts {
    pub hex: bool,
    pub ipadd: bool,
    pub flags: Option<String>,
    pub dev: bool,
    pub odev: bool,
    pub dict: Option<String>,
    pub conv: Option<String>,
}

struct Schema {
    pool: DescriptorPool,
    /// Options of the fields that have any, by field full name.
    opts: HashMap<String, CriuOpts>,
}

static SCHEMA: OnceLock<std::result::Result<Schema, DescriptorError>> = OnceLock::new();
static NO_OPTS: CriuOpts = CriuOpts {
    hex: false,
    ipadd: false,
    flags: None,
    dev: false,
    odev: false,
    dict: None,
    conv: None,
};

fn schema() -> Result<&'static Schema> {
    SCHEMA
        .get_or_init(load)
        .as_ref()
        .map_err(|e| ImageError::Schema(e.to_string()))
}

fn load() -> std::result::Result<Schema, DescriptorError> {
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET)?;
    let mut opts = HashMap::new();
    if let Some(ext) = pool.get_extension_by_name("criu") {
        for msg in pool.all_messages() {
            for field in msg.fields() {
                let options = field.options();
                if !options.has_extension(&ext) {
                    continue;
                }
                if let Value::Message(m) = options.get_extension(&ext).as_ref() {
                    let flag =
                        |n: &str| m.get_field_by_name(n).and_then(|v| v.as_bool()) == Some(true);
                    let text = |n: &str| {
                        m.has_field_by_name(n)
                            .then(|| m.get_field_by_name(n))
                            .flatten()
                            .and_then(|v| v.as_str().map(str::to_string))
                    };
                    let o = CriuOpts {
                        hex: flag("hex"),
                        ipadd: flag("ipadd"),
                        flags: text("flags"),
                        dev: flag("dev"),
                        odev: flag("odev"),
                        dict: text("dict"),
                        conv: text("conv"),
                    };
                    if o != CriuOpts::default() {
                        opts.insert(field.full_name().to_string(), o);
                    }
                }
            }
        }
    }
    Ok(Schema { pool, opts })
}

/// The descriptor of a CRIU message by its proto name (`core_entry`).
pub fn message(name: &str) -> Result<MessageDescriptor> {
    let s = schema()?;
    s.pool
        .get_message_by_name(name)
        .or_else(|| s.pool.all_messages().find(|m| m.name() == name))
        .ok_or_else(|| ImageError::Schema(format!("no message {name} in the compiled protos")))
}

/// The `(criu)` options of `field` (all off when it has none).
pub fn opts(field: &FieldDescriptor) -> &'static CriuOpts {
    schema()
        .ok()
        .and_then(|s| s.opts.get(field.full_name()))
        .unwrap_or(&NO_OPTS)
}
