//! The root task's own network namespace (`unshare -n`), as CRIU keeps it.
//!
//! A dump records it in `ids-PID.img` (`net_ns_id`, numbered as CRIU
//! numbers it, see [`super::NsNumbers`]) and writes its contents into
//! CRIU's images, or nothing with `--empty-ns net` (CRIU writes no
//! `netns-ID.img` then: the caller, runc, sets the namespace up again on
//! restore in its `setup-namespaces` hook); an external namespace
//! (`--external net[INODE]:KEY`) is a `netns-ID.img` holding only its key.
//!
//! A restore makes the namespace before anything else of the tree ([`create`],
//! or joins the one an `--inherit-fd` gives for an external one), fills it
//! from a thread of the tool that entered it ([`run_in`]), and the tool's
//! main thread then stays in it while it opens the tree's sockets and
//! forks the root (see `crate::restore::netns`): sockets belong to the
//! namespace of the thread that makes them, and the root inherits its
//! parent thread's.

mod conf;
mod ipsave;
mod links;
mod rtnl;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::thread::LinkNameSpaceType;

use super::NsError;
use crate::images::typed::ImageDir;
use crate::images::{Kind, pb};

/// What the images give the root's own net namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum NetNsImages {
    /// A new namespace with nothing but its loopback device, down, as the
    /// kernel makes it (`--empty-ns net`, or images without `netns-ID.img`).
    Empty,
    /// A namespace the restore is given (`--inherit-fd fd[N]:KEY`).
    External { key: String },
    /// A namespace made and filled from the images.
    Full(Box<Contents>),
}

/// What the images hold of a net namespace: `netns-ID.img`, its links
/// (`netdev-ID.img`) and the iproute2 saves of its addresses, routes and
/// rules (the image bytes, magic included; empty where absent).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contents {
    pub netns: pb::NetnsEntry,
    pub links: Vec<pb::NetDeviceEntry>,
    pub addrs: Vec<u8>,
    pub routes: Vec<u8>,
    pub routes6: Vec<u8>,
    pub rules: Vec<u8>,
}

/// Where the links' veth peers go at restore.
pub struct Outside<'a> {
    /// The tool's own net namespace.
    pub ns: BorrowedFd<'a>,
    /// Each veth's peer name there (`--veth-pair IN=OUT`,
    /// `--external veth[IN]:OUT`).
    pub veths: &'a [(String, String)],
    /// `--weak-sysctls`: a sysctl that cannot be set is only logged.
    pub weak_sysctls: bool,
}

/// How a dump takes the root's own net namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpMode<'a> {
    /// `--empty-ns net`: only its id.
    Empty,
    /// `--external net[INODE]:KEY`: its key.
    External(&'a str),
    /// Its contents.
    Full,
}

