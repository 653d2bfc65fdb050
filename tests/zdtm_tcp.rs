//! ZDTM-style tests of established and half-closed TCP connections
//! (`--tcp-established`, `--tcp-close`), both ends in the dumped program
//! (tests/programs/zdtm/sockets_tcp.rs), which checks after restore that
//! every byte in flight at the dump arrives exactly once and the
//! connection goes on both ways.

mod common;

use common::zdtm::Zdtm;
use criu_core::netlock;

/// The dump's run id in `images` (the network lock's table is named
/// after it).
fn run_id(images: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crit"))
        .arg("show")
        .arg(images.join("inventory.img"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["entries"][0]["dump_criu_run_id"]
        .as_str()
        .expect("a run id in inventory.img")
        .to_string()
}

/// Whether the network lock table the dump into `images` took is in
/// place (`None`: nf_tables cannot be listed here).
fn locked(images: &std::path::Path) -> Option<bool> {
    let tables = netlock::tables().ok()?;
    let name = netlock::table_name(run_id(images));
    Some(tables.iter().any(|(_, t)| *t == name))
}

/// Dump with `--tcp-established`, restore with it, the program's verdict.
/// Between the two the network lock (nftables, the default) is in place;
/// the restore takes it away.
fn established(test: &str, mode: &str) {
    let Some(mut z) = Zdtm::start(test, "zdtm_sockets_tcp", &[mode]) else {
        return;
    };
    z.dump(&["--tcp-established"]);
    assert_ne!(
        locked(z.images()),
        Some(false),
        "{test}: no network lock after the dump"
    );
    let stream = std::fs::read_dir(z.images())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("tcp-stream-"))
        .count();
    assert_eq!(stream, 2, "one tcp-stream image per end of the connection");
    z.restore(&["--tcp-established"]);
    assert_ne!(
        locked(z.images()),
        Some(true),
        "{test}: the restore left the network lock"
    );
    assert_eq!(z.go(), "PASS", "zdtm_sockets_tcp {mode}");
}

#[test]
fn tcp4_connection_with_bytes_in_flight_both_ways_comes_back() {
    established("zdtm-tcp4", "tcp4");
}

#[test]
fn tcp6_connection_with_bytes_in_flight_both_ways_comes_back() {
    established("zdtm-tcp6", "tcp6");
}

#[test]
fn half_closed_connection_comes_back_half_closed() {
    established("zdtm-tcp-half4", "half4");
}

#[test]
fn half_closed_ipv6_connection_comes_back_half_closed() {
    established("zdtm-tcp-half6", "half6");
}

/// Without `--tcp-established`: refused with CRIU's message, naming the
/// fd, the task and the connection; the program's bytes are all there.
#[test]
fn a_connection_is_refused_without_tcp_established() {
    let Some(z) = Zdtm::start("zdtm-tcp-refused", "zdtm_sockets_tcp", &["tcp4"]) else {
        return;
    };
    let log = z.dump_refused(
        &[],
        "(ESTABLISHED): Connected TCP socket, consider using --tcp-established option.",
    );
    assert!(
        log.contains(&format!(
            "of task {} is a TCP socket: the connection 127.0.0.1:",
            z.pid()
        )),
        "{log}"
    );
    assert_eq!(z.go(), "PASS");
}

/// `--leave-running`: the connections leave repair mode and the program
/// goes on with every byte (its check says no end is in repair mode).
#[test]
fn leave_running_leaves_the_connection_working() {
    let Some(mut z) = Zdtm::start("zdtm-tcp-leave", "zdtm_sockets_tcp", &["tcp4"]) else {
        return;
    };
    z.dump(&["--tcp-established", "--leave-running"]);
    assert_eq!(z.go(), "PASS");
}

/// Images of connections restored without `--tcp-established` are refused
/// before any task is made (CRIU's "Connected TCP socket in image"); with
/// it, they come back.
#[test]
fn a_restore_without_tcp_established_is_refused_before_any_task() {
    let Some(mut z) = Zdtm::start("zdtm-tcp-restore-refused", "zdtm_sockets_tcp", &["tcp6"]) else {
        return;
    };
    z.dump(&["--tcp-established"]);
    let (ok, log) = z.criu_in(z.images(), &["restore", "-d"]);
    assert!(!ok, "restored without --tcp-established: {log}");
    assert!(log.contains("Connected TCP socket in image"), "{log}");
    assert!(
        common::proc_state(z.pid()).is_none(),
        "a task was made: {log}"
    );
    z.restore(&["--tcp-established"]);
    assert_eq!(z.go(), "PASS");
}

/// `--tcp-close`: dumped without their state, the connections come back
/// as sockets with no peer; the restore needs `--tcp-close` too (CRIU's
/// "Need to set the --tcp-close options.").
#[test]
fn tcp_close_restores_the_connections_closed() {
    let Some(mut z) = Zdtm::start("zdtm-tcp-close", "zdtm_sockets_tcp", &["tcp4"]) else {
        return;
    };
    z.dump(&["--tcp-close"]);
    let (ok, log) = z.criu_in(z.images(), &["restore", "-d"]);
    assert!(
        !ok && log.contains("Need to set the --tcp-close options."),
        "{log}"
    );
    z.restore(&["--tcp-close"]);
    std::fs::write(z.work().join("expect"), "closed").unwrap();
    assert_eq!(z.go(), "PASS");
}

/// A dump that fails after the connections were put in repair mode (at
/// each step from there on) takes them out of it and removes its network
/// lock: the program goes on with every byte, both ways, after each
/// failed dump.
#[test]
fn a_failed_dump_takes_the_connections_out_of_repair_mode() {
    let Some(z) = Zdtm::start("zdtm-tcp-failed-dump", "zdtm_sockets_tcp", &["tcp4"]) else {
        return;
    };
    let pid = z.pid().to_string();
    for step in ["collected", "shmem", "cured", "images"] {
        let images = z.new_dir(step);
        let fault = std::ffi::OsStr::new(step);
        let (ok, log) = common::run_criu(
            &images,
            &["dump", "-t", &pid, "--tcp-established"],
            &[("CRIU_DUMP_FAULT", fault)],
        );
        assert!(!ok, "the dump did not fail at {step}: {log}");
        assert!(log.contains("Dumped the TCP connection"), "{step}: {log}");
        assert_eq!(common::tracer_pid(z.pid()), Some(0), "{step}: {log}");
        // The lock the dump took (each connection joins it before repair
        // mode) is gone with it.
        let table = log
            .split("Made table inet ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("{step}: no lock table made: {log}"));
        if let Ok(tables) = netlock::tables() {
            assert!(
                !tables.iter().any(|(_, t)| t == table),
                "{step}: the failed dump left {table}: {log}"
            );
        }
    }
    assert_eq!(z.go(), "PASS");
}

/// A `tcp-stream` image whose queues end before the lengths its entry
/// gives is refused before any task is made.
#[test]
fn a_truncated_tcp_stream_image_is_refused_before_any_task() {
    let Some(mut z) = Zdtm::start("zdtm-tcp-truncated", "zdtm_sockets_tcp", &["tcp4"]) else {
        return;
    };
    z.dump(&["--tcp-established"]);
    let biggest = std::fs::read_dir(z.images())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("tcp-stream-"))
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap();
    let len = biggest.metadata().unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(biggest.path())
        .unwrap();
    f.set_len(len - 100).unwrap();
    let (ok, log) = z.criu_in(z.images(), &["restore", "-d", "--tcp-established"]);
    assert!(!ok, "restored a truncated tcp-stream image: {log}");
    let name = biggest.file_name().to_string_lossy().into_owned();
    assert!(log.contains(&name), "{log}");
    assert!(
        common::proc_state(z.pid()).is_none(),
        "a task was made: {log}"
    );
    // The dump's lock stays for a restore that works (as CRIU's does);
    // this one never comes: take it away.
    assert_ne!(
        locked(z.images()),
        Some(false),
        "the failed restore took the lock away"
    );
    netlock::release_named(netlock::Method::Nftables, run_id(z.images()), &[]).unwrap();
}
