//! CRIU-style logging: five levels, an elapsed-time prefix, one sink.
//!
//! Levels are CRIU's numbers: 0 msg, 1 error, 2 warn (the default), 3 info,
//! 4 debug; `-vN` sets the level and anything above 4 behaves like 4.
//! Records look like CRIU's so that people and scripts reading CRIU logs can
//! read ours:
//!
//! ```text
//! (00.000123) Error (core/src/check/mod.rs:42): Can't open /proc/self/map_files: ENOENT
//! ```
//!
//! - The `(SS.UUUUUU) ` elapsed-time prefix appears once the level is above
//!   the default (like CRIU's `LOG_TIMESTAMP`).
//! - An optional `%6d: ` pid prefix marks records of a child process (see
//!   [`init_for_pid`]), unless `--log-pid` asked for one file per pid.
//! - Errors are prefixed `Error (file:line): `, warnings `Warn  (file:line): `.
//! - `pr_msg!` output is for the user: it goes to stdout, unprefixed, at any
//!   level, as CRIU's `pr_msg` does.
//!
//! # Why a process-wide sink
//! Options are passed down as values everywhere else. The log sink is the one
//! exception: every layer (syscall wrappers, the restore tree's forked
//! children, signal paths) logs, and threading a logger through each call
//! would put a parameter on nearly every function without adding any
//! information. The sink is set once at start-up by [`init`] and re-pointed
//! only in freshly forked children ([`init_for_pid`]); the level and start time
//! are atomics so checking whether a record is wanted costs no lock.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// A record's level. The numbers are CRIU's and appear in `-vN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Level {
    /// A message for the user, always printed, to stdout.
    Msg = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// CRIU's default verbosity (`-v2`): errors and warnings.
pub const DEFAULT_LEVEL: u32 = Level::Warn as u32;

/// From this verbosity on, records carry the elapsed-time prefix.
const TIMESTAMP_LEVEL: u32 = DEFAULT_LEVEL + 1;

/// Where log records go.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Target {
    /// The process's stderr (CRIU's default when no `-o` is given).
    #[default]
    Stderr,
    /// The process's stdout (`-o -`).
    Stdout,
    /// A file, created 0600 (relative paths are taken as they are: callers
    /// resolve them against the work dir first).
    File(PathBuf),
}

impl Target {
    /// The target for CRIU's `-o` argument: `-` means stdout.
    pub fn from_arg(arg: &str) -> Target {
        if arg == "-" {
            Target::Stdout
        } else {
            Target::File(PathBuf::from(arg))
        }
    }
}

/// What [`init`] needs: the logging part of the options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Verbosity, CRIU's `-vN` (0..=4; larger behaves like 4).
    pub level: u32,
    pub target: Target,
    /// `--log-pid`: children write to `<file>.<pid>` instead of sharing the
    /// file with a pid prefix.
    pub per_pid_files: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: DEFAULT_LEVEL,
            target: Target::Stderr,
            per_pid_files: false,
        }
    }
}

/// Failures to set up the log sink.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("Can't create log file {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("Can't dup {what} stream: {source}")]
    Dup {
        what: &'static str,
        source: io::Error,
    },
}

/// The current verbosity; read without locking on every record.
static LEVEL: AtomicU32 = AtomicU32::new(DEFAULT_LEVEL);
/// CLOCK_MONOTONIC at [`init`], in nanoseconds.
static START_NS: AtomicU64 = AtomicU64::new(0);
/// Pid printed before each record, 0 for none.
static PID_PREFIX: AtomicI32 = AtomicI32::new(0);

/// The sink proper. `None` until [`init`]: records then go to stderr.
struct Sink {
    file: Option<File>,
    config: LogConfig,
}

static SINK: Mutex<Sink> = Mutex::new(Sink {
    file: None,
    config: LogConfig {
        level: DEFAULT_LEVEL,
        target: Target::Stderr,
        per_pid_files: false,
    },
});

