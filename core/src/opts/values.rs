//! The option values that are more than a number, a flag or a path: each
//! parsed from its command-line text as CRIU parses it.

use std::path::PathBuf;
use std::str::FromStr;

use super::error::OptsError;

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
