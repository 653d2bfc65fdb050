//! What this implementation does with each of CRIU's options and RPC
//! fields: one line per option, one rule for all of them.
//!
//! Every option of the `criu` command line ([`CLI`]) and every field of the
//! RPC's `criu_opts` ([`RPC`]) is in one of two groups:
//! - it **works** ([`Support::Works`]): it acts as CRIU's does, and the
//!   entry names the test that shows its effect (`FILE::TEST_FN`);
//! - it is **refused** before anything is touched (no process seized, no
//!   image or other file written but, over RPC, the request's log, which
//!   says why: what runtimes show their users): with CRIU's own wording where CRIU
//!   refuses it in the same case ([`Support::Refused`]), otherwise with
//!   "OPTION is not supported yet" ([`Support::NotYet`]), exit code 1 (an
//!   error response over RPC).
//!
//! An entry applies to the commands in its [`On`] set. An option given to a
//! command outside every entry's set has no meaning there and is ignored, as
//! CRIU ignores it (`criu restore --leave-running`). Keys may carry a value
//! (`manage-cgroups=ignore`): such an entry applies to that value only, a
//! value in angle brackets (`ext-unix-sk=<inode>`) to any non-empty value,
//! a value ending in `*` (`external=mnt[*`) to the values it starts, and
//! the bare key to whatever no valued entry matches.
//!
//! Flipping an option from refused to implemented is a one-line change here
//! (plus its test). `tests/options.rs` walks both tables: every refused
//! entry must refuse with its message and leave everything untouched, every
//! working one must name an existing test, and every option of the command
//! line table and every field of `rpc.proto` must have an entry.

use std::fmt;
use std::ops::BitOr;

/// A set of commands (CLI) or request types (RPC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct On(u16);

impl On {
    pub const DUMP: On = On(1 << 0);
    pub const PRE_DUMP: On = On(1 << 1);
    pub const RESTORE: On = On(1 << 2);
    pub const CHECK: On = On(1 << 3);
    pub const SERVICE: On = On(1 << 4);
    pub const PAGE_SERVER: On = On(1 << 5);
    pub const LAZY_PAGES: On = On(1 << 6);
    pub const DEDUP: On = On(1 << 7);
    pub const CPUINFO: On = On(1 << 8);
    /// `criu coredump` (CRIU's separate `criu-coredump` tool).
    pub const COREDUMP: On = On(1 << 9);
    pub const NONE: On = On(0);
    pub const ALL: On = On((1 << 10) - 1);
    /// Commands that take a process tree or its images.
    const TREE: On = On(Self::DUMP.0 | Self::PRE_DUMP.0 | Self::RESTORE.0);

    pub const fn contains(self, other: On) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub const fn without(self, other: On) -> On {
        On(self.0 & !other.0)
    }

    /// Each single command of the set, with its CLI name.
    pub fn commands(self) -> impl Iterator<Item = (On, &'static str)> {
        COMMAND_NAMES
            .iter()
            .copied()
            .filter(move |(c, _)| self.contains(*c))
    }

    /// The CLI name of a single command.
    pub fn name(self) -> &'static str {
        COMMAND_NAMES
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("?", |(_, n)| n)
    }
}

impl BitOr for On {
    type Output = On;
    fn bitor(self, rhs: On) -> On {
        On(self.0 | rhs.0)
    }
}

const COMMAND_NAMES: &[(On, &str)] = &[
    (On::DUMP, "dump"),
    (On::PRE_DUMP, "pre-dump"),
    (On::RESTORE, "restore"),
    (On::CHECK, "check"),
    (On::SERVICE, "service"),
    (On::PAGE_SERVER, "page-server"),
    (On::LAZY_PAGES, "lazy-pages"),
    (On::DEDUP, "dedup"),
    (On::CPUINFO, "cpuinfo"),
    (On::COREDUMP, "coredump"),
];

