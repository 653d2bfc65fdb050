//! A task in its own user namespace (started through `ns_exec user` or
//! `ns_exec user=0:100000:65536 ...`, as `unshare -r` or `unshare
//! --map-users=...` would), with whatever other namespaces the wrapper
//! gave it. Arguments: `uts` (set a host name in its UTS namespace,
//! which its user namespace owns, and check it), `child` (fork a worker
//! that becomes the mapped non-root uid and gid 1000 with no
//! capabilities left, and checks that after restore: its ids, its empty
//! capability sets, and that it still may not set the host name).
//!
//! After restore the root checks that its `uid_map`, `gid_map` and
//! `setgroups` read as before, its ids, groups and capability sets (as
//! its namespace sees them, `/proc/self/status`) are as before, that it
//! may still set the host name (it is root of the namespace that owns
//! its UTS namespace), and that its counter went on. The harness checks
//! the ids from outside.
#[path = "lib.rs"]
mod zdtm;

use zdtm::ensure;

const HOST: &str = "zdtm-userns";
const WORKER: u32 = 1000;

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))
}

/// The user namespace's state as the task sees it.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    uid_map: String,
    gid_map: String,
    setgroups: String,
    /// Uid, Gid, Groups and the Cap* lines of /proc/self/status.
    status: Vec<String>,
}

impl Seen {
    fn now() -> Result<Seen, String> {
        let status = read("/proc/self/status")?
            .lines()
            .filter(|l| {
                ["Uid:", "Gid:", "Groups:", "Cap"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        Ok(Seen {
            uid_map: read("/proc/self/uid_map")?,
            gid_map: read("/proc/self/gid_map")?,
            setgroups: read("/proc/self/setgroups")?,
            status,
        })
    }

    fn line(&self, prefix: &str) -> &str {
        self.status
            .iter()
            .find(|l| l.starts_with(prefix))
            .map_or("", |s| s.as_str())
    }
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The worker: become uid and gid [`WORKER`] (the kernel drops every
/// capability), wait for go, check.
fn worker(dir: &std::path::Path) -> Result<(), String> {
    let id = |what: &str, r: rustix::io::Result<()>| r.map_err(|e| format!("{what}: {e}"));
    let gid = rustix::process::Gid::from_raw(WORKER);
    let uid = rustix::process::Uid::from_raw(WORKER);
    id("setgroups", rustix::thread::set_thread_groups(&[gid]))?;
    id(
        "setresgid",
        rustix::thread::set_thread_res_gid(gid, gid, gid),
    )?;
    id(
        "setresuid",
        rustix::thread::set_thread_res_uid(uid, uid, uid),
    )?;
    let before = Seen::now()?;
    ensure(before.line("CapEff:") == "CapEff: 0000000000000000", || {
        format!("worker: capabilities left: {:?}", before.status)
    })?;
    zdtm::write_atomic(&dir.join("worker-ready"), "")?;
    zdtm::wait_go(dir)?;
    let after = Seen::now()?;
    ensure(after == before, || {
        format!("worker: {after:?} after restore, was {before:?}")
    })?;
    match rustix::system::sethostname(b"not-allowed") {
        Err(rustix::io::Errno::PERM) => Ok(()),
        other => Err(format!(
            "worker: sethostname without capabilities: {other:?}"
        )),
    }
}

struct State {
    seen: Seen,
    uts: bool,
    worker: Option<i32>,
    dir: std::path::PathBuf,
    count: u64,
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let has = |a: &str| args.rest.iter().any(|r| r == a);
    let uts = has("uts");
    if uts {
        rustix::system::sethostname(HOST.as_bytes()).map_err(|e| format!("sethostname: {e}"))?;
    }
    let seen = Seen::now()?;
    ensure(seen.line("Uid:") == "Uid: 0 0 0 0", || {
        format!("not root of the namespace: {:?}", seen.status)
    })?;
    let worker = if has("child") {
        // The worker (another uid) writes its verdict here too.
        std::fs::set_permissions(
            &args.dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .map_err(|e| format!("chmod {}: {e}", args.dir.display()))?;
        let d = args.dir.clone();
        let pid = zdtm::child(&args.dir, move || worker(&d))?;
        let start = std::time::Instant::now();
        while !args.dir.join("worker-ready").exists() {
            if start.elapsed() > std::time::Duration::from_secs(30) {
                return Err("the worker never got ready".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Some(pid)
    } else {
        None
    };
    Ok(State {
        seen,
        uts,
        worker,
        dir: args.dir.clone(),
        count: 0,
    })
}

fn check(s: State) -> Result<(), String> {
    let now = Seen::now()?;
    ensure(now == s.seen, || {
        format!("{now:?} after restore, was {:?}", s.seen)
    })?;
    ensure(s.count > 0, || "the counter never ran".into())?;
    if s.uts {
        let h = hostname();
        ensure(h == HOST, || format!("host name {h:?}, want {HOST:?}"))?;
        // Root of the user namespace that owns the UTS namespace.
        rustix::system::sethostname(b"renamed").map_err(|e| format!("sethostname: {e}"))?;
    }
    if let Some(pid) = s.worker {
        zdtm::reap_ok(&s.dir, pid, "worker")?;
    }
    Ok(())
}

fn main() {
    zdtm::run(setup, |s| s.count += 1, check);
}
