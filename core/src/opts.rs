//! Typed option values for every command, with CRIU's defaults.
//!
//! There is no global options object: the CLI (and the RPC service) build one
//! [`Opts`] value and pass the parts each stage needs down as arguments
//! (`dump(&opts.common, &opts.dump)`, ...). Field names follow CRIU's long
//! option names; every default here is CRIU's (`init_opts()` in
//! `criu/config.c`, constants in `criu/include/cr_options.h`).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::log::LogConfig;

pub mod support;

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

/// A bad option value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptsError {
    #[error("invalid argument for --{option}: {value}")]
    BadValue { option: &'static str, value: String },
    #[error("Unknown cgroups mode `{0}' selected")]
    CgroupMode(String),
    #[error("Unknown FPU mode `{0}' selected")]
    CpuCap(String),
    #[error("Unable to parse value of --pre-dump-mode: {0}")]
    PreDumpMode(String),
    #[error("Invalid value for --network-lock: {0}")]
    NetworkLock(String),
    #[error("Unable to parse value of --file-validation: {0}")]
    FileValidation(String),
    #[error("Can't parse inherit fd value: {0}")]
    InheritFd(String),
    #[error("Unsupported empty namespace: {0}")]
    EmptyNs(String),
    #[error("--restore-sibling only makes sense with --restore-detached")]
    SiblingWithoutDetach,
}

/// What happens to the dumped tree afterwards (`-R`, `-s`; default: killed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FinalState {
    #[default]
    Dead,
    Stopped,
    Alive,
}

/// `--manage-cgroups` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CgroupMode {
    Ignore,
    None,
    Props,
    #[default]
    Soft,
    Full,
    Strict,
}

impl FromStr for CgroupMode {
    type Err = OptsError;
    fn from_str(s: &str) -> Result<Self, OptsError> {
        Ok(match s {
            "ignore" => CgroupMode::Ignore,
            "none" => CgroupMode::None,
            "props" => CgroupMode::Props,
            "soft" => CgroupMode::Soft,
            "full" => CgroupMode::Full,
            "strict" => CgroupMode::Strict,
            _ => return Err(OptsError::CgroupMode(s.to_owned())),
        })
    }
}

/// `--network-lock` methods: how established TCP connections are cut off
/// from their peers while the tree is frozen, dumped and restored
/// (`crate::netlock`). CRIU's default is iptables unless it is built with
/// `NETWORK_LOCK_DEFAULT=NETWORK_LOCK_NFTABLES` (as Fedora and CentOS
/// build it); ours is nftables, which needs no command: the rules go to
/// the kernel over netlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NetworkLock {
    Iptables,
    #[default]
    Nftables,
    Skip,
}

impl NetworkLock {
    /// The value CRIU stores in the inventory's `network_lock_method`
    /// (its `enum NETWORK_LOCK_METHOD`), which a restore reads back.
    pub fn inventory_value(self) -> u32 {
        match self {
            NetworkLock::Iptables => 0,
            NetworkLock::Nftables => 1,
            NetworkLock::Skip => 2,
        }
    }

    /// The method an inventory's `network_lock_method` names (`None` for a
    /// value CRIU does not define).
    pub fn from_inventory(value: u32) -> Option<NetworkLock> {
        match value {
            0 => Some(NetworkLock::Iptables),
            1 => Some(NetworkLock::Nftables),
            2 => Some(NetworkLock::Skip),
            _ => None,
        }
    }

    /// CRIU's name of the method, as `--network-lock` takes it.
    pub fn name(self) -> &'static str {
        match self {
            NetworkLock::Iptables => "iptables",
            NetworkLock::Nftables => "nftables",
            NetworkLock::Skip => "skip",
        }
    }
}

impl FromStr for NetworkLock {
    type Err = OptsError;
    fn from_str(s: &str) -> Result<Self, OptsError> {
        match s {
            "iptables" => Ok(NetworkLock::Iptables),
            "nftables" => Ok(NetworkLock::Nftables),
            // CRIU takes "none" as another name for "skip".
            "skip" | "none" => Ok(NetworkLock::Skip),
            _ => Err(OptsError::NetworkLock(s.to_owned())),
        }
    }
}

/// `--pre-dump-mode`: pages through the parasite with vmsplice, or read with
/// `process_vm_readv` while the task runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PreDumpMode {
    #[default]
    Splice,
    Read,
}

impl FromStr for PreDumpMode {
    type Err = OptsError;
    fn from_str(s: &str) -> Result<Self, OptsError> {
        match s {
            "splice" => Ok(PreDumpMode::Splice),
            "read" => Ok(PreDumpMode::Read),
            _ => Err(OptsError::PreDumpMode(s.to_owned())),
        }
    }
}

/// `--file-validation`: how restore checks that a file is the dumped one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FileValidation {
    FileSize,
    #[default]
    BuildId,
}

impl FromStr for FileValidation {
    type Err = OptsError;
    fn from_str(s: &str) -> Result<Self, OptsError> {
        match s {
            "filesize" => Ok(FileValidation::FileSize),
            "buildid" => Ok(FileValidation::BuildId),
            _ => Err(OptsError::FileValidation(s.to_owned())),
        }
    }
}

/// `--cpu-cap` bits (CRIU's `CPU_CAP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuCap(pub u32);

