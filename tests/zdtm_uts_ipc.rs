//! A tree whose root has its own UTS and/or IPC namespace (made by the
//! `ns_exec` wrapper as `unshare --uts --ipc` would, or by the program
//! itself) is dumped with its host and domain names, its IPC sysctls and
//! SysV objects, and restored into new namespaces filled before it runs
//! (`zdtm_uts_ipc`, which checks every piece itself). Also: a worker left
//! in criu's namespaces is refused (as CRIU does), a fault at the new
//! dump step leaves the tree running, one at the new restore step leaves
//! nothing behind, and the images cross over with CRIU 4.1.1 both ways.

mod common;

use std::path::Path;

use common::peer::Peer;
use common::zdtm::Zdtm;

const PROGRAM: &str = "zdtm_uts_ipc";

/// Start the program in new namespaces `kinds` through `ns_exec` (its
/// arguments: the kinds, then `extra`).
fn start(test: &str, kinds: &[&str], extra: &[&str]) -> Option<Zdtm> {
    let ns_exec = common::program_path("ns_exec");
    let mut wrapper = vec![ns_exec.to_str().unwrap()];
    wrapper.extend_from_slice(kinds);
    wrapper.push("--");
    let mut args = kinds.to_vec();
    args.extend_from_slice(extra);
    Zdtm::start_wrapped(test, &wrapper, PROGRAM, &args)
}

/// Dump the tree with us (killing it), its worker reaped too (it comes
/// to us, the subreaper, and must be reaped before its PID is free).
fn dump(z: &mut Zdtm) {
    let kids = common::descendants(z.pid());
    z.dump(&[]);
    common::reap(&kids);
}

fn ns_link(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("no link: {e}"))
}

/// The restored task is in new namespaces of `kinds`, not ours.
fn assert_own_namespaces(z: &Zdtm, kinds: &[&str]) {
    let pid = z.pid().to_string();
    for kind in kinds {
        assert_ne!(
            ns_link(&pid, kind),
            ns_link("self", kind),
            "restored task {pid} is in our {kind} namespace"
        );
    }
}

fn assert_images(images: &Path, names: &[&str]) {
    for n in names {
        assert!(images.join(n).exists(), "no {n} in {}", images.display());
    }
}

