//! ZDTM-style tests of the socket kinds beyond unix, TCP and UDP:
//! netlink, packet and raw sockets (tests/programs/zdtm/sockets_{netlink,
//! packet,raw}.rs). Each mode is dumped, killed, restored and checks its
//! own sockets (names, peers, memberships, options, what sock_diag says)
//! and that they work. What a dump refuses (a packet socket with a ring,
//! data queued, what CRIU's images cannot hold) is checked word for word,
//! with the program running on unchanged.

mod common;

use common::zdtm::Zdtm;

fn dump_restore_pass(test: &str, program: &str, args: &[&str]) {
    if let Some(verdict) = common::zdtm::dump_restore(test, program, args) {
        assert_eq!(verdict, "PASS", "{program} {args:?}");
    }
}

#[test]
fn netlink_route_uevent_connected_and_unbound_sockets_come_back() {
    dump_restore_pass("zdtm-netlink-all", "zdtm_sockets_netlink", &["all"]);
}

#[test]
fn a_netlink_socket_in_a_group_above_32_comes_back() {
    dump_restore_pass("zdtm-netlink-above32", "zdtm_sockets_netlink", &["above32"]);
}

#[test]
fn packet_sockets_with_options_memberships_and_fanout_come_back() {
    dump_restore_pass("zdtm-packet-all", "zdtm_sockets_packet", &["all"]);
}

#[test]
fn raw_icmp_and_hdrincl_sockets_over_ipv4_and_ipv6_come_back() {
    dump_restore_pass("zdtm-raw-all", "zdtm_sockets_raw", &["all"]);
}

#[test]
fn a_connected_raw_socket_comes_back_connected() {
    dump_restore_pass("zdtm-raw-connected", "zdtm_sockets_raw", &["connected"]);
}

/// The fd of socket `what` (from the program's `DIR/fds`).
fn fd_of(z: &Zdtm, what: &str) -> String {
    let fds = std::fs::read_to_string(z.work().join("fds")).unwrap();
    fds.lines()
        .find_map(|l| l.strip_prefix(what)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {what} in {fds}"))
        .to_string()
}

/// Starts `program MODE`, expects its dump to be refused with `what`
/// (after `fd N of task P is `, N the fd of its socket `sock`), then the
/// program to find its socket as it was.
fn refused(program: &str, mode: &str, sock: &str, what: &str) {
    let test = format!("zdtm-{program}-{mode}");
    let Some(z) = Zdtm::start(&test, program, &[mode]) else {
        return;
    };
    let msg = format!("fd {} of task {} is {what}", fd_of(&z, sock), z.pid());
    z.dump_refused(&[], &msg);
    assert_eq!(z.go(), "PASS", "{program} {mode} after the refused dump");
}

#[test]
fn packet_sockets_with_a_ring_are_refused_by_name() {
    refused(
        "zdtm_sockets_packet",
        "rxring",
        "ringed",
        "a packet socket with an RX ring, which cannot be dumped yet",
    );
    refused(
        "zdtm_sockets_packet",
        "txring",
        "ringed",
        "a packet socket with a TX ring, which cannot be dumped yet",
    );
}

/// A ring whose socket the task closed is only a mapping of it: refused
/// there, by its addresses.
#[test]
fn a_packet_ring_mapped_without_its_socket_is_refused() {
    let Some(z) = Zdtm::start(
        "zdtm-packet-ringclosed",
        "zdtm_sockets_packet",
        &["ringclosed"],
    ) else {
        return;
    };
    let log = z.dump_refused(
        &[],
        &format!(
            "dumping memory of task {}: the ring of a packet socket (socket:[",
            z.pid()
        ),
    );
    assert!(
        log.contains(") mapped at 0x") && log.contains(" cannot be dumped yet"),
        "{log}"
    );
    assert_eq!(z.go(), "PASS", "after the refused dump");
}

#[test]
fn a_packet_socket_with_a_frame_queued_is_refused_and_keeps_it() {
    refused(
        "zdtm_sockets_packet",
        "queued",
        "queued",
        "a packet socket: it has packets queued for reading, which cannot be dumped yet \
         (CRIU would drop them)",
    );
}

#[test]
fn a_netlink_socket_with_a_message_queued_is_refused_and_keeps_it() {
    refused(
        "zdtm_sockets_netlink",
        "queued",
        "queued",
        "a netlink socket: NETLINK_USERSOCK has messages queued for reading, which cannot be \
         dumped yet (CRIU refuses it too: The socket has data to read)",
    );
}

#[test]
fn netlink_state_criu_s_image_cannot_hold_is_refused_by_name() {
    refused(
        "zdtm_sockets_netlink",
        "pktinfo",
        "pktinfo",
        "a netlink socket: NETLINK_ROUTE has NETLINK_PKTINFO on, which cannot be dumped yet \
         (CRIU's image has no place for it)",
    );
    refused(
        "zdtm_sockets_netlink",
        "dgram",
        "dgram",
        "a netlink socket: NETLINK_ROUTE of type SOCK_DGRAM, which cannot be dumped yet \
         (CRIU's image has no place for the type: CRIU restores every netlink socket as \
         SOCK_RAW)",
    );
}

#[test]
fn raw_socket_state_that_cannot_be_dumped_is_refused_by_name() {
    refused(
        "zdtm_sockets_raw",
        "queued",
        "queued",
        "a raw socket: a raw socket on 0.0.0.0 with packets queued for reading, which cannot \
         be dumped yet (CRIU would drop them)",
    );
    refused(
        "zdtm_sockets_raw",
        "checksum",
        "checksum",
        "a raw socket: a raw IPv6 socket with IPV6_CHECKSUM at offset 4, which cannot be \
         dumped yet (CRIU's image has no place for the offset)",
    );
}
