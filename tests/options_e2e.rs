//! What the options implemented for issue 14 do, end to end: `--exec-cmd`,
//! `-S/--restore-sibling` (and their RPC fields), `--close`,
//! `--network-lock`, `--manage-cgroups=ignore`, `--cpu-cap`, `--log-pid`,
//! `--deprecated`, `--experimental`, `--no-default-config` and the RPC's
//! obsolete `status_fd` and `log_to_stderr`. Each test is the one the
//! support table (`core/src/opts/support.rs`) names for its option, but
//! for `--manage-cgroups=ignore`, whose effect (a task in other cgroups
//! dumped) `tests/zdtm_cgroups.rs` shows.

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::zdtm::Zdtm;
use common::{TempDir, wait_until};
use criu_core::images::pb::rpc::{
    CriuCgMode, CriuNetworkLockMethod, CriuOpts, CriuReq, CriuReqType,
};
use service_common::Client;

const TIMEOUT: Duration = Duration::from_secs(30);

/// `criu ARGS` with `-D images -v4 -o LOG` put before them (so that what
/// follows `--` stays the command of `--exec-cmd`): exit code and log.
fn criu(images: &Path, log: &str, args: &[&str]) -> (Option<i32>, String) {
    let (code, log, _) = criu_out(images, log, args);
    (code, log)
}

fn criu_out(images: &Path, log: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let (first, rest) = args.split_first().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_criu"))
        .arg(first)
        .arg("-D")
        .arg(images)
        .args(["-v4", "-o", log])
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .expect("run criu");
    let text = std::fs::read_to_string(images.join(log)).unwrap_or_default();
    let stdio =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text, stdio)
}

/// The parent PID of `pid`, from `/proc/PID/stat`.
fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    common::proc_state(pid).is_some_and(|s| s != 'Z')
}

/// A shell line that writes "ITS_PID PPID_OF_TASK" to `out`.
fn report_parent(task: i32, out: &Path) -> String {
    format!(
        "echo $$ $(sed 's/.*) //' /proc/{task}/stat | cut -d' ' -f2) > {}",
        out.display()
    )
}

#[test]
fn exec_cmd_runs_after_the_restore() {
    let Some(mut z) = Zdtm::start("opts-exec-cmd", "zdtm_counter", &[]) else {
        return;
    };
    let pid = z.pid();
    let images = z.images().to_owned();
    // A command that cannot run: criu says so, exits 1, and the restored
    // tree runs on (as CRIU: the restore itself succeeded).
    z.dump(&[]);
    let (code, log) = criu(
        &images,
        "restore.log",
        &["restore", "--exec-cmd", "--", "/nonexistent/cmd"],
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("Failed to exec command /nonexistent/cmd"),
        "{log}"
    );
    assert!(alive(pid), "{log}");
    z.restored_elsewhere();

    // The command runs in criu's place once the tree is restored: same
    // PID as criu, the parent of the restored task, criu's exit code.
    z.dump(&[]);
    let out = z.work().join("exec.out");
    let script = format!("{}; exit 7", report_parent(pid, &out));
    let (code, log) = criu(
        &images,
        "restore2.log",
        &["restore", "--exec-cmd", "--", "sh", "-c", &script],
    );
    assert_eq!(code, Some(7), "{log}");
    let words = std::fs::read_to_string(&out).expect("the command did not run");
    let [me, parent]: [i32; 2] = words
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    assert_eq!(me, parent, "the command is not the restored task's parent");
    assert!(log.contains("Restored task"), "{log}");
    z.restored_elsewhere();
    assert_eq!(z.go(), "PASS");
}

#[test]
fn restore_sibling_makes_the_caller_the_parent() {
    let Some(mut z) = Zdtm::start("opts-sibling", "zdtm_counter", &[]) else {
        return;
    };
    let pid = z.pid();
    let images = z.images().display().to_string();
    let criu = env!("CARGO_BIN_EXE_criu");
    // A shell is the caller: with -S the task is its child; without, it is
    // criu's, and ours (the subreaper) once criu is gone.
    for sibling in [true, false] {
        z.dump(&[]);
        let out = z.work().join(format!("sibling-{sibling}"));
        let s = if sibling { "-S" } else { "" };
        let line = format!(
            "{criu} restore -d {s} -D {images} -o restore.log && {}",
            report_parent(pid, &out)
        );
        let st = Command::new("sh").args(["-c", &line]).status().unwrap();
        let log = std::fs::read_to_string(z.images().join("restore.log")).unwrap_or_default();
        assert!(st.success(), "{log}");
        let text = std::fs::read_to_string(&out).unwrap();
        let w: Vec<i32> = text
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        assert_eq!(
            w[0] == w[1],
            sibling,
            "shell {} parent {} (-S {sibling})",
            w[0],
            w[1]
        );
        z.restored_elsewhere();
    }
    assert_eq!(z.go(), "PASS");
}

