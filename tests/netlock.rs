//! The network lock (`criu_core::netlock`) on real TCP connections over
//! loopback, both ends in this test: while the lock is in place data sent
//! either way does not arrive; once it is released TCP retransmits it and
//! it does. The nftables lock is taken by `netlock_ctl` (a test program)
//! run with a `PATH` that holds no command at all: no `nft`, no
//! `iptables` is needed. The tables are listed here with our own
//! `GETTABLE` dump, independent of the module under test, and after every
//! failure (fault injection at each netlink batch) no table is left.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criu_core::netlock::{self, Conn, Lock, Method, NetLockError};
use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nftables::{NfTablesMessage, TableAttribute, TableMessage};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, netlink as nl};

use common::{program_path, skip};

/// A `PATH` with no command in it.
const NO_PATH: &str = "/nonexistent-netlock-test-path";

/// How long "does not arrive" is watched, and how long data may take to
/// arrive after the release (RTO backoff on loopback: 0.2, 0.4, 0.8 s...).
const BLOCKED_FOR: Duration = Duration::from_millis(700);
const ARRIVES_WITHIN: Duration = Duration::from_secs(10);

/// Whether nftables locking can be tried here at all; skips the test if
/// not, naming the reason.
fn nftables_here(test: &str) -> bool {
    if !rustix::process::geteuid().is_root() {
        skip(test, "not root: locking the network needs CAP_NET_ADMIN");
        return false;
    }
    match netlock::tables() {
        Ok(_) => true,
        Err(NetLockError::Socket(Errno::PROTONOSUPPORT)) => {
            skip(
                test,
                "NETLINK_NETFILTER sockets are not emulated here (qemu-user?)",
            );
            false
        }
        Err(e) => panic!("{test}: cannot list nf_tables tables: {e}"),
    }
}

/// A lock id no other test (nor another run) uses.
fn id(test: &str) -> String {
    // Short: the table keeps 26 characters of `CRIU-<id>` (see
    // `netlock::table_name`), the pid and the test's name must fit.
    format!("t{}-{test}", std::process::id())
}

/// Removes the table of `id` when the test ends, even by a panic, so a
/// failed test leaves no connection of this machine locked.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = netlock::release_named(Method::Nftables, &self.0, &[]);
    }
}

/// The names of the inet tables, from our own `GETTABLE` dump.
fn inet_tables() -> Vec<String> {
    let sk = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, Some(nl::NETFILTER))
        .expect("netfilter socket");
    let header = NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0);
    let mut msg = NetlinkMessage::from(NetfilterMessage::new(
        header,
        NfTablesMessage::GetTable(TableMessage { attributes: vec![] }),
    ));
    msg.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.header.sequence_number = 7;
    msg.finalize();
    let mut req = vec![0; msg.buffer_len()];
    msg.serialize(&mut req);
    rustix::net::sendto(
        &sk,
        &req,
        SendFlags::empty(),
        &nl::SocketAddrNetlink::new(0, 0),
    )
    .expect("send GETTABLE");
    let mut names = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no end of the table dump");
        let (n, _) = rustix::net::recv(&sk, &mut buf, RecvFlags::empty()).expect("recv");
        let mut off = 0;
        while off < n {
            let m = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[off..n])
                .expect("table dump message");
            off += (m.header.length as usize).next_multiple_of(4);
            match m.payload {
                NetlinkPayload::Done(_) => return names,
                NetlinkPayload::Error(e) => panic!("table dump failed: {e:?}"),
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::NfTables(NfTablesMessage::NewTable(t)),
                    ..
                }) => names.extend(t.attributes.into_iter().filter_map(|a| match a {
                    TableAttribute::Name(n) => Some(n),
                    _ => None,
                })),
                _ => {}
            }
        }
    }
}

fn has_table(name: &str) -> bool {
    inet_tables().iter().any(|t| t == name)
}

/// A connected pair over loopback (`client`, `server`), or `None` if the
/// address family has no loopback here.
fn pair(loopback: &str) -> Option<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind(loopback).ok()?;
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    for s in [&client, &server] {
        s.set_nodelay(true).unwrap();
    }
    Some((client, server))
}

fn conn_of(client: &TcpStream) -> Conn {
    Conn::new(client.local_addr().unwrap(), client.peer_addr().unwrap())
}

