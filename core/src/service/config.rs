//! `config_file`: a CRIU configuration file whose options override the
//! request's fields, as CRIU's RPC reads it ("Would overwrite RPC settings
//! with values from FILE"). runc names `/etc/criu/runc.conf` on every
//! request, or the file of the container's `org.criu.config` annotation;
//! a file that does not exist asks for nothing.
//!
//! The options a runtime's configuration names for its containers are
//! the ones that map onto a field of the request: those below. Any other
//! refuses the request, naming the option and the file (not ignored: a
//! configuration that silently does not apply would dump something else
//! than asked for).

use std::path::Path;

use crate::images::pb::rpc;

/// The request's configuration file cannot be read or names an option
/// that does not apply.
#[derive(Debug, thiserror::Error)]
#[error("configuration file {file}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub reason: String,
}

/// `req` with the options of its `config_file` applied over it (and the
/// field cleared), or `None` when it names no file that exists.
pub fn overlay(req: &rpc::CriuOpts) -> Result<Option<rpc::CriuOpts>, ConfigError> {
    let Some(file) = req.config_file.as_deref().filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    if !Path::new(file).exists() {
        return Ok(None);
    }
    let bad = |reason: String| ConfigError {
        file: file.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let mut out = req.clone();
    out.config_file = None;
    apply(&mut out, &crate::opts::parse_config(&text)).map_err(bad)?;
    Ok(Some(out))
}

/// Applies command-line `words` (`--name`, `--name value`,
/// `--name=value`) to `o`.
fn apply(o: &mut rpc::CriuOpts, words: &[String]) -> Result<(), String> {
    let mut words = words.iter().peekable();
    while let Some(w) = words.next() {
        let Some(opt) = w.strip_prefix("--") else {
            return Err(format!("`{w}` is not an option"));
        };
        let (name, inline) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (opt, None),
        };
        if let Some(field) = switch(o, name) {
            if let Some(v) = inline {
                return Err(format!("option {name} takes no value (given {v:?})"));
            }
            *field = Some(true);
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| words.next().cloned())
                .ok_or_else(|| format!("option {name} needs a value"))
        };
        match name {
            "network-lock" => {
                let v = value()?;
                let m = match v.as_str() {
                    "iptables" => rpc::CriuNetworkLockMethod::Iptables,
                    "nftables" => rpc::CriuNetworkLockMethod::Nftables,
                    "skip" | "none" => rpc::CriuNetworkLockMethod::Skip,
                    _ => return Err(format!("unknown network lock method {v:?}")),
                };
                o.network_lock = Some(m as i32);
            }
            "timeout" => {
                let v = value()?;
                let n = v
                    .parse()
                    .map_err(|_| format!("option timeout: {v:?} is not a number"))?;
                o.timeout = Some(n);
            }
            _ => {
                return Err(format!(
                    "option {name} is not supported in an RPC configuration file yet"
                ));
            }
        }
    }
    Ok(())
}

/// The field of switch `name`, if it is one.
fn switch<'a>(o: &'a mut rpc::CriuOpts, name: &str) -> Option<&'a mut Option<bool>> {
    Some(match name {
        "tcp-established" => &mut o.tcp_established,
        "tcp-close" => &mut o.tcp_close,
        "skip-in-flight" => &mut o.tcp_skip_in_flight,
        "file-locks" => &mut o.file_locks,
        "ext-unix-sk" => &mut o.ext_unix_sk,
        "link-remap" => &mut o.link_remap,
        "shell-job" => &mut o.shell_job,
        "leave-running" => &mut o.leave_running,
        "evasive-devices" => &mut o.evasive_devices,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req_with(text: &str) -> (rpc::CriuOpts, std::path::PathBuf) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("criu-rs-config-{}-{n}.conf", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let req = rpc::CriuOpts {
            config_file: Some(path.display().to_string()),
            tcp_established: Some(false),
            network_lock: Some(rpc::CriuNetworkLockMethod::Nftables as i32),
            ..Default::default()
        };
        (req, path)
    }

    #[test]
    fn config_file_options_override_the_request() {
        let (req, path) = req_with(
            "# runc.conf\ntcp-established\nnetwork-lock iptables\ntimeout=7\nfile-locks\n",
        );
        let o = overlay(&req).unwrap().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(o.config_file, None);
        assert_eq!(o.tcp_established, Some(true));
        assert_eq!(o.file_locks, Some(true));
        assert_eq!(
            o.network_lock,
            Some(rpc::CriuNetworkLockMethod::Iptables as i32)
        );
        assert_eq!(o.timeout, Some(7));
    }

    #[test]
    fn a_missing_config_file_asks_for_nothing() {
        let req = rpc::CriuOpts {
            config_file: Some("/nonexistent/criu-rs/runc.conf".into()),
            ..Default::default()
        };
        assert!(overlay(&req).unwrap().is_none());
        assert!(overlay(&rpc::CriuOpts::default()).unwrap().is_none());
    }

    #[test]
    fn other_options_refuse_the_request_by_name() {
        for (text, want) in [
            ("ghost-limit 1M\n", "option ghost-limit is not supported"),
            (
                "network-lock bogus\n",
                "unknown network lock method \"bogus\"",
            ),
            ("network-lock\n", "option network-lock needs a value"),
            (
                "tcp-established=yes\n",
                "option tcp-established takes no value",
            ),
        ] {
            let (req, path) = req_with(text);
            let e = overlay(&req).unwrap_err().to_string();
            std::fs::remove_file(&path).unwrap();
            assert!(
                e.contains(want) && e.contains(&path.display().to_string()),
                "{e}"
            );
        }
    }
}
