//! ZDTM-style dump/restore tests of pipes, FIFOs and unix sockets: each
//! program sets up its objects with data queued, is dumped, killed and
//! restored, and checks itself (see tests/programs/zdtm/{pipes,fifo,unix}.rs).

mod common;

use common::zdtm::Zdtm;

fn dump_restore_pass(test: &str, program: &str, args: &[&str]) {
    if let Some(verdict) = common::zdtm::dump_restore(test, program, args) {
        assert_eq!(verdict, "PASS", "{program} {args:?}");
    }
}

#[test]
fn pipes_keep_data_size_flags_and_ends() {
    dump_restore_pass("zdtm-pipes", "zdtm_pipes", &[]);
}

/// F_SETOWN_EX/F_SETSIG owners and a live O_ASYNC come back (fown).
#[test]
fn file_owners_signals_and_o_async_come_back() {
    dump_restore_pass("zdtm-fown", "zdtm_fown", &[]);
}

/// O_PATH fds of a file, a directory, a symlink, a device and an
/// unlinked file come back O_PATH, naming the same files.
#[test]
fn o_path_fds_come_back() {
    dump_restore_pass("zdtm-opath", "zdtm_opath", &[]);
}

#[test]
fn fifo_keeps_its_data_and_path() {
    dump_restore_pass("zdtm-fifo", "zdtm_fifo", &[]);
}

#[test]
fn unix_stream_pairs_keep_queues_both_ways_and_shutdown() {
    dump_restore_pass("zdtm-unix-stream", "zdtm_unix", &["stream"]);
}

#[test]
fn unix_dgram_keeps_message_boundaries() {
    dump_restore_pass("zdtm-unix-dgram", "zdtm_unix", &["dgram"]);
}

#[test]
fn unix_seqpacket_keeps_message_boundaries() {
    dump_restore_pass("zdtm-unix-seqpacket", "zdtm_unix", &["seqpacket"]);
}

#[test]
fn unix_listener_keeps_accepted_and_pending_connections() {
    dump_restore_pass("zdtm-unix-listen", "zdtm_unix", &["listen"]);
}

#[test]
fn unix_abstract_listener_keeps_accepted_and_pending_connections() {
    dump_restore_pass("zdtm-unix-abstract", "zdtm_unix", &["abstract"]);
}

/// A socket file keeps its mode and owner (`file_perms`); a listener whose
/// file and directory were removed comes back with its connections and
/// leaves no file behind; a datagram socket whose path someone else's
/// file took again leaves that file alone (`deleted`).
#[test]
fn unix_socket_files_keep_modes_and_deleted_ones_stay_deleted() {
    dump_restore_pass("zdtm-unix-files", "zdtm_unix_files", &[]);
}

/// A socket bound by a relative name whose directory is no longer the
/// task's cwd (or root) cannot be placed: refused by name, as CRIU does,
/// and the program runs on.
#[test]
fn unix_socket_with_an_unresolvable_relative_name_is_refused() {
    let Some(z) = Zdtm::start("zdtm-unix-rel-moved", "zdtm_unix_files", &["cwd-moved"]) else {
        return;
    };
    let pid = z.pid().to_string();
    let (ok, log) = z.criu_in(z.images(), &["dump", "-t", &pid]);
    assert!(
        !ok,
        "dump of an unresolvable relative name succeeded: {log}"
    );
    assert!(
        log.contains("is a unix socket: bound to the relative name \"rel.sock\", whose file is in neither its cwd nor its root"),
        "{log}"
    );
    assert_eq!(z.go(), "PASS");
}

#[test]
fn unix_fd_in_flight_is_refused_cleanly() {
    let Some(z) = Zdtm::start("zdtm-unix-scm", "zdtm_unix", &["scm"]) else {
        return;
    };
    let pid = z.pid().to_string();
    let (ok, log) = z.criu_in(z.images(), &["dump", "-t", &pid]);
    assert!(!ok, "dump with an fd in flight succeeded: {log}");
    assert!(log.contains("SCM_RIGHTS") && log.contains("fd "), "{log}");
    assert_eq!(z.go(), "PASS");
}

