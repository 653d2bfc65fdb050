//! The service acts with its client's rights (issue 22): `criu service`
//! runs as root with its socket given to uid 1000, and a client process
//! running as uid 1000 speaks RPC to it. The user dumps and restores its
//! own process; a dump of a root process is refused and that process runs
//! on; images whose credentials say uid 0 are refused before any fork; an
//! images dir the user can't write is refused, and so is a path. The same
//! through `criu swrk` started by an unprivileged parent (a set-uid root
//! copy of criu, the way a runtime could hand out a privileged worker).
//!
//! The client is this test binary again, copied where uid 1000 can run it
//! and started as uid 1000 with `Command::uid`/`gid` (std sets the groups
//! to none, then the gid, then the uid, in the child before exec): it runs
//! only the `client_role` test, which reads its request from the
//! environment, opens the images dir itself, sends the request (see
//! `service_common`) and prints the response. A fork that changes
//! credentials in place would run Rust code in a copy of a multi-threaded
//! test process; an exec is clean.
#![cfg(target_arch = "x86_64")]

mod common;
#[path = "service_common/mod.rs"]
mod service_common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, become_subreaper, skip, wait_for_file};
use criu_core::images::Kind;
use criu_core::images::pb::CoreEntry;
use criu_core::images::pb::rpc::{CriuOpts, CriuReq, CriuReqType, CriuResp};
use criu_core::images::typed::ImageDir;
use prost::Message;
use service_common::{Client, kill_and_reap, spawn_locked, spawn_with_fd};

const UID: u32 = 1000;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Environment of the client role.
const ROLE_ENV: &str = "CRIU_RIGHTS_CLIENT";

fn perm(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
}

/// Copies `from` to `to` with `mode` while no process of this test binary
/// forks (a child between fork and exec would hold the copy open for
/// writing, and running it would fail with ETXTBSY).
fn install(from: &Path, to: &Path, mode: u32) {
    spawn_locked(|| {
        std::fs::copy(from, to).unwrap();
        perm(to, mode);
    });
}

/// The test's world: a directory tree uid 1000 can use, the counter
/// program and the client, and `criu service` running as root.
struct World {
    dir: TempDir,
    program: PathBuf,
    client: PathBuf,
    sock: PathBuf,
    service: Option<Child>,
}

impl World {
    fn new(test: &str, with_service: bool) -> Option<World> {
        if !service_common::is_root() {
            skip(test, "needs root to run the service and to become uid 1000");
            return None;
        }
        if let Some(why) = common::cannot_checkpoint() {
            skip(test, why);
            return None;
        }
        become_subreaper();
        let dir = TempDir::new(test);
        perm(dir.path(), 0o755);
        let program = dir.join("zdtm_counter");
        install(&common::program_path("zdtm_counter"), &program, 0o755);
        let client = dir.join("client");
        install(&std::env::current_exe().unwrap(), &client, 0o755);
        for sub in ["work", "images"] {
            let p = dir.join(sub);
            std::fs::create_dir(&p).unwrap();
            chown(&p, UID);
            perm(&p, 0o700);
        }
        let sock = dir.join("svc.sock");
        let mut w = World {
            dir,
            program,
            client,
            sock,
            service: None,
        };
        if with_service {
            w.start_service();
        }
        Some(w)
    }