/// The first error logged, kept for the RPC reply's `cr_errmsg`.
static FIRST_ERROR: Mutex<Option<String>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data usable: it is only a file
    // handle or a string.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

fn open_target(target: &Target) -> Result<File, LogError> {
    match target {
        Target::Stderr => io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(|source| LogError::Dup {
                what: "stderr",
                source,
            }),
        Target::Stdout => io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(|source| LogError::Dup {
                what: "stdout",
                source,
            }),
        Target::File(path) => open_log_file(path),
    }
}

/// Opens a log file the way CRIU does (create, truncate, append, 0600), and
/// never through a symlink planted at its name.
fn open_log_file(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        // std refuses truncate together with append, so O_APPEND goes in
        // with the other raw flags.
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::APPEND).bits() as i32)
        .open(path)
        .map_err(|source| LogError::Create {
            path: path.to_owned(),
            source,
        })
}

/// Sets up the sink: opens the target, sets the level and starts the clock
/// (CRIU's `log_init`; the caller logs [`log_banner`] next).
pub fn init(config: &LogConfig) -> Result<(), LogError> {
    let file = open_target(&config.target)?;
    START_NS.store(now_ns(), Ordering::Relaxed);
    LEVEL.store(config.level, Ordering::Relaxed);
    PID_PREFIX.store(0, Ordering::Relaxed);
    {
        let mut sink = lock(&SINK);
        sink.file = Some(file);
        sink.config = config.clone();
    }
    Ok(())
}

/// Re-points the sink in a freshly forked child `pid` (CRIU's
/// `log_init_by_pid`): with per-pid files the child opens `<file>.<pid>`,
/// otherwise it keeps the shared file and prefixes its records with its pid.
pub fn init_for_pid(pid: i32) -> Result<(), LogError> {
    let config = lock(&SINK).config.clone();
    match (&config.target, config.per_pid_files) {
        (Target::File(path), true) => {
            let mut name = path.clone().into_os_string();
            name.push(format!(".{pid}"));
            let file = open_log_file(Path::new(&name))?;
            PID_PREFIX.store(0, Ordering::Relaxed);
            lock(&SINK).file = Some(file);
        }
        _ => PID_PREFIX.store(pid, Ordering::Relaxed),
    }
    Ok(())
}

/// Points stdout and stderr at the log (RPC `exec_cmd`: the command's
/// output goes where the request's log does).
pub fn redirect_stdio() -> io::Result<()> {
    let sink = lock(&SINK);
    let Some(file) = &sink.file else {
        return Ok(());
    };
    rustix::stdio::dup2_stdout(file)?;
    rustix::stdio::dup2_stderr(file)?;
    Ok(())
}

/// Logs the version banner at info level, as CRIU does right after opening
/// its log: our version (given by the caller, so that this bottom layer does
/// not depend on the options module) and the kernel we run on.
pub fn log_banner(version: &str, gitid: &str) {
    crate::pr_info!("Version: {version} (gitid {gitid})");
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default()
    };
    crate::pr_info!(
        "Running on {} {} {} {} {}",
        read("hostname"),
        read("ostype"),
        read("osrelease"),
        read("version"),
        std::env::consts::ARCH
    );
}

/// Changes the verbosity (`-vN`).
pub fn set_level(level: u32) {
    LEVEL.store(level, Ordering::Relaxed);
}

/// The current verbosity.
pub fn level() -> u32 {
    LEVEL.load(Ordering::Relaxed)
}

/// Whether a record at `level` would be written.
pub fn enabled(level: Level) -> bool {
    level == Level::Msg || level as u32 <= self::level()
}

/// The first error logged since start-up (or since [`take_first_error`]).
pub fn first_error() -> Option<String> {
    lock(&FIRST_ERROR).clone()
}

/// Returns and forgets the first error logged.
pub fn take_first_error() -> Option<String> {
    lock(&FIRST_ERROR).take()
}

