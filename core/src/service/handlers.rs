//! One handler per request type; each returns the success response or the
//! error that [`super::serve`] turns into a failure response.

use std::os::fd::BorrowedFd;

use rustix::process::{Pid, WaitOptions};

use super::client::Client;
use super::setup::{self, Mode, Setup};
use super::{ServiceError, wire};
use crate::check::KernelFeatures;
use crate::hooks::{Action, Hooks, NotifyError};
use crate::images::pb::rpc::{
    CriuDumpResp, CriuFeatures, CriuNotify, CriuReq, CriuReqType, CriuResp, CriuRestoreResp,
    CriuVersion,
};
use crate::opts::support::On;
use crate::opts::{CheckOpts, version};
use crate::{log, pr_info};

/// What a request asks to do once its answer is sent.
#[derive(Debug, Default)]
pub struct Then {
    /// RESTORE with `exec_cmd`: the worker becomes this command.
    pub exec: Option<Vec<String>>,
}

/// Answers `req`; what to do after the answer is sent goes into `then`.
pub fn handle(
    sk: BorrowedFd<'_>,
    client: &Client,
    mode: Mode,
    req: &CriuReq,
    then: &mut Then,
) -> Result<CriuResp, ServiceError> {
    let ty =
        CriuReqType::try_from(req.r#type).map_err(|_| ServiceError::UnknownType(req.r#type))?;
    pr_info!("RPC request {}", ty.as_str_name());
    match ty {
        CriuReqType::Version => Ok(version_resp()),
        CriuReqType::FeatureCheck => Ok(feature_check(req.features.as_ref())),
        CriuReqType::Check => check(req, client, mode),
        CriuReqType::Dump => dump(sk, req, client, mode),
        CriuReqType::Restore => restore(sk, req, client, mode, then),
        CriuReqType::WaitPid => wait_pid(req),
        CriuReqType::PreDump => pre_dump(sk, req, client, mode, CriuReqType::PreDump),
        CriuReqType::SinglePreDump => pre_dump(sk, req, client, mode, CriuReqType::SinglePreDump),
        CriuReqType::PageServer => Err(ServiceError::Unsupported("PAGE_SERVER")),
        CriuReqType::PageServerChld => Err(ServiceError::Unsupported("PAGE_SERVER_CHLD")),
        CriuReqType::CpuinfoDump => cpuinfo(req, client, mode, true),
        CriuReqType::CpuinfoCheck => cpuinfo(req, client, mode, false),
        // NOTIFY is only an answer inside a notify round trip; EMPTY is no
        // request at all.
        CriuReqType::Notify | CriuReqType::Empty => Err(ServiceError::UnknownType(req.r#type)),
    }
}

fn ok(ty: CriuReqType) -> CriuResp {
    CriuResp {
        r#type: ty as i32,
        success: true,
        ..Default::default()
    }
}

/// VERSION: the CRIU release we implement, and our own name and version.
fn version_resp() -> CriuResp {
    CriuResp {
        version: Some(CriuVersion {
            major_number: version::MAJOR as i32,
            minor_number: version::MINOR as i32,
            gitid: Some(version::GITID.to_owned()),
            sublevel: (version::SUBLEVEL != 0).then_some(version::SUBLEVEL as i32),
            extra: None,
            name: Some(version::NAME.to_owned()),
        }),
        ..ok(CriuReqType::Version)
    }
}

/// FEATURE_CHECK: every feature is answered, true only where the client
/// asked about it and we have it (CRIU's `handle_feature_check`).
/// `mem_track` is our dirty tracking (userfaultfd async write-protect and
/// `PAGEMAP_SCAN`, no soft-dirty), what `criu check --feature
/// mem_dirty_track` reports: runc asks for it before `--pre-dump`.
fn feature_check(asked: Option<&CriuFeatures>) -> CriuResp {
    let asked = asked.cloned().unwrap_or_default();
    let kdat = KernelFeatures::probe();
    CriuResp {
        features: Some(CriuFeatures {
            mem_track: Some(asked.mem_track.is_some() && kdat.mem_track()),
            lazy_pages: Some(asked.lazy_pages.is_some() && kdat.lazy_pages()),
            pidfd_store: Some(asked.pidfd_store.is_some() && kdat.pidfd_store()),
        }),
        ..ok(CriuReqType::FeatureCheck)
    }
}

/// Maps the request's options and points the log at the work dir.
fn setup_with_log(
    req: &CriuReq,
    client: &Client,
    mode: Mode,
    what: &'static str,
    on: On,
) -> Result<Setup, ServiceError> {
    let opts = req.opts.as_ref().ok_or(ServiceError::NoOpts(what))?;
    let s = match setup::setup(opts, client, mode, on) {
        Ok(s) => s,
        Err(e) => {
            // The refusal goes into the request's log too: the failure
            // response logs it, once the log is open.
            if let Some((config, _dirs)) = setup::refusal_log(opts, client, on)
                && log::init(&config).is_ok()
            {
                log::log_banner(version::STRING, version::GITID);
            }
            return Err(e.into());
        }
    };
    log::init(&s.opts.common.log_config())?;
    log::log_banner(version::STRING, version::GITID);
    log_request(opts);
    Ok(s)
}

/// What the client asked for: how a runtime drives criu shows in the
/// request's log (the fields it sets, its externals, its inherited fds).
fn log_request(opts: &crate::images::pb::rpc::CriuOpts) {
    let given = super::requested::requested(opts);
    let names: Vec<&str> = given.iter().map(|(n, _)| *n).collect();
    pr_info!("RPC options set: {}", names.join(" "));
    if let Some(f) = opts.config_file.as_deref().filter(|f| !f.is_empty()) {
        match std::path::Path::new(f).exists() {
            true => pr_info!("Would overwrite RPC settings with values from {f}"),
            false => pr_info!("RPC config_file {f} does not exist: nothing to apply"),
        }
    }
    for e in &opts.external {
        pr_info!("RPC external {e}");
    }
    for f in &opts.inherit_fd {
        pr_info!("RPC inherit_fd {} = fd {}", f.key, f.fd);
    }
}

/// CHECK: `criu check` with default options.
fn check(req: &CriuReq, client: &Client, mode: Mode) -> Result<CriuResp, ServiceError> {
    let unprivileged = match req.opts {
        Some(_) => {
            setup_with_log(req, client, mode, "CHECK", On::CHECK)?
                .opts
                .common
                .unprivileged
        }
        // Whoever is not full root gets `criu check --unprivileged`.
        None => !client.full,
    };
    match crate::check::run(&CheckOpts::default(), unprivileged) {
        Ok(crate::check::Verdict::Good) => Ok(ok(CriuReqType::Check)),
        Ok(v) => Err(ServiceError::Check(format!("verdict {v:?}"))),
        Err(e) => Err(ServiceError::Check(e.to_string())),
    }
}

/// CPUINFO_DUMP / CPUINFO_CHECK: `criu cpuinfo dump|check` on the
/// request's images dir.
fn cpuinfo(
    req: &CriuReq,
    client: &Client,
    mode: Mode,
    dump: bool,
) -> Result<CriuResp, ServiceError> {
    use crate::regs::cpuinfo;
    let (ty, what) = match dump {
        true => (CriuReqType::CpuinfoDump, "CPUINFO_DUMP"),
        false => (CriuReqType::CpuinfoCheck, "CPUINFO_CHECK"),
    };
    if !cpuinfo::COMMANDS {
        return Err(ServiceError::Unsupported(what));
    }
    let s = setup_with_log(req, client, mode, what, On::CPUINFO)?;
    let c = &s.opts.common;
    let done = match dump {
        true => cpuinfo::dump(&c.images_dir),
        false => cpuinfo::check_command(&c.images_dir, c.cpu_cap),
    };
    done.map_err(|e| ServiceError::Cpuinfo(e.to_string()))?;
    Ok(ok(ty))
}

/// One NOTIFY round trip: tell the client `script` runs now, wait for its
/// `notify_success`.
fn notify(sk: BorrowedFd<'_>, script: &str, pid: Option<i32>) -> Result<(), ServiceError> {
    notify_with(sk, script, pid, None)
}

/// [`notify`], with `fd` attached to the message (SCM_RIGHTS).
fn notify_with(
    sk: BorrowedFd<'_>,
    script: &str,
    pid: Option<i32>,
    fd: Option<BorrowedFd<'_>>,
) -> Result<(), ServiceError> {
    pr_info!("Notifying the client: {script}");
    let msg = CriuResp {
        notify: Some(CriuNotify {
            script: Some(script.to_owned()),
            pid,
        }),
        ..ok(CriuReqType::Notify)
    };
    match fd {
        Some(fd) => wire::send_resp_fd(sk, &msg, fd)?,
        None => wire::send_resp(sk, &msg)?,
    }
    let answer = wire::recv_req(sk)?.ok_or_else(|| ServiceError::NotifyGone(script.to_owned()))?;
    if answer.r#type != CriuReqType::Notify as i32 {
        return Err(ServiceError::NotifyAnswer {
            script: script.to_owned(),
            got: answer.r#type,
        });
    }
    if !answer.notify_success.unwrap_or(false) {
        return Err(ServiceError::NotifyFailed(script.to_owned()));
    }
    Ok(())
}

/// The hooks of one request: NOTIFY round trips with the client when it
/// asked for them (`notify_scripts`), else nothing.
fn with_hooks<T>(sk: BorrowedFd<'_>, enabled: bool, f: impl FnOnce(&mut Hooks) -> T) -> T {
    if !enabled {
        return f(&mut Hooks::none());
    }
    // Fds (orphan-pts-master) go with a notify too, as CRIU's rpc_send_fd
    // does: only to a client that asked for the notifies.
    let mut send_fd = |action: Action, fd: BorrowedFd<'_>| {
        notify_with(sk, action.name(), None, Some(fd)).map_err(NotifyError::from)
    };
    let mut send = |action: Action, pid: Option<i32>| {
        // CRIU tells the client the root pid with these two only.
        let pid = pid.filter(|_| matches!(action, Action::SetupNamespaces | Action::PostRestore));
        notify(sk, action.name(), pid).map_err(NotifyError::from)
    };
    f(&mut Hooks::notify(&mut send).with_fd_notify(&mut send_fd))
}

/// DUMP of `opts.pid` (default: the client itself).
fn dump(
    sk: BorrowedFd<'_>,
    req: &CriuReq,
    client: &Client,
    mode: Mode,
) -> Result<CriuResp, ServiceError> {
    let s = setup_with_log(req, client, mode, "DUMP", On::DUMP)?;
    let pid = s.opts.dump.tree;
    // Every task the client could not trace itself is refused before the
    // first one is seized.
    if let Some(root) = pid {
        super::rights::may_dump(client, root, "dump")?;
    }
    with_hooks(sk, s.notify, |hooks| {
        crate::dump::dump(&s.opts.common, &s.opts.dump, hooks)
    })
    .map_err(|e| ServiceError::Dump {
        reason: e.to_string(),
        // CRIU's cr_errno for a task that is not there.
        errno: pid
            .filter(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
            .map(|_| rustix::io::Errno::SRCH.raw_os_error()),
    })?;
    Ok(CriuResp {
        dump: Some(CriuDumpResp {
            restored: Some(false),
        }),
        ..ok(CriuReqType::Dump)
    })
}

/// PRE_DUMP and SINGLE_PRE_DUMP (`ty`): one pre-dump round of
/// `opts.pid`, the tree left running with a dirty tracker in each task
/// for the next round (see `dump::iterative`). After a PRE_DUMP the
/// connection takes more PRE_DUMP rounds and then the DUMP, whatever
/// `keep_open` says (CRIU's `pre_dump_loop`, see [`super::serve`]); a
/// SINGLE_PRE_DUMP is one request like any other.
fn pre_dump(
    sk: BorrowedFd<'_>,
    req: &CriuReq,
    client: &Client,
    mode: Mode,
    ty: CriuReqType,
) -> Result<CriuResp, ServiceError> {
    let what = match ty {
        CriuReqType::SinglePreDump => "SINGLE_PRE_DUMP",
        _ => "PRE_DUMP",
    };
    let s = setup_with_log(req, client, mode, what, On::PRE_DUMP)?;
    let pid = s.opts.dump.tree;
    if let Some(root) = pid {
        super::rights::may_dump(client, root, "pre-dump")?;
    }
    with_hooks(sk, s.notify, |hooks| {
        crate::dump::pre_dump(&s.opts.common, &s.opts.dump, hooks)
    })
    .map_err(|e| ServiceError::PreDump {
        reason: e.to_string(),
        errno: pid
            .filter(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
            .map(|_| rustix::io::Errno::SRCH.raw_os_error()),
    })?;
    Ok(ok(ty))
}

/// RESTORE, always detached: the response carries the restored pid. The
/// client's NOTIFY answers come while the task waits to run (post-restore,
/// pre-resume): a refusal there leaves no task behind.
fn restore(
    sk: BorrowedFd<'_>,
    req: &CriuReq,
    client: &Client,
    mode: Mode,
    then: &mut Then,
) -> Result<CriuResp, ServiceError> {
    let s = setup_with_log(req, client, mode, "RESTORE", On::RESTORE)?;
    // Credentials beyond the client's are refused before any fork.
    super::rights::may_restore(client, &s.opts.common.images_dir)?;
    let pid = with_hooks(sk, s.notify, |hooks| {
        crate::restore::restore_tree(&s.opts, hooks)
    })
    .map(|r| r.pid.as_raw_nonzero().get())
    .map_err(|e| ServiceError::Restore(e.to_string()))?;
    pr_info!("Restored task {pid}");
    then.exec = s.opts.restore.exec_cmd.clone();
    Ok(CriuResp {
        restore: Some(CriuRestoreResp { pid }),
        ..ok(CriuReqType::Restore)
    })
}

/// WAIT_PID: wait for a child of ours (a task restored on this connection)
/// and return its raw wait status.
fn wait_pid(req: &CriuReq) -> Result<CriuResp, ServiceError> {
    let raw = req.pid.unwrap_or(0) as i32;
    let pid = Pid::from_raw(raw).ok_or(ServiceError::Wait {
        pid: raw,
        errno: rustix::io::Errno::INVAL,
    })?;
    let status = loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, st))) => break st,
            Ok(None) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(ServiceError::Wait { pid: raw, errno }),
        }
    };
    Ok(CriuResp {
        status: Some(status.as_raw() as i32),
        ..ok(CriuReqType::WaitPid)
    })
}
