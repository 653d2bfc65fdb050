//! The options a command line gave, as the support table of
//! [`criu_core::opts::support`] names them, and the check that refuses the
//! ones this implementation does not have before anything is touched.

use clap::ArgMatches;
use criu_core::opts::support::{self, On, Style};

use crate::cli::{Command, UsageError};
use crate::table::{self, Kind};

/// The table's name for `command`.
pub fn on(command: &Command) -> On {
    match command {
        Command::Dump => On::DUMP,
        Command::PreDump => On::PRE_DUMP,
        Command::Restore => On::RESTORE,
        Command::Check => On::CHECK,
        Command::PageServer => On::PAGE_SERVER,
        Command::Service => On::SERVICE,
        Command::LazyPages => On::LAZY_PAGES,
        Command::Dedup => On::DEDUP,
        Command::CpuinfoDump | Command::CpuinfoCheck => On::CPUINFO,
        Command::Coredump => On::COREDUMP,
        // Deprecated commands only print why they are gone.
        Command::Exec | Command::Show => On::NONE,
    }
}

/// Every option given (on the command line or in a configuration file),
/// as `(long name, value)`; the value is empty for switches. A switch
/// turned off by its `--no-` form was not given.
pub fn given(m: &ArgMatches) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for spec in table::OPTIONS {
        let name = spec.long;
        if matches!(name, "help" | "version") {
            continue;
        }
        match spec.kind {
            Kind::Flag | Kind::Bool => {
                if m.get_flag(name) {
                    out.push((name, String::new()));
                }
            }
            Kind::Value | Kind::List | Kind::Optional => {
                for v in m.get_many::<String>(name).into_iter().flatten() {
                    // A bare --manage-cgroups means CRIU's "soft".
                    let v = match (name, v.as_str()) {
                        ("manage-cgroups", "") => "soft".to_owned(),
                        _ => v.clone(),
                    };
                    out.push((name, v));
                }
            }
        }
    }
    out
}

/// Refuses the first given option the table refuses for `command`.
pub fn check(command: &Command, m: &ArgMatches) -> Result<(), UsageError> {
    let given = given(m);
    support::check(
        support::CLI,
        Style::Cli,
        on(command),
        given.iter().map(|(n, v)| (*n, v.as_str())),
    )
    .map_err(|r| UsageError::error(r.0))
}

/// `--close FD`: CRIU closes each such descriptor of its own as it parses
/// the option (so that it is not inherited by what criu starts, the
/// restored tasks or `--exec-cmd`'s command). The number is read as
/// `atoi` reads it.
pub fn close_fds(m: &ArgMatches) {
    for v in m.get_many::<String>("close").into_iter().flatten() {
        let digits: String = v
            .trim_start()
            .chars()
            .enumerate()
            .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
            .map(|(_, c)| c)
            .collect();
        let fd: i32 = digits.parse().unwrap_or(0);
        criu_core::pr_info!("Closing fd {fd}");
        let _ = criu_core::sys::fds::close_number(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use criu_core::opts::support::CLI;

    /// Every option of the command line has a line in the support table,
    /// and every line names an option of the command line.
    #[test]
    fn every_option_has_a_support_entry() {
        for spec in table::OPTIONS {
            if matches!(spec.long, "help" | "version") {
                continue;
            }
            assert!(
                CLI.iter().any(|e| e.name() == spec.long),
                "--{} has no line in opts::support::CLI: say whether it works or is refused",
                spec.long
            );
        }
        for e in CLI {
            assert!(
                table::spec(e.name()).is_some(),
                "{} is in opts::support::CLI but not an option of criu",
                e.key
            );
        }
    }

    fn given_of(args: &[&str]) -> Vec<(&'static str, String)> {
        let mut argv = vec!["criu"];
        argv.extend_from_slice(args);
        given(&table::command().try_get_matches_from(argv).unwrap())
    }

    #[test]
    fn given_options_and_values() {
        assert_eq!(
            given_of(&["dump", "--manage-cgroups", "--shell-job", "--no-file-locks"]),
            [
                ("shell-job", String::new()),
                ("manage-cgroups", "soft".into())
            ]
        );
        assert_eq!(
            given_of(&["dump", "--external", "a", "--external", "b"]),
            [("external", "a".into()), ("external", "b".into())]
        );
        assert!(given_of(&["dump", "--tcp-established", "--no-tcp-established"]).is_empty());
    }
}
