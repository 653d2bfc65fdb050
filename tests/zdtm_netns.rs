//! A tree whose root has a net namespace of its own (`ns_exec net`, as
//! `unshare -n`), with sockets in it (`zdtm_netns`, which checks itself
//! after restore: its namespace, its loopback device, its sockets reached
//! from inside). With `--empty-ns net` (what runc sends) the namespace is
//! recorded in the ids only, as CRIU does, and restored empty, the
//! caller's `setup-namespaces` hook setting it up before any task runs.
//! Without it the namespace is dumped whole into CRIU's images (netns,
//! netdev, ifaddr, route, route6, rule): a veth to the host with an
//! address, a route through the host end and a sysctl come back, the
//! veth's peer outside named by `--veth-pair`, and the program's listener
//! accepts on the restored address. Also: the hooks CRIU runs for such a
//! tree (network-lock, network-unlock), faults at the new dump and
//! restore steps (no link left behind), and crossing with CRIU 4.1.1 both
//! ways. A namespace declared external (`--external net[INODE]:KEY`, as
//! Podman does) is written as its key alone, and the restore joins the one
//! `--inherit-fd fd[N]:KEY` gives (CLI and RPC).

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use criu_core::images::pb::rpc::{CriuOpts, CriuReq, CriuReqType, InheritFd};

use common::peer::Peer;
use common::zdtm::Zdtm;

const PROGRAM: &str = "zdtm_netns";

/// Records every action with its pid; brings lo up in the restored
/// root's namespace at setup-namespaces when `HOOK_LO_UP` is set.
const SCRIPT: &str = r#"#!/bin/sh
echo "$CRTOOLS_SCRIPT_ACTION ${CRTOOLS_INIT_PID:-none}" >> "$HOOK_LOG"
if [ "$CRTOOLS_SCRIPT_ACTION" = setup-namespaces ] && [ -n "$HOOK_LO_UP" ]; then
    nsenter -t "$CRTOOLS_INIT_PID" -n ip link set lo up || exit 1
fi
exit 0
"#;

/// Start the program in a net namespace of its own, told the harness's.
fn start(test: &str, args: &[&str]) -> Option<Zdtm> {
    let ns_exec = common::program_path("ns_exec");
    let wrapper = [ns_exec.to_str().unwrap(), "net", "--"];
    let z = Zdtm::start_wrapped(test, &wrapper, PROGRAM, args)?;
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    std::fs::write(z.work().join("host-netns"), host.display().to_string()).unwrap();
    Some(z)
}

fn net_link(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("no link: {e}"))
}

/// The net namespace ids of the root's `ids-PID.img` and of the tool's
/// (`inventory.img`).
fn net_ids(images: &Path, pid: i32) -> (Option<u32>, Option<u32>) {
    use criu_core::images::{Kind, pb, read_one};
    let ids: pb::TaskKobjIdsEntry =
        read_one(&images.join(Kind::Ids.file_name(pid as u64)), Kind::Ids).unwrap();
    let inv: pb::InventoryEntry = read_one(&images.join("inventory.img"), Kind::Inventory).unwrap();
    (ids.net_ns_id, inv.root_ids.and_then(|r| r.net_ns_id))
}

fn netns_images(images: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(images)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            [
                "netns",
                "netdev",
                "ifaddr",
                "route",
                "rule",
                "ip6tables",
                "iptables",
                "nftables",
            ]
            .iter()
            .any(|p| n.starts_with(p))
        })
        .collect();
    v.sort();
    v
}

