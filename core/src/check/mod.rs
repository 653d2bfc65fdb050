//! `criu check`: probes of what dump and restore need from this kernel.
//!
//! Two layers:
//! - [`KernelFeatures`] (CRIU's "kerndat"): one value with what the kernel
//!   offers, probed once and passed to dump, restore and the RPC
//!   `FEATURE_CHECK`. Each probe is a small function returning a typed
//!   result.
//! - The checks behind `criu check`: each returns `Ok(())` or a [`Problem`]
//!   worded like CRIU's message for it. Without options the absolutely
//!   required checks run and stop at the first failure ("category 1");
//!   `--extra` adds checks needed only for some process trees, reported but
//!   not fatal; `--experimental` adds experimental ones; `--feature NAME`
//!   runs one check by CRIU's feature name.

mod files;
mod kerndat;
mod mem;
mod mounts;
mod net;
mod procfs;
mod required;
mod rtnetlink;
mod trace;

use crate::log::Level;
use crate::opts::CheckOpts;

pub use kerndat::{KernelFeatures, PagemapMode};

/// Why a check failed: the message CRIU would print, at the level it would
/// print it (some problems are errors, some warnings, some plain messages),
/// and where it was raised (shown in `Error (file:line)` prefixes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub level: Level,
    pub message: String,
    pub site: (&'static str, u32),
}

impl Problem {
    /// Logs the problem as CRIU would.
    pub fn report(&self) {
        let site = match self.level {
            Level::Error | Level::Warn => Some(self.site),
            _ => None,
        };
        crate::log::print(self.level, site, format_args!("{}", self.message));
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message.trim_end())
    }
}

/// Builds a [`Problem`] at `level` with a `format!` message, recording the
/// source location.
macro_rules! problem {
    ($level:ident, $($arg:tt)*) => {
        $crate::check::Problem {
            level: $crate::log::Level::$level,
            message: format!($($arg)*),
            site: (file!(), line!()),
        }
    };
}
pub(crate) use problem;

/// The outcome of one check.
pub type CheckResult = Result<(), Problem>;

/// A check: reads what it needs from the probed features, or probes itself.
type CheckFn = fn(&KernelFeatures) -> CheckResult;

/// The messages closing a full `criu check` run.
pub const CHECK_GOOD: &str = "Looks good.";
pub const CHECK_BAD: &str = "Does not look good.";
pub const CHECK_MAYBE: &str = "Looks good but some kernel features are missing\n\
                               which, depending on your process tree, may cause\n\
                               dump or restore failure.";

/// Checks that must all pass for dump and restore to work at all: CRIU's
/// category 1 in its order, then what this implementation cannot do
/// without (seizing with `PTRACE_INTERRUPT`, a clone3 that knows
/// `set_tid`).
const REQUIRED: &[(&str, CheckFn)] = &[
    ("map_files", procfs::check_map_files),
    ("sock_diag", net::check_sock_diag),
    ("ns_last_pid", procfs::check_ns_last_pid),
    ("sock_peek_off", required::check_sock_peek_off),
    ("kcmp", procfs::check_kcmp),
    ("prctl", required::check_prctl_cat1),
    ("fcntl", required::check_fcntl),
    ("proc_stat", procfs::check_proc_stat),
    ("tcp", required::check_tcp),
    ("fdinfo_ext", procfs::check_fdinfo_ext),
    ("unaligned_vmsplice", required::check_unaligned_vmsplice),
    ("tty", required::check_tty),
    ("so_gets", required::check_so_gets),
    ("ipc", procfs::check_ipc),
    ("sigqueueinfo", required::check_sigqueueinfo),
    ("ptrace_peeksiginfo", trace::check_ptrace_peeksiginfo),
    (
        "special_mapping_mremap",
        required::check_special_mapping_mremap,
    ),
    ("ptrace_seize", trace::check_ptrace_seize),
    ("clone3", trace::check_clone3),
];

