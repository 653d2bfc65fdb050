//! Benchmark: how dump and restore time, frozen time and the tool's own
//! memory grow with the size of what is dumped, side by side with a CRIU
//! binary in the same run. Images on tmpfs (`/dev/shm`).
//!
//! ```sh
//! cargo build --release && cargo bench --bench scale
//! cargo bench --bench scale -- --peer /usr/sbin/criu   # or CRIU_PEER=...
//! cargo bench --bench scale -- --sweep fds --sweep procs=1,10,100 --repeat 5
//! ```
//!
//! Sweeps (each varies one dimension of the workload, the others at their
//! base value: 1 process, 1 thread, 10 fds, 10 mappings, 1 MiB):
//! `procs` 1, 10, 100, 500 (a 4-ary tree); `threads` 1, 100, 1000;
//! `fds` 10, 1000, 2000, 10000 per process; `maps` 10, 1000, 30000 per
//! process; `mem` 64, 1024, 4096 MiB (a point is skipped, saying so, when
//! `MemAvailable` cannot hold it three times over); `conns` 1, 100, 1000
//! established TCP connections of the root to a peer outside the tree
//! (a thread of this benchmark, see [`conns`]), dumped and restored with
//! `--tcp-established` by both tools (each with its own default network
//! lock: ours nftables over netlink, CRIU's iptables).
//!
//! Every run starts a fresh workload (this binary in `workload` mode, see
//! [`workload`]), dumps it with `criu dump` (which kills it), waits until
//! every task is gone, restores it with `criu restore -d`, and has every
//! restored process check its own state; a run where any process finds
//! something changed fails the benchmark instead of being timed. Each point
//! is run `--repeat` times (default 3) per tool, the tools alternating,
//! and the medians are reported: wall time of the dump and the restore
//! (spawn to reap of the criu process), the frozen time from `stats-dump`,
//! and the peak RSS of each criu process (`ru_maxrss` from `wait4`).
//! Per sweep it fits the growth exponent b of time ≈ a·nᵇ (least squares
//! over the points in log-log) and gives the exponent of the last step.
//!
//! The peer: `--peer PATH` or `$CRIU_PEER` (any CRIU that runs here);
//! without one only this tool is measured. The tool measured as "ours":
//! `$CRIU_BIN` or `target/release/criu`. Needs root.

mod conns;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use criu_core::images::{Kind, pb, read_one};
use criu_core::sys::wait::wait4;
use workload::Shape;

use report::{Point, Sample};

const BASE: Shape = Shape {
    procs: 1,
    threads: 1,
    fds: 10,
    maps: 10,
    mem_mib: 1,
    conns: 0,
};

/// The sweeps and their default points.
const SWEEPS: &[(&str, &[usize])] = &[
    ("procs", &[1, 10, 100, 500]),
    ("threads", &[1, 100, 1000]),
    ("fds", &[10, 1000, 2000, 10000]),
    ("maps", &[10, 1000, 30000]),
    ("mem", &[64, 1024, 4096]),
    ("conns", &[1, 100, 1000]),
];

/// Bound on the workload's set-up and on its processes' answers.
const WAIT: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("workload") {
        return workload::main(&args[2..]);
    }
    // `cargo test --benches` runs this without `--bench`: it is not a test.
    if !args.iter().any(|a| a == "--bench") {
        println!("scale: a benchmark; run it with `cargo bench --bench scale`");
        return ExitCode::SUCCESS;
    }
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which tool a run uses.
#[derive(Clone, Debug)]
pub struct Tool {
    pub name: &'static str,
    pub bin: PathBuf,
}

struct Config {
    sweeps: Vec<(String, Vec<usize>)>,
    repeat: usize,
    tools: Vec<Tool>,
    root: PathBuf,
}

fn bench(args: &[String]) -> Result<(), String> {
    let cfg = config(args)?;
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    for t in &cfg.tools {
        println!("{}: {}", t.name, t.bin.display());
    }
    if cfg.tools.len() == 1 {
        println!("(no CRIU peer: give --peer PATH or CRIU_PEER to compare)");
    }
    std::fs::create_dir_all(&cfg.root).map_err(|e| format!("{}: {e}", cfg.root.display()))?;
    let _rm = RemoveDir(cfg.root.clone());
    let mut all = Vec::new();
    let mut failed = Vec::new();
    for (name, points) in &cfg.sweeps {
        let mut rows = Vec::new();
        println!("\n== sweep {name}: {points:?}");
        if name == "mem" {
            report::dd_reference(&cfg.root, points, cfg.repeat);
        }
        for &n in points {
            let shape = shape_of(name, n);
            if let Some(why) = too_big(&shape) {
                println!("   {name}={n}: skipped: {why}");
                continue;
            }
            let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); cfg.tools.len()];
            let mut dead = vec![false; cfg.tools.len()];
            for r in 0..cfg.repeat {
                for (ti, tool) in cfg.tools.iter().enumerate() {
                    if dead[ti] {
                        continue;
                    }
                    let dir = cfg.root.join(format!("{name}-{n}-{}-{r}", tool.name));
                    // A failed run is reported and leaves the point out for
                    // that tool (never timed), and the bench fails at the end.
                    let s = match one_run(tool, &shape, &dir) {
                        Ok(s) => s,
                        Err(e) => {
                            let e = format!("{name}={n}, {}: {e}", tool.name);
                            println!("   FAILED: {e}");
                            failed.push(e);
                            samples[ti].clear();
                            dead[ti] = true;
                            continue;
                        }
                    };
                    println!(
                        "   {name}={n} {:<5} run {r}: dump {:.3} s (frozen {:.3}), restore {:.3} s, rss {} / {} KiB: PASS",
                        tool.name, s.dump, s.frozen, s.restore, s.dump_rss, s.restore_rss
                    );
                    samples[ti].push(s);
                }
            }
            rows.push(Point { n, samples });
        }
        report::sweep_table(name, &cfg.tools, &rows);
        all.push((name.clone(), rows));
    }
    report::summary(&cfg.tools, &all);
    match failed.len() {
        0 => Ok(()),
        n => Err(format!("{n} runs failed:\n{}", failed.join("\n"))),
    }
}