/// The hook script and its log.
fn hook(z: &Zdtm) -> (PathBuf, PathBuf) {
    let script = z.new_dir("bin").join("hook.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script, z.new_dir("hooklog").join("log"))
}

fn hook_log(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    std::fs::remove_file(log).ok();
    text.lines().map(str::to_owned).collect()
}

#[test]
fn empty_ns_net_keeps_the_namespace_not_its_contents() {
    let Some(mut z) = start("netns_empty", &["lo=down"]) else {
        return;
    };
    z.dump(&["--empty-ns", "net"]);
    // As CRIU 4.1.1: the root's own namespace is net_ns_id 9 (the tool's
    // is 2), and nothing of it is written.
    assert_eq!(net_ids(z.images(), z.pid()), (Some(9), Some(2)));
    assert_eq!(netns_images(z.images()), Vec::<String>::new());
    z.restore(&["--empty-ns", "net"]);
    let after = net_link(z.pid());
    assert_ne!(after, net_link(std::process::id() as i32));
    // (Not compared with the dumped task's: that namespace died with it,
    // and the kernel reuses namespace inode numbers; the s390x VM gave
    // the new one the same.)
    assert_eq!(z.go(), "PASS");
}

#[test]
fn empty_ns_net_setup_namespaces_hook_sets_the_namespace_up() {
    let Some(mut z) = start("netns_empty_hook", &["lo=up", "connect=127.0.0.1"]) else {
        return;
    };
    let (script, log) = hook(&z);
    let script = script.to_str().unwrap();
    let pid = z.pid().to_string();
    let env = [("HOOK_LOG", log.as_os_str()), ("HOOK_LO_UP", "1".as_ref())];
    let (ok, out) = common::run_criu(
        z.images(),
        &[
            "dump",
            "-t",
            &pid,
            "--empty-ns",
            "net",
            "--action-script",
            script,
        ],
        &env,
    );
    assert!(ok, "{out}");
    z.wait_gone();
    // As CRIU: the namespace is locked by the caller, and stays so for a
    // killed tree (its restore unlocks it).
    assert_eq!(
        hook_log(&log),
        [
            "pre-dump none",
            "network-lock none",
            &format!("post-dump {pid}")
        ]
    );
    let (ok, out) = common::run_criu(
        z.images(),
        &[
            "restore",
            "-d",
            "--pidfile",
            "restored.pid",
            "--empty-ns",
            "net",
            "--action-script",
            script,
        ],
        &env,
    );
    assert!(ok, "{out}");
    z.restored_elsewhere();
    assert_eq!(
        hook_log(&log),
        [
            "pre-restore none".to_string(),
            format!("setup-namespaces {pid}"),
            format!("post-setup-namespaces {pid}"),
            format!("post-restore {pid}"),
            "network-unlock none".to_string(),
            format!("pre-resume {pid}"),
            format!("post-resume {pid}"),
        ]
    );
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_fault_after_network_lock_unlocks_and_leaves_the_tree_running() {
    let Some(z) = start("netns_dump_fault", &["lo=down"]) else {
        return;
    };
    let (script, log) = hook(&z);
    let images = z.new_dir("faulted");
    let pid = z.pid().to_string();
    let (ok, out) = common::run_criu(
        &images,
        &[
            "dump",
            "-t",
            &pid,
            "--empty-ns",
            "net",
            "--action-script",
            script.to_str().unwrap(),
        ],
        &[
            ("CRIU_DUMP_FAULT", "network-lock".as_ref()),
            ("HOOK_LOG", log.as_os_str()),
        ],
    );
    assert!(!ok, "the dump did not fail: {out}");
    assert!(out.contains("network-lock"), "{out}");
    assert_eq!(
        hook_log(&log),
        ["pre-dump none", "network-lock none", "network-unlock none"]
    );
    assert_eq!(common::tracer_pid(z.pid()), Some(0), "{out}");
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_fault_at_the_netns_restore_step_leaves_nothing_behind() {
    let Some(mut z) = start("netns_restore_fault", &["lo=down"]) else {
        return;
    };
    z.dump(&["--empty-ns", "net"]);
    let (ok, out) = common::run_criu(
        z.images(),
        &["restore", "-d", "--empty-ns", "net"],
        &[("CRIU_RESTORE_FAULT", "netns".as_ref())],
    );
    assert!(!ok, "the restore did not fail: {out}");
    assert!(out.contains("fault injected at netns"), "{out}");
    assert!(!out.contains("the root forked"), "{out}");
    assert_eq!(common::proc_state(z.pid()), None);
    z.restore(&["--empty-ns", "net"]);
    assert_eq!(z.go(), "PASS");
}

/// The peer's dump of the program (with its SO_PASSCRED shim where this
/// kernel needs it for inet sockets, see [`common::peer::passcred_shim`]).
fn peer_dump(peer: &Peer, z: &Zdtm, extra: &[&str]) -> (bool, String) {
    let pid = z.pid().to_string();
    let mut args = vec!["dump", "-t", &pid];
    args.extend_from_slice(extra);
    let shim = common::peer::passcred_shim();
    let env: Vec<(&str, &std::ffi::OsStr)> =
        shim.iter().map(|p| ("LD_PRELOAD", p.as_os_str())).collect();
    peer.criu_env(z.images(), &args, &env)
}

#[test]
fn criu_restores_our_empty_ns_images() {
    let Some(peer) = Peer::for_test("netns_empty_to_criu") else {
        return;
    };
    let Some(mut z) = start("netns_empty_to_criu", &["lo=down"]) else {
        return;
    };
    z.dump(&["--empty-ns", "net"]);
    let (ok, log) = peer.criu(
        z.images(),
        &[
            "restore",
            "-d",
            "--pidfile",
            "restored.pid",
            "--empty-ns",
            "net",
        ],
    );
    assert!(ok, "CRIU did not restore our images: {log}");
    z.restored_elsewhere();
    assert_ne!(net_link(z.pid()), net_link(std::process::id() as i32));
    assert_eq!(z.go(), "PASS");
}

#[test]
fn we_restore_criu_empty_ns_images() {
    let Some(peer) = Peer::for_test("netns_empty_from_criu") else {
        return;
    };
    let Some(mut z) = start("netns_empty_from_criu", &["lo=down"]) else {
        return;
    };
    let (ok, log) = peer_dump(&peer, &z, &["--empty-ns", "net"]);
    assert!(ok, "CRIU did not dump: {log}");
    z.wait_gone();
    assert_eq!(net_ids(z.images(), z.pid()), (Some(9), Some(2)));
    z.restore(&["--empty-ns", "net"]);
    assert_ne!(net_link(z.pid()), net_link(std::process::id() as i32));
    assert_eq!(z.go(), "PASS");
}

/// Run `ip ARGS` (in the namespace of `pid`, if any); its output.
/// Whether `test` cannot run for lack of iproute2's `ip` (said, and
/// skipped, in the VMs; tests/run has it natively, where its absence
/// fails the test).
fn no_ip(test: &str) -> bool {
    let ok = std::process::Command::new("ip")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return false;
    }
    let why = "the ip command (iproute2) is not installed";
    if cfg!(target_arch = "x86_64") {
        panic!("{test}: {why}");
    }
    common::skipping::skip(test, why);
    true
}

fn ip(pid: Option<i32>, args: &[&str]) -> String {
    let mut cmd = match pid {
        Some(p) => {
            let mut c = std::process::Command::new("nsenter");
            c.args(["-t", &p.to_string(), "-n", "ip"]);
            c
        }
        None => std::process::Command::new("ip"),
    };
    let out = cmd.args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sysctl_in(pid: i32, path: &str) -> String {
    let out = std::process::Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "cat",
            &format!("/proc/sys/{path}"),
        ])
        .output()
        .expect("run nsenter");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A veth pair `out`/`inn` between the host and the program's namespace,
/// `10.N.0.1/24` outside and `10.N.0.2/24` inside, lo up, a route to
/// `10.(N+1).0.0/16` through the host end, IPv4 forwarding on inside.
struct Net {
    out: String,
    inn: String,
    n: u8,
}

impl Net {
    fn setup(z: &Zdtm, n: u8) -> Net {
        let out = format!("zvo{n}");
        let inn = format!("zvi{n}");
        let pid = z.pid().to_string();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &out])
            .stderr(std::process::Stdio::null())
            .status();
        ip(
            None,
            &[
                "link", "add", &out, "type", "veth", "peer", "name", &inn, "netns", &pid,
            ],
        );
        ip(
            None,
            &["addr", "add", &format!("10.{n}.0.1/24"), "dev", &out],
        );
        ip(None, &["link", "set", &out, "up"]);
        let p = Some(z.pid());
        ip(p, &["link", "set", "lo", "up"]);
        ip(p, &["addr", "add", &format!("10.{n}.0.2/24"), "dev", &inn]);
        ip(p, &["link", "set", &inn, "up"]);
        ip(
            p,
            &[
                "route",
                "add",
                &format!("10.{}.0.0/16", n + 1),
                "via",
                &format!("10.{n}.0.1"),
            ],
        );
        let fwd = std::process::Command::new("nsenter")
            .args(["-t", &pid, "-n", "sh", "-c"])
            .arg("echo 1 > /proc/sys/net/ipv4/conf/all/forwarding")
            .status()
            .unwrap();
        assert!(fwd.success());
        Net { out, inn, n }
    }

    /// Wait until the dumped namespace is gone (the kernel tears it down
    /// after its last task, taking the host end of the veth along).
    fn wait_gone(&self) {
        let gone = common::wait_until(common::zdtm::TIMEOUT, || !link_exists(&self.out));
        assert!(gone, "{} is still there", self.out);
    }

    /// The namespace of `pid` is as [`Net::setup`] made it.
    fn check(&self, pid: i32) {
        let p = Some(pid);
        // `ip -o` pads names with spaces: compare word by word.
        let addrs = ip(p, &["-o", "addr"])
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            addrs.contains(&format!("{} inet 10.{}.0.2/24", self.inn, self.n)),
            "{addrs}"
        );
        assert!(addrs.contains("lo inet 127.0.0.1/8"), "{addrs}");
        let routes = ip(p, &["route"]);
        assert!(
            routes.contains(&format!(
                "10.{}.0.0/16 via 10.{}.0.1 dev {}",
                self.n + 1,
                self.n,
                self.inn
            )),
            "{routes}"
        );
        let link = ip(p, &["-o", "link", "show", &self.inn]);
        assert!(link.contains("link/ether"), "{link}");
        assert_eq!(sysctl_in(pid, "net/ipv4/conf/all/forwarding"), "1");
        // The peer is back outside, under its name.
        let outside = ip(None, &["-o", "link", "show", &self.out]);
        assert!(outside.contains(&format!("{}@", self.out)), "{outside}");
    }

    fn program_args(n: u8) -> Vec<String> {
        vec!["lo=up".into(), format!("connect=10.{n}.0.2")]
    }
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn link_exists(name: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn own_net_namespace_with_a_veth_is_dumped_and_restored_whole() {
    if no_ip("netns_full") {
        return;
    }
    let n = 71;
    let a = Net::program_args(n);
    let Some(mut z) = start("netns_full", &args(&a)) else {
        return;
    };
    let net = Net::setup(&z, n);
    z.dump(&[]);
    assert_eq!(net_ids(z.images(), z.pid()), (Some(9), Some(2)));
    assert_eq!(
        netns_images(z.images()),
        [
            "ifaddr-9.img",
            "ip6tables-9.img",
            "iptables-9.img",
            "netdev-9.img",
            "netns-9.img",
            "route-9.img",
            "route6-9.img",
            "rule-9.img"
        ]
    );
    // The namespace went with the task, the host end of the veth with it.
    net.wait_gone();
    let pair = format!("{}={}", net.inn, net.out);
    z.restore(&["--veth-pair", &pair]);
    net.check(z.pid());
    assert_eq!(z.go(), "PASS");
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &net.out])
        .stderr(std::process::Stdio::null())
        .status();
}

