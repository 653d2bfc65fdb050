//! CRIU's `ifaddr-ID.img`, `route-ID.img`, `route6-ID.img` and
//! `rule-ID.img`: what `ip addr save`, `ip route save`, `ip -6 route save`
//! and `ip rule save` write (CRIU runs them): iproute2's 4-byte magic,
//! then the kernel's dump messages, whole, one after the other. Made here
//! from the same dumps and restored as `ip ... restore` does (each message
//! sent back as a request to create, an existing object no failure),
//! without the `ip` binary.

use std::os::fd::OwnedFd;

use rustix::io::Errno;

use super::super::NsError;
use super::rtnl::{self, k};
use crate::images::Kind;
use crate::sys::kconst::{NLM_F_CREATE, NLM_F_EXCL, NLMSG_HDRLEN};

/// iproute2's magics (native byte order, as it writes them).
pub const ADDR_MAGIC: u32 = 0x4736_1222;
pub const ROUTE_MAGIC: u32 = 0x4531_1224;
pub const RULE_MAGIC: u32 = 0x7170_6986;

const AF_INET: u8 = linux_raw_sys::net::AF_INET as u8;
const AF_INET6: u8 = linux_raw_sys::net::AF_INET6 as u8;
/// `struct rtmsg` / `struct fib_rule_hdr` sizes.
const RTMSG_LEN: usize = 12;

/// The magic an image kind starts with.
pub fn magic_of(kind: Kind) -> Option<u32> {
    match kind {
        Kind::Ifaddr => Some(ADDR_MAGIC),
        Kind::Route | Kind::Route6 => Some(ROUTE_MAGIC),
        Kind::Rule => Some(RULE_MAGIC),
        _ => None,
    }
}

fn image(magic: u32, msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = magic.to_ne_bytes().to_vec();
    for m in msgs {
        out.extend_from_slice(m);
    }
    out
}

fn sys(what: &'static str) -> impl FnOnce(Errno) -> NsError {
    move |source| NsError::Sys {
        what: what.to_owned(),
        source,
    }
}

/// A route's table (`RTA_TABLE`, else the header's).
fn table(msg: &[u8]) -> u32 {
    let attrs = rtnl::attrs(msg, RTMSG_LEN);
    rtnl::get(&attrs, k::RTA_TABLE)
        .and_then(|b| b.get(..4)?.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(u32::from(msg[NLMSG_HDRLEN + 4]))
}

fn rtm_flags(msg: &[u8]) -> u32 {
    u32::from_ne_bytes(
        msg[NLMSG_HDRLEN + 8..NLMSG_HDRLEN + 12]
            .try_into()
            .unwrap_or([0; 4]),
    )
}

/// The calling thread's namespace's addresses, as `ip addr save`.
pub fn save_addrs(sk: &OwnedFd) -> Result<Vec<u8>, NsError> {
    // struct ifaddrmsg, family AF_UNSPEC: every address.
    let msgs = rtnl::dump(sk, k::RTM_GETADDR, &[0u8; 8]).map_err(sys("RTM_GETADDR dump"))?;
    Ok(image(ADDR_MAGIC, &msgs))
}

/// Its routes of family `family` (AF_INET or AF_INET6) in the main table,
/// as `ip [-6] route save`.
pub fn save_routes(sk: &OwnedFd, family: u8) -> Result<Vec<u8>, NsError> {
    let mut rtm = [0u8; RTMSG_LEN];
    rtm[0] = family;
    let msgs = rtnl::dump(sk, k::RTM_GETROUTE, &rtm).map_err(sys("RTM_GETROUTE dump"))?;
    let main: Vec<Vec<u8>> = msgs
        .into_iter()
        .filter(|m| m.len() >= NLMSG_HDRLEN + RTMSG_LEN)
        .filter(|m| table(m) == k::RT_TABLE_MAIN && rtm_flags(m) & k::RTM_F_CLONED == 0)
        .collect();
    Ok(image(ROUTE_MAGIC, &main))
}

/// Its IPv4 rules, as `ip rule save`.
pub fn save_rules(sk: &OwnedFd) -> Result<Vec<u8>, NsError> {
    let mut frh = [0u8; RTMSG_LEN];
    frh[0] = AF_INET;
    let msgs = rtnl::dump(sk, k::RTM_GETRULE, &frh).map_err(sys("RTM_GETRULE dump"))?;
    Ok(image(RULE_MAGIC, &msgs))
}

pub fn ipv6_family() -> u8 {
    AF_INET6
}

/// The messages of image `bytes` (`kind`), after its magic.
pub fn messages(kind: Kind, bytes: &[u8]) -> Result<Vec<&[u8]>, NsError> {
    let bad = |what: String| NsError::Invalid {
        file: kind.file_name(0).replace("-0", "-ID"),
        what,
    };
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let want = magic_of(kind).unwrap_or(0);
    let got = bytes
        .get(..4)
        .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or([0; 4])));
    if got != Some(want) {
        return Err(bad(format!(
            "not an iproute2 save (magic {got:x?}, want {want:#x})"
        )));
    }
    let mut out = Vec::new();
    let mut off = 4;
    while off < bytes.len() {
        let len = bytes
            .get(off..off + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or([0; 4])) as usize)
            .unwrap_or(0);
        if len < NLMSG_HDRLEN + 4 || off + len > bytes.len() {
            return Err(bad(format!("a message of {len} bytes at offset {off}")));
        }
        out.push(&bytes[off..off + len]);
        off += len;
    }
    Ok(out)
}

