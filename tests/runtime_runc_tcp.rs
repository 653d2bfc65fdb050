//! runc (Debian 12's 1.1.5) checkpoints and restores a busybox container
//! with a TCP server whose client, outside the container, keeps its
//! connection (`runc checkpoint --tcp-established`, `runc restore
//! --tcp-established`) through our criu: the same connection carries data
//! both ways after each restore, the server's own count going on, and
//! what the client sent while the container was down arrives.
//!
//! The container's network is a net namespace the test makes (`ip netns
//! add`, a veth pair with an address at each end) and the spec names by
//! path, so it lives on across the checkpoint: runc then sends it to criu
//! as external (`external net[INODE]:extRootNetNS` on dump, `inherit_fd`
//! with key `extRootNetNS` on restore, `empty_ns` net both ways). As
//! CRIU, the dump locks that whole namespace (every packet dropped but
//! libsoccr's marked ones) and leaves it locked for the restore, which
//! unlocks it.
//!
//! The crossing with CRIU 4.1.1 both ways: its checkpoint (locked with
//! its default method, iptables) restored by ours, and ours restored by
//! it. Ours locks with iptables then, named in the container's criu
//! configuration file (runc's `org.criu.config` annotation, which runc
//! sends as the request's `config_file`): under runc (`empty_ns` net)
//! CRIU 4.1.1's restore locks the namespace again, and with nftables it
//! does so with `create table`, which fails on the table the dump left
//! there, its own dumps' as well as ours; its iptables lock goes on top
//! of the dump's.
//!
//! Native only: the foreign VMs have no container runtime.
#![cfg(target_arch = "x86_64")]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::container::{Container, Runtime, runc_cannot_run as cannot_run};
use common::net::{LINE_SERVER, LineClient as Client, VethNs};
use common::peer::Peer;

const OURS: &str = env!("CARGO_BIN_EXE_criu");
const PORT: u16 = 5000;

/// A container of test `test` in net namespace `ns`, serving on
/// [`PORT`]: busybox `nc` hands the one connection to a shell that
/// answers each line with its count of lines and the line.
fn server(test: &str, ns: &VethNs) -> Container {
    let c = Container::new(test, Runtime::Runc);
    let path = ns.path();
    c.edit_spec(|spec| {
        spec["process"]["args"] = serde_json::json!([
            "nc",
            "-l",
            "-p",
            PORT.to_string(),
            "-e",
            "sh",
            "-c",
            LINE_SERVER
        ]);
        let nss = spec["linux"]["namespaces"].as_array_mut().unwrap();
        for n in nss.iter_mut() {
            if n["type"] == "network" {
                n["path"] = serde_json::Value::String(path.clone());
            }
        }
    });
    c
}