#[test]
fn a_fault_after_the_namespace_is_filled_leaves_no_link_behind() {
    if no_ip("netns_full_fault") {
        return;
    }
    let n = 73;
    let a = Net::program_args(n);
    let Some(mut z) = start("netns_full_fault", &args(&a)) else {
        return;
    };
    let net = Net::setup(&z, n);
    z.dump(&[]);
    net.wait_gone();
    let pair = format!("{}={}", net.inn, net.out);
    let (ok, out) = common::run_criu(
        z.images(),
        &["restore", "-d", "--veth-pair", &pair],
        &[("CRIU_RESTORE_FAULT", "netns".as_ref())],
    );
    assert!(!ok, "the restore did not fail: {out}");
    assert!(out.contains("fault injected at netns"), "{out}");
    // The veth was made (its peer outside), and is gone with the
    // namespace.
    assert!(
        out.contains(&format!("Restoring link {}", net.inn)),
        "{out}"
    );
    let gone = common::wait_until(common::zdtm::TIMEOUT, || !link_exists(&net.out));
    assert!(gone, "{} left behind: {out}", net.out);
    assert_eq!(common::proc_state(z.pid()), None);
    z.restore(&["--veth-pair", &pair]);
    net.check(z.pid());
    assert_eq!(z.go(), "PASS");
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &net.out])
        .stderr(std::process::Stdio::null())
        .status();
}

