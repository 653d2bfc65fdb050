//! Unit tests of the command-line parsing (`cli.rs`).
use super::*;

fn run(args: &[&str]) -> (Command, Opts) {
    match parse(args.iter().map(|s| s.to_string()).collect()) {
        Ok(Invocation::Run(r)) => (r.command, r.opts),
        other => panic!("{args:?}: {other:?}"),
    }
}

fn err(args: &[&str]) -> String {
    match parse(args.iter().map(|s| s.to_string()).collect()) {
        Err(e) => e.message,
        Ok(other) => panic!("{args:?} parsed: {other:?}"),
    }
}

#[test]
fn verbosity_forms() {
    assert_eq!(run(&["check"]).1.common.log.level, 2);
    assert_eq!(run(&["check", "-v4"]).1.common.log.level, 4);
    assert_eq!(run(&["check", "-v0"]).1.common.log.level, 0);
    assert_eq!(run(&["check", "--verbosity=4"]).1.common.log.level, 4);
    assert_eq!(run(&["check", "-v"]).1.common.log.level, 3);
    assert_eq!(run(&["check", "-v", "-v"]).1.common.log.level, 4);
    assert_eq!(run(&["check", "-vv"]).1.common.log.level, 4);
    assert_eq!(run(&["check", "-vvv"]).1.common.log.level, 5);
    assert_eq!(run(&["check", "--verbosity"]).1.common.log.level, 3);
    assert_eq!(run(&["-v1", "check", "-v"]).1.common.log.level, 2);
}

#[test]
fn dump_options() {
    let (c, o) = run(&[
        "dump", "-t", "123", "-D", "/imgs", "-o", "dump.log", "-R", "-j",
    ]);
    assert_eq!(c, Command::Dump);
    assert_eq!(o.dump.tree, Some(123));
    assert_eq!(o.common.images_dir, PathBuf::from("/imgs"));
    assert_eq!(o.common.log.target, Target::File("dump.log".into()));
    assert_eq!(o.dump.final_state, FinalState::Alive);
    assert!(o.common.shell_job);
    let (_, o) = run(&["-D", "x", "--tree=7", "--leave-stopped", "dump"]);
    assert_eq!(o.dump.tree, Some(7));
    assert_eq!(o.dump.final_state, FinalState::Stopped);
    let (_, o) = run(&["dump", "-t7", "-o", "-"]);
    assert_eq!(o.common.log.target, Target::Stdout);
}

#[test]
fn bool_negation_last_wins() {
    assert!(
        !run(&["restore", "--shell-job", "--no-shell-job"])
            .1
            .common
            .shell_job
    );
    assert!(
        run(&["restore", "--no-shell-job", "--shell-job"])
            .1
            .common
            .shell_job
    );
    assert!(run(&["restore", "-d"]).1.restore.detached);
}

#[test]
fn abbreviated_long_options() {
    assert_eq!(run(&["dump", "--tre", "5"]).1.dump.tree, Some(5));
    // Ambiguous, as with getopt: --tree or --track-mem.
    assert!(err(&["dump", "--tr", "5"]).starts_with("Error: "));
}

#[test]
fn restore_exec_cmd() {
    let (_, o) = run(&["restore", "--exec-cmd", "--", "sh", "-c", "true"]);
    assert_eq!(
        o.restore.exec_cmd,
        Some(vec!["sh".into(), "-c".into(), "true".into()])
    );
    assert!(err(&["dump", "-t", "1", "--exec-cmd", "--", "x"]).contains("restore command only"));
}