/// Formats one record without its timestamp and pid prefixes. `site` is the
/// source location printed for errors and warnings. A trailing newline is
/// added when the message has none.
pub fn format_record(level: Level, site: Option<(&str, u32)>, args: fmt::Arguments) -> String {
    let mut out = String::new();
    match (level, site) {
        (Level::Error, Some((file, line))) => out.push_str(&format!("Error ({file}:{line}): ")),
        (Level::Warn, Some((file, line))) => out.push_str(&format!("Warn  ({file}:{line}): ")),
        _ => {}
    }
    fmt::write(&mut out, args).ok();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The elapsed-time prefix `(SS.UUUUUU) ` for `elapsed_ns`.
pub fn format_timestamp(elapsed_ns: u64) -> String {
    let us = elapsed_ns / 1000;
    format!("({:02}.{:06}) ", us / 1_000_000, us % 1_000_000)
}

/// Writes one record: the entry point of the `pr_*!` macros.
pub fn print(level: Level, site: Option<(&str, u32)>, args: fmt::Arguments) {
    if !enabled(level) {
        return;
    }
    let body = format_record(level, site, args);
    if level == Level::Msg {
        // User-facing output: unprefixed, on stdout, flushed at once so it
        // interleaves with the log as it happens.
        let mut out = io::stdout().lock();
        let _ = out.write_all(body.as_bytes());
        let _ = out.flush();
        return;
    }
    if level == Level::Error {
        let mut first = lock(&FIRST_ERROR);
        if first.is_none() {
            *first = Some(body.trim_end().to_owned());
        }
    }
    let mut line = String::with_capacity(body.len() + 20);
    if self::level() >= TIMESTAMP_LEVEL {
        let start = START_NS.load(Ordering::Relaxed);
        let elapsed = if start == 0 {
            0
        } else {
            now_ns().saturating_sub(start)
        };
        line.push_str(&format_timestamp(elapsed));
    }
    let pid = PID_PREFIX.load(Ordering::Relaxed);
    if pid != 0 {
        line.push_str(&format!("{pid:6}: "));
    }
    line.push_str(&body);
    let mut sink = lock(&SINK);
    // Logging must never fail the operation being logged: write errors (a
    // full disk, a closed pipe) are dropped, but an error that cannot be
    // logged goes to stderr, so that a failure is never silent (a full
    // file system is itself a common cause of failure).
    let written = match sink.file.as_mut() {
        Some(file) => file.write_all(line.as_bytes()).is_ok(),
        None => false,
    };
    if !written && (level == Level::Error || sink.file.is_none()) {
        let _ = io::stderr().write_all(line.as_bytes());
    }
}

/// Sends every panic to the log as an error, as well as to stderr (where
/// Rust's default hook puts it): a tool run with `-o FILE` and its stderr
/// thrown away (as container runtimes and our tests run it) would
/// otherwise end with a log that just stops. A panic while the sink is
/// held (inside [`print`]) reaches stderr only.
pub fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = panic_record(
            std::thread::current().name(),
            info.location().map(|l| (l.file(), l.line())),
            info.payload(),
        );
        write_unlocked(Level::Error, &msg);
        // The tool's stderr may be read by someone (a shell): tell it too.
        default(info);
    }));
}

/// The log record of a panic: what a user reports and a developer needs.
fn panic_record(
    thread: Option<&str>,
    site: Option<(&str, u32)>,
    payload: &(dyn std::any::Any + Send),
) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let at = site.map_or_else(String::new, |(f, l)| format!(" at {f}:{l}"));
    format!(
        "BUG: thread '{}' panicked{at}: {what} (this is a bug of criu-rs: the operation failed)",
        thread.unwrap_or("<unnamed>")
    )
}

