//! Whole images ↔ crit's JSON `{"magic": NAME, "entries": [...]}`, with
//! pycriu's special handlers: pagemap head, payloads after entries
//! ("extra"), ghost files, IPC namespaces.

use prost_reflect::{DynamicMessage, MessageDescriptor};
use serde_json::{Map, Value as Json, json};

use super::super::error::{ImageError, Result};
use super::super::kinds::{Framing, ImageKind, Payload};
use super::super::order::ByteOrder;
use super::super::reader::{Entry, ImageReader};
use super::super::writer::ImageWriter;
use super::{convert, message, schema};

/// How to decode.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeOptions {
    /// crit's `--pretty` (`show`): hex, flags, devices, addresses as text.
    pub pretty: bool,
    /// crit's `show --nopl`: payload sizes instead of payloads.
    pub nopl: bool,
}

/// A decoded image and what did not make it into the JSON.
#[derive(Debug)]
pub struct Decoded {
    pub json: Json,
    /// Unknown protobuf fields (kept by protobuf, dropped by crit's JSON).
    pub warnings: Vec<String>,
}

struct Dec<'a> {
    r: ImageReader<&'a [u8]>,
    opts: DecodeOptions,
    warnings: Vec<String>,
}

/// Decodes the image bytes `data`; `file` names it in errors.
pub fn decode_image(data: &[u8], file: &str, opts: DecodeOptions) -> Result<Decoded> {
    let r = ImageReader::detect(data, file, Some(data.len() as u64))?;
    let kind = r.kind();
    let mut d = Dec {
        r,
        opts,
        warnings: Vec::new(),
    };
    let name = kind.message.ok_or_else(|| ImageError::RawImage {
        file: file.to_string(),
        name: kind.name,
    })?;
    let desc = schema::message(name)?;
    let mut entries = Vec::new();
    match kind.framing {
        Framing::Raw => {
            return Err(ImageError::RawImage {
                file: file.to_string(),
                name: kind.name,
            });
        }
        Framing::Entries => {
            while let Some((_, j)) = d.next(&desc)? {
                entries.push(j);
            }
        }
        Framing::Pagemap => {
            let head = schema::message("pagemap_head")?;
            if let Some((_, j)) = d.next(&head)? {
                entries.push(j);
                while let Some((_, j)) = d.next(&desc)? {
                    entries.push(j);
                }
            }
        }
        Framing::Payload(p) => {
            while let Some((m, mut j)) = d.next(&desc)? {
                let extra = d.payload(p, &m)?;
                obj(&mut j).insert("extra".into(), extra);
                entries.push(j);
            }
        }
        Framing::GhostFile => d.ghost_file(&desc, &mut entries)?,
    }
    Ok(Decoded {
        json: json!({"magic": kind.name, "entries": entries}),
        warnings: d.warnings,
    })
}

fn obj(j: &mut Json) -> &mut Map<String, Json> {
    match j {
        Json::Object(m) => m,
        // message::to_json always builds an object.
        _ => unreachable!("message JSON is an object"),
    }
}

fn field_u64(m: &DynamicMessage, name: &str) -> u64 {
    m.get_field_by_name(name)
        .and_then(|v| v.as_u64().or_else(|| v.as_u32().map(u64::from)))
        .unwrap_or(0)
}

