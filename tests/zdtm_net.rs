//! ZDTM-style tests of TCP and UDP sockets over IPv4 and IPv6 that are not
//! connections (tests/programs/zdtm/sockets_inet{,_refused}.rs): each mode is dumped,
//! killed, restored and checks its own sockets. The refusals (a TCP
//! connection, a listener with a connection waiting, a UDP socket with
//! datagrams queued) are checked word for word,
//! with the program running on unchanged. And a real program: python3's
//! `http.server`, fetched from after its restore.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::zdtm::{TIMEOUT, Zdtm};

fn dump_restore_pass(test: &str, args: &[&str]) {
    if let Some(verdict) = common::zdtm::dump_restore(test, "zdtm_sockets_inet", args) {
        assert_eq!(verdict, "PASS", "zdtm_sockets_inet {args:?}");
    }
}

#[test]
fn tcp4_listener_unbound_and_bound_sockets_come_back() {
    dump_restore_pass("zdtm-inet-tcp4", &["tcp4"]);
}

#[test]
fn tcp6_dual_stack_and_v6only_listeners_come_back() {
    dump_restore_pass("zdtm-inet-tcp6", &["tcp6"]);
}

#[test]
fn udp4_bound_and_unbound_sockets_come_back() {
    dump_restore_pass("zdtm-inet-udp4", &["udp4"]);
}

#[test]
fn udp6_bound_and_connected_sockets_come_back() {
    dump_restore_pass("zdtm-inet-udp6", &["udp6"]);
}

#[test]
fn socket_options_read_back_equal_after_restore() {
    dump_restore_pass("zdtm-inet-opts", &["opts"]);
}

/// A port taken by someone else since the dump: the restore fails naming
/// the socket and its address, and leaves no process behind.
#[test]
fn a_port_taken_since_the_dump_fails_the_restore_by_name() {
    let Some(mut z) = Zdtm::start("zdtm-inet-port-taken", "zdtm_sockets_inet", &["tcp4"]) else {
        return;
    };
    let ports = read(&z, "ports");
    let at = ports
        .lines()
        .find_map(|l| l.strip_prefix("TCP listener "))
        .unwrap()
        .to_string();
    z.dump(&[]);
    let _taker = std::net::TcpListener::bind(&at).unwrap();
    let (ok, log) = z.criu_in(z.images(), &["restore", "-d"]);
    assert!(!ok, "restored onto a taken port: {log}");
    assert!(
        log.contains(&format!("bind to {at}: Address already in use")) && log.contains("file id "),
        "{log}"
    );
    let pid = z.pid();
    assert!(
        common::wait_until(TIMEOUT, || common::proc_state(pid).is_none()),
        "a failed restore left {pid} behind"
    );
}

/// The text of `file` in the program's work directory (written before
/// `ready`).
fn read(z: &Zdtm, file: &str) -> String {
    std::fs::read_to_string(z.work().join(file)).unwrap()
}

#[test]
fn an_established_connection_is_refused_by_name() {
    let Some(z) = Zdtm::start(
        "zdtm-inet-established",
        "zdtm_sockets_inet_refused",
        &["established"],
    ) else {
        return;
    };
    let conn = read(&z, "conn");
    let f: Vec<&str> = conn.split_whitespace().collect();
    let msg = format!(
        "fd {} of task {} is a TCP socket: the connection 127.0.0.1:{} -> 127.0.0.1:{} \
         (ESTABLISHED): Connected TCP socket, consider using --tcp-established option.",
        f[0],
        z.pid(),
        f[1],
        f[2]
    );
    z.dump_refused(&[], &msg);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_listener_with_a_connection_waiting_is_refused_and_keeps_it() {
    let Some(z) = Zdtm::start(
        "zdtm-inet-inflight",
        "zdtm_sockets_inet_refused",
        &["inflight"],
    ) else {
        return;
    };
    let port: u16 = read(&z, "port").trim().parse().unwrap();
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"hello").unwrap();
    let msg = format!(
        "fd 3 of task {} is a TCP socket: listening on 127.0.0.1:{port} with 1 connection(s) \
         not accepted yet (in flight), which cannot be dumped yet (--skip-in-flight leaves them \
         out)",
        z.pid()
    );
    // The connection waits in the accept queue as soon as connect returns.
    z.dump_refused(&[], &msg);
    assert_eq!(z.go(), "PASS");
    drop(c);
}

