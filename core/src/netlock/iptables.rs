//! `--network-lock iptables`, for CRIU compatibility: CRIU's two rules per
//! connection (one on INPUT for the peer's packets, one on OUTPUT for
//! ours), made with the `iptables` or `ip6tables` command, which must be
//! in `PATH`. Run directly, not through `sh -c` as CRIU does.

use std::process::{Command, Stdio};

use rustix::io::Errno;

use super::NetLockError;
use super::nft::{SOCCR_MARK, Tuple};

/// Inserts (`lock`) or deletes the two rules of `t` (`t.src` is the local
/// end). If the second insertion fails the first is taken back.
pub fn switch(t: &Tuple, lock: bool) -> Result<(), NetLockError> {
    if lock {
        run(t, Chain::Input, true)?;
        if let Err(e) = run(t, Chain::Output, true) {
            let _undo = crate::fault::Undo::enter();
            if let Err(u) = run(t, Chain::Input, false) {
                crate::pr_err!("cannot take back the iptables INPUT rule: {u}");
            }
            return Err(e);
        }
        crate::pr_info!("Locked {} connection", describe(t));
        Ok(())
    } else {
        let input = run(t, Chain::Input, false);
        let output = run(t, Chain::Output, false);
        input.and(output)?;
        crate::pr_info!("Unlocked {} connection", describe(t));
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Chain {
    Input,
    Output,
}

fn describe(t: &Tuple) -> String {
    let ((sa, sp), (da, dp)) = endpoints(t);
    format!("{sa}:{sp} - {da}:{dp}")
}

/// Source and destination as `(addr, port)` strings of the local end and
/// the peer.
fn endpoints(t: &Tuple) -> ((String, u16), (String, u16)) {
    match t {
        Tuple::V4 { src, dst } => (
            (src.ip().to_string(), src.port()),
            (dst.ip().to_string(), dst.port()),
        ),
        Tuple::V6 { src, dst } => (
            (src.ip().to_string(), src.port()),
            (dst.ip().to_string(), dst.port()),
        ),
    }
}

/// The arguments of one rule: on INPUT the packets from the peer, on
/// OUTPUT ours, unless they carry libsoccr's mark.
fn args(t: &Tuple, chain: Chain, lock: bool) -> Vec<String> {
    let (local, peer) = endpoints(t);
    let (from, to, name) = match chain {
        Chain::Input => (peer, local, "INPUT"),
        Chain::Output => (local, peer, "OUTPUT"),
    };
    let mark = format!("{SOCCR_MARK:#x}");
    let head = ["-w", "-t", "filter", if lock { "-I" } else { "-D" }, name];
    let (from_port, to_port) = (from.1.to_string(), to.1.to_string());
    let rule = [
        "--protocol",
        "tcp",
        "-m",
        "mark",
        "!",
        "--mark",
        &mark,
        "--source",
        &from.0,
        "--sport",
        &from_port,
        "--destination",
        &to.0,
        "--dport",
        &to_port,
        "-j",
        "DROP",
    ];
    head.iter()
        .chain(rule.iter())
        .map(|s| s.to_string())
        .collect()
}

fn run(t: &Tuple, chain: Chain, lock: bool) -> Result<(), NetLockError> {
    let binary = match t {
        Tuple::V4 { .. } => "iptables",
        Tuple::V6 { .. } => "ip6tables",
    };
    exec(binary, &args(t, chain, lock), None)
}

/// Runs `binary` with `args` (and `input` on its stdin): a missing
/// command, a failure to run it and a failed status are errors.
fn exec(binary: &'static str, args: &[String], input: Option<&str>) -> Result<(), NetLockError> {
    let cmd = format!("{binary} {}", args.join(" "));
    crate::pr_debug!("\tRunning iptables [{cmd}]");
    crate::fault::call(&cmd, Errno::AGAIN).map_err(|errno| NetLockError::Kernel {
        what: cmd.clone(),
        errno,
    })?;
    // Looked up first: where exec itself reports a missing command is not
    // the same everywhere (under qemu-user the child exits 127 instead).
    if !in_path(binary) {
        return Err(NetLockError::NoCommand {
            binary,
            source: std::io::Error::from_raw_os_error(linux_raw_sys::errno::ENOENT as i32),
        });
    }
    let mut child = Command::new(binary)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetLockError::NoCommand { binary, source })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        // A command that fails before reading all of it says why below.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| NetLockError::NoCommand { binary, source })?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetLockError::Command {
        cmd,
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// CRIU's lock of a whole net namespace (its `network_lock_internal`,
/// which CRIU restores with `iptables-restore --noflush`): a chain `CRIU`
/// that accepts libsoccr's marked packets and drops every other, jumped
/// to first from INPUT and OUTPUT, for IPv4 and (where the namespace has
/// it) IPv6. Runs in the calling thread's net namespace.
pub fn lock_namespace() -> Result<(), NetLockError> {
    let conf = format!(
        "*filter\n:CRIU - [0:0]\n-I INPUT -j CRIU\n-I OUTPUT -j CRIU\n\
         -A CRIU -m mark --mark {SOCCR_MARK:#x} -j ACCEPT\n-A CRIU -j DROP\nCOMMIT\n"
    );
    let args = ["-w".to_owned(), "--noflush".to_owned()];
    exec("iptables-restore", &args, Some(&conf))?;
    if has_ipv6()
        && let Err(e) = exec("ip6tables-restore", &args, Some(&conf))
    {
        let _undo = crate::fault::Undo::enter();
        if let Err(u) = unlock_family("iptables") {
            crate::pr_err!("cannot take back the IPv4 lock: {u}");
        }
        return Err(e);
    }
    crate::pr_info!("Locked the net namespace with chain CRIU of iptables");
    Ok(())
}

/// Takes [`lock_namespace`]'s lock away (every jump to `CRIU`, then the
/// chain); where there is no chain `CRIU` there is nothing to do.
pub fn unlock_namespace() -> Result<(), NetLockError> {
    let v4 = unlock_family("iptables");
    let v6 = if has_ipv6() {
        unlock_family("ip6tables")
    } else {
        Ok(())
    };
    v4.and(v6)?;
    crate::pr_info!("Unlocked the net namespace (chain CRIU of iptables)");
    Ok(())
}

fn unlock_family(binary: &'static str) -> Result<(), NetLockError> {
    let a = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    if exec(binary, &a(&["-w", "-n", "-L", "CRIU"]), None).is_err() {
        crate::pr_info!("{binary}: no chain CRIU to remove");
        return Ok(());
    }
    // A restore that locked again (CRIU does with `--empty-ns net`) left a
    // second jump: every one goes before the chain can.
    for from in ["INPUT", "OUTPUT"] {
        for _ in 0..16 {
            if exec(binary, &a(&["-w", "-D", from, "-j", "CRIU"]), None).is_err() {
                break;
            }
        }
    }
    exec(binary, &a(&["-w", "-F", "CRIU"]), None)?;
    exec(binary, &a(&["-w", "-X", "CRIU"]), None)
}

/// Whether the calling thread's net namespace has IPv6.
fn has_ipv6() -> bool {
    std::path::Path::new("/proc/thread-self/net/if_inet6").exists()
}

/// Whether `PATH` has an executable file named `binary`.
fn in_path(binary: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(binary))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_criu_s() {
        let t = Tuple::V4 {
            src: "10.0.0.1:80".parse().unwrap(),
            dst: "10.0.0.2:5000".parse().unwrap(),
        };
        assert_eq!(
            args(&t, Chain::Input, true).join(" "),
            "-w -t filter -I INPUT --protocol tcp -m mark ! --mark 0xc114 \
             --source 10.0.0.2 --sport 5000 --destination 10.0.0.1 --dport 80 -j DROP"
        );
        assert_eq!(
            args(&t, Chain::Output, false).join(" "),
            "-w -t filter -D OUTPUT --protocol tcp -m mark ! --mark 0xc114 \
             --source 10.0.0.1 --sport 80 --destination 10.0.0.2 --dport 5000 -j DROP"
        );
    }
}
