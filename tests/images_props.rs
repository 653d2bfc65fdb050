//! Property tests: random messages of every image kind survive
//! image → JSON (plain and pretty) → image byte for byte, and arbitrary
//! bytes never make the reader or the JSON converter panic.

#[path = "common/fixtures.rs"]
mod fixtures;

use criu_core::images::json::{self, DecodeOptions};
use criu_core::images::{Framing, ImageWriter, KINDS, Kind};
use proptest::prelude::*;
use prost::Message;
use prost_reflect::{Cardinality, DynamicMessage, Kind as FKind, MessageDescriptor, Value};

/// A small deterministic generator driven by proptest's seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Mostly small numbers, sometimes extremes: both matter for varints.
    fn int(&mut self) -> u64 {
        match self.below(4) {
            0 => self.below(4),
            1 => self.below(1 << 20),
            2 => u64::MAX - self.below(3),
            _ => self.next(),
        }
    }
    fn bytes(&mut self) -> Vec<u8> {
        (0..self.below(80)).map(|_| self.next() as u8).collect()
    }
}

fn scalar(rng: &mut Rng, kind: &FKind, depth: u32) -> Option<Value> {
    let i = rng.int();
    Some(match kind {
        FKind::Bool => Value::Bool(i & 1 == 1),
        FKind::Int32 | FKind::Sint32 | FKind::Sfixed32 => Value::I32(i as i32),
        FKind::Int64 | FKind::Sint64 | FKind::Sfixed64 => Value::I64(i as i64),
        FKind::Uint32 | FKind::Fixed32 => Value::U32(i as u32),
        FKind::Uint64 | FKind::Fixed64 => Value::U64(i),
        FKind::Float => Value::F32((i % 1000) as f32 / 4.0),
        FKind::Double => Value::F64((i % 100_000) as f64 / 8.0),
        FKind::String => Value::String(
            (0..rng.below(20))
                .map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'))
                .collect(),
        ),
        FKind::Bytes => Value::Bytes(rng.bytes().into()),
        FKind::Enum(e) => {
            let vals: Vec<i32> = e.values().map(|v| v.number()).collect();
            Value::EnumNumber(vals[rng.below(vals.len() as u64) as usize])
        }
        FKind::Message(m) => {
            if depth == 0 {
                return None;
            }
            Value::Message(random_message(rng, m, depth - 1)?)
        }
    })
}

/// A random message: required fields always set, others at random.
/// `None` when the depth budget cannot fit a required sub-message.
fn random_message(rng: &mut Rng, desc: &MessageDescriptor, depth: u32) -> Option<DynamicMessage> {
    let mut m = DynamicMessage::new(desc.clone());
    for f in desc.fields() {
        let required = f.cardinality() == Cardinality::Required;
        if !required && rng.below(3) == 0 {
            continue;
        }
        if f.containing_oneof().is_some() && rng.below(2) == 0 {
            continue;
        }
        let kind = f.kind();
        if f.is_list() {
            let mut items = Vec::new();
            for _ in 0..rng.below(4) {
                if let Some(v) = scalar(rng, &kind, depth) {
                    items.push(v);
                }
            }
            if !items.is_empty() {
                m.set_field(&f, Value::List(items));
            }
        } else {
            match scalar(rng, &kind, depth) {
                Some(v) => m.set_field(&f, v),
                None if required => return None,
                None => {}
            }
        }
    }
    Some(m)
}

fn entries_kinds() -> Vec<Kind> {
    KINDS
        .iter()
        .filter(|k| k.framing == Framing::Entries)
        .map(|k| k.kind)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_entries_round_trip_through_json(seed in any::<u64>(), which in any::<prop::sample::Index>()) {
        let kinds = entries_kinds();
        let kind = kinds[which.index(kinds.len())];
        let desc = json::message_descriptor(kind.desc().message.unwrap()).unwrap();
        let mut rng = Rng(seed | 1);
        let mut w = ImageWriter::new(Vec::new(), "prop", kind).unwrap();
        let mut msgs = Vec::new();
        for _ in 0..rng.below(4) {
            if let Some(m) = random_message(&mut rng, &desc, 4) {
                w.write_entry(&m.encode_to_vec()).unwrap();
                msgs.push(m);
            }
        }
        let img = w.finish().unwrap();

        // Wire level: what prost-reflect wrote decodes to the same message.
        for m in &msgs {
            let back = DynamicMessage::decode(desc.clone(), m.encode_to_vec().as_slice()).unwrap();
            prop_assert!(&back == m, "{} does not survive the wire", desc.name());
        }
        // JSON level, plain and pretty.
        for pretty in [false, true] {
            let d = json::decode_image(&img, "prop", DecodeOptions { pretty, nopl: false })
                .map_err(|e| TestCaseError::fail(format!("{kind:?}: {e}")))?;
            let text = json::pyjson::to_string(&d.json, pretty);
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            let again = json::encode_image(&parsed, "prop")
                .map_err(|e| TestCaseError::fail(format!("{kind:?} pretty={pretty}: {e}\n{text}")))?;
            prop_assert!(again == img, "{:?} pretty={} differs\n{}", kind, pretty, text);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512), kind in any::<prop::sample::Index>()) {
        // Behind a real header, so the entry parser is reached.
        let k = &KINDS[kind.index(KINDS.len())];
        let mut img = ImageWriter::new(Vec::new(), "fuzz", k.kind).unwrap().finish().unwrap();
        img.extend_from_slice(&data);
        for pretty in [false, true] {
            let _ = json::decode_image(&img, "fuzz", DecodeOptions { pretty, nopl: pretty });
        }
        let _ = json::decode_image(&data, "fuzz", DecodeOptions::default());
    }

    #[test]
    fn arbitrary_json_never_panics(text in "[\\[\\]{}\":, a-z0-9_\\-.]{0,200}") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            let _ = json::encode_image(&v, "fuzz");
        }
    }

    #[test]
    fn mutated_fixture_images_never_panic(file in any::<prop::sample::Index>(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let Some(files) = fixture_images() else { return Ok(()) };
        let mut data = std::fs::read(&files[file.index(files.len())]).unwrap();
        if data.is_empty() {
            return Ok(());
        }
        for (at, b) in flips {
            let i = at.index(data.len());
            data[i] = b;
        }
        if let Ok(d) = json::decode_image(&data, "mut", DecodeOptions::default()) {
            let _ = json::encode_image(&d.json, "mut");
        }
    }
}

fn fixture_images() -> Option<Vec<std::path::PathBuf>> {
    let root = fixtures::criu_images();
    let mut out = Vec::new();
    for d in std::fs::read_dir(root).ok()? {
        for f in std::fs::read_dir(d.ok()?.path()).ok()? {
            let p = f.ok()?.path();
            if p.extension().is_none_or(|e| e != "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Some(out)
}
