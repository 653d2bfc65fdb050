//! ZDTM-style dump/restore tests of pipes, FIFOs and unix sockets: each
//! program sets up its objects with data queued, is dumped, killed and
//! restored, and checks itself (see tests/programs/zdtm/{pipes,fifo,unix}.rs).
#![cfg(target_arch = "x86_64")]

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