#[test]
fn errors_like_criu() {
    assert_eq!(err(&["dump"]), "Error: pid not specified");
    assert_eq!(err(&["dump", "-t", "0"]), "invalid argument for -t: 0");
    assert_eq!(err(&["dump", "-t", "abc"]), "invalid argument for -t: abc");
    assert_eq!(err(&["-D", "x"]), "Error: command is required");
    assert_eq!(err(&["frob"]), "Error: unknown command: frob");
    assert_eq!(
        err(&["check", "extra"]),
        "Error: excessive parameter for command check"
    );
    assert_eq!(
        err(&["cpuinfo"]),
        "Error: cpuinfo requires an action: dump or check"
    );
    assert!(err(&["restore", "-S"]).contains("--restore-sibling only makes sense"));
    assert!(err(&["check", "--bogus"]).starts_with("Error: "));
    assert!(err(&["dump", "-t", "1", "--inherit-fd", "fd[3]:x"]).contains("restore-only"));
    assert!(err(&["check", "--ms"]).contains("deprecated"));
}

/// The options as parsed, before the support table has its say.
fn parsed(args: &[&str]) -> Opts {
    let mut argv = vec!["criu".to_owned()];
    argv.extend(table::normalize(
        args.iter().map(|s| s.to_string()).collect(),
    ));
    build_opts(&table::command().try_get_matches_from(argv).unwrap()).unwrap()
}

#[test]
fn optional_arguments() {
    let o = parsed(&["restore", "--manage-cgroups"]);
    assert_eq!(o.common.manage_cgroups, CgroupMode::Soft);
    let o = parsed(&["restore", "--manage-cgroups=full"]);
    assert_eq!(o.common.manage_cgroups, CgroupMode::Full);
    let (_, o) = run(&["restore", "--manage-cgroups=ignore"]);
    assert_eq!(o.common.manage_cgroups, CgroupMode::Ignore);
    let (_, o) = run(&["dump", "-t", "1", "-x"]);
    assert!(o.common.ext_unix_sk);
    let o = parsed(&["dump", "-t", "1", "-x123"]);
    assert_eq!(o.common.ext_unix_sk_inodes, vec![123]);
    // A bare --manage-cgroups is CRIU's soft, which acts.
    let (_, o) = run(&["restore", "--manage-cgroups"]);
    assert_eq!(o.common.manage_cgroups, CgroupMode::Soft);
    // Parsed as CRIU does, then refused: not implemented yet.
    assert_eq!(
        err(&["dump", "-t", "1", "-x123"]),
        "--ext-unix-sk=123 is not supported yet"
    );
}

#[test]
fn check_options() {
    let (c, o) = run(&["check", "--feature", "pagemap_scan"]);
    assert_eq!(c, Command::Check);
    assert_eq!(o.check.feature.as_deref(), Some("pagemap_scan"));
    let (_, o) = run(&["check", "--all"]);
    assert!(o.check.extra && o.check.experimental);
    assert!(matches!(
        parse(vec!["--feature".into(), "list".into()]),
        Ok(Invocation::ListFeatures)
    ));
}

#[test]
fn help_and_version() {
    assert!(matches!(parse(vec!["-h".into()]), Ok(Invocation::Help)));
    assert!(matches!(
        parse(vec!["dump".into(), "--help".into()]),
        Ok(Invocation::Help)
    ));
    assert!(matches!(parse(vec!["-V".into()]), Ok(Invocation::Version)));
    assert!(matches!(
        parse(vec!["--version".into()]),
        Ok(Invocation::Version)
    ));
}

#[test]
fn sizes_and_lists() {
    let o = parsed(&[
        "dump",
        "-t",
        "1",
        "--ghost-limit",
        "10M",
        "--external",
        "mnt[/a]:b",
        "--external",
        "tty[1:2]",
        "--timeout",
        "30",
        "--port",
        "1234",
    ]);
    assert_eq!(o.common.ghost_limit, 10 << 20);
    assert_eq!(
        o.common.external,
        vec!["mnt[/a]:b".to_string(), "tty[1:2]".to_string()]
    );
    assert_eq!(o.common.timeout, 30);
    assert_eq!(o.common.port, Some(1234));
    assert!(err(&["page-server", "--port", "0"]).contains("--port"));
    assert_eq!(
        err(&["dump", "-t", "1", "--external", "x"]),
        "--external is not supported yet"
    );
}