/// What happens to an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// It acts; `test` (`FILE::FUNCTION`) shows its effect.
    Works { test: &'static str },
    /// Implemented in another engineer's branch of the same issue; the lead
    /// turns it into [`Support::Works`] when that branch is merged.
    Pending { by: &'static str },
    /// Refused with "OPTION is not supported yet". `example` is an argument
    /// that requests it (for the CLI tests).
    NotYet { example: &'static str },
    /// Refused with CRIU's own `message` for this case (`{cmd}` stands for
    /// the command's name).
    Refused {
        example: &'static str,
        message: &'static str,
    },
}

/// One line of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The long option (without `--`) or RPC field, with `=VALUE` for an
    /// entry about one value only.
    pub key: &'static str,
    /// The commands (request types) it applies to.
    pub on: On,
    pub support: Support,
}

impl Entry {
    /// The option's name without a value.
    pub fn name(&self) -> &'static str {
        self.key.split_once('=').map_or(self.key, |(n, _)| n)
    }

    /// The value this entry is about, if any.
    pub fn value(&self) -> Option<&'static str> {
        self.key.split_once('=').map(|(_, v)| v)
    }

    fn matches_any_value(&self) -> bool {
        self.value()
            .is_some_and(|v| v.starts_with('<') && v.ends_with('>'))
    }

    /// A value ending in `*` stands for every value it starts
    /// (`external=net[*`: any `--external net[...]`).
    fn matches_prefix(&self, value: &str) -> bool {
        self.value()
            .and_then(|v| v.strip_suffix('*'))
            .is_some_and(|p| value.starts_with(p))
    }
}

/// A refused option: the message to print (CLI) or to answer (RPC).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// How names are shown in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `--name[=value]`.
    Cli,
    /// `field[=VALUE]`.
    Rpc,
}

impl fmt::Display for On {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.commands().map(|(_, n)| n).collect();
        write!(f, "{}", names.join("|"))
    }
}

/// The entry of `table` for option `name` given `value` (empty for none)
/// on command `cmd`, if any applies.
pub fn lookup(table: &'static [Entry], cmd: On, name: &str, value: &str) -> Option<&'static Entry> {
    let here = |e: &&Entry| e.name() == name && e.on.contains(cmd);
    table
        .iter()
        .filter(here)
        .find(|e| e.value() == Some(value) && !value.is_empty())
        .or_else(|| table.iter().filter(here).find(|e| e.matches_prefix(value)))
        .or_else(|| {
            table
                .iter()
                .filter(here)
                .find(|e| e.matches_any_value() && !value.is_empty())
        })
        .or_else(|| table.iter().filter(here).find(|e| e.value().is_none()))
}

/// Whether `table` has entries about single values of option `name`.
pub fn has_values(table: &[Entry], name: &str) -> bool {
    table
        .iter()
        .any(|e| e.name() == name && e.value().is_some())
}

/// Checks options given to command `cmd` (each `(name, value)`, value
/// empty when it has none): the first refusal, if any.
pub fn check<'a>(
    table: &'static [Entry],
    style: Style,
    cmd: On,
    given: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), Refusal> {
    for (name, value) in given {
        let Some(e) = lookup(table, cmd, name, value) else {
            continue;
        };
        let shown = match (style, e.value()) {
            (Style::Cli, Some(_)) => format!("--{name}={value}"),
            (Style::Cli, None) => format!("--{name}"),
            (Style::Rpc, Some(_)) => format!("{name}={value}"),
            (Style::Rpc, None) => name.to_owned(),
        };
        match e.support {
            Support::Works { .. } | Support::Pending { .. } => {}
            Support::NotYet { .. } => {
                return Err(Refusal(format!("{shown} is not supported yet")));
            }
            Support::Refused { message, .. } => {
                return Err(Refusal(message.replace("{cmd}", cmd.name())));
            }
        }
    }
    Ok(())
}

// The constructors keep each table line short.
const fn works(key: &'static str, on: On, test: &'static str) -> Entry {
    Entry {
        key,
        on,
        support: Support::Works { test },
    }
}

// No entry is pending now; kept for the next option implemented in a branch
// not merged yet.
#[allow(dead_code)]
const fn pending(key: &'static str, on: On, by: &'static str) -> Entry {
    Entry {
        key,
        on,
        support: Support::Pending { by },
    }
}

const fn not_yet(key: &'static str, on: On, example: &'static str) -> Entry {
    Entry {
        key,
        on,
        support: Support::NotYet { example },
    }
}

