//! `criu`: the command-line front end, compatible with CRIU's.
//!
//! Parsing lives in [`cli`] (with the option table in [`table`]), the texts
//! in [`usage`], and what each command does in [`commands`]. Exit status:
//! 0 on success, 1 on failure (as CRIU), [`commands::EXIT_NOT_IMPLEMENTED`]
//! for commands this implementation does not have yet.

mod cli;
mod commands;
mod given;
mod privilege;
mod table;
mod usage;

use criu_core::opts::version;
use criu_core::{check, log, pr_err, pr_info, pr_msg, pr_warn};

use crate::cli::{Invocation, UsageError};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A panic is a bug, but never a silent one: it goes to the log (and
    // stderr) and the tool fails with CRIU's exit status for a failure.
    log::log_panics();
    let code = std::panic::catch_unwind(|| run(args)).unwrap_or(1);
    std::process::exit(code);
}

fn run(args: Vec<String>) -> i32 {
    // `criu swrk FD` comes from libcriu-style clients and is handled before
    // any option parsing, as CRIU does.
    if args.first().map(String::as_str) == Some("swrk") {
        return commands::swrk(&args[1..]);
    }
    let invocation = match cli::parse(args) {
        Ok(inv) => inv,
        Err(e) => return usage_error(e),
    };
    let run = match invocation {
        Invocation::Help => {
            print!("{}", usage::help(&check::feature_names()));
            return 0;
        }
        Invocation::Version => {
            pr_msg!("Version: {}", version::STRING);
            pr_msg!("GitID: {}", version::GITID);
            return 0;
        }
        Invocation::ListFeatures => {
            pr_msg!("{}", check::feature_names().join(" "));
            return 0;
        }
        Invocation::Run(run) => run,
    };
    let cli::Run {
        command,
        opts,
        warnings,
    } = *run;

    if let Some(name) = &opts.check.feature
        && check::feature(name).is_none()
    {
        pr_err!("Unknown feature {name}");
        eprintln!("Valid features are: {}", check::feature_names().join(", "));
        return 1;
    }

    let common = &opts.common;
    if command != cli::Command::Service && !common.images_dir.is_dir() {
        pr_err!(
            "Can't open dir {}: {}",
            common.images_dir.display(),
            dir_error(&common.images_dir)
        );
        return 1;
    }
    if !common.work_dir().is_dir() {
        pr_err!(
            "Can't change directory to {}: {}",
            common.work_dir().display(),
            dir_error(common.work_dir())
        );
        return 1;
    }
    if let Err(e) = log::init(&common.log_config()) {
        pr_err!("{e}");
        return 1;
    }
    log::log_banner(version::STRING, version::GITID);
    for w in &warnings {
        pr_warn!("{w}");
    }
    if opts.common.deprecated {
        // CRIU's words; nothing deprecated is implemented here, so the
        // switch permits nothing more.
        match std::env::var_os("CRIU_DEPRECATED") {
            Some(_) => pr_info!("Turn deprecated stuff ON via env"),
            None => pr_info!("Turn deprecated stuff ON"),
        }
    }
    if matches!(
        command,
        cli::Command::Dump | cli::Command::PreDump | cli::Command::Restore
    ) && privilege::check(common.unprivileged).is_err()
    {
        return 1;
    }
    commands::dispatch(&command, &opts)
}

/// Why `path` is not a usable directory, in `strerror` words.
fn dir_error(path: &std::path::Path) -> String {
    match std::fs::metadata(path) {
        Ok(_) => "Not a directory".to_owned(),
        Err(e) => {
            let text = e.to_string();
            text.split(" (os error").next().unwrap_or(&text).to_owned()
        }
    }
}

/// Reports a rejected command line as CRIU does: plain messages (and the
/// short usage) on stdout, bad option values as errors on stderr.
fn usage_error(e: UsageError) -> i32 {
    if !e.message.is_empty() {
        if e.plain {
            pr_msg!("{}", e.message);
        } else {
            pr_err!("{}", e.message);
        }
    }
    if e.usage {
        pr_msg!("{}{}", usage::USAGE, usage::TRY_HELP.trim_end());
    }
    1
}
