//! The `crit` binary: CRIU-compatible output on the fixtures, and clear
//! errors (file, offset, non-zero exit, no panic) on bad input.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

#[path = "common/fixtures.rs"]
mod fixtures_dir;

/// The CRIU 4.2 fixtures (in the repository: missing ones fail the test).
fn fixtures() -> PathBuf {
    fixtures_dir::criu_images()
}

/// What `crit encode` must print for the little-endian image `le` (a
/// CRIU fixture, made on x86_64) on this machine, whose byte order it
/// writes in. The library's encoder is checked to give `le` back in
/// little-endian order first, so on any host the comparison is byte-exact.
fn in_native_order(le: &[u8]) -> Vec<u8> {
    use criu_core::images::{ByteOrder, json};
    let opts = json::DecodeOptions {
        pretty: false,
        nopl: false,
    };
    let j = json::decode_image(le, "fixture", opts).unwrap().json;
    assert!(json::encode_image_in(&j, "fixture", ByteOrder::Little).unwrap() == le);
    json::encode_image(&j, "fixture").unwrap()
}

fn crit(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crit"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        // crit may fail before reading everything; a broken pipe is fine.
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "crit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Asserts a clean failure: exit code 1, a `crit:` message containing
/// every part of `needles`, and no panic.
fn fails(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("crit: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
    err
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn x_ps_prints_the_tree() {
    let root = fixtures();
    let out = ok(&crit(
        &["x", root.join("tree").to_str().unwrap(), "ps"],
        b"",
    ));
    assert_eq!(
        out,
        "    PID   PGID    SID   COMM\n   4816   4816   4816   tree\n   4817   4816   4816       tree\n   \
         4820   4816   4816           tree\n   4818   4818   4816       tree\n   4819   4816   4816       tree\n"
    );
}

#[test]
fn x_fds_mems_rss() {
    let root = fixtures();
    let fds = ok(&crit(
        &["x", root.join("fds").to_str().unwrap(), "fds"],
        b"",
    ));
    assert!(fds.starts_with("4671\n\t      0: /dev/null\n"), "{fds}");
    assert!(fds.contains("\t     20: pipe[76205]\n"), "{fds}");
    assert!(fds.contains("\t     30: EVENTFD.11\n"), "{fds}");
    assert!(fds.contains("\t     40: unix[76206 (76207)]\n"), "{fds}");
    assert!(
        fds.ends_with("\t    cwd: /tmp/wl-fds\n\t   root: /\n"),
        "{fds}"
    );

    let mems = ok(&crit(
        &["x", root.join("tree").to_str().unwrap(), "mems"],
        b"",
    ));
    assert!(
        mems.contains("\texe                                     /tmp/cr-workloads/tree\n"),
        "{mems}"
    );
    assert!(mems.contains("r-x [vdso]\n"), "{mems}");
    assert!(mems.contains("--x [vsyscall] *\n"), "{mems}");
    // Shared anonymous memory is a memfd in files.img: crit says so too.
    assert!(mems.contains("rw- unknown path (s)\n"), "{mems}");
    assert!(mems.contains("(no mm-4819.img: a dead task?)"), "{mems}");

    let rss = ok(&crit(
        &["x", root.join("loop").to_str().unwrap(), "rss"],
        b"",
    ));
    assert!(rss.starts_with("4525\n\t"), "{rss}");
    assert!(rss.contains(" ~\n"), "{rss}");
}

#[test]
fn show_info_decode_encode() {
    let root = fixtures();
    let mm = root.join("tree/mm-4816.img");
    let show = ok(&crit(&["show", mm.to_str().unwrap()], b""));
    assert!(
        show.starts_with("{\n    \"magic\": \"MM\",\n    \"entries\": [\n"),
        "{show}"
    );
    assert!(
        show.contains("\"prot\": \"PROT_READ | PROT_WRITE\""),
        "{show}"
    );
    assert!(show.contains("\"mm_start_code\": \"0x"), "{show}");
    assert!(show.ends_with("}\n"));

    let info = ok(&crit(
        &["info", root.join("fds/pagemap-4671.img").to_str().unwrap()],
        b"",
    ));
    assert_eq!(
        info,
        "{\n    \"magic\": \"PAGEMAP\",\n    \"count\": 12\n}\n"
    );

    let nopl = ok(&crit(
        &[
            "show",
            "--nopl",
            root.join("fds/pipes-data.img").to_str().unwrap(),
        ],
        b"",
    ));
    assert!(nopl.contains("\"extra\": \"... <4.9KB>\""), "{nopl}");

    // decode: stdin to stdout, with the newline crit adds on stdout.
    let img = std::fs::read(root.join("fds/sk-queues.img")).unwrap();
    let json = ok(&crit(&["decode"], &img));
    let stored = std::fs::read_to_string(root.join("fds/sk-queues.img.json")).unwrap();
    assert_eq!(json, format!("{stored}\n"));

    // encode: stdin to stdout gives the image back.
    let out = crit(&["encode"], json.as_bytes());
    assert!(out.status.success());
    assert!(out.stdout == in_native_order(&img));

    // -i / -o files.
    let (j, b) = (tmp("core.json"), tmp("core.img"));
    let core = root.join("signals/core-4744.img");
    ok(&crit(
        &[
            "decode",
            "--pretty",
            "-i",
            core.to_str().unwrap(),
            "-o",
            j.to_str().unwrap(),
        ],
        b"",
    ));
    ok(&crit(
        &[
            "encode",
            "-i",
            j.to_str().unwrap(),
            "-o",
            b.to_str().unwrap(),
        ],
        b"",
    ));
    let want = fixtures_dir::in_native_order(&std::fs::read(&core).unwrap());
    assert!(std::fs::read(&b).unwrap() == want);
}

#[test]
fn bad_images_fail_with_file_and_offset() {
    let root = fixtures();
    let good = std::fs::read(root.join("fds/pstree.img")).unwrap();

    // Unknown type magic.
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    let p = tmp("badmagic.img");
    std::fs::write(&p, &bad).unwrap();
    fails(
        &crit(&["decode", "-i", p.to_str().unwrap()], b""),
        &["badmagic.img", "unknown magic 0x12345678", "offset 4"],
    );

    // Truncated entry.
    let p = tmp("trunc.img");
    std::fs::write(&p, &good[..good.len() - 1]).unwrap();
    fails(
        &crit(&["show", p.to_str().unwrap()], b""),
        &[
            "trunc.img",
            "entry at offset 8 claims 14 bytes but only 13 remain",
        ],
    );

    // Truncated length prefix.
    fails(
        &crit(&["decode"], &good[..10]),
        &["<stdin>", "truncated entry length at offset 8"],
    );

    // A length prefix larger than the file.
    let mut bad = good.clone();
    bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    fails(
        &crit(&["decode"], &bad),
        &["entry at offset 8 claims 4294967295 bytes but only"],
    );

    // Garbage instead of a protobuf message.
    let mut bad = good[..8].to_vec();
    bad.extend_from_slice(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
    fails(
        &crit(&["decode"], &bad),
        &["cannot decode pstree_entry at offset 8"],
    );

    // Empty input, raw data.
    fails(
        &crit(&["decode"], b""),
        &["file ends inside the image header"],
    );
    fails(&crit(&["decode"], &[0u8; 4096]), &["unknown magic 0x0"]);

    // Invalid UTF-8 inside a string field (a file name in files.img).
    let mut bad = std::fs::read(root.join("fds/files.img")).unwrap();
    let at = bad.windows(4).position(|w| w == b"/tmp").unwrap();
    bad[at + 1] = 0xff;
    fails(
        &crit(&["decode"], &bad),
        &["cannot decode file_entry at offset", "UTF-8"],
    );

    // A missing input file.
    fails(
        &crit(&["show", "/nonexistent/core-1.img"], b""),
        &["/nonexistent/core-1.img"],
    );
}

#[test]
fn unknown_binary_fields_are_reported_not_fatal() {
    let root = fixtures();
    let mut img = std::fs::read(root.join("fds/fs-4671.img")).unwrap();
    // Append field 15 (varint 1) to the only entry.
    let len = u32::from_le_bytes(img[8..12].try_into().unwrap());
    img[8..12].copy_from_slice(&(len + 2).to_le_bytes());
    img.extend_from_slice(&[15 << 3, 1]);
    let out = crit(&["decode"], &img);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown fields (#15)"), "{err}");
}

#[test]
fn bad_json_fails_cleanly() {
    fails(
        &crit(&["encode"], b"\xff\xfe{}"),
        &["<stdin>", "cannot read JSON"],
    );
    fails(
        &crit(&["encode"], b"{\"magic\": \"PSTREE\""),
        &["cannot read JSON", "EOF"],
    );
    fails(
        &crit(&["encode"], b"{\"magic\": \"NOPE\", \"entries\": []}"),
        &["unknown image magic \"NOPE\""],
    );
    fails(&crit(&["encode"], b"{\"entries\": []}"), &["magic"]);
    fails(
        &crit(&["encode"], br#"{"magic": "PSTREE", "entries": [{"pid": 1, "ppid": 0, "pgid": 1, "sid": 1, "bogus": 3}]}"#),
        &["entries[0].bogus", "unknown field of pstree_entry"],
    );
    fails(
        &crit(
            &["encode"],
            br#"{"magic": "PSTREE", "entries": [{"pid": 1}]}"#,
        ),
        &["entries[0]", "required field ppid"],
    );
    fails(
        &crit(&["encode"], br#"{"magic": "PSTREE", "entries": [{"pid": 4294967296, "ppid": 0, "pgid": 1, "sid": 1}]}"#),
        &["entries[0].pid", "does not fit"],
    );
    fails(
        &crit(
            &["encode"],
            br#"{"magic": "PSTREE", "entries": [{"pid": "x1", "ppid": 0, "pgid": 1, "sid": 1}]}"#,
        ),
        &["entries[0].pid", "invalid integer literal"],
    );
    fails(
        &crit(&["encode"], br#"{"magic": "PIPES_DATA", "entries": [{"pipe_id": 1, "bytes": 5, "extra": "YWI=\n"}]}"#),
        &["entries[0].extra", "holds 2 bytes but the entry says 5"],
    );

    // Deep nesting stops at serde_json's recursion limit instead of the stack.
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    fails(&crit(&["encode"], deep.as_bytes()), &["recursion limit"]);

    // A huge but harmless document: a million entries of the wrong type.
    let mut huge = String::from("{\"magic\": \"PSTREE\", \"entries\": [");
    huge.push_str(&"1, ".repeat(1_000_000));
    huge.push_str("1]}");
    fails(
        &crit(&["encode"], huge.as_bytes()),
        &["entries[0]", "expected an object"],
    );

    // A big payload round-trips.
    let data = vec![b'z'; 3 << 20];
    let b64 = base64_lines(&data);
    let j = format!(
        "{{\"magic\": \"PIPES_DATA\", \"entries\": [{{\"pipe_id\": 7, \"bytes\": {}, \"extra\": {:?}}}]}}",
        data.len(),
        b64
    );
    let img = crit(&["encode"], j.as_bytes());
    assert!(
        img.status.success(),
        "{}",
        String::from_utf8_lossy(&img.stderr)
    );
    let back = ok(&crit(&["decode"], &img.stdout));
    let v: serde_json::Value = serde_json::from_str(&back).unwrap();
    assert_eq!(v["entries"][0]["extra"].as_str().unwrap(), b64);
}

fn base64_lines(data: &[u8]) -> String {
    use base64::Engine;
    data.chunks(57)
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c) + "\n")
        .collect()
}

#[test]
fn usage_errors_exit_non_zero() {
    let out = crit(&[], b"");
    assert_ne!(out.status.code(), Some(0));
    let out = crit(&["x", "/nonexistent", "ps"], b"");
    fails(&out, &["/nonexistent/pstree.img"]);
    let out = crit(&["x", ".", "bogus"], b"");
    assert_eq!(out.status.code(), Some(2));
}

/// SysV shared memory: CRIU (3.x and later) writes a segment's contents to
/// the shmem pagemap and pages images and sets `in_pagemaps`, and nothing
/// follows the `ipc_shm_entry` (CRIU's crit, which reads `size` bytes
/// anyway, gets none at the end of the file). Older images hold the
/// contents inline, `size` bytes padded to 4. Both decode, and encode back
/// to the same bytes.
#[test]
fn sysv_shm_contents_inline_or_in_pagemaps() {
    // ipcns-shm-11.img as CRIU 4.1.1 wrote it in a Podman container: one
    // 8192-byte segment, in the pagemaps (tests/podman_archive.rs makes
    // such archives, without SysV memory).
    let criu = "1943565444302846160000000a0f0800100018002000280030800338001080401801";
    let criu: Vec<u8> = (0..criu.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&criu[i..i + 2], 16).unwrap())
        .collect();
    let json = ok(&crit(&["decode"], &criu));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["entries"][0]["size"], 8192, "{json}");
    assert_eq!(v["entries"][0]["in_pagemaps"], true, "{json}");
    assert_eq!(v["entries"][0]["extra"], "", "{json}");
    let back = crit(&["encode"], json.as_bytes());
    assert_eq!(
        back.stdout,
        in_native_order(&criu),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );

    // Two segments in the pagemaps, then one inline (6 bytes, padded to
    // 8): each entry's payload is where the next one expects it.
    let desc = |id: u32| {
        format!(
            "{{\"key\": 0, \"uid\": 0, \"gid\": 0, \"cuid\": 0, \"cgid\": 0, \"mode\": 384, \"id\": {id}}}"
        )
    };
    let j = format!(
        "{{\"magic\": \"IPCNS_SHM\", \"entries\": [\
         {{\"desc\": {}, \"size\": 4096, \"in_pagemaps\": true, \"extra\": \"\"}}, \
         {{\"desc\": {}, \"size\": 12288, \"in_pagemaps\": true, \"extra\": \"\"}}, \
         {{\"desc\": {}, \"size\": 6, \"extra\": {:?}}}]}}",
        desc(1),
        desc(2),
        desc(3),
        base64_lines(b"inline")
    );
    let img = crit(&["encode"], j.as_bytes());
    let img = {
        assert!(
            img.status.success(),
            "{}",
            String::from_utf8_lossy(&img.stderr)
        );
        img.stdout
    };
    assert_eq!(&img[img.len() - 8..], b"inline\0\0");
    let v: serde_json::Value = serde_json::from_str(&ok(&crit(&["decode"], &img))).unwrap();
    let want: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v, want);
    // Contents given for a segment in the pagemaps have no place there.
    let bad = j.replacen("\"extra\": \"\"", "\"extra\": \"AAAA\"", 1);
    fails(&crit(&["encode"], bad.as_bytes()), &["entries[0].extra"]);
}