fn config(args: &[String]) -> Result<Config, String> {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let mut sweeps = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if a != "--sweep" {
            continue;
        }
        let spec = args.get(i + 1).ok_or("--sweep needs NAME[=N,N,...]")?;
        let (name, pts) = spec.split_once('=').unwrap_or((spec, ""));
        let Some((_, default)) = SWEEPS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = SWEEPS.iter().map(|s| s.0).collect();
            return Err(format!("--sweep {name}: not one of {names:?}"));
        };
        let points = if pts.is_empty() {
            default.to_vec()
        } else {
            pts.split(',')
                .map(|p| {
                    p.trim()
                        .parse::<usize>()
                        .map_err(|e| format!("{spec}: {e}"))
                })
                .collect::<Result<_, _>>()?
        };
        sweeps.push((name.to_string(), points));
    }
    if sweeps.is_empty() {
        sweeps = SWEEPS
            .iter()
            .map(|(n, p)| (n.to_string(), p.to_vec()))
            .collect();
    }
    let repeat = match value("--repeat").or_else(|| std::env::var("BENCH_REPEAT").ok()) {
        None => 3,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(format!("--repeat {s}: want a positive count"))?,
    };
    let mut tools = vec![Tool {
        name: "ours",
        bin: our_bin()?,
    }];
    if let Some(p) = value("--peer").or_else(|| std::env::var("CRIU_PEER").ok()) {
        tools.push(Tool {
            name: "criu",
            bin: PathBuf::from(p),
        });
    }
    Ok(Config {
        sweeps,
        repeat,
        tools,
        root: PathBuf::from(format!("/dev/shm/criu-scale-{}", std::process::id())),
    })
}

fn shape_of(sweep: &str, n: usize) -> Shape {
    let mut s = BASE;
    match sweep {
        "procs" => s.procs = n,
        "threads" => s.threads = n,
        "fds" => s.fds = n,
        "maps" => s.maps = n,
        "conns" => s.conns = n,
        _ => s.mem_mib = n,
    }
    s
}

/// Why a shape does not fit this machine now, if it does not: the workload,
/// its images and the restored workload are all in memory at once.
fn too_big(s: &Shape) -> Option<String> {
    let per_proc = s.mem_mib + s.maps * 4096 / (1 << 20) + 1;
    let need = 3 * per_proc * s.procs + 512;
    let avail = mem_available_mib()?;
    (avail < need).then(|| format!("needs ~{need} MiB, {avail} MiB available"))
}