fn field_bool(m: &DynamicMessage, name: &str) -> bool {
    m.get_field_by_name(name)
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// The bytes of a SysV shared memory segment that follow its
/// `ipc_shm_entry`: `size` of them, unless `in_pagemaps` says the contents
/// are in the shmem pagemap and pages images instead (what CRIU 3.x and
/// later always write), when nothing follows.
fn shm_inline_size(m: &DynamicMessage) -> u64 {
    if field_bool(m, "in_pagemaps") {
        0
    } else {
        field_u64(m, "size")
    }
}

/// Rounds `x` up to a multiple of the power of two `to`.
fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

/// pycriu's `human_readable` for `--nopl`.
fn human_readable(n: u64) -> String {
    let mut num = n as f64;
    for unit in ["", "K", "M", "G", "T", "P", "E", "Z"] {
        if num < 1024.0 {
            return if num.fract() == 0.0 {
                format!("{num:.0}{unit}B")
            } else {
                format!("{num:.1}{unit}B")
            };
        }
        num /= 1024.0;
    }
    format!("{num:.1}YB")
}

impl Dec<'_> {
    fn decode(&mut self, desc: &MessageDescriptor, e: &Entry) -> Result<DynamicMessage> {
        let err = |reason: String| ImageError::Decode {
            file: self.r.file().to_string(),
            message: desc.name().to_string(),
            offset: e.offset,
            reason,
        };
        let m = DynamicMessage::decode(desc.clone(), e.data.as_slice())
            .map_err(|x| err(x.to_string()))?;
        if let Some(path) = message::missing_required(&m) {
            return Err(err(format!("required field {path} is missing")));
        }
        if let Some(path) = unknown_fields(&m) {
            self.warnings.push(format!(
                "{}: {} at offset {} has unknown fields ({path}); they are not shown",
                self.r.file(),
                desc.name(),
                e.offset
            ));
        }
        Ok(m)
    }

    fn next(&mut self, desc: &MessageDescriptor) -> Result<Option<(DynamicMessage, Json)>> {
        let Some(e) = self.r.next_entry()? else {
            return Ok(None);
        };
        let m = self.decode(desc, &e)?;
        let j = message::to_json(&m, self.opts.pretty, false);
        Ok(Some((m, j)))
    }

    fn bytes(&mut self, len: u64) -> Result<Json> {
        if self.opts.nopl {
            self.r.payload(len)?;
            return Ok(Json::String(format!("... <{}>", human_readable(len))));
        }
        Ok(Json::String(convert::base64_lines(&self.r.payload(len)?)))
    }

    fn payload(&mut self, p: Payload, m: &DynamicMessage) -> Result<Json> {
        match p {
            Payload::Field(name) => self.bytes(field_u64(m, name)),
            Payload::BpfMap => {
                self.bytes(field_u64(m, "keys_bytes") + field_u64(m, "values_bytes"))
            }
            Payload::TcpQueues => {
                let inq = self.bytes(field_u64(m, "inq_len"))?;
                let outq = self.bytes(field_u64(m, "outq_len"))?;
                Ok(json!({"inq": inq, "outq": outq}))
            }
            Payload::IpcShm => {
                let size = shm_inline_size(m);
                let extra = self.bytes(size)?;
                self.r.payload(round_up(size, 4) - size)?;
                Ok(extra)
            }
            Payload::IpcSem => {
                let size = 2 * field_u64(m, "nsems");
                let data = self.r.payload(size)?;
                self.r.payload(round_up(size, 8) - size)?;
                if self.opts.nopl {
                    return Ok(Json::String(format!("... <{}>", human_readable(size))));
                }
                Ok(Json::Array(
                    data.chunks_exact(2)
                        .map(|c| Json::from(self.r.order().read_u16([c[0], c[1]])))
                        .collect(),
                ))
            }
            Payload::IpcMsg => {
                let desc = schema::message("ipc_msg")?;
                let mut out = Vec::new();
                for _ in 0..field_u64(m, "qnum") {
                    let Some((msg, j)) = self.next(&desc)? else {
                        break;
                    };
                    let size = field_u64(&msg, "msize");
                    let data = self.r.payload(size)?;
                    self.r.payload(round_up(size, 8) - size)?;
                    out.push(message::to_json(&msg, false, false));
                    drop(j);
                    out.push(Json::String(convert::base64_lines(&data)));
                }
                Ok(Json::Array(out))
            }
        }
    }

    fn ghost_file(&mut self, desc: &MessageDescriptor, entries: &mut Vec<Json>) -> Result<()> {
        let Some((gf, mut j)) = self.next(desc)? else {
            return Err(ImageError::Empty {
                file: self.r.file().to_string(),
                message: desc.name().to_string(),
            });
        };
        if field_bool(&gf, "chunks") {
            entries.push(j);
            let chunk = schema::message("ghost_chunk_entry")?;
            while let Some((c, mut cj)) = self.next(&chunk)? {
                let len = field_u64(&c, "len");
                if self.opts.nopl {
                    self.r.payload(len)?;
                } else {
                    let extra = self.bytes(len)?;
                    obj(&mut cj).insert("extra".into(), extra);
                }
                entries.push(cj);
            }
        } else {
            let rest = self.r.rest()?;
            if !self.opts.nopl {
                obj(&mut j).insert("extra".into(), Json::String(convert::base64_lines(&rest)));
            }
            entries.push(j);
        }
        Ok(())
    }
}

