//! `criu service`: a daemon accepting RPC connections on a unix
//! `SOCK_SEQPACKET` socket (CRIU's `cr_service`).
//!
//! What a supervisor can rely on:
//! - the pidfile is created exclusively (`O_CREAT|O_EXCL`, which never
//!   follows a symlink, and `O_NOFOLLOW`) *before* the socket is touched, so
//!   a second daemon pointed at the same pidfile fails with a clear error and
//!   leaves the first one and its socket alone;
//! - an existing socket file is replaced only when it is a socket nobody
//!   listens on (a stale one); the socket is made mode 0600 before `listen`
//!   (a group may be given it afterwards: each connection is served with
//!   its client's rights, see [`super::client`] and the README);
//! - `--status-fd` gets exactly one zero byte once the socket accepts
//!   connections, and is then closed;
//! - every connection is served by its own worker process (`criu swrk FD`
//!   exec'ed with the accepted socket), so a bad request cannot take the
//!   daemon down; workers are reaped as they end.
//!
//! `-d` detaches: the daemon process proper is a fresh copy of this program
//! in its own session, told through [`LISTEN_FD_ENV`] to serve the socket
//! that was already bound; the starting process writes the pidfile (with
//! the daemon's pid) and the status byte, then exits.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rustix::event::{PollFd, PollFlags};
use rustix::io::{Errno, FdFlags};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::opts::{DEFAULT_SERVICE_ADDRESS, Opts};
use crate::{pr_info, pr_warn};

/// Environment variable naming the already-listening socket a detached
/// daemon serves (set only by `criu service -d` for its own child).
pub const LISTEN_FD_ENV: &str = "CRIU_SERVICE_LISTEN_FD";
/// Hidden second argument of `criu swrk FD` marking a worker of the
/// daemon (swrk-only options are then refused).
pub const WORKER_ARG: &str = "--service-worker";
/// The program the workers run: ourselves.
const SELF_EXE: &str = "/proc/self/exe";

/// What `criu service` was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub address: PathBuf,
    pub status_fd: Option<i32>,
    pub pidfile: Option<PathBuf>,
    pub daemonize: bool,
}

impl Config {
    /// From the command line: `--address` (default CRIU's
    /// `./criu_service.socket`), `--status-fd`, `--pidfile`, `-d`; relative
    /// paths are taken from the work dir, as CRIU does after its chdir.
    pub fn from_opts(opts: &Opts) -> Config {
        let c = &opts.common;
        let address = c.address.as_deref().unwrap_or(DEFAULT_SERVICE_ADDRESS);
        // The default work dir is "."; keep such paths as they were given.
        let resolve = |p: &Path| {
            if c.work_dir() == Path::new(".") {
                p.to_owned()
            } else {
                c.in_work_dir(p)
            }
        };
        Config {
            address: resolve(Path::new(address)),
            status_fd: c.status_fd,
            pidfile: c.pidfile.as_deref().map(resolve),
            daemonize: opts.restore.detached,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "pidfile {path} already exists (held by pid {holder}): is another criu service running?"
    )]
    PidfileExists { path: PathBuf, holder: String },
    #[error("Can't create pidfile {path}: {source}")]
    Pidfile { path: PathBuf, source: io::Error },
    #[error("Can't bind the service socket {path}: {errno}")]
    Bind { path: PathBuf, errno: Errno },
    #[error("The service socket {0} is in use by a running service")]
    InUse(PathBuf),
    #[error("{what}: {errno}")]
    Sys { what: &'static str, errno: Errno },
    #[error("Can't use --status-fd {fd}: {errno}")]
    StatusFd { fd: i32, errno: Errno },
    #[error("Can't start {what}: {source}")]
    Spawn {
        what: &'static str,
        source: io::Error,
    },
}

fn sys(what: &'static str) -> impl FnOnce(Errno) -> DaemonError {
    move |errno| DaemonError::Sys { what, errno }
}

/// Creates the pidfile exclusively; it is empty until [`write_pid`].
fn create_pidfile(path: &Path) -> Result<std::fs::File, DaemonError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(0o644)
        .open(path)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                let holder = std::fs::read_to_string(path).unwrap_or_default();
                DaemonError::PidfileExists {
                    path: path.to_owned(),
                    holder: holder.trim().to_owned(),
                }
            } else {
                DaemonError::Pidfile {
                    path: path.to_owned(),
                    source,
                }
            }
        })
}

fn write_pid(file: &mut std::fs::File, path: &Path, pid: u32) -> Result<(), DaemonError> {
    file.write_all(format!("{pid}").as_bytes())
        .map_err(|source| DaemonError::Pidfile {
            path: path.to_owned(),
            source,
        })
}

/// Whether `path` is a socket that nobody accepts on any more.
fn is_stale_socket(path: &Path, addr: &SocketAddrUnix) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_socket() {
        return false;
    }
    let Ok(probe) = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    ) else {
        return false;
    };
    rustix::net::connect(&probe, addr) == Err(Errno::CONNREFUSED)
}