/// Send `msg` back as a request to create (`ip ... restore`); an object
/// that exists already is no failure.
fn create(sk: &OwnedFd, msg: &[u8], excl: bool, what: &str) -> Result<(), NsError> {
    let mut m = msg.to_vec();
    let mut flags = NLM_F_CREATE;
    if excl {
        flags |= NLM_F_EXCL;
    }
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    // The dump's answer type (RTM_NEWADDR...) is the request's too.
    match rtnl::request(sk, &m) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(source) => Err(NsError::Sys {
            what: format!("restoring {what}"),
            source,
        }),
    }
}

/// Restore the addresses of an `ifaddr` image.
pub fn restore_addrs(sk: &OwnedFd, msgs: &[&[u8]]) -> Result<(), NsError> {
    for m in msgs {
        create(sk, m, false, "an address (ifaddr image)")?;
    }
    Ok(())
}

/// Restore the routes of a `route`/`route6` image in `ip route restore`'s
/// order: routes without a gateway and source first, then those with a
/// source, then those through a gateway.
pub fn restore_routes(sk: &OwnedFd, msgs: &[&[u8]]) -> Result<(), NsError> {
    for pass in 0..3 {
        for m in msgs {
            let attrs = rtnl::attrs(m, RTMSG_LEN);
            let gw = rtnl::get(&attrs, k::RTA_GATEWAY).is_some();
            let src = rtnl::get(&attrs, k::RTA_PREFSRC).is_some();
            let this = match (gw, src) {
                (false, false) => 0,
                (false, true) => 1,
                (true, _) => 2,
            };
            if this == pass {
                create(sk, m, false, "a route (route image)")?;
            }
        }
    }
    Ok(())
}

/// Restore the rules of a `rule` image (the namespace's default ones
/// exist already: no duplicates).
pub fn restore_rules(sk: &OwnedFd, msgs: &[&[u8]]) -> Result<(), NsError> {
    for m in msgs {
        create(sk, m, true, "a rule (rule image)")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_read_back_into_their_messages() {
        let a = {
            let mut m = vec![0u8; 24];
            m[..4].copy_from_slice(&24u32.to_ne_bytes());
            m[4..6].copy_from_slice(&20u16.to_ne_bytes());
            m
        };
        let img = image(ADDR_MAGIC, &[a.clone(), a.clone()]);
        // `ip addr save` writes its magic in the machine's byte order:
        // on x86_64 what CRIU 4.1.1's image starts with is 22 12 36 47.
        assert_eq!(&img[..4], &ADDR_MAGIC.to_ne_bytes());
        #[cfg(target_endian = "little")]
        assert_eq!(&img[..4], &[0x22, 0x12, 0x36, 0x47]);
        assert_eq!(messages(Kind::Ifaddr, &img).unwrap(), vec![&a[..], &a[..]]);
        assert!(messages(Kind::Route, &img).is_err());
        assert!(messages(Kind::Ifaddr, &img[..img.len() - 1]).is_err());
        assert!(messages(Kind::Rule, &[]).unwrap().is_empty());
    }
}
