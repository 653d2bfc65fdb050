//! Every CRIU-written fixture image goes through our prost types and back:
//! each entry is decoded with the message type of its image and encoded
//! again, and the bytes must be identical. prost silently drops fields it
//! does not know, so a field missing from `core/proto` shows up here as a
//! difference, as would any encoding that differs from CRIU's (protobuf-c).
//!
//! The framing is read by a small local reader (not the real image layer):
//! images start with `IMG_COMMON_MAGIC` (or `IMG_SERVICE_MAGIC` for stats)
//! and the type magic, inventory.img with its type magic only; then come
//! `[u32 LE length][message]` entries, some followed by raw bytes.

use std::fs;
use std::path::{Path, PathBuf};

use criu_core::images::pb;
use prost::Message;

const COMMON_MAGIC: u32 = 0x5456_4319;
const SERVICE_MAGIC: u32 = 0x5510_5940;
const INVENTORY_MAGIC: u32 = 0x5831_3116;

/// The image kinds found in the fixtures, keyed by file name.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Inventory,
    Pstree,
    Core,
    Ids,
    Mm,
    Pagemap,
    Fdinfo,
    Files,
    Fs,
    Seccomp,
    Timens,
    PipesData,
    SkQueues,
    GhostFile,
    RemapFpath,
    MemfdInode,
    Stats,
    TcpStream,
}

impl Kind {
    fn of(file_name: &str) -> Option<Kind> {
        let stem = file_name.strip_suffix(".img").unwrap_or(file_name);
        let prefix = |p: &str| stem.strip_prefix(p).is_some_and(|rest| !rest.is_empty());
        Some(match stem {
            "inventory" => Kind::Inventory,
            "pstree" => Kind::Pstree,
            "files" => Kind::Files,
            "seccomp" => Kind::Seccomp,
            "pipes-data" | "fifo-data" => Kind::PipesData,
            "sk-queues" => Kind::SkQueues,
            "remap-fpath" => Kind::RemapFpath,
            "memfd" => Kind::MemfdInode,
            "stats-dump" | "stats-restore" => Kind::Stats,
            _ if prefix("core-") => Kind::Core,
            _ if prefix("ids-") => Kind::Ids,
            _ if prefix("mm-") => Kind::Mm,
            _ if prefix("pagemap-") => Kind::Pagemap,
            _ if prefix("fdinfo-") => Kind::Fdinfo,
            _ if prefix("fs-") => Kind::Fs,
            _ if prefix("timens-") => Kind::Timens,
            _ if prefix("ghost-file-") => Kind::GhostFile,
            _ if prefix("tcp-stream-") => Kind::TcpStream,
            _ => return None,
        })
    }

    /// The name crit prints as "magic" in its JSON.
    fn crit_name(self) -> &'static str {
        match self {
            Kind::Inventory => "INVENTORY",
            Kind::Pstree => "PSTREE",
            Kind::Core => "CORE",
            Kind::Ids => "IDS",
            Kind::Mm => "MM",
            Kind::Pagemap => "PAGEMAP",
            Kind::Fdinfo => "FDINFO",
            Kind::Files => "FILES",
            Kind::Fs => "FS",
            Kind::Seccomp => "SECCOMP",
            Kind::Timens => "TIMENS",
            Kind::PipesData => "PIPES_DATA",
            Kind::SkQueues => "SK_QUEUES",
            Kind::GhostFile => "GHOST_FILE",
            Kind::RemapFpath => "REMAP_FPATH",
            Kind::MemfdInode => "MEMFD_INODE",
            Kind::Stats => "STATS",
            Kind::TcpStream => "TCP_STREAM",
        }
    }
}

/// Decodes `bytes` as `T`, encodes it again and requires identical bytes.
fn roundtrip<T: Message + Default>(bytes: &[u8]) -> Result<T, String> {
    let msg =
        T::decode(bytes).map_err(|e| format!("decode as {}: {e}", std::any::type_name::<T>()))?;
    let again = msg.encode_to_vec();
    if again != bytes {
        return Err(format!(
            "re-encoding {} differs: {} bytes in, {} out; first difference at byte {}",
            std::any::type_name::<T>(),
            bytes.len(),
            again.len(),
            bytes
                .iter()
                .zip(&again)
                .position(|(a, b)| a != b)
                .unwrap_or(bytes.len().min(again.len()))
        ));
    }
    Ok(msg)
}

