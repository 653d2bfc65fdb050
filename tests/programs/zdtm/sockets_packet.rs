//! Packet sockets (`AF_PACKET`), one mode per run (first argument after
//! the directory). The sockets that receive have a BPF filter keeping
//! only this process's frames (its PID after the link header), so that no
//! other test's traffic is ever queued on them.
//! - `all`: a `SOCK_RAW` socket bound to `lo` and protocol 0x88b5 with
//!   `PACKET_VERSION` 2, auxdata, reserve, loss, a timestamp source, a
//!   copy threshold, a multicast membership (an address of its own) added
//!   twice and an all-multicast one; a `SOCK_DGRAM` socket bound to `lo`
//!   and 0x88b6 with origdev; two `SOCK_RAW` sockets on 0x88b7 in one
//!   fanout group (hash, with rollover), one with a vnet header; a
//!   `SOCK_DGRAM` socket never bound.
//! - `single`: the same with the multicast membership added once (CRIU
//!   refuses a membership added twice) and no rollover (CRIU's images
//!   keep no fanout flags).
//!
//! After restore each socket checks its name, its options
//! (`getsockopt`), and what sock_diag says of it (its settings, its
//! memberships, which the program asks itself), and the two bound ones
//! receive a frame the program sends over `lo`; the membership's address
//! is in `/proc/net/dev_mcast` again.
//!
//! Modes a dump must refuse (checked unchanged after the refused dump):
//! `rxring`, `txring` (a ring set up and mapped), `ringclosed` (an RX
//! ring still mapped after its socket was closed), `queued` (a frame
//! waiting).
#[path = "inet_common.rs"]
mod inet;
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use inet::*;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use zdtm::{ensure, errno};

use linux_raw_sys::{if_packet as pk, net as raw};

const SOL_PACKET: u32 = raw::SOL_PACKET;
const PROTO_A: u16 = 0x88b5;
const PROTO_B: u16 = 0x88b6;
const PROTO_FANOUT: u16 = 0x88b7;
/// The link header of a frame on `lo` (two addresses and the type).
const ETH_HLEN: usize = 14;

fn pid() -> u32 {
    std::process::id()
}

fn lo() -> Result<i32, String> {
    let sk =
        rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None).map_err(e("socket"))?;
    rustix::net::netdevice::name_to_index(&sk, "lo")
        .map(|i| i as i32)
        .map_err(e("lo"))
}

fn packet(ty: SocketType) -> Result<OwnedFd, String> {
    rustix::net::socket_with(AddressFamily::PACKET, ty, SocketFlags::CLOEXEC, None)
        .map_err(e("socket(AF_PACKET)"))
}

/// `bind` to interface `ifindex` and protocol `proto` (host order).
fn bind(fd: impl AsFd, proto: u16, ifindex: i32) -> Result<(), String> {
    let a = pk::sockaddr_ll {
        sll_family: raw::AF_PACKET as u16,
        sll_protocol: proto.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: the kernel reads the sockaddr_ll on this stack frame.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::BIND,
            fd.as_fd().as_raw_fd() as usize,
            &a as *const pk::sockaddr_ll as usize,
            size_of::<pk::sockaddr_ll>(),
        )
    };
    errno(r, "bind(AF_PACKET)").map(drop)
}

/// `getsockname`: the raw `sockaddr_ll` bytes.
fn name(fd: impl AsFd) -> Result<Vec<u8>, String> {
    let mut b = [0u8; 32];
    let mut len: u32 = b.len() as u32;
    // SAFETY: the kernel writes at most `len` bytes to `b` and the length.
    let r = unsafe {
        criu_arch::syscall3(
            criu_arch::nr::GETSOCKNAME,
            fd.as_fd().as_raw_fd() as usize,
            b.as_mut_ptr() as usize,
            &mut len as *mut u32 as usize,
        )
    };
    errno(r, "getsockname")?;
    Ok(b[..len as usize].to_vec())
}

