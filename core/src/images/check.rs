//! The checks made on images before a restore creates anything: single-
//! entry images hold exactly one entry, PIDs, fds and paths are ones a
//! restore can ask for, and a core image holds nothing the restorer would
//! fail at late (registers, pending signals, groups, rlimits) or that is
//! not restored yet (dead tasks). A bad image is reported with
//! the file it came from.

use super::error::ImageError;
use super::kinds::Kind;
use super::pb;
use super::typed::ImageDir;

/// Why an image set cannot be restored, found before anything exists.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Image(#[from] ImageError),
    /// An image holds something wrong: damage or a foreign writer.
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    /// A core image's registers are unusable (the arch's check, see
    /// [`RegsCheck`]).
    #[error("{file}: {source}")]
    Regs {
        file: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Guard regions that are not whole pages of mapped VMAs.
    #[error("{file}: {source}")]
    Guards {
        file: String,
        #[source]
        source: GuardError,
    },
    /// An image holds something a restore cannot bring back (yet).
    #[error("{0}")]
    Unsupported(String),
}

/// What is wrong with a guard region (see [`super::vma::check_guards`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("guard region {start:#x}-{end:#x} has other status bits too ({status:#x})")]
    OtherBits { start: u64, end: u64, status: u32 },
    #[error("guard region {start:#x}-{end:#x} is not whole pages")]
    NotWholePages { start: u64, end: u64 },
    #[error("guard region {start:#x}-{end:#x} is not mapped at {at:#x}")]
    NotMapped { start: u64, end: u64, at: u64 },
}

/// The arch's check of a core image's registers against the task size
/// (`crate::regs::validate`, passed down by the caller: registers are a
/// layer above the format).
pub type RegsCheck =
    fn(&pb::CoreEntry, u64) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub(crate) fn invalid(file: impl Into<String>, what: String) -> CheckError {
    CheckError::Invalid {
        file: file.into(),
        what,
    }
}

/// The `core-ID.img` of a task or thread that pstree.img lists: a missing
/// one is pstree.img's fault (a damaged or foreign ID), and says so.
pub fn read_core(dir: &ImageDir, what: &str, id: u32) -> Result<pb::CoreEntry, CheckError> {
    let id = u64::from(id);
    if !dir.path(Kind::Core, id).exists() {
        return Err(invalid(
            "pstree.img",
            format!(
                "{what} {id} is listed, but there is no {}",
                Kind::Core.file_name(id)
            ),
        ));
    }
    read_single(dir, Kind::Core, id)
}

/// Reads the one entry of a single-entry image (inventory, core, mm, fs,
/// ids). CRIU writes exactly one, so anything after it, even a well-formed
/// second entry, is damage rather than something to ignore.
pub fn read_single<T: prost_reflect::prost::Message + Default>(
    dir: &ImageDir,
    kind: Kind,
    id: u64,
) -> Result<T, CheckError> {
    let mut r = dir.reader(kind, id)?;
    let Some(m) = r.next_message::<T>()? else {
        return Err(invalid(kind.file_name(id), "holds no entry".into()));
    };
    let end = r.offset();
    if r.next_entry()?.is_some() {
        return Err(invalid(
            kind.file_name(id),
            format!("data after its one entry (at offset {end})"),
        ));
    }
    Ok(m)
}

/// The network lock `inventory.img` records, to take the dump's lock away
/// with: its method (CRIU's default, iptables, for a value CRIU does not
/// define) and the id its table is named after (the dump's run id, else
/// the root's PID, as CRIU names it).
pub fn network_lock(
    dir: &ImageDir,
    root: u32,
) -> Result<(crate::opts::NetworkLock, String), CheckError> {
    let inventory: pb::InventoryEntry = read_single(dir, Kind::Inventory, 0)?;
    let method = inventory
        .network_lock_method
        .and_then(crate::opts::NetworkLock::from_inventory)
        .unwrap_or(crate::opts::NetworkLock::Iptables);
    let id = inventory
        .dump_criu_run_id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| root.to_string());
    Ok((method, id))
}

/// The kernel's `PID_MAX_LIMIT` on 64-bit: no PID (or TID) is above it.
const PID_MAX_LIMIT: u32 = 1 << 22;
/// `RLIM_NLIMITS`: resources the kernel knows (the rlimits are indexed by
/// resource number).
const RLIM_NLIMITS: usize = 16;
/// A pending `siginfo_t` is exactly this long.
const SIGINFO_SIZE: usize = 128;

/// A PID clone3 can be asked for: 1..=`PID_MAX_LIMIT`.
pub fn validate_pid(pid: u32, file: &str) -> Result<(), CheckError> {
    if pid == 0 || pid > PID_MAX_LIMIT {
        return Err(invalid(
            file,
            format!("PID {pid} is outside 1..={PID_MAX_LIMIT}"),
        ));
    }
    Ok(())
}

