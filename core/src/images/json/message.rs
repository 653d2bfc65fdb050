//! One protobuf message ↔ crit's JSON object (pycriu `pb2dict`/`dict2pb`),
//! generic over every message through prost-reflect descriptors.

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};
use serde_json::{Map, Number, Value as Json};

use super::convert;
use super::schema::{self, CriuOpts};

/// Message → JSON object: only the fields that are set, in field-number
/// order, named as in the `.proto`. `pretty` applies the `(criu)` options;
/// `hex` is inherited from a parent field marked hex.
pub fn to_json(msg: &DynamicMessage, pretty: bool, hex: bool) -> Json {
    let mut obj = Map::new();
    for (field, value) in msg.fields() {
        let opts = schema::opts(&field);
        let v = match value {
            Value::List(items) => {
                let words: Option<Vec<u32>> = items.iter().map(Value::as_u32).collect();
                match words
                    .filter(|_| pretty && opts.ipadd)
                    .and_then(|w| convert::ip_to_string(&w))
                {
                    Some(ip) => Json::Array(vec![Json::String(ip)]),
                    None => Json::Array(
                        items
                            .iter()
                            .map(|v| scalar_to_json(&field, opts, v, pretty, hex))
                            .collect(),
                    ),
                }
            }
            v => scalar_to_json(&field, opts, v, pretty, hex),
        };
        obj.insert(field.name().to_string(), v);
    }
    Json::Object(obj)
}

fn scalar_to_json(
    field: &FieldDescriptor,
    opts: &CriuOpts,
    v: &Value,
    pretty: bool,
    hex: bool,
) -> Json {
    let hex = hex || opts.hex;
    let int = |n: i128| int_to_json(field, opts, n, pretty, hex);
    match v {
        Value::Message(m) => to_json(m, pretty, hex),
        Value::Bytes(b) => Json::String(match opts.conv.as_deref() {
            Some("unix_name") => convert::qp_encode(b),
            _ => convert::base64_lines(b),
        }),
        Value::EnumNumber(n) => match field.kind().as_enum().and_then(|e| e.get_value(*n)) {
            Some(ev) => Json::String(ev.name().to_string()),
            // crit would crash on an unknown enum value; keep the number.
            None => Json::Number((*n).into()),
        },
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::I32(n) => int(i128::from(*n)),
        Value::I64(n) => int(i128::from(*n)),
        Value::U32(n) => int(i128::from(*n)),
        Value::U64(n) => int(i128::from(*n)),
        Value::F32(f) => Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
        Value::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        // CRIU's protos have no maps and lists are handled by the caller.
        Value::List(_) | Value::Map(_) => Json::Null,
    }
}

fn int_to_json(field: &FieldDescriptor, opts: &CriuOpts, n: i128, pretty: bool, hex: bool) -> Json {
    if pretty {
        if hex {
            return Json::String(convert::hex(n));
        }
        if opts.dev || opts.odev {
            return Json::String(convert::decode_dev(n as u64, opts.odev));
        }
        if let Some(name) = &opts.flags {
            return Json::String(match convert::flag_map(name) {
                Some(map) => convert::map_flags(n as u64, map),
                None => convert::hex(n),
            });
        }
        if let Some(dict) = &opts.dict
            && let Some((_, name)) = convert::dict_map(dict, field.name())
                .and_then(|m| m.iter().find(|(v, _)| i128::from(*v) == n))
        {
            return Json::String((*name).to_string());
        }
    }
    if n < 0 {
        Json::Number(Number::from(n as i64))
    } else {
        Json::Number(Number::from(n as u64))
    }
}

/// JSON object → message. Unknown keys, wrong types and out-of-range
/// numbers are errors; `at` is the JSON path used in messages.
pub fn from_json(
    desc: &MessageDescriptor,
    json: &Json,
    at: &str,
) -> Result<DynamicMessage, (String, String)> {
    let Json::Object(obj) = json else {
        return Err((
            at.to_string(),
            format!("expected an object for {}", desc.name()),
        ));
    };
    let mut msg = DynamicMessage::new(desc.clone());
    for (key, val) in obj {
        let here = format!("{at}.{key}");
        let field = desc
            .get_field_by_name(key)
            .ok_or_else(|| (here.clone(), format!("unknown field of {}", desc.name())))?;
        let opts = schema::opts(&field);
        let value = if field.is_list() {
            let Json::Array(items) = val else {
                return Err((here, "expected a list".into()));
            };
            match items.first() {
                Some(Json::String(s)) if opts.ipadd => {
                    let words =
                        convert::ip_from_string(s).map_err(|e| (here.clone(), e.to_string()))?;
                    Value::List(words.into_iter().map(Value::U32).collect())
                }
                _ => Value::List(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| scalar_from_json(&field, opts, v, &format!("{here}[{i}]")))
                        .collect::<Result<_, _>>()?,
                ),
            }
        } else {
            scalar_from_json(&field, opts, val, &here)?
        };
        msg.set_field(&field, value);
    }
    Ok(msg)
}

