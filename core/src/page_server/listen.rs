//! `criu page-server`: listen on `--address`/`--port` (any address and a
//! port the kernel picks, logged as "Using N port", when not given), or
//! take the connected socket `--ps-socket`; `-d` hands the socket over to
//! a detached copy of this program (which serves it in its own session)
//! and writes its pid to `--pidfile`; `--status-fd` gets one zero byte
//! once connections are accepted. One sender is served, then it exits.

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use rustix::io::{Errno, FdFlags};

use super::server::{ServeError, serve};
use crate::pr_info;

/// Set for the detached page server only: `listen:FD` or `conn:FD`, the
/// socket it serves.
pub const SOCKET_ENV: &str = "CRIU_PAGE_SERVER_SOCKET";
/// CRIU listens on any address when none is given.
const ANY: &str = "0.0.0.0";

/// What `criu page-server` was asked for.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub images_dir: PathBuf,
    pub address: Option<String>,
    pub port: Option<u16>,
    pub ps_socket: Option<i32>,
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    pub status_fd: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum PageServerError {
    #[error("Can't bind page server on {addr}:{port}: {source}")]
    Bind {
        addr: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("Can't accept connection to server: {0}")]
    Accept(std::io::Error),
    #[error("can't use fd {fd} ({what}): {errno}")]
    Fd {
        fd: i32,
        what: &'static str,
        errno: Errno,
    },
    #[error("Can't run in the background: {0}")]
    Spawn(std::io::Error),
    #[error("Can't write pidfile {path}: {source}")]
    Pidfile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad {SOCKET_ENV}: {0:?}")]
    BadEnv(String),
    #[error("page server: {0}")]
    Serve(#[from] ServeError),
}

/// The socket to serve.
enum Socket {
    Listen(TcpListener),
    Conn(TcpStream),
}

impl Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Listen(l) => l.as_fd(),
            Socket::Conn(c) => c.as_fd(),
        }
    }

    fn env_value(&self) -> String {
        match self {
            Socket::Listen(l) => format!("listen:{}", l.as_raw_fd()),
            Socket::Conn(c) => format!("conn:{}", c.as_raw_fd()),
        }
    }
}

fn adopt(raw: i32, what: &'static str) -> Result<OwnedFd, PageServerError> {
    crate::sys::fds::adopt(raw).map_err(|errno| PageServerError::Fd {
        fd: raw,
        what,
        errno,
    })
}

/// `criu page-server`.
pub fn run(cfg: &Config) -> Result<(), PageServerError> {
    if let Ok(v) = std::env::var(SOCKET_ENV) {
        // The detached page server.
        let sock = from_env(&v)?;
        let _ = rustix::process::setsid();
        return serve_socket(cfg, sock);
    }
    let status = match cfg.status_fd {
        Some(raw) => Some((adopt(raw, "--status-fd")?, raw)),
        None => None,
    };
    let sock = match cfg.ps_socket {
        Some(raw) => {
            pr_info!("Re-using ps socket {raw}");
            Socket::Conn(TcpStream::from(adopt(raw, "--ps-socket")?))
        }
        None => Socket::Listen(listen(cfg)?),
    };
    if cfg.daemon {
        if let Some((fd, raw)) = &status {
            // The detached server must not hold the status fd open.
            rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC).map_err(|errno| PageServerError::Fd {
                fd: *raw,
                what: "--status-fd",
                errno,
            })?;
        }
        let mut child = detach(&sock)?;
        if let Some(path) = &cfg.pidfile
            && let Err(source) = std::fs::write(path, child.id().to_string())
        {
            // As CRIU: no server runs that its pidfile does not name.
            let _ = child.kill();
            let _ = child.wait();
            return Err(PageServerError::Pidfile {
                path: path.clone(),
                source,
            });
        }
        status_ready(status)?;
        return Ok(());
    }
    status_ready(status)?;
    serve_socket(cfg, sock)
}

fn listen(cfg: &Config) -> Result<TcpListener, PageServerError> {
    let addr = cfg.address.as_deref().unwrap_or(ANY);
    let port = cfg.port.unwrap_or(0);
    pr_info!("Starting page server on port {port}");
    let bind_err = |source| PageServerError::Bind {
        addr: addr.to_owned(),
        port,
        source,
    };
    let l = TcpListener::bind((addr, port)).map_err(bind_err)?;
    if port == 0 {
        let chosen = l.local_addr().map_err(bind_err)?.port();
        pr_info!("Using {chosen} port");
    }
    Ok(l)
}

/// Start the detached page server with the socket.
fn detach(sock: &Socket) -> Result<Child, PageServerError> {
    let raw = sock.as_fd().as_raw_fd();
    // Only this socket loses close-on-exec: the child inherits exactly it.
    rustix::io::fcntl_setfd(sock.as_fd(), FdFlags::empty()).map_err(|errno| {
        PageServerError::Fd {
            fd: raw,
            what: "the page server socket",
            errno,
        }
    })?;
    let child = Command::new("/proc/self/exe")
        .args(std::env::args_os().skip(1))
        .env(SOCKET_ENV, sock.env_value())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(PageServerError::Spawn)?;
    pr_info!("The page server runs detached as {}", child.id());
    Ok(child)
}

fn from_env(v: &str) -> Result<Socket, PageServerError> {
    let bad = || PageServerError::BadEnv(v.to_owned());
    let (kind, n) = v.split_once(':').ok_or_else(bad)?;
    let raw: i32 = n.parse().map_err(|_| bad())?;
    let fd = adopt(raw, "inherited page server socket")?;
    let _ = rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC);
    match kind {
        "listen" => Ok(Socket::Listen(TcpListener::from(fd))),
        "conn" => Ok(Socket::Conn(TcpStream::from(fd))),
        _ => Err(bad()),
    }
}

fn status_ready(status: Option<(OwnedFd, i32)>) -> Result<(), PageServerError> {
    if let Some((fd, raw)) = status {
        rustix::io::write(&fd, &[0u8]).map_err(|errno| PageServerError::Fd {
            fd: raw,
            what: "--status-fd",
            errno,
        })?;
    }
    Ok(())
}

/// Accept one sender if listening, and serve it.
fn serve_socket(cfg: &Config, sock: Socket) -> Result<(), PageServerError> {
    let (conn, inherited) = match sock {
        Socket::Listen(l) => {
            let (c, peer) = l.accept().map_err(PageServerError::Accept)?;
            pr_info!("Accepted connection from {peer}");
            (c, false)
        }
        Socket::Conn(c) => (c, true),
    };
    let got = serve(&conn, &cfg.images_dir, inherited)?;
    pr_info!("Received {} pages in {} pagemaps", got.pages, got.pagemaps);
    Ok(())
}