fn mreq(ifindex: i32, kind: u32, addr: &[u8]) -> Vec<u8> {
    let mut m = ifindex.to_ne_bytes().to_vec();
    m.extend_from_slice(&(kind as u16).to_ne_bytes());
    m.extend_from_slice(&(addr.len() as u16).to_ne_bytes());
    m.extend_from_slice(addr);
    m.resize(16, 0);
    m
}

/// This process's multicast address: 01:00:5e:7e and its PID.
fn own_mcast() -> [u8; 6] {
    let p = pid();
    [1, 0, 0x5e, 0x7e, (p >> 8) as u8, p as u8]
}

/// What sock_diag says of socket `ino`: its `packet_diag_info`, its
/// memberships and its fanout, as bytes (asked by the program itself).
fn diag_of(ino: u64) -> Result<Vec<u8>, String> {
    let sk = rustix::net::socket(
        AddressFamily::NETLINK,
        SocketType::RAW,
        Some(rustix::net::netlink::SOCK_DIAG),
    )
    .map_err(e("socket(NETLINK_SOCK_DIAG)"))?;
    let mut body = vec![raw::AF_PACKET as u8, 0, 0, 0];
    body.extend_from_slice(&(ino as u32).to_ne_bytes());
    body.extend_from_slice(&(1u32 | 2 | 8).to_ne_bytes()); // info, mclist, fanout
    body.extend_from_slice(&[0xff; 8]);
    let mut msg = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
    msg.extend_from_slice(&20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
    msg.extend_from_slice(&0x301u16.to_ne_bytes()); // NLM_F_REQUEST | NLM_F_DUMP
    msg.extend_from_slice(&[0; 8]);
    msg.extend_from_slice(&body);
    let kernel = rustix::net::netlink::SocketAddrNetlink::new(0, 0);
    rustix::net::sendto(&sk, &msg, SendFlags::empty(), &kernel).map_err(e("sendto"))?;
    let mut buf = vec![0u8; 65536];
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        let (n, _) = rustix::net::recv(&sk, &mut buf[..], RecvFlags::empty()).map_err(e("recv"))?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
            if len < 16 || off + len > n {
                return Err("a bad sock_diag answer".into());
            }
            let m = &buf[off + 16..off + len];
            match ty {
                3 => return Err(format!("socket {ino} is not in sock_diag's list")),
                2 => return Err("sock_diag failed".into()),
                // The message after its inode and cookie: the attributes.
                20 if m.len() >= 16
                    && u32::from_ne_bytes(m[4..8].try_into().unwrap()) == ino as u32 =>
                {
                    return Ok(sorted_attrs(&m[16..]));
                }
                _ => {}
            }
            off += (len + 3) & !3;
        }
    }
    Err("no answer from sock_diag".into())
}

/// The attributes of a sock_diag answer with the memberships sorted
/// (the kernel lists the newest first; their order is no state).
fn sorted_attrs(mut a: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while a.len() >= 4 {
        let len = (u16::from_ne_bytes([a[0], a[1]]) as usize).clamp(4, a.len());
        let ty = u16::from_ne_bytes([a[2], a[3]]);
        out.extend_from_slice(&a[..4]);
        if ty == 1 {
            let mut recs: Vec<&[u8]> = a[4..len].chunks(44).collect();
            recs.sort();
            recs.iter().for_each(|r| out.extend_from_slice(r));
        } else {
            out.extend_from_slice(&a[4..len]);
        }
        a = &a[((len + 3) & !3).min(a.len())..];
    }
    out
}

fn inode(fd: impl AsFd) -> Result<u64, String> {
    Ok(rustix::fs::fstat(fd).map_err(e("fstat"))?.st_ino)
}

