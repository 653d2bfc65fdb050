//! SysV IPC state of the tasks themselves (beyond the namespace's
//! objects, `zdtm_uts_ipc`): shared memory segments attached in the
//! tasks of a tree with its own IPC namespace are dumped as CRIU's
//! `VMA_AREA_SYSVIPC` VMAs and attached again at their addresses, the
//! contents shared by every attachment (`zdtm_sysv_shm` checks it all),
//! by criu and by CRIU 4.1.1 both ways; what cannot be made again is
//! refused by name with the tree left running: a segment attached in the
//! harness's IPC namespace (as CRIU), one removed while attached, one
//! attached in part.

mod common;

use common::peer::Peer;
use common::zdtm::Zdtm;

const SHM: &str = "zdtm_sysv_shm";

/// Dump with us into `images` (killing the tree, its worker reaped too).
fn dump_to(z: &mut Zdtm, images: &std::path::Path) {
    let kids = common::descendants(z.pid());
    z.dump_to(images, &[]);
    common::reap(&kids);
}

#[test]
fn attached_shared_memory_is_restored_at_its_addresses() {
    let Some(mut z) = Zdtm::start("sysv_shm", SHM, &[]) else {
        return;
    };
    let images = z.images().to_path_buf();
    dump_to(&mut z, &images);
    // The tool's namespaces are 1-8, the root's own ipc namespace 9.
    assert!(images.join("ipcns-shm-9.img").exists());
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

fn refused(test: &str, mode: &str, message: &str) {
    let Some(z) = Zdtm::start(test, SHM, &[mode]) else {
        return;
    };
    let log = z.dump_refused(&[], message);
    assert!(log.contains(&format!("task {}", z.pid())), "{log}");
    assert_eq!(z.go(), "PASS");
}

#[test]
fn shared_memory_attached_in_the_host_ipc_namespace_is_refused() {
    refused(
        "sysv_shm_host",
        "host",
        "cannot be dumped: the tree has no IPC namespace of its own",
    );
}

#[test]
fn a_removed_attached_segment_is_refused() {
    refused(
        "sysv_shm_rmid",
        "rmid",
        "was removed (IPC_RMID) while attached",
    );
}

#[test]
fn a_segment_attached_in_part_is_refused() {
    refused(
        "sysv_shm_partial",
        "partial",
        "is only a part of the segment",
    );
}

/// What CRIU 4.1.1 dumps of the tree we restore, and the other way round.
#[test]
fn attached_shared_memory_crosses_with_criu() {
    const TEST: &str = "sysv_shm_cross";
    let Some(peer) = Peer::for_test(TEST) else {
        return;
    };
    let Some(mut z) = Zdtm::start(TEST, SHM, &[]) else {
        return;
    };
    let pid = z.pid().to_string();
    let kids = common::descendants(z.pid());
    let (ok, log) = peer.criu(z.images(), &["dump", "-t", &pid]);
    assert!(ok, "{log}");
    z.wait_gone();
    common::reap(&kids);
    z.restore(&[]);
    let ours = z.new_dir("ours");
    dump_to(&mut z, &ours);
    let (ok, log) = peer.criu(&ours, &["restore", "-d", "--pidfile", "restored.pid"]);
    assert!(ok, "{log}");
    z.restored_elsewhere();
    assert_eq!(z.go(), "PASS");
}

const SEM: &str = "zdtm_sem_undo";

/// A task with a SysV semaphore undo list (`semop` with `SEM_UNDO`) is
/// refused by name, the root or a worker alike, and the tree runs on
/// (the worker's adjustment is undone at its exit, as it would have
/// been); CRIU loses such lists silently.
#[test]
fn semaphore_undo_lists_are_refused_by_name() {
    for (test, arg, who) in [
        ("sem_undo_root", "undo", 0),
        ("sem_undo_child", "child-undo", 1),
    ] {
        let Some(z) = Zdtm::start(test, SEM, &[arg]) else {
            return;
        };
        let pid = [z.pid(), common::descendants(z.pid())[0]][who];
        let log = z.dump_refused(
            &[],
            "has a SysV semaphore undo list (made by a semop with SEM_UNDO, or by threads \
             sharing one) in an IPC namespace with 1 semaphore set(s)",
        );
        assert!(log.contains(&format!("task {pid}: it has a SysV")), "{log}");
        assert_eq!(z.go(), "PASS");
    }
}

/// Without `SEM_UNDO` the semaphores' values are all there is: dumped and
/// restored.
#[test]
fn semaphores_without_undo_are_restored() {
    let Some(mut z) = Zdtm::start("sem_plain", SEM, &[]) else {
        return;
    };
    let images = z.images().to_path_buf();
    dump_to(&mut z, &images);
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}
