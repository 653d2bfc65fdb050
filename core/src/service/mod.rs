//! CRIU's RPC: `criu swrk FD` and the `criu service` daemon
//! (`images/rpc.proto`, CRIU's `cr-service.c`).
//!
//! A client sends `criu_req` messages, one per `SOCK_SEQPACKET` datagram
//! ([`wire`]), and gets one `criu_resp` back for each. [`serve`] runs that
//! loop on one connection: it answers VERSION, FEATURE_CHECK, CHECK, DUMP,
//! PRE_DUMP, SINGLE_PRE_DUMP, RESTORE, WAIT_PID and CPUINFO_DUMP/CHECK;
//! every other type gets `success = false` with a `cr_errmsg` saying it is
//! not supported yet. With `keep_open` a successful request leaves the
//! connection open for the next one; a successful PRE_DUMP always does, for
//! more PRE_DUMP rounds and then the DUMP (CRIU's `pre_dump_loop`: runc
//! takes one round per connection and closes it); a failure or a
//! request that cannot be decoded ends it (after a failure response when
//! one can be sent). [`daemon`] is `criu service`: it accepts connections
//! and hands each to its own worker process, so that nothing a client sends
//! can take the daemon down.
//!
//! Options come from `criu_opts` ([`setup`]); DUMP and RESTORE log into the
//! work dir (`log_file`, default `criu.log`), and a failure's `cr_errmsg` is
//! the first error logged, as in CRIU.
//!
//! `notify_scripts`: the dump and restore pipelines expose no action points
//! yet, so the service sends the NOTIFY round trips around them: `pre-dump`
//! and `post-dump` around a dump; `pre-restore` before a restore and
//! `post-restore`, `pre-resume`, `post-resume` (with the restored pid) after
//! it, when the task already runs. A client answering `notify_success =
//! false` fails the request (a restored task is then killed). The service
//! runs no script of its own: a notify is only a message to the client.
//!
//! Every connection is served with its client's rights ([`client`]): a
//! client that is not full root is served by a worker that has become
//! that client, and whatever it asks for is checked first ([`rights`]):
//! the tasks it may dump, the credentials in the images it restores, the
//! directories it passes. `exec_cmd` runs with the client's uids and gids
//! and no capability (refused for a client that is uid 0 without all of
//! root's capabilities, as exec would give them back).

pub mod client;
pub mod config;
pub mod daemon;
mod handlers;
mod requested;
pub mod rights;
pub mod setup;
pub mod wire;

use std::os::fd::{AsFd, BorrowedFd};

use rustix::io::Errno;

use crate::images::pb::rpc::{CriuReqType, CriuResp};
use crate::{log, pr_err, pr_info};

pub use client::Peer;
pub use client::{Client, ClientError};
pub use rights::Denied;
pub use setup::{Mode, SetupError};
pub use wire::WireError;