const fn refused(key: &'static str, on: On, example: &'static str, message: &'static str) -> Entry {
    Entry {
        key,
        on,
        support: Support::Refused { example, message },
    }
}

/// `On` sets as one expression in `const` context.
const fn or(a: On, b: On) -> On {
    On(a.0 | b.0)
}

const D: On = On::DUMP;
const PD: On = On::PRE_DUMP;
const R: On = On::RESTORE;
const CK: On = On::CHECK;
const SV: On = On::SERVICE;
const PS: On = On::PAGE_SERVER;
const LP: On = On::LAZY_PAGES;
const CI: On = On::CPUINFO;
const CD: On = On::COREDUMP;
const ALL: On = On::ALL;
const TREE: On = On::TREE;
const DR: On = or(D, R);
const DPD: On = or(D, PD);
const NOT_R: On = ALL.without(R);
/// Commands that send or serve pages over the network.
const NET: On = or(or(TREE, PS), LP);

/// The `criu` command line. Messages of [`Support::Refused`] are CRIU's.
#[rustfmt::skip]
pub const CLI: &[Entry] = &[
    works("tree", DPD, "tests/dump.rs::dump_kills_the_task_by_default"),
    works("leave-stopped", D, "tests/dump.rs::leave_stopped_keeps_the_task_stopped"),
    works("leave-running", D, "tests/dump.rs::dump_twice_with_leave_running"),
    works("restore-detached", R, "tests/restore_e2e.rs::pattern_program_survives_dump_and_restore"),
    works("daemon", or(R, SV), "tests/service_daemon.rs::detached_daemon"),
    works("daemon", PS, "tests/page_server.rs::detached_page_server_writes_its_pidfile"),
    works("restore-sibling", R, "tests/options_e2e.rs::restore_sibling_makes_the_caller_the_parent"),
    works("images-dir", ALL, "tests/cli.rs::options_after_and_before_the_command"),
    works("work-dir", ALL, "tests/cli.rs::log_file_is_relative_to_work_dir"),
    works("log-file", ALL, "tests/cli.rs::log_file_goes_to_images_dir_with_mode_0600"),
    works("log-pid", ALL, "tests/options_e2e.rs::log_pid_keeps_the_whole_log_in_one_file"),
    works("verbosity", ALL, "tests/cli.rs::default_level_has_no_timestamps_and_no_info"),
    not_yet("join-ns", R, "--join-ns=net:/proc/self/ns/net"),
    works("root", R, "tests/zdtm_mntns.rs::a_container_comes_back_with_its_mounts"),
    works("ext-unix-sk", DR, "tests/zdtm_files.rs::unix_socket_connected_outside_comes_back_with_ext_unix_sk"),
    not_yet("ext-unix-sk=<inode>", DR, "--ext-unix-sk=12345"),
    works("help", ALL, "tests/cli.rs::help_and_usage"),
    works("tcp-established", DR, "tests/zdtm_tcp.rs::tcp4_connection_with_bytes_in_flight_both_ways_comes_back"),
    works("close", ALL, "tests/options_e2e.rs::close_closes_the_fd_in_criu"),
    works("version", ALL, "tests/cli.rs::version_prints_like_criu"),
    // A device file whose path cannot be opened fails the restore, named;
    // looking for another path to the device is not done (see README).
    works("evasive-devices", R, "tests/zdtm_mntns.rs::a_container_comes_back_with_its_mounts"),
    works("pidfile", or(R, SV), "tests/service_daemon.rs::status_fd_pidfile_and_a_second_instance"),
    works("pidfile", PS, "tests/page_server.rs::detached_page_server_writes_its_pidfile"),
    works("veth-pair", R, "tests/zdtm_netns.rs::own_net_namespace_with_a_veth_is_dumped_and_restored_whole"),
    works("action-script", TREE, "tests/action_script.rs::actions_run_in_order_with_criu_environment"),
    // Read at dump only (a restore opens what the images say and ignores
    // it, as CRIU does).
    works("link-remap", D, "tests/zdtm_refuse.rs::an_unlinked_file_kept_by_another_link_is_restored_with_link_remap"),
    works("shell-job", DR, "tests/foreign.rs::bash_loop_restores_as_a_shell_job"),
    works("file-locks", DR, "tests/zdtm_anonfd.rs::file_locks_are_held_again_after_restore"),
    works("page-server", D, "tests/page_server.rs::ours_to_ours_private_memory"),
    not_yet("page-server", PD, "--page-server"),
    works("address", SV, "tests/service_daemon.rs::status_fd_pidfile_and_a_second_instance"),
    works("address", or(D, PS), "tests/page_server.rs::ours_to_ours_private_memory"),
    works("port", or(D, PS), "tests/page_server.rs::we_dump_into_criu_page_server"),
    not_yet("port", LP, "--port=1"),
    works("prev-images-dir", DPD, "tests/predump.rs::memory_written_between_rounds_comes_back"),
    refused("ms", ALL, "--ms", "--ms is deprecated; see \"Check options\" of criu --help"),
    works("track-mem", DPD, "tests/predump.rs::memory_written_between_rounds_comes_back"),
    works("auto-dedup", DPD, "tests/predump.rs::dedup_gives_back_parent_pages_and_the_chain_still_restores"),
    not_yet("auto-dedup", R, "--auto-dedup"),
    not_yet("libdir", TREE, "--libdir=/usr/lib/criu"),
    works("cpu-cap", or(DR, CI), "tests/options_e2e.rs::cpu_cap_writes_and_checks_cpuinfo"),
    works("out", CD, "tests/coredump.rs::gdb_shows_the_threads_the_call_chain_and_a_variable"),
    refused("out", ALL.without(CD), "--out=cores", "--out is an option of the coredump command only"),
    // Pre-dump writes no file images: CRIU only warms its path cache there.
    works("force-irmap", DPD, "tests/zdtm_anonfd.rs::inotify_watches_keep_their_wds"),
    works("ext-mount-map=auto", DR, "tests/zdtm_mntns.rs::auto_external_mounts"),
    works("ext-mount-map", DR, "tests/zdtm_mntns.rs::a_host_directory_is_dumped_only_as_external"),
    works("exec-cmd", R, "tests/options_e2e.rs::exec_cmd_runs_after_the_restore"),
    refused("exec-cmd", NOT_R, "--exec-cmd", "--exec-cmd is available for the restore command only"),
    works("manage-cgroups=ignore", DR, "tests/zdtm_cgroups.rs::manage_cgroups_ignore_dumps_without_them_and_restores_into_ours"),
    works("manage-cgroups=none", DR, "tests/zdtm_cgroups.rs::manage_cgroups_none_and_props_need_the_cgroups"),
    works("manage-cgroups=props", DR, "tests/zdtm_cgroups.rs::manage_cgroups_none_and_props_need_the_cgroups"),
    works("manage-cgroups=soft", DR, "tests/zdtm_cgroups.rs::a_tree_in_its_own_cgroups_comes_back_into_them"),
    works("manage-cgroups=full", DR, "tests/zdtm_cgroups.rs::manage_cgroups_full_and_strict"),
    works("manage-cgroups=strict", DR, "tests/zdtm_cgroups.rs::manage_cgroups_full_and_strict"),
    works("cgroup-root", DR, "tests/zdtm_cgroups.rs::cgroup_root_moves_the_tree"),
    works("inherit-fd", R, "tests/inherit_fd.rs::inherit_fd_gives_a_pipe_to_the_outside_a_new_reader"),
    refused("inherit-fd", NOT_R, "--inherit-fd=fd[3]:pipe:[1]", "--inherit-fd is restore-only option"),
    works("feature", CK, "tests/check.rs::feature_pagemap_scan"),
    not_yet("skip-mnt", DR, "--skip-mnt=/mnt"),
    // Read at dump only: a restore mounts what the images say (`fsname`),
    // and ignores the option as CRIU does.
    works("enable-fs", D, "tests/zdtm_mntns.rs::enable_fs_mounts_an_unknown_filesystem_again"),
    // Both only let `auto` take a shared or slave mount (as in CRIU); the
    // dump refuses by name sharing with the outside it cannot restore.
    works("enable-external-sharing", DR, "tests/zdtm_mntns.rs::auto_external_mounts"),
    works("enable-external-masters", DR, "tests/zdtm_mntns.rs::auto_external_mounts"),
    works("freeze-cgroup", DPD, "tests/zdtm_cgroups.rs::a_frozen_v2_cgroup_is_dumped_with_freeze_cgroup_and_left_frozen"),
    works("ghost-limit", D, "tests/zdtm_anonfd.rs::ghost_file_over_the_limit_is_refused_then_dumped_with_a_higher_limit"),
    not_yet("irmap-scan-path", DPD, "--irmap-scan-path=/"),
    not_yet("lsm-profile", R, "--lsm-profile=apparmor:unconfined"),
    works("timeout", DPD, "tests/zdtm_refuse.rs::a_task_that_never_stops_fails_the_dump_within_timeout"),
    works("external=mnt[*", DR, "tests/zdtm_mntns.rs::a_host_directory_is_dumped_only_as_external"),
    works("external=net[*", DR, "tests/zdtm_netns.rs::an_external_net_namespace_is_joined_from_inherit_fd"),
    works("external=veth[*", R, "tests/zdtm_netns.rs::a_fault_after_the_namespace_is_filled_leaves_no_link_behind"),
    // LXC's restore names its console so; CRIU looks nothing up by it.
    works("external=console:*", R, "tests/runtime_lxc.rs::lxc_checkpoint_restores_a_busybox_container"),
    not_yet("external", DR, "--external=tty[1:2]"),
    works("empty-ns", DR, "tests/zdtm_netns.rs::empty_ns_net_keeps_the_namespace_not_its_contents"),
    not_yet("lazy-pages", DR, "--lazy-pages"),
    refused("lazy-pages", PD, "--lazy-pages", "Cannot pre-dump with --lazy-pages"),
    works("extra", CK, "tests/check.rs::extra_and_all_report_but_do_not_abort"),
    works("experimental", CK, "tests/options_e2e.rs::check_experimental_runs_the_experimental_probes"),
    works("all", CK, "tests/check.rs::extra_and_all_report_but_do_not_abort"),
    not_yet("cgroup-props", DR, "--cgroup-props=x"),
    not_yet("cgroup-props-file", DR, "--cgroup-props-file=/x"),
    works("cgroup-dump-controller", DR, "tests/zdtm_cgroups.rs::cgroup_dump_controller_dumps_only_those"),
    works("skip-in-flight", DR, "tests/zdtm_net.rs::skip_in_flight_leaves_waiting_connections_out"),
    works("deprecated", ALL, "tests/options_e2e.rs::deprecated_is_logged"),
    works("display-stats", DR, "tests/demo.rs::demo_checkpoints_and_restores_the_counter"),
    not_yet("weak-sysctls", R, "--weak-sysctls"),
    works("status-fd", SV, "tests/service_daemon.rs::status_fd_pidfile_and_a_second_instance"),
    works("status-fd", PS, "tests/page_server.rs::ours_to_ours_private_memory"),
    works("tcp-close", DR, "tests/zdtm_tcp.rs::tcp_close_restores_the_connections_closed"),
    works("ps-socket", or(D, PS), "tests/page_server.rs::dump_and_page_server_over_inherited_sockets"),
    not_yet("ps-socket", or(PD, LP), "--ps-socket=3"),
    not_yet("stream", TREE, "--stream"),
    refused("stream", or(or(CK, SV), or(PS, On::DEDUP)), "--stream", "--stream cannot be used with the {cmd} command"),
    works("config", ALL, "tests/cli.rs::config_file_options_apply_and_command_line_wins"),
    works("no-default-config", ALL, "tests/options_e2e.rs::no_default_config_skips_the_default_files"),
    not_yet("tls-cacert", NET, "--tls-cacert=/ca.pem"),
    not_yet("tls-cacrl", NET, "--tls-cacrl=/ca.crl"),
    not_yet("tls-cert", NET, "--tls-cert=/c.pem"),
    not_yet("tls-key", NET, "--tls-key=/k.pem"),
    refused("tls", ALL, "--tls", "CRIU was built without TLS support"),
    not_yet("tls-no-cn-verify", NET, "--tls-no-cn-verify"),
    not_yet("cgroup-yard", DR, "--cgroup-yard=/x"),
    works("pre-dump-mode", PD, "tests/predump.rs::both_pre_dump_modes_leave_the_tree_running_while_pages_are_written"),
    not_yet("file-validation", R, "--file-validation=filesize"),
    not_yet("lsm-mount-context", R, "--lsm-mount-context=x"),
    works("network-lock=iptables", or(D, R), "tests/options_e2e.rs::network_lock_values_are_accepted"),
    works("network-lock=nftables", or(D, R), "tests/options_e2e.rs::network_lock_values_are_accepted"),
    works("network-lock=skip", or(D, R), "tests/options_e2e.rs::network_lock_values_are_accepted"),
    works("network-lock=none", or(D, R), "tests/options_e2e.rs::network_lock_values_are_accepted"),
    not_yet("mntns-compat-mode", R, "--mntns-compat-mode"),
    refused("mntns-compat-mode", NOT_R, "--mntns-compat-mode", "Option --mntns-compat-mode is only valid on restore"),
    works("unprivileged", or(TREE, CK), "tests/unprivileged.rs::unprivileged_user_dumps_and_restores_its_own_process"),
    works("ghost-fiemap", D, "tests/zdtm_anonfd.rs::sparse_ghost_file_dumped_with_fiemap"),
    not_yet("skip-file-rwx-check", R, "--skip-file-rwx-check"),
    works("allow-uprobes", D, "core/src/proc/vma_kind/tests.rs::special_areas"),
];

