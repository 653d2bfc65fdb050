//! From the request's `criu_opts` to our typed [`Opts`] (CRIU's
//! `setup_opts_from_req`).
//!
//! Directories come as fds of the *client* (`images_dir_fd`,
//! `work_dir_fd`): they are reopened through `/proc/<peer>/fd/N`, the peer
//! being whoever is on the other end of the socket (`SO_PEERCRED`). Clients
//! open them close-on-exec (Go, Rust), so they are usually not inherited
//! even by `criu swrk`. The reopened directory stays open for the whole
//! request and the options name it as `/proc/self/fd/M`, so the pipelines
//! keep working with paths while the client may close or reuse its fd.
//!
//! A client that is not full root ([`Client::full`]) gets
//! `--unprivileged` semantics, may pass directories only as fds (never
//! paths, which the service would resolve in its own mount namespace), and
//! each directory must be one it could use itself: readable and searchable,
//! and writable when the request writes into it (a dump's images, any log).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::images::pb::rpc;
use crate::log::Target;
use crate::opts::support::{self, On, Style};
use crate::opts::{CgroupMode, ExtMount, FinalState, InheritFd, JoinNs, NetworkLock, Opts};
use crate::opts::{CgroupRoot, CommonOpts, DumpOpts, PreDumpMode, RestoreOpts};

use super::client::Client;
pub use super::client::Peer;
use super::rights::{self, Denied};

/// The log file of a request that names none (CRIU's `DEFAULT_LOG_FILENAME`).
pub const DEFAULT_LOG_FILE: &str = "criu.log";

/// `CLONE_NEWNET`: the only namespace `empty_ns` may name.
const CLONE_NEWNET: u32 = linux_raw_sys::general::CLONE_NEWNET;

/// How the worker was started: `criu swrk` (a private socketpair with the
/// client, which may ask for swrk-only options) or a `criu service`
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Swrk,
    Service,
}

/// A bad `criu_opts`.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("Neither images_dir_fd nor images_dir was passed by RPC client")]
    NoImagesDir,
    #[error("Can't open {what} (fd {fd} of process {pid}): {errno}")]
    OpenFd {
        what: &'static str,
        fd: i32,
        pid: i32,
        errno: Errno,
    },
    #[error("Can't open {what} {path}: {errno}")]
    OpenPath {
        what: &'static str,
        path: String,
        errno: Errno,
    },
    #[error("No subdirs are allowed in log_file name")]
    LogSubdir,
    #[error("{0} is not allowed in standalone service")]
    SwrkOnly(&'static str),
    /// A field this implementation refuses (see `opts::support::RPC`).
    #[error(transparent)]
    Refused(#[from] crate::opts::support::Refusal),
    #[error("bad value {value} for {field}")]
    BadValue { field: &'static str, value: i64 },
    /// The request's `config_file` cannot be read or names an option
    /// that does not apply (see `service::config`).
    #[error(transparent)]
    ConfigFile(#[from] super::config::ConfigError),
    /// Something the client has no right to ask for.
    #[error(transparent)]
    Denied(#[from] Denied),
}

impl SetupError {
    /// The errno CRIU would put in `cr_errno`, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SetupError::OpenFd { errno, .. } | SetupError::OpenPath { errno, .. } => {
                Some(errno.raw_os_error())
            }
            SetupError::Denied(d) => Some(d.errno()),
            _ => None,
        }
    }
}

/// The options of one request, with the directories they name held open.
#[derive(Debug)]
pub struct Setup {
    pub opts: Opts,
    /// `notify_scripts`: send NOTIFY round trips at the action points.
    pub notify: bool,
    /// The reopened images and work directories, named by `opts` as
    /// `/proc/self/fd/N`: kept open until the request is done.
    _dirs: Vec<OwnedFd>,
}

fn open_dir(path: &str, what: &'static str) -> Result<OwnedFd, SetupError> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|errno| SetupError::OpenPath {
        what,
        path: path.to_owned(),
        errno,
    })
}