/// Dump the net namespace of task `pid` into `dir` as namespace `id`.
///
/// `own_lock`: the nftables table of the dump's own network lock in the
/// namespace (see `netlock::lock_namespace`), which is no firewall of its.
pub fn dump(
    dir: &ImageDir,
    id: u32,
    pid: i32,
    mode: DumpMode<'_>,
    own_lock: Option<&str>,
) -> Result<(), NsError> {
    match mode {
        DumpMode::Empty => {
            crate::pr_info!(
                "Net namespace {id} of task {pid}: only its id is dumped (--empty-ns net)"
            );
            Ok(())
        }
        DumpMode::External(key) => {
            crate::pr_info!("Net namespace {id} of task {pid} is external, key {key:?}");
            let e = pb::NetnsEntry {
                ext_key: Some(key.to_owned()),
                ..Default::default()
            };
            dir.write_one(Kind::Netns, id.into(), &e)?;
            Ok(())
        }
        DumpMode::Full => {
            let path = format!("/proc/{pid}/ns/net");
            let ns = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(NsError::sys(format!("open({path})")))?;
            let c = run_in(ns.as_fd(), || read_current(id, own_lock))?;
            crate::pr_info!(
                "Dumping net namespace {id} of task {pid}: {} links ({})",
                c.links.len(),
                c.links
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            write(dir, id, &c)
        }
    }
}

/// The calling thread's net namespace (id `id` in the images; `own_lock`
/// as [`dump`] takes it).
fn read_current(id: u32, own_lock: Option<&str>) -> Result<Contents, NsError> {
    refuse_firewall(own_lock)?;
    let sk = rtnl::socket().map_err(NsError::sys("socket(NETLINK_ROUTE)"))?;
    let links = links::dump(&sk, id)?;
    let netns = pb::NetnsEntry {
        def_conf4: conf::read_dev("ipv4", "default"),
        all_conf4: conf::read_dev("ipv4", "all"),
        def_conf6: conf::read_dev("ipv6", "default"),
        all_conf6: conf::read_dev("ipv6", "all"),
        unix_conf: conf::read_unix(),
        ipv4_sysctl: conf::read_ipv4(),
        ..Default::default()
    };
    Ok(Contents {
        netns,
        links,
        addrs: ipsave::save_addrs(&sk)?,
        routes: ipsave::save_routes(&sk, linux_raw_sys::net::AF_INET as u8)?,
        routes6: ipsave::save_routes(&sk, ipsave::ipv6_family())?,
        rules: ipsave::save_rules(&sk)?,
    })
}

/// A firewall in the namespace is refused by name: CRIU saves it with
/// `iptables-save` and `nft list ruleset`, which this tool does not run.
fn refuse_firewall(own_lock: Option<&str>) -> Result<(), NsError> {
    for f in ["ip_tables_names", "ip6_tables_names"] {
        let path = format!("/proc/thread-self/net/{f}");
        let names = std::fs::read_to_string(&path).unwrap_or_default();
        let names: Vec<&str> = names.split_whitespace().collect();
        if !names.is_empty() {
            return Err(NsError::Lost {
                what: format!(
                    "the net namespace has iptables tables ({}, {f}), which cannot be \
                     dumped yet",
                    names.join(", ")
                ),
            });
        }
    }
    let tables = crate::netlock::tables().map(|t| {
        t.into_iter()
            .filter(|(_, n)| Some(n.as_str()) != own_lock)
            .collect::<Vec<_>>()
    });
    match tables {
        Ok(t) if !t.is_empty() => Err(NsError::Lost {
            what: format!(
                "the net namespace has nftables tables ({}), which cannot be dumped yet",
                t.iter()
                    .map(|(f, n)| format!("family {f} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        Ok(_) => Ok(()),
        Err(e) => {
            crate::pr_warn!("cannot list the net namespace's nftables tables: {e}");
            Ok(())
        }
    }
}

/// Write `c` as net namespace `id`'s images. The iptables images are
/// written empty, as CRIU's are for a namespace without rules.
fn write(dir: &ImageDir, id: u32, c: &Contents) -> Result<(), NsError> {
    let id64 = u64::from(id);
    dir.write_all(Kind::Netdev, id64, &c.links)?;
    let raw = |kind: Kind, bytes: &[u8]| {
        let path = dir.path(kind, id64);
        std::fs::write(&path, bytes).map_err(|source| NsError::Sysctl {
            path: path.display().to_string(),
            source,
        })
    };
    raw(Kind::Ifaddr, &c.addrs)?;
    raw(Kind::Route, &c.routes)?;
    raw(Kind::Route6, &c.routes6)?;
    raw(Kind::Rule, &c.rules)?;
    raw(Kind::Iptables, &[])?;
    raw(Kind::Ip6tables, &[])?;
    dir.write_one(Kind::Netns, id64, &c.netns)?;
    Ok(())
}

/// Read net namespace `id`'s contents images (`netns` read already).
fn read_contents(dir: &ImageDir, id: u32, netns: pb::NetnsEntry) -> Result<Contents, NsError> {
    let id64 = u64::from(id);
    let links = match dir.path(Kind::Netdev, id64).exists() {
        true => dir.read_all(Kind::Netdev, id64)?,
        false => Vec::new(),
    };
    let raw = |kind: Kind| -> Result<Vec<u8>, NsError> {
        let path = dir.path(kind, id64);
        match std::fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(NsError::Sysctl {
                path: path.display().to_string(),
                source,
            }),
        }
    };
    for kind in [Kind::Iptables, Kind::Ip6tables] {
        if !raw(kind)?.is_empty() {
            return Err(NsError::Invalid {
                file: kind.file_name(id64),
                what: "it holds iptables rules, which cannot be restored yet (CRIU runs \
                       iptables-restore)"
                    .into(),
            });
        }
    }
    let nft = String::from_utf8_lossy(&raw(Kind::Nftables)?).into_owned();
    if !only_criu_lock(&nft) {
        return Err(NsError::Invalid {
            file: Kind::Nftables.file_name(id64),
            what: "it holds an nftables ruleset, which cannot be restored yet (CRIU runs \
                   nft -f)"
                .into(),
        });
    }
    let c = Contents {
        netns,
        links,
        addrs: raw(Kind::Ifaddr)?,
        routes: raw(Kind::Route)?,
        routes6: raw(Kind::Route6)?,
        rules: raw(Kind::Rule)?,
    };
    // Damaged saves are refused before anything is made.
    ipsave::messages(Kind::Ifaddr, &c.addrs)?;
    ipsave::messages(Kind::Route, &c.routes)?;
    ipsave::messages(Kind::Route6, &c.routes6)?;
    ipsave::messages(Kind::Rule, &c.rules)?;
    Ok(c)
}

/// Whether an `nft list ruleset` text holds nothing but CRIU's own
/// iptables network lock (the `CRIU` chain CRIU's dump adds inside the
/// namespace and its restore takes away again), or nothing at all.
fn only_criu_lock(text: &str) -> bool {
    let counter = |l: &str, tail: &str| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.len() >= 5
            && w[0] == "counter"
            && w[1] == "packets"
            && w[3] == "bytes"
            && w[5..].join(" ") == tail
    };
    text.lines().map(str::trim).all(|l| {
        l.is_empty()
            || l == "}"
            || matches!(
                l,
                "table ip filter {"
                    | "table ip6 filter {"
                    | "chain CRIU {"
                    | "chain INPUT {"
                    | "chain OUTPUT {"
                    | "type filter hook input priority filter; policy accept;"
                    | "type filter hook output priority filter; policy accept;"
            )
            || l.strip_prefix("meta mark 0x0000c114 ")
                .is_some_and(|r| counter(r, "accept"))
            || counter(l, "drop")
            || counter(l, "jump CRIU")
    })
}

/// Read what the images hold of net namespace `id` (`empty`: restore it
/// empty whatever they hold, `--empty-ns net`).
pub fn read(dir: &ImageDir, id: u32, empty: bool) -> Result<NetNsImages, NsError> {
    let path = dir.path(Kind::Netns, id.into());
    if !path.exists() {
        return Ok(NetNsImages::Empty);
    }
    let e: pb::NetnsEntry = dir.read_one(Kind::Netns, id.into())?;
    if let Some(key) = e.ext_key {
        return Ok(NetNsImages::External { key });
    }
    if empty {
        return Ok(NetNsImages::Empty);
    }
    Ok(NetNsImages::Full(Box::new(read_contents(dir, id, e)?)))
}

/// A new net namespace, made on a short-lived thread of the tool: its
/// `ns/net` fd, which keeps it alive.
pub fn create() -> Result<OwnedFd, NsError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            crate::sys::probe::unshare_this_thread(linux_raw_sys::general::CLONE_NEWNET)
                .map_err(NsError::sys("unshare(CLONE_NEWNET)"))?;
            rustix::fs::open(
                "/proc/thread-self/ns/net",
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(NsError::sys("open(/proc/thread-self/ns/net)"))
        })
        .join()
        .unwrap_or(Err(NsError::Panicked))
    })
}