#[test]
fn close_closes_the_fd_in_criu() {
    let dir = TempDir::new("opts-close");
    for close in [true, false] {
        let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let n = wr.as_raw_fd().to_string();
        let sock = dir.join(&format!("svc-{close}.sock"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_criu"));
        cmd.args(["service", "--address"]).arg(&sock);
        cmd.args(["-o", "/dev/null"]).stdin(Stdio::null());
        if close {
            cmd.args(["--close", &n]);
        }
        let mut child = service_common::spawn_with_fd(&mut cmd, wr);
        let pid = child.id();
        let up = wait_until(TIMEOUT, || sock.exists());
        // Which pipe criu holds under that number, if any.
        let held = std::fs::read_link(format!("/proc/{pid}/fd/{n}")).ok();
        let ours = std::fs::read_link(format!("/proc/self/fd/{}", rd.as_raw_fd())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(up, "the service did not start");
        match close {
            // The number may be reused by criu for something else.
            true => assert_ne!(held, Some(ours), "--close {n}: criu still holds the pipe"),
            false => assert_eq!(held, Some(ours), "fd {n} not inherited"),
        }
    }
}

/// DUMP over swrk of `pid` into `images` with `extra` options.
fn rpc_dump(images: &Path, pid: i32, extra: CriuOpts) -> criu_core::images::pb::rpc::CriuResp {
    let fd = std::fs::File::open(images).unwrap();
    Client::swrk().call(&CriuReq {
        r#type: CriuReqType::Dump as i32,
        opts: Some(CriuOpts {
            images_dir_fd: fd.as_raw_fd(),
            pid: Some(pid),
            leave_running: Some(true),
            log_level: Some(4),
            ..extra
        }),
        ..Default::default()
    })
}

/// Nothing in a dumpable tree needs locking: inet sockets and other
/// network namespaces are refused by the dump itself. Every method CRIU
/// takes is accepted (with none, CRIU does not lock either) and the dump
/// works; restore warns that the option is ignored, as CRIU does.
#[test]
fn network_lock_values_are_accepted() {
    let Some(mut z) = Zdtm::start("opts-netlock", "zdtm_counter", &[]) else {
        return;
    };
    let pid = z.pid();
    for m in ["iptables", "nftables", "skip", "none"] {
        z.dump(&["--leave-running", "--network-lock", m]);
    }
    for m in [
        CriuNetworkLockMethod::Iptables,
        CriuNetworkLockMethod::Nftables,
        CriuNetworkLockMethod::Skip,
    ] {
        let opts = CriuOpts {
            network_lock: Some(m as i32),
            ..Default::default()
        };
        let resp = rpc_dump(z.images(), pid, opts);
        assert!(resp.success, "{m:?}: {resp:?}");
    }
    let (code, _, out) = criu_out(
        z.images(),
        "bad.log",
        &["dump", "-t", "1", "--network-lock", "bogus"],
    );
    assert_eq!(code, Some(1));
    assert!(
        out.contains("Invalid value for --network-lock: bogus"),
        "{out}"
    );
    z.dump(&["--network-lock=nftables"]);
    z.restore(&["--network-lock", "iptables"]);
    let log = std::fs::read_to_string(z.images().join("restore.log")).unwrap();
    assert!(
        log.contains("--network-lock will be ignored in restore command"),
        "{log}"
    );
    assert_eq!(z.go(), "PASS");
}

#[test]
fn manage_cgroups_ignore_is_accepted() {
    let Some(mut z) = Zdtm::start("opts-cg-ignore", "zdtm_counter", &[]) else {
        return;
    };
    for mode in [CriuCgMode::Ignore, CriuCgMode::Default] {
        let opts = CriuOpts {
            manage_cgroups_mode: Some(mode as i32),
            ..Default::default()
        };
        let resp = rpc_dump(z.images(), z.pid(), opts);
        assert!(resp.success, "{mode:?}: {resp:?}");
    }
    z.dump(&["--manage-cgroups=ignore"]);
    z.restore(&["--manage-cgroups=ignore"]);
    assert_eq!(z.go(), "PASS");
}

/// The image's capabilities with one this CPU lacks added (x86_64: an
/// XSAVE component; ppc64/s390x: a hwcap bit).
fn claim_missing_feature(images: &Path) -> String {
    use criu_core::images::{Kind, pb};
    let path = images.join("cpuinfo.img");
    let mut e: pb::CpuinfoEntry = criu_core::images::read_one(&path, Kind::Cpuinfo).unwrap();
    let msg = if let Some(x) = e.x86_entry.first_mut() {
        x.xfeatures_mask = Some(x.xfeatures_mask.unwrap_or(0) | 1 << 62);
        "cpu: CPU xfeatures has unsupported bits (0x4000000000000000)".to_owned()
    } else {
        let words = match (e.ppc64_entry.first_mut(), e.s390_entry.first_mut()) {
            (Some(p), _) => &mut p.hwcap,
            (_, Some(s)) => &mut s.hwcap,
            _ => panic!("no entry in {e:?}"),
        };
        let bit = (!words[1]).trailing_zeros();
        words[1] |= 1 << bit;
        format!(
            "cpu: CPU Feature 1/{:#x} not supported on host",
            1u64 << bit
        )
    };
    criu_core::images::write_one(&path, Kind::Cpuinfo, &e).unwrap();
    msg
}

#[test]
fn cpu_cap_writes_and_checks_cpuinfo() {
    let Some(mut z) = Zdtm::start("opts-cpu-cap", "zdtm_counter", &[]) else {
        return;
    };
    let pid = z.pid();
    let img = z.images().join("cpuinfo.img");
    // The default (fpu,ins, no image bit) writes nothing, as CRIU.
    z.dump(&["--leave-running"]);
    assert!(!img.exists());
    z.dump(&["--cpu-cap"]);
    if !criu_core::regs::cpuinfo::COMMANDS {
        // aarch64: CRIU records nothing there either.
        assert!(!img.exists());
        z.restore(&["--cpu-cap"]);
        assert_eq!(z.go(), "PASS");
        return;
    }
    assert!(img.exists());
    let (code, log) = criu(z.images(), "check.log", &["cpuinfo", "check"]);
    assert_eq!(code, Some(0), "{log}");
    z.restore(&["--cpu-cap"]);

    // An image claiming what this CPU lacks is refused before any task
    // exists; without the image bit nothing is checked.
    z.dump(&["--cpu-cap=fpu"]);
    let want = claim_missing_feature(z.images());
    let (code, log) = criu(z.images(), "refused.log", &["restore", "-d", "--cpu-cap"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&want), "{want:?} not in {log}");
    assert!(!alive(pid), "a task was created: {log}");
    let (code, log) = criu(z.images(), "check2.log", &["cpuinfo", "check"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&want), "{log}");
    z.restore(&[]);
    assert_eq!(z.go(), "PASS");
}

/// The restored tasks run no code of ours, so the one criu process is the
/// only one logging: its log is whole in FILE, as CRIU's main process's.
#[test]
fn log_pid_keeps_the_whole_log_in_one_file() {
    let Some(mut z) = Zdtm::start("opts-log-pid", "zdtm_counter", &[]) else {
        return;
    };
    z.dump(&["--log-pid"]);
    z.restore(&["--log-pid"]);
    let log = std::fs::read_to_string(z.images().join("restore.log")).unwrap();
    assert!(log.contains("Restored task"), "{log}");
    let others: Vec<_> = std::fs::read_dir(z.images())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("restore.log."))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(z.go(), "PASS");
}

#[test]
fn deprecated_is_logged() {
    let dir = TempDir::new("opts-deprecated");
    let (_, log) = criu(dir.path(), "a.log", &["check", "--deprecated"]);
    assert!(log.contains("Turn deprecated stuff ON\n"), "{log}");
    let (_, log) = criu(dir.path(), "b.log", &["check"]);
    assert!(!log.contains("deprecated"), "{log}");
    let out = Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(["check", "-v4", "-o", "c.log", "-D"])
        .arg(dir.path())
        .env("CRIU_DEPRECATED", "1")
        .output()
        .unwrap();
    let log = std::fs::read_to_string(dir.join("c.log")).unwrap();
    assert!(
        log.contains("Turn deprecated stuff ON via env"),
        "{log} {out:?}"
    );
}

#[test]
fn check_experimental_runs_the_experimental_probes() {
    if let Some(why) = common::cannot_checkpoint() {
        return common::skip("check_experimental_runs_the_experimental_probes", why);
    }
    let dir = TempDir::new("opts-experimental");
    let (_, with) = criu(dir.path(), "with.log", &["check", "--experimental"]);
    let (_, without) = criu(dir.path(), "without.log", &["check"]);
    assert!(with.contains("Checking compat_cr"), "{with}");
    assert!(!without.contains("Checking compat_cr"), "{without}");
}

#[test]
fn no_default_config_skips_the_default_files() {
    let home = TempDir::new("opts-no-default-config");
    std::fs::create_dir_all(home.join(".criu")).unwrap();
    std::fs::write(home.join(".criu/default.conf"), "no-such-option\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_criu"))
            .args(args)
            .env("HOME", home.path())
            .env_remove("CRIU_CONFIG_FILE")
            .output()
            .unwrap()
    };
    let o = run(&["--feature", "list"]);
    assert_eq!(o.status.code(), Some(1), "the default file was not read");
    let o = run(&["--no-default-config", "--feature", "list"]);
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("mnt_id"));
}