/// What the restorer would otherwise fail at late (or not at all, leaving
/// a task that crashes once it runs): the registers, the pending signals,
/// the supplementary groups and the rlimits of the core image.
pub fn validate_core(
    core: &pb::CoreEntry,
    file: &str,
    task_size: u64,
    regs: RegsCheck,
) -> Result<(), CheckError> {
    regs(core, task_size).map_err(|source| CheckError::Regs {
        file: file.into(),
        source,
    })?;
    let tc = core.tc.as_ref();
    let th = core.thread_core.as_ref();
    let queues = [
        tc.and_then(|tc| tc.signals_s.as_ref()),
        th.and_then(|th| th.signals_p.as_ref()),
    ];
    for s in queues.iter().flatten().flat_map(|q| q.signals.iter()) {
        if s.siginfo.len() != SIGINFO_SIZE {
            return Err(invalid(
                file,
                format!(
                    "a pending siginfo of {} bytes (want {SIGINFO_SIZE})",
                    s.siginfo.len()
                ),
            ));
        }
    }
    if let Some(c) = th.and_then(|th| th.creds.as_ref())
        && c.groups.len() > crate::blob::restorer_abi::MAX_GROUPS
    {
        return Err(invalid(
            file,
            format!(
                "{} supplementary groups (at most {} are restored)",
                c.groups.len(),
                crate::blob::restorer_abi::MAX_GROUPS
            ),
        ));
    }
    if let Some(rl) = tc.and_then(|tc| tc.rlimits.as_ref()) {
        if rl.rlimits.len() > RLIM_NLIMITS {
            return Err(invalid(
                file,
                format!(
                    "{} rlimits (the kernel has {RLIM_NLIMITS})",
                    rl.rlimits.len()
                ),
            ));
        }
        // setrlimit refuses a soft limit above the hard one (EINVAL), which
        // the restorer would only meet after the task exists.
        if let Some((res, r)) = rl.rlimits.iter().enumerate().find(|(_, r)| r.cur > r.max) {
            return Err(invalid(
                file,
                format!(
                    "rlimit {res} has a soft limit {:#x} above its hard limit {:#x}",
                    r.cur, r.max
                ),
            ));
        }
    }
    Ok(())
}

/// Fd numbers must be ones this process may have (below the hard
/// RLIMIT_NOFILE, which also keeps them far from `i32` overflow) and each
/// appear once.
pub fn validate_fdinfo(fdinfo: &[pb::FdinfoEntry], file: &str) -> Result<(), CheckError> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::from(i32::MAX as u32));
    let mut seen = std::collections::HashSet::new();
    for f in fdinfo {
        if u64::from(f.fd) >= limit || f.fd > i32::MAX as u32 {
            return Err(invalid(
                file,
                format!("fd {} is not below the hard RLIMIT_NOFILE {limit}", f.fd),
            ));
        }
        if !seen.insert(f.fd) {
            return Err(invalid(file, format!("fd {} appears twice", f.fd)));
        }
    }
    Ok(())
}

/// A path the restore opens: non-empty and without NUL (which the kernel
/// would cut the name at).
pub fn validate_path(name: &str, file: &str, id: u32) -> Result<(), CheckError> {
    if name.is_empty() {
        return Err(invalid(file, format!("file id {id} has an empty path")));
    }
    if name.contains('\0') {
        return Err(invalid(
            file,
            format!("file id {id}: path {name:?} holds a NUL byte"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn what(r: Result<(), CheckError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn fds_paths_and_pids_must_be_sane() {
        let fd = |fd: u32| pb::FdinfoEntry {
            fd,
            ..Default::default()
        };
        assert!(validate_fdinfo(&[fd(0), fd(1), fd(7)], "fdinfo-2.img").is_ok());
        assert!(
            what(validate_fdinfo(&[fd(3), fd(3)], "fdinfo-2.img"))
                .contains("fdinfo-2.img: fd 3 appears twice")
        );
        assert!(what(validate_fdinfo(&[fd(u32::MAX)], "f")).contains("RLIMIT_NOFILE"));
        assert!(validate_path("/etc/passwd", "files.img", 1).is_ok());
        assert!(what(validate_path("", "files.img", 4)).contains("file id 4 has an empty path"));
        assert!(what(validate_path("/a\0b", "files.img", 4)).contains("NUL"));
        assert!(validate_pid(1, "pstree.img").is_ok());
        assert!(what(validate_pid(0, "pstree.img")).contains("PID 0"));
        assert!(validate_pid(u32::MAX, "pstree.img").is_err());
    }
}