#[test]
fn unix_socket_connected_outside_is_refused_cleanly() {
    let path = std::env::temp_dir().join(format!("zdtm-ext-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let Some(z) = Zdtm::start(
        "zdtm-unix-ext",
        "zdtm_unix",
        &["ext", path.to_str().unwrap()],
    ) else {
        return;
    };
    let pid = z.pid().to_string();
    let (ok, log) = z.criu_in(z.images(), &["dump", "-t", &pid]);
    assert!(!ok, "dump of a socket connected outside succeeded: {log}");
    assert!(
        log.contains("outside the dump") && log.contains("--ext-unix-sk") && log.contains("fd "),
        "{log}"
    );
    assert!(
        log.contains(path.to_str().unwrap()),
        "peer not named: {log}"
    );
    // The task was left as it was.
    assert_eq!(z.go(), "PASS");
    drop(listener);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn unix_socket_connected_outside_comes_back_with_ext_unix_sk() {
    let path = std::env::temp_dir().join(format!("zdtm-ext2-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let Some(mut z) = Zdtm::start(
        "zdtm-unix-ext-allowed",
        "zdtm_unix",
        &["ext", path.to_str().unwrap()],
    ) else {
        return;
    };
    z.dump(&["--ext-unix-sk"]);
    // The old connection died with the task.
    let (old, _) = listener.accept().unwrap();
    drop(old);
    z.restore(&["--ext-unix-sk"]);
    // The restored socket connected to our listener again.
    let (mut conn, _) = listener.accept().unwrap();
    assert_eq!(z.go(), "PASS");
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut conn, &mut got).unwrap();
    assert_eq!(got, b"still here");
    let _ = std::fs::remove_file(&path);
}

/// CRIU's own crit (Debian's criu package) decodes the images of pipes,
/// FIFOs and unix sockets we write, and its `x fds` names them.
#[test]
fn criu_crit_decodes_pipe_fifo_and_socket_images() {
    let crit = std::path::Path::new("/usr/bin/crit");
    if !crit.exists() {
        common::skip(
            "criu_crit_decodes_pipe_fifo_and_socket_images",
            "CRIU's crit is not installed (Debian package criu)",
        );
        return;
    }
    let cases: &[(&str, &[&str], &[&str], &str)] = &[
        ("zdtm_pipes", &[], &["pipes-data.img"], "pipe["),
        ("zdtm_fifo", &[], &["fifo-data.img"], "fifo"),
        ("zdtm_unix", &["listen"], &["sk-queues.img"], "unix["),
        ("zdtm_unix", &["dgram"], &["sk-queues.img"], "unix["),
    ];
    for (i, (program, args, must, fds_word)) in cases.iter().enumerate() {
        let Some(mut z) = Zdtm::start(&format!("crit-files-{i}"), program, args) else {
            return;
        };
        z.dump(&["--leave-running"]);
        let images = z.images().to_path_buf();
        for name in *must {
            assert!(images.join(name).exists(), "{program}: no {name}");
        }
        for entry in std::fs::read_dir(&images).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".img") || name.starts_with("pages-") {
                continue;
            }
            let out = std::process::Command::new(crit)
                .args(["decode", "-i", path.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "crit decode {name} ({program}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = std::process::Command::new(crit)
            .args(["x", images.to_str().unwrap(), "fds"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(fds_word),
            "{program}: {text}"
        );
        z.kill();
    }
}

/// The pipe and socket entries of CRIU's own `fds` fixture are read as
/// restore expects them: both ends of one pipe with its data, two
/// socketpairs and their queues, in queue order.
#[test]
fn criu_fixture_pipes_and_sockets_are_read() {
    use criu_core::images::{Kind, pb, typed::ImageDir};
    let dir = common::fixtures::criu_image_dir("fds");
    let dir = ImageDir::new(&dir);
    let files: Vec<pb::FileEntry> = dir.read_all(Kind::Files, 0).unwrap();
    let img = criu_core::files::FileImages::read(&dir, &files).unwrap();
    img.check(&|id| files.iter().any(|f| f.id == id && f.reg.is_some()))
        .unwrap();
    assert!([9, 10, 12, 15].iter().all(|&id| img.restorable(id)));
    assert!(img.pipes.contains_key(&9) && img.unix.contains_key(&12));
    assert!(!img.half_pipe(9) && !img.half_pipe(10));
    let (d, data) = &img.pipe_data[&76205];
    assert_eq!((d.bytes, d.size, data.len()), (5000, Some(65536), 5000));
    let lens: Vec<(u32, usize)> = img
        .sk_queues
        .iter()
        .map(|(e, d)| (e.id_for, d.len()))
        .collect();
    assert_eq!(lens, [(13, 3000), (15, 100), (15, 101), (15, 102)]);
}

/// A dump with --leave-running consumes nothing: every program finds its
/// pipes, FIFO and sockets exactly as it left them.
#[test]
fn leave_running_dump_consumes_no_data() {
    let cases: &[(&str, &[&str])] = &[
        ("zdtm_pipes", &[]),
        ("zdtm_fifo", &[]),
        ("zdtm_unix", &["stream"]),
        ("zdtm_unix", &["dgram"]),
        ("zdtm_unix", &["listen"]),
    ];
    for (i, (program, args)) in cases.iter().enumerate() {
        let Some(mut z) = Zdtm::start(&format!("files-leave-running-{i}"), program, args) else {
            return;
        };
        z.dump(&["--leave-running"]);
        assert_eq!(z.go(), "PASS", "{program} {args:?}");
    }
}