/// Checks run by `--extra` (CRIU's category 2, in its order): failures are
/// reported and change the verdict to [`CHECK_MAYBE`], but do not stop the
/// run. `apparmor_stacking` runs only where AppArmor is the LSM.
const EXTRA: &[(&str, CheckFn)] = &[
    ("prctl_map", required::check_prctl_cat2),
    ("seccomp_suspend", trace::check_seccomp_suspend),
    ("seccomp_filters", trace::check_seccomp_filters),
    ("mem_dirty_track", mem::check_mem_dirty_track),
    ("posix_timers", procfs::check_posix_timers),
    ("tun", files::check_tun_cr),
    ("timerfd", files::check_timerfd),
    ("mnt_id", procfs::check_mnt_id),
    ("aio_remap", files::check_aio_remap),
    ("fdinfo_lock", procfs::check_fdinfo_lock),
    ("clone_parent_vs_pid", required::check_clone_parent_vs_pid),
    ("cgroupns", procfs::check_cgroupns),
    ("tcp_window", required::check_tcp_window),
    ("tcp_half_closed", required::check_tcp_half_closed),
    ("userns", procfs::check_userns),
    ("loginuid", procfs::check_loginuid),
    ("can_map_vdso", required::check_can_map_vdso),
    ("uffd", mem::check_uffd),
    ("uffd-noncoop", mem::check_uffd_noncoop),
    ("sk_ns", files::check_sk_ns),
    ("kcmp_epoll", procfs::check_kcmp_epoll),
    ("net_diag_raw", net::check_net_diag_raw),
    ("clone3_set_tid", trace::check_clone3_set_tid),
    ("timens", procfs::check_timens),
    ("newifindex", rtnetlink::check_newifindex),
    ("pidfd_store", procfs::check_pidfd_store),
    ("ns_pid", procfs::check_ns_pid),
    ("network_lock_nftables", check_network_lock_nftables),
    ("sockopt_buf_lock", files::check_sockopt_buf_lock),
    ("memfd_hugetlb", mem::check_memfd_hugetlb),
    ("move_mount_set_group", mounts::check_move_mount_set_group),
    ("openat2", procfs::check_openat2),
    ("get_rseq_conf", trace::check_get_rseq_conf),
    ("ipv6_freebind", net::check_ipv6_freebind),
    ("pagemap_scan", mem::check_pagemap_scan),
    ("overlayfs_maps", mounts::check_overlayfs_maps),
    ("timer_cr_ids", check_timer_cr_ids),
    (
        "pagemap_scan_guard_pages",
        mem::check_pagemap_scan_guard_pages,
    ),
];

/// Checks run by `--experimental` (CRIU's category 3).
const EXPERIMENTAL: &[(&str, CheckFn)] = &[
    ("autofs", mounts::check_autofs),
    ("compat_cr", check_compat_cr),
];

/// One `--feature` name.
pub struct Feature {
    pub name: &'static str,
    check: CheckFn,
}

const fn f(name: &'static str, check: CheckFn) -> Feature {
    Feature { name, check }
}

