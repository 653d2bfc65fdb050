//! Why an option value is refused.

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