/// A cursor over one image file.
struct Image<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Image<'a> {
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.raw(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn raw(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| {
            format!(
                "{len} bytes wanted at offset {}, file has {}",
                self.pos,
                self.data.len()
            )
        })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next `[u32 length][message]` entry.
    fn entry(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.raw(len)
    }

    fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }
}

/// Checks one image file; returns the number of entries seen.
fn check_image(kind: Kind, data: &[u8]) -> Result<usize, String> {
    let mut img = Image { data, pos: 0 };
    let first = img.u32()?;
    match kind {
        Kind::Inventory if first == INVENTORY_MAGIC => {}
        Kind::Stats if first == SERVICE_MAGIC => drop(img.u32()?),
        Kind::Inventory | Kind::Stats => return Err(format!("unexpected first magic {first:#x}")),
        _ if first == COMMON_MAGIC => drop(img.u32()?),
        _ => return Err(format!("unexpected first magic {first:#x}")),
    }

    let mut entries = 0;
    while !img.at_end() {
        let start = img.pos;
        let bytes = img.entry()?;
        let res: Result<(), String> = (|| {
            match kind {
                Kind::Inventory => drop(roundtrip::<pb::InventoryEntry>(bytes)?),
                Kind::Pstree => drop(roundtrip::<pb::PstreeEntry>(bytes)?),
                Kind::Core => drop(roundtrip::<pb::CoreEntry>(bytes)?),
                Kind::Ids => drop(roundtrip::<pb::TaskKobjIdsEntry>(bytes)?),
                Kind::Mm => drop(roundtrip::<pb::MmEntry>(bytes)?),
                // The first entry of a pagemap is its head.
                Kind::Pagemap if entries == 0 => drop(roundtrip::<pb::PagemapHead>(bytes)?),
                Kind::Pagemap => drop(roundtrip::<pb::PagemapEntry>(bytes)?),
                Kind::Fdinfo => drop(roundtrip::<pb::FdinfoEntry>(bytes)?),
                Kind::Files => drop(roundtrip::<pb::FileEntry>(bytes)?),
                Kind::Fs => drop(roundtrip::<pb::FsEntry>(bytes)?),
                Kind::Seccomp => drop(roundtrip::<pb::SeccompEntry>(bytes)?),
                Kind::Timens => drop(roundtrip::<pb::TimensEntry>(bytes)?),
                Kind::RemapFpath => drop(roundtrip::<pb::RemapFilePathEntry>(bytes)?),
                Kind::MemfdInode => drop(roundtrip::<pb::MemfdInodeEntry>(bytes)?),
                Kind::Stats => drop(roundtrip::<pb::StatsEntry>(bytes)?),
                Kind::PipesData => {
                    let e = roundtrip::<pb::PipeDataEntry>(bytes)?;
                    img.raw(e.bytes as usize)?;
                }
                Kind::SkQueues => {
                    let e = roundtrip::<pb::SkPacketEntry>(bytes)?;
                    img.raw(e.length as usize)?;
                }
                Kind::TcpStream => {
                    let e = roundtrip::<pb::TcpStreamEntry>(bytes)?;
                    img.raw(e.inq_len as usize)?;
                    img.raw(e.outq_len as usize)?;
                }
                Kind::GhostFile => {
                    let e = roundtrip::<pb::GhostFileEntry>(bytes)?;
                    if e.chunks() {
                        // Chunked contents: framed chunk headers, each
                        // followed by its bytes, up to the end of file.
                        while !img.at_end() {
                            let c = roundtrip::<pb::GhostChunkEntry>(img.entry()?)?;
                            img.raw(c.len as usize)?;
                        }
                    } else {
                        // Plain contents: everything after the entry.
                        img.pos = img.data.len();
                    }
                }
            }
            Ok(())
        })();
        res.map_err(|e| format!("entry #{entries} at offset {start}: {e}"))?;
        entries += 1;
    }
    Ok(entries)
}

#[path = "common/fixtures.rs"]
mod fixtures;

fn fixtures_dir() -> PathBuf {
    fixtures::criu_images()
}