const PACKET_OPTS: &[(&str, u32, u32)] = &[
    ("PACKET_VERSION", SOL_PACKET, pk::PACKET_VERSION),
    ("PACKET_RESERVE", SOL_PACKET, pk::PACKET_RESERVE),
    ("PACKET_AUXDATA", SOL_PACKET, pk::PACKET_AUXDATA),
    ("PACKET_ORIGDEV", SOL_PACKET, pk::PACKET_ORIGDEV),
    ("PACKET_VNET_HDR", SOL_PACKET, pk::PACKET_VNET_HDR),
    ("PACKET_LOSS", SOL_PACKET, pk::PACKET_LOSS),
    ("PACKET_TIMESTAMP", SOL_PACKET, pk::PACKET_TIMESTAMP),
    ("PACKET_FANOUT", SOL_PACKET, pk::PACKET_FANOUT),
];

/// One socket and what must hold of it after restore.
struct Pk {
    what: &'static str,
    fd: OwnedFd,
    name: Vec<u8>,
    opts: Vec<(String, Vec<u8>)>,
    diag: Vec<u8>,
}

fn record(what: &'static str, fd: OwnedFd) -> Result<Pk, String> {
    let mut opts = options_of(&fd, GENERIC_OPTS)?;
    opts.extend(options_of(&fd, PACKET_OPTS)?);
    Ok(Pk {
        what,
        name: name(&fd)?,
        diag: diag_of(inode(&fd)?)?,
        opts,
        fd,
    })
}

/// Reads until the socket has nothing more (what came before its filter
/// was on).
fn drain(fd: impl AsFd) {
    let mut b = [0u8; 2048];
    while rustix::net::recv(&fd, &mut b[..], RecvFlags::DONTWAIT).is_ok() {}
}

/// `full`: the membership added twice, the fanout group with rollover.
fn setup_all(full: bool) -> Result<Vec<Pk>, String> {
    let lo = lo()?;
    let mut out = Vec::new();
    // Filter first, then bind: nothing but our frames is ever queued.
    let a = packet(SocketType::RAW)?;
    attach_filter(&a, &only_word(ETH_HLEN as u32, pid()))?;
    bind(&a, PROTO_A, lo)?;
    set_int(
        &a,
        SOL_PACKET,
        pk::PACKET_VERSION,
        pk::tpacket_versions::TPACKET_V2 as i32,
    )?;
    set_int(&a, SOL_PACKET, pk::PACKET_AUXDATA, 1)?;
    set_int(&a, SOL_PACKET, pk::PACKET_RESERVE, 32)?;
    set_int(&a, SOL_PACKET, pk::PACKET_LOSS, 1)?;
    set_int(&a, SOL_PACKET, pk::PACKET_TIMESTAMP, 64)?;
    set_int(&a, SOL_PACKET, pk::PACKET_COPY_THRESH, 128)?;
    for _ in 0..if full { 2 } else { 1 } {
        setopt(
            &a,
            SOL_PACKET,
            pk::PACKET_ADD_MEMBERSHIP,
            &mreq(lo, pk::PACKET_MR_MULTICAST, &own_mcast()),
        )?;
    }
    setopt(
        &a,
        SOL_PACKET,
        pk::PACKET_ADD_MEMBERSHIP,
        &mreq(lo, pk::PACKET_MR_ALLMULTI, &[]),
    )?;
    set_int(&a, raw::SOL_SOCKET, raw::SO_RCVBUF, 65536)?;
    drain(&a);
    out.push(record("raw on lo", a)?);
    let b = packet(SocketType::DGRAM)?;
    attach_filter(&b, &only_word(0, pid()))?;
    bind(&b, PROTO_B, lo)?;
    set_int(&b, SOL_PACKET, pk::PACKET_ORIGDEV, 1)?;
    rustix::fs::fcntl_setfl(&b, rustix::fs::OFlags::NONBLOCK).map_err(e("F_SETFL"))?;
    drain(&b);
    out.push(record("dgram on lo", b)?);
    let flags = if full {
        pk::PACKET_FANOUT_FLAG_ROLLOVER
    } else {
        0
    };
    let group = (pid() & 0xffff) | (pk::PACKET_FANOUT_HASH | flags) << 16;
    for (i, what) in ["fanout 1", "fanout 2"].into_iter().enumerate() {
        let f = packet(SocketType::RAW)?;
        attach_filter(&f, &[ret(0)])?;
        bind(&f, PROTO_FANOUT, lo)?;
        if i == 1 {
            set_int(&f, SOL_PACKET, pk::PACKET_VNET_HDR, 1)?;
        }
        set_int(&f, SOL_PACKET, pk::PACKET_FANOUT, group as i32)?;
        out.push(record(what, f)?);
    }
    out.push(record("unbound", packet(SocketType::DGRAM)?)?);
    Ok(out)
}

