//! Images interchange with CRIU both ways, against a real CRIU 4.1.1 (the
//! peer, see `common::peer`): the self-checking test programs of
//! `tests/programs/zdtm` are dumped by us and restored by CRIU, and dumped
//! by CRIU and restored by us, and then checks its own state; both tools'
//! crit decode both tools' images to the same JSON. A program one tool
//! cannot handle here is listed in [`EXPECTED`] with that tool's own
//! error, which the test checks is still the error it gives.
//!
//! Not crossed: the refusal programs (`zdtm_refused`,
//! `zdtm_unheld_attrs`, `zdtm_sockets_inet_refused`, and the refusal
//! modes of `zdtm_sockets_{netlink,packet,raw}`: both tools refuse them,
//! nothing is dumped) and the per-arch register ones (`zdtm_fpu_*`,
//! `zdtm_pac`, which have nothing to cross on x86_64).
//!
//! The ordinary programs of `tests/foreign.rs` (coreutils `sleep`, a
//! python3 loop, a bash job with `--shell-job`) cross over too, at the
//! end of this file.

mod common;

use std::path::Path;
use std::time::Duration;

use common::peer::{Peer, compare_crits};
use common::skip;
use common::zdtm::{TIMEOUT, Zdtm};

/// Which tool dumps; the other restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// Dumped by us, restored by CRIU.
    OursToCriu,
    /// Dumped by CRIU, restored by us.
    CriuToOurs,
}

