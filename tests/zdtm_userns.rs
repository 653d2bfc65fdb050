//! A tree whose root is in its own user namespace, one level below
//! criu's (as `unshare -r` or `unshare --map-users=0:100000:65536` make
//! it, here through the `ns_exec` test program), alone or with its own
//! pid, UTS, IPC and cgroup namespaces, which the user namespace owns:
//! it dumps with the namespace's maps and `setgroups` (`userns-ID.img`,
//! numbered as CRIU numbers it) and restores into a new user namespace
//! whose maps the tool writes, made first so that it owns the others.
//! The program (`zdtm_userns`) checks its maps, ids, groups and
//! capabilities inside, that it may still set its host name, a worker
//! that became a mapped non-root uid; the harness checks the ids from
//! outside. What is not done yet is refused by name with the tree left
//! running: with its own net, mount or time namespace besides, more than
//! one task without a pid namespace, a nested user namespace. A fault at
//! the restore step after the user namespace is made leaves nothing
//! behind. With CRIU 4.1.1 both ways as far as CRIU goes here.

mod common;

use common::peer::Peer;
use common::zdtm::Zdtm;
use criu_core::images::{Kind, pb, read_one};

const PROGRAM: &str = "zdtm_userns";
/// The wide map the tests give.
const WIDE: &str = "user=0:100000:65536";

/// Start the program through `ns_exec KINDS --` with `args`.
fn start(test: &str, kinds: &[&str], args: &[&str]) -> Option<Zdtm> {
    let ns_exec = common::program_path("ns_exec");
    let mut wrapper = vec![ns_exec.to_str().unwrap()];
    wrapper.extend_from_slice(kinds);
    wrapper.push("--");
    Zdtm::start_wrapped(test, &wrapper, PROGRAM, args)
}

/// [`start`] with `pid` among `kinds`: the tree's root is the init that
/// `ns_exec` forked.
fn start_init(test: &str, kinds: &[&str], args: &[&str]) -> Option<Zdtm> {
    let mut z = start(test, kinds, args)?;
    let kids = common::descendants(z.pid());
    z.retarget(kids[0]);
    Some(z)
}

fn link(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("no link: {e}"))
}

fn proc_text(pid: i32, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{name}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/{name}: {e}"))
}