/// Reopens the client's fd `fd` as a directory (which the client must be
/// able to use itself, and to write into when `write`); the path naming it
/// for us.
fn client_dir(
    client: &Client,
    fd: i32,
    what: &'static str,
    write: bool,
    dirs: &mut Vec<OwnedFd>,
) -> Result<PathBuf, SetupError> {
    let peer = &client.peer;
    if fd < 0 {
        return Err(SetupError::BadValue {
            field: what,
            value: fd.into(),
        });
    }
    let dir = open_dir(&format!("/proc/{}/fd/{fd}", peer.pid), what).map_err(|e| match e {
        SetupError::OpenPath { errno, .. } => SetupError::OpenFd {
            what,
            fd,
            pid: peer.pid,
            errno,
        },
        e => e,
    })?;
    rights::may_use_dir(client, dir.as_fd(), what, fd, write)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    dirs.push(dir);
    Ok(path)
}

fn bool_of(v: Option<bool>) -> bool {
    v.unwrap_or(false)
}

/// The path-valued options, which only a full client may give.
fn paths(req: &rpc::CriuOpts) -> Vec<(&'static str, &str)> {
    let mut out: Vec<(&'static str, &str)> = [
        ("root", &req.root),
        ("parent_img", &req.parent_img),
        ("freeze_cgroup", &req.freeze_cgroup),
        ("cgroup_props_file", &req.cgroup_props_file),
        ("cgroup_yard", &req.cgroup_yard),
        ("config_file", &req.config_file),
        ("tls_cacert", &req.tls_cacert),
        ("tls_cacrl", &req.tls_cacrl),
        ("tls_cert", &req.tls_cert),
        ("tls_key", &req.tls_key),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.as_deref().filter(|p| !p.is_empty()).map(|p| (n, p)))
    .collect();
    out.extend(
        req.irmap_scan_paths
            .iter()
            .map(|p| ("irmap_scan_paths", p.as_str())),
    );
    out
}

/// Maps `req` onto options for a request of type `on`, made by `client`;
/// `mode` decides whether swrk-only options are allowed. A field this
/// implementation refuses fails the request first, before any directory is
/// opened; then what the client has no right to.
pub fn setup(
    req: &rpc::CriuOpts,
    client: &Client,
    mode: Mode,
    on: On,
) -> Result<Setup, SetupError> {
    let peer = &client.peer;
    // The options of the request's configuration file override its
    // fields, as CRIU's do; the client must be allowed to name the file.
    if let Some(f) = req.config_file.as_deref().filter(|f| !f.is_empty()) {
        rights::may_name_path(client, "config_file", f)?;
    }
    let overlaid = super::config::overlay(req)?;
    let req = overlaid.as_ref().unwrap_or(req);
    let given = super::requested::requested(req);
    support::check(
        support::RPC,
        Style::Rpc,
        on,
        given.iter().map(|(n, v)| (*n, v.as_str())),
    )?;
    for (field, path) in paths(req) {
        rights::may_name_path(client, field, path)?;
    }
    let mut dirs = Vec::new();
    let mut o = Opts::default();
    dirs_and_log(req, client, on, &mut o.common, &mut dirs)?;
    dump_opts(req, peer.pid, &mut o.dump);
    common_opts(req, client, &mut o.common);
    limits_cgroups_lock_tls(req, &mut o.common)?;
    restore_opts(req, mode, &mut o.restore)?;

    if req.status_fd.is_some() {
        // Obsolete: CRIU ignores it too.
        crate::pr_warn!("RPC option status_fd is obsolete and ignored");
    }

    Ok(Setup {
        opts: o,
        notify: bool_of(req.notify_scripts),
        _dirs: dirs,
    })
}

/// Where a refused request's log goes: the log of `req` (its work dir,
/// else its images dir, with its `log_file` and level) when the client may
/// write there; `None` otherwise. A runtime (runc, Podman) shows its
/// user only "criu failed" and the errors of that log, so the refusal
/// must be in it. The directories stay open as long as the options.
pub fn refusal_log(
    req: &rpc::CriuOpts,
    client: &Client,
    on: On,
) -> Option<(crate::log::LogConfig, Vec<OwnedFd>)> {
    let mut c = CommonOpts::default();
    let mut dirs = Vec::new();
    dirs_and_log(req, client, on, &mut c, &mut dirs).ok()?;
    Some((c.log_config(), dirs))
}