/// Whether `bytes` arrive on `s` within `wait` (reads exactly that many).
fn arrives(s: &mut TcpStream, bytes: &[u8], wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < bytes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => panic!("connection closed"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    assert_eq!(got, bytes);
    true
}

/// Sends one message each way and checks that neither arrives while the
/// lock holds.
fn send_while_locked(client: &mut TcpStream, server: &mut TcpStream) {
    client.write_all(b"ping").unwrap();
    server.write_all(b"pong").unwrap();
    assert!(
        !arrives(server, b"ping", BLOCKED_FOR),
        "data reached the server through the lock"
    );
    assert!(
        !arrives(client, b"pong", Duration::from_millis(100)),
        "data reached the client through the lock"
    );
}

/// After the release both messages arrive, by retransmission.
fn arrive_after_release(client: &mut TcpStream, server: &mut TcpStream) {
    assert!(
        arrives(server, b"ping", ARRIVES_WITHIN),
        "ping did not arrive after the release"
    );
    assert!(
        arrives(client, b"pong", ARRIVES_WITHIN),
        "pong did not arrive after the release"
    );
}

/// `netlink_ctl ARGS` with no command in `PATH`.
fn ctl(args: &[String]) -> Command {
    let mut c = Command::new(program_path("netlock_ctl"));
    c.args(args).env_clear().env("PATH", NO_PATH);
    c
}

fn args(words: &[&str], conns: &[Conn]) -> Vec<String> {
    let mut a: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    for c in conns {
        a.push(c.src.to_string());
        a.push(c.dst.to_string());
    }
    a
}

/// The lock taken by another process with no command in `PATH` holds
/// the data back until that process drops it.
fn lock_holds_data_until_released(test: &str, loopback: &str) {
    if !nftables_here(test) {
        return;
    }
    let Some((mut client, mut server)) = pair(loopback) else {
        return skip(test, &format!("no loopback address {loopback} here"));
    };
    let id = id(test);
    let _cleanup = Cleanup(id.clone());
    let table = netlock::table_name(&id);
    let mut holder = ctl(&args(
        &["take", "nftables", &id, "hold"],
        &[conn_of(&client)],
    ))
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start netlock_ctl");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        format!("locked {table}"),
        "netlock_ctl: {line:?}"
    );
    assert!(has_table(&table));
    send_while_locked(&mut client, &mut server);
    drop(holder.stdin.take());
    let out = holder.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !has_table(&table),
        "{table} is still there after the release"
    );
    arrive_after_release(&mut client, &mut server);
}

#[test]
fn nftables_lock_holds_ipv4_data_until_released() {
    lock_holds_data_until_released("nft_ipv4", "127.0.0.1:0");
}

#[test]
fn nftables_lock_holds_ipv6_data_until_released() {
    lock_holds_data_until_released("nft_ipv6", "[::1]:0");
}

/// A dump keeps the lock when it exits; the restore, another process,
/// removes it by name. A second removal finds nothing and is fine.
#[test]
fn kept_lock_is_released_by_name_from_another_process() {
    let test = "kept_lock_released_by_name";
    if !nftables_here(test) {
        return;
    }
    let (mut client, mut server) = pair("127.0.0.1:0").expect("IPv4 loopback");
    let (mut c6, mut s6) = match pair("[::1]:0") {
        Some(p) => p,
        None => return skip(test, "no loopback address [::1] here"),
    };
    let id = id(test);
    let _cleanup = Cleanup(id.clone());
    let table = netlock::table_name(&id);
    let conns = [conn_of(&client), conn_of(&c6)];
    let out = ctl(&args(&["take", "nftables", &id, "keep"], &conns))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(has_table(&table), "the kept table is gone");
    send_while_locked(&mut client, &mut server);
    send_while_locked(&mut c6, &mut s6);
    let out = ctl(&args(&["release", "nftables", &id], &[]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!has_table(&table));
    arrive_after_release(&mut client, &mut server);
    arrive_after_release(&mut c6, &mut s6);
    netlock::release_named(Method::Nftables, &id, &[]).expect("no table is fine");
}

/// Dropping a lock releases it; `add` extends one.
#[test]
fn dropping_the_lock_releases_it() {
    let test = "dropping_the_lock";
    if !nftables_here(test) {
        return;
    }
    let (mut client, mut server) = pair("127.0.0.1:0").expect("IPv4 loopback");
    let id = id(test);
    let _cleanup = Cleanup(id.clone());
    let mut lock = Lock::take(Method::Nftables, &id, &[]).unwrap();
    assert_eq!(lock.table(), None, "no connection, no table");
    lock.add(&conn_of(&client)).unwrap();
    assert_eq!(lock.table(), Some(netlock::table_name(&id).as_str()));
    send_while_locked(&mut client, &mut server);
    drop(lock);
    assert!(!has_table(&netlock::table_name(&id)));
    arrive_after_release(&mut client, &mut server);
}

/// A second lock of the same name is refused while the first is in
/// place (a stale lock is never taken over silently), and leaves the
/// first one as it was.
#[test]
fn a_second_lock_of_the_same_name_is_refused() {
    let test = "same_name_refused";
    if !nftables_here(test) {
        return;
    }
    let id = id(test);
    let _cleanup = Cleanup(id.clone());
    let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let first = Lock::take(Method::Nftables, &id, &[Conn::new(a, b)]).unwrap();
    let err = Lock::take(Method::Nftables, &id, &[Conn::new(b, a)]).unwrap_err();
    assert!(err.already_locked(), "{err:?}");
    assert!(
        err.to_string().contains(&format!(
            "creating table inet {}: File exists",
            netlock::table_name(&id)
        )),
        "{err}"
    );
    assert!(
        has_table(&netlock::table_name(&id)),
        "the first lock was removed"
    );
    first.release().unwrap();
    assert!(!has_table(&netlock::table_name(&id)));
}

/// Every netlink batch of a lock of many connections (the table, then the
/// elements in several batches) fails once (`CRIU_FAULT_SYSCALL=N`): each
/// failure is reported and leaves no table; the run after the last one
/// succeeds.
#[test]
fn every_failure_leaves_no_table() {
    let test = "every_failure_leaves_no_table";
    if !nftables_here(test) {
        return;
    }
    let id = id(test);
    let _cleanup = Cleanup(id.clone());
    let table = netlock::table_name(&id);
    // 1500 IPv4 and 10 IPv6 connections: 3000 IPv4 elements take two
    // batches, the IPv6 ones a third, after the table's.
    let mut conns: Vec<Conn> = (0..1500u16)
        .map(|i| {
            Conn::new(
                SocketAddr::from(([127, 0, 0, 2], 10000 + i)),
                SocketAddr::from(([127, 0, 0, 3], 20000 + i)),
            )
        })
        .collect();
    conns.extend((0..10u16).map(|i| {
        Conn::new(
            format!("[::1]:{}", 30000 + i).parse().unwrap(),
            "[::1]:9".parse().unwrap(),
        )
    }));
    let mut failures = 0;
    for n in 1.. {
        assert!(n < 20, "still failing at call {n}");
        let out = ctl(&args(&["take", "nftables", &id, "keep"], &conns))
            .env("CRIU_FAULT_SYSCALL", n.to_string())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            break;
        }
        failures += 1;
        assert!(
            err.contains("Locking network failed using nftables")
                && err.contains("No buffer space available"),
            "call {n}: {err}"
        );
        assert!(
            !has_table(&table),
            "call {n} failed and left {table}: {err}"
        );
    }
    assert_eq!(failures, 4, "table, two IPv4 and one IPv6 element batches");
    assert!(has_table(&table));
    netlock::release_named(Method::Nftables, &id, &[]).unwrap();
    assert!(!has_table(&table));
}