/// Task `pid`'s user namespace from outside: its uid and gid maps (one
/// line each, spaces squeezed), `setgroups`, and the `Uid:`/`Gid:` lines
/// of its status (ids as criu's namespace sees them).
fn outside(pid: i32) -> (String, String, String, String) {
    let squeeze = |t: String| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let status = proc_text(pid, "status");
    let ids = status
        .lines()
        .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:"))
        .map(|l| squeeze(l.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    (
        squeeze(proc_text(pid, "uid_map")),
        squeeze(proc_text(pid, "gid_map")),
        proc_text(pid, "setgroups").trim().to_string(),
        ids,
    )
}

/// The restored `pid` is in a user namespace of its own, and its `kinds`
/// namespaces too (not criu's; the dead tree's inode numbers are not
/// compared: the kernel reuses them).
fn assert_new_namespaces(pid: i32, kinds: &[&str]) {
    let me = std::process::id() as i32;
    for kind in std::iter::once(&"user").chain(kinds) {
        assert_ne!(link(pid, kind), link(me, kind), "{kind} namespace is ours");
    }
}

fn user_ns_id(images: &std::path::Path, pid: i32) -> Option<u32> {
    let ids: pb::TaskKobjIdsEntry =
        read_one(&images.join(Kind::Ids.file_name(pid as u64)), Kind::Ids).unwrap();
    ids.user_ns_id
}

#[test]
fn a_task_in_a_user_namespace_unshare_r_made_restores() {
    let Some(mut z) = start("userns_r", &["user"], &[]) else {
        return;
    };
    let pid = z.pid();
    let before = outside(pid);
    assert_eq!(
        (&before.0[..], &before.1[..], &before.2[..]),
        ("0 0 1", "0 0 1", "deny")
    );
    z.dump(&[]);
    // CRIU's numbering: the tool's namespaces 1-8, the root's own user
    // namespace 9.
    assert!(z.images().join("userns-9.img").exists());
    assert_eq!(user_ns_id(z.images(), pid), Some(9));
    z.restore(&[]);
    assert_new_namespaces(pid, &[]);
    assert_eq!(outside(pid), before);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn mapped_root_with_its_pid_uts_ipc_namespaces_and_a_setuid_worker_restores() {
    let kinds = [WIDE, "pid", "uts", "ipc"];
    let Some(mut z) = start_init("userns_wide", &kinds, &["uts", "child"]) else {
        return;
    };
    let init = z.pid();
    let worker = common::descendants(init)[0];
    let root_before = outside(init);
    let worker_before = outside(worker);
    assert_eq!(
        root_before,
        (
            "0 100000 65536".into(),
            "0 100000 65536".into(),
            "allow".into(),
            "Uid: 100000 100000 100000 100000, Gid: 100000 100000 100000 100000".into()
        )
    );
    assert!(
        worker_before.3.starts_with("Uid: 101000 101000"),
        "{worker_before:?}"
    );
    z.dump(&[]);
    // pid 9, ipc 10, uts 11, then user 12: what CRIU 4.1.1 wrote for the
    // same tree (its dump then failed in the parasite, see below).
    for name in ["userns-12.img", "utsns-11.img", "ipcns-var-10.img"] {
        assert!(z.images().join(name).exists(), "no {name}");
    }
    let images = z.images().to_path_buf();
    let root = z.restore_in_new_pid_ns(&images, &[]);
    assert_new_namespaces(root, &["pid", "uts", "ipc"]);
    assert_eq!(outside(root), root_before);
    let kids = common::descendants(root);
    assert_eq!(kids.len(), 1, "{kids:?}");
    assert_eq!(outside(kids[0]), worker_before);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn mapped_root_with_setgroups_denied_and_its_cgroup_namespace_restores() {
    let kinds = ["user=0:100000:65536:deny", "pid", "cgroup"];
    let Some(mut z) = start_init("userns_cgroup", &kinds, &[]) else {
        return;
    };
    let init = z.pid();
    let before = outside(init);
    assert_eq!(before.2, "deny");
    let cgroup_before = proc_text(init, "cgroup");
    z.dump(&[]);
    let images = z.images().to_path_buf();
    let root = z.restore_in_new_pid_ns(&images, &[]);
    assert_new_namespaces(root, &["pid", "cgroup"]);
    assert_eq!(outside(root), before);
    // Its cgroups as criu sees them are those it had (the harness's).
    assert_eq!(proc_text(root, "cgroup"), cgroup_before);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn what_is_not_done_yet_is_refused_at_dump_with_the_tree_running() {
    for (test, kinds, message) in [
        (
            "userns_net",
            &["user", "net"][..],
            "is in its own user namespace and its own net namespace",
        ),
        (
            "userns_mnt",
            &["user", "mnt"][..],
            "is in its own user namespace and its own mnt namespace",
        ),
    ] {
        let Some(z) = start(test, kinds, &[]) else {
            return;
        };
        let log = z.dump_refused(&[], message);
        assert!(log.contains(&format!("task {} ", z.pid())), "{log}");
        assert!(!log.contains("Seized "), "refused after seizing: {log}");
        assert_eq!(z.go(), "PASS", "{test}");
    }
    // A worker beside the root, without a pid namespace of the tree's.
    let Some(z) = start("userns_two_tasks", &[WIDE], &["child"]) else {
        return;
    };
    z.dump_refused(
        &[],
        "is in its own user namespace without a pid namespace of its own, with 2 tasks",
    );
    assert_eq!(z.go(), "PASS");
}

/// Images (CRIU's, say) whose root has its own user namespace and its
/// own time namespace are refused at restore, by name, before any task
/// is created; put back, they restore.
#[test]
fn restore_refuses_a_user_namespace_with_a_time_namespace_of_the_tree() {
    let Some(mut z) = start("userns_bad_ids", &["user"], &[]) else {
        return;
    };
    let pid = z.pid();
    z.dump(&[]);
    let path = z.images().join(Kind::Ids.file_name(pid as u64));
    let orig: pb::TaskKobjIdsEntry = read_one(&path, Kind::Ids).unwrap();
    let mut ids = orig;
    ids.time_ns_id = Some(55);
    criu_core::images::write_one(&path, Kind::Ids, &ids).unwrap();
    let (ok, log) = common::run_criu(z.images(), &["restore", "-d"], &[]);
    assert!(!ok, "restored: {log}");
    assert!(
        log.contains("is in its own user namespace and its own time namespace"),
        "{log}"
    );
    assert!(!log.contains("the root forked"), "{log}");
    assert_eq!(common::proc_state(pid), None);
    criu_core::images::write_one(&path, Kind::Ids, &orig).unwrap();
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_user_namespace_nested_in_another_is_refused() {
    // The root two levels below criu's: the second ns_exec maps its root
    // to the first namespace's.
    let ns_exec = common::program_path("ns_exec");
    let n = ns_exec.to_str().unwrap();
    let wrapper = [n, "user", "--", n, "user", "--"];
    let Some(z) = Zdtm::start_wrapped("userns_nested", &wrapper, PROGRAM, &[]) else {
        return;
    };
    let log = z.dump_refused(&[], "is in a user namespace (user:[");
    assert!(
        log.contains("nested below another one than criu's"),
        "{log}"
    );
    assert_eq!(z.go(), "PASS");
}

/// The processes whose uid map reads `map` (squeezed), zombies too.
fn with_map(map: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/uid_map"))
                .is_ok_and(|t| t.split_whitespace().collect::<Vec<_>>().join(" ") == map)
        })
        .collect()
}

#[test]
fn a_fault_after_the_user_namespace_is_made_leaves_nothing_behind() {
    // A map of its own, which no other test's tasks have.
    const MAP: &str = "0 200000 65536";
    let kinds = ["user=0:200000:65536", "pid", "uts", "ipc"];
    let Some(mut z) = start_init("userns_fault", &kinds, &["uts", "child"]) else {
        return;
    };
    z.dump(&[]);
    assert!(with_map(MAP).is_empty(), "the dumped tree is still there");
    let images = z.images().to_path_buf();
    let (ok, log) = common::run_criu(
        &images,
        &["restore", "-d"],
        &[("CRIU_RESTORE_FAULT", "namespaces".as_ref())],
    );
    assert!(!ok, "the restore did not fail: {log}");
    assert!(log.contains("fault injected at namespaces"), "{log}");
    assert!(log.contains("the root forked"), "{log}");
    // No task in such a namespace is left (the killed ones come to us,
    // the subreaper, and are reaped here, each by its PID).
    let gone = common::wait_until(common::zdtm::TIMEOUT, || {
        let left = with_map(MAP);
        for &p in &left {
            let _ = rustix::process::waitpid(
                rustix::process::Pid::from_raw(p),
                rustix::process::WaitOptions::NOHANG,
            );
        }
        left.is_empty()
    });
    assert!(gone, "tasks left behind: {:?}: {log}", with_map(MAP));
    let root = z.restore_in_new_pid_ns(&images, &[]);
    assert_eq!(outside(root).0, MAP);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn we_restore_criu_s_images_of_a_user_namespace() {
    let Some(peer) = Peer::for_test("userns_from_criu") else {
        return;
    };
    // Its map written from outside, setgroups left allowed: CRIU's image
    // has no place for a denied one (restored allowed, see below).
    let Some(mut z) = start("userns_from_criu", &["user=0:0:1"], &[]) else {
        return;
    };
    let pid = z.pid();
    let before = outside(pid);
    let (ok, log) = peer.criu(
        z.images(),
        &[
            "dump",
            "-t",
            &pid.to_string(),
            "--cgroup-dump-controller",
            "pids",
        ],
    );
    assert!(ok, "CRIU did not dump: {log}");
    z.wait_gone();
    assert_eq!(user_ns_id(z.images(), pid), Some(9));
    let e: pb::UsernsEntry = read_one(&z.images().join("userns-9.img"), Kind::Userns).unwrap();
    assert_eq!(e.setgroups_deny, None, "CRIU wrote setgroups");
    z.restore(&[]);
    assert_eq!(outside(pid), before);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn criu_s_images_lose_a_denied_setgroups() {
    let Some(peer) = Peer::for_test("userns_from_criu_deny") else {
        return;
    };
    let Some(mut z) = start("userns_from_criu_deny", &["user"], &[]) else {
        return;
    };
    let pid = z.pid().to_string();
    let (ok, log) = peer.criu(
        z.images(),
        &["dump", "-t", &pid, "--cgroup-dump-controller", "pids"],
    );
    assert!(ok, "CRIU did not dump: {log}");
    z.wait_gone();
    z.restore(&[]);
    let verdict = z.go();
    assert!(
        verdict.starts_with("FAIL:") && verdict.contains("setgroups: \"allow\\n\""),
        "{verdict}"
    );
}

#[test]
fn criu_cannot_restore_a_user_namespace_without_a_mount_namespace() {
    // CRIU 4.1.1 mounts a proc of its own from inside the new user
    // namespace, which criu's mount namespace does not let it: it fails
    // with our images as with its own (and its dump of a tree with a wide
    // map fails in the parasite, which cannot make its directory).
    let Some(peer) = Peer::for_test("userns_to_criu") else {
        return;
    };
    let Some(mut z) = start("userns_to_criu", &["user=0:0:1"], &[]) else {
        return;
    };
    z.dump(&[]);
    let (ok, log) = peer.criu(z.images(), &["restore", "-d", "--pidfile", "restored.pid"]);
    assert!(!ok, "CRIU restored it after all: {log}");
    assert!(log.contains("Unable to open the proc file system"), "{log}");
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}