#[test]
fn a_link_of_another_kind_is_refused_by_name() {
    if no_ip("netns_dummy") {
        return;
    }
    let Some(z) = start("netns_dummy", &["lo=down"]) else {
        return;
    };
    let p = Some(z.pid());
    ip(p, &["link", "add", "zifb0", "type", "ifb"]);
    let log = z.dump_refused(&[], "(zifb0, type 1, kind ifb) cannot be dumped yet");
    assert!(
        log.contains("only the loopback device and veth devices are"),
        "{log}"
    );
    assert_eq!(z.go(), "PASS");
}

#[test]
fn criu_restores_our_whole_namespace() {
    if no_ip("netns_full_to_criu") {
        return;
    }
    let Some(peer) = Peer::for_test("netns_full_to_criu") else {
        return;
    };
    let n = 75;
    let a = Net::program_args(n);
    let Some(mut z) = start("netns_full_to_criu", &args(&a)) else {
        return;
    };
    let net = Net::setup(&z, n);
    z.dump(&[]);
    net.wait_gone();
    let pair = format!("{}={}", net.inn, net.out);
    let (ok, log) = peer.criu(
        z.images(),
        &[
            "restore",
            "-d",
            "--pidfile",
            "restored.pid",
            "--veth-pair",
            &pair,
        ],
    );
    assert!(ok, "CRIU did not restore our images: {log}");
    z.restored_elsewhere();
    net.check(z.pid());
    assert_eq!(z.go(), "PASS");
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &net.out])
        .stderr(std::process::Stdio::null())
        .status();
}

