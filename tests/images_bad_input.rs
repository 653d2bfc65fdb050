//! The image layer's reader on bad input: typed errors naming file and
//! offset, and no allocation beyond what the data justifies.

use std::io::Cursor;

use criu_core::images::{ImageError, ImageReader, ImageWriter, Kind, magic, pb};

fn image(kind: Kind, entries: &[&[u8]]) -> Vec<u8> {
    let mut w = ImageWriter::new(Vec::new(), "t", kind).unwrap();
    for e in entries {
        w.write_entry(e).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn headers() {
    let core = image(Kind::Core, &[]);
    assert_eq!(&core[..4], &magic::IMG_COMMON.to_ne_bytes());
    assert_eq!(&core[4..], &magic::CORE.to_ne_bytes());
    assert_eq!(image(Kind::Inventory, &[]), magic::INVENTORY.to_ne_bytes());
    assert_eq!(
        &image(Kind::Stats, &[])[..4],
        &magic::IMG_SERVICE.to_ne_bytes()
    );
    assert!(image(Kind::Pages, &[]).is_empty());
}

#[test]
fn wrong_magic_names_file_expected_and_found() {
    let mm = image(Kind::Mm, &[]);
    let err = ImageReader::new(Cursor::new(&mm), "core-7.img", None, Kind::Core)
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        matches!(err, ImageError::WrongMagic { offset: 4, .. }),
        "{text}"
    );
    assert!(text.contains("core-7.img"), "{text}");
    assert!(text.contains("expected 0x55053847 (CORE)"), "{text}");
    assert!(text.contains("found 0x57492820 (MM)"), "{text}");

    // A service image where a common one is expected: the first word.
    let stats = image(Kind::Stats, &[]);
    let err = ImageReader::new(Cursor::new(&stats), "x", None, Kind::Core)
        .err()
        .unwrap();
    assert!(
        matches!(err, ImageError::WrongMagic { offset: 0, .. }),
        "{err}"
    );
}

#[test]
fn lying_length_on_a_stream_is_truncation_not_allocation() {
    // Size unknown (a pipe): the 4 GiB prefix must not be allocated.
    let mut img = image(Kind::Pstree, &[]);
    img.extend_from_slice(&u32::MAX.to_ne_bytes());
    img.extend_from_slice(b"abc");
    let mut r = ImageReader::new(Cursor::new(&img), "pstree.img", None, Kind::Pstree).unwrap();
    let err = r.next_entry().unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Truncated {
                offset: 8,
                len: 4294967295,
                got: 3,
                ..
            }
        ),
        "{err}"
    );
    // Size known: refused before reading.
    let mut r = ImageReader::new(
        Cursor::new(&img),
        "pstree.img",
        Some(img.len() as u64),
        Kind::Pstree,
    )
    .unwrap();
    let err = r.next_entry().unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::EntryTooLong {
                offset: 8,
                remaining: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn payload_past_the_end() {
    let img = image(Kind::PipesData, &[b""]);
    let mut r = ImageReader::new(
        Cursor::new(&img),
        "pipes-data.img",
        Some(img.len() as u64),
        Kind::PipesData,
    )
    .unwrap();
    r.next_entry().unwrap().unwrap();
    let err = r.payload(10).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Truncated {
                what: "payload",
                offset: 12,
                ..
            }
        ),
        "{err}"
    );
    let err = r.copy_payload(10, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Truncated {
                what: "payload",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn undecodable_entry_names_message_and_offset() {
    let img = image(Kind::Pstree, &[b"\x08\x01", b"\xff\xff"]);
    let mut r = ImageReader::new(Cursor::new(&img), "pstree.img", None, Kind::Pstree).unwrap();
    let first: pb::PstreeEntry = r.next_message().unwrap().unwrap();
    assert_eq!(first.pid, 1);
    let err = r.next_message::<pb::PstreeEntry>().unwrap_err();
    assert!(
        matches!(err, ImageError::Decode { offset: 14, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("pstree_entry"), "{err}");
}

#[test]
fn read_one_of_an_empty_image() {
    let dir = std::env::temp_dir().join(format!("images-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = criu_core::images::ImageDir::new(&dir);
    d.write_all::<pb::FsEntry>(Kind::Fs, 3, &[]).unwrap();
    let err = d.read_one::<pb::FsEntry>(Kind::Fs, 3).unwrap_err();
    assert!(
        err.to_string().contains("fs-3.img: no fs_entry entry"),
        "{err}"
    );
    let err = d.read_one::<pb::FsEntry>(Kind::Fs, 4).unwrap_err();
    assert!(
        matches!(err, ImageError::Io { .. }) && err.to_string().contains("fs-4.img"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
