//! CRIU's command-line options as a table, turned into a clap command.
//!
//! CRIU parses with `getopt_long`; the table below keeps its names, short
//! letters and argument kinds so that existing scripts parse the same:
//! boolean options also exist as `--no-NAME` (the last one given wins),
//! options with an optional argument take it only attached (`-v4`,
//! `--verbosity=4`), and long names may be abbreviated while unambiguous.

use clap::{Arg, ArgAction, Command};

/// How an option takes its argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A switch without a `--no-` form.
    Flag,
    /// A switch that also has `--no-NAME` (CRIU's `BOOL_OPT`).
    Bool,
    /// One required argument; given twice, the last wins.
    Value,
    /// One required argument; every occurrence is kept.
    List,
    /// An optional argument, attached only (`--name=ARG`, `-cARG`); every
    /// occurrence is kept (`-v -v` counts twice).
    Optional,
}

/// One option: long name, short letter, argument kind.
pub struct Spec {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
}

const fn s(long: &'static str, short: char, kind: Kind) -> Spec {
    Spec {
        long,
        short: Some(short),
        kind,
    }
}

const fn l(long: &'static str, kind: Kind) -> Spec {
    Spec {
        long,
        short: None,
        kind,
    }
}

use Kind::{Bool, Flag, List, Optional, Value};

/// Every option CRIU 4.2 accepts (`criu/config.c`), `--help`/`--version`, and
/// `--out` of `criu coredump`.
pub const OPTIONS: &[Spec] = &[
    s("tree", 't', Value),
    s("leave-stopped", 's', Flag),
    s("leave-running", 'R', Flag),
    s("restore-detached", 'd', Bool),
    s("restore-sibling", 'S', Bool),
    l("daemon", Bool),
    s("images-dir", 'D', Value),
    s("work-dir", 'W', Value),
    s("log-file", 'o', Value),
    s("join-ns", 'J', List),
    s("root", 'r', Value),
    s("ext-unix-sk", 'x', Optional),
    s("help", 'h', Flag),
    l("tcp-established", Bool),
    l("close", List),
    l("log-pid", Bool),
    s("version", 'V', Flag),
    l("evasive-devices", Bool),
    l("pidfile", Value),
    l("veth-pair", List),
    l("action-script", List),
    l("link-remap", Bool),
    s("shell-job", 'j', Bool),
    s("file-locks", 'l', Bool),
    l("page-server", Bool),
    l("address", Value),
    l("port", Value),
    l("prev-images-dir", Value),
    l("ms", Flag),
    l("track-mem", Bool),
    l("auto-dedup", Bool),
    s("libdir", 'L', Value),
    l("cpu-cap", Optional),
    l("force-irmap", Bool),
    s("ext-mount-map", 'M', List),
    l("exec-cmd", Flag),
    l("manage-cgroups", Optional),
    l("cgroup-root", List),
    l("inherit-fd", List),
    l("feature", Value),
    l("skip-mnt", List),
    l("enable-fs", List),
    l("enable-external-sharing", Flag),
    l("enable-external-masters", Flag),
    l("freeze-cgroup", Value),
    l("ghost-limit", Value),
    l("irmap-scan-path", List),
    l("lsm-profile", Value),
    l("timeout", Value),
    l("external", List),
    l("empty-ns", Value),
    l("lazy-pages", Flag),
    l("extra", Bool),
    l("experimental", Bool),
    l("all", Flag),
    l("cgroup-props", Value),
    l("cgroup-props-file", Value),
    l("cgroup-dump-controller", List),
    l("skip-in-flight", Bool),
    l("deprecated", Bool),
    l("display-stats", Bool),
    l("weak-sysctls", Bool),
    l("status-fd", Value),
    l("tcp-close", Bool),
    s("verbosity", 'v', Optional),
    l("ps-socket", Value),
    l("stream", Bool),
    l("config", Value),
    l("no-default-config", Flag),
    l("tls-cacert", Value),
    l("tls-cacrl", Value),
    l("tls-cert", Value),
    l("tls-key", Value),
    l("tls", Bool),
    l("tls-no-cn-verify", Flag),
    l("cgroup-yard", Value),
    l("pre-dump-mode", Value),
    l("file-validation", Value),
    l("lsm-mount-context", Value),
    l("network-lock", Value),
    l("mntns-compat-mode", Bool),
    l("unprivileged", Bool),
    l("ghost-fiemap", Bool),
    l("skip-file-rwx-check", Bool),
    l("allow-uprobes", Bool),
    // `criu coredump`'s output directory (`criu-coredump -o`; `-o` is
    // criu's log file).
    l("out", Value),
];

