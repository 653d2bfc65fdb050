//! From argv to a command and typed [`Opts`], with CRIU's checks and
//! messages.

use std::path::PathBuf;

use clap::ArgMatches;
use criu_core::log::Target;
use criu_core::opts::{
    CgroupMode, CgroupRoot, CommonOpts, CpuCap, DumpOpts, ExtMount, FinalState, InheritFd, JoinNs,
    Opts, OptsError, RestoreOpts, parse_size,
};

use crate::{given, table};

/// The commands CRIU knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Dump,
    PreDump,
    Restore,
    Check,
    PageServer,
    Service,
    LazyPages,
    Dedup,
    CpuinfoDump,
    CpuinfoCheck,
    /// `criu coredump`: core files from images (CRIU's `criu-coredump`).
    Coredump,
    /// Deprecated commands CRIU still names in its messages.
    Exec,
    Show,
}

/// A command to run, with its options.
#[derive(Debug)]
pub struct Run {
    pub command: Command,
    pub opts: Opts,
    /// Warnings about the options, for the log once it is open.
    pub warnings: Vec<String>,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<Run>),
    Help,
    Version,
    /// `--feature list`: print the feature names.
    ListFeatures,
}

/// A command line CRIU would reject, and how CRIU reports it: as an error
/// (`Error (file:line): ...` on stderr) or as a plain message on stdout,
/// followed by the short usage when `usage` is set.
#[derive(Debug)]
pub struct UsageError {
    pub message: String,
    pub usage: bool,
    pub plain: bool,
}

impl UsageError {
    fn new(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
            usage: false,
            plain: false,
        }
    }

    /// An error (`Error (...): MESSAGE` on stderr), without the usage.
    pub fn error(message: impl Into<String>) -> Self {
        UsageError::new(message)
    }

    fn message(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
            usage: false,
            plain: true,
        }
    }

    fn with_usage(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
            usage: true,
            plain: true,
        }
    }
}

impl From<OptsError> for UsageError {
    fn from(e: OptsError) -> Self {
        UsageError::new(e.to_string())
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<String>) -> Result<Invocation, UsageError> {
    if args.is_empty() {
        return Err(UsageError::with_usage(""));
    }
    // CRIU looks for -h/--help before anything else so that help works even
    // with otherwise bad arguments.
    if args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "-h" || a == "--help")
    {
        return Ok(Invocation::Help);
    }
    let mut words = config_args(&args);
    words.extend(args);
    let mut argv = vec!["criu".to_owned()];
    argv.extend(table::normalize(words));
    let m = table::command()
        .try_get_matches_from(argv)
        .map_err(clap_error)?;

    if m.get_flag("version") {
        return Ok(Invocation::Version);
    }
    if m.get_flag("ms") {
        return Err(UsageError::new(
            "--ms is deprecated; see \"Check options\" of criu --help",
        ));
    }
    if value(&m, "feature").as_deref() == Some("list") {
        return Ok(Invocation::ListFeatures);
    }

    let opts = build_opts(&m)?;
    // CRIU closes them while it parses, before anything else happens.
    given::close_fds(&m);

    let words: Vec<String> = m
        .get_many::<String>("COMMAND")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let Some((name, rest)) = words.split_first() else {
        return Err(UsageError::with_usage("Error: command is required"));
    };
    let exec_cmd = m.get_flag("exec-cmd");
    let command = command_of(name, rest)?;

    let mut opts = opts;
    if exec_cmd {
        if rest.is_empty() {
            return Err(UsageError::with_usage(
                "Error: --exec-cmd requires a command",
            ));
        }
        if command != Command::Restore {
            return Err(UsageError::with_usage(
                "Error: --exec-cmd is available for the restore command only",
            ));
        }
        if opts.restore.detached {
            return Err(UsageError::with_usage(
                "Error: --restore-detached and --exec-cmd cannot be used together",
            ));
        }
        opts.restore.exec_cmd = Some(rest.to_vec());
        // As CRIU: criu does not wait for the tree, the command it becomes
        // is the tree's parent.
        opts.restore.detached = true;
    } else if !matches!(command, Command::CpuinfoDump | Command::CpuinfoCheck) && !rest.is_empty()
        || rest.len() > 1
    {
        return Err(UsageError::with_usage(format!(
            "Error: excessive parameter{} for command {name}",
            if rest.len() > 1 { "s" } else { "" }
        )));
    }

