//! A net namespace's sysctls as CRIU keeps them: the per-device
//! `net/ipv4/conf/NAME/*` and `net/ipv6/conf/NAME/*` lists (for `all`,
//! `default` and each link, in CRIU's order, which the images' positions
//! follow), `net/unix/max_dgram_qlen` and `net/ipv4/ping_group_range`.
//! Read and written through `/proc/sys` by a thread in the namespace.

use crate::images::pb;
use crate::images::pb::SysctlType;

use super::super::NsError;

/// CRIU's `devconfs4`, in its order.
pub const DEVCONFS4: &[&str] = &[
    "accept_local",
    "accept_redirects",
    "accept_source_route",
    "arp_accept",
    "arp_announce",
    "arp_filter",
    "arp_ignore",
    "arp_notify",
    "bootp_relay",
    "disable_policy",
    "disable_xfrm",
    "force_igmp_version",
    "forwarding",
    "igmpv2_unsolicited_report_interval",
    "igmpv3_unsolicited_report_interval",
    "log_martians",
    "medium_id",
    "promote_secondaries",
    "proxy_arp",
    "proxy_arp_pvlan",
    "route_localnet",
    "rp_filter",
    "secure_redirects",
    "send_redirects",
    "shared_media",
    "src_valid_mark",
    "tag",
    "ignore_routes_with_linkdown",
    "drop_gratuitous_arp",
    "drop_unicast_in_l2_multicast",
];

/// CRIU's `devconfs6`, in its order.
pub const DEVCONFS6: &[&str] = &[
    "accept_dad",
    "accept_ra",
    "accept_ra_defrtr",
    "accept_ra_from_local",
    "accept_ra_min_hop_limit",
    "accept_ra_mtu",
    "accept_ra_pinfo",
    "accept_ra_rt_info_max_plen",
    "accept_ra_rtr_pref",
    "accept_redirects",
    "accept_source_route",
    "autoconf",
    "dad_transmits",
    "disable_ipv6",
    "drop_unicast_in_l2_multicast",
    "drop_unsolicited_na",
    "force_mld_version",
    "force_tllao",
    "forwarding",
    "hop_limit",
    "ignore_routes_with_linkdown",
    "keep_addr_on_down",
    "max_addresses",
    "max_desync_factor",
    "mldv1_unsolicited_report_interval",
    "mldv2_unsolicited_report_interval",
    "mtu",
    "ndisc_notify",
    "optimistic_dad",
    "proxy_ndp",
    "regen_max_retry",
    "router_probe_interval",
    "router_solicitation_delay",
    "router_solicitation_interval",
    "router_solicitations",
    "stable_secret",
    "suppress_frag_ndisc",
    "temp_prefered_lft",
    "temp_valid_lft",
    "use_oif_addrs_only",
    "use_optimistic",
    "use_tempaddr",
];

/// The one string sysctl of the device lists.
const STABLE_SECRET: &str = "stable_secret";

/// The namespace-wide sysctls CRIU 4 adds (`unix_conf`, `ipv4_sysctl`).
pub const UNIX_CONF: &[&str] = &["unix/max_dgram_qlen"];
pub const IPV4_SYSCTL: &[&str] = &["ipv4/ping_group_range"];

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/net/{path}"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_owned())
}

fn entry_32(path: &str) -> pb::SysctlEntry {
    pb::SysctlEntry {
        r#type: SysctlType::Ctl32 as i32,
        iarg: read(path).and_then(|v| v.trim().parse().ok()),
        sarg: None,
    }
}

/// `net/PROTO/conf/TARGET/*` (`proto` `ipv4` or `ipv6`), each as CRIU
/// reads it: a sysctl the kernel lacks (or will not show, as
/// `stable_secret` unset) has no value.
pub fn read_dev(proto: &str, target: &str) -> Vec<pb::SysctlEntry> {
    let names = if proto == "ipv4" {
        DEVCONFS4
    } else {
        DEVCONFS6
    };
    names
        .iter()
        .map(|name| {
            let path = format!("{proto}/conf/{target}/{name}");
            if *name == STABLE_SECRET {
                pb::SysctlEntry {
                    r#type: SysctlType::CtlStr as i32,
                    iarg: None,
                    sarg: read(&path),
                }
            } else {
                entry_32(&path)
            }
        })
        .collect()
}

