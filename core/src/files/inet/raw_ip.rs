//! Raw sockets over IPv4 and IPv6 (`SOCK_RAW`, any protocol: ICMP as
//! `ping` opens it, `IPPROTO_RAW`, ...), which CRIU 4.x keeps in the same
//! `inet_sk_entry` as TCP and UDP: type `SOCK_RAW`, the protocol, the
//! "port" the kernel gives such a socket (its protocol number), the
//! address it is bound to, the peer address of a connected one, and the
//! raw level's options in `ip_opts.raw`: `IP_HDRINCL`/`IPV6_HDRINCL`,
//! `IP_NODEFRAG`, and an ICMP(v6) socket's type filter (`ICMP_FILTER`,
//! one word; `ICMPV6_FILTER`, eight), as CRIU records them.
//!
//! Dump takes the socket from sock_diag where the kernel has raw_diag
//! (`CONFIG_INET_RAW_DIAG`), else from `/proc/net/raw` (CRIU reads it
//! from the socket then, where `getpeername` of a connected raw socket
//! fails: its images lose the connection). Refused by name: packets
//! queued for reading (CRIU drops them) or not sent yet, a socket shut
//! down for reading (seen without raw_diag too, through `poll`), and an
//! `IPV6_CHECKSUM` offset other than the protocol's default (CRIU's image
//! has only a flag for it). A socket shut down for writing alone cannot
//! be seen without raw_diag.
//!
//! Restore: [`super::restore`] makes, binds (to the address alone: the
//! kernel ignores a raw socket's port) and connects it like the others,
//! then [`restore_opts`] sets the raw options back.

use std::os::fd::OwnedFd;

use rustix::io::Errno;

use super::{InetDump, SOL_IP, SOL_IPV6};
use crate::files::sockets;
use crate::images::pb;
use crate::proc::inet_diag::{self, InetSock};
use crate::proc::net_raw;
use crate::sys::kconst::{AF_INET6, ICMP_FILTER, ICMPV6_FILTER, IPPROTO_RAW};
use crate::sys::sockopt::{self as so, SIOCOUTQ};

use linux_raw_sys::net as raw;

/// `IPPROTO_ICMP`, `IPPROTO_ICMPV6`, `IPPROTO_MH` (linux/in.h,
/// linux/in6.h).
const ICMP: u32 = raw::IPPROTO_ICMP as u32;
const ICMPV6: u32 = raw::IPPROTO_ICMPV6;
const MH: u32 = raw::IPPROTO_MH;

/// Every raw socket of `family` by inode: sock_diag's list where the
/// kernel has raw_diag, else `/proc/self/net/raw{,6}`'s (asked once per
/// family); whether it is sock_diag's.
fn listed(st: &mut InetDump, family: u8, ino: u32) -> Result<(Option<InetSock>, bool), String> {
    let key = (family, IPPROTO_RAW);
    if !st.diag.contains_key(&key) {
        let all = match inet_diag::collect(family, IPPROTO_RAW, u32::MAX) {
            Ok(all) => all,
            Err(Errno::NOENT) | Err(Errno::OPNOTSUPP) | Err(Errno::INVAL) => {
                st.raw_diag_missing.insert(family);
                net_raw::collect(family).map_err(|e| e.to_string())?
            }
            Err(e) => return Err(format!("sock_diag: {e}")),
        };
        st.diag.insert(key, all);
    }
    let sk = st.diag.get(&key).and_then(|d| d.get(&ino)).cloned();
    Ok((sk, !st.raw_diag_missing.contains(&family)))
}

/// The raw socket `copy` (of `family`, inode `ino`) as sock_diag or
/// `/proc/net/raw` lists it; whether sock_diag did. Refused: what CRIU's
/// image cannot carry (see the module).
pub(super) fn sock(
    copy: &OwnedFd,
    family: u8,
    ino: u32,
    st: &mut InetDump,
) -> Result<(InetSock, bool), String> {
    let (sk, in_diag) = listed(st, family, ino)?;
    let Some(sk) = sk else {
        let list = if in_diag {
            "sock_diag's list"
        } else if family == AF_INET6 {
            "/proc/net/raw6"
        } else {
            "/proc/net/raw"
        };
        return Err(format!(
            "a raw socket not in {list} (in another network namespace?)"
        ));
    };
    let me = super::ip_of(sk.family, &sk.src);
    if sk.shutdown & 1 != 0 || shut_for_reading(copy)? {
        return Err(format!(
            "a raw socket on {me} shut down for reading, which cannot be dumped yet"
        ));
    }
    if sk.rqueue > 0 || sockets::has_data(copy)? {
        return Err(format!(
            "a raw socket on {me} with packets queued for reading, which cannot be dumped yet \
             (CRIU would drop them)"
        ));
    }
    let unsent = so::ioctl_int(copy, SIOCOUTQ).map_err(|e| format!("SIOCOUTQ: {e}"))?;
    if unsent > 0 {
        return Err(format!(
            "a raw socket on {me} with {unsent} bytes not sent yet, which cannot be dumped yet"
        ));
    }
    Ok((sk, in_diag))
}

