//! A net namespace's links as CRIU's `netdev-ID.img` holds them
//! (`net_device_entry`): the loopback device and veth devices (whose
//! peer, outside the namespace, is named at restore by `--veth-pair
//! IN=OUT` or `--external veth[IN]:OUT`, as CRIU). Every other kind is
//! refused by name at dump.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;

use super::super::NsError;
use super::conf;
use super::rtnl::{self, Msg, k};
use crate::images::pb;
use crate::images::pb::NdType;

/// `ARPHRD_LOOPBACK` (linux/if_arp.h).
const ARPHRD_LOOPBACK: u16 = 772;
/// `struct ifinfomsg`'s size.
const IFINFOMSG_LEN: usize = 16;
/// `AF_PACKET`, the family of link requests.
const AF_PACKET: u8 = linux_raw_sys::net::AF_PACKET as u8;

fn sys(what: &str) -> impl FnOnce(Errno) -> NsError + '_ {
    move |source| NsError::Sys {
        what: what.to_owned(),
        source,
    }
}

fn ifinfo(index: i32, flags: u32) -> [u8; IFINFOMSG_LEN] {
    let mut ifi = [0u8; IFINFOMSG_LEN];
    ifi[0] = AF_PACKET;
    ifi[4..8].copy_from_slice(&index.to_ne_bytes());
    ifi[8..12].copy_from_slice(&flags.to_ne_bytes());
    ifi
}

fn u32_of(b: Option<&[u8]>) -> Option<u32> {
    Some(u32::from_ne_bytes(b?.get(..4)?.try_into().ok()?))
}

fn name_of(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The calling thread's namespace's links, as entries with id `ns_id`
/// (CRIU records lo's peer as itself in its own namespace).
pub fn dump(sk: &OwnedFd, ns_id: u32) -> Result<Vec<pb::NetDeviceEntry>, NsError> {
    let msgs =
        rtnl::dump(sk, k::RTM_GETLINK, &ifinfo(0, 0)[..4]).map_err(sys("RTM_GETLINK dump"))?;
    let mut out = Vec::new();
    for m in msgs {
        if m.len() < 16 + IFINFOMSG_LEN {
            return Err(NsError::Lost {
                what: "a short RTM_NEWLINK message".into(),
            });
        }
        let ifi = &m[16..16 + IFINFOMSG_LEN];
        let ty = u16::from_ne_bytes([ifi[2], ifi[3]]);
        let index = i32::from_ne_bytes(ifi[4..8].try_into().unwrap_or([0; 4]));
        let flags = u32::from_ne_bytes(ifi[8..12].try_into().unwrap_or([0; 4]));
        let attrs = rtnl::attrs(&m, IFINFOMSG_LEN);
        let name = rtnl::get(&attrs, k::IFLA_IFNAME)
            .map(name_of)
            .ok_or_else(|| NsError::Lost {
                what: format!("link {index} has no name"),
            })?;
        let kind = rtnl::get(&attrs, k::IFLA_LINKINFO)
            .and_then(|li| crate::proc::sock_diag::attrs(li, 0))
            .and_then(|li| {
                li.iter()
                    .find(|(t, _)| *t == k::IFLA_INFO_KIND)
                    .map(|(_, v)| name_of(v))
            });
        let ty = match (ty, kind.as_deref()) {
            (ARPHRD_LOOPBACK, _) => NdType::Loopback,
            (_, Some("veth")) => NdType::Veth,
            (_, kind) => {
                return Err(NsError::Lost {
                    what: format!(
                        "link {index} ({name}, type {ty}, kind {}) cannot be dumped yet: only \
                         the loopback device and veth devices are",
                        kind.unwrap_or("none")
                    ),
                });
            }
        };
        let mut e = pb::NetDeviceEntry {
            r#type: ty as i32,
            ifindex: index as u32,
            mtu: u32_of(rtnl::get(&attrs, k::IFLA_MTU)).unwrap_or(0),
            flags,
            name: name.clone(),
            master: u32_of(rtnl::get(&attrs, k::IFLA_MASTER)),
            ..Default::default()
        };
        // As CRIU (with netns ids): the peer's index, and its namespace
        // where it is this one (lo's peer is itself); a veth's peer
        // elsewhere is named at restore.
        e.peer_ifindex = Some(u32_of(rtnl::get(&attrs, k::IFLA_LINK)).unwrap_or(index as u32));
        if rtnl::get(&attrs, k::IFLA_LINK_NETNSID).is_none() {
            e.peer_nsid = Some(ns_id);
        } else {
            crate::pr_warn!("The {name} veth is in an external netns");
        }
        if ty != NdType::Loopback {
            e.address = rtnl::get(&attrs, k::IFLA_ADDRESS).map(<[u8]>::to_vec);
        }
        e.conf4 = conf::read_dev("ipv4", &name);
        e.conf6 = conf::read_dev("ipv6", &name);
        out.push(e);
    }
    Ok(out)
}

/// The name the peer of veth `name` gets outside (`--veth-pair` or
/// `--external veth[NAME]:OUT`, without a `@bridge`).
fn peer_name<'a>(veths: &'a [(String, String)], name: &str) -> Option<&'a str> {
    veths
        .iter()
        .find(|(i, _)| i == name)
        .map(|(_, o)| o.split('@').next().unwrap_or(o))
}