/// Why a request failed (its text becomes `cr_errmsg` when nothing was
/// logged before it).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
    #[error("unknown request type {0}")]
    UnknownType(i32),
    #[error("a {0} request needs criu_opts")]
    NoOpts(&'static str),
    #[error("Can't set up the log: {0}")]
    Log(#[from] log::LogError),
    /// The dump failed; `errno` is ESRCH when the task does not exist.
    #[error("Dumping FAILED: {reason}")]
    Dump { reason: String, errno: Option<i32> },
    /// A pre-dump round failed; `errno` as for [`ServiceError::Dump`].
    #[error("Pre-dumping FAILED: {reason}")]
    PreDump { reason: String, errno: Option<i32> },
    /// After a PRE_DUMP only more PRE_DUMP rounds or the DUMP may come.
    #[error("a {0} request after PRE_DUMP (only PRE_DUMP or DUMP may follow it)")]
    AfterPreDump(String),
    #[error("Restore failed: {0}")]
    Restore(String),
    #[error("Check failed: {0}")]
    Check(String),
    #[error("{0}")]
    Cpuinfo(String),
    #[error("notify script {0} failed")]
    NotifyFailed(String),
    #[error("expected the answer to notify {script}, got a request of type {got}")]
    NotifyAnswer { script: String, got: i32 },
    #[error("the client went away during notify {0}")]
    NotifyGone(String),
    #[error("waitpid({pid}): {errno}")]
    Wait { pid: i32, errno: Errno },
    #[error("can't get the peer's credentials: {0}")]
    PeerCred(Errno),
    #[error("Failed to exec cmd {0}: {1}")]
    Exec(String, std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Denied(#[from] Denied),
}

impl ServiceError {
    /// `cr_errno`: set only when the failure has an errno (CRIU leaves it
    /// out when its `cr_errno` is 0).
    pub fn errno(&self) -> Option<i32> {
        match self {
            ServiceError::Setup(e) => e.errno(),
            ServiceError::Wait { errno, .. } | ServiceError::PeerCred(errno) => {
                Some(errno.raw_os_error())
            }
            ServiceError::Wire(WireError::Recv(e) | WireError::Send(e)) => Some(e.raw_os_error()),
            ServiceError::Dump { errno, .. } | ServiceError::PreDump { errno, .. } => *errno,
            ServiceError::Client(e) => e.errno(),
            ServiceError::Denied(d) => Some(d.errno()),
            _ => None,
        }
    }
}

/// The process on the other end of `sk`.
pub fn peer_of(sk: BorrowedFd<'_>) -> Result<Peer, ServiceError> {
    let cred = rustix::net::sockopt::socket_peercred(sk).map_err(ServiceError::PeerCred)?;
    Ok(Peer {
        pid: cred.pid.as_raw_nonzero().get(),
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
    })
}

/// A failure response for a request of type `ty` (CRIU's `set_resp_err`):
/// `cr_errmsg` is the first error logged while serving it, or else the
/// error itself.
fn failure(ty: i32, e: &ServiceError) -> CriuResp {
    pr_err!("{e}");
    CriuResp {
        r#type: ty,
        success: false,
        cr_errno: e.errno(),
        cr_errmsg: Some(log::first_error().unwrap_or_else(|| e.to_string())),
        ..Default::default()
    }
}

/// RESTORE's `exec_cmd`, once the answer is sent (CRIU's
/// `restore_using_req`): the worker becomes `cmd`, with stdout and stderr
/// going to the request's log and the connection closed, so the command is
/// the parent of the restored tree. Returns only on failure.
fn exec_cmd(sk: BorrowedFd<'_>, client: &Client, cmd: &[String]) -> ServiceError {
    use std::os::unix::process::CommandExt;
    let Some((prog, args)) = cmd.split_first() else {
        return ServiceError::Exec(String::new(), std::io::ErrorKind::InvalidInput.into());
    };
    // With the client's uids and gids (the worker's own by now), without
    // the capabilities the worker kept.
    if let Err(why) = client.before_exec() {
        pr_err!("{why}");
        return ServiceError::Exec(prog.clone(), std::io::Error::other(why));
    }
    if let Err(e) = log::redirect_stdio() {
        pr_err!("Failed to redirect stdout and stderr to the logfile: {e}");
    }
    // Our end of the connection must not live on in the command.
    if let Err(e) = rustix::io::fcntl_setfd(sk, rustix::io::FdFlags::CLOEXEC) {
        pr_err!("Can't close the RPC socket on exec: {e}");
    }
    pr_info!("Executing {}", cmd.join(" "));
    let e = std::process::Command::new(prog).args(args).exec();
    ServiceError::Exec(prog.clone(), e)
}

/// Serves requests on one connection until the client closes it, a request
/// fails or cannot be read, or one comes without `keep_open`.
pub fn serve(sk: impl AsFd, mode: Mode) -> Result<(), ServiceError> {
    let sk = sk.as_fd();
    let peer = peer_of(sk)?;
    pr_info!(
        "Serving RPC requests of process {} (uid {}, {mode:?})",
        peer.pid,
        peer.uid
    );
    // Before any request: whose rights, and become them.
    let client = match Client::read(sk, peer).and_then(|c| c.confine().map(|()| c)) {
        Ok(c) => c,
        Err(e) => return Err(refuse_connection(sk, e.into())),
    };
    // The last request was a PRE_DUMP that worked.
    let mut pre_dumped = false;
    loop {
        let bytes = match wire::recv_datagram(sk) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(()),
            Err(e) => {
                let e = ServiceError::from(e);
                let _ = wire::send_resp(sk, &failure(CriuReqType::Empty as i32, &e));
                return Err(e);
            }
        };
        log::take_first_error();
        let req = match wire::decode_req(&bytes) {
            Ok(req) => req,
            Err(e) => {
                let e = ServiceError::from(e);
                let _ = wire::send_resp(sk, &failure(CriuReqType::Empty as i32, &e));
                return Err(e);
            }
        };
        let keep_open = req.keep_open.unwrap_or(false);
        let mut then = handlers::Then::default();
        let resp = match pre_dumped {
            // CRIU's `pre_dump_loop`: PRE_DUMP rounds until the DUMP.
            true if ![CriuReqType::PreDump as i32, CriuReqType::Dump as i32]
                .contains(&req.r#type) =>
            {
                let ty = CriuReqType::try_from(req.r#type)
                    .map_or_else(|_| req.r#type.to_string(), |t| t.as_str_name().to_owned());
                failure(req.r#type, &ServiceError::AfterPreDump(ty))
            }
            _ => match handlers::handle(sk, &client, mode, &req, &mut then) {
                Ok(resp) => resp,
                Err(e) => failure(req.r#type, &e),
            },
        };
        let ok = resp.success;
        wire::send_resp(sk, &resp)?;
        if let Some(cmd) = then.exec.filter(|_| ok) {
            return Err(exec_cmd(sk, &client, &cmd));
        }
        pre_dumped = ok && req.r#type == CriuReqType::PreDump as i32;
        if pre_dumped {
            // runc takes one round per connection and closes it.
            pr_info!("Waiting for the next PRE_DUMP or the DUMP");
            continue;
        }
        if !ok || !keep_open {
            return Ok(());
        }
    }
}

/// A connection that can't be served with its client's rights: its first
/// request gets the failure, then the connection ends.
fn refuse_connection(sk: BorrowedFd<'_>, e: ServiceError) -> ServiceError {
    pr_err!("{e}");
    let ty = match wire::recv_req(sk) {
        Ok(Some(req)) => req.r#type,
        _ => CriuReqType::Empty as i32,
    };
    let _ = wire::send_resp(sk, &failure(ty, &e));
    e
}
