//! A tree whose root has a time namespace of its own (`unshare --time`
//! with clock offsets, through `ns_exec`) is dumped with its clocks
//! (`timens-9.img`, as CRIU numbers it) and restored into a new time
//! namespace whose clocks go on from where they were: the offsets shrink
//! by the time the tree was gone. CRIU 4.1.1 restores our dump, and we
//! restore CRIU's.

mod common;

use std::time::Instant;

use common::zdtm::Zdtm;

const PROGRAM: &str = "zdtm_refused";
/// The offsets the tree starts with (seconds).
const MONO: i64 = 5000;
const BOOT: i64 = 7000;

/// The seconds of a task's `timens_offsets` (monotonic, boottime).
fn offsets(pid: i32) -> (i64, i64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/timens_offsets")).unwrap();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&name)).then(|| f[1].parse::<i64>().unwrap())
            })
            .unwrap()
    };
    (get("monotonic"), get("boottime"))
}

fn time_ns(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/time"))
        .unwrap()
        .display()
        .to_string()
}

fn start(test: &str) -> Option<Zdtm> {
    let ns_exec = common::program_path("ns_exec");
    let time = format!("time={MONO},{BOOT}");
    let wrapper = [ns_exec.to_str().unwrap(), time.as_str(), "--"];
    let z = Zdtm::start_wrapped(test, &wrapper, PROGRAM, &["count"])?;
    assert_eq!(offsets(z.pid()), (MONO, BOOT));
    assert_ne!(time_ns(&z.pid().to_string()), time_ns("self"));
    Some(z)
}

/// The restored task is in a time namespace of its own again, whose
/// offsets are the dumped ones less the time it was gone (within a
/// second of rounding).
fn check_restored(z: &Zdtm, gone: Instant) {
    assert_ne!(time_ns(&z.pid().to_string()), time_ns("self"));
    let away = gone.elapsed().as_secs() as i64;
    let (mono, boot) = offsets(z.pid());
    assert!(
        (MONO - away - 1..=MONO).contains(&mono),
        "monotonic offset {mono}, away {away} s"
    );
    assert!(
        (BOOT - away - 1..=BOOT).contains(&boot),
        "boottime offset {boot}, away {away} s"
    );
}

#[test]
fn a_root_in_its_own_time_namespace_comes_back_with_its_clocks() {
    const TEST: &str = "timens";
    let Some(mut z) = start(TEST) else {
        return;
    };
    let gone = Instant::now();
    z.dump(&["--shell-job"]);
    assert!(z.images().join("timens-9.img").exists());
    // Long enough for the offsets to change by a whole second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    z.restore(&["--shell-job"]);
    check_restored(&z, gone);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn time_namespaces_cross_with_criu() {
    const TEST: &str = "timens_cross";
    let Some(peer) = common::peer::Peer::for_test(TEST) else {
        return;
    };
    let Some(mut z) = start(TEST) else {
        return;
    };
    let pid = z.pid().to_string();
    // CRIU dumps, we restore.
    let gone = Instant::now();
    let (ok, log) = peer.criu(z.images(), &["dump", "-t", &pid, "--shell-job"]);
    assert!(ok, "{log}");
    z.wait_gone();
    z.restore(&["--shell-job"]);
    check_restored(&z, gone);
    // We dump, CRIU restores.
    let ours = z.new_dir("ours");
    let gone = Instant::now();
    z.dump_to(&ours, &["--shell-job"]);
    let (ok, log) = peer.criu(
        &ours,
        &["restore", "-d", "--shell-job", "--pidfile", "restored.pid"],
    );
    assert!(ok, "{log}");
    z.restored_elsewhere();
    check_restored(&z, gone);
    assert_eq!(z.go(), "PASS");
}

/// A CRIU image of a task in its own cgroup namespace (which this restore
/// refused before it could make one, see `zdtm_cgns.rs`) is restored into
/// a new cgroup namespace, in the same cgroups.
#[test]
fn a_criu_image_in_its_own_cgroup_namespace_is_restored() {
    const TEST: &str = "cgroupns_criu_image";
    let Some(peer) = common::peer::Peer::for_test(TEST) else {
        return;
    };
    let ns_exec = common::program_path("ns_exec");
    let wrapper = [ns_exec.to_str().unwrap(), "cgroup", "--"];
    let Some(mut z) = Zdtm::start_wrapped(TEST, &wrapper, PROGRAM, &["count"]) else {
        return;
    };
    let pid = z.pid().to_string();
    let cgroups = |p: &str| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/cgroup")).unwrap();
    let before = cgroups(&pid);
    let (ok, log) = peer.criu(z.images(), &["dump", "-t", &pid, "--shell-job"]);
    assert!(ok, "{log}");
    z.wait_gone();
    // Where the namespace is rooted at every hierarchy's root, CRIU
    // records no root of it (no cgns_prefix): refused by name then.
    if before.lines().all(|l| l.ends_with(":/")) {
        let (ok, log) = z.criu_in(z.images(), &["restore", "-d", "--shell-job"]);
        assert!(!ok, "{log}");
        assert!(log.contains("records no root of it (cgns_prefix)"), "{log}");
        return;
    }
    z.restore(&["--shell-job"]);
    assert_eq!(cgroups(&pid), before);
    assert_ne!(ns(&pid), ns("self"));
    assert_eq!(z.go(), "PASS");
}