/// Binds and listens on `path` (mode 0600); `inheritable` leaves the socket
/// without close-on-exec for the detached daemon.
fn listen_on(path: &Path, inheritable: bool) -> Result<OwnedFd, DaemonError> {
    let flags = if inheritable {
        SocketFlags::empty()
    } else {
        SocketFlags::CLOEXEC
    };
    let sk = rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, flags, None)
        .map_err(sys("socket(AF_UNIX, SOCK_SEQPACKET)"))?;
    let addr = SocketAddrUnix::new(path).map_err(|errno| DaemonError::Bind {
        path: path.to_owned(),
        errno,
    })?;
    match rustix::net::bind(&sk, &addr) {
        Ok(()) => {}
        Err(Errno::ADDRINUSE) if is_stale_socket(path, &addr) => {
            pr_warn!("Replacing the stale service socket {}", path.display());
            let _ = std::fs::remove_file(path);
            rustix::net::bind(&sk, &addr).map_err(|errno| DaemonError::Bind {
                path: path.to_owned(),
                errno,
            })?;
        }
        Err(Errno::ADDRINUSE) => return Err(DaemonError::InUse(path.to_owned())),
        Err(errno) => {
            return Err(DaemonError::Bind {
                path: path.to_owned(),
                errno,
            });
        }
    }
    // Before listen(), nobody can connect yet: no window with wider rights.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        DaemonError::Bind {
            path: path.to_owned(),
            errno: Errno::from_io_error(&e).unwrap_or(Errno::IO),
        }
    })?;
    rustix::net::listen(&sk, 64).map_err(sys("listen"))?;
    Ok(sk)
}

/// Writes the one zero byte of `--status-fd` and closes it.
fn status_ready(fd: OwnedFd, raw: i32) -> Result<(), DaemonError> {
    rustix::io::write(&fd, &[0u8])
        .map(drop)
        .map_err(|errno| DaemonError::StatusFd { fd: raw, errno })
}

/// `criu service`.
pub fn run(cfg: &Config) -> Result<(), DaemonError> {
    if let Ok(raw) = std::env::var(LISTEN_FD_ENV) {
        return run_detached_child(&raw);
    }
    // Adopt the status fd first so that a bad number fails before anything
    // is created.
    let status = match cfg.status_fd {
        Some(raw) => Some((
            crate::sys::fds::adopt(raw)
                .map_err(|errno| DaemonError::StatusFd { fd: raw, errno })?,
            raw,
        )),
        None => None,
    };
    let mut pidfile = match &cfg.pidfile {
        Some(path) => Some((create_pidfile(path)?, path.clone())),
        None => None,
    };
    let started = start(cfg, status, pidfile.as_mut());
    if started.is_err()
        && let Some((_, path)) = &pidfile
    {
        // Ours, created above: do not leave it to block the next start.
        let _ = std::fs::remove_file(path);
    }
    match started? {
        Some(sk) => accept_loop(sk),
        None => Ok(()),
    }
}

/// Binds, hands over to a detached daemon if asked, writes the pidfile and
/// the status byte. The socket to serve, or `None` when a detached daemon
/// serves it.
fn start(
    cfg: &Config,
    status: Option<(OwnedFd, i32)>,
    pidfile: Option<&mut (std::fs::File, PathBuf)>,
) -> Result<Option<OwnedFd>, DaemonError> {
    let sk = listen_on(&cfg.address, cfg.daemonize)?;
    pr_info!("The service listens on {}", cfg.address.display());
    let (pid, serve_here) = if cfg.daemonize {
        if let Some((fd, _)) = &status {
            // The daemon must not hold the status fd open.
            rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC).map_err(sys("fcntl(status-fd)"))?;
        }
        let child = Command::new(SELF_EXE)
            .args(std::env::args_os().skip(1))
            .env(LISTEN_FD_ENV, sk.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| DaemonError::Spawn {
                what: "the detached service",
                source,
            })?;
        (child.id(), false)
    } else {
        (std::process::id(), true)
    };
    if let Some((file, path)) = pidfile {
        write_pid(file, path, pid)?;
    }
    if let Some((fd, raw)) = status {
        status_ready(fd, raw)?;
    }
    Ok(serve_here.then_some(sk))
}

/// The detached daemon: a new session, then serve the inherited socket.
fn run_detached_child(raw: &str) -> Result<(), DaemonError> {
    let raw: i32 = raw.parse().map_err(|_| DaemonError::Sys {
        what: "bad CRIU_SERVICE_LISTEN_FD",
        errno: Errno::BADF,
    })?;
    let sk = crate::sys::fds::adopt(raw).map_err(sys("adopting the service socket"))?;
    rustix::io::fcntl_setfd(&sk, FdFlags::CLOEXEC).map_err(sys("fcntl(service socket)"))?;
    rustix::process::setsid().map_err(sys("setsid"))?;
    accept_loop(sk)
}

/// Accepts connections forever, one worker process each.
fn accept_loop(sk: OwnedFd) -> Result<(), DaemonError> {
    let mut workers: Vec<Child> = Vec::new();
    let tick = rustix::time::Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    loop {
        workers.retain_mut(|w| !matches!(w.try_wait(), Ok(Some(_))));
        let mut fds = [PollFd::new(&sk, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&tick)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => {
                return Err(DaemonError::Sys {
                    what: "poll",
                    errno: e,
                });
            }
        }
        // Without close-on-exec: the worker inherits exactly this one.
        let conn = match rustix::net::accept_with(sk.as_fd(), SocketFlags::empty()) {
            Ok(c) => c,
            Err(Errno::INTR | Errno::AGAIN | Errno::CONNABORTED) => continue,
            Err(e) => {
                return Err(DaemonError::Sys {
                    what: "accept",
                    errno: e,
                });
            }
        };
        match Command::new(SELF_EXE)
            .arg("swrk")
            .arg(conn.as_raw_fd().to_string())
            .arg(WORKER_ARG)
            .env_remove(LISTEN_FD_ENV)
            .spawn()
        {
            Ok(child) => {
                pr_info!("Worker {} serves a new connection", child.id());
                workers.push(child);
            }
            // The connection is dropped (the client sees it closed); the
            // service goes on.
            Err(e) => pr_warn!("Can't start a worker: {e}"),
        }
        drop(conn);
    }
}