/// A frame of `proto` on `lo` carrying this PID and `tag`.
fn send_frame(proto: u16, tag: &[u8]) -> Result<(), String> {
    let s = packet(SocketType::RAW)?;
    bind(&s, 0, lo()?)?;
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&proto.to_be_bytes());
    f.extend_from_slice(&pid().to_be_bytes());
    f.extend_from_slice(tag);
    f.resize(60, 0);
    rustix::net::send(&s, &f, SendFlags::empty()).map_err(e("send a frame"))?;
    Ok(())
}

fn heard(fd: impl AsFd, what: &str) -> Result<Vec<u8>, String> {
    let end = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    loop {
        match rustix::net::recv(&fd, &mut buf[..], RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(buf[..n].to_vec()),
            Err(rustix::io::Errno::AGAIN) if Instant::now() < end => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(x) => return Err(format!("{what}: recv: {x}")),
        }
    }
}

/// Whether `/proc/net/dev_mcast` has [`own_mcast`] on `lo`.
fn mcast_on_lo() -> Result<bool, String> {
    let t = std::fs::read_to_string("/proc/net/dev_mcast").map_err(|x| x.to_string())?;
    let want: String = own_mcast().iter().map(|b| format!("{b:02x}")).collect();
    Ok(t.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"lo") && f.last() == Some(&want.as_str())
    }))
}

/// A `tpacket_req` of one block of a page (a block must be a whole
/// number of pages: 64 KiB ones on ppc64le) in 2 KiB frames.
fn ring_req() -> Vec<u8> {
    let page = zdtm::page() as u32;
    [page, 1, 2048, page / 2048]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .collect()
}

/// A ring of `name` (`PACKET_RX_RING`, `PACKET_TX_RING`), mapped.
fn ringed(name: u32) -> Result<(OwnedFd, usize), String> {
    let s = packet(SocketType::RAW)?;
    let req = ring_req();
    setopt(&s, SOL_PACKET, name, &req)?;
    // SAFETY: a new shared mapping of the socket's ring, which nothing
    // else uses; it stays mapped for the life of the program.
    let p = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            zdtm::page(),
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &s,
            0,
        )
    }
    .map_err(e("mmap the ring"))?;
    Ok((s, p as usize))
}