fn scalar_from_json(
    field: &FieldDescriptor,
    opts: &CriuOpts,
    v: &Json,
    at: &str,
) -> Result<Value, (String, String)> {
    let err = |m: String| (at.to_string(), m);
    let want = |what: &str| err(format!("expected {what}, found {}", json_type(v)));
    match field.kind() {
        Kind::Message(md) => from_json(&md, v, at).map(Value::Message),
        Kind::Bytes => {
            let s = v.as_str().ok_or_else(|| want("a string"))?;
            let bytes = match opts.conv.as_deref() {
                Some("unix_name") => convert::qp_decode(s),
                _ => convert::base64_decode(s).map_err(|e| err(e.to_string()))?,
            };
            Ok(Value::Bytes(bytes.into()))
        }
        Kind::Enum(ed) => match v {
            Json::String(s) => ed
                .get_value_by_name(s)
                .map(|ev| Value::EnumNumber(ev.number()))
                .ok_or_else(|| err(format!("{s:?} is not a value of enum {}", ed.name()))),
            Json::Number(n) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(Value::EnumNumber)
                .ok_or_else(|| err(format!("enum number {n} out of range"))),
            _ => Err(want("an enum name")),
        },
        Kind::Bool => v
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| want("true or false")),
        Kind::String => v
            .as_str()
            .map(|s| Value::String(s.to_string()))
            .ok_or_else(|| want("a string")),
        Kind::Float => v
            .as_f64()
            .map(|f| Value::F32(f as f32))
            .ok_or_else(|| want("a number")),
        Kind::Double => v.as_f64().map(Value::F64).ok_or_else(|| want("a number")),
        kind => {
            let n = match v {
                Json::Number(n) => n
                    .as_u64()
                    .map(i128::from)
                    .or_else(|| n.as_i64().map(i128::from))
                    .ok_or_else(|| err(format!("{n} is not an integer")))?,
                Json::String(s) => int_from_text(field, opts, s).map_err(|e| err(e.to_string()))?,
                _ => return Err(want("an integer")),
            };
            int_value(&kind, n).ok_or_else(|| err(format!("{n} does not fit {kind:?}")))
        }
    }
}

/// An integer field given as text: device, flags, dictionary name, or a
/// Python integer literal (hex strings of pretty output).
fn int_from_text(
    field: &FieldDescriptor,
    opts: &CriuOpts,
    s: &str,
) -> Result<i128, convert::ConvertError> {
    if (opts.dev || opts.odev) && s.contains(':') {
        return convert::encode_dev(s, opts.odev);
    }
    if let Some(map) = opts.flags.as_deref().and_then(convert::flag_map) {
        return convert::unmap_flags(s, map);
    }
    if let Some(dict) = &opts.dict
        && let Some((v, _)) =
            convert::dict_map(dict, field.name()).and_then(|m| m.iter().find(|(_, n)| *n == s))
    {
        return Ok(i128::from(*v));
    }
    convert::parse_py_int(s)
}

fn int_value(kind: &Kind, n: i128) -> Option<Value> {
    Some(match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(i32::try_from(n).ok()?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(i64::try_from(n).ok()?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(u32::try_from(n).ok()?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(u64::try_from(n).ok()?),
        _ => return None,
    })
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// The first required field missing in `msg` or its sub-messages, as a
/// dotted path (protobuf-c refuses such messages, and so does crit).
pub fn missing_required(msg: &DynamicMessage) -> Option<String> {
    for field in msg.descriptor().fields() {
        if field.cardinality() == prost_reflect::Cardinality::Required && !msg.has_field(&field) {
            return Some(field.name().to_string());
        }
    }
    for (field, value) in msg.fields() {
        let inner =
            |m: &DynamicMessage| missing_required(m).map(|p| format!("{}.{p}", field.name()));
        let found = match value {
            Value::Message(m) => inner(m),
            Value::List(items) => items.iter().find_map(|v| v.as_message().and_then(inner)),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}
