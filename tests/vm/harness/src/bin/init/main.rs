//! `/init` of the test VM (see tests/vm/README.md): mounts the pseudo
//! file systems, runs the test programs listed in `/vm/manifest` one after
//! the other, prints one verdict line per program on the console and powers
//! the machine off.
//!
//! Console protocol, read by `tests/vm/run` on the host (each at the start
//! of a line; nothing else this program prints starts with these words):
//!
//! ```text
//! PASS name (details)
//! FAIL name: reason
//! SKIP name: reason
//! N passed, M failed, K skipped
//! ```
//!
//! The manifest, written by the host, has one directive per line:
//!
//! ```text
//! env KEY=VALUE              environment of every test program
//! cwd /dir                   their working directory (created if missing)
//! timeout SECONDS            per program; killed (its process group) after
//! verbose                    print the whole output of failed programs
//! insmod /path/to/module.ko  load a kernel module first (dependencies
//!                            listed before, by the host)
//! run NAME PATH [ARGS...]    a test program
//! skip NAME REASON...        a program not run here, and why
//! ```
//!
//! This is PID 1: it must never exit (the kernel would panic), it reaps
//! every orphan, and on any set-up error it still reports and powers off.

mod libtest;

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::mount::{MountFlags, mount};
use rustix::process::{Pid, Signal, WaitOptions, kill_process_group, wait, waitpid};

const MANIFEST: &str = "/vm/manifest";
const LOG_DIR: &str = "/tmp/vm-logs";

/// One test program to run, or to report as skipped.
enum Job {
    Run {
        name: String,
        path: String,
        args: Vec<String>,
    },
    Skip {
        name: String,
        reason: String,
    },
}

struct Manifest {
    env: Vec<(String, String)>,
    cwd: PathBuf,
    timeout: Duration,
    verbose: bool,
    modules: Vec<PathBuf>,
    jobs: Vec<Job>,
}

fn parse_manifest(text: &str) -> Result<Manifest, String> {
    let mut manifest = Manifest {
        env: Vec::new(),
        cwd: PathBuf::from("/tmp"),
        timeout: Duration::from_secs(300),
        verbose: false,
        modules: Vec::new(),
        jobs: Vec::new(),
    };
    for (index, line) in text.lines().enumerate() {
        let bad = || format!("manifest line {}: cannot parse {line:?}", index + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["env", pair] => {
                let (key, value) = pair.split_once('=').ok_or_else(bad)?;
                manifest.env.push((key.to_string(), value.to_string()));
            }
            ["verbose"] => manifest.verbose = true,
            ["insmod", path] => manifest.modules.push(PathBuf::from(path)),
            ["cwd", dir] => manifest.cwd = PathBuf::from(dir),
            ["timeout", secs] => {
                manifest.timeout = Duration::from_secs(secs.parse().map_err(|_| bad())?);
            }
            ["run", name, path, args @ ..] => manifest.jobs.push(Job::Run {
                name: name.to_string(),
                path: path.to_string(),
                args: args.iter().map(|a| a.to_string()).collect(),
            }),
            ["skip", name, reason @ ..] => manifest.jobs.push(Job::Skip {
                name: name.to_string(),
                reason: reason.join(" "),
            }),
            _ => return Err(bad()),
        }
    }
    Ok(manifest)
}

/// The share of memory the root file system (and so /tmp, where the
/// tests write their images) may fill. The kernel gives the initramfs
/// root a tmpfs of half the memory, and the binaries take 285 MiB of it:
/// with 1 GiB, 39 MiB were left on ppc64le, dumps of 48 MiB failed with
/// ENOSPC and, the log being on the same file system, said nothing. The
/// tests' own memory stays well within the rest.
const ROOT_SIZE: &std::ffi::CStr = c"size=85%";

/// Lets the root tmpfs grow to [`ROOT_SIZE`]; a failure is reported (the
/// tests then run with less room, and `room_left` shows how much).
fn grow_root() {
    if let Err(err) = rustix::mount::mount_remount("/", MountFlags::empty(), ROOT_SIZE) {
        println!("vm-init: remount / with {ROOT_SIZE:?}: {err}");
    }
}