#[test]
fn we_restore_criu_s_whole_namespace() {
    if no_ip("netns_full_from_criu") {
        return;
    }
    let Some(peer) = Peer::for_test("netns_full_from_criu") else {
        return;
    };
    let n = 77;
    let a = Net::program_args(n);
    let Some(mut z) = start("netns_full_from_criu", &args(&a)) else {
        return;
    };
    let net = Net::setup(&z, n);
    let (ok, log) = peer_dump(&peer, &z, &[]);
    assert!(ok, "CRIU did not dump: {log}");
    z.wait_gone();
    net.wait_gone();
    let pair = format!("{}={}", net.inn, net.out);
    z.restore(&["--veth-pair", &pair]);
    net.check(z.pid());
    assert_eq!(z.go(), "PASS");
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &net.out])
        .stderr(std::process::Stdio::null())
        .status();
}

/// The program in its own net namespace (lo up), kept alive by the
/// returned fd after the dump, which declares it external with key `key`.
fn dumped_external(test: &str, key: &str) -> Option<(Zdtm, std::fs::File, u64)> {
    if no_ip(test) {
        return None;
    }
    let mut z = start(test, &["lo=up", "connect=127.0.0.1"])?;
    ip(Some(z.pid()), &["link", "set", "lo", "up"]);
    let ns = std::fs::File::open(format!("/proc/{}/ns/net", z.pid())).unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&ns.metadata().unwrap());
    z.dump(&["--external", &format!("net[{ino}]:{key}")]);
    Some((z, ns, ino))
}

/// The restored task is in the namespace `ino`, the one it was given.
fn assert_in(z: &Zdtm, ino: u64) {
    assert_eq!(net_link(z.pid()), format!("net:[{ino}]"));
}