    // Every option either acts or is refused here, before anything is
    // touched (CRIU's "--inherit-fd is restore-only option" among them).
    given::check(&command, &m)?;
    if matches!(command, Command::Dump | Command::PreDump) && opts.dump.tree.is_none() {
        return Err(UsageError::message("Error: pid not specified"));
    }
    let mut warnings = Vec::new();
    if command == Command::Restore && value(&m, "network-lock").is_some() {
        warnings.push("--network-lock will be ignored in restore command".to_owned());
    }
    Ok(Invocation::Run(Box::new(Run {
        command,
        opts,
        warnings,
    })))
}

/// The command a word names (`cpuinfo` takes its action from `rest`).
fn command_of(name: &str, rest: &[String]) -> Result<Command, UsageError> {
    Ok(match name {
        "dump" => Command::Dump,
        "pre-dump" => Command::PreDump,
        "restore" => Command::Restore,
        "check" => Command::Check,
        "page-server" => Command::PageServer,
        "service" => Command::Service,
        "lazy-pages" => Command::LazyPages,
        "dedup" => Command::Dedup,
        "coredump" => Command::Coredump,
        "exec" => Command::Exec,
        "show" => Command::Show,
        "cpuinfo" => match rest.first().map(String::as_str) {
            Some("dump") => Command::CpuinfoDump,
            Some("check") => Command::CpuinfoCheck,
            None => {
                return Err(UsageError::with_usage(
                    "Error: cpuinfo requires an action: dump or check",
                ));
            }
            Some(other) => {
                return Err(UsageError::with_usage(format!(
                    "Error: unknown command: {other}"
                )));
            }
        },
        other => {
            return Err(UsageError::with_usage(format!(
                "Error: unknown command: {other}"
            )));
        }
    })
}

/// Options from CRIU's configuration files, to go before the command line
/// (which therefore wins): `/etc/criu/default.conf` and
/// `$HOME/.criu/default.conf` (unless `--no-default-config` or `--config`),
/// then `$CRIU_CONFIG_FILE`, then `--config FILE`. Missing files are
/// skipped, as CRIU does.
fn config_args(args: &[String]) -> Vec<String> {
    let mut defaults = true;
    let mut explicit = None;
    let mut iter = args.iter().take_while(|a| *a != "--");
    while let Some(a) = iter.next() {
        if a == "--no-default-config" {
            defaults = false;
        } else if a == "--config" {
            explicit = iter.next().cloned();
            defaults = false;
        } else if let Some(file) = a.strip_prefix("--config=") {
            explicit = Some(file.to_owned());
            defaults = false;
        }
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if defaults {
        files.push(PathBuf::from("/etc/criu/default.conf"));
        if let Some(home) = std::env::var_os("HOME") {
            files.push(PathBuf::from(home).join(".criu/default.conf"));
        }
    }
    if let Some(env) = std::env::var_os("CRIU_CONFIG_FILE") {
        files.push(PathBuf::from(env));
    }
    files.extend(explicit.map(PathBuf::from));
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| criu_core::opts::parse_config(&text))
        .collect()
}

/// Renders a clap error as one CRIU-style line.
fn clap_error(e: clap::Error) -> UsageError {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // getopt's wording for the most common mistake.
    let first = match e.kind() {
        clap::error::ErrorKind::UnknownArgument => first
            .replace("unexpected argument", "unrecognized option")
            .replace(" found", ""),
        _ => first.to_owned(),
    };
    UsageError::with_usage(format!("Error: {first}"))
}