/// The images and work directories (the client's fds reopened, or a
/// path), and where the log goes.
fn dirs_and_log(
    req: &rpc::CriuOpts,
    client: &Client,
    on: On,
    c: &mut CommonOpts,
    dirs: &mut Vec<OwnedFd>,
) -> Result<(), SetupError> {
    // Logs (and a dump's images) are written: only a restore with a work
    // dir of its own just reads the images dir.
    let images_written = on != On::RESTORE || req.work_dir_fd.is_none();
    c.images_dir = if req.images_dir_fd == -1 {
        let path = req.images_dir.as_deref().ok_or(SetupError::NoImagesDir)?;
        rights::may_name_path(client, "images_dir", path)?;
        // Checked now so that a bad path fails the request before anything
        // else happens.
        let dir = open_dir(path, "images directory")?;
        dirs.push(dir);
        PathBuf::from(path)
    } else {
        client_dir(
            client,
            req.images_dir_fd,
            "images_dir_fd",
            images_written,
            dirs,
        )?
    };
    if let Some(fd) = req.work_dir_fd {
        c.work_dir = Some(client_dir(client, fd, "work_dir_fd", true, dirs)?);
    }

    // Logs go to the work dir; a bare file name only.
    c.log.level = req
        .log_level
        .map_or(crate::log::DEFAULT_LEVEL, |l| l.clamp(0, 4) as u32);
    c.log.target = match &req.log_file {
        Some(f) if f.contains('/') => return Err(SetupError::LogSubdir),
        Some(f) => Target::File(PathBuf::from(f)),
        None if bool_of(req.log_to_stderr) => Target::Stderr,
        None => Target::File(PathBuf::from(DEFAULT_LOG_FILE)),
    };

    Ok(())
}

/// What a dump does with the tree, and its memory options.
fn dump_opts(req: &rpc::CriuOpts, peer_pid: i32, d: &mut DumpOpts) {
    d.tree = Some(req.pid.unwrap_or(peer_pid));
    d.final_state = if bool_of(req.leave_running) {
        FinalState::Alive
    } else if bool_of(req.leave_stopped) {
        FinalState::Stopped
    } else {
        FinalState::Dead
    };
    d.track_mem = bool_of(req.track_mem);
    d.prev_images_dir = req.parent_img.as_ref().map(PathBuf::from);
    d.freeze_cgroup = req.freeze_cgroup.as_ref().map(PathBuf::from);
    d.allow_uprobes = bool_of(req.allow_uprobes);
    // runc sends CLONE_NEWNET; any other value is refused by the restore
    // half's check of the same field (see `restore_opts`).
    d.empty_net_ns = req.empty_ns == Some(CLONE_NEWNET);
    d.orphan_pts_master = bool_of(req.orphan_pts_master);
    // Any other value than these two is refused by the support table.
    d.pre_dump_mode = match req.pre_dump_mode {
        Some(2) => PreDumpMode::Read,
        _ => PreDumpMode::Splice,
    };
}