impl CpuCap {
    pub const NONE: u32 = 0;
    pub const FPU: u32 = 1 << 0;
    pub const CPU: u32 = 1 << 1;
    pub const INS: u32 = 1 << 2;
    pub const IMAGE: u32 = 1 << 3;
    pub const ALL: u32 = Self::FPU | Self::CPU | Self::INS;

    /// Parses `--cpu-cap[=LIST]`: no list means everything; `^` inverts the
    /// following items until a `,`; `none` clears (or, inverted, sets all).
    pub fn parse(arg: Option<&str>) -> Result<CpuCap, OptsError> {
        let mut cap = CpuCap::default().0;
        let Some(mut rest) = arg else {
            return Ok(CpuCap(cap | Self::ALL | Self::IMAGE));
        };
        let mut inverse = false;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('^') {
                inverse = !inverse;
                rest = r;
                continue;
            }
            if let Some(r) = rest.strip_prefix(',') {
                inverse = false;
                rest = r;
                continue;
            }
            let (bits, len) = if rest.starts_with("fpu") {
                (Self::FPU, 3)
            } else if rest.starts_with("all") {
                (Self::ALL, 3)
            } else if rest.starts_with("cpu") {
                (Self::CPU, 3)
            } else if rest.starts_with("ins") {
                (Self::INS, 3)
            } else if rest.starts_with("none") {
                cap = if inverse { Self::ALL } else { Self::NONE };
                rest = &rest[4..];
                continue;
            } else {
                return Err(OptsError::CpuCap(rest.to_owned()));
            };
            if inverse {
                cap &= !bits;
            } else {
                cap |= bits;
            }
            rest = &rest[len..];
        }
        if cap != Self::NONE {
            cap |= Self::IMAGE;
        }
        Ok(CpuCap(cap))
    }
}

impl Default for CpuCap {
    fn default() -> Self {
        CpuCap(Self::FPU | Self::INS)
    }
}

/// `--inherit-fd fd[N]:RES`: fd N of the caller stands for resource RES.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InheritFd {
    pub fd: i32,
    pub key: String,
}

impl FromStr for InheritFd {
    type Err = OptsError;
    fn from_str(s: &str) -> Result<Self, OptsError> {
        let bad = || OptsError::InheritFd(s.to_owned());
        let rest = s.strip_prefix("fd[").ok_or_else(bad)?;
        let (num, rest) = rest.split_once(']').ok_or_else(bad)?;
        let key = rest.strip_prefix(':').ok_or_else(bad)?;
        let fd: i32 = num.parse().map_err(|_| bad())?;
        if fd < 0 || key.is_empty() {
            return Err(bad());
        }
        Ok(InheritFd {
            fd,
            key: key.to_owned(),
        })
    }
}

/// `--cgroup-root [CONTROLLER:]/newroot`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupRoot {
    pub controller: Option<String>,
    pub new_root: PathBuf,
}

impl FromStr for CgroupRoot {
    type Err = OptsError;
    fn from_str(s: &str) -> Result<Self, OptsError> {
        Ok(match s.split_once(':') {
            Some((ctl, path)) => CgroupRoot {
                controller: Some(ctl.to_owned()),
                new_root: PathBuf::from(path),
            },
            None => CgroupRoot {
                controller: None,
                new_root: PathBuf::from(s),
            },
        })
    }
}

/// `--ext-mount-map KEY:VAL` (or `auto`, kept as [`CommonOpts::auto_ext_mounts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtMount {
    pub key: String,
    pub val: String,
}

/// `--join-ns NS:{PID|NS_FILE}[,EXTRA]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinNs {
    pub ns: String,
    pub target: String,
    pub extra: Option<String>,
}

impl FromStr for JoinNs {
    type Err = OptsError;
    fn from_str(s: &str) -> Result<Self, OptsError> {
        let (ns, rest) = s.split_once(':').ok_or(OptsError::BadValue {
            option: "join-ns",
            value: s.to_owned(),
        })?;
        let (target, extra) = match rest.split_once(',') {
            Some((t, e)) => (t, Some(e.to_owned())),
            None => (rest, None),
        };
        Ok(JoinNs {
            ns: ns.to_owned(),
            target: target.to_owned(),
            extra,
        })
    }
}

/// Parses a size as CRIU's `--ghost-limit` does: a number, optionally
/// followed by `K`, `M` or `G`.
pub fn parse_size(s: &str) -> Result<u64, OptsError> {
    let bad = || OptsError::BadValue {
        option: "ghost-limit",
        value: s.to_owned(),
    };
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits_end].parse().map_err(|_| bad())?;
    let mult = match &s[digits_end..] {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Turns a CRIU configuration file into command-line words: each line is
/// an option name (without `--`) followed by its arguments, `#` starts a
/// comment, and double quotes group words (`\"` is a literal quote).
///
/// ```text
/// # /etc/criu/default.conf
/// tcp-established
/// log-file "my log.txt"
/// ```
pub fn parse_config(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    for line in text.lines() {
        let mut words = Vec::new();
        let mut chars = line.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let Some(&c) = chars.peek() else { break };
            if c == '#' {
                break;
            }
            let mut word = String::new();
            if c == '"' {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' if chars.peek() == Some(&'"') => {
                            word.push(chars.next().unwrap_or('"'))
                        }
                        '"' => break,
                        c => word.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    word.push(c);
                }
            }
            words.push(word);
        }
        if let Some((first, rest)) = words.split_first() {
            args.push(format!("--{first}"));
            args.extend(rest.iter().cloned());
        }
    }
    args
}

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