/// The RPC's `criu_opts` (`images/rpc.proto`). Request types map onto the
/// same [`On`] sets as commands (DUMP, PRE_DUMP and SINGLE_PRE_DUMP,
/// RESTORE, CHECK, PAGE_SERVER, CPUINFO_*). A field "requests" something
/// when it is set to a value other than the one meaning "nothing" (false,
/// empty, 0); see `service::setup::requested`.
#[rustfmt::skip]
pub const RPC: &[Entry] = &[
    works("images_dir_fd", ALL, "tests/service_rpc.rs::dump_then_restore_over_rpc"),
    works("images_dir", ALL, "core/src/service/setup.rs::images_dir_by_path_and_fd"),
    works("pid", D, "tests/service_rpc.rs::dump_then_restore_over_rpc"),
    works("leave_running", D, "tests/service_rpc.rs::dump_leave_running_with_notify"),
    works("ext_unix_sk", DR, "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("tcp_established", DR, "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("evasive_devices", R, "tests/zdtm_mntns.rs::rpc_root_and_ext_mnt"),
    works("shell_job", DR, "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("file_locks", DR, "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("log_level", ALL, "tests/service_rpc.rs::dump_leave_running_with_notify"),
    works("log_file", ALL, "tests/service_rpc.rs::dump_leave_running_with_notify"),
    refused("ps", DPD, "", "sending pages to a page server (opts.ps) is not supported yet"),
    works("notify_scripts", TREE, "tests/service_rpc.rs::dump_then_restore_over_rpc"),
    works("root", R, "tests/zdtm_mntns.rs::rpc_root_and_ext_mnt"),
    works("parent_img", DPD, "tests/runtime_runc.rs::runc_pre_dumps_then_dumps_a_busybox_container_three_times"),
    works("track_mem", DPD, "tests/runtime_runc.rs::runc_pre_dumps_then_dumps_a_busybox_container_three_times"),
    not_yet("auto_dedup", TREE, ""),
    works("work_dir_fd", ALL, "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("link_remap", D, "tests/zdtm_refuse.rs::an_unlinked_file_kept_by_another_link_is_restored_with_link_remap"),
    works("veths", R, "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("cpu_cap", DR, "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("force_irmap", DPD, "tests/zdtm_anonfd.rs::inotify_watches_keep_their_wds"),
    works("exec_cmd", R, "tests/options_e2e.rs::rpc_exec_cmd_replaces_the_worker"),
    works("ext_mnt", DR, "tests/zdtm_mntns.rs::rpc_root_and_ext_mnt"),
    works("manage_cgroups", DR, "tests/zdtm_cgroups.rs::rpc_manage_cgroups_and_cg_root"),
    works("cg_root", DR, "tests/zdtm_cgroups.rs::rpc_manage_cgroups_and_cg_root"),
    works("rst_sibling", R, "tests/options_e2e.rs::rpc_rst_sibling_makes_the_client_the_parent"),
    works("inherit_fd", R, "tests/inherit_fd.rs::rpc_inherit_fd_gives_a_pipe_to_the_outside_a_new_reader"),
    works("auto_ext_mnt", DR, "tests/zdtm_mntns.rs::auto_external_mounts"),
    works("ext_sharing", DR, "tests/zdtm_mntns.rs::auto_external_mounts"),
    works("ext_masters", DR, "tests/zdtm_mntns.rs::auto_external_mounts"),
    not_yet("skip_mnt", DR, ""),
    works("enable_fs", D, "tests/zdtm_mntns.rs::enable_fs_mounts_an_unknown_filesystem_again"),
    not_yet("unix_sk_ino", DR, ""),
    works("manage_cgroups_mode=IGNORE", DR, "tests/zdtm_cgroups.rs::rpc_manage_cgroups_mode_and_freeze_cgroup"),
    // CRIU's default mode, the same as not setting the field at all.
    works("manage_cgroups_mode=DEFAULT", DR, "tests/options_e2e.rs::manage_cgroups_ignore_is_accepted"),
    works("manage_cgroups_mode", DR, "tests/zdtm_cgroups.rs::rpc_manage_cgroups_and_cg_root"),
    works("ghost_limit", D, "core/src/service/setup.rs::fields_map_onto_the_options"),
    not_yet("irmap_scan_paths", DPD, ""),
    works("external=mnt[*", DR, "tests/zdtm_mntns.rs::rpc_root_and_ext_mnt"),
    works("external=net[*", DR, "tests/zdtm_netns.rs::rpc_external_net_namespace_with_inherit_fd"),
    not_yet("external", DR, ""),
    works("empty_ns", DR, "core/src/service/setup.rs::fields_map_onto_the_options"),
    not_yet("join_ns", R, ""),
    not_yet("cgroup_props", DR, ""),
    not_yet("cgroup_props_file", DR, ""),
    works("cgroup_dump_controller", DR, "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("freeze_cgroup", DPD, "tests/zdtm_cgroups.rs::rpc_manage_cgroups_mode_and_freeze_cgroup"),
    works("timeout", DPD, "tests/zdtm_refuse.rs::rpc_timeout_bounds_the_seize"),
    works("tcp_skip_in_flight", DR, "tests/zdtm_net.rs::skip_in_flight_leaves_waiting_connections_out"),
    not_yet("weak_sysctls", R, ""),
    not_yet("lazy_pages", DR, ""),
    // Obsolete in CRIU: ignored there too (a warning in the log).
    works("status_fd", ALL, "tests/options_e2e.rs::rpc_obsolete_fields_are_ignored"),
    works("orphan_pts_master", DR, "tests/runtime_podman.rs::podman_checkpoints_and_restores_a_tty_container"),
    // Its options that map onto a field; any other refuses the request
    // by name (see `service::config`).
    works("config_file", ALL, "core/src/service/config.rs::config_file_options_override_the_request"),
    works("tcp_close", DR, "core/src/service/setup.rs::fields_map_onto_the_options"),
    not_yet("lsm_profile", R, ""),
    not_yet("tls_cacert", TREE, ""),
    not_yet("tls_cacrl", TREE, ""),
    not_yet("tls_cert", TREE, ""),
    not_yet("tls_key", TREE, ""),
    refused("tls", ALL, "", "CRIU was built without TLS support"),
    not_yet("tls_no_cn_verify", TREE, ""),
    not_yet("cgroup_yard", DR, ""),
    works("pre_dump_mode=SPLICE", PD, "core/src/service/setup.rs::pre_dump_fields_map_onto_the_options"),
    works("pre_dump_mode=VM_READ", PD, "core/src/service/setup.rs::pre_dump_fields_map_onto_the_options"),
    // CRIU's setup_opts_from_req fails the request on any other value.
    refused("pre_dump_mode", PD, "", "unknown pre_dump_mode (SPLICE or VM_READ only)"),
    not_yet("pidfd_store_sk", DPD, ""),
    not_yet("lsm_mount_context", R, ""),
    works("network_lock", D, "tests/options_e2e.rs::network_lock_values_are_accepted"),
    not_yet("mntns_compat_mode", R, ""),
    not_yet("skip_file_rwx_check", R, ""),
    works("unprivileged", or(TREE, CK), "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("leave_stopped", D, "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("display_stats", DR, "core/src/service/setup.rs::fields_map_onto_the_options"),
    works("log_to_stderr", ALL, "tests/options_e2e.rs::rpc_log_to_stderr_writes_no_log_file"),
    works("allow_uprobes", D, "core/src/proc/vma_kind/tests.rs::special_areas"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_values_cover_their_kind_only() {
        let e = lookup(CLI, On::DUMP, "external", "net[4026532183]:extRootNetNS").unwrap();
        assert!(matches!(e.support, Support::Works { .. }), "{e:?}");
        let e = lookup(CLI, On::DUMP, "external", "mnt[/a]:b").unwrap();
        assert!(matches!(e.support, Support::Works { .. }), "{e:?}");
        let e = lookup(CLI, On::DUMP, "external", "tty[88:1]:t").unwrap();
        assert!(matches!(e.support, Support::NotYet { .. }), "{e:?}");
        // veth[] names a restore's peer only.
        assert!(matches!(
            lookup(CLI, On::RESTORE, "external", "veth[eth0]:v0")
                .unwrap()
                .support,
            Support::Works { .. }
        ));
        assert!(matches!(
            lookup(CLI, On::DUMP, "external", "veth[eth0]:v0")
                .unwrap()
                .support,
            Support::NotYet { .. }
        ));
    }

    #[test]
    fn valued_entries_win_over_bare_ones() {
        let e = lookup(CLI, On::DUMP, "manage-cgroups", "ignore").unwrap();
        assert!(matches!(e.support, Support::Works { .. }));
        let e = lookup(CLI, On::DUMP, "manage-cgroups", "full").unwrap();
        assert_eq!(e.key, "manage-cgroups=full");
        let e = lookup(CLI, On::DUMP, "ext-unix-sk", "").unwrap();
        assert!(matches!(e.support, Support::Works { .. }));
        let e = lookup(CLI, On::DUMP, "ext-unix-sk", "123").unwrap();
        assert_eq!(e.key, "ext-unix-sk=<inode>");
        let e = lookup(RPC, On::DUMP, "manage_cgroups_mode", "SOFT").unwrap();
        assert_eq!(e.key, "manage_cgroups_mode");
        let e = lookup(RPC, On::DUMP, "manage_cgroups_mode", "IGNORE").unwrap();
        assert!(matches!(e.support, Support::Works { .. }));
        // Not an option of check: ignored there, as CRIU does.
        assert!(lookup(CLI, On::CHECK, "tcp-established", "").is_none());
    }

    #[test]
    fn refusals_name_the_option_or_quote_criu() {
        let r = check(CLI, Style::Cli, On::DUMP, [("libdir", "/x")]);
        assert_eq!(r, Err(Refusal("--libdir is not supported yet".into())));
        let r = check(CLI, Style::Cli, On::RESTORE, [("cgroup-yard", "/x")]);
        assert_eq!(r, Err(Refusal("--cgroup-yard is not supported yet".into())));
        let r = check(CLI, Style::Cli, On::CHECK, [("stream", "")]);
        assert_eq!(
            r,
            Err(Refusal(
                "--stream cannot be used with the check command".into()
            ))
        );
        let r = check(RPC, Style::Rpc, On::DUMP, [("skip_mnt", "")]);
        assert_eq!(r, Err(Refusal("skip_mnt is not supported yet".into())));
        assert!(check(CLI, Style::Cli, On::DUMP, [("shell-job", "")]).is_ok());
    }

    #[test]
    fn every_entry_names_a_command() {
        for e in CLI.iter().chain(RPC) {
            assert_ne!(e.on, On::NONE, "{}", e.key);
        }
    }
}
