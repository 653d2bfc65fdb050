//! What a restore cannot bring back is refused at dump, by name, with the
//! tree left running as it was: namespaces other than criu's (of the root,
//! of a whole container, of one child; the root's own UTS and IPC
//! namespaces are dumped, see `tests/zdtm_uts_ipc.rs`, its own cgroup
//! namespace, `tests/zdtm_cgns.rs`, and its own user namespace,
//! `tests/zdtm_userns.rs`), devices restore does not know,
//! unlinked files kept by other links, hugetlb memory, a task that never
//! stops. Each refused
//! program then checks its own state and must pass. The devices restore
//! does know come back (`zdtm_refused devices`).

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::os::fd::AsRawFd;

use common::zdtm::Zdtm;
use criu_core::images::pb::rpc::{CriuOpts, CriuReq, CriuReqType};
use service_common::Client;

const PROGRAM: &str = "zdtm_refused";

/// Start `zdtm_refused count` in new namespaces of `kinds` (through
/// the `ns_exec` test program, which unshares with the system call), and
/// check that its dump is refused with `message` before any task is
/// seized.
fn refused_in_namespace(test: &str, kinds: &[&str], message: &str) {
    let ns_exec = common::program_path("ns_exec");
    let mut wrapper = vec![ns_exec.to_str().unwrap()];
    wrapper.extend_from_slice(kinds);
    wrapper.push("--");
    let Some(z) = Zdtm::start_wrapped(test, &wrapper, PROGRAM, &["count"]) else {
        return;
    };
    let root = z.pid();
    let log = z.dump_refused(&["--shell-job"], message);
    assert!(log.contains(&format!("task {root} ")), "{log}");
    // Refused before anything was seized.
    assert!(!log.contains("Seized "), "{log}");
    assert_eq!(z.go(), "PASS");
}

/// A task in a mount namespace of its own, a copy of criu's (as
/// `unshare -m` makes it), was refused: it now dumps with every mount of
/// it and restores into a new one (`tests/zdtm_mntns.rs` has containers).
#[test]
fn task_in_its_own_mount_namespace_restores() {
    if let Some(why) = common::cannot_pivot_root() {
        common::skipping::skip("mnt_ns", why);
        return;
    }
    let ns_exec = common::program_path("ns_exec");
    let wrapper = [ns_exec.to_str().unwrap(), "mnt", "--"];
    let Some(mut z) = Zdtm::start_wrapped("mnt_ns", &wrapper, PROGRAM, &["count"]) else {
        return;
    };
    let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let before = std::fs::read_link(format!("/proc/{}/ns/mnt", z.pid())).unwrap();
    assert_ne!(before, ours);
    z.dump(&["--shell-job"]);
    z.restore(&["--shell-job"]);
    let after = std::fs::read_link(format!("/proc/{}/ns/mnt", z.pid())).unwrap();
    assert_ne!(after, ours, "restored into criu's own mount namespace");
    assert_eq!(z.go(), "PASS");
}

// A root in its own net namespace is dumped and restored now: see
// zdtm_netns.rs (which also holds what of it is still refused).