/// The flags and lists every action shares.
fn common_opts(req: &rpc::CriuOpts, client: &Client, c: &mut CommonOpts) {
    c.shell_job = bool_of(req.shell_job);
    c.ext_unix_sk = bool_of(req.ext_unix_sk);
    c.ext_unix_sk_inodes = req.unix_sk_ino.iter().map(|u| u.inode.into()).collect();
    c.tcp_established = bool_of(req.tcp_established);
    c.tcp_skip_in_flight = bool_of(req.tcp_skip_in_flight);
    c.tcp_close = bool_of(req.tcp_close);
    c.evasive_devices = bool_of(req.evasive_devices);
    c.file_locks = bool_of(req.file_locks);
    c.link_remap = bool_of(req.link_remap);
    c.force_irmap = bool_of(req.force_irmap);
    c.irmap_scan_paths = req.irmap_scan_paths.iter().map(PathBuf::from).collect();
    c.root = req.root.as_ref().map(PathBuf::from);
    c.auto_dedup = bool_of(req.auto_dedup);
    c.lazy_pages = bool_of(req.lazy_pages);
    c.weak_sysctls = bool_of(req.weak_sysctls);
    // Whoever is not full root gets what a non-root criu gets.
    c.unprivileged = bool_of(req.unprivileged) || !client.full;
    c.display_stats = bool_of(req.display_stats);
    c.mntns_compat_mode = bool_of(req.mntns_compat_mode);
    c.skip_file_rwx_check = bool_of(req.skip_file_rwx_check);
    c.auto_ext_mounts = bool_of(req.auto_ext_mnt);
    c.enable_external_sharing = bool_of(req.ext_sharing);
    c.enable_external_masters = bool_of(req.ext_masters);
    // A malformed `mnt[]` suffix is kept as a plain external (naming no
    // mount), as the request's other fields cannot fail here.
    if let Err(v) = c.set_external(req.external.clone()) {
        c.external.push(v);
    }
    c.skip_mounts = req.skip_mnt.iter().map(PathBuf::from).collect();
    c.enable_fs = req.enable_fs.clone();
    c.lsm_profile = req.lsm_profile.clone();
    c.lsm_mount_context = req.lsm_mount_context.clone();
    c.cgroup_props = req.cgroup_props.clone();
    c.cgroup_props_file = req.cgroup_props_file.as_ref().map(PathBuf::from);
    c.cgroup_dump_controllers = req.cgroup_dump_controller.clone();
    c.cgroup_yard = req.cgroup_yard.as_ref().map(PathBuf::from);
    c.ext_mounts = req
        .ext_mnt
        .iter()
        .map(|m| ExtMount {
            key: m.key.clone(),
            val: m.val.clone(),
        })
        .collect();
    c.cgroup_roots = req
        .cg_root
        .iter()
        .map(|r| CgroupRoot {
            controller: r.ctrl.clone(),
            new_root: PathBuf::from(&r.path),
        })
        .collect();
}

/// Timeouts and limits, cgroup handling, the network lock and TLS.
fn limits_cgroups_lock_tls(req: &rpc::CriuOpts, c: &mut CommonOpts) -> Result<(), SetupError> {
    if let Some(t) = req.timeout {
        c.timeout = t;
    }
    if let Some(g) = req.ghost_limit {
        c.ghost_limit = g.into();
    }
    if let Some(cap) = req.cpu_cap {
        c.cpu_cap = crate::opts::CpuCap(cap);
    }
    // As CRIU: the old boolean field means soft, or ignore when false.
    if let Some(m) = req.manage_cgroups {
        c.manage_cgroups = if m {
            CgroupMode::Soft
        } else {
            CgroupMode::Ignore
        };
    }
    if let Some(m) = req.manage_cgroups_mode {
        c.manage_cgroups = match m {
            0 => CgroupMode::Ignore,
            1 => CgroupMode::None,
            2 => CgroupMode::Props,
            3 | 6 => CgroupMode::Soft,
            4 => CgroupMode::Full,
            5 => CgroupMode::Strict,
            v => {
                return Err(SetupError::BadValue {
                    field: "manage_cgroups_mode",
                    value: v.into(),
                });
            }
        };
    }
    // CRIU leaves its build-time default when the field is absent; ours
    // is nftables (see `NetworkLock`).
    c.network_lock = match req.network_lock {
        None => NetworkLock::default(),
        Some(1) => NetworkLock::Iptables,
        Some(2) => NetworkLock::Nftables,
        Some(3) => NetworkLock::Skip,
        Some(v) => {
            return Err(SetupError::BadValue {
                field: "network_lock",
                value: v.into(),
            });
        }
    };
    c.tls.enabled = bool_of(req.tls);
    c.tls.cacert = req.tls_cacert.as_ref().map(PathBuf::from);
    c.tls.cacrl = req.tls_cacrl.as_ref().map(PathBuf::from);
    c.tls.cert = req.tls_cert.as_ref().map(PathBuf::from);
    c.tls.key = req.tls_key.as_ref().map(PathBuf::from);
    c.tls.no_cn_verify = bool_of(req.tls_no_cn_verify);

    Ok(())
}