/// Mounts what test programs expect; a failure is reported, not fatal
/// (the programs that need the mount will then fail and say why).
fn mount_pseudo_filesystems() {
    let nosuid_nodev = MountFlags::NOSUID | MountFlags::NODEV;
    let mounts: [(&str, &str, &str, MountFlags, Option<&std::ffi::CStr>); 5] = [
        (
            "proc",
            "/proc",
            "proc",
            nosuid_nodev | MountFlags::NOEXEC,
            None,
        ),
        (
            "sysfs",
            "/sys",
            "sysfs",
            nosuid_nodev | MountFlags::NOEXEC,
            None,
        ),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MountFlags::NOSUID,
            Some(c"mode=0755"),
        ),
        (
            "devpts",
            "/dev/pts",
            "devpts",
            MountFlags::NOSUID,
            Some(c"ptmxmode=0666"),
        ),
        ("tmpfs", "/dev/shm", "tmpfs", nosuid_nodev, None),
        // No tmpfs on /tmp: the initramfs root is already writable memory,
        // and a checkout under /tmp (the test binaries sit at their host
        // paths) would be hidden by it. See `grow_root` for its size.
    ];
    for (source, target, fstype, flags, data) in mounts {
        if let Err(err) = fs::create_dir_all(target) {
            println!("vm-init: mkdir {target}: {err}");
        }
        if let Err(err) = mount(source, target, fstype, flags, data) {
            println!("vm-init: mount {fstype} on {target}: {err}");
        }
    }
}

/// Brings `lo` up, as any booted system has it: the guest has no network
/// set-up, and programs connect to 127.0.0.1 (CRIU's kerndat does, at
/// every start). A failure is reported, not fatal.
fn loopback_up() {
    if let Err(err) = set_loopback_up() {
        println!("vm-init: bringing lo up: {err}");
    }
}

fn set_loopback_up() -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data: all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `ifr`,
    // which lives across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads `ifr`, which lives across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Loads the listed modules in order; one already there (built in or
/// loaded) is fine, other failures are reported and the tests run anyway.
fn load_modules(modules: &[PathBuf]) {
    for path in modules {
        let loaded = File::open(path)
            .map_err(|err| err.to_string())
            .and_then(|file| {
                match nix::kmod::finit_module(&file, c"", nix::kmod::ModuleInitFlags::empty()) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
                    Err(err) => Err(err.to_string()),
                }
            });
        if let Err(err) = loaded {
            println!("vm-init: insmod {}: {err}", path.display());
        }
    }
}

/// How a test program ended.
enum Ending {
    Exited(i32),
    Signaled(i32),
    TimedOut,
}