/// A criu that runs the peer's with its SO_PASSCRED shim preloaded where
/// this kernel needs it (see [`common::peer::passcred_shim`]): runc runs
/// it as `criu swrk`.
fn peer_criu(peer: &Peer, dir: &Path) -> PathBuf {
    let criu = peer.dir.join("criu");
    let Some(shim) = common::peer::passcred_shim() else {
        return criu;
    };
    let wrapper = dir.join("peer-criu");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nLD_PRELOAD={} exec {} \"$@\"\n",
            shim.display(),
            criu.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

/// Whether the namespace holds a lock of criu's: a `CRIU-*` nf_tables
/// table or CRIU's iptables chain.
fn locked(ns: &VethNs) -> bool {
    ns.nft_tables().iter().any(|(_, t)| t.starts_with("CRIU"))
        || ns.iptables("iptables").contains("-N CRIU")
}

/// One checkpoint by `dumper` with the client's line sent while the
/// container is down, restored by `restorer` (`between` run before it):
/// the line's answer arrives, the server's `n`th, and the namespace is
/// left unlocked.
fn cycle(
    c: &Container,
    ns: &VethNs,
    client: &mut Client,
    (dumper, restorer): (&Path, &Path),
    n: u32,
    between: impl FnOnce(),
) {
    let images = c.bundle.join(format!("ck{n}"));
    let images = images.to_str().unwrap();
    c.checkpoint(dumper, images, &["--tcp-established"]);
    assert_eq!(c.pid(), None, "the container after its checkpoint");
    assert!(
        locked(ns),
        "no lock in the namespace after the checkpoint by {dumper:?}"
    );
    // Dropped by the lock, sent again by TCP once it is gone.
    let line = format!("while down {n}");
    client.send(&line);
    std::thread::sleep(Duration::from_millis(300));
    between();
    c.restore_plain(restorer, images, &["--tcp-established"]);
    assert_eq!(client.answer(), format!("{n} {line}"));
    assert!(
        !locked(ns),
        "the namespace is still locked after the restore"
    );
}

#[test]
fn runc_keeps_a_tcp_connection_through_three_checkpoints() {
    const TEST: &str = "runc_tcp";
    if cannot_run(TEST) {
        return;
    }
    let ns = VethNs::new(0);
    let c = server(TEST, &ns);
    c.start_plain();
    let ours = Path::new(OURS);
    // With no connection yet the dump locks the namespace all the same
    // (as CRIU's), and the restore unlocks it: the server is reachable.
    let images = c.bundle.join("ck0");
    let images = images.to_str().unwrap();
    c.checkpoint(ours, images, &["--tcp-established"]);
    assert!(
        locked(&ns),
        "no lock after a checkpoint without connections"
    );
    c.restore_plain(ours, images, &["--tcp-established"]);
    assert!(!locked(&ns), "locked after a restore without connections");
    let mut client = Client::connect((ns.inside, PORT).into());
    client.ask("before", 1);
    let mut n = 2;
    for _ in 0..3 {
        cycle(&c, &ns, &mut client, (ours, ours), n, || {});
        client.ask(&format!("after {n}"), n + 1);
        n += 2;
    }
    let (ok, out) = c.run(None, &["kill", &c.id, "KILL"]);
    assert!(ok, "runc kill: {out}");
}

/// CRIU 4.1.1's checkpoint (its iptables lock in the namespace) restored
/// by ours, which takes the lock away.
#[test]
fn runc_tcp_checkpoint_of_criu_4_1_1_restores_with_ours() {
    const TEST: &str = "runc_tcp_cross";
    if cannot_run(TEST) {
        return;
    }
    let Some(peer) = Peer::for_test(TEST) else {
        return;
    };
    let ns = VethNs::new(1);
    let c = server(TEST, &ns);
    let theirs = peer_criu(&peer, c.dir());
    c.start_plain();
    let mut client = Client::connect((ns.inside, PORT).into());
    client.ask("before", 1);
    cycle(&c, &ns, &mut client, (&theirs, Path::new(OURS)), 2, || {});
    client.ask("after", 3);
    let (ok, out) = c.run(None, &["kill", &c.id, "KILL"]);
    assert!(ok, "runc kill: {out}");
}

/// Our checkpoint (an iptables lock, from the container's criu
/// configuration file) restored by CRIU 4.1.1, which takes the lock away.
/// Our dump's log shows the file applied.
#[test]
fn runc_tcp_checkpoint_of_ours_restores_with_criu_4_1_1() {
    const TEST: &str = "runc_tcp_cross_back";
    if cannot_run(TEST) {
        return;
    }
    let Some(peer) = Peer::for_test(TEST) else {
        return;
    };
    let ns = VethNs::new(2);
    let c = server(TEST, &ns);
    let conf = c.dir().join("criu.conf");
    std::fs::write(&conf, "# our dump reads this\nnetwork-lock iptables\n").unwrap();
    c.edit_spec(|spec| {
        spec["annotations"] = serde_json::json!({ "org.criu.config": conf.to_str().unwrap() });
    });
    let theirs = peer_criu(&peer, c.dir());
    c.start_plain();
    let mut client = Client::connect((ns.inside, PORT).into());
    client.ask("before", 1);
    // CRIU 4.1.1's swrk crashes (SIGSEGV) on a `network-lock` line in its
    // RPC configuration file; its restore takes the method from the
    // images' inventory anyway.
    let forget = || {
        let rules = ns.iptables("iptables");
        assert!(
            rules.contains("-A CRIU -j DROP"),
            "no iptables lock: {rules}"
        );
        std::fs::write(&conf, "# the method is in the images\n").unwrap();
    };
    cycle(&c, &ns, &mut client, (Path::new(OURS), &theirs), 2, forget);
    let log = std::fs::read_to_string(c.bundle.join("ck2/dump.log")).unwrap();
    assert!(
        log.contains("Would overwrite RPC settings with values from"),
        "{log}"
    );
    client.ask("after", 3);
    let (ok, out) = c.run(None, &["kill", &c.id, "KILL"]);
    assert!(ok, "runc kill: {out}");
}