struct State {
    socks: Vec<Pk>,
    mode: String,
    ring: Option<(u32, usize)>,
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let mode = args.rest.first().cloned().unwrap_or_else(|| "all".into());
    let mut ring = None;
    let socks = match mode.as_str() {
        "all" | "single" => {
            let s = setup_all(mode == "all")?;
            ensure(mcast_on_lo()?, || {
                "no membership in /proc/net/dev_mcast".into()
            })?;
            s
        }
        "rxring" | "txring" => {
            let name = if mode == "rxring" {
                pk::PACKET_RX_RING
            } else {
                pk::PACKET_TX_RING
            };
            let (s, at) = ringed(name)?;
            ring = Some((name, at));
            vec![record("ringed", s)?]
        }
        "ringclosed" => {
            let (s, at) = ringed(pk::PACKET_RX_RING)?;
            drop(s);
            ring = Some((0, at));
            Vec::new()
        }
        "queued" => {
            let q = packet(SocketType::RAW)?;
            attach_filter(&q, &only_word(ETH_HLEN as u32, pid()))?;
            bind(&q, PROTO_A, lo()?)?;
            send_frame(PROTO_A, b"queued")?;
            heard_peek(&q)?;
            vec![record("queued", q)?]
        }
        other => return Err(format!("unknown mode {other}")),
    };
    let fds: Vec<String> = socks
        .iter()
        .map(|s| format!("{} {}", s.what, s.fd.as_raw_fd()))
        .collect();
    zdtm::write_atomic(&args.dir.join("fds"), &(fds.join("\n") + "\n"))?;
    Ok(State { socks, mode, ring })
}

/// Waits (bounded) until `fd` has a frame queued, leaving it there.
fn heard_peek(fd: impl AsFd) -> Result<(), String> {
    let end = Instant::now() + WAIT;
    let mut b = [0u8; 64];
    while Instant::now() < end {
        if rustix::net::recv(&fd, &mut b[..], RecvFlags::DONTWAIT | RecvFlags::PEEK).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Err("the frame never came".into())
}

fn check(st: State) -> Result<(), String> {
    for s in &st.socks {
        let w = s.what;
        let n = name(&s.fd)?;
        ensure(n == s.name, || format!("{w}: name {n:?}, was {:?}", s.name))?;
        let mut opts = options_of(&s.fd, GENERIC_OPTS)?;
        opts.extend(options_of(&s.fd, PACKET_OPTS)?);
        options_differ(w, &opts, &s.opts)?;
        let d = diag_of(inode(&s.fd)?)?;
        ensure(d == s.diag, || {
            format!("{w}: sock_diag says {d:?}, said {:?}", s.diag)
        })?;
    }
    match st.mode.as_str() {
        "all" | "single" => {
            ensure(mcast_on_lo()?, || {
                "the membership is not in /proc/net/dev_mcast".into()
            })?;
            send_frame(PROTO_A, b"to a")?;
            let got = heard(&st.socks[0].fd, "raw on lo")?;
            ensure(got.get(ETH_HLEN + 4..ETH_HLEN + 8) == Some(b"to a"), || {
                format!("raw on lo got {got:?}")
            })?;
            send_frame(PROTO_B, b"to b")?;
            let got = heard(&st.socks[1].fd, "dgram on lo")?;
            ensure(got.get(4..8) == Some(b"to b"), || {
                format!("dgram on lo got {got:?}")
            })
        }
        "queued" => {
            let got = heard(&st.socks[0].fd, "queued")?;
            ensure(
                got.get(ETH_HLEN + 4..ETH_HLEN + 10) == Some(b"queued"),
                || format!("queued frame {got:?}"),
            )
        }
        "ringclosed" => {
            let (_, at) = st.ring.ok_or("no ring")?;
            // SAFETY: the ring's mapping, alive since setup.
            let status = unsafe { std::ptr::read_volatile(at as *const u64) };
            ensure(status == 0, || {
                format!("the ring's first frame has status {status:#x}")
            })
        }
        _ => {
            let (name, at) = st.ring.ok_or("no ring")?;
            let req = ring_req();
            let again = setopt(&st.socks[0].fd, SOL_PACKET, name, &req);
            ensure(
                again.as_ref().is_err_and(|x| x.contains("errno 16")),
                || format!("setting the ring again: {again:?} (the ring is gone?)"),
            )?;
            // SAFETY: the ring's mapping, alive since setup.
            let status = unsafe { std::ptr::read_volatile(at as *const u64) };
            ensure(status == 0 || name == pk::PACKET_TX_RING, || {
                format!("the ring's first frame has status {status:#x}")
            })
        }
    }
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}