/// The "magic" value of crit's JSON beside an image, found by plain search.
fn crit_magic(json_path: &Path) -> Option<String> {
    let text = fs::read_to_string(json_path).ok()?;
    let key = text.find("\"magic\"")?;
    let rest = &text[key + "\"magic\"".len()..];
    let open = rest.find('"')? + 1;
    let close = open + rest[open..].find('"')?;
    Some(rest[open..close].to_string())
}

#[test]
fn fixture_images_reencode_byte_identical() {
    let root = fixtures_dir();
    let dirs = fs::read_dir(&root).expect("read the fixtures");
    let mut dirs: Vec<PathBuf> = dirs.map(|d| d.expect("fixture dir entry").path()).collect();
    dirs.sort();

    let (mut files, mut entries, mut failures) = (0, 0, Vec::new());
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .expect("read fixture dir")
            .map(|e| e.expect("entry").path())
            .collect();
        paths.sort();
        for path in paths
            .iter()
            .filter(|p| p.extension().is_none_or(|x| x != "json"))
        {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let Some(kind) = Kind::of(name) else {
                failures.push(format!(
                    "{}: no message type known for this image",
                    path.display()
                ));
                continue;
            };
            let mut json = path.clone().into_os_string();
            json.push(".json");
            if let Some(magic) = crit_magic(Path::new(&json))
                && magic != kind.crit_name()
            {
                failures.push(format!(
                    "{}: crit says {magic}, we say {}",
                    path.display(),
                    kind.crit_name()
                ));
            }
            let data = fs::read(path).expect("read fixture image");
            match check_image(kind, &data) {
                Ok(n) => {
                    files += 1;
                    entries += n;
                }
                Err(e) => failures.push(format!("{}: {e}", path.display())),
            }
        }
    }
    eprintln!("{files} images, {entries} entries re-encoded byte for byte");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(files > 0, "no fixture images found in {}", root.display());
}

#[test]
fn descriptor_set_keeps_criu_field_options() {
    let pool = prost_reflect::DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)
        .expect("descriptor set decodes");
    let ext = pool
        .get_extension_by_name("criu")
        .expect("the (criu) extension is in the pool");
    let option = |msg: &str, field: &str, opt: &str| {
        let f = pool
            .get_message_by_name(msg)
            .and_then(|m| m.get_field_by_name(field));
        let f = f.unwrap_or_else(|| panic!("{msg}.{field} exists"));
        let opts = f.options();
        let value = opts.get_extension(&ext);
        value
            .as_message()
            .and_then(|m| m.get_field_by_name(opt))
            .map(|v| v.into_owned())
    };
    use prost_reflect::Value;
    assert_eq!(option("vma_entry", "start", "hex"), Some(Value::Bool(true)));
    assert_eq!(
        option("vma_entry", "prot", "flags"),
        Some(Value::String("mmap.prot".into()))
    );
    assert_eq!(
        option("inet_sk_entry", "src_addr", "ipadd"),
        Some(Value::Bool(true))
    );
    assert_eq!(
        option("unix_sk_entry", "name", "conv"),
        Some(Value::String("unix_name".into()))
    );
    assert_eq!(
        option("task_core_entry", "task_state", "dict"),
        Some(Value::String("gen".into()))
    );
    assert_eq!(
        option("ghost_file_entry", "rdev", "odev"),
        Some(Value::Bool(true))
    );
    // The RPC messages are in the same pool.
    assert!(pool.get_message_by_name("criu_req").is_some());
}

/// Lists messages whose fields are declared out of field-number order. Only a
/// report: protobuf-c (like prost) writes fields sorted by number whatever
/// the declaration order, so this does not affect the bytes.
#[test]
fn report_out_of_order_declarations() {
    let pool = prost_reflect::DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)
        .expect("descriptor set decodes");
    for file in pool
        .file_descriptor_protos()
        .filter(|f| !f.name().starts_with("google/"))
    {
        for msg in &file.message_type {
            let numbers: Vec<i32> = msg.field.iter().map(|f| f.number()).collect();
            if numbers.windows(2).any(|w| w[0] > w[1]) {
                eprintln!(
                    "{}: {} declares fields as {numbers:?}",
                    file.name(),
                    msg.name()
                );
            }
        }
    }
}