/// Run `f` on a new thread of the tool in net namespace `ns`.
pub fn run_in<T: Send>(
    ns: BorrowedFd<'_>,
    f: impl FnOnce() -> Result<T, NsError> + Send,
) -> Result<T, NsError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(ns, Some(LinkNameSpaceType::Network))
                .map_err(NsError::sys("setns(CLONE_NEWNET)"))?;
            f()
        })
        .join()
        .unwrap_or(Err(NsError::Panicked))
    })
}

/// Fill the new namespace `ns` from `images`, as CRIU does: its sysctls,
/// its links (with theirs), addresses, routes, rules.
pub fn fill(ns: &OwnedFd, images: &NetNsImages, outside: &Outside<'_>) -> Result<(), NsError> {
    let NetNsImages::Full(c) = images else {
        return Ok(());
    };
    run_in(ns.as_fd(), || {
        let weak = outside.weak_sysctls;
        let e = &c.netns;
        conf::write_dev("ipv4", "all", &e.all_conf4, None, weak)?;
        conf::write_dev("ipv4", "default", &e.def_conf4, None, weak)?;
        conf::write_dev("ipv6", "all", &e.all_conf6, None, weak)?;
        conf::write_dev("ipv6", "default", &e.def_conf6, None, weak)?;
        conf::write_list(conf::UNIX_CONF, &e.unix_conf, weak)?;
        conf::write_list(conf::IPV4_SYSCTL, &e.ipv4_sysctl, weak)?;
        let sk = rtnl::socket().map_err(NsError::sys("socket(NETLINK_ROUTE)"))?;
        links::restore(
            &sk,
            &c.links,
            (&e.def_conf4, &e.def_conf6),
            outside.veths,
            outside.ns,
            weak,
        )?;
        ipsave::restore_addrs(&sk, &ipsave::messages(Kind::Ifaddr, &c.addrs)?)?;
        ipsave::restore_routes(&sk, &ipsave::messages(Kind::Route, &c.routes)?)?;
        ipsave::restore_routes(&sk, &ipsave::messages(Kind::Route6, &c.routes6)?)?;
        ipsave::restore_rules(&sk, &ipsave::messages(Kind::Rule, &c.rules)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_netns_image_is_an_empty_namespace_and_a_key_an_external_one() {
        let tmp = std::env::temp_dir().join(format!("netns-read-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let dir = ImageDir::new(&tmp);
        assert_eq!(read(&dir, 9, false).unwrap(), NetNsImages::Empty);
        dump(&dir, 9, 1, DumpMode::External("extRootNetNS"), None).unwrap();
        assert_eq!(
            read(&dir, 9, true).unwrap(),
            NetNsImages::External {
                key: "extRootNetNS".into()
            }
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn criu_s_own_lock_is_no_ruleset() {
        // What CRIU 4.1.1 saved of a namespace it had locked itself.
        let lock = "table ip filter {\n\tchain CRIU {\n\t\tmeta mark 0x0000c114 counter \
                    packets 0 bytes 0 accept\n\t\tcounter packets 0 bytes 0 drop\n\t}\n\n\t\
                    chain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t\t\
                    counter packets 3 bytes 180 jump CRIU\n\t}\n}\n";
        assert!(only_criu_lock(lock));
        assert!(only_criu_lock(""));
        assert!(!only_criu_lock(&lock.replace("jump CRIU", "jump OTHER")));
        assert!(!only_criu_lock("table inet t {\n}\n"));
    }
}