/// A restore's options; the swrk-only ones refused elsewhere.
fn restore_opts(req: &rpc::CriuOpts, mode: Mode, r: &mut RestoreOpts) -> Result<(), SetupError> {
    // Restores over RPC always detach: the client gets the pid back.
    r.detached = true;
    r.sibling = bool_of(req.rst_sibling);
    r.orphan_pts_master = bool_of(req.orphan_pts_master);
    if !req.exec_cmd.is_empty() {
        r.exec_cmd = Some(req.exec_cmd.clone());
    }
    r.inherit_fds = req
        .inherit_fd
        .iter()
        .map(|i| InheritFd {
            fd: i.fd,
            key: i.key.clone(),
        })
        .collect();
    if mode != Mode::Swrk {
        if r.sibling {
            return Err(SetupError::SwrkOnly("rst_sibling"));
        }
        if !r.inherit_fds.is_empty() {
            return Err(SetupError::SwrkOnly("inherit_fd"));
        }
    }
    r.join_ns = req
        .join_ns
        .iter()
        .map(|j| JoinNs {
            ns: j.ns.clone(),
            target: j.ns_file.clone(),
            extra: j.extra_opt.clone(),
        })
        .collect();
    r.veth_pairs = req
        .veths
        .iter()
        .map(|v| (v.if_in.clone(), v.if_out.clone()))
        .collect();
    match req.empty_ns {
        None | Some(0) => {}
        Some(CLONE_NEWNET) => r.empty_net_ns = true,
        Some(v) => {
            return Err(SetupError::BadValue {
                field: "empty_ns",
                value: v.into(),
            });
        }
    }

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Client {
        Client::root(std::process::id() as i32)
    }

    #[test]
    fn images_dir_by_path_and_fd() {
        let tmp = std::env::temp_dir();
        let req = rpc::CriuOpts {
            images_dir_fd: -1,
            images_dir: Some(tmp.display().to_string()),
            leave_running: Some(true),
            ..Default::default()
        };
        let s = setup(&req, &me(), Mode::Swrk, On::DUMP).unwrap();
        assert_eq!(s.opts.common.images_dir, tmp);
        assert_eq!(s.opts.dump.final_state, FinalState::Alive);
        assert_eq!(s.opts.dump.tree, Some(me().peer.pid));
        assert!(s.opts.restore.detached);
        assert_eq!(
            s.opts.common.log_config().target,
            Target::File(tmp.join(DEFAULT_LOG_FILE))
        );

        let dir = std::fs::File::open(&tmp).unwrap();
        let req = rpc::CriuOpts {
            images_dir_fd: dir.as_raw_fd(),
            pid: Some(42),
            log_file: Some("x.log".into()),
            ..Default::default()
        };
        let s = setup(&req, &me(), Mode::Service, On::DUMP).unwrap();
        assert!(s.opts.common.images_dir.is_dir());
        assert_eq!(s.opts.dump.tree, Some(42));
    }

    #[test]
    fn bad_options() {
        let none = rpc::CriuOpts {
            images_dir_fd: -1,
            ..Default::default()
        };
        assert!(matches!(
            setup(&none, &me(), Mode::Swrk, On::DUMP),
            Err(SetupError::NoImagesDir)
        ));
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let not_dir = rpc::CriuOpts {
            images_dir_fd: file.as_raw_fd(),
            ..Default::default()
        };
        let e = setup(&not_dir, &me(), Mode::Swrk, On::DUMP).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::NOTDIR.raw_os_error()));
        let subdir = rpc::CriuOpts {
            images_dir_fd: -1,
            images_dir: Some("/tmp".into()),
            log_file: Some("../x.log".into()),
            ..Default::default()
        };
        assert!(matches!(
            setup(&subdir, &me(), Mode::Swrk, On::DUMP),
            Err(SetupError::LogSubdir)
        ));
        let sibling = rpc::CriuOpts {
            images_dir_fd: -1,
            images_dir: Some("/tmp".into()),
            rst_sibling: Some(true),
            ..Default::default()
        };
        let e = setup(&sibling, &me(), Mode::Service, On::RESTORE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rst_sibling is not allowed in standalone service"
        );
        assert!(setup(&sibling, &me(), Mode::Swrk, On::RESTORE).is_ok());
        let tcp = rpc::CriuOpts {
            lazy_pages: Some(true),
            ..sibling.clone()
        };
        let e = setup(&tcp, &me(), Mode::Swrk, On::DUMP).unwrap_err();
        assert_eq!(e.to_string(), "lazy_pages is not supported yet");
        // Refused before anything else is looked at.
        let tcp_no_dir = rpc::CriuOpts {
            images_dir: None,
            ..tcp
        };
        let e = setup(&tcp_no_dir, &me(), Mode::Swrk, On::DUMP).unwrap_err();
        assert!(matches!(e, SetupError::Refused(_)), "{e}");
    }

    /// The fields that work map onto the options the CLI's switches set
    /// (the CLI tests show what each of those does).
    #[test]
    fn fields_map_onto_the_options() {
        let tmp = std::env::temp_dir();
        let work = std::fs::File::open(&tmp).unwrap();
        let req = rpc::CriuOpts {
            images_dir_fd: -1,
            images_dir: Some(tmp.display().to_string()),
            work_dir_fd: Some(work.as_raw_fd()),
            ext_unix_sk: Some(true),
            shell_job: Some(true),
            file_locks: Some(true),
            cpu_cap: Some(crate::opts::CpuCap::ALL | crate::opts::CpuCap::IMAGE),
            ghost_limit: Some(4096),
            manage_cgroups_mode: Some(rpc::CriuCgMode::Ignore as i32),
            cgroup_dump_controller: vec!["pids".into()],
            unprivileged: Some(true),
            leave_stopped: Some(true),
            display_stats: Some(true),
            allow_uprobes: Some(true),
            network_lock: Some(rpc::CriuNetworkLockMethod::Skip as i32),
            exec_cmd: vec!["true".into()],
            rst_sibling: Some(true),
            tcp_established: Some(true),
            tcp_close: Some(true),
            empty_ns: Some(CLONE_NEWNET),
            veths: vec![rpc::CriuVethPair {
                if_in: "eth0".into(),
                if_out: "veth0".into(),
            }],
            ..Default::default()
        };
        let o = setup(&req, &me(), Mode::Swrk, On::DUMP).unwrap().opts;
        let c = &o.common;
        assert!(c.work_dir.as_ref().unwrap().starts_with("/proc/self/fd/"));
        assert!(c.ext_unix_sk && c.shell_job && c.file_locks);
        assert_eq!(
            c.cpu_cap.0,
            crate::opts::CpuCap::ALL | crate::opts::CpuCap::IMAGE
        );
        assert_eq!(c.ghost_limit, 4096);
        assert_eq!(c.manage_cgroups, CgroupMode::Ignore);
        assert_eq!(c.cgroup_dump_controllers, ["pids"]);
        assert!(c.unprivileged && c.display_stats);
        assert!(c.tcp_established && c.tcp_close);
        assert_eq!(c.network_lock, NetworkLock::Skip);
        assert_eq!(o.dump.final_state, FinalState::Stopped);
        assert!(o.dump.allow_uprobes);
        // runc's empty_ns: the dump and the restore half both take it.
        assert!(o.dump.empty_net_ns && o.restore.empty_net_ns);
        assert_eq!(o.restore.veth_pairs, [("eth0".into(), "veth0".into())]);
        assert_eq!(o.restore.exec_cmd, Some(vec!["true".to_owned()]));
        assert!(o.restore.sibling && o.restore.detached);
    }

    /// A pre-dump's fields: the mode by its name (SPLICE, VM_READ; any
    /// other value refused before anything happens), `track_mem` and
    /// `parent_img` as `--track-mem --prev-images-dir`.
    #[test]
    fn pre_dump_fields_map_onto_the_options() {
        let tmp = std::env::temp_dir();
        let req = |mode: i32| rpc::CriuOpts {
            images_dir_fd: -1,
            images_dir: Some(tmp.display().to_string()),
            pre_dump_mode: Some(mode),
            track_mem: Some(true),
            parent_img: Some("../parent".into()),
            ..Default::default()
        };
        for (mode, want) in [
            (rpc::CriuPreDumpMode::Splice as i32, PreDumpMode::Splice),
            (rpc::CriuPreDumpMode::VmRead as i32, PreDumpMode::Read),
        ] {
            let o = setup(&req(mode), &me(), Mode::Swrk, On::PRE_DUMP)
                .unwrap()
                .opts;
            assert_eq!(o.dump.pre_dump_mode, want);
            assert!(o.dump.track_mem);
            assert_eq!(o.dump.prev_images_dir, Some(PathBuf::from("../parent")));
        }
        let e = setup(&req(3), &me(), Mode::Swrk, On::PRE_DUMP).unwrap_err();
        assert!(e.to_string().contains("unknown pre_dump_mode"), "{e}");
    }
}