#[test]
fn own_uts_and_ipc_namespaces_with_a_worker_are_restored() {
    let Some(mut z) = start("uts_ipc", &["uts", "ipc"], &["child"]) else {
        return;
    };
    dump(&mut z);
    // CRIU's ids and names: the tool's namespaces are 1-8, the root's own
    // ipc 9 and uts 10.
    assert_images(
        z.images(),
        &[
            "utsns-10.img",
            "ipcns-var-9.img",
            "ipcns-shm-9.img",
            "ipcns-sem-9.img",
            "ipcns-msg-9.img",
        ],
    );
    z.restore(&[]);
    assert_own_namespaces(&z, &["uts", "ipc"]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn own_uts_namespace_alone_is_restored() {
    let Some(mut z) = start("uts_only", &["uts"], &[]) else {
        return;
    };
    dump(&mut z);
    assert_images(z.images(), &["utsns-9.img"]);
    assert!(!z.images().join("ipcns-var-9.img").exists());
    z.restore(&[]);
    assert_own_namespaces(&z, &["uts"]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn own_ipc_namespace_unshared_by_the_program_is_restored() {
    let Some(mut z) = Zdtm::start("ipc_unshare", PROGRAM, &["ipc", "unshare", "child"]) else {
        return;
    };
    dump(&mut z);
    assert_images(z.images(), &["ipcns-var-9.img", "ipcns-msg-9.img"]);
    assert!(!z.images().join("utsns-9.img").exists());
    z.restore(&[]);
    assert_own_namespaces(&z, &["ipc"]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_worker_left_in_criu_namespaces_is_refused() {
    // The worker is forked before the root unshares: CRIU cannot restore
    // such a tree either.
    let Some(z) = Zdtm::start(
        "uts_ipc_worker_outside",
        PROGRAM,
        &["uts", "ipc", "unshare", "child-first"],
    ) else {
        return;
    };
    let worker = common::descendants(z.pid());
    assert_eq!(worker.len(), 1, "{worker:?}");
    let log = z.dump_refused(&[], "not in the root task's own ipc namespace");
    assert!(
        log.contains(&format!("task {} is in ipc:[", worker[0])),
        "{log}"
    );
    assert_eq!(z.go(), "PASS");
}

/// The keyed segment kept attached is attached again at its address
/// (see `zdtm_sysv.rs` for attachments in depth).
#[test]
fn an_attached_shared_memory_segment_is_restored() {
    let Some(mut z) = start("uts_ipc_shm_attached", &["uts", "ipc"], &["shm-attached"]) else {
        return;
    };
    dump(&mut z);
    z.restore(&[]);
    assert_own_namespaces(&z, &["uts", "ipc"]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_fault_at_the_namespace_dump_step_leaves_the_tree_running() {
    let Some(z) = start("uts_ipc_dump_fault", &["uts", "ipc"], &["child"]) else {
        return;
    };
    let images = z.new_dir("faulted");
    let pid = z.pid().to_string();
    let (ok, log) = common::run_criu(
        &images,
        &["dump", "-t", &pid],
        &[("CRIU_DUMP_FAULT", "namespaces".as_ref())],
    );
    assert!(!ok, "the dump did not fail: {log}");
    assert!(log.contains("namespaces"), "{log}");
    for t in std::iter::once(z.pid()).chain(common::descendants(z.pid())) {
        assert_eq!(common::tracer_pid(t), Some(0), "task {t}: {log}");
    }
    assert_eq!(z.go(), "PASS");
}

#[test]
fn a_fault_at_the_namespace_restore_step_leaves_nothing_behind() {
    let Some(mut z) = start("uts_ipc_restore_fault", &["uts", "ipc"], &["child"]) else {
        return;
    };
    let tree: Vec<i32> = std::iter::once(z.pid())
        .chain(common::descendants(z.pid()))
        .collect();
    dump(&mut z);
    let (ok, log) = common::run_criu(
        z.images(),
        &["restore", "-d"],
        &[("CRIU_RESTORE_FAULT", "namespaces".as_ref())],
    );
    assert!(!ok, "the restore did not fail: {log}");
    assert!(log.contains("fault injected at namespaces"), "{log}");
    // No task of the tree is left (its namespaces went with it; the
    // killed ones come to us, the subreaper, to be reaped): the PIDs are
    // free again, and a second restore gets them.
    let gone = common::wait_until(common::zdtm::TIMEOUT, || {
        for &p in &tree {
            let _ = rustix::process::waitpid(
                rustix::process::Pid::from_raw(p),
                rustix::process::WaitOptions::NOHANG,
            );
        }
        tree.iter().all(|&p| common::proc_state(p).is_none())
    });
    assert!(gone, "tasks of {tree:?} left behind: {log}");
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

/// Dumped and restored by CRIU alone: the program's verdict.
fn criu_alone(peer: &Peer, test: &str, extra: &[&str]) -> Option<String> {
    let mut z = start(test, &["uts", "ipc"], extra)?;
    let pid = z.pid().to_string();
    let kids = common::descendants(z.pid());
    let (ok, log) = peer.criu(z.images(), &["dump", "-t", &pid]);
    assert!(ok, "CRIU did not dump: {log}");
    z.wait_gone();
    common::reap(&kids);
    let (ok, log) = peer.criu(z.images(), &["restore", "-d", "--pidfile", "restored.pid"]);
    assert!(ok, "CRIU did not restore: {log}");
    z.restored_elsewhere();
    Some(z.go())
}

#[test]
fn criu_alone_loses_a_raised_msg_qbytes() {
    // Why the crossing to CRIU leaves msg_qbytes as it was made: CRIU
    // 4.1.1 restores a queue with the namespace's msgmnb, whatever it had.
    let Some(peer) = Peer::for_test("uts_ipc_criu_alone") else {
        return;
    };
    let Some(verdict) = criu_alone(&peer, "uts_ipc_criu_alone", &["child"]) else {
        return;
    };
    assert!(
        verdict.starts_with("FAIL: msg_qbytes 32768, want 20000"),
        "{verdict}"
    );
}

#[test]
fn criu_restores_our_images_of_own_uts_and_ipc_namespaces() {
    let Some(peer) = Peer::for_test("uts_ipc_to_criu") else {
        return;
    };
    // CRIU would lose a raised msg_qbytes (see above).
    let Some(mut z) = start(
        "uts_ipc_to_criu",
        &["uts", "ipc"],
        &["child", "default-qbytes"],
    ) else {
        return;
    };
    dump(&mut z);
    let (ok, log) = peer.criu(z.images(), &["restore", "-d", "--pidfile", "restored.pid"]);
    assert!(ok, "CRIU did not restore our images: {log}");
    assert!(log.contains("Restoring IPC namespace"), "{log}");
    z.restored_elsewhere();
    assert_own_namespaces(&z, &["uts", "ipc"]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn we_restore_criu_images_of_own_uts_and_ipc_namespaces() {
    let Some(peer) = Peer::for_test("uts_ipc_from_criu") else {
        return;
    };
    let Some(mut z) = start("uts_ipc_from_criu", &["uts", "ipc"], &["child"]) else {
        return;
    };
    let pid = z.pid().to_string();
    let kids = common::descendants(z.pid());
    let (ok, log) = peer.criu(z.images(), &["dump", "-t", &pid]);
    assert!(ok, "CRIU did not dump: {log}");
    z.wait_gone();
    common::reap(&kids);
    assert_images(z.images(), &["utsns-10.img", "ipcns-shm-9.img"]);
    z.restore(&[]);
    assert_own_namespaces(&z, &["uts", "ipc"]);
    assert_eq!(z.go(), "PASS");
}

/// Images whose ids give a task namespaces that cannot be restored are
/// refused before any task is created; put back, they restore.
#[test]
fn restore_refuses_images_of_other_own_or_nested_namespaces() {
    use criu_core::images::{Kind, pb, read_one, write_one};
    let Some(mut z) = start("uts_ipc_bad_ids", &["uts"], &["child"]) else {
        return;
    };
    let worker = common::descendants(z.pid());
    assert_eq!(worker.len(), 1, "{worker:?}");
    dump(&mut z);
    let ids_path = |pid: i32| z.images().join(Kind::Ids.file_name(pid as u64));
    let edit = |pid: i32, f: &dyn Fn(&mut pb::TaskKobjIdsEntry)| {
        let path = ids_path(pid);
        let orig: pb::TaskKobjIdsEntry = read_one(&path, Kind::Ids).unwrap();
        let mut ids = orig;
        f(&mut ids);
        write_one(&path, Kind::Ids, &ids).unwrap();
        orig
    };
    let refused = |message: &str| {
        let (ok, log) = common::run_criu(z.images(), &["restore", "-d"], &[]);
        assert!(!ok, "restored: {log}");
        assert!(log.contains(message), "no {message:?}: {log}");
        assert!(!log.contains("the root forked"), "{log}");
        assert_eq!(common::proc_state(z.pid()), None);
    };
    // The root in a user namespace of its own, its worker left in the
    // tool's: a nested user namespace.
    let orig = edit(z.pid(), &|ids| ids.user_ns_id = Some(99));
    refused(&format!(
        "task {} is in another user namespace (user_ns_id 7) than the root task",
        worker[0]
    ));
    write_one(&ids_path(z.pid()), Kind::Ids, &orig).unwrap();
    // The worker in another uts namespace than the root's.
    let orig = edit(worker[0], &|ids| ids.uts_ns_id = Some(77));
    refused(&format!(
        "task {} is in another uts namespace (uts_ns_id 77) than the root task",
        worker[0]
    ));
    write_one(&ids_path(worker[0]), Kind::Ids, &orig).unwrap();
    z.restore(&[]);
    assert_own_namespaces(&z, &["uts"]);
    assert_eq!(z.go(), "PASS");
}
