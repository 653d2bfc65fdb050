//! Unit tests of the message builder and the connection tuples.

use super::nft::{Batch, Family, SOCCR_MARK, Tuple};
use super::*;

fn conn(src: &str, dst: &str) -> Conn {
    Conn::new(src.parse().unwrap(), dst.parse().unwrap())
}

/// The batch [`batch`] builds, as this file's x86_64 build built it and
/// as Linux 6.18 accepted it: sent as is over `NETLINK_NETFILTER`, it got
/// 12 acknowledgements and no error, and `nft list table inet CRIU-1`
/// (nftables 1.0.6) showed CRIU's table (sets `conns4`/`conns6` of type
/// `ipv4_addr . inet_service . ipv4_addr . inet_service`, chains `output`
/// and `input`, `meta mark 0x0000c114 accept`, `ip saddr . tcp sport . ip
/// daddr . tcp dport @conns4 drop` and its ip6 twin, the element
/// `127.0.0.1 . 1000 . 127.0.0.1 . 2000`), with expressions identical to
/// those of the table nft makes from CRIU's own commands.
const KERNEL_VERIFIED_LE: &str = include_str!("lock-batch.le.hex");

fn batch() -> Vec<u8> {
    let mut b = Batch::new(1);
    b.skeleton("CRIU-1");
    let t = conn("127.0.0.1:1000", "127.0.0.1:2000").tuple().unwrap();
    b.new_elements("CRIU-1", Family::V4, &[t.key()]);
    b.finish().0
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The little-endian bytes as a big-endian host must send them: netlink
/// and attribute headers are host-endian, so is the mark the rules
/// compare (a `u32` the kernel loads in host order); addresses, ports and
/// the nf_tables `u32` attributes are network-endian either way.
fn to_big_endian(le: &[u8]) -> Vec<u8> {
    fn swap(b: &mut [u8]) {
        b.reverse();
    }
    fn attrs(b: &mut [u8]) {
        let mut off = 0;
        while off + 4 <= b.len() {
            let len = u16::from_le_bytes([b[off], b[off + 1]]) as usize;
            let kind = u16::from_le_bytes([b[off + 2], b[off + 3]]);
            swap(&mut b[off..off + 2]);
            swap(&mut b[off + 2..off + 4]);
            let value = &mut b[off + 4..off + len];
            if kind & 0x8000 != 0 {
                attrs(value);
            } else if value == SOCCR_MARK.to_le_bytes() {
                swap(value);
            }
            off += len.next_multiple_of(4);
        }
    }
    let mut b = le.to_vec();
    let mut off = 0;
    while off + 16 <= b.len() {
        let len = u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
        for (at, n) in [(0, 4), (4, 2), (6, 2), (8, 4), (12, 4)] {
            swap(&mut b[off + at..off + at + n]);
        }
        // After the header, nfgenmsg (its res_id is big-endian already).
        attrs(&mut b[off + 20..off + len]);
        off += len.next_multiple_of(4);
    }
    b
}

#[test]
fn batch_bytes_are_the_kernel_verified_ones() {
    let mut want = unhex(KERNEL_VERIFIED_LE);
    if cfg!(target_endian = "big") {
        want = to_big_endian(&want);
    }
    let got = batch();
    assert_eq!(got.len(), want.len());
    if let Some(at) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "first difference at byte {at}: {:02x?} != {:02x?}",
            &got[at..(at + 16).min(got.len())],
            &want[at..(at + 16).min(want.len())]
        );
    }
}

#[test]
fn big_endian_conversion_swaps_headers_and_the_mark_only() {
    let le = unhex(KERNEL_VERIFIED_LE);
    let be = to_big_endian(&le);
    // The batch begin: length 20 and type 0x10 swapped, res_id (10,
    // big-endian) left alone.
    assert_eq!(&be[..8], &[0, 0, 0, 0x14, 0, 0x10, 0, 1]);
    assert_eq!(&be[16..20], &le[16..20]);
    let mark = SOCCR_MARK.to_be_bytes();
    assert!(be.windows(4).any(|w| w == mark));
    // Ports stay in network order: 1000 = 0x03e8.
    assert!(be.windows(4).any(|w| w == [0x03, 0xe8, 0, 0]));
}

#[test]
fn keys_are_network_order_with_ports_padded() {
    let t = conn("10.1.2.3:80", "192.168.0.9:65535").tuple().unwrap();
    assert_eq!(
        t.key(),
        [10, 1, 2, 3, 0, 80, 0, 0, 192, 168, 0, 9, 0xff, 0xff, 0, 0]
    );
    assert_eq!(t.key().len(), Family::V4.key_len() as usize);
    let t = conn("[fe80::1]:1", "[::2]:258").tuple().unwrap();
    let k = t.key();
    assert_eq!(k.len(), 40);
    assert_eq!(&k[..2], &[0xfe, 0x80]);
    assert_eq!(&k[15..20], &[1, 0, 1, 0, 0]);
    assert_eq!(
        &k[20..36],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    );
    assert_eq!(&k[36..], &[1, 2, 0, 0]);
    assert_eq!(t.reversed().key()[..16], k[20..36]);
}

#[test]
fn ipv4_mapped_connections_are_locked_as_ipv4() {
    let t = conn("[::ffff:127.0.0.1]:5", "[::ffff:10.0.0.1]:6")
        .tuple()
        .unwrap();
    assert_eq!(
        t,
        Tuple::V4 {
            src: "127.0.0.1:5".parse().unwrap(),
            dst: "10.0.0.1:6".parse().unwrap()
        }
    );
    let e = conn("127.0.0.1:5", "[::1]:6").tuple().unwrap_err();
    assert_eq!(
        e.to_string(),
        "connection 127.0.0.1:5 - [::1]:6: the two ends are of different address families"
    );
}

#[test]
fn errors_say_what_failed_and_what_to_do() {
    let e = NetLockError::Kernel {
        what: "creating table inet CRIU-7".to_owned(),
        errno: Errno::PERM,
    };
    assert_eq!(
        e.to_string(),
        "Locking network failed using nftables: creating table inet CRIU-7: \
         Operation not permitted (os error 1) (locking the network needs CAP_NET_ADMIN)"
    );
    let e = NetLockError::Kernel {
        what: "creating table inet CRIU-7".to_owned(),
        errno: Errno::EXIST,
    };
    assert!(e.to_string().contains("a lock of an earlier dump"), "{e}");
}

#[test]
fn skip_locks_nothing() {
    let lock = Lock::take(Method::Skip, 1, &[conn("127.0.0.1:1", "127.0.0.1:2")]).unwrap();
    assert_eq!(lock.table(), None);
    lock.release().unwrap();
    release_named(Method::Skip, 1, &[]).unwrap();
}

#[test]
fn no_connection_takes_nothing() {
    // No netlink traffic at all: this works without privileges.
    let lock = Lock::take(Method::Nftables, "none", &[]).unwrap();
    assert_eq!(lock.table(), None);
    assert!(lock.is_empty());
    drop(lock);
    let lock = Lock::take(Method::Iptables, "none", &[]).unwrap();
    lock.keep();
}
