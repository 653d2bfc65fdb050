//! Typed option values for every command, with CRIU's defaults.
//!
//! There is no global options object: the CLI (and the RPC service) build one
//! [`Opts`] value and pass the parts each stage needs down as arguments
//! (`dump(&opts.common, &opts.dump)`, ...). Field names follow CRIU's long
//! option names; every default here is CRIU's (`init_opts()` in
//! `criu/config.c`, constants in `criu/include/cr_options.h`).

use std::path::{Path, PathBuf};

use crate::log::LogConfig;

mod config_file;
mod error;
pub mod support;
mod values;

pub use config_file::parse_config;
pub use error::OptsError;
pub use values::{
    CgroupMode, CgroupRoot, CpuCap, ExtMount, FileValidation, FinalState, InheritFd, JoinNs,
    NetworkLock, PreDumpMode, parse_size,
};

/// What this build reports as its version: the CRIU release whose behaviour,
/// images and RPC it implements (so version checks in runc, podman and
/// scripts keep working), plus our own identification in the git-id slot.
pub mod version {
    /// CRIU release implemented.
    pub const MAJOR: u32 = 4;
    pub const MINOR: u32 = 2;
    pub const SUBLEVEL: u32 = 0;
    /// `MAJOR.MINOR` as `criu --version` prints it.
    pub const STRING: &str = "4.2";
    /// Our name and version, printed as `GitID:`.
    pub const GITID: &str = concat!("criu-rs-", env!("CARGO_PKG_VERSION"));
    /// Name reported in the RPC version reply.
    pub const NAME: &str = "criu-rs";
}

/// Ghost (deleted) file contents carried in the images by default: 1 MiB.
pub const DEFAULT_GHOST_LIMIT: u64 = 1 << 20;
/// Default `--timeout` (seconds) for freezing and collecting the tree.
pub const DEFAULT_TIMEOUT: u32 = 10;
/// Default unix socket of `criu service`.
pub const DEFAULT_SERVICE_ADDRESS: &str = "./criu_service.socket";

/// `--tls*` options of the page server connection.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsOpts {
    pub enabled: bool,
    pub cacert: Option<PathBuf>,
    pub cacrl: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub no_cn_verify: bool,
}

/// Options shared by every command that touches a process tree or images.
///
/// Every field is parsed as CRIU parses it (so a bad value gets CRIU's
/// error), but an option that is not implemented yet is refused by
/// [`support`] before any stage runs: its field is then never read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommonOpts {
    /// `-D`: where images are read and written (default: the current dir).
    pub images_dir: PathBuf,
    /// `-W`: where logs, pidfiles and stats go (default: the images dir).
    pub work_dir: Option<PathBuf>,
    /// `-o`, `-v`, `--log-pid`. A relative log file is relative to the work
    /// dir; see [`CommonOpts::log_config`].
    pub log: LogConfig,
    pub pidfile: Option<PathBuf>,
    pub action_scripts: Vec<PathBuf>,
    pub root: Option<PathBuf>,
    pub unprivileged: bool,
    pub display_stats: bool,
    /// `--status-fd`: written `\0` and closed once ready.
    pub status_fd: Option<i32>,
    pub external: Vec<String>,
    pub shell_job: bool,
    pub file_locks: bool,
    /// `-x`/`--ext-unix-sk[=INO]`.
    pub ext_unix_sk: bool,
    pub ext_unix_sk_inodes: Vec<u64>,
    pub tcp_established: bool,
    pub tcp_skip_in_flight: bool,
    pub tcp_close: bool,
    pub link_remap: bool,
    pub evasive_devices: bool,
    pub force_irmap: bool,
    pub irmap_scan_paths: Vec<PathBuf>,
    pub manage_cgroups: CgroupMode,
    pub cgroup_roots: Vec<CgroupRoot>,
    pub cgroup_props: Option<String>,
    pub cgroup_props_file: Option<PathBuf>,
    pub cgroup_dump_controllers: Vec<String>,
    pub cgroup_yard: Option<PathBuf>,
    pub ext_mounts: Vec<ExtMount>,
    pub auto_ext_mounts: bool,
    pub enable_external_sharing: bool,
    pub enable_external_masters: bool,
    pub skip_mounts: Vec<PathBuf>,
    pub enable_fs: Vec<String>,
    pub libdir: Option<PathBuf>,
    /// `--timeout` seconds.
    pub timeout: u32,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
    /// How the dump locks the network of the TCP connections it saves
    /// (`--tcp-established`): nftables over netlink (the default here),
    /// CRIU's iptables rules, or not at all. The restore takes the lock
    /// away with the method the inventory names.
    pub network_lock: NetworkLock,
    pub deprecated: bool,
    pub stream: bool,
    pub tls: TlsOpts,
    pub file_validation: FileValidation,
    pub skip_file_rwx_check: bool,
    pub cpu_cap: CpuCap,
    pub weak_sysctls: bool,
    pub mntns_compat_mode: bool,
    pub ghost_limit: u64,
    pub ghost_fiemap: bool,
    pub lazy_pages: bool,
    pub auto_dedup: bool,
    /// `--page-server`: send pages to a page server instead of the images.
    pub use_page_server: bool,
    /// `--address`, `--port`, `--ps-socket`: the page server (dump) or the
    /// address this server listens on (page-server, service, lazy-pages).
    pub address: Option<String>,
    pub port: Option<u16>,
    pub ps_socket: Option<i32>,
}