/// A task in a user namespace of its own (as `unshare -r` makes it) was
/// refused: it now dumps with its maps and restores into a new one
/// (`tests/zdtm_userns.rs` has the rest, and what is still refused).
#[test]
fn task_in_its_own_user_namespace_restores() {
    let ns_exec = common::program_path("ns_exec");
    let wrapper = [ns_exec.to_str().unwrap(), "user", "--"];
    let Some(mut z) = Zdtm::start_wrapped("user_ns", &wrapper, PROGRAM, &["count"]) else {
        return;
    };
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    z.dump(&["--shell-job"]);
    assert!(z.images().join("userns-9.img").exists());
    z.restore(&["--shell-job"]);
    let after = std::fs::read_link(format!("/proc/{}/ns/user", z.pid())).unwrap();
    assert_ne!(after, ours, "restored into criu's own user namespace");
    let map = std::fs::read_to_string(format!("/proc/{}/uid_map", z.pid())).unwrap();
    assert_eq!(map.split_whitespace().collect::<Vec<_>>(), ["0", "0", "1"]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn task_whose_children_live_in_another_pid_namespace_is_refused() {
    // The root (ns_exec) stays in ours, its child is pid 1 of the new one.
    // (Dumped from that child, the init, the same tree restores: see
    // zdtm_pidns.rs. CRIU refuses this root too.)
    refused_in_namespace(
        "pid_ns",
        &["pid"],
        "starts its children in another pid namespace (pid_for_children is pid:[",
    );
}

#[test]
fn a_container_is_refused_before_any_task_is_seized() {
    // Every namespace a runtime makes: its net and mount namespaces,
    // owned by its user namespace, cannot be restored yet (see
    // zdtm_userns.rs).
    refused_in_namespace(
        "container",
        &["user", "net", "uts", "ipc", "mnt", "pid", "cgroup"],
        "is in its own user namespace and its own net namespace",
    );
}

#[test]
fn a_child_in_its_own_namespace_is_refused_by_name() {
    for (kind, message) in [
        ("uts", "is in its own uts namespace"),
        ("ipc", "is in its own ipc namespace"),
        ("mnt", "is in its own mnt namespace"),
        ("net", "is in its own net namespace"),
        ("cgroup", "is in its own cgroup namespace"),
        ("user", "is in its own user namespace"),
        ("pid", "starts its children in another pid namespace"),
        ("time", "starts its children in another time namespace"),
    ] {
        let test = format!("child_ns_{kind}");
        let Some(z) = Zdtm::start(&test, PROGRAM, &["child-ns", kind]) else {
            return;
        };
        let child = common::descendants(z.pid());
        assert_eq!(child.len(), 1, "{kind}: {child:?}");
        let log = z.dump_refused(&[], &format!("task {} {message}", child[0]));
        assert!(!log.contains("Seized "), "{kind}: {log}");
        assert_eq!(z.go(), "PASS", "{kind}");
    }
}

#[test]
fn devices_that_restore_reopens_come_back() {
    let Some(mut z) = Zdtm::start("devices", PROGRAM, &["devices"]) else {
        return;
    };
    z.dump(&[]);
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn other_devices_are_refused_by_name() {
    for (path, message) in [
        (
            "/dev/net/tun",
            "is the character device /dev/net/tun (10:200), which cannot be dumped yet",
        ),
        ("/dev/tty1", "is the character device /dev/tty1 (4:1)"),
        ("/dev/kmsg", "is the character device /dev/kmsg (1:11)"),
        ("/dev/loop0", "is the block device /dev/loop0 (7:0)"),
    ] {
        let test = format!("device_{}", path.rsplit('/').next().unwrap_or(path));
        if !std::path::Path::new(path).exists() {
            common::skip(&test, &format!("{path} does not exist here"));
            continue;
        }
        let Some(z) = Zdtm::start(&test, PROGRAM, &["device", path]) else {
            return;
        };
        let message = format!("fd 10 of task {} {message}", z.pid());
        z.dump_refused(&[], &message);
        assert_eq!(z.go(), "PASS", "{path}");
    }
}

#[test]
fn an_unlinked_file_kept_by_another_link_is_refused() {
    let Some(z) = Zdtm::start("linked", PROGRAM, &["linked"]) else {
        return;
    };
    let message = format!(
        "fd 10 of task {} is {}/linked-a (deleted), an unlinked file that still has 1 \
         other hard link(s): it is dumped only with --link-remap (which links it back into \
         its directory)",
        z.pid(),
        z.work().display()
    );
    z.dump_refused(&[], &message);
    assert_eq!(z.go(), "PASS");

    // Mapped, it is refused as the mapping's file.
    let Some(z) = Zdtm::start("linked_map", PROGRAM, &["linked-map"]) else {
        return;
    };
    let message = format!(
        "is {}/linked-a (deleted), an unlinked file that still has 1 other hard link(s)",
        z.work().display()
    );
    let log = z.dump_refused(&[], &message);
    let behind = format!("the file behind /proc/{}/map_files/", z.pid());
    assert!(log.contains(&behind), "{log}");
    assert_eq!(z.go(), "PASS");
}

/// With `--link-remap` the same files are dumped (a `link_remap.ID` hard
/// link made in their directory, kept for the restore) and restored: the
/// fd and the mapping are the other link's file again under their old,
/// unlinked name, and neither the dump's link nor the restore's is left.
#[test]
fn an_unlinked_file_kept_by_another_link_is_restored_with_link_remap() {
    for (test, arg) in [("link_remap", "linked"), ("link_remap_map", "linked-map")] {
        let Some(mut z) = Zdtm::start(test, PROGRAM, &[arg]) else {
            return;
        };
        z.dump(&["--link-remap"]);
        let links: Vec<String> = std::fs::read_dir(z.work())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("link_remap."))
            .collect();
        assert_eq!(
            links.len(),
            1,
            "{test}: link remaps after the dump: {links:?}"
        );
        z.restore(&[]);
        assert_eq!(z.go(), "PASS", "{test}");
    }
}

/// A dump that fails after its link remap was made, or that leaves the
/// tree running, takes the link back (as CRIU does).
#[test]
fn a_link_remap_goes_when_the_dump_fails_or_the_tree_runs_on() {
    let Some(mut z) = Zdtm::start("link_remap_gone", PROGRAM, &["linked"]) else {
        return;
    };
    let left = |z: &Zdtm| {
        std::fs::read_dir(z.work())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("link_remap."))
            .count()
    };
    let images = z.new_dir("failed");
    let pid = z.pid().to_string();
    let (ok, log) = common::run_criu(
        &images,
        &["dump", "-t", &pid, "--link-remap"],
        &[("CRIU_DUMP_FAULT", std::ffi::OsStr::new("images"))],
    );
    assert!(!ok, "the fault did not fail the dump: {log}");
    assert_eq!(left(&z), 0, "a failed dump left its link remap");
    let images = z.new_dir("running");
    z.dump_to(&images, &["--link-remap", "--leave-running"]);
    assert_eq!(
        left(&z),
        0,
        "a dump with --leave-running left its link remap"
    );
    assert_eq!(z.go(), "PASS");
}

/// Whether this kernel makes `memfd_secret` areas, or why not.
fn memfd_secret_here() -> Result<(), String> {
    #[cfg(target_arch = "powerpc64")]
    return Err("no memfd_secret here: not a system call on powerpc64".into());
    #[cfg(not(target_arch = "powerpc64"))]
    {
        // SAFETY: memfd_secret(0) takes no pointer; a new fd is closed.
        let ret = unsafe { criu_arch::syscall1(criu_arch::nr::MEMFD_SECRET, 0) };
        if ret < 0 {
            let errno = std::io::Error::from_raw_os_error(-(ret as i32));
            return Err(format!("no memfd_secret here: {errno}"));
        }
        // SAFETY: `ret` is the fd just made, owned by nothing else.
        drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ret as i32) });
        Ok(())
    }
}