/// Writes an error record without waiting for the sink (a panic hook
/// must not block on a lock its own thread may hold). Nothing is written
/// when the sink is stderr: the default panic hook writes there.
fn write_unlocked(level: Level, body: &str) {
    if let Ok(mut first) = FIRST_ERROR.try_lock() {
        first.get_or_insert_with(|| body.to_owned());
    }
    let mut sink = match SINK.try_lock() {
        Ok(s) => s,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    if sink.config.target == Target::Stderr {
        return;
    }
    let Some(file) = sink.file.as_mut() else {
        return;
    };
    let mut line = String::new();
    if self::level() >= TIMESTAMP_LEVEL {
        let start = START_NS.load(Ordering::Relaxed);
        line.push_str(&format_timestamp(now_ns().saturating_sub(start)));
    }
    let pid = PID_PREFIX.load(Ordering::Relaxed);
    if pid != 0 {
        line.push_str(&format!("{pid:6}: "));
    }
    line.push_str(&format_record(level, None, format_args!("{body}")));
    let _ = file.write_all(line.as_bytes());
}

/// Logs a message for the user: stdout, no prefix, at any verbosity.
#[macro_export]
macro_rules! pr_msg {
    ($($arg:tt)*) => {
        $crate::log::print($crate::log::Level::Msg, None, format_args!($($arg)*))
    };
}

/// Logs an error, prefixed `Error (file:line): `.
#[macro_export]
macro_rules! pr_err {
    ($($arg:tt)*) => {
        $crate::log::print($crate::log::Level::Error, Some((file!(), line!())), format_args!($($arg)*))
    };
}

/// Logs a warning, prefixed `Warn  (file:line): `.
#[macro_export]
macro_rules! pr_warn {
    ($($arg:tt)*) => {
        $crate::log::print($crate::log::Level::Warn, Some((file!(), line!())), format_args!($($arg)*))
    };
}

/// Logs an informational record (`-v3` and up).
#[macro_export]
macro_rules! pr_info {
    ($($arg:tt)*) => {
        $crate::log::print($crate::log::Level::Info, None, format_args!($($arg)*))
    };
}

/// Logs a debug record (`-v4`).
#[macro_export]
macro_rules! pr_debug {
    ($($arg:tt)*) => {
        $crate::log::print($crate::log::Level::Debug, None, format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_prefixes_match_criu() {
        let err = format_record(Level::Error, Some(("a.rs", 7)), format_args!("bad {}", 1));
        assert_eq!(err, "Error (a.rs:7): bad 1\n");
        let warn = format_record(Level::Warn, Some(("a.rs", 8)), format_args!("hmm\n"));
        assert_eq!(warn, "Warn  (a.rs:8): hmm\n");
        let info = format_record(Level::Info, None, format_args!("x"));
        assert_eq!(info, "x\n");
    }

    #[test]
    fn timestamp_format() {
        assert_eq!(format_timestamp(123_000), "(00.000123) ");
        assert_eq!(format_timestamp(12_345_678_000), "(12.345678) ");
        assert_eq!(format_timestamp(123_000_000_000), "(123.000000) ");
    }

    #[test]
    fn a_panic_record_names_thread_site_and_message() {
        let p: Box<dyn std::any::Any + Send> = Box::new(String::from("index out of bounds"));
        let r = panic_record(Some("dump-0"), Some(("core/src/x.rs", 9)), p.as_ref());
        assert!(
            r.starts_with("BUG: thread 'dump-0' panicked at core/src/x.rs:9: index out of bounds"),
            "{r}"
        );
        let p: Box<dyn std::any::Any + Send> = Box::new("boom");
        assert!(
            panic_record(None, None, p.as_ref())
                .starts_with("BUG: thread '<unnamed>' panicked: boom")
        );
    }

    #[test]
    fn stdout_target_from_dash() {
        assert_eq!(Target::from_arg("-"), Target::Stdout);
        assert_eq!(
            Target::from_arg("dump.log"),
            Target::File("dump.log".into())
        );
    }
}
