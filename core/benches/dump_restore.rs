//! Benchmark: dump and restore of a process holding N MiB of touched
//! anonymous memory, images on tmpfs (`/dev/shm`).
//!
//! ```sh
//! cargo build --release && cargo bench --bench dump_restore
//! # sizes in MiB (default 64 and 1024):
//! cargo bench --bench dump_restore -- --sizes 64,1024   # or BENCH_SIZES=64,1024
//! cargo bench --bench dump_restore -- --repeat 3         # or BENCH_REPEAT=3
//! ```
//!
//! Needs root (or CAP_CHECKPOINT_RESTORE). For each size it starts a victim
//! (this binary in `victim` mode) that fills its memory with a non-zero
//! pattern, dumps it with `criu dump --display-stats` (which kills it),
//! restores it with `criu restore -d --display-stats`, and makes the restored
//! victim check its pattern. It reports wall times, the frozen time and the
//! memory phases from `stats-dump`/`stats-restore`, throughput each way, the
//! peak RSS of the criu process, and this machine's memcpy bandwidth.
//!
//! Peak RSS: `ru_maxrss` of the criu child as `wait4(2)` reports it when it
//! is reaped (core's `sys::wait::wait4`; std and rustix drop the rusage).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use criu_core::images::{Kind, pb, read_one};
use criu_core::sys::wait::wait4;

const PAGE: usize = 4096;
const MIB: usize = 1 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("victim") {
        return victim(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("memcpy") {
        println!("{}", memcpy_bandwidth());
        return ExitCode::SUCCESS;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // this is a benchmark, not a test: do nothing there.
    if !args.iter().any(|a| a == "--bench") {
        println!("dump_restore: a benchmark; run it with `cargo bench --bench dump_restore`");
        return ExitCode::SUCCESS;
    }
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dump_restore: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- victim

/// The pattern word of page `i`: never zero, different per page and per run.
fn pattern(i: usize, seed: u64) -> u64 {
    ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed) | 1
}

/// Victim mode: `victim MIB DIR`. Fills the memory, writes `DIR/ready`
/// (its pid), then polls for `DIR/check` and answers in `DIR/result`.
fn victim(args: &[String]) -> ExitCode {
    // Only what the victim opens itself belongs in its images; a session of
    // its own so the dump needs no --shell-job.
    if criu_core::sys::fds::close_fds_from(3).is_err() || rustix::process::setsid().is_err() {
        return ExitCode::FAILURE;
    }
    let (Some(mib), Some(dir)) = (
        args.first().and_then(|s| s.parse::<usize>().ok()),
        args.get(1),
    ) else {
        return ExitCode::FAILURE;
    };
    let dir = Path::new(dir);
    let seed = 0x5eed_0000 ^ u64::from(std::process::id());
    let words = mib * MIB / 8;
    // calloc'ed, so untouched until the loop below writes one word per page.
    let mut mem = vec![0u64; words];
    let per_page = PAGE / 8;
    for (i, w) in mem.iter_mut().step_by(per_page).enumerate() {
        *w = pattern(i, seed);
    }
    if std::fs::write(dir.join("ready"), std::process::id().to_string()).is_err() {
        return ExitCode::FAILURE;
    }
    let check = dir.join("check");
    while !check.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let bad = mem
        .iter()
        .step_by(per_page)
        .enumerate()
        .filter(|&(i, &w)| w != pattern(i, seed))
        .count();
    let verdict = if bad == 0 {
        "PASS".to_string()
    } else {
        format!("FAIL {bad} pages")
    };
    let _ = std::fs::write(dir.join("result"), verdict);
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------- driver

/// What is left to clean up, whatever happens: processes by pid, the
/// image directory.
struct Cleanup {
    pids: Vec<i32>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in &self.pids {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Row {
    mib: usize,
    dump_s: f64,
    frozen_s: f64,
    memdump_s: f64,
    memwrite_s: f64,
    pages_written: u64,
    dump_rss_kib: u64,
    restore_s: f64,
    restore_stat_s: f64,
    pages_restored: u64,
    restore_rss_kib: u64,
    verdict: String,
}

fn bench(args: &[String]) -> Result<(), String> {
    let sizes = parse_sizes(args)?;
    let repeat = parse_repeat(args)?;
    let criu = criu_bin()?;
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    println!("criu: {}", criu.display());

    let memcpy = memcpy_in_child()?;
    println!("memcpy (1 GiB, copy_from_slice, best of 5): {memcpy:.2} GiB/s");

    let mut rows = Vec::new();
    for &mib in &sizes {
        let avail = mem_available_mib().unwrap_or(0);
        // Victim + images + restored victim, plus slack.
        if avail < 3 * mib + 512 {
            return Err(format!(
                "{mib} MiB needs ~{} MiB free, {avail} available",
                3 * mib + 512
            ));
        }
        for _ in 0..repeat {
            rows.push(one_size(&criu, mib)?);
        }
    }
    print_table(&rows, memcpy);
    if rows.iter().any(|r| r.verdict != "PASS") {
        return Err("a restored victim found its memory changed".into());
    }
    Ok(())
}

fn parse_sizes(args: &[String]) -> Result<Vec<usize>, String> {
    let from_arg = args
        .iter()
        .position(|a| a == "--sizes")
        .and_then(|i| args.get(i + 1).cloned());
    let spec = from_arg
        .or_else(|| std::env::var("BENCH_SIZES").ok())
        .unwrap_or_else(|| "64,1024".into());
    spec.split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .map_err(|e| format!("--sizes {spec}: {e}"))
        })
        .filter(|r| r.as_ref().map_or(true, |&n| n > 0))
        .collect()
}

/// How many runs per size: `--repeat N` or `BENCH_REPEAT=N`, default 1
/// (the figures are noisy on a shared machine; each run is one row).
fn parse_repeat(args: &[String]) -> Result<usize, String> {
    let spec = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("BENCH_REPEAT").ok());
    match spec {
        None => Ok(1),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("--repeat {s}: want a positive count")),
        },
    }
}