/// What goes wrong, for a program one tool cannot handle here.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// CRIU refuses: the words of its error (in its log).
    Refused(&'static str),
    /// CRIU's side runs but loses state: the words of the program's own
    /// FAIL verdict, and of what CRIU gives dumping and restoring the
    /// program itself (its own loss, or its refusal to dump it): the test
    /// checks both, so that a loss is CRIU's, never ours.
    Lost(&'static str, &'static str),
    /// We refuse what CRIU carries but we do not yet (dumping it, or
    /// restoring CRIU's images of it): the words of our refusal. A refused
    /// dump must leave the program running unchanged (it passes), a
    /// refused restore no process behind. (No program needs it since
    /// seccomp is carried; kept for what the namespace work refuses
    /// first, which other branches may list.)
    #[allow(dead_code)]
    OursRefuses(&'static str),
}

/// Programs CRIU 4.1.1 cannot handle on this machine, by program (with
/// its arguments, matched exactly) and direction, each with why.
const EXPECTED: &[(&str, Way, Expect)] = &[
    // CRIU restores no personality (and dumps it as its hex digits read
    // as decimal, which both tools' images now hold).
    (
        "zdtm_task_attrs",
        Way::OursToCriu,
        Expect::Lost("personality: 0,", "personality: 0,"),
    ),
    // eventfd(2) takes a 32-bit initial value: CRIU's restore drops the
    // counter's high half.
    (
        "zdtm_eventfd",
        Way::OursToCriu,
        Expect::Lost(BIG_EVENTFD, BIG_EVENTFD),
    ),
    (
        "zdtm_eventfd no-semaphore",
        Way::OursToCriu,
        Expect::Lost(BIG_EVENTFD, BIG_EVENTFD),
    ),
    // CRIU's dump does not record EFD_SEMAPHORE (not in the file's flags);
    // where the kernel does not show it (before 6.5) the program leaves
    // the semaphore out ("no-semaphore") and CRIU's images lose nothing.
    (
        "zdtm_eventfd",
        Way::CriuToOurs,
        Expect::Lost("eventfd-semaphore: 0", BIG_EVENTFD),
    ),
    // CRIU restores shared anonymous memory as a memfd ...
    (
        "zdtm_shared_anon",
        Way::OursToCriu,
        Expect::Lost("maps path \"/memfd: (deleted)\"", "maps path \"/memfd:"),
    ),
    // ... and dumps it as a memfd named /dev/zero, which is what we
    // restore from its images.
    (
        "zdtm_shared_anon",
        Way::CriuToOurs,
        Expect::Lost(
            "\"/memfd:/dev/zero (deleted)\"",
            "\"/memfd:/dev/zero (deleted)\"",
        ),
    ),
    // CRIU's dump reads no data from a pipe whose read end is closed.
    (
        "zdtm_pipes",
        Way::CriuToOurs,
        Expect::Lost(NO_READER, NO_READER),
    ),
    // CRIU cannot dump tasks sharing an fs struct (CLONE_FS) ...
    (
        "zdtm_clone_files share",
        Way::CriuToOurs,
        Expect::Refused(CANNOT_FS),
    ),
    // ... and restores the tasks sharing their parent's fd table and fs
    // struct without it (which shared thing C1 finds lost first varies).
    (
        "zdtm_clone_files share",
        Way::OursToCriu,
        Expect::Lost("FAIL: C1 (", CANNOT_FS),
    ),
    // A pty master in packet mode: CRIU's dump keeps the packet header
    // byte as queued data, its restore writes the data back through the
    // line discipline (output processing adds a \r).
    (
        "zdtm_pty",
        Way::CriuToOurs,
        Expect::Lost(PTY_PACKET, PTY_PACKET),
    ),
    (
        "zdtm_pty",
        Way::OursToCriu,
        Expect::Lost(PTY_PACKET, PTY_PACKET),
    ),
    // CRIU restores an accepted connection without the listener's name.
    (
        "zdtm_unix listen",
        Way::OursToCriu,
        Expect::Lost(ACCEPTED, ACCEPTED),
    ),
    (
        "zdtm_unix abstract",
        Way::OursToCriu,
        Expect::Lost(ACCEPTED, ACCEPTED),
    ),
    // CRIU binds a UDP socket again to the IPv6 address its connect gave
    // it, which turns IPV6_V6ONLY on (for good) on a dual-stack socket.
    (
        "zdtm_sockets_inet udp6",
        Way::OursToCriu,
        Expect::Lost(V6ONLY_LOST, V6ONLY_LOST),
    ),
    // CRIU reads a task's rlimits with prlimit(2) from outside, which a
    // task of another uid refuses to a root without CAP_SYS_RESOURCE (as
    // on this machine); we read them inside the task.
    (
        "zdtm_caps",
        Way::CriuToOurs,
        Expect::Refused("Can't get rlimit 0: Operation not permitted"),
    ),
    // CRIU's restorer sets a thread's securebits before raising its
    // ambient capabilities, so a thread with SECBIT_NO_CAP_AMBIENT_RAISE
    // cannot get them back (its BUG() then stops the restore).
    (
        "zdtm_caps",
        Way::OursToCriu,
        Expect::Refused("Unable to raise ambient capability 13"),
    ),
    // A pty only the master holds: CRIU keeps no owner for its slave
    // (its dump has no slave entry; its restore reads none of ours).
    (
        "zdtm_ctty master",
        Way::OursToCriu,
        Expect::Lost(PTY_OWNER, PTY_OWNER),
    ),
    (
        "zdtm_ctty master",
        Way::CriuToOurs,
        Expect::Lost(PTY_OWNER, PTY_OWNER),
    ),
    // CRIU's dump does not record MADV_WIPEONFORK (its restore of ours
    // applies it).
    (
        "zdtm_vma_advice",
        Way::CriuToOurs,
        Expect::Lost(NO_WIPEONFORK, NO_WIPEONFORK),
    ),
    // CRIU connects a netlink socket back to its peer's group as
    // `1 << (dst_group - 1)`: with no group (0) that is C's undefined
    // shift by -1, which x86_64 and arm64 take modulo 32 (group 32) and
    // ppc64 and s390x as a shift past the width (no group: nothing lost
    // there, as the ppc64le VM shows). Its own images have the same
    // dst_group 0.
    (
        "zdtm_sockets_netlink all",
        Way::OursToCriu,
        Expect::Lost(NL_GROUP_32, NL_GROUP_32),
    ),
    // CRIU dumps and restores no netlink socket in a group above 32 ...
    (
        "zdtm_sockets_netlink above32",
        Way::CriuToOurs,
        Expect::Refused("has more than 32 groups"),
    ),
    (
        "zdtm_sockets_netlink above32",
        Way::OursToCriu,
        Expect::Refused("Groups above 32 are not supported yet"),
    ),
    // ... and no packet socket with a membership added twice (its
    // restore of ours adds it twice).
    (
        "zdtm_sockets_packet all",
        Way::CriuToOurs,
        Expect::Refused("Multiple MC membership not supported (but can be)"),
    ),
    // Without raw_diag (this kernel's) CRIU reads a raw socket's peer
    // with getpeername, which fails for a connected raw socket: its
    // images have none; and it connects back only sockets with a peer
    // port, which a raw socket has not.
    (
        "zdtm_sockets_raw connected",
        Way::CriuToOurs,
        Expect::Lost(RAW_UNCONNECTED, RAW_UNCONNECTED),
    ),
    // With raw_diag (the VMs' kernels) CRIU sees the state, and takes the
    // raw socket for a TCP connection.
    (
        "zdtm_sockets_raw connected",
        Way::CriuToOurs,
        Expect::Refused(RAW_AS_TCP),
    ),
    // CRIU's restore of ours loses the peer the same way everywhere; what
    // CRIU does alone follows raw_diag, as above.
    (
        "zdtm_sockets_raw connected",
        Way::OursToCriu,
        Expect::Lost(RAW_UNCONNECTED, RAW_UNCONNECTED),
    ),
    (
        "zdtm_sockets_raw connected",
        Way::OursToCriu,
        Expect::Lost(RAW_UNCONNECTED, RAW_AS_TCP),
    ),
    // CRIU writes a task's private pages into its premap area before its
    // restorer applies the VMA's madvise bits: where transparent huge
    // pages are "always" (the VMs' Debian kernels; this host has
    // "madvise"), each write of a page is backed by a whole huge page, so
    // the holes around the program's few pages come back filled, though
    // the program asked for MADV_NOHUGEPAGE.
    (
        "zdtm_anon_sparse",
        Way::OursToCriu,
        Expect::Lost(THP_FILLED, THP_FILLED),
    ),
];
const THP_FILLED: &str = "untouched pages are not holes";
const NL_GROUP_32: &str = ", 2147483648), was (";
const RAW_AS_TCP: &str = "Connected TCP socket, consider using --tcp-established option.";
const RAW_UNCONNECTED: &str = "send on the connected socket: Destination address required";
/// Whether transparent huge pages back every anonymous fault here (not
/// only where a mapping asked with MADV_HUGEPAGE).
fn thp_always() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| s.contains("[always]"))
}
/// Whether `iptables` and `ip6tables` run here (the VMs hold busybox).
fn iptables_works() -> bool {
    ["iptables", "ip6tables"].iter().all(|cmd| {
        std::process::Command::new(cmd)
            .args(["-w", "-S", "INPUT"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Whether an [`EXPECTED`] entry holds on this machine: CRIU's prlimit
/// refusal only where root lacks CAP_SYS_RESOURCE (as on the x86_64 host;
/// the VMs' root has it, and CRIU dumps `zdtm_caps` there); CRIU's loss of
/// a connected raw socket's peer where the kernel has no raw_diag, its
/// refusal to dump the socket itself (a "connected TCP socket") where it
/// has; CRIU's filled holes only where transparent huge pages are
/// "always"; CRIU's netlink group 32 only where a shift by -1 wraps.
fn applies_here(key: &str, way: Way, expect: Expect) -> bool {
    if key == "zdtm_anon_sparse" {
        return thp_always();
    }
    if key == "zdtm_sockets_netlink all" && way == Way::OursToCriu {
        return cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));
    }
    if key == "zdtm_sockets_raw connected" {
        use criu_core::sys::kconst::{AF_INET, IPPROTO_RAW};
        let raw_diag = criu_core::proc::inet_diag::collect(AF_INET, IPPROTO_RAW, u32::MAX).is_ok();
        return match expect {
            Expect::Refused(_) => raw_diag,
            Expect::Lost(_, alone) => (alone == RAW_AS_TCP) == raw_diag,
            Expect::OursRefuses(_) => true,
        };
    }
    if (key, way) != ("zdtm_caps", Way::CriuToOurs) {
        return true;
    }
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << CAP_SYS_RESOURCE) == 0
}
const PTY_OWNER: &str = "/dev/pts/0 owned by 0:0, want 1234:5";
const NO_WIPEONFORK: &str = "lack wf";
/// The test program prints the option's bytes: an int 1 in host order.
const V6ONLY_LOST: &str = if cfg!(target_endian = "big") {
    "connected UDP6: IPV6_V6ONLY is [0, 0, 0, 1], was [0, 0, 0, 0]"
} else {
    "connected UDP6: IPV6_V6ONLY is [1, 0, 0, 0], was [0, 0, 0, 0]"
};
const ACCEPTED: &str = "accepted socket's name differs";
const BIG_EVENTFD: &str = "big counter 0x5, want 0x100000005";
const NO_READER: &str = "reader-gone: 0 bytes queued, were 17";
const CANNOT_FS: &str = "Can't make FS id";
const PTY_PACKET: &str = "pty B's master read";

/// `restore -d --pidfile restored.pid EXTRA` by the peer; success and log.
fn peer_restore(peer: &Peer, images: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["restore", "-d", "--pidfile", "restored.pid"];
    args.extend_from_slice(extra);
    peer.criu(images, &args)
}

/// One program, one way: start it, dump with one tool, restore with the
/// other, let it check itself; then both crits on the images. `opts`
/// go to both dump and restore.
fn cross(test: &str, way: Way, program: &str, args: &[&str], opts: &[&str]) {
    let Some(peer) = Peer::for_test(test) else {
        return;
    };
    if opts == LOCKED && !iptables_works() {
        // The TCP connections cross with CRIU's iptables lock (see LOCKED).
        return skip(test, "no working iptables and ip6tables commands here");
    }
    let _ptys = (program == "zdtm_pty" || program == "zdtm_ctty").then(pty_lock);
    let Some(mut z) = Zdtm::start(test, program, args) else {
        return;
    };
    let key = if args.is_empty() {
        program.to_string()
    } else {
        format!("{program} {}", args.join(" "))
    };
    let expected = EXPECTED
        .iter()
        .find(|(p, w, e)| *p == key && *w == way && applies_here(p, *w, *e))
        .map(|e| e.2);
    let images = z.images().to_path_buf();
    // Tasks of a tree are reaped before the restore needs their PIDs.
    let kids = common::descendants(z.pid());
    let (dumper, restorer) = match way {
        Way::OursToCriu => (Tool::Ours, Tool::Criu),
        Way::CriuToOurs => (Tool::Criu, Tool::Ours),
    };
    // A failure must be the refusal EXPECTED names, by the tool it names
    // (else the test fails).
    let refused = |tool: Tool, log: &str, what: &str| match (tool, expected) {
        (Tool::Criu, Some(Expect::Refused(words))) => {
            assert!(log.contains(words), "{key}: CRIU's error changed:\n{log}");
        }
        (Tool::Ours, Some(Expect::OursRefuses(words))) => {
            assert!(log.contains(words), "{key}: our refusal changed:\n{log}");
        }
        _ => panic!("{key} ({way:?}): {what}:\n{log}"),
    };
    if let Err(log) = dump_with(dumper, &peer, &mut z, program, opts) {
        refused(dumper, &log, "the dump failed");
        if let Tool::Ours = dumper {
            assert_eq!(z.go(), "PASS", "{key}: the tree after our refused dump");
        }
        common::kill_all(&kids);
        return;
    }
    common::reap(&kids);
    if let Err(log) = restore_with(restorer, &peer, &mut z, opts) {
        refused(restorer, &log, "the restore failed");
        let pid = z.pid();
        if let Tool::Criu = restorer {
            // A CRIU killed in the middle of its restore (see
            // `Peer::criu_env`) leaves its half-restored tasks: CRIU's,
            // not ours to vouch for. (Ours: this test is their subreaper,
            // so they are our children once CRIU is gone.)
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let after = &s[s.rfind(')')? + 1..];
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            if ppid == Some(std::process::id()) {
                common::kill_all(&common::descendants(pid));
                common::kill_all(&[pid]);
            }
        }
        assert!(
            common::wait_until(TIMEOUT, || common::proc_state(pid).is_none()),
            "{key}: a refused restore left {pid} behind"
        );
        return;
    }
    // The verdict first (some programs check timers that keep running),
    // the images kept for the crits.
    let kept = common::TempDir::new(&format!("{test}-images"));
    std::fs::rename(&images, kept.join("images")).unwrap();
    let verdict = verdict_of(z, program);
    common::kill_all(&kids);
    let bad = compare_crits(&peer, &kept.join("images"));
    match expected {
        Some(Expect::Lost(words, alone_words)) => {
            assert!(
                verdict.contains(words),
                "{key} ({way:?}): expected CRIU to lose state ({words}), got: {verdict}"
            );
            // CRIU loses it on its own too: this is CRIU's limit, not ours.
            let alone = criu_alone(&peer, &format!("{test}-criu"), program, args, opts);
            assert!(
                alone.contains(alone_words),
                "{key}: CRIU alone gives {alone}, not {alone_words:?}"
            );
        }
        Some(Expect::Refused(words)) => {
            panic!("{key} ({way:?}): expected CRIU to refuse ({words}), but it worked")
        }
        Some(Expect::OursRefuses(words)) => {
            panic!("{key} ({way:?}): expected us to refuse ({words}), but it worked")
        }
        None => assert_eq!(verdict, "PASS", "{key} ({way:?})"),
    }
    assert!(bad.is_empty(), "{key} ({way:?}): {}", bad.join("\n"));
}

#[derive(Clone, Copy)]
enum Tool {
    Ours,
    Criu,
}

/// Dump `z` with `tool` (the program is gone after it); CRIU's log if it
/// failed.
fn dump_with(
    tool: Tool,
    peer: &Peer,
    z: &mut Zdtm,
    program: &str,
    opts: &[&str],
) -> Result<(), String> {
    let pid = z.pid().to_string();
    let mut dump = vec!["dump", "-t", &pid];
    dump.extend_from_slice(opts);
    let (ok, log) = match tool {
        Tool::Ours => z.criu_in(z.images(), &dump),
        Tool::Criu => {
            let shim = [
                "zdtm_sockets_inet",
                "zdtm_sockets_tcp",
                "zdtm_sockets_packet",
                "zdtm_sockets_raw",
            ]
            .contains(&program)
            .then(common::peer::passcred_shim)
            .flatten();
            let env: Vec<(&str, &std::ffi::OsStr)> =
                shim.iter().map(|p| ("LD_PRELOAD", p.as_os_str())).collect();
            peer.criu_env(z.images(), &dump, &env)
        }
    };
    if !ok {
        return Err(log);
    }
    z.wait_gone();
    Ok(())
}

/// Restore `z` with `tool` (it gets its PID back); the log if it failed.
fn restore_with(tool: Tool, peer: &Peer, z: &mut Zdtm, opts: &[&str]) -> Result<(), String> {
    let images = z.images().to_path_buf();
    let (ok, log) = match tool {
        Tool::Ours => {
            let mut args = vec!["restore", "-d", "--pidfile", "restored.pid"];
            args.extend_from_slice(opts);
            z.criu_in(&images, &args)
        }
        Tool::Criu => peer_restore(peer, &images, opts),
    };
    if !ok {
        return Err(log);
    }
    let restored = std::fs::read_to_string(images.join("restored.pid")).unwrap();
    assert_eq!(restored.trim(), z.pid().to_string(), "{log}");
    z.restored_elsewhere();
    Ok(())
}

fn verdict_of(z: Zdtm, program: &str) -> String {
    if program == "zdtm_fpu" {
        go_with_alarms(z)
    } else {
        z.go()
    }
}

/// The verdict of `program` dumped and restored by CRIU alone.
fn criu_alone(peer: &Peer, test: &str, program: &str, args: &[&str], opts: &[&str]) -> String {
    let mut z = Zdtm::start(test, program, args).expect("could run before");
    let kids = common::descendants(z.pid());
    if let Err(log) = dump_with(Tool::Criu, peer, &mut z, program, opts) {
        return format!("CRIU alone cannot dump it: {log}");
    }
    common::reap(&kids);
    if let Err(log) = restore_with(Tool::Criu, peer, &mut z, opts) {
        return format!("CRIU alone cannot restore it: {log}");
    }
    let verdict = verdict_of(z, program);
    common::kill_all(&kids);
    verdict
}

/// The peer restores what it dumped itself: the baseline of every
/// "ours to CRIU" failure (a CRIU that cannot restore its own dump of
/// this program here fails there through no fault of our images).
#[test]
fn peer_restores_its_own_dump() {
    let test = "cross-peer-alone";
    let Some(peer) = Peer::for_test(test) else {
        return;
    };
    let verdict = criu_alone(&peer, test, "zdtm_anon_dense", &[], &[]);
    assert_eq!(verdict, "PASS", "CRIU 4.1.1 with its own images");
}

/// The `isk` of every inet socket in `images`' files.img, by inode, as
/// the peer's crit decodes it, without the file id (which each tool
/// numbers its own way).
fn inet_entries(peer: &Peer, images: &Path) -> std::collections::BTreeMap<u64, serde_json::Value> {
    sk_entries(peer, images, "isk")
        .into_iter()
        .map(|(k, v)| (k.parse().unwrap(), v))
        .collect()
}

/// The socket entries `key` (`isk`, `nlsk`, `psk`) of `images`' files.img
/// as the peer's crit decodes them, without the file id, by inode (by
/// their JSON text for packet sockets, whose entries have no inode).
fn sk_entries(
    peer: &Peer,
    images: &Path,
    key: &str,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let files = peer
        .decode_all(&[images.join("files.img")])
        .remove(0)
        .unwrap_or_else(|e| panic!("{}: {e}", images.display()));
    let mut out = std::collections::BTreeMap::new();
    for e in files["entries"].as_array().unwrap() {
        if let Some(sk) = e.get(key) {
            let mut sk = sk.clone();
            sk.as_object_mut().unwrap().remove("id");
            let k = sk
                .get("ino")
                .map_or_else(|| sk.to_string(), |i| i.to_string());
            out.insert(k, sk);
        }
    }
    out
}

/// Both tools dump the same sockets (`--leave-running`, one after the
/// other) to the same `inet_sk_entry`, field for field, as CRIU's crit
/// shows them: our images are CRIU's, not merely readable by it. Where the
/// peer runs with its SO_PASSCRED shim (see [`common::peer::passcred_shim`]) its entries
/// hold `so_passcred`/`so_passsec` (off), which CRIU 4.2 and we leave out
/// for inet sockets: those two are not compared there.
#[test]
fn inet_sockets_dump_to_criu_s_entries_field_for_field() {
    let test = "cross-inet-fields";
    let Some(peer) = Peer::for_test(test) else {
        return;
    };
    if let Some(why) = peer.cannot_run_crit() {
        return skip(test, why);
    }
    let shim = common::peer::passcred_shim();
    let env: Vec<(&str, &std::ffi::OsStr)> =
        shim.iter().map(|p| ("LD_PRELOAD", p.as_os_str())).collect();
    for mode in ["tcp4", "tcp6", "udp4", "udp6", "opts"] {
        let Some(z) = Zdtm::start(&format!("{test}-{mode}"), "zdtm_sockets_inet", &[mode]) else {
            return;
        };
        let pid = z.pid().to_string();
        let dump = ["dump", "-t", &pid, "--leave-running"];
        let theirs_dir = z.new_dir("criu-images");
        let (ok, log) = peer.criu_env(&theirs_dir, &dump, &env);
        assert!(ok, "{mode}: CRIU's dump: {log}");
        let ours_dir = z.new_dir("our-images");
        let (ok, log) = z.criu_in(&ours_dir, &dump);
        assert!(ok, "{mode}: our dump: {log}");
        let mut theirs = inet_entries(&peer, &theirs_dir);
        let ours = inet_entries(&peer, &ours_dir);
        if shim.is_some() {
            for e in theirs.values_mut() {
                let opts = e["opts"].as_object_mut().unwrap();
                opts.remove("so_passcred");
                opts.remove("so_passsec");
            }
        }
        assert!(!ours.is_empty(), "{mode}: no inet socket in our images");
        // Compared as values: the order of fields in the JSON is the
        // decoder's, not the image's.
        assert!(
            ours == theirs,
            "{mode}: our entries:\n{}\nCRIU's:\n{}",
            serde_json::to_string_pretty(&ours).unwrap(),
            serde_json::to_string_pretty(&theirs).unwrap()
        );
        assert_eq!(z.go(), "PASS", "{mode}: left running");
    }
}

/// `v` as JSON text with every object's keys sorted (the decoder keeps
/// the order of the fields it read).
fn canon(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .iter()
                .map(|k| format!("{k:?}:{}", canon(&m[*k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(a) => {
            format!("[{}]", a.iter().map(canon).collect::<Vec<_>>().join(","))
        }
        other => other.to_string(),
    }
}

/// Netlink, packet and raw sockets: both tools dump the same sockets
/// (`--leave-running`, one after the other) to the same entries, field
/// for field, as CRIU's crit shows them. Left out of the comparison: the
/// options CRIU reads only through its SO_PASSCRED shim (as for inet
/// sockets). (A packet socket's fanout flags, which we record from
/// `PACKET_FANOUT` and CRIU's sock_diag does not show, are only in
/// `zdtm_sockets_packet all`, not compared here.)
#[test]
fn netlink_packet_and_raw_sockets_dump_to_criu_s_entries_field_for_field() {
    let test = "cross-sk-kinds-fields";
    let Some(peer) = Peer::for_test(test) else {
        return;
    };
    if let Some(why) = peer.cannot_run_crit() {
        return skip(test, why);
    }
    for (program, mode, key) in [
        ("zdtm_sockets_netlink", "all", "nlsk"),
        ("zdtm_sockets_packet", "single", "psk"),
        ("zdtm_sockets_raw", "all", "isk"),
    ] {
        let shim = (key != "nlsk").then(common::peer::passcred_shim).flatten();
        let env: Vec<(&str, &std::ffi::OsStr)> =
            shim.iter().map(|p| ("LD_PRELOAD", p.as_os_str())).collect();
        let Some(z) = Zdtm::start(&format!("{test}-{key}"), program, &[mode]) else {
            return;
        };
        let pid = z.pid().to_string();
        let dump = ["dump", "-t", &pid, "--leave-running"];
        let theirs_dir = z.new_dir("criu-images");
        let (ok, log) = peer.criu_env(&theirs_dir, &dump, &env);
        assert!(ok, "{program}: CRIU's dump: {log}");
        let ours_dir = z.new_dir("our-images");
        let (ok, log) = z.criu_in(&ours_dir, &dump);
        assert!(ok, "{program}: our dump: {log}");
        let mut theirs = sk_entries(&peer, &theirs_dir, key);
        let mut ours = sk_entries(&peer, &ours_dir, key);
        for e in theirs.values_mut().chain(ours.values_mut()) {
            let e = e.as_object_mut().unwrap();
            if shim.is_some() {
                let opts = e["opts"].as_object_mut().unwrap();
                opts.remove("so_passcred");
                opts.remove("so_passsec");
            }
        }
        // Compared as sets of texts: packet sockets have no inode to key
        // them by.
        let theirs: std::collections::BTreeSet<String> = theirs.values().map(canon).collect();
        let ours: std::collections::BTreeSet<String> = ours.values().map(canon).collect();
        assert!(!ours.is_empty(), "{program}: no {key} in our images");
        assert!(
            ours == theirs,
            "{program}: only ours:\n{:#?}\nonly CRIU's:\n{:#?}",
            ours.difference(&theirs).collect::<Vec<_>>(),
            theirs.difference(&ours).collect::<Vec<_>>()
        );
        assert_eq!(z.go(), "PASS", "{program}: left running");
    }
}

/// `zdtm_eventfd`'s arguments: where the kernel's fdinfo does not show
/// `eventfd-semaphore` (before 6.5) no tool can see the flag, and the
/// program leaves that part out (as in `tests/zdtm_anonfd.rs`).
fn eventfd_args() -> &'static [&'static str] {
    let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::SEMAPHORE).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&efd);
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    if info.contains("eventfd-semaphore") {
        &[]
    } else {
        skip(
            "cross-eventfd (EFD_SEMAPHORE only)",
            "this kernel's fdinfo does not show eventfd-semaphore",
        );
        &["no-semaphore"]
    }
}

/// `zdtm_fpu` leaves its register loop from a SIGALRM handler: send some
/// while it checks (its own timer may have been stopped by the dump).
fn go_with_alarms(z: Zdtm) -> String {
    std::fs::write(z.work().join("go"), "").unwrap();
    let pid = rustix::process::Pid::from_raw(z.pid()).unwrap();
    let result = z.work().join("result");
    let start = std::time::Instant::now();
    while !result.exists() && start.elapsed() < TIMEOUT {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::ALARM);
        std::thread::sleep(Duration::from_millis(20));
    }
    z.go()
}

/// Pty indices are global: the tests here that make ptys run one at a
/// time, so that a restore never finds its pty's index taken by another
/// test's new pty.
static PTYS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn pty_lock() -> std::sync::MutexGuard<'static, ()> {
    PTYS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Two tests per program: `NAME::ours_to_criu` and `NAME::criu_to_ours`.
macro_rules! crossover {
    ($name:ident, $program:expr, $args:expr, $opts:expr) => {
        mod $name {
            #[test]
            fn ours_to_criu() {
                let test = concat!("cross-", stringify!($name), "-o2c");
                super::cross(test, super::Way::OursToCriu, $program, $args, $opts);
            }
            #[test]
            fn criu_to_ours() {
                let test = concat!("cross-", stringify!($name), "-c2o");
                super::cross(test, super::Way::CriuToOurs, $program, $args, $opts);
            }
        }
    };
    ($name:ident, $program:expr) => {
        crossover!($name, $program, &[], &[]);
    };
}

crossover!(anon_dense, "zdtm_anon_dense");
crossover!(anon_growsdown, "zdtm_anon_growsdown");
crossover!(anon_placement, "zdtm_anon_placement");
crossover!(anon_sparse, "zdtm_anon_sparse");
crossover!(brk, "zdtm_brk");
crossover!(clone_files, "zdtm_clone_files", &["share"], &[]);
crossover!(counter, "zdtm_counter");
crossover!(cwd_umask, "zdtm_cwd_umask");
crossover!(epoll, "zdtm_epoll");
crossover!(eventfd, "zdtm_eventfd", super::eventfd_args(), &[]);
crossover!(fifo, "zdtm_fifo");
crossover!(file_deleted, "zdtm_file_deleted");
crossover!(file_locks, "zdtm_file_locks", &[], &["--file-locks"]);
crossover!(file_private, "zdtm_file_private");
crossover!(file_shared, "zdtm_file_shared");
crossover!(files, "zdtm_files");
crossover!(fork_restore, "zdtm_fork_restore");
crossover!(fown, "zdtm_fown");
crossover!(fpu, "zdtm_fpu", &["widest", "2"], &[]);
crossover!(ghost, "zdtm_ghost");
crossover!(ghost_occupied, "zdtm_ghost", &["occupied"], &[]);
crossover!(inotify, "zdtm_inotify");
crossover!(itimers, "zdtm_itimers");
crossover!(itimers_blocked, "zdtm_itimers", &["blocked"], &[]);
crossover!(link_remap, "zdtm_refused", &["linked"], &["--link-remap"]);
crossover!(
    link_remap_map,
    "zdtm_refused",
    &["linked-map"],
    &["--link-remap"]
);
crossover!(memfd_shared, "zdtm_memfd_shared");
crossover!(mix, "zdtm_mix", &[], &["--file-locks"]);
crossover!(opath, "zdtm_opath");
crossover!(pending_signals, "zdtm_pending_signals");
crossover!(pending_signals_many, "zdtm_pending_signals", &["many"], &[]);
crossover!(pidfd, "zdtm_pidfd");
crossover!(pipes, "zdtm_pipes");
crossover!(posix_timers, "zdtm_posix_timers");
crossover!(
    posix_timers_gap,
    "zdtm_posix_timers",
    &["gap", "blocked"],
    &[]
);
crossover!(protections, "zdtm_protections");
crossover!(pty, "zdtm_pty");
crossover!(rlimits, "zdtm_rlimits");
crossover!(seccomp, "zdtm_seccomp");
crossover!(seccomp_tsync, "zdtm_seccomp", &["tsync"], &[]);
crossover!(seccomp_strict, "zdtm_seccomp", &["strict"], &[]);
crossover!(seccomp_no_nnp, "zdtm_seccomp", &["no-nnp"], &[]);
crossover!(seccomp_fork, "zdtm_seccomp", &["fork"], &[]);
crossover!(shared_anon, "zdtm_shared_anon");
crossover!(sigactions, "zdtm_sigactions");
crossover!(sigaltstack, "zdtm_sigaltstack");
crossover!(signalfd, "zdtm_signalfd");
crossover!(sockets_inet_tcp4, "zdtm_sockets_inet", &["tcp4"], &[]);
crossover!(sockets_inet_tcp6, "zdtm_sockets_inet", &["tcp6"], &[]);
crossover!(sockets_inet_udp4, "zdtm_sockets_inet", &["udp4"], &[]);
crossover!(sockets_inet_udp6, "zdtm_sockets_inet", &["udp6"], &[]);
crossover!(sockets_inet_opts, "zdtm_sockets_inet", &["opts"], &[]);
crossover!(sockets_netlink, "zdtm_sockets_netlink", &["all"], &[]);
crossover!(
    sockets_netlink_above32,
    "zdtm_sockets_netlink",
    &["above32"],
    &[]
);
crossover!(sockets_packet, "zdtm_sockets_packet", &["all"], &[]);
crossover!(
    sockets_packet_single,
    "zdtm_sockets_packet",
    &["single"],
    &[]
);
crossover!(sockets_raw, "zdtm_sockets_raw", &["all"], &[]);
crossover!(
    sockets_raw_connected,
    "zdtm_sockets_raw",
    &["connected"],
    &[]
);
crossover!(rseq, "zdtm_rseq");
/// The TCP connections cross with CRIU's own network lock, iptables
/// rules per connection, which both tools take at dump and take away at
/// restore: each removes the other's. (CRIU 4.1.1's restore does not take
/// away our default nftables lock: it does not read the method from the
/// inventory.)
const LOCKED: &[&str] = &["--tcp-established", "--network-lock", "iptables"];

crossover!(sockets_tcp4, "zdtm_sockets_tcp", &["tcp4"], super::LOCKED);
crossover!(sockets_tcp6, "zdtm_sockets_tcp", &["tcp6"], super::LOCKED);
crossover!(
    sockets_tcp_half4,
    "zdtm_sockets_tcp",
    &["half4"],
    super::LOCKED
);
crossover!(task_attrs, "zdtm_task_attrs");
crossover!(threads, "zdtm_threads");
crossover!(timerfd, "zdtm_timerfd");
crossover!(tree, "zdtm_tree", &["tree"], &[]);
crossover!(tree_sessions, "zdtm_tree", &["sessions"], &[]);
crossover!(tree_zombie, "zdtm_tree", &["zombie"], &[]);
crossover!(tree_orphan_pgid, "zdtm_tree", &["orphan-pgid"], &[]);
crossover!(unix_stream, "zdtm_unix", &["stream"], &[]);
crossover!(unix_dgram, "zdtm_unix", &["dgram"], &[]);
crossover!(unix_seqpacket, "zdtm_unix", &["seqpacket"], &[]);
crossover!(unix_listen, "zdtm_unix", &["listen"], &[]);
crossover!(unix_abstract, "zdtm_unix", &["abstract"], &[]);
crossover!(vdso, "zdtm_vdso");
crossover!(vma_layout, "zdtm_vma_layout");
crossover!(closed_stdio, "zdtm_closed_stdio");
crossover!(cow, "zdtm_cow");
crossover!(ghost_holes, "zdtm_ghost_holes");
crossover!(loginuid, "zdtm_loginuid");
crossover!(membarrier, "zdtm_membarrier");
crossover!(oom_score_adj, "zdtm_oom_score_adj");
crossover!(sched, "zdtm_sched");
crossover!(thp_disable, "zdtm_thp_disable");
crossover!(unix_files, "zdtm_unix_files");
crossover!(caps, "zdtm_caps");
crossover!(ctty_master, "zdtm_ctty", &["master"], &[]);
crossover!(ctty_child, "zdtm_ctty", &["child"], &[]);
crossover!(file_map_mode, "zdtm_file_map_mode");
crossover!(memfd_exec, "zdtm_memfd_exec");
crossover!(stopped, "zdtm_stopped");
crossover!(vma_advice, "zdtm_vma_advice");

/// Programs we did not write (those of `tests/foreign.rs`), crossing over
/// (x86_64, like those tests: the VMs have no python3 or bash).
#[cfg(target_arch = "x86_64")]
mod foreign {
    use std::path::Path;
    use std::process::Child;
    use std::time::{Duration, Instant};

    use super::{Peer, Way};
    use crate::common::{self, TempDir, wait_until};

    const WAIT: Duration = Duration::from_secs(20);

    /// Dump the tree of `pid` with one tool and restore it with the other
    /// (`extra` to both), checking it gets its PID back. `child` is the
    /// program started: `pid` itself or its parent, whose end means the
    /// dumped tree is gone and its PIDs are free again.
    fn cross(peer: &Peer, way: Way, pid: i32, child: &mut Child, images: &Path, extra: &[&str]) {
        cross_env(peer, way, pid, child, images, extra, &[]);
    }

    /// [`cross`], the peer's dump run with `peer_env` added.
    fn cross_env(
        peer: &Peer,
        way: Way,
        pid: i32,
        child: &mut Child,
        images: &Path,
        extra: &[&str],
        peer_env: &[(&str, &std::ffi::OsStr)],
    ) {
        let pid = pid.to_string();
        let mut dump = vec!["dump", "-t", &pid];
        dump.extend_from_slice(extra);
        let mut restore = vec!["restore", "-d", "--pidfile", "restored.pid"];
        restore.extend_from_slice(extra);
        let (ok, log) = match way {
            Way::OursToCriu => common::run_criu(images, &dump, &[]),
            Way::CriuToOurs => peer.criu_env(images, &dump, peer_env),
        };
        assert!(ok, "dump ({way:?}): {log}");
        child.wait().expect("reap the dumped program");
        let (ok, log) = match way {
            Way::OursToCriu => peer.criu(images, &restore),
            Way::CriuToOurs => common::run_criu(images, &restore, &[]),
        };
        assert!(ok, "restore ({way:?}): {log}");
        let restored = std::fs::read_to_string(images.join("restored.pid")).unwrap();
        assert_eq!(restored.trim(), pid, "{log}");
    }

    fn reap(pid: i32) -> Option<i32> {
        let p = rustix::process::Pid::from_raw(pid).unwrap();
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            if let Ok(Some((_, st))) =
                rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG)
            {
                return st.exit_status();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn kill(pid: i32) {
        let p = rustix::process::Pid::from_raw(pid).unwrap();
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
    }

    /// coreutils `sleep 3`, dumped while sleeping: it finishes its sleep
    /// (neither at once nor never) and exits 0.
    fn sleep(test: &str, way: Way) {
        let Some(peer) = Peer::for_test(test) else {
            return;
        };
        common::become_subreaper();
        let dir = TempDir::new(test);
        let images = dir.join("images");
        std::fs::create_dir_all(&images).unwrap();
        let started = Instant::now();
        let mut child = common::spawn_in(dir.path(), &["sleep", "3"], false);
        let pid = child.id() as i32;
        assert!(wait_until(WAIT, || common::proc_state(pid) == Some('S')));
        std::thread::sleep(Duration::from_millis(300));
        cross(&peer, way, pid, &mut child, &images, &[]);
        assert_eq!(reap(pid), Some(0), "restored sleep did not exit 0");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(2900), "slept only {took:?}");
    }

    /// GET `path` from 127.0.0.1:`port`: the response, or why not.
    fn fetch(port: u16, path: &str) -> Result<String, String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(WAIT)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// python3's `http.server` listening on 127.0.0.1, having served one
    /// request: after the other tool's restore it serves the file again.
    fn http_server(test: &str, way: Way) {
        let Some(peer) = Peer::for_test(test) else {
            return;
        };
        common::become_subreaper();
        let dir = TempDir::new(test);
        let www = dir.join("www");
        let images = dir.join("images");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::create_dir_all(&images).unwrap();
        let body = "crossing over with python3's http.server\n".repeat(40);
        std::fs::write(www.join("page.txt"), &body).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let port_s = port.to_string();
        let argv = [
            "python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port_s,
        ];
        let mut child = common::spawn_in(&www, &argv, false);
        let pid = child.id() as i32;
        assert!(
            wait_until(WAIT, || fetch(port, "/page.txt").is_ok()),
            "http.server never answered"
        );
        // Let it finish with that connection.
        std::thread::sleep(Duration::from_millis(200));
        let shim = crate::common::peer::passcred_shim();
        let env: Vec<(&str, &std::ffi::OsStr)> =
            shim.iter().map(|p| ("LD_PRELOAD", p.as_os_str())).collect();
        cross_env(&peer, way, pid, &mut child, &images, &[], &env);
        let got = fetch(port, "/page.txt");
        kill(pid);
        let got = got.unwrap_or_else(|e| panic!("{way:?}: no answer after restore: {e}"));
        assert!(
            got.starts_with("HTTP/1.0 200") && got.ends_with(&body),
            "{way:?}: {got}"
        );
    }

    /// A python3 loop that checks its own heap and counts in a file.
    fn python(test: &str, way: Way) {
        let Some(peer) = Peer::for_test(test) else {
            return;
        };
        common::become_subreaper();
        let dir = TempDir::new(test);
        let images = dir.join("images");
        std::fs::create_dir_all(&images).unwrap();
        let count = dir.join("count");
        let script = "import os, time\n\
            data = [i * i for i in range(100000)]\n\
            want = sum(data)\n\
            i = 0\n\
            while True:\n\
            \x20   i += 1\n\
            \x20   assert sum(data) == want\n\
            \x20   with open('count.tmp', 'w') as f: f.write(str(i))\n\
            \x20   os.rename('count.tmp', 'count')\n\
            \x20   time.sleep(0.005)\n";
        let mut child = common::spawn_in(dir.path(), &["python3", "-c", script], false);
        let pid = child.id() as i32;
        assert!(wait_until(WAIT, || common::read_num(&count) > 5));
        cross(&peer, way, pid, &mut child, &images, &[]);
        let at_restore = common::read_num(&count);
        assert!(
            wait_until(WAIT, || common::read_num(&count) > at_restore + 5),
            "python loop stuck at {at_restore}: {}",
            std::fs::read_to_string(dir.join("out")).unwrap_or_default()
        );
        kill(pid);
    }

    /// A bash loop run as a shell job (its own process group, not a
    /// session leader): dumped and restored with `--shell-job`, it counts
    /// on in the restorer's session. Its session is led by a job-control
    /// bash started here, not by whatever leads the test runner's session:
    /// that leader may sit outside this PID namespace (CI runs the suite so),
    /// which CRIU refuses to dump.
    fn bash_job(test: &str, way: Way) {
        let Some(peer) = Peer::for_test(test) else {
            return;
        };
        common::become_subreaper();
        let dir = TempDir::new(test);
        let images = dir.join("images");
        std::fs::create_dir_all(&images).unwrap();
        let count = dir.join("count");
        let job_pid = dir.join("job.pid");
        let script = "i=0; while :; do i=$((i+1)); \
            if [ $((i % 200)) -eq 0 ]; then echo $i > count; fi; done";
        // The job writes its own file: the shell reports its end in `out`.
        let shell = "set -m; bash -c \"$1\" >job.out 2>&1 & echo $! > job.pid; wait";
        let mut child =
            common::spawn_in(dir.path(), &["bash", "-c", shell, "shell", script], false);
        assert!(
            wait_until(WAIT, || common::read_num(&job_pid) > 0),
            "no job.pid"
        );
        let pid = common::read_num(&job_pid) as i32;
        assert!(wait_until(WAIT, || common::read_num(&count) >= 400));
        let stat = |pid: i32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let fields: Vec<String> = stat
                .rsplit_once(") ")
                .unwrap()
                .1
                .split(' ')
                .map(str::to_owned)
                .collect();
            fields
        };
        let before = stat(pid);
        assert_eq!(
            before[2],
            pid.to_string(),
            "the job leads its process group"
        );
        assert_ne!(before[3], pid.to_string(), "the job is no session leader");
        cross(&peer, way, pid, &mut child, &images, &["--shell-job"]);
        let at_restore = common::read_num(&count);
        assert!(
            wait_until(WAIT, || common::read_num(&count) > at_restore),
            "bash loop stuck at {at_restore}"
        );
        assert_eq!(stat(pid)[2], pid.to_string(), "leads its own process group");
        kill(pid);
    }

    #[test]
    fn sleep_ours_to_criu() {
        sleep("cross-sleep-o2c", Way::OursToCriu);
    }

    #[test]
    fn sleep_criu_to_ours() {
        sleep("cross-sleep-c2o", Way::CriuToOurs);
    }

    #[test]
    fn http_server_ours_to_criu() {
        http_server("cross-http-o2c", Way::OursToCriu);
    }

    #[test]
    fn http_server_criu_to_ours() {
        http_server("cross-http-c2o", Way::CriuToOurs);
    }

    #[test]
    fn python_ours_to_criu() {
        python("cross-python-o2c", Way::OursToCriu);
    }

    #[test]
    fn python_criu_to_ours() {
        python("cross-python-c2o", Way::CriuToOurs);
    }

    #[test]
    fn bash_job_ours_to_criu() {
        bash_job("cross-bash-o2c", Way::OursToCriu);
    }

    #[test]
    fn bash_job_criu_to_ours() {
        bash_job("cross-bash-c2o", Way::CriuToOurs);
    }
}