#[test]
fn an_external_net_namespace_is_joined_from_inherit_fd() {
    let Some((mut z, ns, ino)) = dumped_external("netns_external", "extRootNetNS") else {
        return;
    };
    // As CRIU: netns-9.img holds the key only.
    assert_eq!(netns_images(z.images()), ["netns-9.img"]);
    let out = Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(["restore", "-d", "-v4", "-o", "restore.log"])
        .args(["--pidfile", "restored.pid"])
        .arg("-D")
        .arg(z.images())
        .args(["--inherit-fd", "fd[0]:extRootNetNS"])
        .stdin(Stdio::from(ns))
        .status()
        .unwrap();
    let log = std::fs::read_to_string(z.images().join("restore.log")).unwrap_or_default();
    assert!(out.success(), "{log}");
    assert!(!log.contains("the fd is not used"), "{log}");
    z.restored_elsewhere();
    assert_in(&z, ino);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn an_external_net_namespace_without_its_fd_is_refused() {
    let Some((z, _ns, _)) = dumped_external("netns_external_missing", "extRootNetNS") else {
        return;
    };
    let (ok, log) = common::run_criu(z.images(), &["restore", "-d"], &[]);
    assert!(!ok, "{log}");
    assert!(
        log.contains("give it with --inherit-fd fd[N]:extRootNetNS"),
        "{log}"
    );
    assert_eq!(common::proc_state(z.pid()), None);
}

#[test]
fn rpc_external_net_namespace_with_inherit_fd() {
    if no_ip("netns_rpc_external") {
        return;
    }
    let Some(mut z) = start("netns_external_rpc", &["lo=up", "connect=127.0.0.1"]) else {
        return;
    };
    ip(Some(z.pid()), &["link", "set", "lo", "up"]);
    let ns = std::fs::File::open(format!("/proc/{}/ns/net", z.pid())).unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&ns.metadata().unwrap());
    let criu = Path::new(env!("CARGO_BIN_EXE_criu"));
    let images = std::fs::File::open(z.images()).unwrap();
    let external = vec![format!("net[{ino}]:extRootNetNS")];
    let mut c = service_common::Client::swrk_at(criu);
    let resp = c.call(&CriuReq {
        r#type: CriuReqType::Dump as i32,
        opts: Some(CriuOpts {
            images_dir_fd: images.as_fd().as_raw_fd(),
            pid: Some(z.pid()),
            external: external.clone(),
            log_level: Some(4),
            log_file: Some("dump.log".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let log = std::fs::read_to_string(z.images().join("dump.log")).unwrap_or_default();
    assert!(resp.success, "{resp:?}\n{log}");
    drop(c);
    z.wait_gone();
    let mut c = service_common::Client::swrk_with_stdin(criu, Stdio::from(ns));
    let resp = c.call(&CriuReq {
        r#type: CriuReqType::Restore as i32,
        opts: Some(CriuOpts {
            images_dir_fd: images.as_fd().as_raw_fd(),
            inherit_fd: vec![InheritFd {
                key: "extRootNetNS".into(),
                fd: 0,
            }],
            log_level: Some(4),
            log_file: Some("restore.log".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let log = std::fs::read_to_string(z.images().join("restore.log")).unwrap_or_default();
    assert!(resp.success, "{resp:?}\n{log}");
    z.restored_elsewhere();
    assert_in(&z, ino);
    assert_eq!(z.go(), "PASS");
}

/// `--tcp-established` with a connection in the tree's own namespace,
/// dumped whole: the dump locks the namespace (its nftables table left out
/// of the namespace's images), the restore locks the new one until the
/// connection is repaired; the connection carries data both ways after.
#[test]
fn an_established_connection_in_its_own_namespace_comes_back() {
    let Some(mut z) = start("netns_established", &["established", "lo=up"]) else {
        return;
    };
    z.dump(&["--tcp-established"]);
    let log = std::fs::read_to_string(z.images().join("dump.log")).unwrap_or_default();
    assert!(
        log.contains("Locked the net namespace with table inet CRIU-"),
        "{log}"
    );
    z.restore(&["--tcp-established"]);
    let log = std::fs::read_to_string(z.images().join("restore.log")).unwrap_or_default();
    assert!(
        log.contains("Locked the net namespace with table inet CRIU-"),
        "{log}"
    );
    assert!(log.contains("network unlocked"), "{log}");
    assert_eq!(z.go(), "PASS");
}

/// With `--network-lock iptables` the same dump is refused by name: the
/// namespace's iptables rules, where that lock would be, are not dumped.
#[test]
fn an_established_connection_in_its_own_namespace_with_an_iptables_lock_is_refused() {
    let Some(z) = start("netns_established_ipt", &["established", "lo=up"]) else {
        return;
    };
    let log = z.dump_refused(
        &["--tcp-established", "--network-lock", "iptables"],
        "--network-lock iptables cannot lock the TCP connections of a net namespace dumped whole",
    );
    assert!(log.contains(&format!("task {}", z.pid())), "{log}");
    assert_eq!(z.go(), "PASS");
}

#[test]
fn own_net_and_time_namespaces_together() {
    // The tool makes the net namespace on threads of its own; the time
    // namespace needs a single-threaded tool right after.
    let ns_exec = common::program_path("ns_exec");
    let wrapper = [ns_exec.to_str().unwrap(), "net", "time", "uts", "--"];
    let Some(mut z) = Zdtm::start_wrapped("netns_time", &wrapper, PROGRAM, &["lo=down"]) else {
        return;
    };
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    std::fs::write(z.work().join("host-netns"), host.display().to_string()).unwrap();
    for round in 0..3 {
        let images = z.new_dir(&format!("round{round}"));
        z.dump_to(&images, &["--empty-ns", "net"]);
        z.restore_from(&images, &["--empty-ns", "net"]);
    }
    assert_eq!(z.go(), "PASS");
}