fn mem_available_mib() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// `$CRIU_BIN`, else `target/release/criu` beside this bench's profile dir.
fn our_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CRIU_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or("no target directory above the bench binary")?;
    let criu = target.join("release").join("criu");
    match criu.exists() {
        true => Ok(criu),
        false => Err(format!(
            "{} is not built: run `cargo build --release` first",
            criu.display()
        )),
    }
}

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every process a run may have left: killed and reaped on the way out.
struct Cleanup {
    pids: Vec<i32>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // The workload is a session and group of its own (so is the
        // restored one): its group first, then every process it named.
        if let Some(&root) = self.pids.first()
            && let Some(p) = rustix::process::Pid::from_raw(root)
        {
            let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
        }
        for &pid in &self.pids {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        let _ = wait_gone(&self.pids, Duration::from_secs(30));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One dump and restore of a fresh workload with `tool`, checked.
fn one_run(tool: &Tool, shape: &Shape, dir: &Path) -> Result<Sample, String> {
    let images = dir.join("images");
    for d in ["images", "ready", "res", "files"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // Image directories must not be writable by others.
    let _ = std::fs::set_permissions(&images, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let mut guard = Cleanup {
        pids: Vec::new(),
        dir: dir.to_path_buf(),
    };
    // The peer of the connections, outside the tree.
    let (peer, port) = match shape.conns {
        0 => (None, 0),
        n => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("peer: {e}"))?;
            let port = l.local_addr().map_err(|e| e.to_string())?.port();
            let d = dir.to_path_buf();
            let t = std::thread::spawn(move || conns::peer(l, n, &d, WAIT));
            (Some(t), port)
        }
    };
    // Connections are dumped and restored by both tools with this.
    let tcp: &[&str] = if shape.conns > 0 {
        &["--tcp-established"]
    } else {
        &[]
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(&exe)
        .arg("workload")
        .arg(dir)
        .args(shape.args(port))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn workload: {e}"))?;
    let root = child.id() as i32;
    guard.pids.push(root);
    let pids = wait_answers(dir, "ready", shape.procs)?;
    // The root stays first: its process group is the workload's.
    guard.pids = pids.iter().map(|s| s.trim().parse().unwrap_or(0)).collect();
    guard.pids.retain(|&p| p > 0);
    let root_s = root.to_string();
    let mut args = vec![
        "dump",
        "-t",
        &root_s,
        "-D",
        path(&images)?,
        "-o",
        "dump.log",
    ];
    args.extend_from_slice(tcp);
    let dump = run_tool(tool, &args, &images)?;
    wait_gone(&guard.pids, Duration::from_secs(60))?;
    let stats: pb::StatsEntry = read_one(&images.join("stats-dump"), Kind::Stats)
        .map_err(|e| format!("stats-dump: {e}"))?;
    let frozen = stats.dump.map_or(0.0, |d| f64::from(d.frozen_time) / 1e6);
    let pidfile = images.join("restore.pid");
    let mut args = vec![
        "restore",
        "-d",
        "-D",
        path(&images)?,
        "-o",
        "restore.log",
        "--pidfile",
        path(&pidfile)?,
    ];
    args.extend_from_slice(tcp);
    let restore = run_tool(tool, &args, &images)?;
    std::fs::write(dir.join("go"), "").map_err(|e| e.to_string())?;
    let verdicts = wait_answers(dir, "res", shape.procs)?;
    if let Some(bad) = verdicts.iter().find(|v| !v.starts_with("PASS")) {
        let n = verdicts.iter().filter(|v| !v.starts_with("PASS")).count();
        return Err(format!(
            "{n} restored processes failed their check, e.g.: {bad}"
        ));
    }
    if let Some(t) = peer {
        t.join().map_err(|_| "the peer thread panicked")??;
    }
    wait_gone(&guard.pids, Duration::from_secs(60))?;
    guard.pids.clear();
    Ok(Sample {
        dump: dump.0,
        frozen,
        restore: restore.0,
        dump_rss: dump.1,
        restore_rss: restore.1,
    })
}

fn path(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

/// The contents of the `n` files `DIR/sub/K`, once all exist; a workload
/// failure (`res/setup`) ends the wait at once.
fn wait_answers(dir: &Path, sub: &str, n: usize) -> Result<Vec<String>, String> {
    let d = dir.join(sub);
    let end = Instant::now() + WAIT;
    loop {
        if let Ok(s) = std::fs::read_to_string(dir.join("res").join("setup")) {
            return Err(format!("the workload failed: {s}"));
        }
        let count = std::fs::read_dir(&d)
            .map(|r| {
                r.flatten()
                    .filter(|e| e.path().extension().is_none())
                    .count()
            })
            .unwrap_or(0);
        if count >= n {
            return (0..n)
                .map(|k| {
                    std::fs::read_to_string(d.join(k.to_string()))
                        .map_err(|e| format!("{sub}/{k}: {e}"))
                })
                .collect();
        }
        reap_any();
        if Instant::now() > end {
            return Err(format!(
                "only {count} of {n} processes wrote {sub}/ within {WAIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reap whatever child has ended (the workload's tasks are reparented to
/// us, a subreaper).
fn reap_any() {
    use rustix::process::{WaitOptions, wait};
    while let Ok(Some(_)) = wait(WaitOptions::NOHANG) {}
}

/// Wait until none of `pids` exists any more, reaping them.
fn wait_gone(pids: &[i32], bound: Duration) -> Result<(), String> {
    let end = Instant::now() + bound;
    loop {
        reap_any();
        let left = pids
            .iter()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .count();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!("{left} processes still exist after {bound:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs the tool; (wall seconds from spawn to reap, peak RSS KiB).
fn run_tool(tool: &Tool, args: &[&str], images: &Path) -> Result<(f64, u64), String> {
    let what = format!("{} {}", tool.name, args[0]);
    let t = Instant::now();
    let child = Command::new(&tool.bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let pid = rustix::process::Pid::from_raw(child.id() as i32).ok_or("no pid")?;
    let usage = wait4(pid).map_err(|e| format!("{what}: wait4: {e}"))?;
    let el = t.elapsed().as_secs_f64();
    if !usage.exit.success() {
        let log = images.join(format!("{}.log", args[0]));
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(8).collect();
        return Err(format!(
            "{what} failed ({:?}); end of its log:\n{}",
            usage.exit,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    Ok((el, usage.max_rss_kib))
}