/// Dumps `z` over RPC (killing it) and returns the images dir fd.
fn rpc_dump_and_kill(z: &mut Zdtm) -> std::fs::File {
    let fd = std::fs::File::open(z.images()).unwrap();
    let resp = Client::swrk().call(&CriuReq {
        r#type: CriuReqType::Dump as i32,
        opts: Some(CriuOpts {
            images_dir_fd: fd.as_raw_fd(),
            pid: Some(z.pid()),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert!(resp.success, "{resp:?}");
    z.wait_gone();
    fd
}

fn rpc_restore(c: &mut Client, images: &std::fs::File, extra: CriuOpts) -> i32 {
    let resp = c.call(&CriuReq {
        r#type: CriuReqType::Restore as i32,
        opts: Some(CriuOpts {
            images_dir_fd: images.as_raw_fd(),
            log_level: Some(4),
            log_file: Some("restore.log".into()),
            ..extra
        }),
        ..Default::default()
    });
    assert!(resp.success, "{resp:?}");
    resp.restore.expect("restore response").pid
}

#[test]
fn rpc_exec_cmd_replaces_the_worker() {
    let Some(mut z) = Zdtm::start("opts-rpc-exec", "zdtm_counter", &[]) else {
        return;
    };
    let images = rpc_dump_and_kill(&mut z);
    let out = z.work().join("exec.out");
    let mut c = Client::swrk();
    let worker = c.worker_pid().unwrap();
    let opts = CriuOpts {
        exec_cmd: vec!["sh".into(), "-c".into(), report_parent(z.pid(), &out)],
        ..Default::default()
    };
    let pid = rpc_restore(&mut c, &images, opts);
    assert_eq!(pid, z.pid());
    assert_eq!(c.finish(), Some(0));
    z.restored_elsewhere();
    let text = std::fs::read_to_string(&out).expect("the command did not run");
    let w: Vec<i32> = text
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    // The worker became the command, the parent of the restored task.
    assert_eq!(w, [worker, worker]);
    assert_eq!(z.go(), "PASS");
}

#[test]
fn rpc_rst_sibling_makes_the_client_the_parent() {
    let Some(mut z) = Zdtm::start("opts-rpc-sibling", "zdtm_counter", &[]) else {
        return;
    };
    let images = rpc_dump_and_kill(&mut z);
    let mut c = Client::swrk();
    let worker = c.worker_pid().unwrap();
    let opts = CriuOpts {
        rst_sibling: Some(true),
        ..Default::default()
    };
    let pid = rpc_restore(&mut c, &images, opts);
    // While the worker still runs: the task is ours, not the worker's.
    assert_eq!(ppid(pid), Some(std::process::id() as i32));
    assert_ne!(ppid(pid), Some(worker));
    c.finish();
    z.restored_elsewhere();
    assert_eq!(z.go(), "PASS");
}

/// `status_fd` is obsolete: CRIU ignores it (with a warning), so do we.
#[test]
fn rpc_obsolete_fields_are_ignored() {
    let Some(z) = Zdtm::start("opts-rpc-obsolete", "zdtm_counter", &[]) else {
        return;
    };
    let opts = CriuOpts {
        status_fd: Some(5),
        ..Default::default()
    };
    let resp = rpc_dump(z.images(), z.pid(), opts);
    assert!(resp.success, "{resp:?}");
    assert!(z.images().join(format!("core-{}.img", z.pid())).exists());
    assert_eq!(z.go(), "PASS");
}

#[test]
fn rpc_log_to_stderr_writes_no_log_file() {
    let Some(z) = Zdtm::start("opts-rpc-stderr", "zdtm_counter", &[]) else {
        return;
    };
    let opts = CriuOpts {
        log_to_stderr: Some(true),
        ..Default::default()
    };
    let resp = rpc_dump(z.images(), z.pid(), opts);
    assert!(resp.success, "{resp:?}");
    assert!(z.images().join(format!("core-{}.img", z.pid())).exists());
    assert!(!z.images().join("criu.log").exists());
    assert_eq!(z.go(), "PASS");
}
