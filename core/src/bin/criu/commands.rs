//! What each command does. Commands not implemented yet fail with
//! [`EXIT_NOT_IMPLEMENTED`] and say so; each gets its own function here so
//! that wiring one up is a one-line change.

use criu_core::hooks::Hooks;
use criu_core::opts::Opts;
use criu_core::{check, pr_err, pr_info, pr_msg, pr_warn, service};

use crate::cli::Command;

/// Exit status of a command this implementation does not have yet
/// (ENOSYS), distinct from CRIU's 1 for a failed operation.
pub const EXIT_NOT_IMPLEMENTED: i32 = 38;

pub fn dispatch(command: &Command, opts: &Opts) -> i32 {
    match command {
        Command::Check => run_check(opts),
        Command::Dump => dump(opts),
        Command::PreDump => pre_dump(opts),
        Command::Restore => {
            if opts.dump.tree.is_some() {
                pr_warn!("Using -t with criu restore is obsoleted");
            }
            restore(opts)
        }
        Command::PageServer => page_server(opts),
        Command::Service => service(opts),
        Command::LazyPages => not_implemented("lazy-pages"),
        Command::Dedup => dedup(opts),
        Command::CpuinfoDump => cpuinfo(opts, true),
        Command::CpuinfoCheck => cpuinfo(opts, false),
        Command::Coredump => coredump(opts),
        Command::Exec => {
            pr_msg!("The \"exec\" action is deprecated by the Compel library.");
            1
        }
        Command::Show => {
            pr_msg!("The \"show\" action is deprecated by the CRIT utility.");
            pr_msg!("To view an image use the \"crit decode -i $name --pretty\" command.");
            1
        }
    }
}

/// `criu swrk FD`: serve RPC requests on an inherited socket.
pub fn swrk(args: &[String]) -> i32 {
    if args.is_empty() {
        pr_msg!("Error: swrk requires a socket descriptor: criu swrk FD");
        return 1;
    }
    let Ok(raw) = args[0].parse::<i32>() else {
        pr_msg!("Error: bad socket descriptor {}: criu swrk FD", args[0]);
        return 1;
    };
    // `criu service` runs its workers as `criu swrk FD --service-worker`.
    let mode = match args.get(1) {
        Some(a) if a == service::daemon::WORKER_ARG => service::Mode::Service,
        _ => service::Mode::Swrk,
    };
    let sk = match criu_core::sys::fds::adopt(raw) {
        Ok(fd) => fd,
        Err(e) => {
            pr_err!("Can't use fd {raw} as the RPC socket: {e}");
            return 1;
        }
    };
    match service::serve(&sk, mode) {
        Ok(()) => 0,
        Err(e) => {
            pr_err!("{e}");
            1
        }
    }
}

/// `criu service`: serve RPC connections on a unix socket.
fn service(opts: &Opts) -> i32 {
    match service::daemon::run(&service::daemon::Config::from_opts(opts)) {
        Ok(()) => 0,
        Err(e) => {
            pr_err!("{e}");
            1
        }
    }
}

/// `criu page-server`: receive one dump's pages and write them as images.
fn page_server(opts: &Opts) -> i32 {
    use criu_core::page_server::listen;
    let c = &opts.common;
    let cfg = listen::Config {
        images_dir: c.images_dir.clone(),
        address: c.address.clone(),
        port: c.port,
        ps_socket: c.ps_socket,
        daemon: opts.restore.detached,
        pidfile: c.pidfile.as_deref().map(|p| c.in_work_dir(p)),
        status_fd: c.status_fd,
    };
    match listen::run(&cfg) {
        Ok(()) => 0,
        Err(e) => {
            pr_err!("{e}");
            1
        }
    }
}

/// `criu dump -t PID`: 0 on success; on failure the task is left running
/// and the error names the step that failed.
fn dump(opts: &Opts) -> i32 {
    let mut hooks = Hooks::scripts(&opts.common.action_scripts, &opts.common.images_dir);
    match criu_core::dump::dump(&opts.common, &opts.dump, &mut hooks) {
        Ok(()) => 0,
        Err(e) => {
            pr_err!("Dumping FAILED: {e}");
            1
        }
    }
}

