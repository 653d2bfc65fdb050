//! The CRIU peer of the crossover tests: Debian 13's criu 4.1.1 and its
//! crit, set up by `tests/peer/criu-4.1.1` (which `tests/run` calls) in
//! `~/.cache/criu-rs-peer/criu-4.1.1-<arch>`, or where `CRIU_PEER_DIR`
//! says.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How long one run of the peer's criu may take (TCG-emulated VMs
/// included) before it counts as hung.
pub const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

pub struct Peer {
    pub dir: PathBuf,
}

fn deb_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        other => other,
    }
}

impl Peer {
    /// The peer for test `test`, or `None` after saying why it is skipped.
    /// On x86_64 (as root, where this tool dumps and restores) a missing
    /// peer fails the test: `tests/run` sets it up there, and a crossover
    /// that passes by not running proves nothing. Elsewhere (the VMs,
    /// which get the peer only with `CRIU_VM_PEER=1`) it skips, naming why.
    #[allow(dead_code)]
    pub fn for_test(test: &str) -> Option<Peer> {
        if let Some(why) = super::cannot_checkpoint() {
            super::skip(test, why);
            return None;
        }
        match Peer::find() {
            Ok(p) => Some(p),
            Err(why) if cfg!(target_arch = "x86_64") => panic!("{test}: {why}"),
            Err(why) => {
                super::skip(test, &why);
                None
            }
        }
    }