impl Default for CommonOpts {
    fn default() -> Self {
        CommonOpts {
            images_dir: PathBuf::from("."),
            work_dir: None,
            log: LogConfig::default(),
            pidfile: None,
            action_scripts: Vec::new(),
            root: None,
            unprivileged: false,
            display_stats: false,
            status_fd: None,
            external: Vec::new(),
            shell_job: false,
            file_locks: false,
            ext_unix_sk: false,
            ext_unix_sk_inodes: Vec::new(),
            tcp_established: false,
            tcp_skip_in_flight: false,
            tcp_close: false,
            link_remap: false,
            evasive_devices: false,
            force_irmap: false,
            irmap_scan_paths: Vec::new(),
            manage_cgroups: CgroupMode::default(),
            cgroup_roots: Vec::new(),
            cgroup_props: None,
            cgroup_props_file: None,
            cgroup_dump_controllers: Vec::new(),
            cgroup_yard: None,
            ext_mounts: Vec::new(),
            auto_ext_mounts: false,
            enable_external_sharing: false,
            enable_external_masters: false,
            skip_mounts: Vec::new(),
            enable_fs: Vec::new(),
            libdir: None,
            timeout: DEFAULT_TIMEOUT,
            lsm_profile: None,
            lsm_mount_context: None,
            network_lock: NetworkLock::default(),
            deprecated: false,
            stream: false,
            tls: TlsOpts::default(),
            file_validation: FileValidation::default(),
            skip_file_rwx_check: false,
            cpu_cap: CpuCap::default(),
            weak_sysctls: false,
            mntns_compat_mode: false,
            ghost_limit: DEFAULT_GHOST_LIMIT,
            ghost_fiemap: false,
            lazy_pages: false,
            auto_dedup: false,
            use_page_server: false,
            address: None,
            port: None,
            ps_socket: None,
        }
    }
}

impl CommonOpts {
    /// Takes `--external` values (RPC `external`): `mnt[]`, `mnt[]:s` and
    /// `mnt[]:m` are CRIU's other spelling of `--ext-mount-map auto` (with
    /// external sharing, masters) and are not kept as externals; the
    /// others are. Returns a `mnt[]` value with any other suffix.
    pub fn set_external(&mut self, values: Vec<String>) -> Result<(), String> {
        for v in values {
            match v.strip_prefix("mnt[]") {
                None => self.external.push(v),
                Some(rest) => {
                    match rest {
                        "" => {}
                        ":s" => self.enable_external_sharing = true,
                        ":m" => self.enable_external_masters = true,
                        _ => return Err(v),
                    }
                    self.auto_ext_mounts = true;
                }
            }
        }
        Ok(())
    }

    /// The work dir: `-W`, or else the images dir (CRIU's rule).
    pub fn work_dir(&self) -> &Path {
        self.work_dir.as_deref().unwrap_or(&self.images_dir)
    }

    /// `path` as CRIU would open it after its `chdir(work_dir)`: relative
    /// paths are taken from the work dir.
    pub fn in_work_dir(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.work_dir().join(path)
        }
    }

    /// The log configuration with a relative log file resolved against the
    /// work dir.
    pub fn log_config(&self) -> LogConfig {
        let mut log = self.log.clone();
        if let crate::log::Target::File(path) = &log.target {
            log.target = crate::log::Target::File(self.in_work_dir(path));
        }
        log
    }
}

/// Options of `dump` and `pre-dump`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DumpOpts {
    /// `-t PID`: root of the tree to dump.
    pub tree: Option<i32>,
    pub final_state: FinalState,
    pub track_mem: bool,
    /// `--prev-images-dir` (relative to the images dir).
    pub prev_images_dir: Option<PathBuf>,
    pub pre_dump_mode: PreDumpMode,
    pub freeze_cgroup: Option<PathBuf>,
    pub allow_uprobes: bool,
    /// `--empty-ns net`: the root's own net namespace is recorded, not
    /// its contents.
    pub empty_net_ns: bool,
    /// RPC `orphan_pts_master` (runc sends it for every container): one
    /// pts whose master is outside the dump (the console runc handed to
    /// its caller) is allowed, as with `--shell-job`; the restore gives it
    /// a new master, sent to the client.
    pub orphan_pts_master: bool,
}