/// `criu check --feature network_lock_nftables` makes and deletes a probe
/// table, with no command in `PATH`.
#[test]
fn check_feature_network_lock_nftables_needs_no_command() {
    let test = "check_network_lock_nftables";
    if !nftables_here(test) {
        return;
    }
    let criu = std::path::Path::new(env!("CARGO_BIN_EXE_criu"));
    let out = Command::new(criu)
        .args(["check", "--feature", "network_lock_nftables"])
        .env_clear()
        .env("PATH", NO_PATH)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("network_lock_nftables is supported"),
        "{text}"
    );
    assert!(
        !inet_tables().iter().any(|t| t.starts_with("CRIU-probe-")),
        "the probe table was left"
    );
}

/// The iptables method without the command: a clear error naming it.
#[test]
fn iptables_without_the_command_says_so() {
    let out = ctl(&args(
        &["take", "iptables", "x", "release"],
        &[Conn::new(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        )],
    ))
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "--network-lock iptables needs the iptables command: No such file or directory \
         (os error 2) (--network-lock nftables needs no command)"
    );
}

/// The iptables method, where the command exists: CRIU's rules hold the
/// data back and are all gone after the release.
#[test]
fn iptables_lock_holds_data_until_released() {
    let test = "iptables_lock";
    if !rustix::process::geteuid().is_root() {
        return skip(test, "not root: locking the network needs CAP_NET_ADMIN");
    }
    let has = |cmd: &str| {
        Command::new(cmd)
            .args(["-w", "-S", "INPUT"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has("iptables") || !has("ip6tables") {
        return skip(test, "no working iptables and ip6tables commands here");
    }
    let (mut client, mut server) = pair("127.0.0.1:0").expect("IPv4 loopback");
    let port = client.local_addr().unwrap().port().to_string();
    let rules = || {
        let out = Command::new("iptables")
            .args(["-w", "-S"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                l.contains(&format!("port {port} ")) || l.ends_with(&format!("port {port}"))
            })
            .count()
    };
    let lock = Lock::take(Method::Iptables, "ipt", &[conn_of(&client)]).unwrap();
    assert_eq!(rules(), 2, "one INPUT and one OUTPUT rule");
    send_while_locked(&mut client, &mut server);
    lock.release().unwrap();
    assert_eq!(rules(), 0, "rules left after the release");
    arrive_after_release(&mut client, &mut server);
}
