//! The image layer against images written by CRIU 4.2 (`tests/fixtures`):
//! every image decodes, prints the JSON CRIU's crit printed (stored beside
//! it as `.img.json`), and encodes back to the original bytes.

use std::fs;
use std::path::{Path, PathBuf};

use criu_core::images::json::{self, DecodeOptions, pyjson};
use criu_core::images::{ByteOrder, ImageReader, KINDS, Kind, pb, read_all};
use prost::Message;

#[path = "common/fixtures.rs"]
mod fixtures_dir;

/// The CRIU 4.2 fixtures (in the repository: missing ones fail the test).
fn fixtures() -> PathBuf {
    fixtures_dir::criu_images()
}

/// Every image file of every fixture directory (not the JSON beside them).
fn images(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in fs::read_dir(root).unwrap() {
        for f in fs::read_dir(dir.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_none_or(|e| e != "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn decode(data: &[u8], name: &str, pretty: bool) -> serde_json::Value {
    let d = json::decode_image(
        data,
        name,
        DecodeOptions {
            pretty,
            nopl: false,
        },
    )
    .unwrap_or_else(|e| panic!("decode {name}: {e}"));
    assert!(d.warnings.is_empty(), "{name}: {:?}", d.warnings);
    d.json
}

#[test]
fn every_fixture_matches_crit_json_and_reencodes_byte_for_byte() {
    let root = fixtures();
    let mut compared = 0;
    for path in images(&root) {
        let name = path.display().to_string();
        let data = fs::read(&path).unwrap();
        let plain = decode(&data, &name, false);
        // The fixtures are little-endian (made on x86_64): re-encode in
        // their order to compare bytes on any host.
        let again = json::encode_image_in(&plain, &name, ByteOrder::Little)
            .unwrap_or_else(|e| panic!("encode {name}: {e}"));
        assert!(again == data, "{name}: re-encoded bytes differ");

        // The pretty form (hex, flags, devices) must encode back too.
        let pretty = decode(&data, &name, true);
        let again = json::encode_image_in(&pretty, &name, ByteOrder::Little)
            .unwrap_or_else(|e| panic!("encode pretty {name}: {e}"));
        assert!(again == data, "{name}: pretty JSON re-encoded bytes differ");

        // The same image as a big-endian machine (s390x) writes it: both
        // header words and every length prefix swapped, the same JSON.
        let big = json::encode_image_in(&plain, &name, ByteOrder::Big)
            .unwrap_or_else(|e| panic!("encode big-endian {name}: {e}"));
        assert_eq!(big.len(), data.len(), "{name}");
        assert_eq!(
            big[..4],
            data[..4].iter().rev().copied().collect::<Vec<_>>()[..],
            "{name}"
        );
        assert!(
            big != data || data.is_empty(),
            "{name}: big-endian bytes equal little"
        );
        assert_eq!(
            decode(&big, &name, false),
            plain,
            "{name}: big-endian decode differs"
        );
        assert_eq!(
            decode(&big, &name, true),
            pretty,
            "{name}: big-endian pretty decode differs"
        );

        let stored = PathBuf::from(format!("{name}.json"));
        if !stored.exists() {
            continue; // stats-dump / stats-restore have no JSON beside them.
        }
        let text = fs::read_to_string(&stored).unwrap();
        let want: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(plain, want, "{name}: JSON differs from crit's");
        // Same text as Python's json.dump, byte for byte.
        assert_eq!(
            pyjson::to_string(&plain, false),
            text,
            "{name}: JSON text differs"
        );
        let from_crit = json::encode_image_in(&want, &name, ByteOrder::Little).unwrap();
        assert!(
            from_crit == data,
            "{name}: crit's JSON does not encode to the image"
        );
        compared += 1;
    }
    assert!(compared >= 60, "only {compared} images compared");
}

#[test]
fn every_fixture_kind_is_known_and_its_message_compiled() {
    for k in KINDS.iter().filter_map(|k| k.message) {
        json::message_descriptor(k).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    for extra in [
        "pagemap_head",
        "ghost_chunk_entry",
        "ipc_msg",
        "criu_req",
        "criu_resp",
    ] {
        json::message_descriptor(extra).unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
}

/// Reads with the generated types, writes back, compares bytes.
fn typed_round_trip<T: Message + Default>(path: &Path, kind: Kind) {
    let entries: Vec<T> =
        read_all(path, kind).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!entries.is_empty());
    let out = std::env::temp_dir().join(format!(
        "images-typed-{}-{}",
        std::process::id(),
        kind.file_name(1)
    ));
    criu_core::images::write_all(&out, kind, &entries).unwrap();
    let a = fixtures_dir::in_native_order(&fs::read(path).unwrap());
    let b = fs::read(&out).unwrap();
    fs::remove_file(&out).unwrap();
    assert!(a == b, "{}: typed round trip differs", path.display());
}

#[test]
fn typed_helpers_read_and_write_criu_images_exactly() {
    let root = fixtures();
    let d = root.join("tree");
    typed_round_trip::<pb::InventoryEntry>(&d.join("inventory.img"), Kind::Inventory);
    typed_round_trip::<pb::PstreeEntry>(&d.join("pstree.img"), Kind::Pstree);
    typed_round_trip::<pb::CoreEntry>(&d.join("core-4816.img"), Kind::Core);
    typed_round_trip::<pb::CoreEntry>(&d.join("core-4819.img"), Kind::Core);
    typed_round_trip::<pb::MmEntry>(&d.join("mm-4816.img"), Kind::Mm);
    typed_round_trip::<pb::FileEntry>(&d.join("files.img"), Kind::Files);
    typed_round_trip::<pb::FdinfoEntry>(&d.join("fdinfo-2.img"), Kind::Fdinfo);
    typed_round_trip::<pb::FsEntry>(&d.join("fs-4816.img"), Kind::Fs);
    typed_round_trip::<pb::TaskKobjIdsEntry>(&d.join("ids-4816.img"), Kind::Ids);
    typed_round_trip::<pb::TimensEntry>(&d.join("timens-0.img"), Kind::Timens);
    typed_round_trip::<pb::MemfdInodeEntry>(&d.join("memfd.img"), Kind::MemfdInode);
    typed_round_trip::<pb::SeccompEntry>(&d.join("seccomp.img"), Kind::Seccomp);
    typed_round_trip::<pb::StatsEntry>(&d.join("stats-dump"), Kind::Stats);
    let f = root.join("signals");
    typed_round_trip::<pb::CoreEntry>(&f.join("core-4744.img"), Kind::Core);
    typed_round_trip::<pb::FileEntry>(&root.join("fds/files.img"), Kind::Files);
}

#[test]
fn pagemap_and_payload_images_read_with_the_streaming_reader() {
    let root = fixtures();
    let mut r = ImageReader::open(&root.join("fds/pagemap-4671.img"), Kind::Pagemap).unwrap();
    let head: pb::PagemapHead = r.next_message().unwrap().unwrap();
    assert_eq!(head.pages_id, 1);
    let mut pages = 0;
    while let Some(pe) = r.next_message::<pb::PagemapEntry>().unwrap() {
        pages += pe.nr_pages.unwrap_or(0);
    }
    assert!(pages > 0);

    let mut r = ImageReader::open(&root.join("fds/pipes-data.img"), Kind::PipesData).unwrap();
    let pd: pb::PipeDataEntry = r.next_message().unwrap().unwrap();
    let mut sink = Vec::new();
    r.copy_payload(u64::from(pd.bytes), &mut sink).unwrap();
    assert_eq!(sink.len() as u64, u64::from(pd.bytes));
    assert!(r.next_entry().unwrap().is_none());

    let mut r = ImageReader::open(&root.join("fds/sk-queues.img"), Kind::SkQueues).unwrap();
    let mut packets = 0;
    while let Some(p) = r.next_message::<pb::SkPacketEntry>().unwrap() {
        r.payload(u64::from(p.length)).unwrap();
        packets += 1;
    }
    assert!(packets > 0);
}

/// SysV semaphore values are the one raw number in a payload: they follow
/// the file's byte order, both ways.
#[test]
fn sem_values_follow_the_file_byte_order() {
    let text = r#"{"magic": "IPCNS_SEM", "entries": [{"desc": {"key": 1, "uid": 0,
        "gid": 0, "cuid": 0, "cgid": 0, "mode": 384, "id": 7}, "nsems": 3,
        "extra": [1, 258, 65535]}]}"#;
    let j: serde_json::Value = serde_json::from_str(text).unwrap();
    for (order, want) in [
        (ByteOrder::Little, [1u8, 0, 2, 1, 255, 255]),
        (ByteOrder::Big, [0u8, 1, 1, 2, 255, 255]),
    ] {
        let img = json::encode_image_in(&j, "sem", order).unwrap();
        // 6 bytes of values, padded to 8, end the file.
        let tail = &img[img.len() - 8..];
        assert_eq!(&tail[..6], &want, "{order:?}");
        assert_eq!(&tail[6..], &[0, 0], "{order:?}");
        let back = decode(&img, "sem", false);
        assert_eq!(
            back["entries"][0]["extra"], j["entries"][0]["extra"],
            "{order:?}"
        );
    }
}