/// With `--skip-in-flight` (as CRIU) the listener is dumped without the
/// connection waiting in its queue, saying so; the restored listener takes
/// new connections (the program is `zdtm_sockets_inet tcp4`, whose check
/// accepts and counts on no connection but its own).
#[test]
fn skip_in_flight_leaves_waiting_connections_out() {
    let Some(mut z) = Zdtm::start("zdtm-inet-skip-in-flight", "zdtm_sockets_inet", &["tcp4"])
    else {
        return;
    };
    let ports = read(&z, "ports");
    let port: u16 = ports
        .lines()
        .find_map(|l| l.strip_prefix("TCP listener 127.0.0.1:"))
        .unwrap()
        .parse()
        .unwrap();
    let waiting = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let pid = z.pid().to_string();
    let (ok, log) = z.criu_in(z.images(), &["dump", "-t", &pid, "--skip-in-flight"]);
    assert!(ok, "dump: {log}");
    assert!(
        log.contains(&format!(
            "1 connection(s) not accepted yet by the listener on 127.0.0.1:{port} are left out \
             (--skip-in-flight)"
        )),
        "{log}"
    );
    z.wait_gone();
    drop(waiting);
    z.restore(&["--skip-in-flight"]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_udp_socket_with_datagrams_queued_is_refused_and_keeps_them() {
    let Some(z) = Zdtm::start(
        "zdtm-inet-udpqueue",
        "zdtm_sockets_inet_refused",
        &["udpqueue"],
    ) else {
        return;
    };
    let port = read(&z, "port");
    let msg = format!(
        "fd 3 of task {} is a UDP socket: 127.0.0.1:{} has datagrams queued for reading",
        z.pid(),
        port.trim()
    );
    z.dump_refused(&[], &msg);
    assert_eq!(z.go(), "PASS");
}

/// A TCP socket whose connection was reset is closed (`TCP_CLOSE`), but
/// reads give its end (the reset, then end of file), which a new socket
/// would not: refused.
#[test]
fn a_tcp_socket_closed_by_a_reset_is_refused() {
    let Some(z) = Zdtm::start("zdtm-inet-reset", "zdtm_sockets_inet_refused", &["reset"]) else {
        return;
    };
    let fd = read(&z, "fd");
    let head = format!(
        "fd {} of task {} is a TCP socket: 127.0.0.1:",
        fd.trim(),
        z.pid()
    );
    let log = z.dump_refused(&[], &head);
    assert!(
        log.contains("closed after a connection (") && log.contains("which cannot be dumped yet"),
        "{log}"
    );
    assert_eq!(z.go(), "PASS");
}

/// A free TCP port on 127.0.0.1 (bound and let go).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// GET `path` from 127.0.0.1:`port`: the response, or why not.
fn fetch(port: u16, path: &str) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// python3 -m http.server on a free port, serving a file: dumped (after
/// it served a request), killed, restored, fetched from again.
#[test]
fn python_http_server_serves_after_restore() {
    let test = "net-http-server";
    if let Some(why) = common::cannot_checkpoint() {
        return common::skip(test, why);
    }
    let have_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_python {
        return common::skip(test, "no python3 here");
    }
    common::become_subreaper();
    let dir = common::TempDir::new(test);
    let www = dir.join("www");
    let images = dir.join("images");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&images).unwrap();
    let body = "served from a restored python3\n".repeat(50);
    std::fs::write(www.join("page.txt"), &body).unwrap();
    let port = free_port();
    let port_s = port.to_string();
    let mut child = common::spawn_in(
        &www,
        &[
            "python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port_s,
        ],
        false,
    );
    let pid = child.id() as i32;
    let mut first = Err(String::new());
    common::wait_until(TIMEOUT, || {
        first = fetch(port, "/page.txt");
        first.is_ok()
    });
    let first = first.unwrap_or_else(|e| panic!("http.server never answered: {e}"));
    assert!(
        first.starts_with("HTTP/1.0 200") && first.ends_with(&body),
        "{first}"
    );
    // Let the server finish with that connection (its socket goes).
    std::thread::sleep(Duration::from_millis(200));
    let pid_s = pid.to_string();
    let (ok, log) = common::run_criu(&images, &["dump", "-t", &pid_s], &[]);
    assert!(ok, "dump: {log}");
    child.wait().unwrap();
    assert!(
        fetch(port, "/page.txt").is_err(),
        "something still serves {port}"
    );
    let (ok, log) = common::run_criu(&images, &["restore", "-d", "--pidfile", "pid"], &[]);
    assert!(ok, "restore: {log}");
    assert_eq!(
        std::fs::read_to_string(images.join("pid")).unwrap().trim(),
        pid_s
    );
    let again = fetch(port, "/page.txt");
    common::kill_all(&[pid]);
    let again = again.unwrap_or_else(|e| panic!("no answer after restore: {e}"));
    assert!(again.starts_with("HTTP/1.0 200"), "{again}");
    assert!(
        again.ends_with(&body),
        "wrong content after restore: {again}"
    );
}