/// Runs one program with its output in `log`, reaping every child of PID 1
/// meanwhile (orphans of the tests end up here).
fn run_program(
    manifest: &Manifest,
    path: &str,
    args: &[String],
    log: &File,
) -> std::io::Result<Ending> {
    let child = Command::new(path)
        .args(args)
        .envs(manifest.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&manifest.cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .process_group(0)
        .spawn()?;
    let pid = Pid::from_child(&child);
    let start = Instant::now();
    loop {
        match wait(WaitOptions::NOHANG)? {
            Some((reaped, status)) if reaped == pid => {
                return Ok(match (status.exit_status(), status.terminating_signal()) {
                    (Some(code), _) => Ending::Exited(code),
                    (None, Some(sig)) => Ending::Signaled(sig),
                    (None, None) => Ending::Exited(-1),
                });
            }
            Some(_orphan) => continue,
            None => {}
        }
        if start.elapsed() > manifest.timeout {
            let _ = kill_process_group(pid, Signal::KILL);
            let _ = waitpid(Some(pid), WaitOptions::empty());
            return Ok(Ending::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reaps whatever orphans are left after a program ended.
fn reap_orphans() {
    while let Ok(Some(_)) = wait(WaitOptions::NOHANG) {}
}

/// Prints the part of a failed program's log that explains it (all of it
/// when verbose).
fn print_log_excerpt(log: &str, verbose: bool) {
    let lines: Vec<String> = match verbose {
        true => log.lines().map(str::to_string).collect(),
        false => libtest::excerpt(log, 40),
    };
    for line in lines {
        println!("  | {line}");
    }
}

#[derive(Default)]
struct Totals {
    passed: u32,
    failed: u32,
    skipped: u32,
    /// Tests (not programs): passed (skips included), failed, ignored.
    tests_passed: u32,
    tests_failed: u32,
    tests_ignored: u32,
}

/// The kernel's log from now on (`/dev/kmsg` read from its end): what
/// the kernel said while a program ran, e.g. the fatal signals of its
/// tasks (`print-fatal-signals=1`, with their registers), which the
/// console's `quiet` hides.
struct KernelLog(Option<rustix::fd::OwnedFd>);

impl KernelLog {
    fn from_now() -> KernelLog {
        use rustix::fs::{Mode, OFlags, SeekFrom, open, seek};
        let fd = open(
            "/dev/kmsg",
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        if let Some(fd) = &fd {
            let _ = seek(fd, SeekFrom::End(0));
        }
        KernelLog(fd)
    }

    /// The messages since, at most `max` (the last ones).
    fn since(&self, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let Some(fd) = &self.0 else {
            return out;
        };
        let mut buf = vec![0u8; 8192];
        loop {
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    // `PRIO,SEQ,TIME,FLAGS;MESSAGE\n` then ` KEY=VALUE` lines.
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let first = rec.lines().next().unwrap_or_default();
                    if let Some((_, msg)) = first.split_once(';') {
                        out.push(msg.to_string());
                    }
                }
                // A record overwritten while we read: go on from the next.
                Err(rustix::io::Errno::PIPE) => continue,
                Err(_) => break,
            }
        }
        let skip = out.len().saturating_sub(max);
        out.split_off(skip)
    }
}

fn run_job(manifest: &Manifest, job: &Job, totals: &mut Totals) {
    let (name, path, args) = match job {
        Job::Skip { name, reason } => {
            println!("SKIP {name}: {reason}");
            totals.skipped += 1;
            return;
        }
        Job::Run { name, path, args } => (name, path, args),
    };
    let log_path = PathBuf::from(LOG_DIR).join(format!("{name}.log"));
    let kernel = KernelLog::from_now();
    let started = Instant::now();
    let ending = File::create(&log_path).and_then(|log| run_program(manifest, path, args, &log));
    reap_orphans();
    let secs = started.elapsed().as_secs_f32();
    let log = fs::read(&log_path).map(|b| String::from_utf8_lossy(&b).into_owned());
    let log = log.unwrap_or_default();
    let summary = libtest::summarize(&log);
    // How far the PID counter got (it wraps at pid_max): restores need
    // their tasks' old PIDs free, so a wrap matters to the fault walks.
    let last_pid = fs::read_to_string("/proc/sys/kernel/ns_last_pid").unwrap_or_default();
    println!(
        "vm-init: {name}: last pid {}, {}",
        last_pid.trim(),
        room_left()
    );
    totals.tests_passed += summary.passed;
    totals.tests_failed += summary.failed_names.len() as u32;
    totals.tests_ignored += summary.ignored;
    // Every test that skipped itself, for the host's per-arch skip count.
    for skip in &summary.skipped {
        println!("SKIPPED {name}/{skip}");
    }
    let reason = match ending {
        Err(err) => Some(format!("cannot run {path}: {err}")),
        Ok(Ending::TimedOut) => Some(format!("timed out after {}s", manifest.timeout.as_secs())),
        Ok(Ending::Signaled(sig)) => Some(format!("killed by signal {sig}")),
        Ok(Ending::Exited(0)) => None,
        Ok(Ending::Exited(code)) if summary.failed_names.is_empty() => {
            Some(format!("exit status {code}"))
        }
        Ok(Ending::Exited(_)) => Some(format!(
            "{} failed: {}",
            summary.failed_names.len(),
            summary.failed_names.join(", ")
        )),
    };
    if let Some(reason) = reason {
        totals.failed += 1;
        println!("FAIL {name}: {reason} ({secs:.1}s)");
        print_log_excerpt(&log, manifest.verbose);
        for line in kernel.since(80) {
            println!("  | kernel: {line}");
        }
    } else if summary.passed > 0 && summary.skipped.len() as u32 >= summary.passed {
        totals.skipped += 1;
        let first = summary
            .skipped
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        println!(
            "SKIP {name}: all {} tests skipped themselves, e.g. {first}",
            summary.passed
        );
    } else if summary.passed == 0 {
        totals.skipped += 1;
        println!(
            "SKIP {name}: no test for this architecture ({} ignored)",
            summary.ignored
        );
    } else {
        totals.passed += 1;
        println!(
            "PASS {name} ({} tests, {} skipped themselves, {} ignored, {secs:.1}s)",
            summary.passed,
            summary.skipped.len(),
            summary.ignored
        );
    }
}

fn main() {
    // Firmware or the kernel may have left the console mid-line; the host
    // reads verdicts only at the start of a line.
    println!();
    grow_root();
    mount_pseudo_filesystems();
    let _ = fs::create_dir_all(LOG_DIR);
    let mut totals = Totals::default();
    let manifest = fs::read_to_string(MANIFEST)
        .map_err(|err| format!("reading {MANIFEST}: {err}"))
        .and_then(|text| parse_manifest(&text));
    match manifest {
        Ok(manifest) => {
            let _ = fs::create_dir_all(&manifest.cwd);
            load_modules(&manifest.modules);
            loopback_up();
            println!(
                "vm-init: {} test programs; {}",
                manifest.jobs.len(),
                room_left()
            );
            for job in &manifest.jobs {
                run_job(&manifest, job, &mut totals);
            }
        }
        Err(err) => {
            totals.failed += 1;
            println!("FAIL vm-init: {err}");
        }
    }
    println!(
        "test result: vm. {} passed; {} failed; {} ignored",
        totals.tests_passed, totals.tests_failed, totals.tests_ignored
    );
    println!(
        "{} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.skipped
    );
    rustix::fs::sync();
    if let Err(err) = rustix::system::reboot(rustix::system::RebootCommand::PowerOff) {
        println!("vm-init: power off failed: {err}");
    }
    // PID 1 must not exit; the host's timeout ends the VM.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// What the guest has left after a program: free space in /tmp (the
/// initramfs root, a tmpfs of half the memory, which the binaries fill
/// in part) and available memory. A dump that dies for want of either
/// shows here.
fn room_left() -> String {
    let tmp = rustix::fs::statvfs("/tmp")
        .map(|s| format!("{} MiB free in /tmp", (s.f_bavail * s.f_frsize) >> 20))
        .unwrap_or_else(|e| format!("statvfs /tmp: {e}"));
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or("?".to_owned(), |v| v.trim().to_owned())
    };
    format!(
        "{tmp}, {} of {} memory available",
        field("MemAvailable:"),
        field("MemTotal:")
    )
}

#[cfg(test)]
mod tests {
    use super::KernelLog;

    /// What the kernel logs after `from_now` is read back, nothing before
    /// (needs root, to write `/dev/kmsg`).
    #[test]
    fn kernel_log_from_now() {
        let _ = std::fs::write("/dev/kmsg", "<6>criu-vm-harness: before\n");
        let log = KernelLog::from_now();
        if std::fs::write("/dev/kmsg", "<6>criu-vm-harness: after\n").is_err() {
            eprintln!("SKIPPED kernel_log_from_now: cannot write /dev/kmsg (not root?)");
            return;
        }
        let lines = log.since(10);
        assert!(
            lines.iter().any(|l| l == "criu-vm-harness: after"),
            "{lines:?}"
        );
        assert!(!lines.iter().any(|l| l.contains("before")), "{lines:?}");
    }
}