/// `poll`: `POLLRDHUP` is up once a datagram socket is shut down for
/// reading.
fn shut_for_reading(fd: &OwnedFd) -> Result<bool, String> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(fd, PollFlags::RDHUP)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&now)).map_err(|e| format!("poll: {e}"))?;
    Ok(fds[0].revents().contains(PollFlags::RDHUP))
}

/// The `IPV6_CHECKSUM` a new raw socket of `proto` has: the checksum
/// offset of ICMPv6 and Mobility Header sockets, none (-1) otherwise.
fn default_checksum(proto: u32) -> i32 {
    match proto {
        ICMPV6 => 2,
        MH => 4,
        _ => -1,
    }
}

fn flag(fd: &OwnedFd, level: u32, name: u32, what: &str) -> Result<Option<bool>, String> {
    let v = so::get_int(fd, level, name).map_err(|e| format!("{what}: {e}"))?;
    Ok((v != 0).then_some(true))
}

/// The ICMP type filter of an ICMP (`words` 1) or ICMPv6 (8) socket.
fn icmp_filter(fd: &OwnedFd, v6: bool) -> Result<Vec<u32>, String> {
    let (level, name, words, what) = if v6 {
        (raw::SOL_ICMPV6, ICMPV6_FILTER, 8, "ICMPV6_FILTER")
    } else {
        (raw::SOL_RAW, ICMP_FILTER, 1, "ICMP_FILTER")
    };
    let mut buf = vec![0u8; words * 4];
    let n = so::get_bytes(fd, level, name, Some(&mut buf)).map_err(|e| format!("{what}: {e}"))?;
    if n != buf.len() {
        return Err(format!("{what}: {n} bytes"));
    }
    Ok(buf
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The raw level's options as CRIU records them (each flag only when on).
pub(super) fn opts(fd: &OwnedFd, family: u8, proto: u32) -> Result<pb::IpOptsRawEntry, String> {
    let mut r = pb::IpOptsRawEntry::default();
    if family == AF_INET6 {
        r.hdrincl = flag(fd, SOL_IPV6, raw::IPV6_HDRINCL, "IPV6_HDRINCL")?;
        let sum = so::get_int(fd, SOL_IPV6, raw::IPV6_CHECKSUM)
            .map_err(|e| format!("IPV6_CHECKSUM: {e}"))?;
        if sum != default_checksum(proto) {
            return Err(format!(
                "a raw IPv6 socket with IPV6_CHECKSUM at offset {sum}, which cannot be dumped \
                 yet (CRIU's image has no place for the offset)"
            ));
        }
        if proto == ICMPV6 {
            r.icmpv_filter = icmp_filter(fd, true)?;
        }
    } else {
        r.hdrincl = flag(fd, SOL_IP, raw::IP_HDRINCL, "IP_HDRINCL")?;
        r.nodefrag = flag(fd, SOL_IP, raw::IP_NODEFRAG, "IP_NODEFRAG")?;
        if proto == ICMP {
            r.icmpv_filter = icmp_filter(fd, false)?;
        }
    }
    Ok(r)
}

/// Sets the raw options of `want` on the new socket `fd` where they
/// differ from its own.
pub(super) fn restore_opts(
    fd: &OwnedFd,
    family: u8,
    proto: u32,
    want: &pb::IpOptsRawEntry,
) -> Result<(), String> {
    let v6 = family == AF_INET6;
    let set = |level, name, what: &str, on: Option<bool>| {
        let v = i32::from(on == Some(true));
        let now = so::get_int(fd, level, name).map_err(|e| format!("{what}: {e}"))?;
        if (now != 0) != (v != 0) {
            so::set_int(fd, level, name, v).map_err(|e| format!("setting {what} to {v}: {e}"))?;
        }
        Ok::<(), String>(())
    };
    if v6 {
        set(SOL_IPV6, raw::IPV6_HDRINCL, "IPV6_HDRINCL", want.hdrincl)?;
    } else {
        set(SOL_IP, raw::IP_HDRINCL, "IP_HDRINCL", want.hdrincl)?;
        set(SOL_IP, raw::IP_NODEFRAG, "IP_NODEFRAG", want.nodefrag)?;
    }
    let icmp = if v6 { proto == ICMPV6 } else { proto == ICMP };
    if icmp && !want.icmpv_filter.is_empty() {
        let words = if v6 { 8 } else { 1 };
        if want.icmpv_filter.len() != words {
            return Err(format!(
                "an ICMP filter of {} words, not {words}",
                want.icmpv_filter.len()
            ));
        }
        let bytes: Vec<u8> = want
            .icmpv_filter
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        let (level, name, what) = if v6 {
            (raw::SOL_ICMPV6, ICMPV6_FILTER, "ICMPV6_FILTER")
        } else {
            (raw::SOL_RAW, ICMP_FILTER, "ICMP_FILTER")
        };
        so::set_bytes(fd, level, name, &bytes).map_err(|e| format!("setting {what}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_defaults_follow_the_protocol() {
        assert_eq!(default_checksum(ICMPV6), 2);
        assert_eq!(default_checksum(MH), 4);
        assert_eq!(default_checksum(253), -1);
    }
}
