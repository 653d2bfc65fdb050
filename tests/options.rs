//! The option rule, for every option: walks `opts::support::CLI` and
//! `opts::support::RPC` and shows each entry in one of two groups. A
//! working entry names a test that exists; a refused one really refuses,
//! on every command it applies to, with its message and exit code 1 (an
//! error response over RPC), and touches nothing: the task named by `-t`
//! is neither stopped nor traced, and the images directory stays empty (not
//! even a log file). That every option and field has an entry is checked
//! by the unit tests next to the tables (`given.rs`, `service/requested.rs`).

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use criu_core::images::pb::rpc::{CriuOpts, CriuReq, CriuReqType};
use criu_core::opts::support::{CLI, Entry, On, RPC, Support};
use prost::Message;
use service_common::Client;

/// Entries another engineer implements in a branch not merged yet: allowed
/// to name no test until the lead merges it (see the TODO in the table).
/// Empty now: `--timeout` (the last one) was made real by the refuse branch.
const PENDING_ALLOWED: &[&str] = &[];

/// `FILE::FUNCTION` names a `#[test]` function of this repository.
fn test_exists(spec: &str) -> Result<(), String> {
    let (file, func) = spec
        .split_once("::")
        .ok_or_else(|| format!("{spec}: not FILE::FUNCTION"))?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("{spec}: {}: {e}", path.display()))?;
    let at = text
        .find(&format!("fn {func}()"))
        .ok_or_else(|| format!("{spec}: no fn {func}() in {file}"))?;
    let before = &text[..at];
    let attr = before.rfind("#[test]").map(|i| before[i..].lines().count());
    match attr {
        Some(lines) if lines <= 3 => Ok(()),
        _ => Err(format!("{spec}: fn {func} is not a #[test]")),
    }
}

/// Checks what every table entry can show without running anything:
/// working entries name existing tests, pending ones are the known few.
fn static_walk(table: &[Entry], which: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for e in table {
        match e.support {
            Support::Works { test } => {
                if let Err(why) = test_exists(test) {
                    bad.push(format!("{which} {}: {why}", e.key));
                }
            }
            Support::Pending { by } => {
                if !PENDING_ALLOWED.contains(&e.key) {
                    bad.push(format!("{which} {}: pending ({by}) is not allowed", e.key));
                } else {
                    common::skip(
                        &format!("options {which} {}", e.key),
                        &format!("implemented by engineer {by:?}, not merged yet"),
                    );
                }
            }
            Support::NotYet { .. } | Support::Refused { .. } => {}
        }
    }
    bad
}

/// The VMs carry the test binaries, not the sources these walks read
/// (test files, rpc.proto); they run natively and under qemu-user.
fn sources_missing(test: &str) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if root.join("core/proto/rpc.proto").is_file() {
        return false;
    }
    common::skip(
        test,
        "the sources are not here (a VM): the walk runs natively",
    );
    true
}

