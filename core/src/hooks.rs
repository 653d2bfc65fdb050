//! Action hooks: the points of a dump or restore where CRIU lets its
//! caller act (`--action-script` programs, or NOTIFY round trips with an
//! RPC client), and the running of them.
//!
//! The namespace and network actions run only where CRIU runs them:
//! `setup-namespaces` and `post-setup-namespaces` when the restored root
//! has namespaces of its own (see `restore::netns::ns_hook`),
//! `network-lock` and `network-unlock` when it has its own net namespace
//! (the dump locks; a failed dump, or one that leaves the tree running,
//! and the restore unlock).
//!
//! Dump and restore receive a [`Hooks`] value and call [`Hooks::run`] at
//! each point; what runs is decided by whoever built it (the CLI: the
//! scripts; the service: the client's NOTIFY, which then replaces the
//! scripts as in CRIU).

use std::path::{Path, PathBuf};

/// CRIU's actions, by the names scripts and clients see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    PreDump,
    PostDump,
    NetworkLock,
    NetworkUnlock,
    PreRestore,
    SetupNamespaces,
    PostSetupNamespaces,
    PostRestore,
    PreResume,
    PostResume,
    /// RPC only: the master of a pts whose master was outside the dump,
    /// handed to the client (`orphan_pts_master`).
    OrphanPtsMaster,
}

impl Action {
    /// The name in `CRTOOLS_SCRIPT_ACTION` and `criu_notify.script`.
    pub fn name(self) -> &'static str {
        match self {
            Action::PreDump => "pre-dump",
            Action::PostDump => "post-dump",
            Action::NetworkLock => "network-lock",
            Action::NetworkUnlock => "network-unlock",
            Action::PreRestore => "pre-restore",
            Action::SetupNamespaces => "setup-namespaces",
            Action::PostSetupNamespaces => "post-setup-namespaces",
            Action::PostRestore => "post-restore",
            Action::PreResume => "pre-resume",
            Action::PostResume => "post-resume",
            Action::OrphanPtsMaster => "orphan-pts-master",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{action} script {script} exited with {status}")]
    ScriptFailed {
        action: Action,
        script: String,
        status: std::process::ExitStatus,
    },
    #[error("cannot run {action} script {script}: {source}")]
    Spawn {
        action: Action,
        script: String,
        source: std::io::Error,
    },
    #[error("the client refused {action}: {source}")]
    Notify { action: Action, source: NotifyError },
    #[error("the client refused {action}: no RPC client to send the fd to")]
    NoClient { action: Action },
}

/// Why an RPC client did not take a notify: the client layer's own error
/// (the hooks sit below it and only pass it on).
pub type NotifyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A callback that tells an RPC client about an action (with the root
/// task's pid once there is one) and returns its verdict.
pub type NotifyFn<'a> = dyn FnMut(Action, Option<i32>) -> Result<(), NotifyError> + 'a;

/// A callback that sends an fd to an RPC client with a notify (CRIU's
/// `rpc_send_fd`) and returns its verdict.
pub type NotifyFdFn<'a> =
    dyn FnMut(Action, std::os::fd::BorrowedFd<'_>) -> Result<(), NotifyError> + 'a;

/// What runs at each action.
pub struct Hooks<'a> {
    scripts: Vec<PathBuf>,
    images_dir: PathBuf,
    notify: Option<&'a mut NotifyFn<'a>>,
    notify_fd: Option<&'a mut NotifyFdFn<'a>>,
}

impl<'a> Hooks<'a> {
    /// Nothing runs.
    pub fn none() -> Hooks<'a> {
        Hooks {
            scripts: Vec::new(),
            images_dir: PathBuf::new(),
            notify: None,
            notify_fd: None,
        }
    }

    /// `--action-script` programs, run in order for every action, with
    /// CRIU's environment (`images_dir` is `CRTOOLS_IMAGE_DIR`).
    pub fn scripts(scripts: &[PathBuf], images_dir: &Path) -> Hooks<'a> {
        Hooks {
            scripts: scripts.to_vec(),
            images_dir: std::path::absolute(images_dir).unwrap_or_else(|_| images_dir.into()),
            notify: None,
            notify_fd: None,
        }
    }

    /// An RPC client's NOTIFY instead of scripts.
    pub fn notify(f: &'a mut NotifyFn<'a>) -> Hooks<'a> {
        Hooks {
            notify: Some(f),
            ..Hooks::none()
        }
    }

    /// With a way to send fds to the RPC client too.
    pub fn with_fd_notify(mut self, f: &'a mut NotifyFdFn<'a>) -> Hooks<'a> {
        self.notify_fd = Some(f);
        self
    }

    /// Sends `fd` to the RPC client with `action`; without a client (the
    /// CLI) there is nobody to take it: an error.
    pub fn send_fd(
        &mut self,
        action: Action,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), HookError> {
        let Some(f) = self.notify_fd.as_mut() else {
            return Err(HookError::NoClient { action });
        };
        crate::pr_info!("Sending the client an fd: {action}");
        f(action, fd).map_err(|source| HookError::Notify { action, source })
    }

    /// Run `action`; `pid` is the root task's once it is known (it is
    /// `CRTOOLS_INIT_PID` and the notify's pid). Scripts all run even if
    /// one fails (as CRIU does); any failure is returned.
    pub fn run(&mut self, action: Action, pid: Option<i32>) -> Result<(), HookError> {
        if let Some(f) = self.notify.as_mut() {
            crate::pr_info!("Notifying the client: {action}");
            return f(action, pid).map_err(|source| HookError::Notify { action, source });
        }
        let mut result = Ok(());
        for script in &self.scripts {
            crate::pr_debug!("Running {action} script {}", script.display());
            let mut cmd = std::process::Command::new(script);
            cmd.env("CRTOOLS_SCRIPT_ACTION", action.name())
                .env("CRTOOLS_IMAGE_DIR", &self.images_dir)
                .stdin(std::process::Stdio::null());
            match pid {
                Some(p) => cmd.env("CRTOOLS_INIT_PID", p.to_string()),
                None => cmd.env_remove("CRTOOLS_INIT_PID"),
            };
            let script_name = script.display().to_string();
            let outcome = match cmd.status() {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(HookError::ScriptFailed {
                    action,
                    script: script_name,
                    status,
                }),
                Err(source) => Err(HookError::Spawn {
                    action,
                    script: script_name,
                    source,
                }),
            };
            if let Err(e) = outcome {
                crate::pr_err!("{e}");
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }
}