/// Looks an option up by long name.
pub fn spec(long: &str) -> Option<&'static Spec> {
    OPTIONS.iter().find(|o| o.long == long)
}

/// The clap command for the table. Help and version are plain flags: the
/// binary prints CRIU-style texts for them itself.
pub fn command() -> Command {
    let mut cmd = Command::new("criu")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .infer_long_args(true)
        .args_override_self(true)
        .arg(Arg::new("COMMAND").num_args(0..).action(ArgAction::Append));
    for o in OPTIONS {
        let mut arg = Arg::new(o.long).long(o.long);
        if let Some(c) = o.short {
            arg = arg.short(c);
        }
        arg = match o.kind {
            Flag => arg.action(ArgAction::SetTrue),
            Bool => {
                let no = format!("no-{}", o.long);
                cmd = cmd.arg(
                    Arg::new(no.clone())
                        .long(no)
                        .action(ArgAction::SetTrue)
                        .overrides_with(o.long),
                );
                arg.action(ArgAction::SetTrue)
                    .overrides_with(format!("no-{}", o.long))
            }
            Value => arg
                .num_args(1)
                .action(ArgAction::Set)
                .allow_hyphen_values(true),
            List => arg
                .num_args(1)
                .action(ArgAction::Append)
                .allow_hyphen_values(true),
            Optional => arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("")
                .action(ArgAction::Append),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Rewrites the getopt forms clap does not read into ones it does: an
/// optional argument attached to a short option (`-v4`, `-vvv`, `-x123`)
/// becomes `--long=ARG`. Stops at `--`, after which everything is the
/// `--exec-cmd` command line.
pub fn normalize(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    for arg in iter.by_ref() {
        if arg == "--" {
            out.push(arg);
            break;
        }
        out.push(rewrite_attached_optional(arg));
    }
    out.extend(iter);
    out
}

fn rewrite_attached_optional(arg: String) -> String {
    let Some(rest) = arg.strip_prefix('-') else {
        return arg;
    };
    if rest.starts_with('-') {
        return arg;
    }
    let mut chars = rest.chars();
    let Some(c) = chars.next() else { return arg };
    let attached = chars.as_str();
    if attached.is_empty() || attached.starts_with('=') {
        return arg;
    }
    match OPTIONS
        .iter()
        .find(|o| o.short == Some(c) && o.kind == Optional)
    {
        Some(o) => format!("--{}={attached}", o.long),
        None => arg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_builds_and_names_are_unique() {
        command().debug_assert();
        let mut names: Vec<_> = OPTIONS.iter().map(|o| o.long).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPTIONS.len());
    }

    #[test]
    fn attached_optional_arguments() {
        let v = |a: &[&str]| normalize(a.iter().map(|s| s.to_string()).collect());
        assert_eq!(v(&["-v4"]), ["--verbosity=4"]);
        assert_eq!(v(&["-vvv"]), ["--verbosity=vv"]);
        assert_eq!(v(&["-v"]), ["-v"]);
        assert_eq!(v(&["-x123"]), ["--ext-unix-sk=123"]);
        assert_eq!(v(&["-t123"]), ["-t123"]);
        assert_eq!(v(&["--", "-v4"]), ["--", "-v4"]);
    }
}