/// A Podman checkpoint archive (`podman container checkpoint --export`):
/// a tar of CRIU's images under `checkpoint/` beside the metadata Podman
/// adds (`config.dump`, `spec.dump`, `network.status`, `stats-dump`,
/// `dump.log`, `rootfs-diff.tar`, `deleted.files`; the names of
/// checkpoint-restore's go library, which Podman and CRI-O share), built
/// here in that layout from a CRIU 4.1.1 dump of a zdtm test program,
/// uncompressed and gzipped (`--compress none` and `gzip`); the archive
/// Podman itself makes of a container is `tests/podman_archive.rs`'s.
/// Extracted with tar (README: "Checkpoint archives"), every
/// image of it decodes with our crit to what CRIU's crit prints, and our
/// `crit x` explores it. (x86_64: the VMs have neither tar nor python3.)
#[cfg(target_arch = "x86_64")]
#[test]
fn podman_archive_images_decode_with_both_crits() {
    use std::process::Command;
    let test = "cross-podman-archive";
    let Some(peer) = Peer::for_test(test) else {
        return;
    };
    let Some(z) = Zdtm::start(test, "zdtm_tree", &["tree"]) else {
        return;
    };
    let kids = common::descendants(z.pid());
    let root = z.new_dir("container");
    let checkpoint = root.join("checkpoint");
    std::fs::create_dir_all(&checkpoint).unwrap();
    let pid = z.pid().to_string();
    let (ok, log) = peer.criu(&checkpoint, &["dump", "-t", &pid, "--leave-running"]);
    assert!(ok, "CRIU's dump: {log}");
    // Podman keeps CRIU's log and stats beside the images' directory.
    std::fs::rename(checkpoint.join("peer-dump.log"), root.join("dump.log")).unwrap();
    std::fs::rename(checkpoint.join("stats-dump"), root.join("stats-dump")).unwrap();
    let meta = [
        (
            "config.dump",
            r#"{"id":"3f1c0de5a5b2","name":"crossover","rootfsImageName":"localhost/test:latest","createdTime":"2025-01-01T00:00:00Z","checkpointedTime":"2025-01-01T00:01:00Z","restoredTime":"0001-01-01T00:00:00Z","restored":false}"#,
        ),
        (
            "spec.dump",
            r#"{"ociVersion":"1.0.2","process":{"args":["zdtm_tree"],"cwd":"/"},"root":{"path":"rootfs"},"annotations":{"io.podman.annotations.checkpoint.name":"crossover"}}"#,
        ),
        ("network.status", "[]"),
        ("deleted.files", "[]"),
    ];
    for (name, text) in meta {
        std::fs::write(root.join(name), text).unwrap();
    }
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let tar = |args: &[&str], cwd: &std::path::Path| {
        let out = Command::new("tar")
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "tar {args:?}: {out:?}");
    };
    tar(&["-cf", "../rootfs-diff.tar", "."], &empty);
    std::fs::remove_dir(&empty).unwrap();
    let members = [
        "checkpoint",
        "config.dump",
        "spec.dump",
        "network.status",
        "stats-dump",
        "dump.log",
        "rootfs-diff.tar",
        "deleted.files",
    ];
    let archives = z.new_dir("archives");
    for (name, flag) in [("checkpoint.tar", "-cf"), ("checkpoint.tar.gz", "-czf")] {
        let archive = archives.join(name);
        let mut args = vec![flag, archive.to_str().unwrap()];
        args.extend(members);
        tar(&args, &root);
        let out = z.new_dir(&format!("x-{name}"));
        tar(&["-xf", archive.to_str().unwrap()], &out);
        let images = out.join("checkpoint");
        let n = common::peer::protobuf_images(&images).len();
        assert!(n >= 10, "{name}: only {n} images in checkpoint/");
        let bad = compare_crits(&peer, &images);
        assert!(bad.is_empty(), "{name}: {}", bad.join("\n"));
        // The tree as CRIU's crit shows it, with our crit.
        let ps = common::peer::our_crit(&["x", images.to_str().unwrap(), "ps"]).unwrap();
        let theirs = peer.crit(&["x", images.to_str().unwrap(), "ps"]).unwrap();
        assert_eq!(ps, theirs, "{name}: crit x ps");
        assert!(ps.contains(&pid), "{ps}");
        // And the rest of the archive is left alone by both.
        let stats = common::peer::our_crit(&["show", out.join("stats-dump").to_str().unwrap()]);
        assert!(stats.unwrap().contains("\"dump\""), "{name}: stats-dump");
    }
    assert_eq!(z.go(), "PASS", "the tree, left running");
    common::kill_all(&kids);
}

