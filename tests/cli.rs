//! The `criu` command line: CRIU's option forms, messages, exit codes and
//! log files, checked by running the binary.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::TempDir;

/// Exit status of commands not implemented yet (see `commands.rs`).
const NOT_IMPLEMENTED: i32 = 38;
/// `criu restore` on a directory without images: a plain failure. The log
/// tests below use it as a command that runs, logs an error and exits 1.
const NO_IMAGES: i32 = 1;

/// Whether the criu binary runs here at all: a foreign-arch build under
/// qemu-user cannot be executed without binfmt_misc (the exec fails, or a
/// shell fallback reports "cannot execute binary file").
fn runnable() -> bool {
    static RUNNABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *RUNNABLE.get_or_init(|| {
        Command::new(env!("CARGO_BIN_EXE_criu"))
            .arg("--version")
            .output()
            .map(|o| o.status.success() && o.stdout.starts_with(b"Version: "))
            .unwrap_or(false)
    })
}

/// Runs `criu ARGS` in `cwd`; `None` (the test skips) when the binary
/// cannot run here.
fn criu_in(cwd: &Path, args: &[&str]) -> Option<Output> {
    if !runnable() {
        // libtest names each test's thread after the test.
        let current = std::thread::current();
        common::skip(
            current.name().unwrap_or("criu_in"),
            "the criu binary cannot be executed here (qemu-user without binfmt_misc?)",
        );
        return None;
    }
    Some(
        Command::new(env!("CARGO_BIN_EXE_criu"))
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("run criu"),
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("log file")
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn version_prints_like_criu() {
    let dir = TempDir::new("cli-version");
    for flag in ["-V", "--version"] {
        let Some(o) = criu_in(dir.path(), &[flag]) else {
            return;
        };
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        assert!(out.starts_with("Version: 4.2\n"), "{out}");
        assert!(out.contains("GitID: criu-rs-"), "{out}");
    }
}

#[test]
fn help_and_usage() {
    let dir = TempDir::new("cli-help");
    let Some(o) = criu_in(dir.path(), &["--help"]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for needle in [
        "Usage:",
        "criu dump|pre-dump -t PID",
        "--feature FEAT",
        "mem_dirty_track",
        "-vNUM",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in help");
    }
    // No arguments: short usage, failure.
    let o = criu_in(dir.path(), &[]).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("Try -h|--help for more info"));
}

#[test]
fn usage_errors_exit_1_with_criu_messages() {
    let dir = TempDir::new("cli-errors");
    let cases: &[(&[&str], &str)] = &[
        (&["frob"], "Error: unknown command: frob"),
        (&["-D", "."], "Error: command is required"),
        (&["dump"], "Error: pid not specified"),
        (&["dump", "-t", "0"], "invalid argument for -t: 0"),
        (&["dump", "--tree=x"], "invalid argument for -t: x"),
        (
            &["check", "more"],
            "Error: excessive parameter for command check",
        ),
        (
            &["restore", "--restore-sibling"],
            "--restore-sibling only makes sense",
        ),
        (&["check", "--no-such-option"], "Error: "),
        (&["exec"], "The \"exec\" action is deprecated"),
        (&["show"], "The \"show\" action is deprecated"),
    ];
    for (args, message) in cases {
        let Some(o) = criu_in(dir.path(), args) else {
            return;
        };
        assert_eq!(
            o.status.code(),
            Some(1),
            "{args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let all = stdout(&o) + &stderr(&o);
        assert!(
            all.contains(message),
            "{args:?}: expected {message:?} in {all:?}"
        );
    }
}

#[test]
fn unimplemented_commands_say_so() {
    let dir = TempDir::new("cli-todo");
    let cases: &[&[&str]] = &[&["lazy-pages"]];
    for args in cases {
        let Some(o) = criu_in(dir.path(), args) else {
            return;
        };
        assert_eq!(o.status.code(), Some(NOT_IMPLEMENTED), "{args:?}");
        assert!(
            stderr(&o).contains("not implemented yet"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn log_file_goes_to_images_dir_with_mode_0600() {
    let dir = TempDir::new("cli-log");
    let imgs = dir.join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let Some(o) = criu_in(
        dir.path(),
        &[
            "restore",
            "-D",
            imgs.to_str().unwrap(),
            "-o",
            "restore.log",
            "-v4",
        ],
    ) else {
        return;
    };
    assert_eq!(o.status.code(), Some(NO_IMAGES));
    let log = imgs.join("restore.log");
    assert_eq!(mode(&log), 0o600);
    let text = std::fs::read_to_string(&log).unwrap();
    // -v4: timestamps, the version banner, the error with its source site.
    assert!(text.starts_with('('), "{text}");
    assert!(text.contains(") Version: 4.2 (gitid criu-rs-"), "{text}");
    assert!(text.contains("Error ("), "{text}");
    assert!(text.contains("inventory"), "{text}");
    // Nothing went to stderr: the log file took it.
    assert!(!stderr(&o).contains("inventory"), "{}", stderr(&o));
}

#[test]
fn log_file_is_relative_to_work_dir() {
    let dir = TempDir::new("cli-workdir");
    let imgs = dir.join("imgs");
    let work = dir.join("work");
    std::fs::create_dir(&imgs).unwrap();
    std::fs::create_dir(&work).unwrap();
    let Some(o) = criu_in(
        dir.path(),
        &[
            "restore",
            "-D",
            "imgs",
            "-W",
            "work",
            "-o",
            "restore.log",
            "--verbosity=4",
        ],
    ) else {
        return;
    };
    assert_eq!(o.status.code(), Some(NO_IMAGES));
    assert!(work.join("restore.log").exists());
    assert!(!imgs.join("restore.log").exists());
    assert_eq!(mode(&work.join("restore.log")), 0o600);
}

#[test]
fn default_level_has_no_timestamps_and_no_info() {
    let dir = TempDir::new("cli-level");
    let Some(o) = criu_in(dir.path(), &["restore", "-o", "r.log"]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(NO_IMAGES));
    let text = std::fs::read_to_string(dir.join("r.log")).unwrap();
    assert!(text.starts_with("Error ("), "{text}");
    assert!(!text.contains("Version:"), "{text}");
}

#[test]
fn log_to_stdout_with_dash_and_stderr_by_default() {
    let dir = TempDir::new("cli-dash");
    let Some(o) = criu_in(dir.path(), &["restore", "-o", "-"]) else {
        return;
    };
    assert!(stdout(&o).contains("inventory"), "{}", stdout(&o));
    let o = criu_in(dir.path(), &["restore"]).unwrap();
    assert!(stderr(&o).contains("inventory"), "{}", stderr(&o));
}

#[test]
fn log_file_is_truncated_and_never_follows_symlinks() {
    let dir = TempDir::new("cli-symlink");
    std::fs::write(dir.join("old.log"), "stale contents\n").unwrap();
    let Some(o) = criu_in(dir.path(), &["restore", "-o", "old.log"]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(NO_IMAGES));
    let text = std::fs::read_to_string(dir.join("old.log")).unwrap();
    assert!(!text.contains("stale"), "{text}");

    let target = dir.join("target");
    std::fs::write(&target, "precious\n").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("link.log")).unwrap();
    let o = criu_in(dir.path(), &["restore", "-o", "link.log"]).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Can't create log file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
}

#[test]
fn missing_images_dir_fails() {
    let dir = TempDir::new("cli-noimgs");
    let Some(o) = criu_in(dir.path(), &["check", "-D", "nope"]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Can't open dir nope"), "{}", stderr(&o));
}

#[test]
fn options_after_and_before_the_command() {
    let dir = TempDir::new("cli-order");
    // getopt permutes: options may come before or after the command, long
    // options take `=` or a separate argument, booleans have --no- forms.
    let forms: &[&[&str]] = &[
        &[
            "-v4",
            "-o",
            "a.log",
            "restore",
            "--shell-job",
            "--no-shell-job",
        ],
        &["restore", "-vv", "--log-file=b.log", "-d", "-S"],
        &[
            "restore",
            "-v",
            "-v",
            "--log-file",
            "c.log",
            "--manage-cgroups=full",
        ],
        &[
            "--images-dir",
            ".",
            "restore",
            "-o",
            "d.log",
            "-x",
            "--tcp-established",
            "-j",
            "-l",
        ],
    ];
    for args in forms {
        let Some(o) = criu_in(dir.path(), args) else {
            return;
        };
        assert_eq!(o.status.code(), Some(NO_IMAGES), "{args:?}: {}", stderr(&o));
    }
    // -vv is level 4 (CRIU's arithmetic): timestamps appear.
    let b = std::fs::read_to_string(dir.join("b.log")).unwrap();
    assert!(b.starts_with('('), "{b}");
}

#[test]
fn config_file_options_apply_and_command_line_wins() {
    let dir = TempDir::new("cli-config");
    std::fs::write(
        dir.join("my.conf"),
        "# test config\nlog-file from-config.log\nverbosity=4\n",
    )
    .unwrap();
    let Some(o) = criu_in(dir.path(), &["restore", "--config", "my.conf"]) else {
        return;
    };
    assert_eq!(o.status.code(), Some(NO_IMAGES), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.join("from-config.log")).unwrap();
    assert!(text.contains("Version: 4.2"), "{text}");
    // The command line overrides the file.
    let o = criu_in(
        dir.path(),
        &["restore", "--config=my.conf", "-o", "cli.log"],
    )
    .unwrap();
    assert_eq!(o.status.code(), Some(NO_IMAGES));
    assert!(dir.join("cli.log").exists());
}