/// memfd_secret memory cannot be read by the tool: its fd and its
/// mapping are refused by name, and the task runs on with its secret.
#[test]
fn memfd_secret_is_refused_by_name() {
    if let Err(why) = memfd_secret_here() {
        return common::skip("secretmem", &why);
    }
    let Some(z) = Zdtm::start("secretmem", PROGRAM, &["secretmem"]) else {
        return;
    };
    let message = format!(
        "fd 10 of task {} is a memfd_secret area, which cannot be dumped",
        z.pid()
    );
    z.dump_refused(&[], &message);
    assert_eq!(z.go(), "PASS");
    let Some(z) = Zdtm::start("secretmem_map", PROGRAM, &["secretmem-map"]) else {
        return;
    };
    let log = z.dump_refused(&[], "a memfd_secret mapping 0x");
    assert!(log.contains(&format!("task {}", z.pid())), "{log}");
    assert_eq!(z.go(), "PASS");
}

/// Huge pages reserved for a test, given back when dropped.
struct HugePages {
    before: String,
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

impl HugePages {
    /// `n` more huge pages, or why not.
    fn reserve(n: u64) -> Result<HugePages, String> {
        let before = std::fs::read_to_string(NR_HUGEPAGES).map_err(|e| e.to_string())?;
        let want = before.trim().parse::<u64>().map_err(|e| e.to_string())? + n;
        std::fs::write(NR_HUGEPAGES, want.to_string()).map_err(|e| e.to_string())?;
        let got = std::fs::read_to_string(NR_HUGEPAGES).unwrap_or_default();
        let guard = HugePages { before };
        if got.trim() != want.to_string() {
            return Err(format!(
                "the kernel gave {} of {want} huge pages",
                got.trim()
            ));
        }
        Ok(guard)
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        let _ = std::fs::write(NR_HUGEPAGES, self.before.trim());
    }
}

#[test]
fn hugetlb_memory_is_refused_naming_the_range() {
    const TEST: &str = "hugetlb";
    let _pages = match HugePages::reserve(3) {
        Ok(p) => p,
        Err(why) => return common::skip(TEST, &format!("no huge pages: {why}")),
    };
    for (mode, what) in [
        ("hugetlb", "a hugetlb mapping (/anon_hugepage) at 0x"),
        ("hugetlb-memfd", "a memfd of huge pages (MFD_HUGETLB)"),
    ] {
        let Some(z) = Zdtm::start(mode, PROGRAM, &[mode]) else {
            return;
        };
        let log = z.dump_refused(&[], what);
        assert!(log.contains(&format!("task {}", z.pid())), "{log}");
        assert_eq!(z.go(), "PASS", "{mode}");
    }
    // A file of a hugetlbfs mount, mapped shared.
    let mnt = common::TempDir::new("hugetlbfs");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "hugetlbfs", "none"])
        .arg(mnt.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        return common::skip(TEST, "cannot mount hugetlbfs here");
    }
    let file = mnt.join("huge");
    let file = file.to_str().unwrap();
    if let Some(z) = Zdtm::start("hugetlbfs", PROGRAM, &["hugetlbfs", file]) {
        let log = z.dump_refused(&[], &format!("a hugetlb mapping ({file}) at 0x"));
        assert!(log.contains(&format!("task {}", z.pid())), "{log}");
        assert_eq!(z.go(), "PASS");
    }
    let _ = std::process::Command::new("umount")
        .arg(mnt.path())
        .status();
}

