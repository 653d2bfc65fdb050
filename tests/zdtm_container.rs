//! The pieces of a container at once: a tree whose root is pid 1 of its
//! own pid namespace, in its own UTS, IPC and time namespaces (with clock
//! offsets), every task in cgroups of its own (a v1 pids cgroup with a
//! limit, a v2 cgroup), made by `ns_exec` as `unshare --pid --fork --uts
//! --ipc --time` would. It is dumped, its cgroups removed, and restored:
//! each namespace is new again (the program checks its PIDs, parents and
//! threads there itself; `zdtm_uts_ipc.rs` checks what the UTS and IPC
//! namespaces hold), the tasks are back in their cgroups with the limit,
//! and the clocks went on. Mount, network, user and cgroup
//! namespaces are not restored yet (refused by name elsewhere).

mod common;

use std::time::Instant;

use common::zdtm::Zdtm;

const PROGRAM: &str = "zdtm_pid_ns";

fn ns_link(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("no link: {e}"))
}

/// A cgroup directory of the test, removed (once empty) when dropped.
struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        common::wait_until(std::time::Duration::from_secs(2), || {
            std::fs::remove_dir(&self.0).is_ok() || !self.0.exists()
        });
    }
}

fn monotonic_offset(pid: i32) -> i64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/timens_offsets")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("monotonic"))
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_tree_in_pid_uts_ipc_and_time_namespaces_and_cgroups_comes_back_whole() {
    const TEST: &str = "container";
    let (Some(v2), Some(pids)) = (
        common::cgroups::hierarchy(TEST, None),
        common::cgroups::hierarchy(TEST, Some("pids")),
    ) else {
        return;
    };
    let ns_exec = common::program_path("ns_exec");
    let wrapper = [
        ns_exec.to_str().unwrap(),
        "pid",
        "uts",
        "ipc",
        "time=300,400",
        "--",
    ];
    let Some(mut z) = Zdtm::start_wrapped(TEST, &wrapper, PROGRAM, &[]) else {
        return;
    };
    let init = common::descendants(z.pid())[0];
    z.retarget(init);
    let tree: Vec<i32> = std::iter::once(init)
        .chain(common::descendants(init))
        .collect();
    let name = format!("criu-test-{TEST}-{}", std::process::id());
    let (a, p) = (Dir(v2.join(&name)), Dir(pids.join(&name)));
    std::fs::create_dir(&a.0).unwrap();
    std::fs::create_dir(&p.0).unwrap();
    std::fs::write(p.0.join("pids.max"), "43").unwrap();
    for t in &tree {
        std::fs::write(a.0.join("cgroup.procs"), t.to_string()).unwrap();
        std::fs::write(p.0.join("cgroup.procs"), t.to_string()).unwrap();
    }
    let gone = Instant::now();
    z.dump(&["--shell-job"]);
    common::reap(&tree);
    for d in [&a.0, &p.0] {
        assert!(
            common::wait_until(std::time::Duration::from_secs(5), || {
                std::fs::remove_dir(d).is_ok()
            }),
            "cannot remove {}",
            d.display()
        );
    }
    let images = z.images().to_path_buf();
    for img in [
        "utsns-11.img",
        "ipcns-var-10.img",
        "timens-12.img",
        "cgroup.img",
    ] {
        assert!(images.join(img).exists(), "no {img}");
    }
    let root = z.restore_in_new_pid_ns(&images, &["--shell-job"]);
    let me = "self";
    for kind in ["pid", "uts", "ipc", "time"] {
        assert_ne!(
            ns_link(&root.to_string(), kind),
            ns_link(me, kind),
            "{kind}"
        );
    }
    let away = gone.elapsed().as_secs() as i64;
    let off = monotonic_offset(root);
    assert!(
        (300 - away - 1..=300).contains(&off),
        "offset {off}, away {away}"
    );
    let path = format!("/{name}");
    for t in std::iter::once(root).chain(common::descendants(root)) {
        assert_eq!(
            common::cgroups::path_of(t, None),
            Some(path.clone()),
            "task {t}"
        );
        assert_eq!(
            common::cgroups::path_of(t, Some("pids")),
            Some(path.clone()),
            "task {t}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(p.0.join("pids.max"))
            .unwrap()
            .trim(),
        "43"
    );
    assert_eq!(z.go(), "PASS");
}