/// Make the links `links` in the calling thread's (new) namespace, with
/// their sysctls (`def`: the namespace's `default` ones). A veth's peer
/// goes into `outside` (the tool's namespace) under its `veths` name.
pub fn restore(
    sk: &OwnedFd,
    links: &[pb::NetDeviceEntry],
    def: (&[pb::SysctlEntry], &[pb::SysctlEntry]),
    veths: &[(String, String)],
    outside: BorrowedFd<'_>,
    weak: bool,
) -> Result<(), NsError> {
    for l in links {
        let ty = NdType::try_from(l.r#type).unwrap_or(NdType::Extlink);
        let mut m = match ty {
            // lo exists with the namespace: set up by its index.
            NdType::Loopback => {
                Msg::new(k::RTM_SETLINK, 0).fixed(&ifinfo(l.ifindex as i32, l.flags))
            }
            NdType::Veth => Msg::new(
                k::RTM_NEWLINK,
                crate::sys::kconst::NLM_F_CREATE | crate::sys::kconst::NLM_F_EXCL,
            )
            .fixed(&ifinfo(l.ifindex as i32, l.flags)),
            other => {
                return Err(NsError::Invalid {
                    file: "netdev".into(),
                    what: format!(
                        "link {} is of type {other:?}, which cannot be restored yet",
                        l.name
                    ),
                });
            }
        };
        m.attr(k::IFLA_IFNAME, l.name.as_bytes());
        m.attr(k::IFLA_MTU, &l.mtu.to_ne_bytes());
        if let Some(a) = &l.address {
            m.attr(k::IFLA_ADDRESS, a);
        }
        if ty == NdType::Veth {
            let info = m.nest(k::IFLA_LINKINFO);
            m.attr(k::IFLA_INFO_KIND, b"veth");
            let data = m.nest(k::IFLA_INFO_DATA);
            let peer = m.nest(crate::sys::kconst::VETH_INFO_PEER);
            // The peer's ifinfomsg (no index: outside, it may be taken).
            m.raw(&ifinfo(0, 0));
            match peer_name(veths, &l.name) {
                Some(out) => {
                    m.attr(k::IFLA_IFNAME, out.as_bytes());
                    m.attr(
                        k::IFLA_NET_NS_FD,
                        &(outside.as_raw_fd() as u32).to_ne_bytes(),
                    );
                }
                None => crate::pr_warn!(
                    "no --veth-pair {}=OUT: its peer is made in the same namespace, as CRIU \
                     does",
                    l.name
                ),
            }
            m.end_nest(peer);
            m.end_nest(data);
            m.end_nest(info);
        }
        crate::pr_info!("Restoring link {} (index {}, {ty:?})", l.name, l.ifindex);
        rtnl::request(sk, &m.finish()).map_err(|source| NsError::Sys {
            what: format!("restoring link {} ({ty:?}, index {})", l.name, l.ifindex),
            source,
        })?;
        // lo is made with the namespace, before `default` is set: all of
        // its values go (CRIU's rule).
        let (d4, d6) = match ty {
            NdType::Loopback => (None, None),
            _ => (Some(def.0), Some(def.1)),
        };
        conf::write_dev("ipv4", &l.name, &l.conf4, d4, weak)?;
        conf::write_dev("ipv6", &l.name, &l.conf6, d6, weak)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_drop_the_bridge() {
        let v = vec![("veth0".to_string(), "out0@br0".to_string())];
        assert_eq!(peer_name(&v, "veth0"), Some("out0"));
        assert_eq!(peer_name(&v, "veth1"), None);
    }
}
