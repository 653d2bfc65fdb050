//! The built-in demo: checkpoint a running program and bring it back.
//!
//! Run it from the repository (as root, or with CAP_CHECKPOINT_RESTORE):
//!
//! ```sh
//! cargo build --release && cargo run --release --example demo
//! ```
//!
//! It starts a small counter program (this same binary in `counter` mode:
//! it keeps a running count and a checksum of 8 MiB of memory it filled,
//! and appends a line to its log every 200 ms), lets it count, dumps it
//! with `criu dump` (which kills it), shows the images with `crit`, restores
//! it with `criu restore -d`, and checks that the restored process has the
//! same PID, continues the count where it stopped, and still holds the same
//! memory. Everything happens in a fresh temporary directory, which is
//! removed at the end unless `--keep` is given.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const MEMORY: usize = 8 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("counter") {
        return counter(Path::new(&args[2]));
    }
    let keep = args.iter().any(|a| a == "--keep");
    match demo(keep) {
        Ok(()) => {
            println!("\ndemo: OK, the restored process runs on with its state intact");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\ndemo: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The program being checkpointed: counts forever, one log line per tick.
fn counter(log: &Path) -> ExitCode {
    // Only what the counter opens itself belongs in its images.
    if criu_core::sys::fds::close_fds_from(3).is_err() {
        return ExitCode::FAILURE;
    }
    let mut memory = vec![0u8; MEMORY];
    for (i, b) in memory.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    let sum = checksum(&memory);
    let mut out = match std::fs::OpenOptions::new().append(true).open(log) {
        Ok(f) => f,
        Err(_) => return ExitCode::FAILURE,
    };
    let mut count: u64 = 0;
    loop {
        count += 1;
        // The memory is re-checked every tick: a restore that lost or
        // mixed up pages shows as a changed checksum.
        let now = checksum(&memory);
        let state = if now == sum {
            "memory ok"
        } else {
            "MEMORY CHANGED"
        };
        let line = format!("pid {} count {count} {state}\n", std::process::id());
        if out.write_all(line.as_bytes()).is_err() {
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn demo(keep: bool) -> Result<(), String> {
    let bin_dir = std::env::current_exe()
        .map_err(|e| format!("current exe: {e}"))?
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or("no binary directory")?;
    let criu = bin_dir.join("criu");
    let crit = bin_dir.join("crit");
    for b in [&criu, &crit] {
        if !b.exists() {
            return Err(format!(
                "{} is not built: run `cargo build --release` first",
                b.display()
            ));
        }
    }
    let work = std::env::temp_dir().join(format!("criu-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let result = run_demo(&criu, &crit, &work);
    if keep {
        println!("demo: files kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn run_demo(criu: &Path, crit: &Path, work: &Path) -> Result<(), String> {
    // The demo reaps what it starts at once: a dumped process keeps its PID
    // until its parent reaps it, and the restore needs that PID free.
    set_child_subreaper()?;
    let images = work.join("images");
    std::fs::create_dir_all(&images).map_err(|e| e.to_string())?;
    set_mode(&images, 0o700)?;
    let log = work.join("counter.log");
    std::fs::write(&log, "").map_err(|e| e.to_string())?;

    step("starting the counter program");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new("setsid")
        .arg(&exe)
        .arg("counter")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let pid = wait_for(Duration::from_secs(10), || last_line(&log))
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i32>().ok())
        })
        .ok_or("the counter did not start")?;
    std::thread::sleep(Duration::from_millis(700));
    println!(
        "   pid {pid}, counting: {}",
        last_line(&log).unwrap_or_default()
    );

    step(&format!("criu dump -t {pid} -D {}", images.display()));
    let t = Instant::now();
    run(Command::new(criu)
        .args(["dump", "-t", &pid.to_string(), "-D"])
        .arg(&images)
        .args(["-v4", "-o", "dump.log", "--display-stats"]))?;
    println!("   dumped in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    drop(child);
    reap_until_gone(pid)?;
    let stopped_at = last_count(&log).ok_or("no count")?;
    println!("   the process is gone; it had counted to {stopped_at}");

    step("crit x images ps, and the image files");
    run(Command::new(crit).arg("x").arg(&images).arg("ps"))?;
    let mut names: Vec<String> = std::fs::read_dir(&images)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    println!("   {}", names.join(" "));

    step(&format!("criu restore -d -D {}", images.display()));
    let pidfile = work.join("restored.pid");
    let t = Instant::now();
    run(Command::new(criu)
        .args(["restore", "-d", "-D"])
        .arg(&images)
        .args(["-v4", "-o", "restore.log", "--display-stats", "--pidfile"])
        .arg(&pidfile))?;
    println!("   restored in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let restored: i32 = std::fs::read_to_string(&pidfile)
        .map_err(|e| format!("pidfile: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("pidfile: {e}"))?;
    if restored != pid {
        return Err(format!("restored pid {restored}, expected {pid}"));
    }
    let resumed = wait_for(Duration::from_secs(5), || {
        last_count(&log).filter(|&c| c > stopped_at + 2)
    })
    .ok_or("the restored process does not count on")?;
    let line = last_line(&log).unwrap_or_default();
    println!("   pid {restored} counts on: {line}");
    if !line.contains("memory ok") {
        return Err(format!("the restored memory differs: {line}"));
    }
    if resumed > stopped_at + 20 {
        return Err(format!("count jumped from {stopped_at} to {resumed}"));
    }

    step("stopping the restored process");
    kill(restored)?;
    reap_until_gone(restored)?;
    Ok(())
}

fn step(what: &str) {
    println!("\n== {what}");
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {status} (see its log in the images dir)"
        ))
    }
}

fn last_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().last().map(str::to_owned)
}

fn last_count(log: &Path) -> Option<u64> {
    last_line(log)?.split_whitespace().nth(3)?.parse().ok()
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
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn set_child_subreaper() -> Result<(), String> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))
}

fn kill(pid: i32) -> Result<(), String> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or("bad pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::KILL)
        .map_err(|e| format!("kill {pid:?}: {e}"))
}

/// Reap `pid` (our child or, as subreaper, our orphaned descendant) and
/// anything else that exited, until `/proc/pid` is gone.
fn reap_until_gone(pid: i32) -> Result<(), String> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let found = wait_for(Duration::from_secs(10), || {
        while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
        (!proc_dir.exists()).then_some(())
    });
    found.ok_or_else(|| format!("pid {pid} did not go away"))
}