/// Path of the first unknown field in `m` or its sub-messages.
fn unknown_fields(m: &DynamicMessage) -> Option<String> {
    if let Some(u) = m.unknown_fields().next() {
        return Some(format!("#{}", u.number()));
    }
    m.fields().find_map(|(f, v)| {
        let inner = |m: &DynamicMessage| unknown_fields(m).map(|p| format!("{}.{p}", f.name()));
        match v {
            prost_reflect::Value::Message(m) => inner(m),
            prost_reflect::Value::List(items) => {
                items.iter().find_map(|v| v.as_message().and_then(inner))
            }
            _ => None,
        }
    })
}

/// Encodes crit's JSON back into image bytes in this machine's byte order
/// (as CRIU's crit does); `file` names it in errors.
pub fn encode_image(json: &Json, file: &str) -> Result<Vec<u8>> {
    encode_image_in(json, file, ByteOrder::NATIVE)
}

/// Like [`encode_image`] in the byte order `order`: the JSON form has no
/// order of its own, so reproducing an image of another machine's order
/// byte for byte needs it said.
pub fn encode_image_in(json: &Json, file: &str, order: ByteOrder) -> Result<Vec<u8>> {
    let jerr = |at: &str, reason: String| ImageError::Json {
        file: file.to_string(),
        at: at.to_string(),
        reason,
    };
    let name = json
        .get("magic")
        .and_then(Json::as_str)
        .ok_or_else(|| jerr("magic", "missing or not a string".into()))?;
    let kind = ImageKind::by_name(name)
        .ok_or_else(|| jerr("magic", format!("unknown image magic {name:?}")))?;
    let entries = json
        .get("entries")
        .and_then(Json::as_array)
        .ok_or_else(|| jerr("entries", "missing or not a list".into()))?;
    let msg_name = kind
        .message
        .ok_or_else(|| jerr("magic", format!("{name} has no entries")))?;
    let desc = schema::message(msg_name)?;
    let mut e = Enc {
        w: ImageWriter::with_order(Vec::new(), file, kind.kind, order)?,
        file,
    };
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("entries[{i}]");
        let (body, extra) = split_extra(entry, &at).map_err(|(a, r)| jerr(&a, r))?;
        match kind.framing {
            Framing::Raw => unreachable!("raw kinds have no message"),
            Framing::Entries => {
                e.message(&desc, &body, &at)?;
            }
            Framing::Pagemap => {
                let d = if i == 0 {
                    schema::message("pagemap_head")?
                } else {
                    desc.clone()
                };
                e.message(&d, &body, &at)?;
            }
            Framing::Payload(p) => {
                let m = e.message(&desc, &body, &at)?;
                e.payload(p, &m, extra, &at)?;
            }
            Framing::GhostFile => {
                if i == 0 {
                    let m = e.message(&desc, &body, &at)?;
                    if !field_bool(&m, "chunks") {
                        e.base64(extra, &format!("{at}.extra"))?;
                    }
                } else {
                    let c = e.message(&schema::message("ghost_chunk_entry")?, &body, &at)?;
                    e.sized(extra, field_u64(&c, "len"), &format!("{at}.extra"))?;
                }
            }
        }
    }
    e.w.finish()
}

/// An entry without its `"extra"` key, and that key's value.
fn split_extra<'a>(
    entry: &'a Json,
    at: &str,
) -> Result<(Json, Option<&'a Json>), (String, String)> {
    let Json::Object(m) = entry else {
        return Err((at.to_string(), "expected an object".into()));
    };
    let mut body = m.clone();
    body.remove("extra");
    Ok((Json::Object(body), m.get("extra")))
}

struct Enc<'f> {
    w: ImageWriter<Vec<u8>>,
    file: &'f str,
}