/// CRIU's feature names (`feature_list[]` in `criu/cr-check.c`), in its
/// order: the 45 of CRIU 4.2 (`breakpoints` included) and
/// `binfmt_misc_sandboxing`, which CRIU's development branch added after.
/// Each runs a probe with the semantics of CRIU's; where CRIU's answer
/// depends on something this tool does not use (nftables, compat tasks),
/// the message says so.
pub const FEATURES: &[Feature] = &[
    f("mnt_id", procfs::check_mnt_id),
    f("mem_dirty_track", mem::check_mem_dirty_track),
    f("aio_remap", files::check_aio_remap),
    f("timerfd", files::check_timerfd),
    f("tun", files::check_tun),
    f("tun_ns", files::check_tun_ns),
    f("userns", procfs::check_userns),
    f("fdinfo_lock", procfs::check_fdinfo_lock),
    f("seccomp_suspend", trace::check_seccomp_suspend),
    f("seccomp_filters", trace::check_seccomp_filters),
    f("loginuid", procfs::check_loginuid),
    f("cgroupns", procfs::check_cgroupns),
    f("autofs", mounts::check_autofs),
    f("tcp_half_closed", required::check_tcp_half_closed),
    f("compat_cr", check_compat_cr),
    f("uffd", mem::check_uffd),
    f("uffd-noncoop", mem::check_uffd_noncoop),
    f("can_map_vdso", required::check_can_map_vdso),
    f("sk_ns", files::check_sk_ns),
    f("sk_unix_file", files::check_sk_unix_file),
    f("net_diag_raw", net::check_net_diag_raw),
    f("nsid", net::check_nsid),
    f("link_nsid", rtnetlink::check_link_nsid),
    f("kcmp_epoll", procfs::check_kcmp_epoll),
    f("timens", procfs::check_timens),
    f("external_net_ns", |_| Ok(())),
    f("clone3_set_tid", trace::check_clone3_set_tid),
    f("newifindex", rtnetlink::check_newifindex),
    f("nftables", check_nftables),
    f("has_ipt_legacy", net::check_ipt_legacy),
    f("pidfd_store", procfs::check_pidfd_store),
    f("ns_pid", procfs::check_ns_pid),
    f("apparmor_stacking", procfs::check_apparmor_stacking),
    f("network_lock_nftables", check_network_lock_nftables),
    f("sockopt_buf_lock", files::check_sockopt_buf_lock),
    f("memfd_hugetlb", mem::check_memfd_hugetlb),
    f("move_mount_set_group", mounts::check_move_mount_set_group),
    f("openat2", procfs::check_openat2),
    f("get_rseq_conf", trace::check_get_rseq_conf),
    f("ipv6_freebind", net::check_ipv6_freebind),
    f("pagemap_scan", mem::check_pagemap_scan),
    f("timer_cr_ids", check_timer_cr_ids),
    f("overlayfs_maps", mounts::check_overlayfs_maps),
    f("breakpoints", trace::check_breakpoints),
    f(
        "pagemap_scan_guard_pages",
        mem::check_pagemap_scan_guard_pages,
    ),
    f(
        "binfmt_misc_sandboxing",
        mounts::check_binfmt_misc_sandboxing,
    ),
];

/// Looks a `--feature` name up.
pub fn feature(name: &str) -> Option<&'static Feature> {
    FEATURES.iter().find(|f| f.name == name)
}

/// Every `--feature` name, in CRIU's order.
pub fn feature_names() -> Vec<&'static str> {
    FEATURES.iter().map(|f| f.name).collect()
}

/// An unknown `--feature` name, with the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unknown feature {name}")]
pub struct UnknownFeature {
    pub name: String,
}

impl Feature {
    /// Runs this feature's check.
    pub fn check(&self, kdat: &KernelFeatures) -> CheckResult {
        (self.check)(kdat)
    }
}

/// 32-bit (compat) tasks: CRIU built with `CONFIG_COMPAT` checks the
/// kernel; this tool does not dump or restore them at all, so it answers
/// as a CRIU built without.
fn check_compat_cr(_: &KernelFeatures) -> CheckResult {
    crate::pr_info!("criu-rs does not checkpoint 32-bit (compat) tasks");
    Err(problem!(
        Warn,
        "CRIU built without CONFIG_COMPAT - can't C/R compatible tasks"
    ))
}

/// nftables rules: CRIU built with libnftables saves them; this tool has
/// no nftables support, so it answers as a CRIU built without.
fn check_nftables(_: &KernelFeatures) -> CheckResult {
    crate::pr_info!("criu-rs does not dump or restore nftables rules");
    Err(problem!(
        Warn,
        "CRIU was built without nftables support - nftables rules will not be preserved during C/R"
    ))
}

/// nftables network locking (`--network-lock nftables`), checked by doing
/// it, as CRIU does: a probe table with the lock's concatenated sets,
/// chains, rules and elements is made over netlink and deleted again.
fn check_network_lock_nftables(_: &KernelFeatures) -> CheckResult {
    crate::netlock::probe_nftables().map_err(|e| {
        problem!(
            Warn,
            "Nftables based locking requires nf_tables and set concatenations support: {e}"
        )
    })
}

/// `PR_TIMER_CREATE_RESTORE_IDS` (6.15+): restore recreates POSIX timers
/// with their old ids.
fn check_timer_cr_ids(_: &KernelFeatures) -> CheckResult {
    match crate::sys::probe::timer_create_restore_ids() {
        Ok(_) => Ok(()),
        Err(rustix::io::Errno::INVAL) => Err(problem!(
            Info,
            "PR_TIMER_CREATE_RESTORE_IDS isn't supported"
        )),
        Err(e) => Err(problem!(
            Error,
            "prctl returned unexpected error code: {}",
            procfs::strerror(e)
        )),
    }
}