/// `criu pre-dump`: one round of an iterative dump; the tree runs on.
fn pre_dump(opts: &Opts) -> i32 {
    let mut hooks = Hooks::scripts(&opts.common.action_scripts, &opts.common.images_dir);
    match criu_core::dump::pre_dump(&opts.common, &opts.dump, &mut hooks) {
        Ok(()) => 0,
        Err(e) => {
            pr_err!("Pre-dumping FAILED: {e}");
            1
        }
    }
}

/// `criu dedup`: punch the pages this images directory holds out of its
/// parent images.
fn dedup(opts: &Opts) -> i32 {
    let page = rustix::param::page_size() as u64;
    match criu_core::images::dedup::dedup_dir(&opts.common.images_dir, page) {
        Ok(freed) => {
            pr_info!("Deduplicated {freed} bytes of parent images");
            0
        }
        Err(e) => {
            pr_err!("Deduplication FAILED: {e}");
            1
        }
    }
}

/// `criu restore`: exit 0 once a detached task runs, else the task's own
/// exit code; 1 with an error message when the restore fails. With
/// `--exec-cmd`, a successful restore ends by running the command in place
/// of criu (same process, so it is the parent of the restored tree).
fn restore(opts: &Opts) -> i32 {
    let mut hooks = Hooks::scripts(&opts.common.action_scripts, &opts.common.images_dir);
    match criu_core::restore::run(opts, &mut hooks) {
        Ok(code) => match &opts.restore.exec_cmd {
            Some(cmd) => exec_cmd(cmd),
            None => code,
        },
        Err(e) => {
            pr_err!("Restore failed: {e}");
            1
        }
    }
}

/// Replaces criu with `cmd` (`execvp`); returns only on failure, as CRIU:
/// the restored tree keeps running, the exit code is 1.
fn exec_cmd(cmd: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let Some((prog, args)) = cmd.split_first() else {
        return 1;
    };
    pr_info!("Executing {}", cmd.join(" "));
    let e = std::process::Command::new(prog).args(args).exec();
    pr_err!("Failed to exec command {prog}: {e}");
    1
}

/// `criu cpuinfo dump|check`: write this CPU's `cpuinfo.img`, or check
/// the one in the images dir against this CPU (everything, unless
/// `--cpu-cap` narrows it).
fn cpuinfo(opts: &Opts, dump: bool) -> i32 {
    use criu_core::regs::cpuinfo;
    if !cpuinfo::COMMANDS {
        pr_err!("cpuinfo: not supported on this architecture (as in CRIU)");
        return 1;
    }
    let dir = &opts.common.images_dir;
    let done = if dump {
        cpuinfo::dump(dir)
    } else {
        cpuinfo::check_command(dir, opts.common.cpu_cap)
    };
    match done {
        Ok(()) => 0,
        Err(e) => {
            pr_err!("{e}");
            1
        }
    }
}

/// `criu coredump -D DIR [--out OUT]`: `core.PID` for every task of the
/// images in DIR, written into OUT (default: the current directory, as
/// `criu-coredump`).
fn coredump(opts: &Opts) -> i32 {
    let out = opts
        .coredump_out
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    match criu_core::coredump::run(&opts.common.images_dir, &out) {
        Ok(_) => 0,
        Err(e) => {
            pr_err!("coredump: {e}");
            1
        }
    }
}

fn not_implemented(what: &str) -> i32 {
    pr_err!("{what}: not implemented yet in this version of criu");
    EXIT_NOT_IMPLEMENTED
}

fn run_check(opts: &Opts) -> i32 {
    match check::run(&opts.check, opts.common.unprivileged) {
        Ok(verdict) => verdict.exit_code(),
        Err(e) => {
            pr_err!("{e}");
            1
        }
    }
}