/// `$CRIU_BIN`, else `criu` next to the profile dir this bench was built
/// in (`target/<profile>/deps/dump_restore-*` → `target/<profile>/../release/criu`).
fn criu_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CRIU_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .ok_or("no target directory")?;
    let criu = target.join("release").join("criu");
    if criu.exists() {
        Ok(criu)
    } else {
        Err(format!(
            "{} is not built: run `cargo build --release` first",
            criu.display()
        ))
    }
}

fn one_size(criu: &Path, mib: usize) -> Result<Row, String> {
    println!("\n== {mib} MiB");
    let work = PathBuf::from(format!("/dev/shm/criu-bench-{}-{mib}", std::process::id()));
    let mut guard = Cleanup {
        pids: Vec::new(),
        dir: work.clone(),
    };
    let images = work.join("images");
    std::fs::create_dir_all(&images).map_err(|e| format!("{}: {e}", images.display()))?;

    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(&exe)
        .arg("victim")
        .arg(mib.to_string())
        .arg(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn victim: {e}"))?;
    let pid = child.id() as i32;
    guard.pids.push(pid);
    wait_for(Duration::from_secs(60), || {
        work.join("ready").exists().then_some(())
    })
    .ok_or("the victim did not get ready")?;
    println!("   victim {pid} ready");

    let dump = run_measured(
        criu,
        &[
            "dump",
            "-t",
            &pid.to_string(),
            "-D",
            path_str(&images)?,
            "-o",
            "dump.log",
            "--display-stats",
        ],
    )?;
    // criu killed it; reap it so its pid is free for the restore.
    let _ = child.wait();
    guard.pids.retain(|&p| p != pid);
    wait_for(Duration::from_secs(10), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .ok_or("the dumped victim does not go away")?;
    let ds: pb::StatsEntry = read_one(&images.join("stats-dump"), Kind::Stats)
        .map_err(|e| format!("stats-dump: {e}"))?;
    let ds = ds.dump.ok_or("stats-dump has no dump entry")?;
    println!("   dumped in {:.3} s", dump.0);

    let pidfile = work.join("restored.pid");
    let restore = run_measured(
        criu,
        &[
            "restore",
            "-d",
            "-D",
            path_str(&images)?,
            "-o",
            "restore.log",
            "--display-stats",
            "--pidfile",
            path_str(&pidfile)?,
        ],
    )?;
    let restored: i32 = std::fs::read_to_string(&pidfile)
        .map_err(|e| format!("pidfile: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("pidfile: {e}"))?;
    guard.pids.push(restored);
    let rs: pb::StatsEntry = read_one(&images.join("stats-restore"), Kind::Stats)
        .map_err(|e| format!("stats-restore: {e}"))?;
    let rs = rs.restore.ok_or("stats-restore has no restore entry")?;
    println!("   restored pid {restored} in {:.3} s", restore.0);

    std::fs::write(work.join("check"), "").map_err(|e| e.to_string())?;
    let verdict = wait_for(Duration::from_secs(60), || {
        std::fs::read_to_string(work.join("result"))
            .ok()
            .filter(|s| !s.is_empty())
    })
    .unwrap_or_else(|| "FAIL: no answer".into());
    println!("   restored victim checks its memory: {verdict}");
    if let Some(p) = rustix::process::Pid::from_raw(restored) {
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
    }
    guard.pids.retain(|&p| p != restored);

    let us = |v: u32| f64::from(v) / 1e6;
    Ok(Row {
        mib,
        dump_s: dump.0,
        frozen_s: us(ds.frozen_time),
        memdump_s: us(ds.memdump_time),
        memwrite_s: us(ds.memwrite_time),
        pages_written: ds.pages_written,
        dump_rss_kib: dump.1,
        restore_s: restore.0,
        restore_stat_s: us(rs.restore_time),
        pages_restored: rs.pages_restored.unwrap_or(0),
        restore_rss_kib: restore.1,
        verdict,
    })
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

/// Runs criu with `args`; returns (wall seconds from spawn to reap, peak
/// RSS KiB). The child is reaped with core's `wait4`, which also gives its
/// `ru_maxrss`.
fn run_measured(criu: &Path, args: &[&str]) -> Result<(f64, u64), String> {
    let what = format!("criu {}", args.first().copied().unwrap_or(""));
    let t = Instant::now();
    let child = Command::new(criu)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let pid = rustix::process::Pid::from_raw(child.id() as i32)
        .ok_or_else(|| format!("{what}: no pid"))?;
    let usage = wait4(pid).map_err(|e| format!("{what}: wait4: {e}"))?;
    let el = t.elapsed().as_secs_f64();
    if !usage.exit.success() {
        return Err(format!(
            "{what} failed: {:?} (see its log in the images dir)",
            usage.exit
        ));
    }
    Ok((el, usage.max_rss_kib))
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn mem_available_mib() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// [`memcpy_bandwidth`] in a child (this binary in `memcpy` mode): its
/// 2 GiB of buffers would otherwise stay in this process's RSS high-water
/// mark, which a forked criu child inherits and `wait4` then reports.
fn memcpy_in_child() -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let out = Command::new(exe)
        .arg("memcpy")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("memcpy child: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .map_err(|e| format!("memcpy child: {e}"))
}

/// Best of 5 copies of a 1 GiB buffer (both buffers touched first), GiB/s.
fn memcpy_bandwidth() -> f64 {
    let len = 1 << 30;
    let src: Vec<u8> = (0..len).map(|i| (i >> 12) as u8 | 1).collect();
    let mut dst = vec![0u8; len];
    dst.copy_from_slice(&src);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    1.0 / best
}

fn print_table(rows: &[Row], memcpy: f64) {
    let rss = |k: u64| format!("{:.1}", k as f64 / 1024.0);
    println!("\nmemcpy bandwidth: {memcpy:.2} GiB/s (1 GiB, best of 5)\n");
    println!(
        "{:>6} | {:>8} {:>9} {:>9} {:>9} {:>10} {:>8} | {:>9} {:>9} {:>9} {:>8} | check",
        "MiB",
        "dump s",
        "frozen s",
        "memdump s",
        "memwrit s",
        "dump GiB/s",
        "RSS MiB",
        "restore s",
        "rst-st s",
        "rst GiB/s",
        "RSS MiB",
    );
    for r in rows {
        let gib = r.mib as f64 / 1024.0;
        println!(
            "{:>6} | {:>8.3} {:>9.3} {:>9.3} {:>9.3} {:>10.2} {:>8} | {:>9.3} {:>9.3} {:>9.2} {:>8} | {}",
            r.mib,
            r.dump_s,
            r.frozen_s,
            r.memdump_s,
            r.memwrite_s,
            gib / r.dump_s,
            rss(r.dump_rss_kib),
            r.restore_s,
            r.restore_stat_s,
            gib / r.restore_s,
            rss(r.restore_rss_kib),
            r.verdict
        );
    }
    println!(
        "\npages written (dump) / restored: {}",
        rows.iter()
            .map(|r| format!("{} MiB: {} / {}", r.mib, r.pages_written, r.pages_restored))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "dump s / restore s: wall time of the criu process; frozen, memdump, memwrite, rst-st: from stats-dump / stats-restore (restore_time)"
    );
}