/// Whether this process has capability `cap` in its effective set.
fn has_effective_cap(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|eff| eff & (1u64 << cap) != 0)
}

/// How a `criu check` run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Everything checked is there ("Looks good.", or "X is supported").
    Good,
    /// Required features are there, some optional ones are missing.
    Maybe,
    /// Something required (or the one `--feature` asked for) is missing.
    Bad,
}

impl Verdict {
    /// CRIU's exit status for it.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Good => 0,
            Verdict::Maybe | Verdict::Bad => 1,
        }
    }
}

/// `criu check` as CRIU runs it, reporting through the log: problems as
/// errors/warnings, the verdict with `pr_msg` (stdout).
pub fn run(opts: &CheckOpts, unprivileged: bool) -> Result<Verdict, UnknownFeature> {
    let only = match &opts.feature {
        Some(name) => Some(feature(name).ok_or_else(|| UnknownFeature { name: name.clone() })?),
        None => None,
    };
    if !unprivileged && !rustix::process::geteuid().is_root() {
        crate::pr_err!("You need to be root to run this command");
        return Ok(Verdict::Bad);
    }
    let kdat = KernelFeatures::probe();

    if let Some(feat) = only {
        return Ok(match feat.check(&kdat) {
            Ok(()) => {
                crate::pr_msg!("{} is supported", feat.name);
                Verdict::Good
            }
            Err(p) => {
                p.report();
                Verdict::Bad
            }
        });
    }

    for (name, check) in REQUIRED {
        // sem_next_id is reachable with CAP_CHECKPOINT_RESTORE, but
        // access() checks with the real ids and no capabilities, so an
        // unprivileged user always fails it; CRIU skips it there too.
        if unprivileged && *name == "ipc" {
            continue;
        }
        // As CRIU: TCP repair needs CAP_NET_ADMIN, which an unprivileged
        // run may lack; it then checks the rest of TCP only.
        if unprivileged
            && *name == "tcp"
            && !has_effective_cap(linux_raw_sys::general::CAP_NET_ADMIN)
        {
            crate::pr_info!("Not checking for TCP repair mode. Please set CAP_NET_ADMIN");
            continue;
        }
        crate::pr_debug!("Checking {name}");
        if let Err(p) = check(&kdat) {
            p.report();
            crate::pr_warn!("{CHECK_BAD}");
            return Ok(Verdict::Bad);
        }
    }

    let mut missing = false;
    let mut optional = Vec::new();
    if opts.extra {
        optional.extend_from_slice(EXTRA);
        if procfs::apparmor_is_lsm() {
            optional.push(("apparmor_stacking", procfs::check_apparmor_stacking));
        }
    }
    if opts.experimental {
        optional.extend_from_slice(EXPERIMENTAL);
    }
    for (name, check) in optional {
        crate::pr_debug!("Checking {name}");
        if let Err(p) = check(&kdat) {
            p.report();
            missing = true;
        }
    }
    if opts.extra && !kdat.breakpoints {
        // CRIU only reports this one: dump works without hardware
        // breakpoints, just slower.
        crate::pr_info!("Hardware breakpoints don't seem to work");
    }
    crate::pr_msg!("{}", if missing { CHECK_MAYBE } else { CHECK_GOOD });
    Ok(if missing {
        Verdict::Maybe
    } else {
        Verdict::Good
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_are_criu_names() {
        let names = feature_names();
        assert_eq!(names.len(), 46);
        for n in [
            "mem_dirty_track",
            "uffd",
            "clone3_set_tid",
            "pagemap_scan",
            "timens",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for (n, _) in EXTRA.iter().chain(EXPERIMENTAL) {
            let criu_only = [
                "posix_timers",
                "prctl_map",
                "clone_parent_vs_pid",
                "tcp_window",
            ];
            assert!(feature(n).is_some() || criu_only.contains(n), "{n}");
        }
    }
}