    /// The set-up peer, or why there is none.
    pub fn find() -> Result<Peer, String> {
        let dir = match std::env::var_os("CRIU_PEER_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                let cache = std::env::var_os("CRIU_PEER_CACHE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| Path::new(&home).join(".cache/criu-rs-peer"));
                cache.join(format!("criu-4.1.1-{}", deb_arch()))
            }
        };
        if !dir.join("ready").exists() {
            return Err(format!(
                "the CRIU 4.1.1 peer is not set up in {} (tests/peer/criu-4.1.1 does it; \
                 tests/run calls it)",
                dir.display()
            ));
        }
        Ok(Peer { dir })
    }

    /// Run the peer's `criu ARGS -D images -v4 -o ACTION.log`: success and
    /// the log. A run that outlasts [`PEER_TIMEOUT`] is killed and fails,
    /// its log ending with that fact (a hung peer would otherwise hang the
    /// test with nothing to show).
    pub fn criu(&self, images: &Path, args: &[&str]) -> (bool, String) {
        self.criu_env(images, args, &[])
    }

    /// [`Peer::criu`] with `env` added to its environment.
    pub fn criu_env(
        &self,
        images: &Path,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> (bool, String) {
        let action = args[0];
        let mut child = Command::new(self.dir.join("criu"))
            .envs(env.iter().copied())
            .args(args)
            .arg("-D")
            .arg(images)
            .args(["-v4", "-o", &format!("peer-{action}.log")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the peer's criu");
        let log_path = images.join(format!("peer-{action}.log"));
        let mut status = None;
        // A restorer that hits one of CRIU's BUG()s never ends (it waits
        // for the task that faulted): once the log shows one and CRIU has
        // not ended a second later, it is killed then, not after the
        // whole PEER_TIMEOUT.
        let mut bug_seen: Option<std::time::Instant> = None;
        let mut polls = 0u32;
        let done = super::wait_until(PEER_TIMEOUT, || {
            status = child.try_wait().expect("wait for the peer's criu");
            polls += 1;
            if status.is_none() && bug_seen.is_none() && polls.is_multiple_of(40) {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if log.contains("BUG at ") {
                    bug_seen = Some(std::time::Instant::now());
                }
            }
            status.is_some()
                || bug_seen.is_some_and(|t| t.elapsed() > std::time::Duration::from_secs(1))
        });
        let mut log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            let why = if done {
                "hit a BUG and was killed".to_string()
            } else {
                format!("was killed after {PEER_TIMEOUT:?}")
            };
            log.push_str(&format!("\n[the peer's criu {action} {why}]\n"));
        }
        (status.is_some_and(|s| s.success()), log)
    }

    /// The peer's crit with `args`: its output (or why it failed).
    pub fn crit(&self, args: &[&str]) -> Result<String, String> {
        run_crit(&self.dir.join("crit"), args)
    }

    /// Why the peer's crit cannot run here, if it cannot: it needs a
    /// python3 (the VMs have none).
    pub fn cannot_run_crit(&self) -> Option<&'static str> {
        let ok = Command::new(self.dir.join("python"))
            .args(["-c", "import pycriu"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!ok).then_some("no python3 here for CRIU's crit (pycriu)")
    }

    /// What the peer's `crit decode -i IMG` prints for each image, as JSON
    /// (or why it failed), decoded in one python process (pycriu's
    /// `images.load`, which crit's decode prints): a python start and the
    /// pure-python protobuf per image would take a second each.
    pub fn decode_all(&self, images: &[PathBuf]) -> Vec<Result<serde_json::Value, String>> {
        const SCRIPT: &str = "import json, sys\n\
            from pycriu import images\n\
            for p in sys.argv[1:]:\n\
            \x20   try:\n\
            \x20       with open(p, 'rb') as f:\n\
            \x20           print(json.dumps({'ok': images.load(f)}))\n\
            \x20   except Exception as e:\n\
            \x20       print(json.dumps({'err': repr(e)}))\n";
        let out = Command::new(self.dir.join("python"))
            .arg("-c")
            .arg(SCRIPT)
            .args(images)
            .stdin(Stdio::null())
            .output()
            .expect("run the peer's python");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        images
            .iter()
            .map(|_| {
                let Some(line) = lines.next() else {
                    return Err(format!(
                        "CRIU's crit printed nothing: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                };
                let mut v: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
                match v.get_mut("ok") {
                    Some(ok) => Ok(ok.take()),
                    None => Err(v["err"].to_string()),
                }
            })
            .collect()
    }
}

/// Our crit with `args`: its output (or why it failed).
pub fn our_crit(args: &[&str]) -> Result<String, String> {
    run_crit(Path::new(env!("CARGO_BIN_EXE_crit")), args)
}

fn run_crit(crit: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(crit)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", crit.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {args:?}: {}{}",
            crit.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Images of `dir` that crit decodes (raw page data and archives are not
/// protobuf images).
pub fn protobuf_images(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".img") && !n.starts_with("pages-") && !n.contains(".tar")
        })
        .collect();
    out.sort();
    out
}

/// The names CRIU 4.1's crit gives fields that 4.2 renamed (its .proto
/// files are older than ours): `pagemap_entry` field 2 is `nr_pages` there,
/// `compat_nr_pages` here.
pub fn normalize(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(n) = m.remove("compat_nr_pages") {
                m.insert("nr_pages".into(), n);
            }
            for x in m.values_mut() {
                normalize(x);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Both crits decode every protobuf image of `dir`, to the same JSON
/// (after [`normalize`]). Failures, one line each.
pub fn compare_crits(peer: &Peer, dir: &Path) -> Vec<String> {
    compare_crits_of(peer, &protobuf_images(dir))
}

/// Both crits decode each of `imgs` (protobuf images, wherever they are:
/// a checkpoint archive keeps `stats-dump` beside the images' directory)
/// to the same JSON (after [`normalize`]). Failures, one line each.
pub fn compare_crits_of(peer: &Peer, imgs: &[PathBuf]) -> Vec<String> {
    let mut bad = Vec::new();
    if let Some(why) = peer.cannot_run_crit() {
        super::skip("CRIU's crit on the images", why);
        for img in imgs {
            if let Err(e) = our_crit(&["decode", "-i", img.to_str().unwrap()]) {
                bad.push(format!("our crit: {e}"));
            }
        }
        return bad;
    }
    let all_theirs = peer.decode_all(imgs);
    for (img, theirs) in imgs.iter().zip(all_theirs) {
        let p = img.to_str().unwrap();
        let name = img.file_name().unwrap().to_string_lossy().into_owned();
        let ours = our_crit(&["decode", "-i", p]);
        match (theirs, ours) {
            (Ok(mut t), Ok(o)) => {
                let mut o: serde_json::Value = serde_json::from_str(&o).unwrap();
                normalize(&mut t);
                normalize(&mut o);
                if t != o {
                    bad.push(format!(
                        "{name}: the crits differ:\n  CRIU's: {t}\n  ours:   {o}"
                    ));
                }
            }
            (Err(e), _) => bad.push(format!("{name}: CRIU's crit: {e}")),
            (_, Err(e)) => bad.push(format!("{name}: our crit: {e}")),
        }
    }
    bad
}

#[allow(dead_code)]
/// Where the kernel refuses `SO_PASSCRED` of an inet socket (Linux 6.16
/// and later: `EOPNOTSUPP`), CRIU 4.1.1 cannot dump any inet socket (it
/// reads that option and `SO_PASSSEC` of every socket; CRIU 4.2 reads them
/// for unix and netlink sockets only). Its dumps of the inet programs then
/// run with `tests/peer/passcred-shim.c` preloaded, which answers those
/// two reads as older kernels did (off): the shared object, built once
/// with the system's C compiler. `None` where no shim is needed.
pub fn passcred_shim() -> Option<std::path::PathBuf> {
    static SHIM: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    SHIM.get_or_init(|| {
        let sk = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::STREAM,
            None,
        )
        .unwrap();
        let refused =
            rustix::net::sockopt::socket_passcred(&sk) == Err(rustix::io::Errno::OPNOTSUPP);
        if !refused {
            return None;
        }
        let src =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/passcred-shim.c");
        let out =
            std::env::temp_dir().join(format!("criu-rs-passcred-shim-{}.so", std::process::id()));
        let cc = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .arg("-ldl")
            .output()
            .expect("run cc for the SO_PASSCRED shim of the CRIU peer");
        assert!(
            cc.status.success(),
            "building the SO_PASSCRED shim: {}",
            String::from_utf8_lossy(&cc.stderr)
        );
        Some(out)
    })
    .clone()
}