    /// `criu service` as root; its socket (mode 0600) is then given to
    /// uid 1000, as an administrator would.
    fn start_service(&mut self) {
        // The socket appears at bind() and gets its mode just before
        // listen(): wait for `--status-fd`'s byte, written once it listens,
        // not for the file, or the mode is checked in between.
        let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_criu"));
        cmd.arg("service")
            .arg("--address")
            .arg(&self.sock)
            .arg("--status-fd")
            .arg(wr.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        self.service = Some(spawn_with_fd(&mut cmd, wr));
        let mut fds = [rustix::event::PollFd::new(
            &rd,
            rustix::event::PollFlags::IN,
        )];
        let limit = rustix::time::Timespec {
            tv_sec: TIMEOUT.as_secs() as i64,
            tv_nsec: 0,
        };
        let ready = rustix::event::poll(&mut fds, Some(&limit)).expect("poll");
        assert!(ready > 0, "the service never said it was ready");
        let mut byte = [1u8];
        let n = rustix::io::read(&rd, &mut byte).expect("read --status-fd");
        assert_eq!((n, byte), (1, [0]), "the service failed to start");
        let mode = std::fs::metadata(&self.sock).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the service socket is not 0600");
        chown(&self.sock, UID);
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    /// Starts the counter in `work` (made for it, owned by its user), as
    /// uid 1000 or as root; its pid once ready.
    fn start_counter(&self, work: &Path, as_root: bool) -> Child {
        if !work.exists() {
            std::fs::create_dir(work).unwrap();
        }
        let mut cmd = Command::new(&self.program);
        cmd.arg(work)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !as_root {
            chown(work, UID);
            cmd.uid(UID).gid(UID);
        }
        let child = spawn_locked(|| cmd.spawn().expect("spawn the counter"));
        let ready = wait_for_file(&work.join("ready"), TIMEOUT).expect("counter not ready");
        assert_eq!(ready.trim(), child.id().to_string());
        child
    }

    /// Runs one request as uid 1000 through the service (or, with `swrk`,
    /// through that criu binary started by the uid 1000 client): the
    /// response.
    fn ask(&self, via: Via<'_>, req: &Request<'_>) -> CriuResp {
        let mut cmd = Command::new(&self.client);
        cmd.args(["--exact", "client_role", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, "1")
            .env("RIGHTS_TYPE", req.ty.as_str_name())
            .env("RIGHTS_IMAGES", req.images)
            .env("RIGHTS_LOG", req.log)
            .stdin(Stdio::null())
            .uid(UID)
            .gid(UID);
        match via {
            Via::Service => cmd.env("RIGHTS_SOCK", &self.sock),
            Via::Swrk(criu) => cmd.env("RIGHTS_SWRK", criu),
        };
        if let Some(pid) = req.pid {
            cmd.env("RIGHTS_PID", pid.to_string());
        }
        if req.by_path {
            cmd.env("RIGHTS_BY_PATH", "1");
        }
        if let Some(exec) = req.exec {
            cmd.env("RIGHTS_EXEC", exec);
        }
        let out = spawn_locked(|| cmd.output()).expect("run the client");
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(hex) = text.lines().find_map(|l| l.split("RESP:").nth(1)) else {
            panic!(
                "the client gave no response:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        CriuResp::decode(&unhex(hex)[..]).expect("decode the response")
    }

    fn go(&self, work: &Path) -> String {
        std::fs::write(work.join("go"), "").unwrap();
        wait_for_file(&work.join("result"), TIMEOUT)
            .unwrap_or_default()
            .trim()
            .to_owned()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(s) = &mut self.service {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

#[derive(Clone, Copy)]
enum Via<'a> {
    Service,
    Swrk(&'a Path),
}

struct Request<'a> {
    ty: CriuReqType,
    images: &'a Path,
    pid: Option<i32>,
    log: &'a str,
    /// Name the images dir by path (`images_dir`) instead of an fd.
    by_path: bool,
    /// `exec_cmd`: `sh -c` this.
    exec: Option<&'a str>,
}

impl<'a> Request<'a> {
    fn new(ty: CriuReqType, images: &'a Path, pid: Option<i32>) -> Request<'a> {
        let log = match ty {
            CriuReqType::Restore => "restore.log",
            _ => "dump.log",
        };
        Request {
            ty,
            images,
            pid,
            log,
            by_path: false,
            exec: None,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The client: runs only when started by [`World::ask`] (as uid 1000).
#[test]
fn client_role() {
    if std::env::var_os(ROLE_ENV).is_none() {
        return;
    }
    let var = |k: &str| std::env::var(k).ok();
    let ty = CriuReqType::from_str_name(&var("RIGHTS_TYPE").unwrap()).unwrap();
    let images = var("RIGHTS_IMAGES").unwrap();
    // The client opens its images dir itself, with its own rights.
    let dir = std::fs::File::open(&images).expect("the client opens its images dir");
    let by_path = var("RIGHTS_BY_PATH").is_some();
    let opts = CriuOpts {
        images_dir_fd: if by_path { -1 } else { dir.as_raw_fd() },
        images_dir: by_path.then(|| images.clone()),
        pid: var("RIGHTS_PID").map(|p| p.parse().unwrap()),
        log_file: var("RIGHTS_LOG"),
        log_level: Some(4),
        exec_cmd: var("RIGHTS_EXEC")
            .map(|c| vec!["/bin/sh".into(), "-c".into(), c])
            .unwrap_or_default(),
        ..Default::default()
    };
    let req = CriuReq {
        r#type: ty as i32,
        opts: Some(opts),
        ..Default::default()
    };
    let mut c = match (var("RIGHTS_SOCK"), var("RIGHTS_SWRK")) {
        (Some(sock), _) => Client::connect(Path::new(&sock)).expect("connect as uid 1000"),
        (None, Some(criu)) => Client::swrk_at(Path::new(&criu)),
        _ => panic!("neither RIGHTS_SOCK nor RIGHTS_SWRK"),
    };
    let resp = c.call(&req);
    println!("RESP:{}", hex(&resp.encode_to_vec()));
    c.finish();
}

fn status_field(pid: i32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn progress(work: &Path) -> u64 {
    std::fs::read_to_string(work.join("progress"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The root process `pid` (counting in `work`) is alive, untraced, not
/// stopped, and still counting.
fn assert_runs_on(pid: i32, work: &Path) {
    assert_eq!(status_field(pid, "TracerPid:"), "0", "task {pid} is traced");
    let state = status_field(pid, "State:");
    assert!(
        state.starts_with('R') || state.starts_with('S'),
        "task {pid} is {state}"
    );
    let before = progress(work);
    let end = Instant::now() + TIMEOUT;
    while progress(work) <= before {
        assert!(
            Instant::now() < end,
            "task {pid} stopped counting at {before}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn errmsg(resp: &CriuResp) -> String {
    resp.cr_errmsg.clone().unwrap_or_default()
}

/// The dump-and-restore of one's own process, through `via`.
fn own_dump_and_restore(w: &World, via: Via<'_>) {
    let work = w.work();
    let mut child = w.start_counter(&work, false);
    let pid = child.id() as i32;
    let images = w.images();
    let resp = w.ask(via, &Request::new(CriuReqType::Dump, &images, Some(pid)));
    let log = std::fs::read_to_string(images.join("dump.log")).unwrap_or_default();
    assert!(resp.success, "{resp:?}\n{log}");
    // The log was made through the client's fd, as the client.
    let meta = std::fs::metadata(images.join("dump.log")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), UID);
    assert!(log.contains("Dumping"), "{log}");
    child.wait().unwrap();

    // exec_cmd, which the worker becomes after the restore, runs as the
    // client with no capability (its output goes to the request's log).
    let mut restore = Request::new(CriuReqType::Restore, &images, None);
    restore.exec = Some("grep -E '^(Uid|Gid|Cap(Inh|Prm|Eff|Amb)):' /proc/self/status");
    let resp = w.ask(via, &restore);
    assert!(resp.success, "{resp:?}");
    assert_eq!(resp.restore.as_ref().unwrap().pid, pid);
    let end = Instant::now() + TIMEOUT;
    let log = loop {
        let log = std::fs::read_to_string(images.join("restore.log")).unwrap_or_default();
        if log.contains("CapAmb:") || Instant::now() > end {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for line in [
        "Uid:\t1000\t1000\t1000\t1000",
        "Gid:\t1000\t1000\t1000\t1000",
        "CapInh:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "CapAmb:\t0000000000000000",
    ] {
        assert!(
            log.lines().any(|l| l == line),
            "exec_cmd lacks {line:?}:\n{log}"
        );
    }
    // Back as the user's own process, with no capability.
    assert_eq!(status_field(pid, "Uid:"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(pid, "Gid:"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(pid, "CapEff:"), "0000000000000000");
    assert_eq!(status_field(pid, "CapPrm:"), "0000000000000000");
    let verdict = w.go(&work);
    kill_and_reap(pid);
    assert_eq!(verdict, "PASS");
}

/// A dump of root's process: refused, saying who asked, what and why; the
/// process runs on.
fn root_dump_refused(w: &World, via: Via<'_>) {
    let work = w.dir.join("root-work");
    std::fs::create_dir(&work).unwrap();
    perm(&work, 0o700);
    let mut child = w.start_counter(&work, true);
    let pid = child.id() as i32;
    let images = w.images();
    let resp = w.ask(via, &Request::new(CriuReqType::Dump, &images, Some(pid)));
    assert!(!resp.success, "{resp:?}");
    let msg = errmsg(&resp);
    assert!(msg.contains("(uid 1000) may not dump task"), "{msg}");
    assert!(
        msg.contains(&format!("may not dump task {pid}: it runs as uid 0/0/0")),
        "{msg}"
    );
    assert!(msg.contains("lacks CAP_SYS_PTRACE"), "{msg}");
    assert_eq!(resp.cr_errno, Some(1), "EPERM: {resp:?}");
    // And in the log, in the client's images dir.
    let log = std::fs::read_to_string(images.join("dump.log")).unwrap_or_default();
    assert!(log.contains(&format!("may not dump task {pid}")), "{log}");
    assert_runs_on(pid, &work);
    assert_eq!(w.go(&work), "PASS");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn user_dumps_and_restores_its_own_process() {
    let Some(w) = World::new("rights-own", true) else {
        return;
    };
    own_dump_and_restore(&w, Via::Service);
}

#[test]
fn dump_of_a_root_process_is_refused_and_it_runs_on() {
    let Some(w) = World::new("rights-root-dump", true) else {
        return;
    };
    root_dump_refused(&w, Via::Service);
}

/// Rewrites the credentials of every `core-*.img` in `dir` to uid/gid 0.
fn forge_root_creds(dir: &Path) -> usize {
    let images = ImageDir::new(dir);
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Some(id) = name
            .strip_prefix("core-")
            .and_then(|r| r.strip_suffix(".img"))
            .and_then(|id| id.parse::<u64>().ok())
        else {
            continue;
        };
        let mut core: CoreEntry = images.read_one(Kind::Core, id).unwrap();
        let creds = core
            .thread_core
            .as_mut()
            .and_then(|t| t.creds.as_mut())
            .expect("creds in core");
        creds.uid = 0;
        creds.euid = 0;
        creds.suid = 0;
        creds.fsuid = 0;
        creds.gid = 0;
        creds.egid = 0;
        creds.sgid = 0;
        creds.fsgid = 0;
        images.write_one(Kind::Core, id, &core).unwrap();
        // Still the user's file: the user could have forged it.
        chown(&images.path(Kind::Core, id), UID);
        n += 1;
    }
    n
}

#[test]
fn images_with_uid_0_are_refused_for_restore() {
    let Some(w) = World::new("rights-forged", true) else {
        return;
    };
    let work = w.work();
    let mut child = w.start_counter(&work, false);
    let pid = child.id() as i32;
    let images = w.images();
    let resp = w.ask(
        Via::Service,
        &Request::new(CriuReqType::Dump, &images, Some(pid)),
    );
    assert!(resp.success, "{resp:?}");
    child.wait().unwrap();
    assert!(forge_root_creds(&images) > 0);

    let resp = w.ask(
        Via::Service,
        &Request::new(CriuReqType::Restore, &images, None),
    );
    assert!(!resp.success, "{resp:?}");
    let msg = errmsg(&resp);
    assert!(
        msg.contains(&format!(
            "(uid 1000) may not restore task {pid} from these images: core-{pid}.img holds \
             credentials beyond the client's: they give it uid 0"
        )),
        "{msg}"
    );
    // Refused before any fork: no task came back under that pid.
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    let log = std::fs::read_to_string(images.join("restore.log")).unwrap_or_default();
    assert!(log.contains("may not restore task"), "{log}");
    assert!(!log.contains("Forking"), "{log}");
}

#[test]
fn an_images_dir_the_user_cannot_write_is_refused() {
    let Some(w) = World::new("rights-ro-dir", true) else {
        return;
    };
    let work = w.work();
    let mut child = w.start_counter(&work, false);
    let pid = child.id() as i32;
    // Root's directory, readable by all, writable by root only.
    let ro = w.dir.join("root-images");
    std::fs::create_dir(&ro).unwrap();
    perm(&ro, 0o755);
    let resp = w.ask(
        Via::Service,
        &Request::new(CriuReqType::Dump, &ro, Some(pid)),
    );
    assert!(!resp.success, "{resp:?}");
    let msg = errmsg(&resp);
    assert!(
        msg.contains("(uid 1000) may not use images_dir_fd (its fd")
            && msg.contains("it is owned by uid 0 gid 0 with mode 0755")
            && msg.contains("can't write into it"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_dir(&ro).unwrap().count(),
        0,
        "something was written"
    );

    // A path instead of an fd: resolved by the service, refused.
    let images = w.images();
    let mut by_path = Request::new(CriuReqType::Dump, &images, Some(pid));
    by_path.by_path = true;
    let resp = w.ask(Via::Service, &by_path);
    assert!(!resp.success, "{resp:?}");
    let msg = errmsg(&resp);
    assert!(
        msg.contains("(uid 1000) may not name the path") && msg.contains("(images_dir)"),
        "{msg}"
    );
    assert_eq!(std::fs::read_dir(&images).unwrap().count(), 0);

    assert_eq!(status_field(pid, "TracerPid:"), "0");
    assert_eq!(w.go(&work), "PASS");
    let _ = child.kill();
    let _ = child.wait();
}

/// A set-uid root copy of criu, which a uid 1000 parent starts as
/// `criu swrk`: the worker is root, its client is not.
fn setuid_criu(w: &World) -> PathBuf {
    let criu = w.dir.join("criu-suid");
    install(Path::new(env!("CARGO_BIN_EXE_criu")), &criu, 0o755);
    chown(&criu, 0);
    perm(&criu, 0o4755);
    criu
}

#[test]
fn swrk_started_by_an_unprivileged_parent_acts_with_its_rights() {
    let Some(w) = World::new("rights-swrk", false) else {
        return;
    };
    let criu = setuid_criu(&w);
    root_dump_refused(&w, Via::Swrk(&criu));
    own_dump_and_restore(&w, Via::Swrk(&criu));
}