/// `net/unix/max_dgram_qlen`, as CRIU 4 keeps it.
pub fn read_unix() -> Vec<pb::SysctlEntry> {
    UNIX_CONF.iter().map(|p| entry_32(p)).collect()
}

/// `net/ipv4/ping_group_range`, as CRIU 4 keeps it (a string, with an
/// integer part of 0 beside it).
pub fn read_ipv4() -> Vec<pb::SysctlEntry> {
    IPV4_SYSCTL
        .iter()
        .map(|p| pb::SysctlEntry {
            r#type: SysctlType::CtlStr as i32,
            iarg: Some(0),
            sarg: read(p).map(|s| s + "\n"),
        })
        .collect()
}

fn value(e: &pb::SysctlEntry) -> Option<String> {
    if e.r#type == SysctlType::CtlStr as i32 {
        e.sarg.clone()
    } else {
        e.iarg.map(|v| v.to_string())
    }
}

fn same(a: &pb::SysctlEntry, b: &pb::SysctlEntry) -> bool {
    a.r#type == b.r#type && value(a).is_some() && value(a) == value(b)
}

/// Write one sysctl unless it already holds `want` (a read-only one that
/// matches is no failure). `weak`: a failure is only logged.
fn write(path: &str, want: &str, weak: bool) -> Result<(), NsError> {
    if read(path).is_some_and(|now| now.trim() == want.trim()) {
        return Ok(());
    }
    let full = format!("/proc/sys/net/{path}");
    match std::fs::write(&full, want) {
        Ok(()) => Ok(()),
        Err(e) if weak => {
            crate::pr_warn!("{full}: cannot set {want:?}: {e} (--weak-sysctls)");
            Ok(())
        }
        Err(source) => Err(NsError::Sysctl { path: full, source }),
    }
}

/// Write `net/PROTO/conf/TARGET/*` from `conf` (positions of CRIU's
/// lists), as CRIU does: a value equal to `def` (the namespace's
/// `default`, for a link other than lo) is left, `mtu` excepted;
/// `accept_redirects` goes last (after `forwarding`, which changes it).
pub fn write_dev(
    proto: &str,
    target: &str,
    conf: &[pb::SysctlEntry],
    def: Option<&[pb::SysctlEntry]>,
    weak: bool,
) -> Result<(), NsError> {
    let names = if proto == "ipv4" {
        DEVCONFS4
    } else {
        DEVCONFS6
    };
    if conf.len() > names.len() {
        crate::pr_warn!("The image holds sysctls of {proto}/conf/{target} this tool does not know");
    }
    let mut last = None;
    for (i, (name, e)) in names.iter().zip(conf).enumerate() {
        if let Some(d) = def.and_then(|d| d.get(i))
            && same(e, d)
            && *name != "mtu"
        {
            continue;
        }
        let Some(v) = value(e) else {
            continue;
        };
        if *name == "accept_redirects" {
            last = Some(v);
            continue;
        }
        write(&format!("{proto}/conf/{target}/{name}"), &v, weak)?;
    }
    if let Some(v) = last {
        write(&format!("{proto}/conf/{target}/accept_redirects"), &v, weak)?;
    }
    Ok(())
}

/// Write the namespace-wide lists `names` from `conf`.
pub fn write_list(names: &[&str], conf: &[pb::SysctlEntry], weak: bool) -> Result<(), NsError> {
    for (name, e) in names.iter().zip(conf) {
        if let Some(v) = value(e) {
            write(name, v.trim_end_matches('\n'), weak)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_criu_s() {
        // CRIU 4.1.1's netns images hold 30 and 42 entries, stable_secret
        // the 36th of the ipv6 ones.
        assert_eq!(DEVCONFS4.len(), 30);
        assert_eq!(DEVCONFS6.len(), 42);
        assert_eq!(DEVCONFS6[35], STABLE_SECRET);
    }

    #[test]
    fn equal_values_are_the_same_and_missing_ones_never() {
        let n = |v| pb::SysctlEntry {
            r#type: SysctlType::Ctl32 as i32,
            iarg: v,
            sarg: None,
        };
        assert!(same(&n(Some(1)), &n(Some(1))));
        assert!(!same(&n(Some(1)), &n(Some(0))));
        assert!(!same(&n(None), &n(None)));
    }
}