/// `zdtm_tty_job`: a job of a tiny shell (`zdtm_tty_job shell`) on a
/// terminal A, dumped with `--shell-job` by one tool, restored by the other
/// run in the foreground of a second shell on terminal B: the job gets B
/// as its controlling terminal and stdio, in that shell's session, and
/// writes a line to it (as `tests/zdtm_tty.rs` tests it with us alone).
mod tty_job {
    use std::os::fd::OwnedFd;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use criu_core::sys::tty as sys;
    use rustix::fs::{Mode, OFlags};

    use super::{Peer, TIMEOUT, Way, pty_lock};
    use crate::common::{self, TempDir, program_path, wait_for_file};

    /// A new pty: the master and the slave's path.
    fn open_pty() -> (OwnedFd, String) {
        let m = rustix::fs::open(
            "/dev/ptmx",
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open /dev/ptmx");
        sys::set_int(&m, sys::TIOCSPTLCK, 0).expect("unlock the pty");
        let n = sys::get_int(&m, sys::TIOCGPTN).expect("TIOCGPTN");
        (m, format!("/dev/pts/{n}"))
    }

    /// Killed and reaped on drop.
    struct Kill(Child);

    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The tiny shell in its own session on `slave`, running `cmd`; and
    /// the file it writes the command's exit code to.
    fn shell_on(dir: &Path, name: &str, slave: &str, cmd: &[&str]) -> (Kill, PathBuf) {
        let status = dir.join(format!("{name}.status"));
        let child = Command::new(program_path("zdtm_tty_job"))
            .arg("shell")
            .arg(slave)
            .arg(&status)
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
            .spawn()
            .expect("spawn the shell");
        (Kill(child), status)
    }

    /// What the master has to read, until the job's line or `wait`.
    fn read_master(m: &OwnedFd, wait: Duration) -> String {
        let mut text = Vec::new();
        let end = Instant::now() + wait;
        while Instant::now() < end && !String::from_utf8_lossy(&text).contains("hello from") {
            let n = sys::get_int(m, sys::FIONREAD).unwrap_or(0);
            if n > 0 {
                let mut buf = vec![0u8; n as usize];
                if let Ok(k) = rustix::io::read(m, &mut buf) {
                    text.extend_from_slice(&buf[..k]);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    fn cross(test: &str, way: Way) {
        let Some(peer) = Peer::for_test(test) else {
            return;
        };
        common::become_subreaper();
        let _g = pty_lock();
        let dir = TempDir::new(test);
        let work = dir.join("work");
        let images = dir.join("images");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&images).unwrap();

        let (master_a, slave_a) = open_pty();
        let job = program_path("zdtm_tty_job");
        let (_shell1, _) = shell_on(
            dir.path(),
            "shell1",
            &slave_a,
            &[job.to_str().unwrap(), work.to_str().unwrap()],
        );
        let ready = wait_for_file(&work.join("ready"), TIMEOUT).expect("job not ready");
        let pid: i32 = ready.trim().parse().unwrap();
        let pid_s = pid.to_string();
        let dump = ["dump", "-t", &pid_s, "--shell-job"];
        let (ok, log) = match way {
            Way::OursToCriu => common::run_criu(&images, &dump, &[]),
            Way::CriuToOurs => peer.criu(&images, &dump),
        };
        assert!(ok, "dump ({way:?}): {log}");
        assert!(
            common::wait_until(TIMEOUT, || common::proc_state(pid).is_none()),
            "the dumped job is still there"
        );
        drop(master_a);

        // The second shell runs the other tool's restore in its foreground.
        let (master_b, slave_b) = open_pty();
        let restorer = match way {
            Way::OursToCriu => peer.dir.join("criu"),
            Way::CriuToOurs => PathBuf::from(env!("CARGO_BIN_EXE_criu")),
        };
        let (_shell2, status) = shell_on(
            dir.path(),
            "shell2",
            &slave_b,
            &[
                restorer.to_str().unwrap(),
                "restore",
                "-d",
                "--shell-job",
                "-D",
                images.to_str().unwrap(),
                "-v4",
                "-o",
                "restore.log",
                "--pidfile",
                "restored.pid",
            ],
        );
        let code = wait_for_file(&status, TIMEOUT).unwrap_or_default();
        let log = std::fs::read_to_string(images.join("restore.log")).unwrap_or_default();
        assert_eq!(code.trim(), "0", "restore ({way:?}) failed: {log}");
        let restored = std::fs::read_to_string(images.join("restored.pid")).unwrap();
        assert_eq!(restored.trim(), pid_s);
        std::fs::write(work.join("go"), "").unwrap();
        let verdict =
            wait_for_file(&work.join("result"), TIMEOUT).unwrap_or_else(|| "no result".into());
        let said = read_master(&master_b, Duration::from_secs(5));
        common::kill_all(&[pid]);
        assert_eq!(verdict.trim(), "PASS", "{way:?}: {log}");
        assert!(
            said.contains("hello from the job"),
            "terminal B got {said:?}"
        );
        let bad = super::compare_crits(&peer, &images);
        assert!(bad.is_empty(), "{way:?}: {}", bad.join("\n"));
    }

    #[test]
    fn ours_to_criu() {
        cross("cross-tty_job-o2c", Way::OursToCriu);
    }

    #[test]
    fn criu_to_ours() {
        cross("cross-tty_job-c2o", Way::CriuToOurs);
    }
}