impl Enc<'_> {
    fn err(&self, at: &str, reason: String) -> ImageError {
        ImageError::Json {
            file: self.file.to_string(),
            at: at.to_string(),
            reason,
        }
    }

    fn message(
        &mut self,
        desc: &MessageDescriptor,
        body: &Json,
        at: &str,
    ) -> Result<DynamicMessage> {
        let m = message::from_json(desc, body, at).map_err(|(a, r)| self.err(&a, r))?;
        if let Some(path) = message::missing_required(&m) {
            return Err(self.err(
                at,
                format!("required field {path} of {} is missing", desc.name()),
            ));
        }
        self.w.write_entry(&super::wire::encode(&m))?;
        Ok(m)
    }

    fn base64(&mut self, extra: Option<&Json>, at: &str) -> Result<Vec<u8>> {
        let data = match extra {
            None => Vec::new(),
            Some(Json::String(s)) => {
                convert::base64_decode(s).map_err(|r| self.err(at, r.to_string()))?
            }
            Some(_) => return Err(self.err(at, "expected a base64 string".into())),
        };
        self.w.write_payload(&data)?;
        Ok(data)
    }

    /// Writes base64 `extra`, which must hold exactly `len` bytes.
    fn sized(&mut self, extra: Option<&Json>, len: u64, at: &str) -> Result<()> {
        let data = self.base64(extra, at)?;
        if data.len() as u64 != len {
            return Err(self.err(
                at,
                format!("holds {} bytes but the entry says {len}", data.len()),
            ));
        }
        Ok(())
    }

    fn payload(
        &mut self,
        p: Payload,
        m: &DynamicMessage,
        extra: Option<&Json>,
        at: &str,
    ) -> Result<()> {
        let at = format!("{at}.extra");
        match p {
            Payload::Field(name) => self.sized(extra, field_u64(m, name), &at),
            Payload::BpfMap => self.sized(
                extra,
                field_u64(m, "keys_bytes") + field_u64(m, "values_bytes"),
                &at,
            ),
            Payload::TcpQueues => {
                let q = |k: &str| extra.and_then(|e| e.get(k));
                self.sized(q("inq"), field_u64(m, "inq_len"), &format!("{at}.inq"))?;
                self.sized(q("outq"), field_u64(m, "outq_len"), &format!("{at}.outq"))
            }
            Payload::IpcShm => {
                let size = shm_inline_size(m);
                self.sized(extra, size, &at)?;
                self.w
                    .write_payload(&vec![0; (round_up(size, 4) - size) as usize])
            }
            Payload::IpcSem => {
                let nsems = field_u64(m, "nsems");
                let items = extra
                    .and_then(Json::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if items.len() as u64 != nsems {
                    return Err(self.err(
                        &at,
                        format!("{} semaphores but nsems is {nsems}", items.len()),
                    ));
                }
                let mut data = Vec::new();
                for (i, v) in items.iter().enumerate() {
                    let s = v
                        .as_u64()
                        .and_then(|x| u16::try_from(x).ok())
                        .ok_or_else(|| self.err(&format!("{at}[{i}]"), "expected a u16".into()))?;
                    data.extend_from_slice(&self.w.order().u16_bytes(s));
                }
                data.resize(round_up(data.len() as u64, 8) as usize, 0);
                self.w.write_payload(&data)
            }
            Payload::IpcMsg => {
                let desc = schema::message("ipc_msg")?;
                let items = extra
                    .and_then(Json::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let qnum = field_u64(m, "qnum");
                if items.len() as u64 != 2 * qnum {
                    return Err(self.err(
                        &at,
                        format!(
                            "{} items, but qnum {qnum} needs a message and its data each",
                            items.len()
                        ),
                    ));
                }
                for (i, pair) in items.chunks(2).enumerate() {
                    let here = format!("{at}[{}]", 2 * i);
                    let msg = self.message(&desc, &pair[0], &here)?;
                    let size = field_u64(&msg, "msize");
                    let data = match pair.get(1).and_then(Json::as_str) {
                        Some(s) => {
                            convert::base64_decode(s).map_err(|r| self.err(&here, r.to_string()))?
                        }
                        None => return Err(self.err(&here, "message data missing".into())),
                    };
                    if data.len() as u64 != size {
                        return Err(self.err(
                            &here,
                            format!("holds {} bytes but msize is {size}", data.len()),
                        ));
                    }
                    let mut data = data;
                    data.resize(round_up(size, 8) as usize, 0);
                    self.w.write_payload(&data)?;
                }
                Ok(())
            }
        }
    }
}