fn value(m: &ArgMatches, id: &str) -> Option<String> {
    m.get_one::<String>(id).cloned()
}

fn values(m: &ArgMatches, id: &str) -> Vec<String> {
    m.get_many::<String>(id)
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

fn path(m: &ArgMatches, id: &str) -> Option<PathBuf> {
    value(m, id).map(PathBuf::from)
}

fn paths(m: &ArgMatches, id: &str) -> Vec<PathBuf> {
    values(m, id).into_iter().map(PathBuf::from).collect()
}

/// A `--NAME` / `--no-NAME` pair: whether it ended up on (clap keeps only the
/// last of the two).
fn bool_opt(m: &ArgMatches, id: &str) -> bool {
    debug_assert!(table::spec(id).is_some());
    m.get_flag(id)
}

/// `atoi`-style positive number, or CRIU's "invalid argument" error.
fn positive<T: std::str::FromStr + PartialOrd + Default>(
    m: &ArgMatches,
    id: &'static str,
) -> Result<Option<T>, UsageError> {
    let Some(v) = value(m, id) else {
        return Ok(None);
    };
    match v.trim().parse::<T>() {
        Ok(n) if n > T::default() => Ok(Some(n)),
        _ => Err(bad_arg(id, &v)),
    }
}

fn number<T: std::str::FromStr>(m: &ArgMatches, id: &'static str) -> Result<Option<T>, UsageError> {
    let Some(v) = value(m, id) else {
        return Ok(None);
    };
    v.trim().parse::<T>().map(Some).map_err(|_| bad_arg(id, &v))
}

fn bad_arg(id: &str, v: &str) -> UsageError {
    let short = table::spec(id).and_then(|s| s.short);
    match short {
        Some(c) => UsageError::new(format!("invalid argument for -{c}: {v}")),
        None => UsageError::new(format!("invalid argument for --{id}: {v}")),
    }
}

/// CRIU's verbosity arithmetic over every `-v`/`--verbosity` given, in order:
/// no argument adds one, `v...` adds its length plus one (`-vvv`), a number
/// sets the level.
pub fn verbosity(args: &[String], start: u32) -> u32 {
    args.iter().fold(start, |level, a| {
        if a.is_empty() {
            level + 1
        } else if a.starts_with('v') {
            level + a.len() as u32 + 1
        } else {
            // atoi: leading digits, anything else is 0.
            let digits: String = a.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or(0)
        }
    })
}

fn build_opts(m: &ArgMatches) -> Result<Opts, UsageError> {
    let mut o = Opts::default();
    dirs_and_log(m, &mut o.common)?;
    objects(m, &mut o.common)?;
    cgroups_and_mounts(m, &mut o.common)?;
    limits_lock_tls_pages(m, &mut o.common)?;
    dump_opts(m, &mut o.dump)?;
    restore_opts(m, &mut o.restore)?;
    let k = &mut o.check;
    k.extra = bool_opt(m, "extra") || m.get_flag("all");
    k.experimental = bool_opt(m, "experimental") || m.get_flag("all");
    k.feature = value(m, "feature");
    o.coredump_out = path(m, "out");
    Ok(o)
}

/// Where images, work files, logs and the pidfile go; who runs, and how.
fn dirs_and_log(m: &ArgMatches, c: &mut CommonOpts) -> Result<(), UsageError> {
    if let Some(d) = path(m, "images-dir") {
        c.images_dir = d;
    }
    c.work_dir = path(m, "work-dir");
    c.log.level = verbosity(&values(m, "verbosity"), c.log.level);
    if let Some(f) = value(m, "log-file") {
        c.log.target = Target::from_arg(&f);
    }
    c.log.per_pid_files = bool_opt(m, "log-pid");
    c.pidfile = path(m, "pidfile");
    c.action_scripts = paths(m, "action-script");
    c.root = path(m, "root");
    c.unprivileged = bool_opt(m, "unprivileged");
    c.display_stats = bool_opt(m, "display-stats");
    if let Some(v) = value(m, "status-fd") {
        c.status_fd = Some(
            v.trim()
                .parse()
                .map_err(|_| UsageError::new("Unable to parse a value of --status-fd"))?,
        );
    }
    Ok(())
}

/// The options about kinds of objects: external ones, shell jobs, locks,
/// sockets and files.
fn objects(m: &ArgMatches, c: &mut CommonOpts) -> Result<(), UsageError> {
    c.set_external(values(m, "external"))
        .map_err(|v| bad_arg("external", &v))?;
    c.shell_job = bool_opt(m, "shell-job");
    c.file_locks = bool_opt(m, "file-locks");
    let ext_unix = values(m, "ext-unix-sk");
    c.ext_unix_sk = !ext_unix.is_empty();
    for v in ext_unix.iter().filter(|v| !v.is_empty()) {
        for ino in v.split(',') {
            let ino = ino.parse().map_err(|_| {
                UsageError::new(format!(
                    "Failed to parse unix socket inode from optarg: {v}"
                ))
            })?;
            c.ext_unix_sk_inodes.push(ino);
        }
    }
    c.tcp_established = bool_opt(m, "tcp-established");
    c.tcp_skip_in_flight = bool_opt(m, "skip-in-flight");
    c.tcp_close = bool_opt(m, "tcp-close");
    c.link_remap = bool_opt(m, "link-remap");
    c.evasive_devices = bool_opt(m, "evasive-devices");
    c.force_irmap = bool_opt(m, "force-irmap");
    c.irmap_scan_paths = paths(m, "irmap-scan-path");
    Ok(())
}

/// Cgroups and mounts.
fn cgroups_and_mounts(m: &ArgMatches, c: &mut CommonOpts) -> Result<(), UsageError> {
    if let Some(mode) = values(m, "manage-cgroups").last() {
        // A bare --manage-cgroups means "soft".
        c.manage_cgroups = if mode.is_empty() {
            CgroupMode::Soft
        } else {
            mode.parse()?
        };
    }
    for r in values(m, "cgroup-root") {
        c.cgroup_roots.push(r.parse::<CgroupRoot>()?);
    }
    c.cgroup_props = value(m, "cgroup-props");
    c.cgroup_props_file = path(m, "cgroup-props-file");
    c.cgroup_dump_controllers = values(m, "cgroup-dump-controller");
    c.cgroup_yard = path(m, "cgroup-yard");
    for e in values(m, "ext-mount-map") {
        if e == "auto" {
            c.auto_ext_mounts = true;
            continue;
        }
        let (key, val) = e
            .split_once(':')
            .ok_or_else(|| bad_arg("ext-mount-map", &e))?;
        c.ext_mounts.push(ExtMount {
            key: key.to_owned(),
            val: val.to_owned(),
        });
    }
    // (`--external mnt[]:s` / `mnt[]:m` may have set them too.)
    c.enable_external_sharing |= m.get_flag("enable-external-sharing");
    c.enable_external_masters |= m.get_flag("enable-external-masters");
    c.skip_mounts = paths(m, "skip-mnt");
    for fs in values(m, "enable-fs") {
        c.enable_fs
            .extend(fs.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    Ok(())
}

/// Timeouts and limits, the network lock, TLS, file checks and the page
/// server.
fn limits_lock_tls_pages(m: &ArgMatches, c: &mut CommonOpts) -> Result<(), UsageError> {
    c.libdir = path(m, "libdir");
    if let Some(t) = number(m, "timeout")? {
        c.timeout = t;
    }
    c.lsm_profile = value(m, "lsm-profile");
    c.lsm_mount_context = value(m, "lsm-mount-context");
    if let Some(n) = value(m, "network-lock") {
        c.network_lock = n.parse()?;
    }
    c.deprecated = bool_opt(m, "deprecated") || std::env::var_os("CRIU_DEPRECATED").is_some();
    c.stream = bool_opt(m, "stream");
    c.tls.enabled = bool_opt(m, "tls");
    c.tls.cacert = path(m, "tls-cacert");
    c.tls.cacrl = path(m, "tls-cacrl");
    c.tls.cert = path(m, "tls-cert");
    c.tls.key = path(m, "tls-key");
    c.tls.no_cn_verify = m.get_flag("tls-no-cn-verify");
    if let Some(v) = value(m, "file-validation") {
        c.file_validation = v.parse()?;
    }
    c.skip_file_rwx_check = bool_opt(m, "skip-file-rwx-check");
    for cap in values(m, "cpu-cap") {
        c.cpu_cap = CpuCap::parse(if cap.is_empty() { None } else { Some(&cap) })?;
    }
    c.weak_sysctls = bool_opt(m, "weak-sysctls");
    c.mntns_compat_mode = bool_opt(m, "mntns-compat-mode");
    if let Some(g) = value(m, "ghost-limit") {
        c.ghost_limit = parse_size(&g)?;
    }
    c.ghost_fiemap = bool_opt(m, "ghost-fiemap");
    c.lazy_pages = m.get_flag("lazy-pages");
    c.auto_dedup = bool_opt(m, "auto-dedup");
    c.use_page_server = bool_opt(m, "page-server");
    c.address = value(m, "address");
    c.port = positive(m, "port")?;
    c.ps_socket = number(m, "ps-socket")?;

    Ok(())
}

/// What a dump does with the tree, and its memory options.
fn dump_opts(m: &ArgMatches, d: &mut DumpOpts) -> Result<(), UsageError> {
    d.tree = positive(m, "tree")?;
    if m.get_flag("leave-stopped") {
        d.final_state = FinalState::Stopped;
    }
    if m.get_flag("leave-running") {
        d.final_state = FinalState::Alive;
    }
    // getopt applies -s and -R in order; the later one wins.
    if m.get_flag("leave-stopped") && m.get_flag("leave-running") {
        let s = m.index_of("leave-stopped").unwrap_or(0);
        let r = m.index_of("leave-running").unwrap_or(0);
        d.final_state = if s > r {
            FinalState::Stopped
        } else {
            FinalState::Alive
        };
    }
    d.track_mem = bool_opt(m, "track-mem");
    d.prev_images_dir = path(m, "prev-images-dir");
    if let Some(v) = value(m, "pre-dump-mode") {
        d.pre_dump_mode = v.parse()?;
    }
    d.freeze_cgroup = path(m, "freeze-cgroup");
    d.allow_uprobes = bool_opt(m, "allow-uprobes");
    if let Some(ns) = value(m, "empty-ns") {
        if ns != "net" {
            return Err(OptsError::EmptyNs(ns).into());
        }
        d.empty_net_ns = true;
    }

    Ok(())
}

/// A restore's options.
fn restore_opts(m: &ArgMatches, r: &mut RestoreOpts) -> Result<(), UsageError> {
    r.detached = bool_opt(m, "restore-detached") || bool_opt(m, "daemon");
    r.sibling = bool_opt(m, "restore-sibling");
    for i in values(m, "inherit-fd") {
        r.inherit_fds.push(i.parse::<InheritFd>()?);
    }
    for j in values(m, "join-ns") {
        r.join_ns
            .push(j.parse::<JoinNs>().map_err(|_| bad_arg("join-ns", &j))?);
    }
    if let Some(ns) = value(m, "empty-ns") {
        if ns != "net" {
            return Err(OptsError::EmptyNs(ns).into());
        }
        r.empty_net_ns = true;
    }
    for v in values(m, "veth-pair") {
        let (a, b) = v.split_once('=').ok_or_else(|| bad_arg("veth-pair", &v))?;
        r.veth_pairs.push((a.to_owned(), b.to_owned()));
    }
    if r.sibling && !r.detached {
        return Err(OptsError::SiblingWithoutDetach.into());
    }

    Ok(())
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