#[test]
fn a_task_that_never_stops_fails_the_dump_within_timeout() {
    // A vfork parent sleeps in the kernel where PTRACE_INTERRUPT does not
    // stop it, until its child exits (at go).
    let Some(z) = Zdtm::start("never_stops", PROGRAM, &["vfork"]) else {
        return;
    };
    assert!(
        common::wait_until(common::zdtm::TIMEOUT, || common::descendants(z.pid()).len()
            == 1),
        "no vfork child"
    );
    let start = std::time::Instant::now();
    let message = format!(
        "seizing the task: task {} did not stop for our PTRACE_INTERRUPT (is it frozen, or \
         stuck in the kernel?) within 1 s",
        z.pid()
    );
    let log = z.dump_refused(&["--timeout", "1"], &message);
    let took = start.elapsed();
    assert!(took < std::time::Duration::from_secs(10), "{took:?}: {log}");
    assert_eq!(z.go(), "PASS");
}

/// The RPC's `timeout` field bounds the seize as `--timeout` does: the
/// request fails naming the task and the bound, the tree runs on.
#[test]
fn rpc_timeout_bounds_the_seize() {
    let Some(z) = Zdtm::start("never_stops_rpc", PROGRAM, &["vfork"]) else {
        return;
    };
    assert!(
        common::wait_until(common::zdtm::TIMEOUT, || common::descendants(z.pid()).len()
            == 1),
        "no vfork child"
    );
    let images = z.new_dir("rpc-images");
    let dir = std::fs::File::open(&images).unwrap();
    let start = std::time::Instant::now();
    let resp = Client::swrk().call(&CriuReq {
        r#type: CriuReqType::Dump as i32,
        opts: Some(CriuOpts {
            images_dir_fd: dir.as_raw_fd(),
            pid: Some(z.pid()),
            timeout: Some(1),
            log_level: Some(4),
            ..Default::default()
        }),
        ..Default::default()
    });
    let took = start.elapsed();
    assert!(!resp.success, "{resp:?}");
    let want = format!(
        "task {} did not stop for our PTRACE_INTERRUPT (is it frozen, or stuck in the \
         kernel?) within 1 s",
        z.pid()
    );
    let msg = resp.cr_errmsg.clone().unwrap_or_default();
    assert!(msg.contains(&want), "{msg:?}, want {want:?}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert_eq!(common::tracer_pid(z.pid()), Some(0));
    assert_eq!(z.go(), "PASS");
}

#[test]
fn lsm_labels_are_recorded_and_one_a_restore_cannot_set_is_refused() {
    use criu_core::images::{ImageDir, Kind, pb, read_one};
    use criu_core::proc::lsm::{Lsm, profile_for_image};
    let Some(mut z) = Zdtm::start("lsm", PROGRAM, &["count"]) else {
        return;
    };
    z.dump(&[]);
    let images = z.images().to_path_buf();
    let lsm = Lsm::active();
    let inv: pb::InventoryEntry = read_one(&images.join("inventory.img"), Kind::Inventory).unwrap();
    let want = match lsm {
        Lsm::None => pb::Lsmtype::NoLsm,
        Lsm::AppArmor => pb::Lsmtype::Apparmor,
        Lsm::SeLinux => pb::Lsmtype::Selinux,
    };
    assert_eq!(inv.lsmtype, Some(want as i32));
    let core_path = images.join(format!("core-{}.img", z.pid()));
    let core: pb::CoreEntry = read_one(&core_path, Kind::Core).unwrap();
    let creds = |c: &pb::CoreEntry| c.thread_core.as_ref().unwrap().creds.clone().unwrap();
    let ours = criu_core::proc::ProcDir::open_self()
        .unwrap()
        .lsm_label(lsm)
        .unwrap();
    let profile = ours.and_then(|l| profile_for_image(lsm, &l));
    assert_eq!(creds(&core).lsm_profile, profile);

    // A label the restore would not set is refused, and nothing is left.
    let mut foreign = core.clone();
    let tc = foreign.thread_core.as_mut().unwrap();
    tc.creds.as_mut().unwrap().lsm_profile = Some("criu-test-profile".into());
    let dir = ImageDir::new(&images);
    dir.write_one(Kind::Core, z.pid() as u64, &foreign).unwrap();
    let (ok, log) = z.criu_in(&images, &["restore", "-d"]);
    assert!(!ok, "{log}");
    assert!(
        log.contains(&format!(
            "core-{}.img: the task ran under the LSM label \"criu-test-profile\"",
            z.pid()
        )),
        "{log}"
    );
    assert_eq!(common::proc_state(z.pid()), None, "{log}");
    dir.write_one(Kind::Core, z.pid() as u64, &core).unwrap();
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}
