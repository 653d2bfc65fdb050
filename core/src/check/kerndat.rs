//! [`KernelFeatures`]: what this kernel offers, probed once (CRIU's kerndat).

use super::{mem, net, procfs, trace};

/// How much `/proc/PID/pagemap` tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PagemapMode {
    /// Page frame numbers and flags.
    Full,
    /// Flags only: PFNs are hidden (no CAP_SYS_ADMIN).
    FlagsOnly,
    /// Pagemap cannot be opened at all.
    #[default]
    Disabled,
}

/// What this kernel offers dump and restore. Every field is one probe's
/// typed result; a probe that could not run counts as "not there".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelFeatures {
    pub pagemap: PagemapMode,
    /// `PAGEMAP_SCAN` ioctl (6.7+).
    pub pagemap_scan: bool,
    /// `PAGEMAP_SCAN` reports `PAGE_IS_GUARD`.
    pub pagemap_scan_guard_pages: bool,
    /// `MADV_GUARD_INSTALL` works.
    pub madv_guard: bool,
    /// Soft-dirty bits (`CONFIG_MEM_SOFT_DIRTY`): memory change tracking.
    pub dirty_track: bool,
    pub memfd: bool,
    pub memfd_hugetlb: bool,
    /// A userfault fd can be made (syscall or `/dev/userfaultfd`).
    pub uffd: bool,
    /// `UFFD_FEATURE_*` bits the kernel offers (0 without uffd).
    pub uffd_features: u64,
    /// kcmp exists and `KCMP_FILE` works.
    pub kcmp: bool,
    pub kcmp_epoll_tfd: bool,
    /// clone3 knows `set_tid` (whether we may use it is another matter:
    /// see [`super::trace`]).
    pub clone3_set_tid: bool,
    pub timens: bool,
    pub pidfd_open: bool,
    pub pidfd_getfd: bool,
    /// `NSpid:` in `/proc/PID/status`.
    pub nspid: bool,
    pub openat2: bool,
    /// The kernel has rseq.
    pub rseq: bool,
    /// `PTRACE_GET_RSEQ_CONFIGURATION` (5.13+).
    pub ptrace_get_rseq_conf: bool,
    pub membarrier_get_registrations: bool,
    pub ipv6: bool,
    /// Network namespace ids (`RTM_GETNSID`).
    pub nsid: bool,
    pub ipv6_freebind: bool,
    /// `lock:` lines in `/proc/PID/fdinfo`.
    pub fdinfo_lock: bool,
    /// Hardware breakpoints can be set on a tracee and fire.
    pub breakpoints: bool,
}

impl KernelFeatures {
    /// Probes everything. Never fails: a probe that cannot run (no
    /// privilege, no ptrace under qemu-user, ...) leaves its field false and
    /// logs why at debug level.
    pub fn probe() -> KernelFeatures {
        let pagemap = mem::probe_pagemap();
        let (memfd, memfd_hugetlb) = mem::probe_memfd();
        let uffd_features = mem::probe_uffd_features();
        let ipv6 = net::probe_ipv6();
        let (pidfd_open, pidfd_getfd) = procfs::probe_pidfd();
        KernelFeatures {
            pagemap: pagemap.mode,
            pagemap_scan: pagemap.scan,
            pagemap_scan_guard_pages: pagemap.scan_guard,
            madv_guard: mem::probe_madv_guard(),
            dirty_track: mem::probe_dirty_track(),
            memfd,
            memfd_hugetlb,
            uffd: uffd_features.is_some(),
            uffd_features: uffd_features.unwrap_or(0),
            kcmp: procfs::probe_kcmp_file(),
            kcmp_epoll_tfd: procfs::probe_kcmp_epoll_tfd(),
            clone3_set_tid: trace::probe_clone3_set_tid(),
            timens: procfs::exists("/proc/self/timens_offsets"),
            pidfd_open,
            pidfd_getfd,
            nspid: procfs::probe_nspid(),
            openat2: procfs::probe_openat2(),
            rseq: procfs::probe_rseq(),
            ptrace_get_rseq_conf: trace::probe_get_rseq_conf(),
            membarrier_get_registrations: procfs::probe_membarrier_get_registrations(),
            ipv6,
            nsid: net::probe_nsid(),
            ipv6_freebind: ipv6 && net::probe_ipv6_freebind(),
            fdinfo_lock: procfs::probe_fdinfo_lock(),
            breakpoints: trace::probe_breakpoints(),
        }
    }

    /// Non-cooperative userfaultfd (fork/remap/remove/unmap events), which
    /// lazy restore of a tree needs.
    pub fn uffd_noncooperative(&self) -> bool {
        use crate::sys::uffd::feature::NON_COOPERATIVE;
        self.uffd && self.uffd_features & NON_COOPERATIVE == NON_COOPERATIVE
    }

    /// Memory tracking for iterative (pre-)dumps, as this tool does it:
    /// an async write-protect userfaultfd and `PAGEMAP_SCAN` (see
    /// `mem::dirty`; soft-dirty bits, `dirty_track`, are not used).
    pub fn mem_track(&self) -> bool {
        self.uffd_wp_async() && self.pagemap_scan
    }

    /// Asynchronous userfaultfd write-protection (6.7+), the soft-dirty
    /// replacement for memory tracking.
    pub fn uffd_wp_async(&self) -> bool {
        use crate::sys::uffd::feature::{WP_ASYNC, WP_UNPOPULATED};
        self.uffd && self.uffd_features & (WP_ASYNC | WP_UNPOPULATED) == WP_ASYNC | WP_UNPOPULATED
    }

    /// Lazy pages: userfaultfd with the non-cooperative events.
    pub fn lazy_pages(&self) -> bool {
        self.uffd_noncooperative()
    }

    /// pidfd store (for pre-dump pid reuse detection): pidfd_open and
    /// pidfd_getfd.
    pub fn pidfd_store(&self) -> bool {
        self.pidfd_open && self.pidfd_getfd
    }
}