#[test]
fn working_entries_name_existing_tests() {
    if sources_missing("working_entries_name_existing_tests") {
        return;
    }
    let mut bad = static_walk(CLI, "CLI");
    bad.extend(static_walk(RPC, "RPC"));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// A process that must stay untouched by refused commands.
struct Bystander {
    child: std::process::Child,
}

impl Bystander {
    fn start() -> Bystander {
        let child = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let b = Bystander { child };
        // Let it reach its sleep.
        assert!(common::wait_until(Duration::from_secs(10), || {
            common::proc_state(b.pid()) == Some('S')
        }));
        b
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Why it is not as it was, if it is not: stopped, traced or gone.
    fn disturbed(&self) -> Option<String> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let state = field("State:");
        let tracer = field("TracerPid:");
        (!state.starts_with('S') || tracer != "0")
            .then(|| format!("state {state:?}, tracer {tracer}"))
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What is in `dir`, if anything.
fn contents(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The command words for `cmd` (dump-like commands name the bystander).
fn command_words(cmd: On, pid: i32, dir: &Path) -> Vec<String> {
    let mut w: Vec<String> = match cmd.name() {
        "cpuinfo" => vec!["cpuinfo".into(), "dump".into()],
        name => vec![name.into()],
    };
    if cmd == On::DUMP || cmd == On::PRE_DUMP {
        w.extend(["-t".into(), pid.to_string()]);
    }
    if cmd == On::SERVICE {
        w.extend([
            "--address".into(),
            dir.join("svc.sock").display().to_string(),
        ]);
    }
    w
}

/// Runs criu with `args` in `cwd`, killed after `limit` (a command that
/// should have been refused might otherwise run on: a service).
fn run_bounded(args: &[String], cwd: &Path, limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_criu"))
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run criu");
    let end = Instant::now() + limit;
    let code = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st.code();
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = child.wait_with_output().expect("criu output");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (code, text)
}

/// The message a refused entry must print on `cmd`.
fn expected_message(e: &Entry, cmd: On, rpc: bool) -> String {
    match e.support {
        Support::NotYet { example } => {
            let shown = match (rpc, e.value()) {
                (false, Some(_)) => example.to_owned(),
                (false, None) => format!("--{}", e.name()),
                (true, _) => e.key.to_owned(),
            };
            format!("{shown} is not supported yet")
        }
        Support::Refused { message, .. } => message.replace("{cmd}", cmd.name()),
        _ => unreachable!(),
    }
}

#[test]
fn refused_cli_options_refuse_and_touch_nothing() {
    let tmp = TempDir::new("options-cli-walk");
    let bystander = Bystander::start();
    let mut bad = Vec::new();
    let mut tried = 0;
    for e in CLI {
        let example = match e.support {
            Support::NotYet { example } | Support::Refused { example, .. } => example,
            _ => continue,
        };
        for (cmd, name) in e.on.commands() {
            let dir = tmp.join(&format!("{}-{name}", e.key.replace(['=', '/'], "_")));
            std::fs::create_dir_all(&dir).unwrap();
            let mut args = command_words(cmd, bystander.pid(), &dir);
            args.extend(["-D".into(), dir.display().to_string()]);
            args.extend(["-o".into(), "criu.log".into(), example.into()]);
            if example == "--exec-cmd" {
                args.extend(["--".into(), "true".into()]);
            }
            let (code, out) = run_bounded(&args, &dir, Duration::from_secs(20));
            tried += 1;
            let want = expected_message(e, cmd, false);
            let what = format!("criu {}", args.join(" "));
            if code != Some(1) {
                bad.push(format!("{what}: exit {code:?}, not 1: {out}"));
            }
            if !out.contains(&want) {
                bad.push(format!("{what}: no {want:?} in {out:?}"));
            }
            if let Some(why) = bystander.disturbed() {
                bad.push(format!("{what}: the task was touched: {why}"));
            }
            let left = contents(&dir);
            if !left.is_empty() {
                bad.push(format!("{what}: left {left:?} in the images dir"));
            }
        }
    }
    assert!(tried > 100, "only {tried} refusals tried");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// `(number, type)` of each field of `criu_opts` in `rpc.proto`.
fn proto_fields() -> Vec<(String, u32, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("core/proto/rpc.proto");
    let text = std::fs::read_to_string(path).unwrap();
    let body = text.split("message criu_opts {").nth(1).unwrap();
    let body = body.split("\n}").next().unwrap();
    body.lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
        .filter(|l| {
            ["optional", "required", "repeated"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let num = l.split('=').nth(1).unwrap().trim();
            let num: u32 = num
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (w[2].to_owned(), num, w[1].to_owned())
        })
        .collect()
}

/// `base` with the field of `e` set to the value the entry is about (or
/// any value asking for something), encoded as a client would.
fn opts_with(base: &CriuOpts, e: &Entry, fields: &[(String, u32, String)]) -> CriuOpts {
    use criu_core::images::pb::rpc::CriuCgMode;
    let (_, number, ty) = fields
        .iter()
        .find(|(n, _, _)| n == e.name())
        .unwrap_or_else(|| panic!("{} is not in rpc.proto", e.key));
    let mut bytes = base.encode_to_vec();
    let value: u64 = match (e.name(), e.value()) {
        ("manage_cgroups_mode", Some(v)) => CriuCgMode::from_str_name(v)
            .or_else(|| CriuCgMode::from_str_name(&format!("CG_{v}")))
            .unwrap_or_else(|| panic!("mode {v}"))
            as u64,
        _ => 3,
    };
    let scalar = matches!(
        ty.as_str(),
        "bool"
            | "int32"
            | "uint32"
            | "criu_cg_mode"
            | "criu_pre_dump_mode"
            | "criu_network_lock_method"
    );
    prost::encoding::encode_varint(
        u64::from(number << 3 | if scalar { 0 } else { 2 }),
        &mut bytes,
    );
    match ty.as_str() {
        _ if scalar => prost::encoding::encode_varint(value, &mut bytes),
        // A configuration file asks for something only if it exists.
        "string" if e.name() == "config_file" => bytes.extend_from_slice(&[1, b'/']),
        "string" => bytes.extend_from_slice(&[1, b'x']),
        _ => bytes.push(0),
    }
    // The last occurrence of a field wins on decoding.
    CriuOpts::decode(&bytes[..]).unwrap()
}

fn req_type(cmd: On) -> Option<CriuReqType> {
    Some(match cmd.name() {
        "dump" => CriuReqType::Dump,
        "restore" => CriuReqType::Restore,
        "check" => CriuReqType::Check,
        // Where the request itself is refused (CPUINFO_DUMP off x86_64,
        // as in CRIU) its fields are never looked at.
        "cpuinfo" if criu_core::regs::cpuinfo::COMMANDS => CriuReqType::CpuinfoDump,
        // Request types that are refused as a whole (PRE_DUMP, ...).
        _ => return None,
    })
}

#[test]
fn refused_rpc_fields_fail_the_request_and_touch_nothing_but_the_log() {
    if sources_missing("refused_rpc_fields_fail_the_request_and_touch_nothing_but_the_log") {
        return;
    }
    let tmp = TempDir::new("options-rpc-walk");
    let bystander = Bystander::start();
    let fields = proto_fields();
    let mut bad = Vec::new();
    let mut tried = 0;
    for e in RPC {
        if !matches!(e.support, Support::NotYet { .. } | Support::Refused { .. }) {
            continue;
        }
        for (cmd, name) in e.on.commands() {
            let Some(ty) = req_type(cmd) else { continue };
            let dir = tmp.join(&format!("{}-{name}", e.key.replace('=', "_")));
            std::fs::create_dir_all(&dir).unwrap();
            let dir_fd = std::fs::File::open(&dir).unwrap();
            let base = CriuOpts {
                images_dir_fd: std::os::fd::AsRawFd::as_raw_fd(&dir_fd),
                pid: Some(bystander.pid()),
                ..Default::default()
            };
            let opts = opts_with(&base, e, &fields);
            let resp = Client::swrk().call(&CriuReq {
                r#type: ty as i32,
                opts: Some(opts),
                ..Default::default()
            });
            tried += 1;
            let want = expected_message(e, cmd, true);
            let what = format!("{ty:?} with {}", e.key);
            if resp.success {
                bad.push(format!("{what}: succeeded"));
            }
            if resp.cr_errmsg.as_deref().is_none_or(|m| !m.contains(&want)) {
                bad.push(format!(
                    "{what}: cr_errmsg {:?}, want {want:?}",
                    resp.cr_errmsg
                ));
            }
            if let Some(why) = bystander.disturbed() {
                bad.push(format!("{what}: the task was touched: {why}"));
            }
            // Only the request's log (CRIU's default name), which says why:
            // what a runtime shows its user of a failed criu.
            let left = contents(&dir);
            if left == ["criu.log"] {
                let log = std::fs::read_to_string(dir.join("criu.log")).unwrap_or_default();
                if !log.contains(&want) {
                    bad.push(format!("{what}: its log does not say {want:?}: {log}"));
                }
            } else if !left.is_empty() {
                bad.push(format!("{what}: left {left:?} in the images dir"));
            }
        }
    }
    // A floor against a walk that tries nothing (it shrinks as fields
    // become supported: 39 left at the LXC and pre-dump fields).
    assert!(tried >= 30, "only {tried} refusals tried");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
