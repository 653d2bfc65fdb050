//! A tree in a cgroup namespace of its own, as `unshare -C` (and runc on
//! cgroup v2) makes one. Arguments: pairs `OUTER INNER` of cgroup
//! directories (through the harness's mounts, INNER below OUTER), one
//! pair per hierarchy. The program joins every OUTER, unshares its cgroup
//! namespace there (so OUTER is the namespace's root), joins every INNER
//! and forks a worker, which inherits the namespace.
//!
//! After restore: `/proc/self/cgroup` reads as it did (paths relative to
//! the namespace's root, so INNER's name below `/`), for the program and,
//! read from its side, for the worker; both are in the same cgroup
//! namespace, which is not the harness's (the restore made a new one).
#[path = "lib.rs"]
mod zdtm;

use zdtm::ensure;

fn join(dir: &str) -> Result<(), String> {
    let f = format!("{dir}/cgroup.procs");
    std::fs::write(&f, "0").map_err(|e| format!("joining {f}: {e}"))
}

/// `/proc/PID/cgroup` without a bare `0::/` line: the kernel shows the
/// v2 hierarchy's line to every task once a cgroup2 is mounted anywhere
/// (a restore that places cgroups on a machine without one mounted, as
/// the VMs, mounts one), which says nothing about the task.
fn view(pid: &str) -> Result<String, String> {
    let f = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&f).map_err(|e| format!("{f}: {e}"))?;
    Ok(text
        .lines()
        .filter(|l| *l != "0::/")
        .map(|l| format!("{l}\n"))
        .collect())
}

fn ns(pid: &str) -> Result<String, String> {
    let f = format!("/proc/{pid}/ns/cgroup");
    std::fs::read_link(&f)
        .map(|l| l.display().to_string())
        .map_err(|e| format!("{f}: {e}"))
}

struct State {
    mine: String,
    worker: i32,
    worker_view: String,
}

fn main() {
    zdtm::run(
        |args| {
            let pairs: Vec<&[String]> = args.rest.chunks(2).collect();
            ensure(
                !pairs.is_empty() && pairs.iter().all(|p| p.len() == 2),
                || "usage: cgns DIR (OUTER INNER)...".into(),
            )?;
            for p in &pairs {
                join(&p[0])?;
            }
            // SAFETY: one thread, no fd table shared with anyone.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }
                .map_err(|e| format!("unshare(CLONE_NEWCGROUP): {e}"))?;
            for p in &pairs {
                join(&p[1])?;
            }
            let mine = view("self")?;
            let dir = args.dir.clone();
            let worker = zdtm::child(&args.dir, move || {
                let before = view("self")?;
                zdtm::wait_go(&dir)?;
                let after = view("self")?;
                // Alive until the program has read its cgroups too (an
                // exited task shows the v1 hierarchies' roots).
                let seen = dir.join("worker-seen");
                let start = std::time::Instant::now();
                while !seen.exists() && !zdtm::waited_too_long(start) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                ensure(before == after, || {
                    format!("worker: /proc/self/cgroup was\n{before}now\n{after}")
                })
            })?;
            let worker_view = view(&worker.to_string())?;
            Ok((
                State {
                    mine,
                    worker,
                    worker_view,
                },
                args.dir.clone(),
            ))
        },
        |_| {},
        |(s, dir)| {
            let now = view("self")?;
            ensure(now == s.mine, || {
                format!("/proc/self/cgroup was\n{}now\n{now}", s.mine)
            })?;
            let w = s.worker.to_string();
            let worker_now = view(&w);
            let (mine, theirs) = (ns("self")?, ns(&w));
            zdtm::write_atomic(&dir.join("worker-seen"), "")?;
            let (worker_now, theirs) = (worker_now?, theirs?);
            ensure(worker_now == s.worker_view, || {
                format!("/proc/{w}/cgroup was\n{}now\n{worker_now}", s.worker_view)
            })?;
            let harness = ns(&zdtm::harness_pid().to_string())?;
            ensure(mine == theirs, || {
                format!("the worker is in {theirs}, the program in {mine}")
            })?;
            ensure(mine != harness, || {
                format!("in the harness's cgroup namespace {harness}")
            })?;
            zdtm::reap_ok(&dir, s.worker, "the worker")
        },
    );
}