/// Options of `restore`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RestoreOpts {
    /// `-d`: detach after restore (also `--daemon` for the servers).
    pub detached: bool,
    /// `-S`: restore the root task as our sibling.
    pub sibling: bool,
    /// `--exec-cmd -- CMD...`: exec this after a successful restore.
    pub exec_cmd: Option<Vec<String>>,
    pub inherit_fds: Vec<InheritFd>,
    pub join_ns: Vec<JoinNs>,
    /// `--empty-ns net`.
    pub empty_net_ns: bool,
    /// `--veth-pair IN=OUT`.
    pub veth_pairs: Vec<(String, String)>,
    /// RPC `orphan_pts_master`: a pts whose master was not dumped gets a
    /// new pty (same index), whose master goes to the client.
    pub orphan_pts_master: bool,
}

/// Options of `check`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CheckOpts {
    pub extra: bool,
    pub experimental: bool,
    /// `--feature NAME`: check only this feature.
    pub feature: Option<String>,
}

/// Everything one invocation was given.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Opts {
    pub common: CommonOpts,
    pub dump: DumpOpts,
    pub restore: RestoreOpts,
    pub check: CheckOpts,
    /// `criu coredump --out DIR`: where the core files go.
    pub coredump_out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_criu_defaults() {
        let o = Opts::default();
        assert_eq!(o.common.images_dir, PathBuf::from("."));
        assert_eq!(o.common.work_dir(), Path::new("."));
        assert_eq!(o.common.log.level, 2);
        assert_eq!(o.common.ghost_limit, 1 << 20);
        assert_eq!(o.common.timeout, 10);
        assert_eq!(o.common.manage_cgroups, CgroupMode::Soft);
        assert_eq!(o.common.cpu_cap, CpuCap(CpuCap::FPU | CpuCap::INS));
        assert_eq!(o.dump.final_state, FinalState::Dead);
    }

    #[test]
    fn work_dir_defaults_to_images_dir() {
        let mut c = CommonOpts {
            images_dir: "/imgs".into(),
            ..Default::default()
        };
        assert_eq!(
            c.in_work_dir(Path::new("dump.log")),
            PathBuf::from("/imgs/dump.log")
        );
        c.work_dir = Some("/work".into());
        assert_eq!(
            c.in_work_dir(Path::new("dump.log")),
            PathBuf::from("/work/dump.log")
        );
        assert_eq!(
            c.in_work_dir(Path::new("/abs.log")),
            PathBuf::from("/abs.log")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("1T").is_err());
    }

    #[test]
    fn inherit_fd() {
        assert_eq!(
            "fd[3]:pipe:[1234]".parse::<InheritFd>(),
            Ok(InheritFd {
                fd: 3,
                key: "pipe:[1234]".into()
            })
        );
        assert!("fd3:x".parse::<InheritFd>().is_err());
        assert!("fd[x]:y".parse::<InheritFd>().is_err());
        assert!("fd[1]:".parse::<InheritFd>().is_err());
    }

    #[test]
    fn cpu_cap() {
        assert_eq!(CpuCap::parse(None).unwrap().0, CpuCap::ALL | CpuCap::IMAGE);
        assert_eq!(CpuCap::parse(Some("none")).unwrap().0, CpuCap::NONE);
        assert_eq!(
            CpuCap::parse(Some("cpu")).unwrap().0,
            CpuCap::FPU | CpuCap::INS | CpuCap::CPU | CpuCap::IMAGE
        );
        assert_eq!(
            CpuCap::parse(Some("^fpu")).unwrap().0,
            CpuCap::INS | CpuCap::IMAGE
        );
        assert!(CpuCap::parse(Some("bogus")).is_err());
    }

    #[test]
    fn config_files() {
        let text = "# comment\ntcp-established\n  log-file \"my log.txt\" # trailing\n\nexternal \"a\\\"b\"\n";
        assert_eq!(
            parse_config(text),
            [
                "--tcp-established",
                "--log-file",
                "my log.txt",
                "--external",
                "a\"b"
            ]
        );
        assert!(parse_config("").is_empty());
    }

    #[test]
    fn enums() {
        assert_eq!("full".parse::<CgroupMode>(), Ok(CgroupMode::Full));
        assert!("x".parse::<CgroupMode>().is_err());
        assert_eq!("read".parse::<PreDumpMode>(), Ok(PreDumpMode::Read));
        assert_eq!("nftables".parse::<NetworkLock>(), Ok(NetworkLock::Nftables));
        assert_eq!("none".parse::<NetworkLock>(), Ok(NetworkLock::Skip));
        assert_eq!(
            "iptable".parse::<NetworkLock>().unwrap_err().to_string(),
            "Invalid value for --network-lock: iptable"
        );
        assert_eq!(NetworkLock::default(), NetworkLock::Nftables);
        for m in [
            NetworkLock::Iptables,
            NetworkLock::Nftables,
            NetworkLock::Skip,
        ] {
            assert_eq!(m.name().parse::<NetworkLock>(), Ok(m));
            assert_eq!(NetworkLock::from_inventory(m.inventory_value()), Some(m));
        }
        assert_eq!(NetworkLock::from_inventory(3), None);
        assert_eq!(
            "filesize".parse::<FileValidation>(),
            Ok(FileValidation::FileSize)
        );
    }
}
